//! `cart-service --role command|query|event-handler` (or `ROLE=…`), and
//! `cart-service rebuild`.
//!
//! - `command`: `CartCommandService` on 127.0.0.1:50103 over the MongoDB-wire event
//!   store, plus the relay to Kafka (unless `RELAY=false`) and the `user.events`
//!   subscriber (unless `SUBSCRIBER=false`).
//! - `query`: `CartQueryService` on 127.0.0.1:50104 over the PostgreSQL read model.
//! - `event-handler`: projects `cart.events` into the read model; gRPC health on
//!   127.0.0.1:50105. With `--events-from store` (`EVENTS_FROM=store`) it needs no
//!   Kafka: it tails the event store from its own checkpoint (see `tail`).
//! - `rebuild`: replays the event store into fresh read-model tables, swaps them in and
//!   prints the events per second.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cart_service::{
    CartCommands, CartQueries, EventStore, GrpcCatalog, HandlerConfig, Projector, Relay,
    RelayConfig, StoreTailer, SubscriberConfig, TailConfig,
};
use clap::{Parser, Subcommand, ValueEnum};
use shop_kit::server;
use tokio::sync::watch;
use tonic::transport::server::TcpIncoming;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Role {
    Command,
    Query,
    EventHandler,
}

/// Where the event handler takes the events from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum EventsFrom {
    /// The cart topic (published by the relay).
    Kafka,
    /// The event store itself, from the handler's own checkpoint (no Kafka).
    Store,
}

#[derive(Subcommand, Debug)]
enum Task {
    /// Rebuild the read model from the event store and exit.
    Rebuild,
}

#[derive(Parser, Debug)]
#[command(about = "The shop's cart service (CQRS + event sourcing)")]
struct Config {
    #[command(subcommand)]
    task: Option<Task>,
    /// Which process to run.
    #[arg(long, env = "ROLE", value_enum, default_value_t = Role::Command)]
    role: Role,
    /// gRPC address; defaults to the role's local port (50103, 50104, 50105).
    #[arg(long, env = "LISTEN_ADDR")]
    listen: Option<SocketAddr>,
    /// The event store (command role, rebuild).
    #[arg(long, env = "MONGO_URL", default_value = "mongodb://127.0.0.1:57017/")]
    mongo_url: String,
    #[arg(long, env = "MONGO_DATABASE", default_value = cart_service::store::DEFAULT_DATABASE)]
    mongo_database: String,
    /// The read database (query, event-handler, rebuild); migrations run at start.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    max_connections: u32,
    #[arg(long, env = "KAFKA_BROKERS", default_value = "127.0.0.1:59092")]
    kafka_brokers: String,
    /// Topic the relay publishes to and the event handler reads.
    #[arg(long, env = "CART_TOPIC", default_value = shop_cart::TOPIC)]
    cart_topic: String,
    /// Partitions of the cart topic when this process creates it.
    #[arg(long, env = "CART_TOPIC_PARTITIONS", default_value_t = 3)]
    cart_topic_partitions: i32,
    /// Topic of the user service's events (command role).
    #[arg(long, env = "USER_TOPIC", default_value = shop_user::TOPIC)]
    user_topic: String,
    /// The product service (its Envoy), asked whether an added product exists.
    #[arg(long, env = "PRODUCT_URL", default_value = "http://127.0.0.1:50201")]
    product_url: String,
    #[arg(long, env = "PRODUCT_TIMEOUT_MS", default_value_t = 3000)]
    product_timeout_ms: u64,
    /// Run the relay in the command process.
    #[arg(long, env = "RELAY", default_value_t = true, action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    relay: bool,
    /// Lease and checkpoint name of the relay.
    #[arg(long, env = "RELAY_NAME", default_value = "relay")]
    relay_name: String,
    #[arg(long, env = "RELAY_POLL_MS", default_value_t = 50)]
    relay_poll_ms: u64,
    #[arg(long, env = "RELAY_BATCH", default_value_t = 500)]
    relay_batch: i64,
    #[arg(long, env = "RELAY_LEASE_TTL_MS", default_value_t = 5000)]
    relay_lease_ttl_ms: u64,
    #[arg(long, env = "RELAY_GAP_TIMEOUT_MS", default_value_t = 10000)]
    relay_gap_timeout_ms: u64,
    /// Run the user-events subscriber in the command process.
    #[arg(long, env = "SUBSCRIBER", default_value_t = true, action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    subscriber: bool,
    #[arg(
        long,
        env = "USER_EVENTS_GROUP",
        default_value = "cart-command-user-events"
    )]
    user_events_group: String,
    /// Consumer group of the event handler.
    #[arg(long, env = "CONSUMER_GROUP", default_value = "cart-event-handler")]
    consumer_group: String,
    /// Static membership of the event handler in its group (e.g. the pod name).
    #[arg(long, env = "CONSUMER_INSTANCE_ID")]
    consumer_instance_id: Option<String>,
    /// Event handler: `kafka` (the cart topic) or `store` (tail the event store).
    #[arg(long, env = "EVENTS_FROM", value_enum, default_value_t = EventsFrom::Kafka)]
    events_from: EventsFrom,
    /// Checkpoint name of the store-tailing event handler.
    #[arg(long, env = "PROJECTION_CHECKPOINT", default_value = "projection")]
    projection_checkpoint: String,
    #[arg(long, env = "STARTUP_TIMEOUT_SECS", default_value_t = 30)]
    startup_timeout_secs: u64,
    #[arg(long, env = "SHUTDOWN_TIMEOUT_SECS", default_value_t = 10)]
    shutdown_timeout_secs: u64,
}

