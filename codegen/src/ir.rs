//! The one intermediate representation every emitter reads.
//!
//! `lower` builds it from a validated spec; after that nobody looks at YAML again.
//! Everything an emitter needs is decided here (names, wire numbers, ports, messages),
//! so that two emitters can never disagree about, say, a message's field order.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A position in the spec file, 1-based.
#[derive(Debug, Clone, Serialize, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Span {
    pub line: u32,
    pub column: u32,
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct System {
    /// `shop`: the proto package root, the k8s namespace, the compose project.
    pub name: String,
    pub money: MoneyDef,
    /// In spec order; abstract entities included (they are never stored).
    pub entities: Vec<Entity>,
    pub services: Vec<Service>,
    pub bff: Bff,
    /// The GraphQL API the BFF serves, decided from `bff` (see `graphql_model`).
    pub graphql: GraphqlApi,
    /// Every process that runs, in a fixed order: bff first, then services in spec
    /// order, each service's roles in role order.
    pub deployables: Vec<Deployable>,
    /// Every relational database, one per service that has one.
    pub databases: Vec<Database>,
    /// Every document event store.
    pub event_stores: Vec<EventStore>,
    /// Every Kafka topic the system uses.
    pub topics: Vec<Topic>,
    /// Logins and who may call what; `None`: every exposed operation is public.
    pub auth: Option<Auth>,
}

/// The spec's `auth:`, checked.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Auth {
    /// The identity service (serves `keel.auth.v1.Auth` from its database).
    pub service: String,
    /// Its aggregate: a subject is one of these, a token's `sub` its id.
    pub entity: String,
    /// Its deployable.
    pub deployable: String,
    /// The command that creates a subject (the BFF sets its password after).
    pub register: String,
    /// The command that ends a subject (its credentials and sessions end before).
    pub forget: Option<String>,
    pub access_ttl_secs: u32,
    pub refresh_ttl_secs: u32,
}

