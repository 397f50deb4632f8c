//! The product service: `product-service --listen 127.0.0.1:20101 --database-url postgres://…`
//! (or `--database-url sqlite://data/product.db`).

use clap::Parser;
use product_service::{Config, run};
use shop_kit::server;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    server::init_tracing();
    let config = Config::parse();
    let incoming = server::bind(config.listen)?;
    run(config, incoming, server::stop_on_signal()).await
}
