//! Orders in PostgreSQL or SQLite (chosen by the database URL), behind the generated
//! `OrderUseCases` trait. Requests arrive validated against the spec; this code keeps to
//! storage, paging and the checkout protocol (see `README.md` and [`checkout`]). Every
//! statement is written once, in the SQL both dialects share.

pub mod checkout;
pub mod clients;
mod store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use shop_kit::sql::{ConnectOptions, Db, Migrations};
use shop_kit::{RequestContext, ServiceError, server};
use shop_order::{OrderUseCases, pb};
use sqlx::migrate::Migrator;
use tokio::sync::watch;
use tonic::transport::server::TcpIncoming;
use uuid::Uuid;

pub use checkout::{CartSnapshot, Carts, Catalog, PricedProduct, Recovery, ResetOutcome};
pub use store::{Status, order_id_for};

use clients::{GrpcCarts, GrpcCatalog, channel};

/// The PostgreSQL migrations (`generated/sql/shop_order`).
pub static PG: Migrator = sqlx::migrate!("../../generated/sql/shop_order");
/// The SQLite migrations (`generated/sqlite/shop_order`).
pub static SQLITE: Migrator = sqlx::migrate!("../../generated/sqlite/shop_order");
/// Both, for [`Db::connect`]: the URL's dialect picks one.
pub static MIGRATIONS: Migrations = Migrations {
    postgres: &PG,
    sqlite: &SQLITE,
};

const DEFAULT_PAGE: i64 = 20;

/// The order service's settings: flags and environment of the binary, or a struct
/// literal in an in-process launcher.
#[derive(clap::Parser, Debug, Clone)]
#[command(about = "The shop's order service (gRPC)")]
pub struct Config {
    /// Address to serve gRPC on (the binary binds it; [`run`] takes the bound socket).
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:20102")]
    pub listen: SocketAddr,
    /// The order database: `postgres://…` or `sqlite://path/to/file.db`; the
    /// migrations of that dialect (generated/sql or generated/sqlite) run at start.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    pub max_connections: u32,
    /// How long to wait for the database at start.
    #[arg(long, env = "STARTUP_TIMEOUT_SECS", default_value_t = 30)]
    pub startup_timeout_secs: u64,
    /// The product service (its Envoy), for prices at checkout.
    #[arg(long, env = "PRODUCT_URL", default_value = "http://127.0.0.1:20201")]
    pub product_url: String,
    /// The cart command side (its Envoy), for LoadCart and ResetCart at checkout.
    #[arg(
        long,
        env = "CART_COMMAND_URL",
        default_value = "http://127.0.0.1:20203"
    )]
    pub cart_command_url: String,
    /// How often the recovery task completes pending orders.
    #[arg(long, env = "RECOVERY_INTERVAL_SECS", default_value_t = 5)]
    pub recovery_interval_secs: u64,
    /// Pending orders younger than this are left to the checkout placing them.
    #[arg(long, env = "RECOVERY_AFTER_SECS", default_value_t = 10)]
    pub recovery_after_secs: u64,
    /// At most this many pending orders per recovery round.
    #[arg(long, env = "RECOVERY_BATCH", default_value_t = 100)]
    pub recovery_batch: i64,
}

/// Connects to the database (applying migrations), serves gRPC (the order service,
/// health, reflection) on `incoming` and runs the recovery task, until `stop` turns true
/// (or its sender is dropped); then stops the recovery task and closes the pool.
/// Installs no signal handler and no logger: the caller owns the process.
pub async fn run(
    config: Config,
    incoming: TcpIncoming,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let db = Db::open(
        &config.database_url,
        &ConnectOptions::new(config.max_connections, config.startup_timeout_secs),
        &MIGRATIONS,
    )
    .await?;
    let served = serve(&config, db.clone(), incoming, stop).await;
    db.close().await;
    served?;
    tracing::info!("order service stopped");
    Ok(())
}

