//! What runs where: deployables and their ports, databases and tables, event stores,
//! topics. Derived from the lowered services; every deploy emitter reads these.

use heck::ToShoutySnakeCase;

use crate::ir::*;
use crate::names;

/// Local ports are `BASE + slot`: the app, its Envoy, its admin. Below Linux's ephemeral
/// range (32768-60999), so an outgoing connection never takes one as its source port
/// before the service binds it.
const LOCAL_APP_BASE: u16 = 20100;
const LOCAL_ENVOY_BASE: u16 = 20200;
const LOCAL_ADMIN_BASE: u16 = 20300;
/// Slots per range: one more would give an app an Envoy's port.
pub const LOCAL_SLOTS: u16 = LOCAL_ENVOY_BASE - LOCAL_APP_BASE;

/// The local ports of port slot `slot`.
pub fn local_ports(slot: u16) -> LocalPorts {
    LocalPorts {
        app: LOCAL_APP_BASE + slot,
        envoy: LOCAL_ENVOY_BASE + slot,
        envoy_admin: LOCAL_ADMIN_BASE + slot,
    }
}

/// Whether the generator writes the service whole, server included: CRUD without a
/// `kind: custom` use case (whose behaviour only hand-written code can supply).
pub fn generated_whole(svc: &Service, entities: &[Entity]) -> bool {
    svc.pattern == Pattern::Crud && !needs_rules(svc, entities)
}

/// Whether a crud service needs hand-written rules: a `kind: custom` use case, or a
/// computed field of its entity (see [`is_computed`]).
pub fn needs_rules(svc: &Service, entities: &[Entity]) -> bool {
    svc.operations
        .iter()
        .any(|o| o.kind == OperationKind::Custom)
        || entities
            .iter()
            .find(|e| e.name == svc.entity)
            .is_some_and(|e| e.fields.iter().any(is_computed))
}

/// A readonly field whose value the spec cannot give (not the id, not a timestamp, no
/// `default:`, not optional): a hand-written rule computes it.
pub fn is_computed(f: &Field) -> bool {
    f.readonly
        && f.name != "id"
        && f.ty != FieldType::Timestamp
        && f.default.is_none()
        && !f.optional
}

/// The cargo package and the binary that run the deployables of `service` (`None`: the
/// BFF: the generated `<system>-bff`, binary `bff`). The binary is `<service>-service`; its package is the
/// generated crate `<system>-<service>` when the service is generated whole, else the
/// hand-written crate named like the binary.
pub fn program(system: &str, service: Option<&Service>, entities: &[Entity]) -> (String, String) {
    let Some(svc) = service else {
        return (format!("{system}-bff"), "bff".into());
    };
    let kebab = names::kebab(&svc.name);
    let binary = format!("{kebab}-service");
    let package = if generated_whole(svc, entities) {
        format!("{system}-{kebab}")
    } else {
        binary.clone()
    };
    (package, binary)
}

/// `PRODUCT_URL` for the deployable `product`, `CART_QUERY_URL` for `cart-query`.
pub fn upstream_var(deployable: &str) -> String {
    format!("{}_URL", deployable.to_shouty_snake_case())
}

/// The HTTP paths the BFF serves (`keel::bff`): the storefront (`/`), GraphQL (GET and
/// POST), its health, the keys it signs tokens with, the GraphQL console, the
/// back-office and the web assets. A path that ends in `/` (other than `/` itself) is a
/// prefix: everything under it ([`is_prefix`]). Its Envoy, the system's only public
/// listener, routes these and answers 404 to anything else.
pub const BFF_PATHS: [&str; 7] = [
    "/",
    "/graphql",
    "/healthz",
    "/.well-known/jwks.json",
    "/graphiql",
    "/back-office/",
    "/assets/",
];

/// Whether an entry of [`BFF_PATHS`] stands for every path under it.
pub fn is_prefix(path: &str) -> bool {
    path.len() > 1 && path.ends_with('/')
}

/// The BFF's own copy of the edge limits (`bff.limits`), by the variables
/// `keel::bff::Limits` reads: what the deploy files set in the BFF's environment.
pub fn bff_limit_env(limits: &EdgeLimits) -> [(&'static str, u64); 2] {
    [
        ("GRAPHQL_MAX_BODY_BYTES", limits.max_body_bytes),
        ("GRAPHQL_REQUEST_TIMEOUT_MS", limits.request_timeout_ms),
    ]
}

/// The deployables that call `deployable` (those whose `upstreams` name it), in
/// deployable order: who may connect to its Envoy.
pub fn callers<'a>(system: &'a System, deployable: &str) -> Vec<&'a str> {
    system
        .deployables
        .iter()
        .filter(|d| d.upstreams.iter().any(|u| u == deployable))
        .map(|d| d.name.as_str())
        .collect()
}

