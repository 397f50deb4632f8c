//! The process: its configuration ([`Config`], flags and environment) and [`run`], which
//! serves one role until told to stop. `main` parses the flags and calls [`run`]; the
//! embedded launcher builds a [`Config`] itself and runs the three roles in one process.
//!
//! Backends are chosen by URL, with the same code paths either way:
//! - event store: `--event-store-url` (`EVENT_STORE_URL`), else `--mongo-url`
//!   (`MONGO_URL`): `mongodb://…`, `postgres://…` or `sqlite://path/events.db`;
//! - read model: `--database-url` (`DATABASE_URL`): `postgres://…` or
//!   `sqlite://path/read.db` (not the event store's database: each has its own
//!   migration history);
//! - events: `--bus-url` (`BUS_URL`), else `--kafka-brokers` (`KAFKA_BROKERS`):
//!   `kafka://h:p`, a bare broker list (Kafka) or `sqlite://path/bus.db` (the embedded
//!   log of `shop_kit::bus`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use shop_kit::bus::Bus;
use shop_kit::server;
use shop_kit::sql::{ConnectOptions, Db};
use tokio::sync::watch;
use tonic::transport::server::TcpIncoming;

use shop_kit::es::rebuild::RebuildReport;

use crate::{
    CartCommands, CartQueries, EventStore, GrpcCatalog, HandlerConfig, Projector, ReadModel, Relay,
    RelayConfig, StoreTailer, SubscriberConfig, TailConfig,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    Command,
    Query,
    EventHandler,
}

impl Role {
    /// The deployable that runs this role: `cart-command`, `cart-query`,
    /// `cart-event-handler`.
    pub fn deployable(self) -> &'static str {
        match self {
            Role::Command => "cart-command",
            Role::Query => "cart-query",
            Role::EventHandler => "cart-event-handler",
        }
    }
}

/// A deployable of the spec on one machine, from the generated table.
fn local(name: &str) -> &'static shop_system::Deployable {
    shop_system::deployable(name).unwrap_or_else(|| panic!("no deployable `{name}` in the spec"))
}

/// Where the event handler takes the events from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EventsFrom {
    /// The cart topic on the bus (published by the relay): Kafka or the embedded log.
    /// `kafka`, its name before the bus had two adapters, still works.
    #[value(alias = "kafka")]
    Bus,
    /// The event store itself, from the handler's own checkpoint (no bus).
    Store,
}

#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum Task {
    /// Rebuild the read model from the event store and exit.
    Rebuild,
    /// Apply the parked events that can be applied now (gaps filled from the event
    /// store), print what is left, and exit.
    Repair,
}