pub const DEFAULT_ACCESS_TTL_SECS: u32 = 300;
pub const DEFAULT_REFRESH_TTL_SECS: u32 = 30 * 24 * 3600;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MoneyDef {
    /// ISO 4217 code, e.g. `JPY`.
    pub currency: String,
    /// Number of minor units in one major unit is 10^minor_units.
    pub minor_units: u8,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Entity {
    /// PascalCase, as written in the spec.
    pub name: String,
    pub doc: Option<String>,
    pub is_abstract: bool,
    pub extends: Option<String>,
    /// Inherited fields first (flattened), then own fields, in spec order.
    pub fields: Vec<Field>,
    pub relations: Vec<Relation>,
    /// Owned by another entity (a `owned: true` relation points here).
    pub owner: Option<String>,
    /// For owned entities: the fields that identify an instance within its owner.
    pub key: Vec<String>,
    /// Composite unique constraints, field names.
    pub unique: Vec<Vec<String>>,
    /// Composite (non-unique) indexes, field names with an optional `desc`.
    pub indexes: Vec<Vec<IndexColumn>>,
    /// The field naming the subject (`auth`) an instance belongs to.
    pub owned_by: Option<String>,
    pub span: Span,
}

impl Entity {
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
    pub fn has_id(&self) -> bool {
        self.field("id").is_some()
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct IndexColumn {
    pub field: String,
    pub descending: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Field {
    /// snake_case.
    pub name: String,
    pub ty: FieldType,
    pub optional: bool,
    pub unique: bool,
    /// Set by the service (ids, timestamps, computed totals); never accepted as input
    /// on create or update.
    pub readonly: bool,
    pub constraints: Constraints,
    pub doc: Option<String>,
    /// The value existing rows (and old events) get when the field is new: `default:`.
    pub default: Option<DefaultValue>,
    /// The field's previous name (`renamed_from:`): its proto number and column move
    /// to the new name instead of being dropped and added.
    pub renamed_from: Option<String>,
    /// Proto field number of this field inside its entity message.
    pub number: u32,
    pub span: Span,
}

/// A spec `default:`, already checked against the field's type and constraints.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum DefaultValue {
    Bool(bool),
    Int(i64),
    /// Strings, and the text forms of uuid and timestamp values.
    Str(String),
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub enum FieldType {
    Uuid,
    /// A short string (validated length).
    String,
    /// A long string; same wire type as `String`.
    Text,
    Email,
    /// 32-bit signed integer.
    Int,
    /// Integer minor units of the system currency, 64-bit. Never a float.
    Money,
    /// UTC instant.
    Timestamp,
    Bool,
    /// The id (a UUID) of an entity, named here.
    Ref(String),
}

impl FieldType {
    /// The spec's own name for the type, for messages.
    pub fn spec_name(&self) -> String {
        match self {
            FieldType::Uuid => "uuid".into(),
            FieldType::String => "string".into(),
            FieldType::Text => "text".into(),
            FieldType::Email => "email".into(),
            FieldType::Int => "int".into(),
            FieldType::Money => "money".into(),
            FieldType::Timestamp => "timestamp".into(),
            FieldType::Bool => "bool".into(),
            FieldType::Ref(e) => format!("ref {e}"),
        }
    }
    /// The inverse of `spec_name`.
    pub fn from_spec_name(s: &str) -> Option<FieldType> {
        Some(match s {
            "uuid" => FieldType::Uuid,
            "string" => FieldType::String,
            "text" => FieldType::Text,
            "email" => FieldType::Email,
            "int" => FieldType::Int,
            "money" => FieldType::Money,
            "timestamp" => FieldType::Timestamp,
            "bool" => FieldType::Bool,
            other => FieldType::Ref(other.strip_prefix("ref ")?.to_string()),
        })
    }
    /// Types that share a JSON and Rust representation (an event payload keeps its
    /// schema version across a change within one class).
    pub fn class(&self) -> &'static str {
        match self {
            FieldType::Uuid | FieldType::Ref(_) => "uuid",
            FieldType::String | FieldType::Text | FieldType::Email => "string",
            FieldType::Int => "int",
            FieldType::Money => "money",
            FieldType::Timestamp => "timestamp",
            FieldType::Bool => "bool",
        }
    }
    pub fn is_stringy(&self) -> bool {
        matches!(self, FieldType::String | FieldType::Text | FieldType::Email)
    }
    pub fn is_numeric(&self) -> bool {
        matches!(self, FieldType::Int | FieldType::Money)
    }
    pub fn is_uuid(&self) -> bool {
        matches!(self, FieldType::Uuid | FieldType::Ref(_))
    }
}

#[derive(Debug, Clone, Serialize, Default, PartialEq, Eq)]
pub struct Constraints {
    /// In characters (Unicode scalar values), for string-like types.
    pub min_len: Option<u32>,
    pub max_len: Option<u32>,
    /// Inclusive bounds for `int` and `money`.
    pub min: Option<i64>,
    pub max: Option<i64>,
    /// For string-like types: the only values accepted (empty: any).
    pub one_of: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Relation {
    pub name: String,
    pub target: String,
    pub cardinality: Cardinality,
    /// The target's lifetime is bound to this entity (composition).
    pub owned: bool,
    pub on_delete: OnDelete,
    /// Owned relations: the order the owned items are listed in (empty: their key).
    pub order_by: Vec<IndexColumn>,
    pub span: Span,
}

#[derive(Debug, Clone, Serialize, Copy, PartialEq, Eq)]
pub struct Cardinality {
    pub min: u32,
    /// `None` is `*`.
    pub max: Option<u32>,
}

impl Cardinality {
    pub fn is_many(&self) -> bool {
        self.max.is_none_or(|m| m > 1)
    }
}

impl fmt::Display for Cardinality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.max {
            Some(max) => write!(f, "{}..{}", self.min, max),
            None => write!(f, "{}..*", self.min),
        }
    }
}

#[derive(Debug, Clone, Serialize, Copy, PartialEq, Eq)]
pub enum OnDelete {
    /// Nothing happens to the target.
    Keep,
    /// The target is deleted with the source.
    Cascade,
}

#[derive(Debug, Clone, Serialize, Copy, PartialEq, Eq)]
pub enum Store {
    Postgres,
    MongoDb,
}

impl Store {
    pub fn as_str(self) -> &'static str {
        match self {
            Store::Postgres => "postgres",
            Store::MongoDb => "mongodb",
        }
    }
}

#[derive(Debug, Clone, Serialize, Copy, PartialEq, Eq)]
pub enum Pattern {
    Crud,
    /// Commands and queries in one process, events + state in one database.
    CqsEs,
    /// Separate command, query and event-handler processes.
    CqrsEs,
}

impl Pattern {
    pub fn as_str(self) -> &'static str {
        match self {
            Pattern::Crud => "crud",
            Pattern::CqsEs => "cqs-es",
            Pattern::CqrsEs => "cqrs-es",
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Service {
    /// snake_case, e.g. `product`.
    pub name: String,
    pub doc: Option<String>,
    pub pattern: Pattern,
    /// The entity (CRUD) or aggregate (ES) this service owns.
    pub entity: String,
    /// Other services this one calls over gRPC.
    pub calls: Vec<String>,
    /// The relational store: CRUD tables, the CQS event + state tables, or the CQRS
    /// read model.
    pub store: Option<Store>,
    /// CQRS only: where events are appended.
    pub event_store: Option<Store>,
    pub messaging: Option<Messaging>,
    /// Every operation in spec order: CRUD use cases, ES commands then queries.
    pub operations: Vec<Operation>,
    /// ES only.
    pub events: Vec<Event>,
    /// ES only: events of other services that trigger a command here.
    pub subscriptions: Vec<Subscription>,
    /// The proto package of this service.
    pub proto: ProtoPackage,
    /// The command that gives an unowned instance to its first user (`owned_by`).
    pub claim: Option<String>,
    pub span: Span,
}

impl Service {
    pub fn is_event_sourced(&self) -> bool {
        self.pattern != Pattern::Crud
    }
    pub fn operation(&self, name: &str) -> Option<&Operation> {
        self.operations.iter().find(|o| o.name == name)
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Messaging {
    pub topic: String,
}

#[derive(Debug, Clone, Serialize, Copy, PartialEq, Eq)]
pub enum OperationKind {
    /// CRUD: paginated list.
    List,
    /// CRUD: one by id.
    Get,
    Create,
    Update,
    Delete,
    /// CRUD: hand-written behaviour with declared input and output.
    Custom,
    /// CRUD: many by id in one call. Not in the spec: generated beside every `get`, for
    /// callers that resolve many references at once (the BFF's loaders).
    BatchGet,
    /// ES: appends events.
    Command,
    /// ES: reads state.
    Query,
}

impl OperationKind {
    /// Whether calling it changes nothing (a query for GraphQL, safe to retry).
    pub fn is_read(self) -> bool {
        matches!(
            self,
            OperationKind::List
                | OperationKind::Get
                | OperationKind::BatchGet
                | OperationKind::Query
        )
    }
}

#[derive(Debug, Clone, Serialize, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Exposed through the BFF to anyone, logged in or not.
    Public,
    /// Exposed through the BFF to a logged-in subject, for what is theirs.
    Customer,
    /// Exposed through the BFF for shop staff.
    BackOffice,
    /// Only other services call it.
    Internal,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Operation {
    /// PascalCase, e.g. `ViewProducts`; also the RPC name.
    pub name: String,
    pub doc: Option<String>,
    pub kind: OperationKind,
    pub audience: Audience,
    /// Safe to retry: reads, and writes declared idempotent. Envoy retries only these.
    pub idempotent: bool,
    /// Input fields (each a copy of the entity/param field it names, renumbered).
    pub input: Vec<Field>,
    /// The entity returned, if any.
    pub output: Option<String>,
    /// Events a command emits.
    pub emits: Vec<String>,
    /// A command's references that must exist before it appends.
    pub exists: Vec<ExistsCheck>,
    /// List only.
    pub page_size: Option<PageSize>,
    /// List only: equality filters (field names of the entity).
    pub filter: Vec<String>,
    /// List only: the stable sort order.
    pub order_by: Vec<IndexColumn>,
    /// Which process serves it (deployable name).
    pub deployable: String,
    /// Proto service and message names.
    pub rpc: Rpc,
    pub span: Span,
}

impl Operation {
    /// A write that is not safe to repeat takes an optional idempotency key: a retry
    /// with the same key gets the first answer instead of a second effect.
    pub fn takes_idempotency_key(&self) -> bool {
        !self.idempotent
            && matches!(
                self.kind,
                OperationKind::Create | OperationKind::Custom | OperationKind::Command
            )
    }
}

#[derive(Debug, Clone, Serialize, Copy, PartialEq, Eq)]
pub struct PageSize {
    pub default: u32,
    pub max: u32,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Event {
    pub name: String,
    pub doc: Option<String>,
    pub fields: Vec<Field>,
    /// Payload schema version (1 until the payload changes; the spec lock counts).
    pub version: u32,
    /// The payloads of the older versions, oldest first (from the spec lock).
    pub history: Vec<EventSchema>,
    pub span: Span,
}

/// The payload of one schema version of an event.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EventSchema {
    pub version: u32,
    pub fields: Vec<EventSchemaField>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EventSchemaField {
    pub name: String,
    pub ty: FieldType,
    pub optional: bool,
    /// The name this field had in the version before.
    pub renamed_from: Option<String>,
    pub default: Option<DefaultValue>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Subscription {
    pub service: String,
    pub event: String,
    pub command: String,
    pub span: Span,
}

/// A reference in a command's input that must name an existing entity: asked of the
/// service that owns the entity (one this service `calls`), with its `get` use case,
/// after the decision and before the append.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ExistsCheck {
    /// The input field (`product_id`) and the entity it refers to (`Product`).
    pub field: String,
    pub entity: String,
    pub optional: bool,
    /// The owning service (`product`) and its get RPC; filled once every service is
    /// lowered.
    pub service: String,
    pub get: Option<Rpc>,
    pub span: Span,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Rpc {
    /// The proto service this RPC belongs to, e.g. `ProductService`.
    pub service: String,
    pub method: String,
    pub request: String,
    pub response: String,
}

/// Everything in one `.proto` file: `shop.<service>.v1`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProtoPackage {
    /// `shop.product.v1`.
    pub package: String,
    /// `shop/product/v1/product.proto`.
    pub file: String,
    pub imports: Vec<String>,
    pub services: Vec<ProtoService>,
    /// In emission order.
    pub messages: Vec<Message>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProtoService {
    pub name: String,
    pub doc: Option<String>,
    pub methods: Vec<Rpc>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Message {
    pub name: String,
    pub doc: Option<String>,
    pub fields: Vec<MessageField>,
    /// A `oneof` (used for event envelopes): name and its members.
    pub oneof: Option<(String, Vec<MessageField>)>,
    /// Numbers and names no longer used (see the spec lock).
    pub reserved_numbers: Vec<u32>,
    pub reserved_names: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MessageField {
    pub name: String,
    pub ty: ProtoType,
    pub label: Label,
    pub number: u32,
    pub doc: Option<String>,
    /// What to validate on input: the spec type and constraints this field came from.
    pub check: Option<Check>,
    /// The spec field's previous name: the lock gives this field that name's number.
    pub renamed_from: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Check {
    pub ty: FieldType,
    pub constraints: Constraints,
}

#[derive(Debug, Clone, Serialize, Copy, PartialEq, Eq)]
pub enum Label {
    Required,
    Optional,
    Repeated,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub enum ProtoType {
    String,
    Int32,
    Int64,
    Uint32,
    Bool,
    Timestamp,
    /// A message in the same package.
    Message(String),
}

impl ProtoType {
    pub fn proto_name(&self) -> String {
        match self {
            ProtoType::String => "string".into(),
            ProtoType::Int32 => "int32".into(),
            ProtoType::Int64 => "int64".into(),
            ProtoType::Uint32 => "uint32".into(),
            ProtoType::Bool => "bool".into(),
            ProtoType::Timestamp => "google.protobuf.Timestamp".into(),
            ProtoType::Message(m) => m.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Bff {
    pub queries: Vec<BffOperation>,
    pub mutations: Vec<BffOperation>,
    /// What the edge (the BFF's Envoy, and the BFF itself) accepts from a client.
    pub limits: EdgeLimits,
    /// `bff.storefront`: the folder of the hand-written storefront, relative to the
    /// project root (`services/shop/web`), with `/` separators; its files are compiled
    /// into the BFF.
    pub storefront: Option<String>,
}

/// `bff.limits`: the largest request body and the longest a request may take.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct EdgeLimits {
    pub max_body_bytes: u64,
    pub request_timeout_ms: u64,
}

impl EdgeLimits {
    pub const DEFAULT: EdgeLimits = EdgeLimits {
        max_body_bytes: 100 * 1024,
        request_timeout_ms: 15_000,
    };
    /// The largest values a spec may ask for.
    pub const MAX: EdgeLimits = EdgeLimits {
        max_body_bytes: 64 * 1024 * 1024,
        request_timeout_ms: 300_000,
    };
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BffOperation {
    /// The operation name as in the spec (`ViewProducts`).
    pub operation: String,
    /// The service that serves it.
    pub service: String,
    /// camelCase GraphQL field name (`viewProducts`).
    pub field: String,
    pub span: Span,
}

/// The BFF's GraphQL API, decided once (`graphql_model`) from the exposed operations:
/// the SDL and the BFF's generated resolvers are both rendered from it.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct GraphqlApi {
    /// The `Query` fields (a placeholder `ok` when nothing is exposed as a query).
    pub queries: Vec<RootField>,
    pub mutations: Vec<RootField>,
    /// Every object type but `Query` and `Mutation`, in schema order: entities,
    /// connections, `PageInfo`, `DeletePayload`, command payloads.
    pub objects: Vec<ObjectType>,
    /// Every input type, in schema order: operation inputs, then owned children's.
    pub inputs: Vec<InputType>,
    /// The deployables the BFF calls, in first-use order.
    pub upstreams: Vec<GraphqlUpstream>,
    /// How relation fields fetch an entity by id: one per entity that an exposed get
    /// (or an ES query taking just its id) returns.
    pub lookups: Vec<Lookup>,
    /// With `auth:`: the identity deployable, whose `keel.auth.v1.Auth` the BFF calls
    /// for sessions and keys (one of `upstreams`).
    pub identity: Option<String>,
}

impl GraphqlApi {
    pub fn is_empty(&self) -> bool {
        self.queries.iter().all(|q| q.call.is_none()) && self.mutations.is_empty()
    }
    /// The object type of an entity.
    pub fn entity(&self, entity: &str) -> Option<&ObjectType> {
        self.objects
            .iter()
            .find(|o| o.source == ObjectSource::Entity(entity.to_string()))
    }
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub enum GraphqlScalar {
    Id,
    String,
    Int,
    Boolean,
    /// Integer minor units, 64-bit.
    Money,
    /// RFC 3339, UTC.
    DateTime,
}

impl GraphqlScalar {
    pub fn name(self) -> &'static str {
        match self {
            GraphqlScalar::Id => "ID",
            GraphqlScalar::String => "String",
            GraphqlScalar::Int => "Int",
            GraphqlScalar::Boolean => "Boolean",
            GraphqlScalar::Money => "Money",
            GraphqlScalar::DateTime => "DateTime",
        }
    }
    pub fn of(ty: &FieldType) -> GraphqlScalar {
        match ty {
            FieldType::Uuid | FieldType::Ref(_) => GraphqlScalar::Id,
            FieldType::String | FieldType::Text | FieldType::Email => GraphqlScalar::String,
            FieldType::Int => GraphqlScalar::Int,
            FieldType::Money => GraphqlScalar::Money,
            FieldType::Timestamp => GraphqlScalar::DateTime,
            FieldType::Bool => GraphqlScalar::Boolean,
        }
    }
}

/// `Name`, `Name!` or `[Name!]!` (list items are never null).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct GraphqlTypeRef {
    pub name: String,
    pub list: bool,
    pub non_null: bool,
}

impl fmt::Display for GraphqlTypeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bang = if self.non_null { "!" } else { "" };
        if self.list {
            write!(f, "[{}!]{bang}", self.name)
        } else {
            write!(f, "{}{bang}", self.name)
        }
    }
}

/// An argument of a field, or a field of an input type.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GraphqlArg {
    pub name: String,
    pub doc: Option<String>,
    pub ty: GraphqlTypeRef,
    /// What stands in when a client omits it: the spec field's `default:`, on the
    /// fields of create inputs (but timestamps).
    pub default: Option<DefaultValue>,
}

/// A field of `Query` or `Mutation`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RootField {
    pub name: String,
    pub doc: Option<String>,
    pub args: Vec<GraphqlArg>,
    pub ty: GraphqlTypeRef,
    /// The operation it runs; `None` for the placeholder `Query.ok` (always true)
    /// and the session fields.
    pub call: Option<OperationCall>,
    /// `login`, `refreshSession`, `logout`: answered by the identity's `keel.auth.v1.Auth`.
    pub session: Option<SessionField>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub enum SessionField {
    Login,
    Refresh,
    Logout,
}

/// What a root field's resolver checks before its call (`auth:`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Guard {
    pub audience: Audience,
    /// Request fields naming an instance that must be the caller's.
    pub owned: Vec<OwnedCheck>,
    /// The register command: the request field with the login email; the `password`
    /// argument becomes the new subject's credentials after the call.
    pub credentials: Option<String>,
    /// The forget command: the caller's credentials and sessions end before the call.
    pub forget: bool,
}

/// The instance a request field names belongs to the caller, or is claimed by them.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OwnedCheck {
    /// The request field with its id (`cart_id`).
    pub field: String,
    pub entity: String,
    /// The GraphQL field of the entity's object naming its owner (`customerId`).
    pub owner: String,
    /// How an instance nobody owns yet becomes the caller's; without it, it is refused.
    pub claim: Option<ClaimCall>,
}

/// The command that gives an instance its owner: `id_field` and `owner_field` are set.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClaimCall {
    pub service: String,
    pub deployable: String,
    pub rpc: Rpc,
    pub id_field: String,
    pub owner_field: String,
}

/// One RPC a resolver makes: how its request is filled and what becomes of its response.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OperationCall {
    /// The exposed operation (`ViewOrders`) and its service (`order`).
    pub operation: String,
    pub service: String,
    /// The process that serves it (`cart-query`).
    pub deployable: String,
    pub rpc: Rpc,
    /// Values are read from the fields of the `input` argument, not from the arguments.
    pub input: bool,
    /// Every field of the request message, in message order.
    pub request: Vec<RequestField>,
    pub output: CallOutput,
    /// Root fields of a system with `auth:`: who may call, and what must be theirs.
    pub guard: Option<Guard>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RequestField {
    /// The proto field (`customer_id`), its type and label.
    pub field: String,
    pub ty: ProtoType,
    pub label: Label,
    pub source: ValueSource,
}

/// Where a request field's value comes from.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub enum ValueSource {
    /// An argument (or `input` field) of that name and type; `expectedVersion` too.
    Arg {
        name: String,
        ty: GraphqlTypeRef,
        /// When the client may omit it, the value then sent.
        default: Option<DefaultValue>,
    },
    /// `first`: the page size, 0 (the service's default) when omitted.
    PageSize { arg: String },
    /// `after`: the page token, empty when omitted.
    PageToken { arg: String },
    /// The caller's subject id; the argument, if given, must name the caller.
    Caller { arg: String },
    /// A field of the parent object (a relation's foreign key: the parent's `id`).
    Parent { field: String },
    /// The key a lookup was asked for.
    Key,
    /// Owned children given as input objects: each an `entity` message whose
    /// read-only fields (`defaults`) are left at their defaults.
    Children {
        arg: String,
        entity: String,
        ty: GraphqlTypeRef,
        fields: Vec<RequestField>,
        defaults: bool,
    },
}

/// What a call's response becomes.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub enum CallOutput {
    /// The entity in response field `field`; an aggregate's `version` comes from the
    /// response's `version`.
    Entity {
        entity: String,
        field: String,
        version: bool,
        absent: Absent,
    },
    /// `<Entity>Connection` from the repeated response field `field` and `next_page_token`.
    Connection { entity: String, field: String },
    /// `<Op>Payload { <aggregate>Id, version }` from the response's `id` field and `version`.
    CommandPayload { id: String, id_name: String },
    /// `DeletePayload { id }` with the request's `key` field.
    Deleted { key: String },
    /// `Boolean!`: true once the call succeeded (a custom operation without output).
    Done,
}

/// What an absent entity (or NOT_FOUND) means.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub enum Absent {
    /// Null with a `NOT_FOUND` error naming the request's `key` field (reads).
    NotFound { key: Option<String> },
    /// Null without an error (a relation whose target is gone).
    Null,
    /// An internal error: the service must send it (writes).
    Error,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ObjectType {
    pub name: String,
    pub doc: Option<String>,
    /// Why a relation has no field (`#` lines in the SDL).
    pub notes: Vec<String>,
    pub source: ObjectSource,
    pub fields: Vec<ObjectField>,
}

/// What an object type's value is made from.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub enum ObjectSource {
    /// The proto message of the entity.
    Entity(String),
    /// Built by the resolver that returns it.
    Connection(String),
    PageInfo,
    DeletePayload,
    CommandPayload(String),
    /// `Session`: built by the session fields' resolvers.
    Session,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ObjectField {
    pub name: String,
    pub doc: Option<String>,
    pub args: Vec<GraphqlArg>,
    pub ty: GraphqlTypeRef,
    pub resolve: FieldSource,
}

/// How an object field gets its value.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub enum FieldSource {
    /// The proto message's field of that name.
    Message {
        field: String,
        scalar: GraphqlScalar,
    },
    /// The owned children in the message's field of that name (repeated, or one).
    Owned { field: String, entity: String },
    /// The version of the aggregate, from the response that carried it.
    Version,
    /// Put in the value by the resolver of the field that returned the object.
    Built,
    /// Another call.
    Relation(RelationCall),
}

/// A field resolved by another call.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub enum RelationCall {
    /// The `entity` whose id the parent's `key` field holds, through its lookup.
    ById { key: String, entity: String },
    /// A call with the parent's id: a list filtered by it, or a query by it alone.
    Call(Box<OperationCall>),
}

/// How relation fields fetch an entity by id: one call per distinct id per request,
/// run concurrently; NOT_FOUND means gone.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Lookup {
    pub entity: String,
    /// The exposed query it uses (`getProduct`).
    pub field: String,
    pub call: OperationCall,
    /// The service's batch get of the entity, when it has one: the loader then fetches
    /// every id a request gathers in one call instead of one call per id.
    pub batch: Option<BatchCall>,
}

/// A `BatchGet…` RPC: `ids` in, the repeated `items` field out.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BatchCall {
    pub rpc: Rpc,
    pub items: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct InputType {
    pub name: String,
    pub doc: Option<String>,
    pub fields: Vec<GraphqlArg>,
}

/// A deployable the BFF calls, and how it is configured.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GraphqlUpstream {
    /// `cart-query`.
    pub deployable: String,
    /// The service whose generated crate has its client (`cart`).
    pub service: String,
    /// The one proto service the BFF calls there (`CartQueryService`), and its package.
    pub proto_service: String,
    pub package: String,
    /// The environment variable of its URL (`CART_QUERY_URL`).
    pub env: String,
}