/// What every generated Envoy enforces besides the spec's edge limits (see
/// [`PROXY`]); durations as Envoy writes them.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct ProxyLimits {
    /// Time for a client to send all of a request's headers (slow-header attacks).
    pub request_headers_timeout: &'static str,
    /// A stream with no bytes either way for this long is reset.
    pub stream_idle_timeout: &'static str,
    /// A downstream or upstream connection with no stream for this long is closed.
    pub connection_idle_timeout: &'static str,
    pub max_request_headers_kb: u32,
    /// Circuit breakers of the cluster that holds the app (one process).
    pub max_connections: u32,
    pub max_pending_requests: u32,
    pub max_requests: u32,
    pub max_retries: u32,
    /// The Envoy container's memory limit (Kubernetes), and the overload manager's
    /// heap ceiling inside it: the rest is for what is not heap (code, stacks).
    pub memory_limit_mib: u64,
    pub max_heap_bytes: u64,
    /// Fractions of the heap ceiling at which Envoy returns memory to the system, and
    /// answers new requests 503.
    pub shrink_heap_at: f64,
    pub stop_accepting_requests_at: f64,
    /// Open downstream connections, all listeners together.
    pub max_downstream_connections: u32,
    /// The edge only (untrusted clients): Envoy's recommended edge values for the
    /// bytes buffered per connection and HTTP/2 streams and windows.
    pub edge_connection_buffer_bytes: u32,
    pub edge_max_concurrent_streams: u32,
    pub edge_initial_stream_window_size: u32,
    pub edge_initial_connection_window_size: u32,
}

/// Envoy's limits, one set for every proxy. Each Envoy fronts one process: at most 512
/// requests in flight to it (an HTTP/1.1 upstream, the BFF, needs a connection per
/// request, so as many connections), 128 more waiting, and 32 concurrent retries, so
/// that retries add at most a sixteenth to the load of a process that is failing.
/// Beyond these Envoy answers 503 at once (gRPC `UNAVAILABLE`) instead of queueing
/// behind a saturated process until the route's timeout. The heap ceiling is three
/// quarters of the sidecar's 128 MiB; 1024 connections with their 32 KiB edge buffers
/// each way fit in 64 MiB of it.
pub const PROXY: ProxyLimits = ProxyLimits {
    request_headers_timeout: "10s",
    stream_idle_timeout: "60s",
    connection_idle_timeout: "300s",
    max_request_headers_kb: 32,
    max_connections: 512,
    max_pending_requests: 128,
    max_requests: 512,
    max_retries: 32,
    memory_limit_mib: 128,
    max_heap_bytes: 96 * 1024 * 1024,
    shrink_heap_at: 0.95,
    stop_accepting_requests_at: 0.98,
    max_downstream_connections: 1024,
    edge_connection_buffer_bytes: 32 * 1024,
    edge_max_concurrent_streams: 100,
    edge_initial_stream_window_size: 64 * 1024,
    edge_initial_connection_window_size: 1024 * 1024,
};
const _: () = assert!(PROXY.max_heap_bytes < PROXY.memory_limit_mib * 1024 * 1024);

/// Command-line arguments: the role of a CQRS process, nothing otherwise.
fn args(role: Role) -> Vec<String> {
    let role = match role {
        Role::Command => "command",
        Role::Query => "query",
        Role::EventHandler => "event-handler",
        Role::Bff | Role::Grpc => return Vec::new(),
    };
    vec!["--role".to_string(), role.to_string()]
}

/// `CART_TOPIC`: the variable that names service `service`'s topic.
pub fn topic_var(service: &str) -> String {
    format!("{}_TOPIC", service.to_shouty_snake_case())
}

/// `USER_EVENTS_GROUP`: the variable that names the consumer group in which a
/// subscriber's command side reads service `service`'s events.
pub fn events_group_var(service: &str) -> String {
    format!("{}_EVENTS_GROUP", service.to_shouty_snake_case())
}

/// `cart-command-user-events`: the default of that group for subscriber `subscriber`.
pub fn events_group(subscriber: &str, service: &str) -> String {
    format!(
        "{}-command-{}-events",
        subscriber.replace('_', "-"),
        service.replace('_', "-")
    )
}

/// The variable that names a CQRS event handler's consumer group.
pub const HANDLER_GROUP_VAR: &str = "CONSUMER_GROUP";

/// `cart-event-handler`: the default of that group.
pub fn handler_group(service: &str) -> String {
    format!("{}-event-handler", service.replace('_', "-"))
}