#[derive(Parser, Debug, Clone, PartialEq, Eq)]
#[command(about = "The shop's cart service (CQRS + event sourcing)")]
pub struct Config {
    #[command(subcommand)]
    pub task: Option<Task>,
    /// Which process to run.
    #[arg(long, env = "ROLE", value_enum, default_value_t = Role::Command)]
    pub role: Role,
    /// gRPC address; defaults to the local port of the role's deployable (`cart-query`…).
    #[arg(long, env = "LISTEN_ADDR")]
    pub listen: Option<SocketAddr>,
    /// The event store (command role, store-tailing event handler, rebuild):
    /// `mongodb://…`, `postgres://…` or `sqlite://path`. Defaults to `--mongo-url`.
    #[arg(long, env = "EVENT_STORE_URL")]
    pub event_store_url: Option<String>,
    /// The MongoDB-wire event store (when no `--event-store-url`).
    #[arg(long, env = "MONGO_URL", default_value = "mongodb://127.0.0.1:57017/")]
    pub mongo_url: String,
    /// The MongoDB database of the event store.
    #[arg(long, env = "MONGO_DATABASE", default_value = crate::store::DEFAULT_DATABASE)]
    pub mongo_database: String,
    /// The read database (query, event-handler, rebuild): `postgres://…` or
    /// `sqlite://path`; migrations run at start.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    pub max_connections: u32,
    /// Where events travel: `kafka://h:p`, a bare broker list, or `sqlite://path` (the
    /// embedded log). Defaults to `--kafka-brokers`.
    #[arg(long, env = "BUS_URL")]
    pub bus_url: Option<String>,
    #[arg(long, env = "KAFKA_BROKERS", default_value = "127.0.0.1:59092")]
    pub kafka_brokers: String,
    /// Topic the relay publishes to and the event handler reads.
    #[arg(long, env = "CART_TOPIC", default_value = shop_cart::TOPIC)]
    pub cart_topic: String,
    /// Partitions of the cart topic when this process creates it.
    #[arg(long, env = "CART_TOPIC_PARTITIONS", default_value_t = 3)]
    pub cart_topic_partitions: i32,
    /// Topic of the user service's events (command role).
    #[arg(long, env = "USER_TOPIC", default_value = shop_user::TOPIC)]
    pub user_topic: String,
    /// The product service (its Envoy), asked whether an added product exists.
    #[arg(long, env = "PRODUCT_URL", default_value_t = local("product").local_envoy_url())]
    pub product_url: String,
    #[arg(long, env = "PRODUCT_TIMEOUT_MS", default_value_t = 3000)]
    pub product_timeout_ms: u64,
    /// Run the relay in the command process.
    #[arg(long, env = "RELAY", default_value_t = true, action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub relay: bool,
    /// Lease and checkpoint name of the relay.
    #[arg(long, env = "RELAY_NAME", default_value = "relay")]
    pub relay_name: String,
    #[arg(long, env = "RELAY_POLL_MS", default_value_t = 50)]
    pub relay_poll_ms: u64,
    #[arg(long, env = "RELAY_BATCH", default_value_t = 500)]
    pub relay_batch: i64,
    #[arg(long, env = "RELAY_LEASE_TTL_MS", default_value_t = 5000)]
    pub relay_lease_ttl_ms: u64,
    #[arg(long, env = "RELAY_GAP_TIMEOUT_MS", default_value_t = 10000)]
    pub relay_gap_timeout_ms: u64,
    /// Run the user-events subscriber in the command process.
    #[arg(long, env = "SUBSCRIBER", default_value_t = true, action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub subscriber: bool,
    #[arg(
        long,
        env = "USER_EVENTS_GROUP",
        default_value = "cart-command-user-events"
    )]
    pub user_events_group: String,
    /// Consumer group of the event handler.
    #[arg(long, env = "CONSUMER_GROUP", default_value = "cart-event-handler")]
    pub consumer_group: String,
    /// Static membership of the event handler in its group (e.g. the pod name).
    #[arg(long, env = "CONSUMER_INSTANCE_ID")]
    pub consumer_instance_id: Option<String>,
    /// Event handler: `kafka` (the cart topic on the bus, Kafka or embedded) or `store`
    /// (tail the event store).
    #[arg(long, env = "EVENTS_FROM", value_enum, default_value_t = EventsFrom::Bus)]
    pub events_from: EventsFrom,
    /// Checkpoint name of the store-tailing event handler.
    #[arg(long, env = "PROJECTION_CHECKPOINT", default_value = "projection")]
    pub projection_checkpoint: String,
    #[arg(long, env = "STARTUP_TIMEOUT_SECS", default_value_t = 30)]
    pub startup_timeout_secs: u64,
    #[arg(long, env = "SHUTDOWN_TIMEOUT_SECS", default_value_t = 10)]
    pub shutdown_timeout_secs: u64,
}

