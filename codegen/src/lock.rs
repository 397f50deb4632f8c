//! The spec lock (`spec/shop.lock`, beside the spec): what earlier generations
//! promised, so that the next one keeps the promise.
//!
//! It pins the proto field numbers of every message (and what is reserved), the
//! payload of every event schema version, the public surface the breaking-change
//! report compares against (with the spec position of each item, so that a removed
//! one can still be pointed at), per database the migrations written so far (file and
//! sha256) and the schema they produce, and the port slot of every deployable, by name
//! (a removed one's stays taken).
//!
//! Maps are sorted by name so that reordering the spec changes nothing but positions;
//! field lists keep their pinned order. The text is YAML written by a small printer
//! of our own (flow style for short leaves), so that it is compact and stable.

use std::collections::BTreeMap;
use std::fmt;

use indexmap::IndexMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Digest;

use crate::ir::{
    Column, Constraints, DefaultValue, FieldType, ForeignKey, IndexColumn, Label, Message,
    MessageField, Span, SqlType, System, Table,
};

/// Bumped when the lock's shape changes incompatibly.
pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    pub format: u32,
    /// Port slots by deployable name; absent in a lock from before ports were pinned.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub deployables: BTreeMap<String, LockedDeployable>,
    #[serde(default)]
    pub entities: BTreeMap<String, LockedEntity>,
    #[serde(default)]
    pub services: BTreeMap<String, LockedService>,
    #[serde(default)]
    pub graphql: LockedGraphql,
    /// Package, then message.
    #[serde(default)]
    pub proto: BTreeMap<String, BTreeMap<String, LockedMessage>>,
    #[serde(default)]
    pub databases: BTreeMap<String, LockedDatabase>,
}

/// A spec position, written `line:column`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct At(pub Span);

impl Serialize for At {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl<'de> Deserialize<'de> for At {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let parse = || {
            let (l, c) = s.split_once(':')?;
            Some(Span {
                line: l.parse().ok()?,
                column: c.parse().ok()?,
            })
        };
        parse().map(At).ok_or_else(|| {
            serde::de::Error::custom(format!("bad position `{s}`: expected LINE:COLUMN"))
        })
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedDeployable {
    /// Its local ports are each base + slot.
    pub slot: u16,
    /// Gone from the spec; the slot stays taken, so no other deployable inherits ports
    /// that old configurations still point at.
    #[serde(default, skip_serializing_if = "is_false")]
    pub retired: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedEntity {
    pub at: At,
    /// Flattened (inherited first), in pinned order.
    pub fields: IndexMap<String, LockedField>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub relations: BTreeMap<String, LockedRelation>,
}

/// A field's type and what it accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedField {
    /// The spec's name for it: `string`, `ref Product`.
    #[serde(rename = "type")]
    pub ty: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub optional: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_len: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_len: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub one_of: Vec<String>,
    /// Where it was declared; absent for the inputs the generator adds itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<At>,
}

impl LockedField {
    fn new(ty: &FieldType, optional: bool, c: &Constraints, at: Option<Span>) -> LockedField {
        LockedField {
            ty: ty.spec_name(),
            optional,
            min_len: c.min_len,
            max_len: c.max_len,
            min: c.min,
            max: c.max,
            one_of: c.one_of.clone(),
            at: at.map(At),
        }
    }