/// The variable that names the event store's database on the MongoDB wire.
pub const EVENT_STORE_DATABASE_VAR: &str = "EVENT_STORE_DATABASE";

/// What a deployable reads from its environment, from what it connects to; `owner`
/// gives the service whose topic a topic name is.
fn settings(d: &Deployable, owner: impl Fn(&str) -> Option<String>) -> Vec<Setting> {
    let setting = |env: &str, kind: SettingKind| Setting {
        env: env.to_string(),
        kind,
    };
    let mut out = vec![setting("LISTEN_ADDR", SettingKind::Listen)];
    if let Some(db) = d.databases.first() {
        out.push(setting("DATABASE_URL", SettingKind::Database(db.clone())));
    }
    if let Some(store) = &d.event_store {
        out.push(setting(
            "EVENT_STORE_URL",
            SettingKind::EventStore(store.clone()),
        ));
        out.push(setting(
            EVENT_STORE_DATABASE_VAR,
            SettingKind::EventStoreDatabase(store.clone()),
        ));
    }
    if !d.produces.is_empty() || !d.consumes.is_empty() {
        out.push(setting("BUS_URL", SettingKind::Bus));
    }
    for topic in d.produces.iter().chain(&d.consumes) {
        let Some(service) = owner(topic) else {
            continue;
        };
        out.push(setting(
            &topic_var(&service),
            SettingKind::Topic(topic.clone()),
        ));
        if !d.produces.contains(topic) {
            out.push(if service == d.service {
                setting(
                    HANDLER_GROUP_VAR,
                    SettingKind::ConsumerGroup(handler_group(&service)),
                )
            } else {
                setting(
                    &events_group_var(&service),
                    SettingKind::ConsumerGroup(events_group(&d.service, &service)),
                )
            });
        }
    }
    for up in &d.upstreams {
        out.push(setting(
            &upstream_var(up),
            SettingKind::Upstream(up.clone()),
        ));
    }
    out
}

pub fn derive(system: &mut System) {
    system.databases = databases(system);
    system.event_stores = event_stores(system);
    system.topics = system
        .services
        .iter()
        .filter_map(|s| {
            s.messaging.as_ref().map(|m| Topic {
                name: m.topic.clone(),
                service: s.name.clone(),
                key: format!("{}_id", names::snake(&s.entity)),
                partitions: 3,
            })
        })
        .collect();
    system.deployables = deployables(system);
}

pub fn database_name(system: &str, service: &Service) -> String {
    match service.pattern {
        Pattern::CqrsEs => format!("{system}_{}_read", service.name),
        _ => format!("{system}_{}", service.name),
    }
}

/// A deployable with nothing decided yet but its name, service and role.
fn bare(name: String, service: &str, role: Role) -> Deployable {
    Deployable {
        name,
        service: service.to_string(),
        role,
        grpc_services: Vec::new(),
        upstreams: Vec::new(),
        databases: Vec::new(),
        event_store: None,
        produces: Vec::new(),
        consumes: Vec::new(),
        package: String::new(),
        binary: String::new(),
        args: Vec::new(),
        settings: Vec::new(),
        slot: 0,
        local: local_ports(0),
    }
}

