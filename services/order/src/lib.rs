//! The order service's rules, behind the generated `OrderHooks` trait: the spec states
//! everything else (the store, CreateOrder, ViewOrders, GetOrder, paging, settings and
//! `run` are generated in `shop_order`). What is written here is what the spec cannot
//! say: checkout (see `README.md` and [`checkout`]) with its recovery task, and an order's
//! computed fields (its total; a direct order's own cart id at version 0).

pub mod checkout;
pub mod clients;
mod store;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use keel::sql::Db;
use keel::{RequestContext, ServiceError, server};
use shop_order::{OrderHooks, pb};
use tokio::sync::watch;
use tonic::transport::server::TcpIncoming;
use uuid::Uuid;

pub use checkout::{CartSnapshot, Carts, Catalog, PricedProduct, Recovery, ResetOutcome};
pub use shop_order::{MIGRATIONS, OrderCrud};
pub use store::{Status, order_id_for};

use clients::{GrpcCarts, GrpcCatalog, channel};

/// The order service's settings: the generated ones (listen address, database,
/// upstreams) and the recovery task's.
#[derive(clap::Parser, Debug, Clone)]
#[command(about = "The shop's order service (gRPC)")]
pub struct Config {
    #[command(flatten)]
    pub service: shop_order::Config,
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

/// Serves the order service (generated) with these rules and runs the recovery task,
/// until `stop` turns true. Installs no signal handler and no logger.
pub async fn run(
    config: Config,
    incoming: TcpIncoming,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let recovery = Recovery {
        older_than: Duration::from_secs(config.recovery_after_secs),
        batch: config.recovery_batch.max(1),
    };
    let every = Duration::from_secs(config.recovery_interval_secs.max(1));
    shop_order::run_with(config.service, incoming, stop, |c, db| {
        let carts = GrpcCarts::new(
            channel("cart-command", &c.cart_command_url).context("CART_COMMAND_URL")?,
        );
        let catalog = GrpcCatalog::new(channel("product", &c.product_url).context("PRODUCT_URL")?);
        Ok(Orders::new(db.clone(), carts, catalog).recovering(recovery, every))
    })
    .await
}

/// The order service's rules: its database, the cart command side and the catalog.
pub struct Orders<C, P> {
    db: Db,
    carts: C,
    catalog: P,
    recovery: Recovery,
    every: Duration,
}

impl<C: Carts, P: Catalog> Orders<C, P> {
    pub fn new(db: Db, carts: C, catalog: P) -> Self {
        Orders {
            db,
            carts,
            catalog,
            recovery: Recovery::default(),
            every: Duration::from_secs(5),
        }
    }

    /// How the background task recovers pending orders, and how often.
    pub fn recovering(self, recovery: Recovery, every: Duration) -> Self {
        Orders {
            recovery,
            every,
            ..self
        }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }
}

fn parse_uuid(field: &str, s: &str) -> Result<Uuid, ServiceError> {
    Uuid::parse_str(s).map_err(|_| ServiceError::invalid(field, "must be a UUID"))
}

impl<C: Carts, P: Catalog> OrderHooks for Orders<C, P> {
    async fn checkout(
        &self,
        _db: &Db,
        ctx: RequestContext,
        request: pb::CheckoutRequest,
    ) -> Result<pb::CheckoutResponse, ServiceError> {
        let cart_id = parse_uuid("cart_id", &request.cart_id)?;
        let customer_id = parse_uuid("customer_id", &request.customer_id)?;
        let order = self.checkout_cart(&ctx, cart_id, customer_id).await?;
        Ok(pb::CheckoutResponse { order: Some(order) })
    }

    /// An order's total is the sum of its lines; a direct order (CreateOrder, not
    /// checkout) stands for no cart: it gets a cart id of its own, at version 0, so the
    /// (cart_id, cart_version) key never collides with a checkout.
    fn fill_order(
        &self,
        ctx: &RequestContext,
        order: &mut pb::Order,
        created: bool,
    ) -> Result<(), ServiceError> {
        let details = store::details_from_request(&order.details)?;
        order.total = store::total_of(&details).ok_or_else(|| {
            ServiceError::invalid("details", "the order total does not fit in 64 bits")
        })?;
        if created {
            order.cart_id = order.id.clone();
            order.cart_version = 0;
            tracing::info!(request_id = %ctx.request_id, order_id = %order.id, total = order.total, "order created");
        }
        Ok(())
    }

    /// The recovery task: a round every `every` until `stop` turns true. A round cut
    /// short by the stop is harmless (completing an order is idempotent).
    async fn background(self: Arc<Self>, _db: Db, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = server::stopped(&mut stop) => break,
            }
            tokio::select! {
                round = self.recover_once(self.recovery) => {
                    if let Err(e) = round {
                        tracing::warn!(error = %e, "recovery round failed");
                    }
                }
                () = server::stopped(&mut stop) => break,
            }
        }
    }
}