impl Default for Config {
    /// The flags' defaults (without reading the environment), for a launcher:
    /// `Config { role: Role::Query, database_url: Some(..), ..Config::default() }`.
    fn default() -> Config {
        Config {
            task: None,
            role: Role::Command,
            listen: None,
            event_store_url: None,
            mongo_url: "mongodb://127.0.0.1:57017/".into(),
            mongo_database: crate::store::DEFAULT_DATABASE.into(),
            database_url: None,
            max_connections: 10,
            bus_url: None,
            kafka_brokers: "127.0.0.1:59092".into(),
            cart_topic: shop_cart::TOPIC.into(),
            cart_topic_partitions: 3,
            user_topic: shop_user::TOPIC.into(),
            product_url: local("product").local_envoy_url(),
            product_timeout_ms: 3000,
            relay: true,
            relay_name: "relay".into(),
            relay_poll_ms: 50,
            relay_batch: 500,
            relay_lease_ttl_ms: 5000,
            relay_gap_timeout_ms: 10000,
            subscriber: true,
            user_events_group: "cart-command-user-events".into(),
            consumer_group: "cart-event-handler".into(),
            consumer_instance_id: None,
            events_from: EventsFrom::Bus,
            projection_checkpoint: "projection".into(),
            startup_timeout_secs: 30,
            shutdown_timeout_secs: 10,
        }
    }
}

impl Config {
    /// The gRPC address: `--listen`, else the local port of the role's deployable.
    pub fn listen(&self) -> SocketAddr {
        self.listen
            .unwrap_or_else(|| local(self.role.deployable()).local_listen())
    }

    pub fn startup_timeout(&self) -> Duration {
        Duration::from_secs(self.startup_timeout_secs)
    }

    /// `--event-store-url`, else `--mongo-url`.
    pub fn event_store_url(&self) -> &str {
        self.event_store_url
            .as_deref()
            .filter(|u| !u.is_empty())
            .unwrap_or(&self.mongo_url)
    }

    /// `--bus-url`, else `--kafka-brokers` (a bare broker list is Kafka).
    pub fn bus_url(&self) -> &str {
        self.bus_url
            .as_deref()
            .filter(|u| !u.is_empty())
            .unwrap_or(&self.kafka_brokers)
    }

    fn connect_options(&self) -> ConnectOptions {
        ConnectOptions {
            max_connections: self.max_connections,
            startup_timeout: self.startup_timeout(),
        }
    }

    /// The read database, migrated (waits up to the startup timeout for it).
    pub async fn read_db(&self) -> anyhow::Result<Db> {
        let url = self
            .database_url
            .clone()
            .context("DATABASE_URL (the read database) is required for this role")?;
        let options = self.connect_options();
        server::retry_until("read database", self.startup_timeout(), || {
            Db::open(&url, &options, &shop_cart::READ_MIGRATIONS)
        })
        .await
        .with_context(|| {
            format!(
                "preparing the read database {}",
                shop_kit::sql::redact(&url)
            )
        })
    }

    /// The event store, ready (indexes or migrations applied).
    pub async fn event_store(&self) -> anyhow::Result<EventStore> {
        let url = self.event_store_url();
        let options = self.connect_options();
        let store = server::retry_until("event store", self.startup_timeout(), || {
            EventStore::connect_with(url, &self.mongo_database, crate::store::LAYOUT, &options)
        })
        .await
        .context("connecting to the event store")?;
        server::retry_until("event store", self.startup_timeout(), || {
            store.ensure_indexes()
        })
        .await
        .context("preparing the event store")?;
        Ok(store)
    }

    /// The bus, with `topic` created (Kafka) when given.
    pub async fn bus(&self, topic: Option<(&str, i32)>) -> anyhow::Result<Bus> {
        let bus = Bus::connect(self.bus_url())
            .await
            .context("connecting to the bus")?;
        if let Some((topic, partitions)) = topic {
            bus.ensure_topic(topic, partitions)
                .await
                .with_context(|| format!("creating topic {topic}"))?;
        }
        Ok(bus)
    }
}