fn deployables(system: &System) -> Vec<Deployable> {
    let mut out = Vec::new();
    let grpc_of = |svc: &Service| -> Vec<String> {
        match svc.pattern {
            Pattern::CqrsEs => vec![
                format!("{}-command", names::kebab(&svc.name)),
                format!("{}-query", names::kebab(&svc.name)),
            ],
            _ => vec![names::kebab(&svc.name)],
        }
    };
    let mut bff_upstreams: Vec<String> = Vec::new();
    for op in system.bff.queries.iter().chain(&system.bff.mutations) {
        if let Some(o) = system
            .services
            .iter()
            .find_map(|s| s.operation(&op.operation))
            && !bff_upstreams.contains(&o.deployable)
        {
            bff_upstreams.push(o.deployable.clone());
        }
    }
    out.push(Deployable {
        upstreams: bff_upstreams,
        ..bare("bff".into(), "bff", Role::Bff)
    });
    for svc in &system.services {
        let mut upstreams: Vec<String> = Vec::new();
        for c in &svc.calls {
            if let Some(other) = system.services.iter().find(|s| &s.name == c) {
                upstreams.extend(grpc_of(other));
            }
        }
        let topic = svc.messaging.as_ref().map(|m| m.topic.clone());
        let subscribed: Vec<String> = svc
            .subscriptions
            .iter()
            .filter_map(|sub| {
                system
                    .services
                    .iter()
                    .find(|s| s.name == sub.service)?
                    .messaging
                    .as_ref()
                    .map(|m| m.topic.clone())
            })
            .collect();
        let db = database_name(&system.name, svc);
        let proto_services = |pred: &dyn Fn(&Operation) -> bool| -> Vec<String> {
            let mut v: Vec<String> = Vec::new();
            for o in svc.operations.iter().filter(|o| pred(o)) {
                let full = format!("{}.{}", svc.proto.package, o.rpc.service);
                if !v.contains(&full) {
                    v.push(full);
                }
            }
            v
        };
        let base = |name: String, role: Role| bare(name, &svc.name, role);
        let k = names::kebab(&svc.name);
        match svc.pattern {
            Pattern::Crud | Pattern::CqsEs => {
                let mut d = base(k, Role::Grpc);
                d.grpc_services = proto_services(&|_| true);
                d.upstreams = upstreams;
                d.databases = vec![db];
                d.produces = topic.into_iter().collect();
                d.consumes = subscribed;
                out.push(d);
            }
            Pattern::CqrsEs => {
                let store = format!("{}_{}_events", system.name, svc.name);
                let mut c = base(format!("{k}-command"), Role::Command);
                c.grpc_services = proto_services(&|o| o.deployable == c.name);
                c.upstreams = upstreams;
                c.event_store = Some(store.clone());
                // The relay runs beside the command side: it tails the store it writes.
                c.produces = topic.iter().cloned().collect();
                c.consumes = subscribed;
                out.push(c);
                let mut q = base(format!("{k}-query"), Role::Query);
                q.grpc_services = proto_services(&|o| o.deployable == q.name);
                q.databases = vec![db.clone()];
                out.push(q);
                let mut h = base(format!("{k}-event-handler"), Role::EventHandler);
                h.databases = vec![db];
                h.event_store = Some(store);
                h.consumes = topic.into_iter().collect();
                out.push(h);
            }
        }
    }
    for (i, d) in out.iter_mut().enumerate() {
        let svc = system.services.iter().find(|s| s.name == d.service);
        (d.package, d.binary) = program(&system.name, svc, &system.entities);
        d.args = args(d.role);
        d.settings = settings(d, |topic| {
            system
                .services
                .iter()
                .find(|s| s.messaging.as_ref().is_some_and(|m| m.topic == topic))
                .map(|s| s.name.clone())
        });
        // Without a lock, slots follow deployable order; the lock pins them by name.
        d.slot = i as u16;
        d.local = local_ports(d.slot);
    }
    out
}

fn event_stores(system: &System) -> Vec<EventStore> {
    system
        .services
        .iter()
        .filter(|s| s.event_store == Some(Store::MongoDb))
        .map(|s| EventStore {
            database: format!("{}_{}_events", system.name, s.name),
            service: s.name.clone(),
            collections: vec![
                Collection {
                    name: "commits".into(),
                    doc: "One document per command: _id is the global, gap-free position; events[] holds the command's events.".into(),
                    indexes: vec![
                        MongoIndex {
                            name: "stream_commit_seq".into(),
                            keys: vec![("stream_id".into(), 1), ("commit_seq".into(), 1)],
                            unique: true,
                        },
                        MongoIndex {
                            name: "stream_commit_id".into(),
                            keys: vec![("stream_id".into(), 1), ("commit_id".into(), 1)],
                            unique: true,
                        },
                    ],
                },
                Collection {
                    name: "checkpoints".into(),
                    doc: "Per reader (relay, rebuild): the last position it has fully handled; _id is the reader's name.".into(),
                    indexes: Vec::new(),
                },
                Collection {
                    name: "leases".into(),
                    doc: "Who may run a singleton reader (the relay) and until when; _id is the reader's name.".into(),
                    indexes: Vec::new(),
                },
            ],
        })
        .collect()
}

fn databases(system: &System) -> Vec<Database> {
    let mut out = Vec::new();
    for svc in &system.services {
        let kind = match svc.pattern {
            Pattern::Crud => DatabaseKind::Crud,
            Pattern::CqsEs => DatabaseKind::EventsAndState,
            Pattern::CqrsEs => DatabaseKind::ReadModel,
        };
        let mut tables = Vec::new();
        if kind == DatabaseKind::EventsAndState {
            tables.push(events_table(svc));
        }
        let mut in_db: Vec<String> = Vec::new();
        entity_tables(
            system,
            svc,
            &svc.entity,
            None,
            kind,
            &mut tables,
            &mut in_db,
        );
        if kind == DatabaseKind::EventsAndState {
            tables.push(outbox_table());
        }
        if system.auth.as_ref().is_some_and(|a| a.service == svc.name) {
            tables.extend(auth_tables());
        }
        if kind == DatabaseKind::ReadModel {
            tables.push(deletions_table(&svc.entity));
            tables.push(parked_events_table());
            tables.push(states_table(&svc.entity));
        }
        out.push(Database {
            name: database_name(&system.name, svc),
            service: svc.name.clone(),
            kind,
            tables,
        });
    }
    // The relational twin of each document event store (same database name): what a
    // CQRS service uses when its event store URL is `postgres://` or `sqlite://`.
    for store in event_stores(system) {
        out.push(Database {
            name: store.database,
            service: store.service,
            kind: DatabaseKind::EventStore,
            tables: event_store_tables(),
        });
    }
    out
}

