//! The order service: `order-service --listen 127.0.0.1:20102 --database-url postgres://…`
//! (or `--database-url sqlite://data/order.db`).

use clap::Parser;
use order_service::{Config, run};
use shop_kit::server;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    server::init_tracing();
    let config = Config::parse();
    let incoming = server::bind(config.listen)?;
    run(config, incoming, server::stop_on_signal()).await
}