/// `cart-service rebuild`: replays the event store into the read model.
pub async fn rebuild(config: &Config) -> anyhow::Result<RebuildReport> {
    let store = config.event_store().await?;
    let db = config.read_db().await?;
    let report = shop_kit::es::rebuild::rebuild::<ReadModel>(&store, &db).await;
    db.close().await;
    Ok(report?)
}

/// `cart-service repair`: projects the parked events again; (repaired, still parked).
pub async fn repair(config: &Config) -> anyhow::Result<(u64, u64)> {
    let store = config.event_store().await?;
    let db = config.read_db().await?;
    let report = Projector::new(db.clone()).with_store(store).repair().await;
    db.close().await;
    Ok(report?)
}

async fn wait_stop(mut stop: watch::Receiver<bool>) {
    server::stopped(&mut stop).await;
}

/// Serves `config.role` on `incoming` until `stop` turns true, with its background tasks
/// (command: the relay and the user-events subscriber; event handler: the projection
/// from the bus or the store), then waits up to the shutdown timeout for those.
/// No tracing set-up and no signal handling: the caller owns both.
pub async fn run(
    config: Config,
    incoming: TcpIncoming,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut background: Vec<tokio::task::JoinHandle<anyhow::Result<()>>> = Vec::new();
    let served = serve_role(&config, incoming, &stop, &mut background).await;
    if served.is_err() {
        // Failed before a stop: nothing else would end the background tasks.
        for task in &background {
            task.abort();
        }
    }
    for task in background {
        match tokio::time::timeout(Duration::from_secs(config.shutdown_timeout_secs), task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::error!(error = %format!("{e:#}"), "background task failed"),
            Ok(Err(e)) if e.is_cancelled() => {}
            Ok(Err(e)) => tracing::error!(error = %e, "background task panicked"),
            Err(_) => tracing::warn!("background task did not stop in time"),
        }
    }
    served?;
    tracing::info!(role = ?config.role, "cart service stopped");
    Ok(())
}