/// Tombstones of a read model: the streams a delete event removed from the view and the
/// version it was deleted at, so that an older event arriving late (a redelivery) cannot
/// bring a deleted row back.
fn deletions_table(entity: &str) -> Table {
    Table {
        name: format!("{}_deletions", names::snake(entity)),
        doc: Some(
            "Streams deleted from this view, at the version of their delete event: a late, older event cannot bring them back."
                .into(),
        ),
        columns: vec![
            Column {
                name: "id".into(),
                sql_type: SqlType::Uuid,
                nullable: false,
                default: None,
                checks: Vec::new(),
                doc: None,
                renamed_from: None,
            },
            Column {
                name: "version".into(),
                sql_type: SqlType::BigInt,
                nullable: false,
                default: None,
                checks: vec!["version > 0".into()],
                doc: None,
                renamed_from: None,
            },
        ],
        primary_key: vec!["id".into()],
        unique: Vec::new(),
        indexes: Vec::new(),
        foreign_keys: Vec::new(),
        checks: Vec::new(),
    }
}

/// Each stream's aggregate state (JSON) at the version the view's rows show: applying
/// an event folds it into this state with the aggregate's own `apply` and rewrites the
/// rows from it, so no SQL repeats what an event does.
fn states_table(entity: &str) -> Table {
    let col = |name: &str, sql_type: SqlType| Column {
        name: name.into(),
        sql_type,
        nullable: false,
        default: None,
        checks: Vec::new(),
        doc: None,
        renamed_from: None,
    };
    let mut version = col("version", SqlType::BigInt);
    version.checks = vec!["version > 0".into()];
    Table {
        name: format!("{}_states", names::snake(entity)),
        doc: Some("Each stream's aggregate state at the version its rows show.".into()),
        columns: vec![
            col("id", SqlType::Uuid),
            version,
            col("state", SqlType::Jsonb),
        ],
        primary_key: vec!["id".into()],
        unique: Vec::new(),
        indexes: Vec::new(),
        foreign_keys: Vec::new(),
        checks: Vec::new(),
    }
}

/// Events a read model could not apply (undecodable, or a version gap the event store
/// cannot fill): kept with the reason instead of blocking the stream or the partition.
fn parked_events_table() -> Table {
    let col = |name: &str, sql_type: SqlType, nullable: bool| Column {
        name: name.into(),
        sql_type,
        nullable,
        default: None,
        checks: Vec::new(),
        doc: None,
        renamed_from: None,
    };
    let mut parked_at = col("parked_at", SqlType::TimestampTz, false);
    parked_at.default = Some("now()".into());
    Table {
        name: "parked_events".into(),
        doc: Some(
            "Events this view could not apply, with the reason: an alert's audit trail and what `repair` retries."
                .into(),
        ),
        columns: vec![
            col("id", SqlType::Uuid, false),
            col("stream_id", SqlType::Uuid, true),
            col("version", SqlType::BigInt, true),
            col("source", SqlType::Text, false),
            col("reason", SqlType::Text, false),
            col("payload", SqlType::Bytea, false),
            parked_at,
        ],
        primary_key: vec!["id".into()],
        unique: Vec::new(),
        indexes: vec![vec![IndexColumn {
            field: "stream_id".into(),
            descending: false,
        }]],
        foreign_keys: Vec::new(),
        checks: Vec::new(),
    }
}

