//! The user service: `user-service [serve|relay] --database-url postgres://… --kafka-brokers …`.
//!
//! `serve` (the default) answers gRPC and, unless `--relay false`, runs the outbox relay
//! in the same process; `relay` runs only the relay. Relays in several processes are
//! safe: one holds the lease and publishes, the others stand by.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use shop_kit::server;
use tonic::transport::server::TcpIncoming;
use user_service::{Relay, RelayConfig, Users};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// gRPC server (+ the relay unless disabled).
    Serve,
    /// Only the outbox relay.
    Relay,
}

#[derive(Parser, Debug)]
#[command(about = "The shop's user service (gRPC, CQS + event sourcing) and its outbox relay")]
struct Config {
    /// What to run.
    #[arg(value_enum, default_value_t = Mode::Serve)]
    mode: Mode,
    /// Address to serve gRPC on (the local port of deployable `user`).
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:50106")]
    listen: SocketAddr,
    /// The user database; migrations from generated/sql/shop_user run at start.
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    max_connections: u32,
    /// Kafka bootstrap servers the relay publishes to.
    #[arg(long, env = "KAFKA_BROKERS", default_value = "127.0.0.1:59092")]
    kafka_brokers: String,
    /// Run the outbox relay inside `serve` (true/false).
    #[arg(long, env = "RELAY", default_value_t = true, action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    relay: bool,
    /// Relay poll interval when the outbox is drained, in milliseconds.
    #[arg(long, env = "RELAY_POLL_MS", default_value_t = 200)]
    relay_poll_ms: u64,
    /// Outbox rows per relay round.
    #[arg(long, env = "RELAY_BATCH", default_value_t = 100)]
    relay_batch: i64,
    /// How long to wait for the database at start.
    #[arg(long, env = "STARTUP_TIMEOUT_SECS", default_value_t = 30)]
    startup_timeout_secs: u64,
    /// How long the relay may take to stop after the server stopped.
    #[arg(long, env = "SHUTDOWN_TIMEOUT_SECS", default_value_t = 10)]
    shutdown_timeout_secs: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    server::init_tracing();
    let config = Config::parse();
    let pool = server::postgres(
        &config.database_url,
        config.max_connections,
        Duration::from_secs(config.startup_timeout_secs),
        &user_service::MIGRATOR,
    )
    .await
    .context("connecting to the database and applying migrations")?;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        server::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });

    let relay = if config.relay || config.mode == Mode::Relay {
        let relay_config = RelayConfig {
            poll_interval: Duration::from_millis(config.relay_poll_ms.max(1)),
            batch_size: config.relay_batch.max(1),
            ..RelayConfig::new(config.kafka_brokers.clone())
        };
        let relay = Relay::new(pool.clone(), relay_config)?;
        tracing::info!(brokers = %config.kafka_brokers, "outbox relay starting");
        Some(tokio::spawn(
            relay.run(config.database_url.clone(), stop_rx.clone()),
        ))
    } else {
        None
    };

    if config.mode == Mode::Serve {
        let incoming = TcpIncoming::bind(config.listen)
            .map_err(|e| anyhow::anyhow!("binding {}: {e}", config.listen))?;
        tracing::info!(listen = %config.listen, "user service serving");
        let mut stop = stop_rx.clone();
        user_service::serve(Users::new(pool.clone()), incoming, async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await?;
        tracing::info!("gRPC server drained");
    }

    if let Some(relay) = relay {
        let mut stop = stop_rx.clone();
        // `relay` mode: run until the signal.
        let _ = stop.wait_for(|s| *s).await;
        match tokio::time::timeout(Duration::from_secs(config.shutdown_timeout_secs), relay).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "relay task failed"),
            Err(_) => tracing::warn!("relay did not stop in time"),
        }
    }
    pool.close().await;
    tracing::info!("user service stopped");
    Ok(())
}
