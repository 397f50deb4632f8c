//! The order service: `order-service --listen 127.0.0.1:50102 --database-url postgres://…`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use order_service::Orders;
use order_service::checkout::Recovery;
use order_service::clients::{GrpcCarts, GrpcCatalog, channel};
use shop_kit::server;

#[derive(Parser, Debug)]
#[command(about = "The shop's order service (gRPC)")]
struct Config {
    /// Address to serve gRPC on.
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:50102")]
    listen: SocketAddr,
    /// The order database; migrations from generated/sql/shop_order run at start.
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    max_connections: u32,
    /// How long to wait for the database at start.
    #[arg(long, env = "STARTUP_TIMEOUT_SECS", default_value_t = 30)]
    startup_timeout_secs: u64,
    /// The product service (its Envoy), for prices at checkout.
    #[arg(long, env = "PRODUCT_URL", default_value = "http://127.0.0.1:50201")]
    product_url: String,
    /// The cart command side (its Envoy), for LoadCart and ResetCart at checkout.
    #[arg(
        long,
        env = "CART_COMMAND_URL",
        default_value = "http://127.0.0.1:50203"
    )]
    cart_command_url: String,
    /// How often the recovery task completes pending orders.
    #[arg(long, env = "RECOVERY_INTERVAL_SECS", default_value_t = 5)]
    recovery_interval_secs: u64,
    /// Pending orders younger than this are left to the checkout placing them.
    #[arg(long, env = "RECOVERY_AFTER_SECS", default_value_t = 10)]
    recovery_after_secs: u64,
    /// At most this many pending orders per recovery round.
    #[arg(long, env = "RECOVERY_BATCH", default_value_t = 100)]
    recovery_batch: i64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    server::init_tracing();
    let config = Config::parse();
    let pool = server::postgres(
        &config.database_url,
        config.max_connections,
        Duration::from_secs(config.startup_timeout_secs),
        &order_service::MIGRATOR,
    )
    .await
    .context("connecting to the database and applying migrations")?;

    let orders = Arc::new(Orders::new(
        pool.clone(),
        GrpcCarts::new(channel(&config.cart_command_url).context("CART_COMMAND_URL")?),
        GrpcCatalog::new(channel(&config.product_url).context("PRODUCT_URL")?),
    ));

    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let recovery = Recovery {
        older_than: Duration::from_secs(config.recovery_after_secs),
        batch: config.recovery_batch.max(1),
    };
    let every = Duration::from_secs(config.recovery_interval_secs.max(1));
    let recovering = {
        let orders = orders.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop_rx.changed() => break,
                }
                if let Err(e) = orders.recover_once(recovery).await {
                    tracing::warn!(error = %e, "recovery round failed");
                }
            }
        })
    };

    let router = server::grpc_router(
        &[shop_order::pb::order_service_server::SERVICE_NAME],
        &[shop_order::FILE_DESCRIPTOR_SET],
    )
    .await?;
    tracing::info!(listen = %config.listen, product = %config.product_url, cart = %config.cart_command_url, "order service serving");
    router
        .add_service(shop_order::order_server(orders))
        .serve_with_shutdown(config.listen, server::shutdown_signal())
        .await?;
    let _ = stop_tx.send(true);
    let _ = recovering.await;
    pool.close().await;
    tracing::info!("order service stopped");
    Ok(())
}
