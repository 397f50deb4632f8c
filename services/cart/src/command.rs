//! The command side: `shop.cart.v1.CartCommandService` on the runtime's executor
//! ([`shop_kit::es::command`]: load and fold, decide, one commit per command, retries
//! answered from their first commit by idempotency key, lost races decided again).
//! Nothing is published from here (that would be a dual write): the relay tails the
//! store. Commands run for another service's event use that event's id as their key.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use shop_cart::{CartCommand, CartCommandHandlers, CartDecider, CartSubscriptions, DeleteCart};
pub use shop_kit::es::command::Executed;
use shop_kit::es::command::{Checks, Executor};
use shop_kit::{RequestContext, ServiceError};
use shop_product::pb::product_service_client::ProductServiceClient;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::aggregate::Cart;
use crate::store::{Commit, EventStore};

/// The commit id of `command` on `cart_id` under the idempotency key `key` (what the
/// runtime's executor derives).
pub fn commit_id(command: &CartCommand, cart_id: Uuid, key: Option<&str>) -> Uuid {
    shop_kit::es::command::commit_id::<CartDecider<Cart>>(cart_id, command, key)
}

/// Whether a product exists (the product service, or a stand-in in tests).
#[async_trait]
pub trait ProductCatalog: Send + Sync + 'static {
    async fn exists(&self, ctx: &RequestContext, product_id: Uuid) -> Result<bool, ServiceError>;
}

/// The product service over gRPC, on a lazy channel: the cart starts without it and a
/// call made while it is down is UNAVAILABLE.
pub struct GrpcCatalog {
    client: ProductServiceClient<Channel>,
    timeout: Duration,
}

impl GrpcCatalog {
    pub fn new(url: &str, timeout: Duration) -> anyhow::Result<GrpcCatalog> {
        let timeouts = shop_kit::upstream::Timeouts {
            call: timeout,
            connect: Duration::from_secs(1),
        };
        let channel = shop_kit::upstream::channel("product", url, timeouts)?;
        Ok(GrpcCatalog {
            client: ProductServiceClient::new(channel),
            timeout,
        })
    }
}

#[async_trait]
impl ProductCatalog for GrpcCatalog {
    async fn exists(&self, ctx: &RequestContext, product_id: Uuid) -> Result<bool, ServiceError> {
        let mut request = tonic::Request::new(shop_product::pb::GetProductRequest {
            id: product_id.to_string(),
        });
        request.set_timeout(self.timeout);
        if let Ok(v) = ctx.request_id.parse() {
            request.metadata_mut().insert("x-request-id", v);
        }
        if let Ok(v) = ctx.correlation_id.parse() {
            request.metadata_mut().insert("x-correlation-id", v);
        }
        match self.client.clone().get_product(request).await {
            Ok(r) => Ok(r.into_inner().product.is_some()),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(false),
            Err(s) => Err(ServiceError::Unavailable(format!(
                "product service: {:?}: {}",
                s.code(),
                s.message()
            ))),
        }
    }
}

/// A fixed set of products (tests, benchmarks); `None` accepts every product.
pub struct FixedCatalog(pub Option<HashSet<Uuid>>);

#[async_trait]
impl ProductCatalog for FixedCatalog {
    async fn exists(&self, _ctx: &RequestContext, product_id: Uuid) -> Result<bool, ServiceError> {
        Ok(self.0.as_ref().is_none_or(|s| s.contains(&product_id)))
    }
}

/// The executor's check before an append: an added product exists.
#[derive(Clone)]
pub struct ProductExists(Arc<dyn ProductCatalog>);

impl Checks<CartDecider<Cart>> for ProductExists {
    async fn check(
        &self,
        ctx: &RequestContext,
        _state: &Cart,
        command: &CartCommand,
    ) -> Result<(), ServiceError> {
        if let CartCommand::AddProduct(add) = command
            && !self.0.exists(ctx, add.product_id).await?
        {
            return Err(ServiceError::not_found("product", add.product_id));
        }
        Ok(())
    }
}

/// The cart's command use cases, on the runtime's executor.
#[derive(Clone)]
pub struct CartCommands {
    executor: Executor<CartDecider<Cart>, ProductExists>,
}

impl CartCommands {
    pub fn new(store: EventStore, catalog: Arc<dyn ProductCatalog>) -> CartCommands {
        CartCommands {
            executor: Executor::new(store, ProductExists(catalog)),
        }
    }

    pub fn with_conflict_retries(mut self, retries: u32) -> CartCommands {
        self.executor = self.executor.with_conflict_retries(retries);
        self
    }

    pub fn store(&self) -> &EventStore {
        self.executor.store()
    }

    pub fn executor(&self) -> &Executor<CartDecider<Cart>, ProductExists> {
        &self.executor
    }

    /// The generated use cases of `CartCommandService` on this executor.
    pub fn handlers(&self) -> CartCommandHandlers<Cart, ProductExists> {
        CartCommandHandlers {
            executor: self.executor.clone(),
        }
    }

    /// The state and version of one cart, folded from the store.
    pub async fn load(&self, cart_id: Uuid) -> Result<(Cart, i64, Vec<Commit>), ServiceError> {
        self.executor.load(cart_id).await
    }

    /// Runs `command` under the idempotency key `key`, if any (see the module docs).
    pub async fn execute<'k>(
        &self,
        ctx: &RequestContext,
        key: impl Into<Option<&'k str>>,
        expected_version: Option<i64>,
        command: &CartCommand,
    ) -> Result<Executed, ServiceError> {
        self.executor
            .execute(ctx, key.into(), expected_version, command)
            .await
    }
}

impl CartSubscriptions for CartCommands {
    /// The carts whose customer is `customer_id` now, found in the event store (the
    /// source of truth, not the possibly lagging read model): each gets a `DeleteCart`.
    async fn on_user_account_deleted(
        &self,
        customer_id: Uuid,
        _event: &shop_user::AccountDeleted,
    ) -> Result<Vec<CartCommand>, ServiceError> {
        let mut commands = Vec::new();
        let assigned = self
            .store()
            .streams_with("CustomerAssigned", "customer_id", &customer_id.to_string())
            .await?;
        for cart_id in assigned {
            let (state, _, _) = self.load(cart_id).await?;
            if state.is_live() && state.customer_id == Some(customer_id) {
                commands.push(CartCommand::DeleteCart(DeleteCart { cart_id }));
            }
        }
        Ok(commands)
    }
}