    pub fn constraints(&self) -> Constraints {
        Constraints {
            min_len: self.min_len,
            max_len: self.max_len,
            min: self.min,
            max: self.max,
            one_of: self.one_of.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedRelation {
    pub to: String,
    pub cardinality: String,
    pub at: At,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedService {
    pub at: At,
    pub pattern: String,
    pub operations: BTreeMap<String, LockedOperation>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub events: BTreeMap<String, LockedEvent>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedOperation {
    pub at: At,
    pub kind: String,
    /// The fields of its request message, as clients see them.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub input: IndexMap<String, LockedField>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedEvent {
    pub at: At,
    /// Every payload schema version, oldest first; the last is the current one.
    pub versions: Vec<LockedEventVersion>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedEventVersion {
    pub version: u32,
    #[serde(default)]
    pub fields: IndexMap<String, LockedEventField>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedEventField {
    #[serde(rename = "type")]
    pub ty: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub optional: bool,
    /// Its name in the version before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renamed_from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<DefaultValue>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedGraphql {
    #[serde(default)]
    pub queries: BTreeMap<String, At>,
    #[serde(default)]
    pub mutations: BTreeMap<String, At>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedMessage {
    /// Fields and oneof members, by number.
    #[serde(default)]
    pub fields: IndexMap<String, LockedNumber>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reserved: Vec<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reserved_names: Vec<String>,
}

impl LockedMessage {
    /// The highest number this message ever used.
    pub fn max_number(&self) -> u32 {
        self.fields
            .values()
            .map(|f| f.number)
            .chain(self.reserved.iter().copied())
            .max()
            .unwrap_or(0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedNumber {
    pub number: u32,
    /// The proto type: `string`, `int64`, `google.protobuf.Timestamp`, `CartItem`.
    #[serde(rename = "type")]
    pub ty: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedDatabase {
    /// Every migration written so far, in order: history that is never rewritten.
    pub migrations: Vec<LockedMigration>,
    /// The SQLite twins of `migrations` (same files under `sqlite/`): history too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sqlite_migrations: Vec<LockedMigration>,
    /// The schema those migrations produce.
    pub tables: Vec<LockedTable>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedMigration {
    pub file: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedTable {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doc: Option<String>,
    pub columns: Vec<LockedColumn>,
    #[serde(default)]
    pub primary_key: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unique: Vec<Vec<String>>,
    /// Columns, each optionally followed by ` desc`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indexes: Vec<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub foreign_keys: Vec<LockedForeignKey>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedColumn {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub nullable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doc: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedForeignKey {
    pub columns: Vec<String>,
    pub table: String,
    pub references: Vec<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub on_delete_cascade: bool,
}

impl LockedTable {
    pub fn of(t: &Table) -> LockedTable {
        LockedTable {
            name: t.name.clone(),
            doc: t.doc.clone(),
            columns: t
                .columns
                .iter()
                .map(|c| LockedColumn {
                    name: c.name.clone(),
                    ty: c.sql_type.postgres().to_string(),
                    nullable: c.nullable,
                    default: c.default.clone(),
                    checks: c.checks.clone(),
                    doc: c.doc.clone(),
                })
                .collect(),
            primary_key: t.primary_key.clone(),
            unique: t.unique.clone(),
            indexes: t
                .indexes
                .iter()
                .map(|ix| {
                    ix.iter()
                        .map(|c| {
                            if c.descending {
                                format!("{} desc", c.field)
                            } else {
                                c.field.clone()
                            }
                        })
                        .collect()
                })
                .collect(),
            foreign_keys: t
                .foreign_keys
                .iter()
                .map(|fk| LockedForeignKey {
                    columns: fk.columns.clone(),
                    table: fk.table.clone(),
                    references: fk.references.clone(),
                    on_delete_cascade: fk.on_delete_cascade,
                })
                .collect(),
            checks: t.checks.clone(),
        }
    }

    /// The table as the IR describes it; an error names what cannot be read.
    pub fn to_table(&self) -> Result<Table, String> {
        let columns = self
            .columns
            .iter()
            .map(|c| {
                let sql_type = SqlType::ALL
                    .into_iter()
                    .find(|t| t.postgres() == c.ty)
                    .ok_or_else(|| {
                        format!("table `{}`: unknown column type `{}`", self.name, c.ty)
                    })?;
                Ok(Column {
                    name: c.name.clone(),
                    sql_type,
                    nullable: c.nullable,
                    default: c.default.clone(),
                    checks: c.checks.clone(),
                    doc: c.doc.clone(),
                    renamed_from: None,
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Table {
            name: self.name.clone(),
            doc: self.doc.clone(),
            columns,
            primary_key: self.primary_key.clone(),
            unique: self.unique.clone(),
            indexes: self
                .indexes
                .iter()
                .map(|ix| {
                    ix.iter()
                        .map(|c| match c.strip_suffix(" desc") {
                            Some(field) => IndexColumn {
                                field: field.to_string(),
                                descending: true,
                            },
                            None => IndexColumn {
                                field: c.clone(),
                                descending: false,
                            },
                        })
                        .collect()
                })
                .collect(),
            foreign_keys: self
                .foreign_keys
                .iter()
                .map(|fk| ForeignKey {
                    columns: fk.columns.clone(),
                    table: fk.table.clone(),
                    references: fk.references.clone(),
                    on_delete_cascade: fk.on_delete_cascade,
                })
                .collect(),
            checks: self.checks.clone(),
        })
    }
}

/// The hex sha256 of a file's contents, as the lock records it.
pub fn sha256(contents: &str) -> String {
    sha2::Sha256::digest(contents.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Lock {
    pub fn parse(text: &str) -> Result<Lock, String> {
        // The format is checked first: a newer lock would fail on its new keys instead.
        #[derive(Deserialize)]
        struct Head {
            format: u32,
        }
        let head: Head = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
        if head.format != FORMAT {
            return Err(format!(
                "lock format {} is not the one this generator writes ({FORMAT})",
                head.format
            ));
        }
        serde_yaml::from_str(text).map_err(|e| e.to_string())
    }

    /// The lock that describes `system`, whose databases the given migrations build.
    pub fn of(
        system: &System,
        migrations: &BTreeMap<String, Vec<LockedMigration>>,
        sqlite_migrations: &BTreeMap<String, Vec<LockedMigration>>,
    ) -> Lock {
        let entities = system
            .entities
            .iter()
            .filter(|e| !e.is_abstract)
            .map(|e| {
                let fields = e
                    .fields
                    .iter()
                    .map(|f| {
                        (
                            f.name.clone(),
                            LockedField::new(&f.ty, f.optional, &f.constraints, Some(f.span)),
                        )
                    })
                    .collect();
                let relations = e
                    .relations
                    .iter()
                    .map(|r| {
                        (
                            r.name.clone(),
                            LockedRelation {
                                to: r.target.clone(),
                                cardinality: r.cardinality.to_string(),
                                at: At(r.span),
                            },
                        )
                    })
                    .collect();
                (
                    e.name.clone(),
                    LockedEntity {
                        at: At(e.span),
                        fields,
                        relations,
                    },
                )
            })
            .collect();
        let services = system
            .services
            .iter()
            .map(|s| {
                let operations = s
                    .operations
                    .iter()
                    .map(|o| {
                        let input = s
                            .proto
                            .messages
                            .iter()
                            .find(|m| m.name == o.rpc.request)
                            .map(|m| {
                                m.fields
                                    .iter()
                                    .map(|f| (f.name.clone(), input_field(f)))
                                    .collect()
                            })
                            .unwrap_or_default();
                        (
                            o.name.clone(),
                            LockedOperation {
                                at: At(o.span),
                                kind: format!("{:?}", o.kind).to_lowercase(),
                                input,
                            },
                        )
                    })
                    .collect();
                let events = s
                    .events
                    .iter()
                    .map(|e| {
                        let mut versions: Vec<LockedEventVersion> = e
                            .history
                            .iter()
                            .map(|h| LockedEventVersion {
                                version: h.version,
                                fields: h
                                    .fields
                                    .iter()
                                    .map(|f| {
                                        (
                                            f.name.clone(),
                                            LockedEventField {
                                                ty: f.ty.spec_name(),
                                                optional: f.optional,
                                                renamed_from: f.renamed_from.clone(),
                                                default: f.default.clone(),
                                            },
                                        )
                                    })
                                    .collect(),
                            })
                            .collect();
                        let older: Vec<&str> = versions
                            .last()
                            .map(|v| v.fields.keys().map(String::as_str).collect())
                            .unwrap_or_default();
                        versions.push(LockedEventVersion {
                            version: e.version,
                            fields: e
                                .fields
                                .iter()
                                .map(|f| {
                                    // A rename only means something against the version before.
                                    let renamed_from = f
                                        .renamed_from
                                        .clone()
                                        .filter(|o| older.contains(&o.as_str()));
                                    (
                                        f.name.clone(),
                                        LockedEventField {
                                            ty: f.ty.spec_name(),
                                            optional: f.optional,
                                            renamed_from,
                                            default: f.default.clone(),
                                        },
                                    )
                                })
                                .collect(),
                        });
                        (
                            e.name.clone(),
                            LockedEvent {
                                at: At(e.span),
                                versions,
                            },
                        )
                    })
                    .collect();
                (
                    s.name.clone(),
                    LockedService {
                        at: At(s.span),
                        pattern: s.pattern.as_str().to_string(),
                        operations,
                        events,
                    },
                )
            })
            .collect();
        let graphql = LockedGraphql {
            queries: system
                .bff
                .queries
                .iter()
                .map(|q| (q.operation.clone(), At(q.span)))
                .collect(),
            mutations: system
                .bff
                .mutations
                .iter()
                .map(|q| (q.operation.clone(), At(q.span)))
                .collect(),
        };
        let proto = system
            .services
            .iter()
            .map(|s| {
                let messages = s
                    .proto
                    .messages
                    .iter()
                    .map(|m| (m.name.clone(), locked_message(m)))
                    .collect();
                (s.proto.package.clone(), messages)
            })
            .collect();
        let databases = system
            .databases
            .iter()
            .map(|db| {
                (
                    db.name.clone(),
                    LockedDatabase {
                        migrations: migrations.get(&db.name).cloned().unwrap_or_default(),
                        sqlite_migrations: sqlite_migrations
                            .get(&db.name)
                            .cloned()
                            .unwrap_or_default(),
                        tables: db.tables.iter().map(LockedTable::of).collect(),
                    },
                )
            })
            .collect();
        let deployables = system
            .deployables
            .iter()
            .map(|d| {
                let slot = LockedDeployable {
                    slot: d.slot,
                    retired: false,
                };
                (d.name.clone(), slot)
            })
            .collect();
        Lock {
            format: FORMAT,
            deployables,
            entities,
            services,
            graphql,
            proto,
            databases,
        }
    }

    /// Keeps the slots of `old`'s deployables that are gone, as retired.
    pub fn retire_deployables(&mut self, old: &Lock) {
        for (name, d) in &old.deployables {
            self.deployables
                .entry(name.clone())
                .or_insert(LockedDeployable {
                    retired: true,
                    ..*d
                });
        }
    }

    /// The highest port slot ever used, retired ones included.
    pub fn max_slot(&self) -> Option<u16> {
        self.deployables.values().map(|d| d.slot).max()
    }

    /// The lock's text: a header, then YAML.
    pub fn render(&self) -> String {
        let value = serde_yaml::to_value(self).unwrap_or(serde_yaml::Value::Null);
        let mut out = crate::emit::header("#");
        out.push_str(
            "# Pins proto field numbers, event schema versions and deployables' port slots, and\n\
             # records the surface the breaking-change report compares against and the schema\n\
             # the migrations produce.\n",
        );
        if let serde_yaml::Value::Mapping(m) = &value {
            yaml::map(&mut out, m, 0);
        }
        out
    }
}

/// A request field as the lock records it (spec type when the field has one).
pub fn input_field(f: &MessageField) -> LockedField {
    let optional = f.label != Label::Required;
    match &f.check {
        Some(c) => LockedField::new(&c.ty, optional, &c.constraints, None),
        None => LockedField {
            ty: f.ty.proto_name(),
            optional,
            min_len: None,
            max_len: None,
            one_of: Vec::new(),
            min: None,
            max: None,
            at: None,
        },
    }
}

fn locked_message(m: &Message) -> LockedMessage {
    let mut fields: Vec<&MessageField> = m.fields.iter().collect();
    if let Some((_, members)) = &m.oneof {
        fields.extend(members);
    }
    fields.sort_by_key(|f| f.number);
    let mut reserved = m.reserved_numbers.clone();
    reserved.sort_unstable();
    reserved.dedup();
    LockedMessage {
        fields: fields
            .into_iter()
            .map(|f| {
                (
                    f.name.clone(),
                    LockedNumber {
                        number: f.number,
                        ty: f.ty.proto_name(),
                    },
                )
            })
            .collect(),
        reserved,
        reserved_names: m.reserved_names.clone(),
    }
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Block YAML with short leaf maps and lists in flow style (`{ number: 1, type: string }`).
mod yaml {
    use serde_yaml::{Mapping, Value};

    const WIDTH: usize = 100;

    pub fn map(out: &mut String, m: &Mapping, indent: usize) {
        for (k, v) in m {
            out.push_str(&" ".repeat(indent));
            entry(out, k, v, indent);
        }
    }

    /// `key: value` where the key is already indented.
    fn entry(out: &mut String, k: &Value, v: &Value, indent: usize) {
        let key = scalar(k);
        out.push_str(&key);
        out.push(':');
        after_key(out, v, indent, indent + key.len() + 2);
    }

    fn after_key(out: &mut String, v: &Value, indent: usize, column: usize) {
        if let Some(flow) = flow(v)
            && (column + flow.len() <= WIDTH || leaf(v).is_some())
        {
            out.push(' ');
            out.push_str(&flow);
            out.push('\n');
            return;
        }
        out.push('\n');
        match v {
            Value::Mapping(m) => map(out, m, indent + 2),
            Value::Sequence(s) => seq(out, s, indent + 2),
            _ => {}
        }
    }

    fn seq(out: &mut String, s: &[Value], indent: usize) {
        for item in s {
            out.push_str(&" ".repeat(indent));
            out.push_str("- ");
            match (item, flow(item)) {
                (_, Some(f)) if indent + 2 + f.len() <= WIDTH || leaf(item).is_some() => {
                    out.push_str(&f);
                    out.push('\n');
                }
                (Value::Mapping(m), _) => {
                    for (i, (k, v)) in m.iter().enumerate() {
                        if i > 0 {
                            out.push_str(&" ".repeat(indent + 2));
                        }
                        entry(out, k, v, indent + 2);
                    }
                }
                (Value::Sequence(inner), _) => {
                    out.push('\n');
                    seq(out, inner, indent + 2);
                }
                (other, _) => {
                    out.push_str(&scalar(other));
                    out.push('\n');
                }
            }
        }
    }

    /// The one-line form of a scalar, or of a map or list of scalars.
    fn flow(v: &Value) -> Option<String> {
        match v {
            Value::Mapping(m) if m.is_empty() => Some("{}".into()),
            Value::Sequence(s) if s.is_empty() => Some("[]".into()),
            Value::Mapping(m) => {
                let parts: Option<Vec<String>> = m
                    .iter()
                    .map(|(k, v)| leaf(v).map(|v| format!("{}: {v}", scalar(k))))
                    .collect();
                parts.map(|p| format!("{{ {} }}", p.join(", ")))
            }
            Value::Sequence(s) => {
                let parts: Option<Vec<String>> = s.iter().map(leaf).collect();
                parts.map(|p| format!("[{}]", p.join(", ")))
            }
            other => leaf(other),
        }
    }

    fn leaf(v: &Value) -> Option<String> {
        match v {
            Value::Mapping(_) | Value::Sequence(_) | Value::Tagged(_) => None,
            other => Some(scalar(other)),
        }
    }

    fn scalar(v: &Value) -> String {
        match v {
            Value::Null => "null".into(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            Value::String(s) if plain(s) => s.clone(),
            // A JSON string is a valid YAML double-quoted scalar.
            Value::String(s) => serde_json::to_string(s).unwrap_or_default(),
            _ => String::new(),
        }
    }

    /// Whether `s` reads back as the same string without quotes, in block and flow style.
    fn plain(s: &str) -> bool {
        const WORDS: [&str; 11] = [
            "true", "false", "null", "yes", "no", "on", "off", "y", "n", "inf", "nan",
        ];
        s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && !s.ends_with(' ')
            && !s.contains("  ")
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-' | ' '))
            && !WORDS.contains(&s.to_ascii_lowercase().as_str())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn scalars_read_back_as_written() {
            for s in [
                "ref Product",
                "yes",
                "1",
                "a: b",
                "",
                "x'y\"",
                "- a",
                "#c",
                "a #b",
            ] {
                let mut m = Mapping::new();
                m.insert(Value::String(s.into()), Value::String(s.into()));
                let mut out = String::new();
                map(&mut out, &m, 0);
                let back: Mapping = serde_yaml::from_str(&out).expect(&out);
                assert_eq!(back, m, "{out}");
            }
        }
    }
}