impl Config {
    fn listen(&self) -> SocketAddr {
        let port = match self.role {
            Role::Command => 50103,
            Role::Query => 50104,
            Role::EventHandler => 50105,
        };
        self.listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], port)))
    }

    fn startup_timeout(&self) -> Duration {
        Duration::from_secs(self.startup_timeout_secs)
    }

    async fn read_db(&self) -> anyhow::Result<(String, sqlx::PgPool)> {
        let url = self
            .database_url
            .clone()
            .context("DATABASE_URL (the read database) is required for this role")?;
        let pool = server::retry_until("read database", self.startup_timeout(), || {
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(self.max_connections)
                .acquire_timeout(Duration::from_secs(5))
                .connect(&url)
        })
        .await
        .context("connecting to the read database")?;
        server::retry_until("read database migrations", self.startup_timeout(), || {
            cart_service::projection::prepare(&pool)
        })
        .await
        .context("preparing the read database")?;
        Ok((url, pool))
    }

    async fn event_store(&self) -> anyhow::Result<EventStore> {
        let store = EventStore::connect(&self.mongo_url, &self.mongo_database).await?;
        server::retry_until("event store", self.startup_timeout(), || {
            store.ensure_indexes()
        })
        .await
        .context("preparing the event store")?;
        Ok(store)
    }
}

fn incoming(addr: SocketAddr) -> anyhow::Result<TcpIncoming> {
    TcpIncoming::bind(addr).map_err(|e| anyhow::anyhow!("binding {addr}: {e}"))
}

