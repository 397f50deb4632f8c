//! The user service: `user-service [serve|relay] --database-url postgres://…|sqlite://…
//! [--bus-url kafka://…|sqlite://…] [--kafka-brokers …]`.
//!
//! `serve` (the default) answers gRPC and, unless `--relay false`, runs the outbox relay
//! in the same process; `relay` runs only the relay. Relays in several processes are
//! safe: one holds the lease and publishes, the others stand by. The storage and the bus
//! are chosen by their URLs; everything else is [`user_service::run`].

use clap::Parser;
use shop_kit::server;
use tokio::sync::watch;
use tonic::transport::server::TcpIncoming;
use user_service::{Config, Mode};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    server::init_tracing();
    let config = Config::parse();
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        server::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    match config.mode {
        Mode::Serve => {
            let incoming = TcpIncoming::bind(config.listen)
                .map_err(|e| anyhow::anyhow!("binding {}: {e}", config.listen))?;
            tracing::info!(listen = %config.listen, "user service starting");
            user_service::run(config, incoming, stop_rx).await
        }
        Mode::Relay => user_service::run_relay(config, stop_rx).await,
    }
}
