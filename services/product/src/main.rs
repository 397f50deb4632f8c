//! The product service: `product-service --listen 127.0.0.1:20101 --database-url postgres://…`
//! (or `--database-url sqlite://data/product.db`).

use clap::Parser;
use product_service::{Config, run};
use shop_kit::server;
use tokio::sync::watch;
use tonic::transport::server::TcpIncoming;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    server::init_tracing();
    let config = Config::parse();
    let incoming = TcpIncoming::bind(config.listen)
        .map_err(|e| anyhow::anyhow!("binding {}: {e}", config.listen))?;
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        server::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    run(config, incoming, stop_rx).await
}