async fn serve(
    config: &Config,
    db: Db,
    incoming: TcpIncoming,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let orders = Arc::new(Orders::new(
        db.clone(),
        GrpcCarts::new(channel(&config.cart_command_url).context("CART_COMMAND_URL")?),
        GrpcCatalog::new(channel(&config.product_url).context("PRODUCT_URL")?),
    ));
    let router = server::grpc_router(
        &[shop_order::pb::order_service_server::SERVICE_NAME],
        &[shop_order::FILE_DESCRIPTOR_SET],
    )
    .await?;

    let recovery = Recovery {
        older_than: Duration::from_secs(config.recovery_after_secs),
        batch: config.recovery_batch.max(1),
    };
    let every = Duration::from_secs(config.recovery_interval_secs.max(1));
    let recovering = tokio::spawn(recover_until_stopped(
        orders.clone(),
        recovery,
        every,
        stop.clone(),
    ));

    tracing::info!(
        listen = %config.listen,
        dialect = ?db.dialect(),
        product = %config.product_url,
        cart = %config.cart_command_url,
        "order service serving"
    );
    let mut stop = stop;
    let served = router
        .add_service(shop_order::order_server(orders))
        .serve_with_incoming_shutdown(incoming, async move {
            server::stopped(&mut stop).await;
        })
        .await;
    // The server also ends on an error: the recovery task must not outlive it.
    recovering.abort();
    let _ = recovering.await;
    served?;
    Ok(())
}

/// The recovery task: a round every `every` until `stop` turns true. A round cut short
/// by the stop is harmless (completing an order is idempotent).
async fn recover_until_stopped<C: Carts, P: Catalog>(
    orders: Arc<Orders<C, P>>,
    recovery: Recovery,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = server::stopped(&mut stop) => break,
        }
        tokio::select! {
            round = orders.recover_once(recovery) => {
                if let Err(e) = round {
                    tracing::warn!(error = %e, "recovery round failed");
                }
            }
            () = server::stopped(&mut stop) => break,
        }
    }
}

/// The order service: its database, the cart command side and the product catalog.
pub struct Orders<C, P> {
    db: Db,
    carts: C,
    catalog: P,
}

impl<C: Carts, P: Catalog> Orders<C, P> {
    pub fn new(db: Db, carts: C, catalog: P) -> Self {
        Orders { db, carts, catalog }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }
}

fn parse_uuid(field: &str, s: &str) -> Result<Uuid, ServiceError> {
    Uuid::parse_str(s).map_err(|_| ServiceError::invalid(field, "must be a UUID"))
}

impl<C: Carts, P: Catalog> OrderUseCases for Orders<C, P> {
    async fn checkout(
        &self,
        ctx: RequestContext,
        request: pb::CheckoutRequest,
    ) -> Result<pb::CheckoutResponse, ServiceError> {
        let cart_id = parse_uuid("cart_id", &request.cart_id)?;
        let customer_id = parse_uuid("customer_id", &request.customer_id)?;
        let order = self.checkout_cart(&ctx, cart_id, customer_id).await?;
        Ok(pb::CheckoutResponse { order: Some(order) })
    }

    async fn create_order(
        &self,
        ctx: RequestContext,
        request: pb::CreateOrderRequest,
    ) -> Result<pb::CreateOrderResponse, ServiceError> {
        let customer_id = parse_uuid("customer_id", &request.customer_id)?;
        let details = store::details_from_request(&request.details)?;
        // A direct order stands for no cart: it gets a cart id of its own, at version 0,
        // so the (cart_id, cart_version) key never collides with a checkout.
        let id = Uuid::now_v7();
        let new = store::NewOrder {
            id,
            customer_id,
            cart_id: id,
            cart_version: 0,
            status: Status::Placed,
            details,
        };
        let order = store::insert(&self.db, &new)
            .await?
            .ok_or_else(|| ServiceError::Internal(format!("order {id} already existed")))?;
        tracing::info!(request_id = %ctx.request_id, order_id = %id, total = order.total, "order created");
        Ok(pb::CreateOrderResponse { order: Some(order) })
    }

    async fn view_orders(
        &self,
        _ctx: RequestContext,
        request: pb::ViewOrdersRequest,
    ) -> Result<pb::ViewOrdersResponse, ServiceError> {
        let customer_id = request
            .customer_id
            .as_deref()
            .map(|c| parse_uuid("customer_id", c))
            .transpose()?;
        let limit = if request.page_size == 0 {
            DEFAULT_PAGE
        } else {
            i64::from(request.page_size)
        };
        let after = store::decode_token(&request.page_token)?;
        let (orders, next_page_token) =
            store::page(&self.db, customer_id, after.as_ref(), limit).await?;
        Ok(pb::ViewOrdersResponse {
            orders,
            next_page_token,
        })
    }

    async fn get_order(
        &self,
        _ctx: RequestContext,
        request: pb::GetOrderRequest,
    ) -> Result<pb::GetOrderResponse, ServiceError> {
        let id = parse_uuid("id", &request.id)?;
        let order = store::get(&self.db, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("order", id))?;
        Ok(pb::GetOrderResponse { order: Some(order) })
    }
}