/// The event store's tables (the relational form of its collections): one row per
/// commit with a gap-free global `position`, reader checkpoints (and the positions a
/// reader gave up), and leases of singleton readers.
fn event_store_tables() -> Vec<Table> {
    let col = |name: &str, sql_type: SqlType, nullable: bool, default: Option<&str>| Column {
        name: name.into(),
        sql_type,
        nullable,
        default: default.map(str::to_string),
        checks: Vec::new(),
        doc: None,
        renamed_from: None,
    };
    let checked = |c: Column, check: &str| Column {
        checks: vec![check.into()],
        ..c
    };
    let table = |name: &str, doc: &str, columns: Vec<Column>, primary_key: &[&str]| Table {
        name: name.into(),
        doc: Some(doc.into()),
        columns,
        primary_key: primary_key.iter().map(|c| c.to_string()).collect(),
        unique: Vec::new(),
        indexes: Vec::new(),
        foreign_keys: Vec::new(),
        checks: Vec::new(),
    };
    let mut commits = table(
        "commits",
        "One row per command: position is the global, gap-free order (max + 1, assigned under the store's write lock); events holds the command's events.",
        vec![
            checked(
                col("position", SqlType::BigInt, false, None),
                "position >= 1",
            ),
            col("stream_id", SqlType::Uuid, false, None),
            checked(
                col("commit_seq", SqlType::BigInt, false, None),
                "commit_seq >= 1",
            ),
            col("commit_id", SqlType::Uuid, false, None),
            checked(
                col("rev_from", SqlType::BigInt, false, None),
                "rev_from >= 1",
            ),
            col("rev_to", SqlType::BigInt, false, None),
            col("events", SqlType::Jsonb, false, None),
            col("metadata", SqlType::Jsonb, false, Some("'{}'::jsonb")),
            col("committed_at", SqlType::TimestampTz, false, Some("now()")),
        ],
        &["position"],
    );
    commits.unique = vec![
        vec!["stream_id".into(), "commit_seq".into()],
        vec!["stream_id".into(), "commit_id".into()],
    ];
    let checkpoints = table(
        "checkpoints",
        "Per reader (relay, projection): the last position it has fully handled.",
        vec![
            col("reader", SqlType::Text, false, None),
            checked(
                col("position", SqlType::BigInt, false, None),
                "position >= 0",
            ),
            col("updated_at", SqlType::TimestampTz, false, Some("now()")),
        ],
        &["reader"],
    );
    let skipped = table(
        "skipped_positions",
        "Positions a reader gave up waiting for (an alert's audit trail).",
        vec![
            col("reader", SqlType::Text, false, None),
            col("position", SqlType::BigInt, false, None),
            col("skipped_at", SqlType::TimestampTz, false, Some("now()")),
        ],
        &["reader", "position"],
    );
    let leases = table(
        "leases",
        "Who may run a singleton reader (the relay) and until when.",
        vec![
            col("name", SqlType::Text, false, None),
            col("owner", SqlType::Text, false, None),
            col("expires_at", SqlType::TimestampTz, false, None),
        ],
        &["name"],
    );
    vec![commits, checkpoints, skipped, leases]
}

fn table_name(entity: &str) -> String {
    names::plural(&names::snake(entity))
}