async fn wait_stop(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    server::init_tracing();
    let config = Config::parse();
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        server::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });

    if let Some(Task::Rebuild) = config.task {
        let store = config.event_store().await?;
        let (url, pool) = config.read_db().await?;
        let report = cart_service::rebuild::rebuild(&store, &pool, &url).await?;
        println!(
            "rebuilt the read model: {} events in {} commits, {} carts, up to position {}, in {:.3} s: {:.0} events/s",
            report.events,
            report.commits,
            report.carts,
            report.position,
            report.elapsed.as_secs_f64(),
            report.events_per_second()
        );
        pool.close().await;
        return Ok(());
    }

    let mut background = Vec::new();
    match config.role {
        Role::Command => {
            let store = config.event_store().await?;
            let catalog = GrpcCatalog::new(
                &config.product_url,
                Duration::from_millis(config.product_timeout_ms),
            )?;
            let commands = CartCommands::new(store.clone(), Arc::new(catalog));
            if config.relay {
                cart_service::kafka::ensure_topic(
                    &config.kafka_brokers,
                    &config.cart_topic,
                    config.cart_topic_partitions,
                )
                .await?;
                let relay = Relay::new(
                    store.clone(),
                    RelayConfig {
                        topic: config.cart_topic.clone(),
                        name: config.relay_name.clone(),
                        poll_interval: Duration::from_millis(config.relay_poll_ms.max(1)),
                        batch_size: config.relay_batch.max(1),
                        lease_ttl: Duration::from_millis(config.relay_lease_ttl_ms.max(100)),
                        gap_timeout: Duration::from_millis(config.relay_gap_timeout_ms),
                        ..RelayConfig::new(config.kafka_brokers.clone())
                    },
                )?;
                tracing::info!(topic = %config.cart_topic, owner = relay.owner(), "relay starting");
                let rx = stop_rx.clone();
                background.push(tokio::spawn(async move {
                    relay.run(rx).await;
                    Ok(())
                }));
            }
            if config.subscriber {
                cart_service::kafka::ensure_topic(&config.kafka_brokers, &config.user_topic, 1)
                    .await?;
                let sub = SubscriberConfig {
                    topic: config.user_topic.clone(),
                    group: config.user_events_group.clone(),
                    ..SubscriberConfig::new(config.kafka_brokers.clone())
                };
                background.push(tokio::spawn(cart_service::subscriber::run_subscriber(
                    commands.clone(),
                    sub,
                    stop_rx.clone(),
                )));
            }
            let listen = config.listen();
            tracing::info!(%listen, "cart command service serving");
            cart_service::serve_command(commands, incoming(listen)?, wait_stop(stop_rx.clone()))
                .await?;
        }
        Role::Query => {
            let (_, pool) = config.read_db().await?;
            let listen = config.listen();
            tracing::info!(%listen, "cart query service serving");
            cart_service::serve_query(
                CartQueries::new(pool.clone()),
                incoming(listen)?,
                wait_stop(stop_rx.clone()),
            )
            .await?;
            pool.close().await;
        }
        Role::EventHandler if config.events_from == EventsFrom::Store => {
            let store = config.event_store().await?;
            let (_, pool) = config.read_db().await?;
            let tailer = StoreTailer::new(
                store,
                Projector::new(pool.clone()),
                TailConfig {
                    name: config.projection_checkpoint.clone(),
                    poll_interval: Duration::from_millis(config.relay_poll_ms.max(1)),
                    batch_size: config.relay_batch.max(1),
                    gap_timeout: Duration::from_millis(config.relay_gap_timeout_ms),
                    ..TailConfig::default()
                },
            );
            background.push(tokio::spawn(tailer.run(stop_rx.clone())));
            let listen = config.listen();
            tracing::info!(%listen, "cart event handler (store) serving health");
            cart_service::serve_health(incoming(listen)?, wait_stop(stop_rx.clone())).await?;
        }
        Role::EventHandler => {
            let (_, pool) = config.read_db().await?;
            cart_service::kafka::ensure_topic(
                &config.kafka_brokers,
                &config.cart_topic,
                config.cart_topic_partitions,
            )
            .await?;
            let handler = HandlerConfig {
                topic: config.cart_topic.clone(),
                group: config.consumer_group.clone(),
                instance_id: config.consumer_instance_id.clone(),
                ..HandlerConfig::new(config.kafka_brokers.clone())
            };
            background.push(tokio::spawn(cart_service::projection::run_event_handler(
                Projector::new(pool.clone()),
                handler,
                stop_rx.clone(),
            )));
            let listen = config.listen();
            tracing::info!(%listen, "cart event handler serving health");
            cart_service::serve_health(incoming(listen)?, wait_stop(stop_rx.clone())).await?;
        }
    }

    wait_stop(stop_rx.clone()).await;
    for task in background {
        match tokio::time::timeout(Duration::from_secs(config.shutdown_timeout_secs), task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::error!(error = %format!("{e:#}"), "background task failed"),
            Ok(Err(e)) => tracing::error!(error = %e, "background task panicked"),
            Err(_) => tracing::warn!("background task did not stop in time"),
        }
    }
    tracing::info!("cart service stopped");
    Ok(())
}
