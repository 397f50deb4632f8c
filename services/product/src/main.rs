//! The product service: `product-service --listen 127.0.0.1:50101 --database-url postgres://…`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use product_service::Products;
use shop_kit::server;

#[derive(Parser, Debug)]
#[command(about = "The shop's product service (gRPC)")]
struct Config {
    /// Address to serve gRPC on.
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:50101")]
    listen: SocketAddr,
    /// The product database; migrations from generated/sql/shop_product run at start.
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    max_connections: u32,
    /// How long to wait for the database at start.
    #[arg(long, env = "STARTUP_TIMEOUT_SECS", default_value_t = 30)]
    startup_timeout_secs: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    server::init_tracing();
    let config = Config::parse();
    let pool = server::postgres(
        &config.database_url,
        config.max_connections,
        Duration::from_secs(config.startup_timeout_secs),
        &product_service::MIGRATOR,
    )
    .await
    .context("connecting to the database and applying migrations")?;

    let router = server::grpc_router(
        &[shop_product::pb::product_service_server::SERVICE_NAME],
        &[shop_product::FILE_DESCRIPTOR_SET],
    )
    .await?;
    tracing::info!(listen = %config.listen, "product service serving");
    router
        .add_service(shop_product::product_server(Arc::new(Products::new(
            pool.clone(),
        ))))
        .serve_with_shutdown(config.listen, server::shutdown_signal())
        .await?;
    pool.close().await;
    tracing::info!("product service stopped");
    Ok(())
}