fn entity_tables(
    system: &System,
    svc: &Service,
    entity_name: &str,
    owner: Option<&Entity>,
    kind: DatabaseKind,
    tables: &mut Vec<Table>,
    in_db: &mut Vec<String>,
) {
    let Some(e) = system.entities.iter().find(|e| e.name == entity_name) else {
        return;
    };
    in_db.push(e.name.clone());
    let name = table_name(&e.name);
    let mut t = Table {
        name: name.clone(),
        doc: e.doc.clone(),
        columns: Vec::new(),
        primary_key: Vec::new(),
        unique: Vec::new(),
        indexes: Vec::new(),
        foreign_keys: Vec::new(),
        checks: Vec::new(),
    };
    if let Some(o) = owner {
        let col = format!("{}_id", names::snake(&o.name));
        t.columns.push(Column {
            name: col.clone(),
            sql_type: SqlType::Uuid,
            nullable: false,
            default: None,
            checks: Vec::new(),
            doc: None,
            renamed_from: None,
        });
        t.foreign_keys.push(ForeignKey {
            columns: vec![col.clone()],
            table: table_name(&o.name),
            references: vec!["id".into()],
            on_delete_cascade: true,
        });
        t.primary_key.push(col);
        if e.has_id() {
            t.primary_key.push("id".into());
        } else {
            t.primary_key.extend(e.key.iter().cloned());
        }
    } else {
        t.primary_key.push("id".into());
    }
    for f in &e.fields {
        t.columns.push(column(f));
        if f.unique {
            t.unique.push(vec![f.name.clone()]);
        }
        if let FieldType::Ref(target) = &f.ty
            && in_db.contains(target)
            && owner.is_none_or(|o| &o.name != target)
        {
            t.foreign_keys.push(ForeignKey {
                columns: vec![f.name.clone()],
                table: table_name(target),
                references: vec!["id".into()],
                on_delete_cascade: false,
            });
        }
    }
    if owner.is_none() && kind != DatabaseKind::Crud {
        t.columns.push(Column {
            name: "version".into(),
            sql_type: SqlType::BigInt,
            nullable: false,
            default: Some("0".into()),
            checks: vec!["version >= 0".into()],
            doc: None,
            renamed_from: None,
        });
    }
    t.unique.extend(e.unique.iter().cloned());
    let mut indexes = e.indexes.clone();
    if owner.is_none() {
        for o in svc
            .operations
            .iter()
            .filter(|o| o.kind == OperationKind::List)
        {
            let mut ix: Vec<IndexColumn> = o
                .filter
                .iter()
                .map(|f| IndexColumn {
                    field: f.clone(),
                    descending: false,
                })
                .collect();
            ix.extend(o.order_by.iter().cloned());
            if ix.len() > 1 || ix.first().is_some_and(|c| c.field != "id") {
                indexes.push(ix);
            }
        }
    }
    for f in &e.fields {
        if matches!(f.ty, FieldType::Ref(_)) && t.primary_key.first().is_none_or(|p| p != &f.name) {
            indexes.push(vec![IndexColumn {
                field: f.name.clone(),
                descending: false,
            }]);
        }
    }
    let mut seen: Vec<Vec<IndexColumn>> = Vec::new();
    for ix in indexes {
        // An index whose columns start another index (or the key) adds nothing.
        let covered = seen
            .iter()
            .any(|s| s.len() >= ix.len() && s[..ix.len()] == ix[..])
            || (ix.len() <= t.primary_key.len()
                && ix
                    .iter()
                    .zip(&t.primary_key)
                    .all(|(c, k)| &c.field == k && !c.descending))
            || t.unique.iter().any(|u| {
                u.len() >= ix.len()
                    && ix
                        .iter()
                        .zip(u)
                        .all(|(c, k)| &c.field == k && !c.descending)
            });
        if !covered {
            seen.retain(|s| !(ix.len() > s.len() && ix[..s.len()] == s[..]));
            seen.push(ix);
        }
    }
    t.indexes = seen;
    tables.push(t);
    for r in e.relations.iter().filter(|r| r.owned) {
        entity_tables(system, svc, &r.target, Some(e), kind, tables, in_db);
    }
}

pub fn column(f: &Field) -> Column {
    let sql_type = match f.ty {
        FieldType::Uuid | FieldType::Ref(_) => SqlType::Uuid,
        FieldType::String | FieldType::Text | FieldType::Email => SqlType::Text,
        FieldType::Int => SqlType::Integer,
        FieldType::Money => SqlType::BigInt,
        FieldType::Timestamp => SqlType::TimestampTz,
        FieldType::Bool => SqlType::Boolean,
    };
    let n = &f.name;
    let c = &f.constraints;
    let mut checks = Vec::new();
    match (c.min_len, c.max_len) {
        (Some(lo), Some(hi)) => checks.push(format!("char_length({n}) BETWEEN {lo} AND {hi}")),
        (Some(lo), None) => checks.push(format!("char_length({n}) >= {lo}")),
        (None, Some(hi)) => checks.push(format!("char_length({n}) <= {hi}")),
        (None, None) => {}
    }
    if !c.one_of.is_empty() {
        let values: Vec<String> = c
            .one_of
            .iter()
            .map(|v| format!("'{}'", v.replace('\'', "''")))
            .collect();
        checks.push(format!("{n} IN ({})", values.join(", ")));
    }
    if f.ty == FieldType::Email {
        checks.push(format!("{n} LIKE '_%@_%'"));
    }
    match (c.min, c.max) {
        (Some(lo), Some(hi)) => checks.push(format!("{n} BETWEEN {lo} AND {hi}")),
        (Some(lo), None) => checks.push(format!("{n} >= {lo}")),
        (None, Some(hi)) => checks.push(format!("{n} <= {hi}")),
        (None, None) => {}
    }
    Column {
        name: n.clone(),
        sql_type,
        nullable: f.optional,
        default: f.default.as_ref().map(sql_literal),
        checks,
        doc: f.doc.clone(),
        renamed_from: f.renamed_from.clone(),
    }
}

/// A spec default as a SQL literal; PostgreSQL casts it to the column's type.
pub fn sql_literal(d: &DefaultValue) -> String {
    match d {
        DefaultValue::Bool(b) => b.to_string(),
        DefaultValue::Int(n) => n.to_string(),
        DefaultValue::Str(s) => format!("'{}'", s.replace('\'', "''")),
    }
}

