//! The types of the deployables table each system's generated `<system>-system` crate
//! holds (`DEPLOYABLES`): what runs, with which settings, on which local ports.

/// What a deployable does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The GraphQL gateway (HTTP).
    Bff,
    /// A gRPC server: a CRUD or CQS service.
    Grpc,
    /// The command side of a CQRS service (gRPC).
    Command,
    /// The query side of a CQRS service (gRPC).
    Query,
    /// Projects a CQRS service's events; serves gRPC health only.
    EventHandler,
}
/// What a setting holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SettingKind {
    /// The address the process listens on.
    Listen,
    /// The URL of the relational database named here.
    Database(&'static str),
    /// The URL of the event store named here.
    EventStore(&'static str),
    /// The message bus: Kafka, or the embedded log.
    Bus,
    /// The URL of the named upstream deployable, through its Envoy.
    Upstream(&'static str),
    /// The name of the event store's database on the MongoDB wire (default here).
    EventStoreDatabase(&'static str),
    /// The name of a topic it produces to or consumes from (default here): a test
    /// stack gives each run topics of its own through these.
    Topic(&'static str),
    /// The name of a consumer group it reads in (default here).
    ConsumerGroup(&'static str),
}
/// An environment variable a deployable reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Setting {
    pub env: &'static str,
    pub kind: SettingKind,
}
/// Ports on one machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LocalPorts {
    /// The process itself (gRPC, or HTTP for the BFF).
    pub app: u16,
    /// Its Envoy's listener.
    pub envoy: u16,
    /// Its Envoy's admin interface.
    pub envoy_admin: u16,
}
/// One process, behind its own Envoy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Deployable {
    /// kebab-case, unique: `bff`, `product`, `cart-query`.
    pub name: &'static str,
    /// The service it belongs to (`bff` for the gateway).
    pub service: &'static str,
    pub role: Role,
    /// The cargo package that builds `binary`.
    pub package: &'static str,
    pub binary: &'static str,
    /// Command-line arguments it runs with.
    pub args: &'static [&'static str],
    /// What it reads from its environment.
    pub settings: &'static [Setting],
    /// The deployables it calls, through their Envoys.
    pub upstreams: &'static [&'static str],
    pub databases: &'static [&'static str],
    pub event_store: Option<&'static str>,
    pub local: LocalPorts,
}
impl Deployable {
    /// Where it listens on one machine: `127.0.0.1:<app>`.
    pub fn local_listen(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.local.app))
    }
    /// Its Envoy on one machine: `http://127.0.0.1:<envoy>`.
    pub fn local_envoy_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.local.envoy)
    }
    /// The setting read from the variable `env`.
    pub fn setting(&self, env: &str) -> Option<&'static Setting> {
        self.settings.iter().find(|s| s.env == env)
    }
}