#[derive(Debug, Clone, Serialize, Copy, PartialEq, Eq)]
pub enum Role {
    /// The GraphQL gateway.
    Bff,
    /// A gRPC server (CRUD, CQS, or a CQRS command or query side).
    Grpc,
    /// CQRS: the command side.
    Command,
    /// CQRS: the query side.
    Query,
    /// CQRS: consumes events and writes the read model; serves only health.
    EventHandler,
}

/// One process, with its own Envoy sidecar.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Deployable {
    /// kebab-case, unique: `bff`, `product`, `cart-command`, `cart-event-handler`.
    pub name: String,
    /// The service it belongs to (`bff` for the gateway).
    pub service: String,
    pub role: Role,
    /// The proto services it serves (empty for bff and event handlers).
    pub grpc_services: Vec<String>,
    /// Deployables it calls through their Envoys.
    pub upstreams: Vec<String>,
    /// Databases it connects to.
    pub databases: Vec<String>,
    /// Event store it connects to.
    pub event_store: Option<String>,
    /// Topics it produces to / consumes from.
    pub produces: Vec<String>,
    pub consumes: Vec<String>,
    /// The cargo package that builds it, and its binary (see `layout::program`).
    pub package: String,
    pub binary: String,
    /// Command-line arguments: `--role query` for a CQRS process.
    pub args: Vec<String>,
    /// What it reads from its environment, in the order deploy files list them.
    pub settings: Vec<Setting>,
    /// Its local ports are each base + slot; the spec lock pins the slot by name.
    pub slot: u16,
    /// Ports on one machine (the `local` target); containers use `ports::*` instead.
    pub local: LocalPorts,
}

