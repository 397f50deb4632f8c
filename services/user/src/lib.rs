//! The user service (CQS + event sourcing) behind the generated `UserUseCases` trait.
//!
//! - [`aggregate`]: the hand-written `Customer` aggregate (state, fold, decisions).
//! - [`store`]: commands in one transaction (events + state row + outbox), queries on
//!   the state table; PostgreSQL or SQLite by the database URL, same statements.
//! - the outbox relay that publishes events to the bus (Kafka or the embedded log, by
//!   the bus URL), at least once, in order, is the runtime's ([`shop_kit::es::outbox`]).
//! - [`run`]: the whole service for a process or an in-process launcher, configured by
//!   [`Config`].

pub mod aggregate;
pub mod store;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::ValueEnum;
use shop_kit::bus::Bus;
use shop_kit::server;
use shop_kit::sql::{ConnectOptions, Db, Migrations};
use tokio::sync::watch;
use tonic::transport::server::TcpIncoming;

pub use aggregate::Customer;
pub use shop_kit::es::outbox::{Lease, Relay, RelayConfig};

/// The lease key of the user outbox relay (per database): "user_rly".
pub const RELAY_LEASE_LOCK: i64 = 0x7573_6572_5f72_6c79;

/// The runtime's relay module, as tests reach it.
pub mod relay {
    pub use shop_kit::es::outbox::*;

    /// Tries to take the user relay's lease of `db`.
    pub async fn try_lease(
        db: &shop_kit::sql::Db,
    ) -> Result<Option<Lease>, shop_kit::ServiceError> {
        shop_kit::es::outbox::try_lease(db, super::RELAY_LEASE_LOCK).await
    }
}
pub use store::Users;

/// The PostgreSQL migrations (generated/sql/shop_user).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../generated/sql/shop_user");
/// The SQLite migrations (generated/sqlite/shop_user).
pub static SQLITE_MIGRATOR: sqlx::migrate::Migrator =
    sqlx::migrate!("../../generated/sqlite/shop_user");
/// Both, for [`Db::connect`]: the dialect the URL names is migrated.
pub static MIGRATIONS: Migrations = Migrations {
    postgres: &MIGRATOR,
    sqlite: &SQLITE_MIGRATOR,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// gRPC server (+ the relay unless disabled).
    Serve,
    /// Only the outbox relay.
    Relay,
}

/// Everything the service is configured with: parsed from flags / environment by
/// `user-service`, or built as a struct literal by an in-process launcher.
#[derive(clap::Parser, Debug, Clone)]
#[command(about = "The shop's user service (gRPC, CQS + event sourcing) and its outbox relay")]
pub struct Config {
    /// What to run.
    #[arg(value_enum, default_value_t = Mode::Serve)]
    pub mode: Mode,
    /// Address to serve gRPC on (the local port of deployable `user`). Used by the
    /// binary to bind; [`run`] serves on the listener it is given.
    #[arg(long, env = "LISTEN_ADDR", default_value_t = local_listen())]
    pub listen: SocketAddr,
    /// The user database: `postgres://…` or `sqlite://path/user.db`; the migrations of
    /// that dialect (generated/sql or generated/sqlite /shop_user) run at start.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    pub max_connections: u32,
    /// Where the relay publishes: `kafka://host:port[,…]`, a bare broker list (Kafka),
    /// or `sqlite://path/bus.db` (the embedded log). Unset: `--kafka-brokers`.
    #[arg(long, env = "BUS_URL")]
    pub bus_url: Option<String>,
    /// Kafka bootstrap servers the relay publishes to when no `--bus-url` is given.
    #[arg(long, env = "KAFKA_BROKERS", default_value = "127.0.0.1:59092")]
    pub kafka_brokers: String,
    /// Partitions of the events topic when the relay creates it (Kafka).
    #[arg(long, env = "USER_TOPIC_PARTITIONS", default_value_t = 3)]
    pub topic_partitions: i32,
    /// Run the outbox relay inside `serve` (true/false).
    #[arg(long, env = "RELAY", default_value_t = true, action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub relay: bool,
    /// Relay poll interval when the outbox is drained, in milliseconds.
    #[arg(long, env = "RELAY_POLL_MS", default_value_t = 200)]
    pub relay_poll_ms: u64,
    /// Outbox rows per relay round.
    #[arg(long, env = "RELAY_BATCH", default_value_t = 100)]
    pub relay_batch: i64,
    /// How long to wait for the database at start.
    #[arg(long, env = "STARTUP_TIMEOUT_SECS", default_value_t = 30)]
    pub startup_timeout_secs: u64,
    /// How long the relay may take to stop after the server stopped.
    #[arg(long, env = "SHUTDOWN_TIMEOUT_SECS", default_value_t = 10)]
    pub shutdown_timeout_secs: u64,
}

