//! The order service: `order-service --database-url postgres://…` (or
//! `--database-url sqlite://data/order.db`), on the local port the spec gives it unless
//! `--listen` says otherwise.

use clap::Parser;
use keel::server;
use order_service::{Config, run};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    server::init_tracing();
    let config = Config::parse();
    let incoming = server::bind(config.service.listen)?;
    run(config, incoming, server::stop_on_signal()).await
}
