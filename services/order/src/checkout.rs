//! Checkout = CreateOrder + ResetCart, idempotent and crash-safe (the protocol and its
//! failure cases are in this crate's README.md):
//!
//! 1. load the cart at its latest version V from the cart command side;
//! 2. price every item from the product service;
//! 3. insert the order as `pending`, id = UUIDv5(cart id, V), or find the one a previous
//!    attempt inserted (unique (cart_id, cart_version));
//! 4. reset the cart with expected version V and commit id = the order id;
//! 5. mark the order `placed` (or `cancelled` if the cart had changed since V).
//!
//! Steps 4 and 5 are [`Orders::complete`], which the recovery task also runs for orders
//! left `pending` by a crash or an unreachable cart service.

use std::future::Future;
use std::time::Duration;

use chrono::Utc;
use keel::{RequestContext, ServiceError};
use shop_order::pb;
use uuid::Uuid;

use crate::Orders;
use crate::store::{self, Detail, NewOrder, Status, order_id_for};

/// A cart as the command side has it, at `version` (0: it does not exist).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CartSnapshot {
    pub customer_id: Option<String>,
    /// (product id, quantity) per item.
    pub items: Vec<(String, i32)>,
    pub version: i64,
}

/// What ResetCart with an expected version answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResetOutcome {
    /// The cart is reset by this commit (now, or by an earlier attempt with the same commit id).
    Reset,
    /// The cart is not at the expected version and this commit never happened (ABORTED).
    Changed(String),
}

/// The cart command side, as checkout needs it.
pub trait Carts: Send + Sync + 'static {
    /// The cart at its latest version (strongly consistent), `None` if it never existed.
    fn load(
        &self,
        ctx: &RequestContext,
        cart_id: Uuid,
    ) -> impl Future<Output = Result<Option<CartSnapshot>, ServiceError>> + Send;

    /// ResetCart(cart_id, expected_version) under the idempotency key `commit_id`, so
    /// that a retry is recognised by the cart as the same commit.
    fn reset(
        &self,
        correlation_id: &str,
        cart_id: Uuid,
        expected_version: i64,
        commit_id: Uuid,
    ) -> impl Future<Output = Result<ResetOutcome, ServiceError>> + Send;
}

/// A product's name and price now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedProduct {
    pub name: String,
    pub price: i64,
}

/// The product service, as checkout needs it.
pub trait Catalog: Send + Sync + 'static {
    /// `None` if there is no such product (never was, or deleted).
    fn product(
        &self,
        ctx: &RequestContext,
        id: Uuid,
    ) -> impl Future<Output = Result<Option<PricedProduct>, ServiceError>> + Send;
}

/// How the recovery task finds orders to complete.
#[derive(Debug, Clone, Copy)]
pub struct Recovery {
    /// Pending orders younger than this are left to the checkout that is placing them.
    pub older_than: Duration,
    /// At most this many orders per round.
    pub batch: i64,
}

impl Default for Recovery {
    fn default() -> Self {
        Recovery {
            older_than: Duration::from_secs(10),
            batch: 100,
        }
    }
}

fn conflict(order: &pb::Order) -> ServiceError {
    ServiceError::Conflict(format!(
        "cart {} changed after version {} while checking out; check out again",
        order.cart_id, order.cart_version
    ))
}

impl<C: Carts, P: Catalog> Orders<C, P> {
    /// The whole checkout of one cart; see the module documentation.
    pub async fn checkout_cart(
        &self,
        ctx: &RequestContext,
        cart_id: Uuid,
        customer_id: Uuid,
    ) -> Result<pb::Order, ServiceError> {
        let cart = self.carts.load(ctx, cart_id).await?.unwrap_or_default();
        if let Some(owner) = &cart.customer_id
            && Uuid::parse_str(owner).ok() != Some(customer_id)
        {
            return Err(ServiceError::FailedPrecondition(format!(
                "cart {cart_id} belongs to another customer"
            )));
        }
        if cart.items.is_empty() {
            // A retry of a checkout whose reset went through finds the cart empty, one
            // version after the order's: answer with that order.
            if cart.version > 0
                && let Ok(before) = i32::try_from(cart.version - 1)
                && let Some(order) = store::by_cart(&self.db, cart_id, before).await?
                && order.status != Status::Cancelled.as_str()
                && order.customer_id == customer_id.to_string()
            {
                return self.complete(ctx, order).await;
            }
            return Err(ServiceError::FailedPrecondition(format!(
                "cart {cart_id} is empty"
            )));
        }
        let version = i32::try_from(cart.version).map_err(|_| {
            ServiceError::Internal(format!("cart version {} out of range", cart.version))
        })?;
        // A retry of this very checkout: no need to price again.
        if let Some(order) = store::by_cart(&self.db, cart_id, version).await? {
            return self.checked_owner(order, customer_id, ctx).await;
        }
        let details = self.price(ctx, &cart).await?;
        if store::total_of(&details).is_none() {
            return Err(ServiceError::FailedPrecondition(format!(
                "the total of cart {cart_id} does not fit in 64 bits"
            )));
        }
        let new = NewOrder {
            id: order_id_for(cart_id, cart.version),
            customer_id,
            cart_id,
            cart_version: version,
            status: Status::Pending,
            details,
        };
        let order = match store::insert(&self.db, &new).await? {
            Some(order) => {
                tracing::info!(request_id = %ctx.request_id, order_id = %new.id, %cart_id, version, "order pending");
                order
            }
            // A concurrent attempt inserted it first.
            None => store::by_cart(&self.db, cart_id, version)
                .await?
                .ok_or_else(|| {
                    ServiceError::Internal(format!("order of cart {cart_id}@{version} vanished"))
                })?,
        };
        self.checked_owner(order, customer_id, ctx).await
    }