/// The local address of deployable `user`, from the spec's generated table.
fn local_listen() -> SocketAddr {
    shop_system::deployable("user")
        .expect("the spec has a deployable `user`")
        .local_listen()
}

impl Config {
    /// The bus the relay publishes to: `bus_url`, else the Kafka broker list.
    pub fn bus_url(&self) -> &str {
        self.bus_url
            .as_deref()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or(&self.kafka_brokers)
    }

    pub fn relay_config(&self) -> RelayConfig {
        RelayConfig {
            topic: shop_user::TOPIC.to_string(),
            lease_key: RELAY_LEASE_LOCK,
            poll_interval: Duration::from_millis(self.relay_poll_ms.max(1)),
            batch_size: self.relay_batch.max(1),
            topic_partitions: self.topic_partitions.max(1),
            ..RelayConfig::default()
        }
    }

    /// Whether this configuration runs the outbox relay.
    pub fn runs_relay(&self) -> bool {
        self.relay || self.mode == Mode::Relay
    }
}

/// Runs the service until `stop` turns true (or its sender is gone): connects to the
/// database and migrates it, starts the relay (unless disabled), serves gRPC on
/// `incoming` (in [`Mode::Relay`] the listener is dropped and only the relay runs), then,
/// once the server has drained, stops the relay and closes the pool. Sets up no logging
/// and no signal handling: that is the caller's.
pub async fn run(
    config: Config,
    incoming: TcpIncoming,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    run_with(config, Some(incoming), stop).await
}

/// [`run`] without a gRPC server: only the relay (whatever `config.mode` says).
pub async fn run_relay(config: Config, stop: watch::Receiver<bool>) -> anyhow::Result<()> {
    run_with(config, None, stop).await
}

async fn run_with(
    config: Config,
    incoming: Option<TcpIncoming>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let serving = incoming.filter(|_| config.mode == Mode::Serve);
    let db = Db::open(
        &config.database_url,
        &ConnectOptions::new(config.max_connections, config.startup_timeout_secs),
        &MIGRATIONS,
    )
    .await?;

    // The relay stops after the server (in-flight commands get published), on a channel
    // of its own so that it also stops when the server fails.
    let (relay_stop, relay_stopped) = watch::channel(false);
    let relay = if config.runs_relay() || serving.is_none() {
        let started = async {
            let bus = Bus::connect(config.bus_url())
                .await
                .context("connecting to the bus")?;
            let relay = Relay::new(db.clone(), &bus, config.relay_config())?;
            tracing::info!(bus = ?bus, "outbox relay starting");
            anyhow::Ok(tokio::spawn(relay.run(relay_stopped)))
        };
        match started.await {
            Ok(task) => Some(task),
            Err(e) => {
                db.close().await;
                return Err(e);
            }
        }
    } else {
        None
    };

    let served = match serving {
        Some(incoming) => {
            tracing::info!(database = ?db.dialect(), "user service serving");
            let r = serve(Users::new(db.clone()), incoming, stopped(stop)).await;
            tracing::info!("gRPC server drained");
            r
        }
        None => {
            stopped(stop).await;
            Ok(())
        }
    };

    let _ = relay_stop.send(true);
    if let Some(mut relay) = relay {
        let limit = Duration::from_secs(config.shutdown_timeout_secs);
        match tokio::time::timeout(limit, &mut relay).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "relay task failed"),
            Err(_) => {
                tracing::warn!("relay did not stop in time");
                relay.abort();
            }
        }
    }
    db.close().await;
    tracing::info!("user service stopped");
    served
}

/// Resolves once `stop` turns true, or its sender is gone.
async fn stopped(mut stop: watch::Receiver<bool>) {
    server::stopped(&mut stop).await;
}

/// Serves `shop.user.v1.UserService` with health (serving for it and for "") and
/// reflection on `incoming` until `shutdown` resolves; in-flight calls finish first.
pub async fn serve(
    users: Users,
    incoming: TcpIncoming,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    server::grpc_router(
        &[shop_user::pb::user_service_server::SERVICE_NAME],
        &[shop_user::FILE_DESCRIPTOR_SET],
    )
    .await?
    .add_service(shop_user::user_server(Arc::new(users)))
    .serve_with_incoming_shutdown(incoming, shutdown)
    .await?;
    Ok(())
}