fn events_table(svc: &Service) -> Table {
    let col = |name: &str, sql_type: SqlType, default: Option<&str>| Column {
        name: name.into(),
        sql_type,
        nullable: false,
        default: default.map(str::to_string),
        checks: Vec::new(),
        doc: None,
        renamed_from: None,
    };
    let _ = svc;
    Table {
        name: "events".into(),
        doc: Some(
            "Every event of every stream; (stream_id, version) is the optimistic-concurrency key."
                .into(),
        ),
        columns: vec![
            col("stream_id", SqlType::Uuid, None),
            Column {
                checks: vec!["version >= 1".into()],
                ..col("version", SqlType::BigInt, None)
            },
            col("position", SqlType::BigSerial, None),
            col("event_id", SqlType::Uuid, None),
            col("event_type", SqlType::Text, None),
            Column {
                checks: vec!["schema_version >= 1".into()],
                ..col("schema_version", SqlType::Integer, None)
            },
            col("payload", SqlType::Jsonb, None),
            col("metadata", SqlType::Jsonb, Some("'{}'::jsonb")),
            col("recorded_at", SqlType::TimestampTz, Some("now()")),
        ],
        primary_key: vec!["stream_id".into(), "version".into()],
        unique: vec![vec!["position".into()], vec!["event_id".into()]],
        indexes: Vec::new(),
        foreign_keys: Vec::new(),
        checks: Vec::new(),
    }
}

fn outbox_table() -> Table {
    let col = |name: &str, sql_type: SqlType, nullable: bool, default: Option<&str>| Column {
        name: name.into(),
        sql_type,
        nullable,
        default: default.map(str::to_string),
        checks: Vec::new(),
        doc: None,
        renamed_from: None,
    };
    Table {
        name: "outbox".into(),
        doc: Some("Events waiting for Kafka, written in the command's transaction; a relay publishes them in position order.".into()),
        columns: vec![
            col("position", SqlType::BigSerial, false, None),
            col("topic", SqlType::Text, false, None),
            col("message_key", SqlType::Text, false, None),
            col("payload", SqlType::Bytea, false, None),
            col("created_at", SqlType::TimestampTz, false, Some("now()")),
            col("published_at", SqlType::TimestampTz, true, None),
        ],
        primary_key: vec!["position".into()],
        unique: Vec::new(),
        indexes: Vec::new(),
        foreign_keys: Vec::new(),
        checks: Vec::new(),
    }
}

/// The identity service's sessions (`keel::auth`): credentials by subject and email,
/// sessions by refresh-token hash, signing keys.
fn auth_tables() -> Vec<Table> {
    let col = |name: &str, sql_type: SqlType, nullable: bool| Column {
        name: name.into(),
        sql_type,
        nullable,
        default: None,
        checks: Vec::new(),
        doc: None,
        renamed_from: None,
    };
    let created = || Column {
        default: Some("now()".into()),
        ..col("created_at", SqlType::TimestampTz, false)
    };
    let table = |name: &str, doc: &str, columns: Vec<Column>, key: &str| Table {
        name: name.into(),
        doc: Some(doc.into()),
        columns,
        primary_key: vec![key.into()],
        unique: Vec::new(),
        indexes: Vec::new(),
        foreign_keys: Vec::new(),
        checks: Vec::new(),
    };
    let mut credentials = table(
        "auth_credentials",
        "Each subject's login: email (lowercase), argon2id password hash, roles (comma-separated).",
        vec![
            col("subject", SqlType::Uuid, false),
            col("email", SqlType::Text, false),
            col("password_hash", SqlType::Text, false),
            col("roles", SqlType::Text, false),
            created(),
        ],
        "subject",
    );
    credentials.unique = vec![vec!["email".into()]];
    let mut sessions = table(
        "auth_sessions",
        "Sessions: the SHA-256 of the current refresh token, until expiry or logout (revoked_at).",
        vec![
            col("id", SqlType::Uuid, false),
            col("subject", SqlType::Uuid, false),
            col("refresh_hash", SqlType::Text, false),
            col("expires_at", SqlType::TimestampTz, false),
            col("revoked_at", SqlType::TimestampTz, true),
            created(),
        ],
        "id",
    );
    sessions.unique = vec![vec!["refresh_hash".into()]];
    // By subject: an account's sessions end with it; by revoked_at: the BFFs' poll of
    // recently ended sessions.
    sessions.indexes = ["subject", "revoked_at"]
        .map(|field| {
            vec![IndexColumn {
                field: field.into(),
                descending: false,
            }]
        })
        .into();
    let keys = table(
        "auth_keys",
        "Ed25519 signing keys (seeds) by key id; the oldest signs, all are published.",
        vec![
            col("kid", SqlType::Text, false),
            col("seed", SqlType::Bytea, false),
            created(),
        ],
        "kid",
    );
    vec![credentials, sessions, keys]
}