async fn serve_role(
    config: &Config,
    incoming: TcpIncoming,
    stop: &watch::Receiver<bool>,
    background: &mut Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
) -> anyhow::Result<()> {
    let listen = incoming.local_addr().ok();
    match config.role {
        Role::Command => {
            let store = config.event_store().await?;
            let catalog = GrpcCatalog::new(
                &config.product_url,
                Duration::from_millis(config.product_timeout_ms),
            )?;
            let commands = CartCommands::new(store.clone(), Arc::new(catalog));
            if config.relay {
                let bus = config
                    .bus(Some((&config.cart_topic, config.cart_topic_partitions)))
                    .await?;
                let relay = Relay::new(
                    store.clone(),
                    &bus,
                    RelayConfig {
                        topic: config.cart_topic.clone(),
                        name: config.relay_name.clone(),
                        poll_interval: Duration::from_millis(config.relay_poll_ms.max(1)),
                        batch_size: config.relay_batch.max(1),
                        lease_ttl: Duration::from_millis(config.relay_lease_ttl_ms.max(100)),
                        gap_timeout: Duration::from_millis(config.relay_gap_timeout_ms),
                        ..RelayConfig::default()
                    },
                )?;
                tracing::info!(topic = %config.cart_topic, owner = relay.owner(), bus = ?bus, "relay starting");
                let rx = stop.clone();
                background.push(tokio::spawn(async move {
                    relay.run(rx).await;
                    Ok(())
                }));
            }
            if config.subscriber {
                let bus = config.bus(Some((&config.user_topic, 1))).await?;
                let sub = SubscriberConfig {
                    topic: config.user_topic.clone(),
                    group: config.user_events_group.clone(),
                    ..SubscriberConfig::default()
                };
                background.push(tokio::spawn(crate::subscriber::run_subscriber(
                    commands.clone(),
                    bus,
                    sub,
                    stop.clone(),
                )));
            }
            tracing::info!(listen = ?listen, "cart command service serving");
            crate::serve_command(commands, incoming, wait_stop(stop.clone())).await?;
        }
        Role::Query => {
            let db = config.read_db().await?;
            tracing::info!(listen = ?listen, "cart query service serving");
            let served = crate::serve_query(
                CartQueries::new(db.clone()),
                incoming,
                wait_stop(stop.clone()),
            )
            .await;
            db.close().await;
            served?;
        }
        Role::EventHandler if config.events_from == EventsFrom::Store => {
            let store = config.event_store().await?;
            let db = config.read_db().await?;
            let tailer = StoreTailer::new(
                store.clone(),
                Projector::new(db).with_store(store),
                TailConfig {
                    name: config.projection_checkpoint.clone(),
                    poll_interval: Duration::from_millis(config.relay_poll_ms.max(1)),
                    batch_size: config.relay_batch.max(1),
                    gap_timeout: Duration::from_millis(config.relay_gap_timeout_ms),
                    ..TailConfig::default()
                },
            );
            let rx = stop.clone();
            background.push(tokio::spawn(async move {
                tailer.run(rx).await;
                Ok(())
            }));
            tracing::info!(listen = ?listen, "cart event handler (store) serving health");
            crate::serve_health(incoming, wait_stop(stop.clone())).await?;
        }
        Role::EventHandler => {
            let db = config.read_db().await?;
            // Gaps are filled from the event store rather than waited for.
            let store = config.event_store().await?;
            let bus = config
                .bus(Some((&config.cart_topic, config.cart_topic_partitions)))
                .await?;
            let handler = HandlerConfig {
                topic: config.cart_topic.clone(),
                group: config.consumer_group.clone(),
                instance_id: config.consumer_instance_id.clone(),
                ..HandlerConfig::default()
            };
            let projector = Projector::new(db).with_store(store);
            let rx = stop.clone();
            background.push(tokio::spawn(async move {
                shop_kit::es::handler::run_event_handler(projector, bus, handler, rx).await?;
                Ok(())
            }));
            tracing::info!(listen = ?listen, "cart event handler serving health");
            crate::serve_health(incoming, wait_stop(stop.clone())).await?;
        }
    }
    wait_stop(stop.clone()).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_from_kafka_still_means_the_bus() {
        for (flag, want) in [
            ("kafka", EventsFrom::Bus),
            ("bus", EventsFrom::Bus),
            ("store", EventsFrom::Store),
        ] {
            let c =
                Config::try_parse_from(["cart-service", "--events-from", flag]).expect("parses");
            assert_eq!(c.events_from, want, "{flag}");
        }
    }

    #[test]
    fn the_default_is_what_the_flags_default_to() {
        // Only the flags: the environment's values are replaced by the defaults.
        let mut parsed = Config::try_parse_from(["cart-service"]).expect("defaults parse");
        let env_set = |var: &str| std::env::var_os(var).is_some();
        let want = Config::default();
        if env_set("ROLE") {
            parsed.role = want.role;
        }
        if env_set("MONGO_URL") {
            parsed.mongo_url = want.mongo_url.clone();
        }
        if env_set("DATABASE_URL") {
            parsed.database_url = want.database_url.clone();
        }
        if env_set("KAFKA_BROKERS") {
            parsed.kafka_brokers = want.kafka_brokers.clone();
        }
        if env_set("LISTEN_ADDR") {
            parsed.listen = want.listen;
        }
        assert_eq!(parsed, want);
        assert_eq!(want.event_store_url(), want.mongo_url);
        assert_eq!(want.bus_url(), want.kafka_brokers);
        let embedded = Config {
            event_store_url: Some("sqlite://d/events.db".into()),
            bus_url: Some("sqlite://d/bus.db".into()),
            ..Config::default()
        };
        assert_eq!(embedded.event_store_url(), "sqlite://d/events.db");
        assert_eq!(embedded.bus_url(), "sqlite://d/bus.db");
    }
}