    async fn checked_owner(
        &self,
        order: pb::Order,
        customer_id: Uuid,
        ctx: &RequestContext,
    ) -> Result<pb::Order, ServiceError> {
        if order.customer_id != customer_id.to_string() {
            return Err(ServiceError::FailedPrecondition(format!(
                "cart {} was checked out by another customer",
                order.cart_id
            )));
        }
        self.complete(ctx, order).await
    }

    async fn price(
        &self,
        ctx: &RequestContext,
        cart: &CartSnapshot,
    ) -> Result<Vec<Detail>, ServiceError> {
        let mut details = Vec::with_capacity(cart.items.len());
        for (product_id, quantity) in &cart.items {
            let unknown = || {
                ServiceError::FailedPrecondition(format!(
                    "product {product_id} in the cart does not exist any more; remove it from the cart"
                ))
            };
            let id = Uuid::parse_str(product_id).map_err(|_| unknown())?;
            let product = self.catalog.product(ctx, id).await?.ok_or_else(unknown)?;
            details.push(Detail {
                product_id: id,
                product_name: product.name,
                unit_price: product.price,
                quantity: *quantity,
            });
        }
        Ok(details)
    }

    /// Steps 4 and 5: reset the cart at the order's version (as the commit named by the
    /// order id) and mark the order placed, or cancelled if the cart had moved on.
    /// Safe to run any number of times, concurrently, in any process.
    pub async fn complete(
        &self,
        ctx: &RequestContext,
        order: pb::Order,
    ) -> Result<pb::Order, ServiceError> {
        match Status::parse(&order.status) {
            Some(Status::Placed) => return Ok(order),
            Some(Status::Cancelled) => return Err(conflict(&order)),
            Some(Status::Pending) => {}
            None => {
                return Err(ServiceError::Internal(format!(
                    "order {} has status {:?}",
                    order.id, order.status
                )));
            }
        }
        let id = Uuid::parse_str(&order.id)
            .map_err(|_| ServiceError::Internal(format!("order id {:?}", order.id)))?;
        let cart_id = Uuid::parse_str(&order.cart_id)
            .map_err(|_| ServiceError::Internal(format!("cart id {:?}", order.cart_id)))?;
        let outcome = self
            .carts
            .reset(
                &ctx.correlation_id,
                cart_id,
                i64::from(order.cart_version),
                id,
            )
            .await?;
        let to = match outcome {
            ResetOutcome::Reset => Status::Placed,
            ResetOutcome::Changed(why) => {
                tracing::info!(order_id = %id, %cart_id, %why, "cart changed before its reset: order cancelled");
                Status::Cancelled
            }
        };
        let order = store::finish(&self.db, id, to).await?;
        match Status::parse(&order.status) {
            Some(Status::Placed) => {
                tracing::info!(request_id = %ctx.request_id, order_id = %id, "order placed");
                Ok(order)
            }
            Some(Status::Cancelled) => Err(conflict(&order)),
            _ => Err(ServiceError::Internal(format!(
                "order {id} still {}",
                order.status
            ))),
        }
    }

    /// One round of recovery: completes up to `batch` pending orders older than the
    /// threshold. Returns how many it looked at.
    pub async fn recover_once(&self, recovery: Recovery) -> Result<usize, ServiceError> {
        let older = chrono::Duration::from_std(recovery.older_than)
            .unwrap_or_else(|_| chrono::Duration::seconds(10));
        let orders = store::pending(&self.db, Utc::now() - older, recovery.batch).await?;
        let n = orders.len();
        for order in orders {
            let ctx = RequestContext {
                request_id: format!("recovery-{}", order.id),
                correlation_id: order.id.clone(),
            };
            let id = order.id.clone();
            match self.complete(&ctx, order).await {
                Ok(_) => tracing::info!(order_id = %id, "recovery placed a pending order"),
                Err(ServiceError::Conflict(_)) => {
                    tracing::info!(order_id = %id, "recovery cancelled a pending order")
                }
                Err(e) => {
                    tracing::warn!(order_id = %id, error = %e, "recovery could not complete an order yet")
                }
            }
        }
        Ok(n)
    }
}
