//! The user service: `user-service [serve|relay] --database-url postgres://…|sqlite://…
//! [--bus-url kafka://…|sqlite://…] [--kafka-brokers …]`.
//!
//! `serve` (the default) answers gRPC and, unless `--relay false`, runs the outbox relay
//! in the same process; `relay` runs only the relay. Relays in several processes are
//! safe: one holds the lease and publishes, the others stand by. The storage and the bus
//! are chosen by their URLs; everything else is [`user_service::run`].

use clap::Parser;
use shop_kit::server;
use user_service::{Config, Mode};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    server::init_tracing();
    let config = Config::parse();
    let stop_rx = server::stop_on_signal();
    match config.mode {
        Mode::Serve => {
            let incoming = server::bind(config.listen)?;
            tracing::info!(listen = %config.listen, "user service starting");
            user_service::run(config, incoming, stop_rx).await
        }
        Mode::Relay => user_service::run_relay(config, stop_rx).await,
    }
}