/// One environment variable a deployable reads.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Setting {
    /// `LISTEN_ADDR`, `DATABASE_URL`, `PRODUCT_URL`.
    pub env: String,
    pub kind: SettingKind,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub enum SettingKind {
    /// The address the process listens on.
    Listen,
    /// The URL of the relational database named here.
    Database(String),
    /// The URL of the event store named here.
    EventStore(String),
    /// The message bus (Kafka, or the embedded log).
    Bus,
    /// The URL of the named upstream deployable, through its Envoy.
    Upstream(String),
    /// The name of the event store's database on the MongoDB wire (default here).
    EventStoreDatabase(String),
    /// The name of a topic it produces to or consumes from (default here).
    Topic(String),
    /// The name of a consumer group it reads in (default here).
    ConsumerGroup(String),
}

#[derive(Debug, Clone, Serialize, Copy, PartialEq, Eq)]
pub struct LocalPorts {
    /// The process itself (gRPC, or HTTP for the BFF).
    pub app: u16,
    /// Its Envoy's listener.
    pub envoy: u16,
    /// Its Envoy's admin interface.
    pub envoy_admin: u16,
}

/// Ports inside containers (compose and Kubernetes), the same for every deployable.
pub mod ports {
    /// The process itself.
    pub const APP: u16 = 50051;
    /// The BFF's HTTP port.
    pub const BFF_HTTP: u16 = 8081;
    /// Every Envoy's listener.
    pub const ENVOY: u16 = 8080;
    /// Every Envoy's admin interface (health checks, metrics).
    pub const ENVOY_ADMIN: u16 = 9901;
    pub const POSTGRES: u16 = 5432;
    pub const MONGODB: u16 = 27017;
    pub const KAFKA: u16 = 9092;
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Database {
    /// `product`, `order`, `cart_read`, `user`.
    pub name: String,
    pub service: String,
    pub kind: DatabaseKind,
    /// The tables, in creation order (referenced tables first).
    pub tables: Vec<Table>,
}

#[derive(Debug, Clone, Serialize, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    /// CRUD tables.
    Crud,
    /// CQS+ES: event table, state tables, outbox.
    EventsAndState,
    /// CQRS+ES read model: projected state tables and projection checkpoints.
    ReadModel,
    /// CQRS+ES event store in SQL (the relational form of the document event store):
    /// commits, checkpoints, leases. Not a PostgreSQL database of the deploy targets,
    /// which run the document store.
    EventStore,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Table {
    /// snake_case plural, e.g. `products`, `order_details`.
    pub name: String,
    pub doc: Option<String>,
    pub columns: Vec<Column>,
    pub primary_key: Vec<String>,
    pub unique: Vec<Vec<String>>,
    pub indexes: Vec<Vec<IndexColumn>>,
    pub foreign_keys: Vec<ForeignKey>,
    /// Table-level CHECK expressions beyond per-column ones.
    pub checks: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Column {
    pub name: String,
    pub sql_type: SqlType,
    pub nullable: bool,
    /// A SQL default expression.
    pub default: Option<String>,
    /// CHECK expressions on this column alone.
    pub checks: Vec<String>,
    /// Becomes `COMMENT ON COLUMN`.
    pub doc: Option<String>,
    /// The column's previous name, when the spec renames its field.
    pub renamed_from: Option<String>,
}

#[derive(Debug, Clone, Serialize, Copy, PartialEq, Eq)]
pub enum SqlType {
    Uuid,
    Text,
    Integer,
    BigInt,
    BigSerial,
    Boolean,
    TimestampTz,
    Jsonb,
    Bytea,
}

impl SqlType {
    pub const ALL: [SqlType; 9] = [
        SqlType::Uuid,
        SqlType::Text,
        SqlType::Integer,
        SqlType::BigInt,
        SqlType::BigSerial,
        SqlType::Boolean,
        SqlType::TimestampTz,
        SqlType::Jsonb,
        SqlType::Bytea,
    ];
    pub fn postgres(self) -> &'static str {
        match self {
            SqlType::Uuid => "uuid",
            SqlType::Text => "text",
            SqlType::Integer => "integer",
            SqlType::BigInt => "bigint",
            SqlType::BigSerial => "bigserial",
            SqlType::Boolean => "boolean",
            SqlType::TimestampTz => "timestamptz",
            SqlType::Jsonb => "jsonb",
            SqlType::Bytea => "bytea",
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ForeignKey {
    pub columns: Vec<String>,
    pub table: String,
    pub references: Vec<String>,
    pub on_delete_cascade: bool,
}

/// A MongoDB-wire event store (document per commit).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EventStore {
    /// Database name, e.g. `cart_events`.
    pub database: String,
    pub service: String,
    pub collections: Vec<Collection>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Collection {
    pub name: String,
    pub doc: String,
    pub indexes: Vec<MongoIndex>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MongoIndex {
    pub name: String,
    /// Keys with 1 (ascending) or -1 (descending).
    pub keys: Vec<(String, i32)>,
    pub unique: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Topic {
    pub name: String,
    pub service: String,
    /// Messages are keyed by the aggregate id, so one stream stays in order.
    pub key: String,
    pub partitions: u32,
}
