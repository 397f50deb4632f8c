//! The spec as written: plain serde types, no meaning attached yet.
//!
//! Unknown keys are rejected here (serde reports them with a position); names, types
//! and references are checked in `lower`, which reports every problem at once.

use indexmap::IndexMap;
use serde::{Deserialize, Deserializer};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub system: String,
    pub money: Money,
    #[serde(default)]
    pub entities: IndexMap<String, Entity>,
    #[serde(default)]
    pub services: IndexMap<String, Service>,
    #[serde(default)]
    pub bff: Bff,
    pub auth: Option<Auth>,
}

/// Who may call what: the identity service that logs subjects in, and token lifetimes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// The service whose aggregate is the subject (customers); it serves the sessions.
    pub identity: String,
    /// Its command that creates a subject; the BFF sets the subject's password with it.
    pub register: String,
    /// Its command that ends a subject; the subject's credentials and sessions end first.
    pub forget: Option<String>,
    pub access_ttl_secs: Option<i64>,
    pub refresh_ttl_secs: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Money {
    pub currency: String,
    pub minor_units: u8,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Entity {
    pub doc: Option<String>,
    #[serde(rename = "abstract", default)]
    pub is_abstract: bool,
    pub extends: Option<String>,
    #[serde(default)]
    pub fields: IndexMap<String, Field>,
    #[serde(default)]
    pub relations: IndexMap<String, Relation>,
    #[serde(default)]
    pub key: Vec<String>,
    #[serde(default)]
    pub unique: Vec<Vec<String>>,
    #[serde(default)]
    pub indexes: Vec<Vec<String>>,
    /// The field naming the subject an instance belongs to (`customer_id`).
    pub owned_by: Option<String>,
}

/// `name: uuid` or `name: { type: string, max_len: 10, ... }` or `name: { ref: Product }`.
#[derive(Debug, Default, Clone)]
pub struct Field {
    pub ty: Option<String>,
    pub reference: Option<String>,
    pub optional: bool,
    pub unique: bool,
    pub readonly: bool,
    pub min_len: Option<i64>,
    pub max_len: Option<i64>,
    pub min: Option<i64>,
    pub max: Option<i64>,
    pub one_of: Option<Vec<String>>,
    pub doc: Option<String>,
    /// Checked against the type in `lower`, which knows the type.
    pub default: Option<serde_yaml::Value>,
    pub renamed_from: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldMap {
    #[serde(rename = "type")]
    ty: Option<String>,
    #[serde(rename = "ref")]
    reference: Option<String>,
    #[serde(default)]
    optional: bool,
    #[serde(default)]
    unique: bool,
    #[serde(default)]
    readonly: bool,
    min_len: Option<i64>,
    max_len: Option<i64>,
    min: Option<i64>,
    max: Option<i64>,
    one_of: Option<Vec<String>>,
    doc: Option<String>,
    default: Option<serde_yaml::Value>,
    renamed_from: Option<String>,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // An untagged enum would hide the real error behind "did not match any variant".
        let value = serde_yaml::Value::deserialize(d)?;
        if let serde_yaml::Value::String(s) = value {
            return Ok(Field {
                ty: Some(s),
                ..Field::default()
            });
        }
        let m: FieldMap = match value {
            serde_yaml::Value::Mapping(_) => {
                serde_yaml::from_value(value).map_err(serde::de::Error::custom)?
            }
            other => {
                return Err(serde::de::Error::custom(format!(
                    "expected a type name (e.g. `uuid`) or a map with `type:` or `ref:`, found {}",
                    describe(&other)
                )));
            }
        };
        Ok(Field {
            ty: m.ty,
            reference: m.reference,
            optional: m.optional,
            unique: m.unique,
            readonly: m.readonly,
            min_len: m.min_len,
            max_len: m.max_len,
            min: m.min,
            max: m.max,
            one_of: m.one_of,
            doc: m.doc,
            default: m.default,
            renamed_from: m.renamed_from,
        })
    }
}

fn describe(v: &serde_yaml::Value) -> &'static str {
    match v {
        serde_yaml::Value::Null => "nothing",
        serde_yaml::Value::Bool(_) => "a boolean",
        serde_yaml::Value::Number(_) => "a number",
        serde_yaml::Value::String(_) => "a string",
        serde_yaml::Value::Sequence(_) => "a list",
        serde_yaml::Value::Mapping(_) => "a map",
        serde_yaml::Value::Tagged(_) => "a tagged value",
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Relation {
    pub to: String,
    pub cardinality: String,
    #[serde(default)]
    pub owned: bool,
    pub on_delete: Option<String>,
    /// Owned relations: the order the owned items are listed in (`[name, id desc]`).
    #[serde(default)]
    pub order_by: Vec<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub doc: Option<String>,
    pub pattern: String,
    pub entity: Option<String>,
    pub aggregate: Option<String>,
    pub store: Option<String>,
    pub event_store: Option<String>,
    pub read_model: Option<String>,
    pub messaging: Option<Messaging>,
    #[serde(default)]
    pub calls: Vec<String>,
    #[serde(default)]
    pub use_cases: IndexMap<String, UseCase>,
    #[serde(default)]
    pub commands: IndexMap<String, Command>,
    #[serde(default)]
    pub events: IndexMap<String, Vec<String>>,
    #[serde(default)]
    pub queries: IndexMap<String, Query>,
    #[serde(default)]
    pub subscribes: IndexMap<String, String>,
    /// The command that gives an instance nobody owns yet to the caller (`owned_by`).
    pub claim: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Messaging {
    pub broker: String,
    pub topic: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UseCase {
    pub kind: String,
    pub doc: Option<String>,
    pub audience: Option<String>,
    pub idempotent: Option<bool>,
    #[serde(default)]
    pub params: IndexMap<String, Field>,
    #[serde(default)]
    pub input: Vec<String>,
    pub output: Option<String>,
    pub page_size: Option<PageSize>,
    #[serde(default)]
    pub filter: Vec<String>,
    #[serde(default)]
    pub order_by: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageSize {
    pub default: i64,
    pub max: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Command {
    pub doc: Option<String>,
    #[serde(default)]
    pub input: Vec<String>,
    #[serde(default)]
    pub params: IndexMap<String, Field>,
    #[serde(default)]
    pub emits: Vec<String>,
    /// Reference inputs that must name an existing entity, asked of its service before
    /// the command appends (cqrs-es).
    #[serde(default)]
    pub exists: Vec<String>,
    pub audience: Option<String>,
    pub idempotent: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Query {
    pub doc: Option<String>,
    #[serde(default)]
    pub input: Vec<String>,
    #[serde(default)]
    pub params: IndexMap<String, Field>,
    pub output: Option<String>,
    pub audience: Option<String>,
    /// cqrs-es: `eventual` (default: the query side reads the read model) or `strong`
    /// (the command side answers from the event store).
    pub consistency: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Bff {
    #[serde(default)]
    pub graphql: Graphql,
    /// What the edge accepts from a client; each key has a default.
    #[serde(default)]
    pub limits: EdgeLimits,
    /// A folder of hand-written static files (the storefront), relative to the project
    /// root (the folder that holds `spec/`): the BFF serves its `index.html` at `/` and
    /// every file under `/assets/app/`.
    pub storefront: Option<String>,
}

/// Signed, so that a negative value is a positioned error of lowering, not of serde.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct EdgeLimits {
    pub max_body_bytes: Option<i64>,
    pub request_timeout_ms: Option<i64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Graphql {
    #[serde(default)]
    pub queries: Vec<String>,
    #[serde(default)]
    pub mutations: Vec<String>,
}
