//! The command side: `shop.cart.v1.CartCommandService` over the event store.
//!
//! One command = load the cart's commits, fold, check the expected version, decide,
//! append ONE commit document. Nothing is published from here (that would be a dual
//! write): the relay tails the store.
//!
//! Idempotency key: the request's optional `idempotency_key`. With one, the commit id is
//! derived from (command name, cart id, key): a client that retries with the same key
//! gets the first attempt's result (its version), never a second effect and never a
//! conflict. Without one, every call is a new attempt (two commands in one GraphQL
//! request both apply). Commands run for another service's event use that event's id.
//!
//! A command without `expected_version` that loses a race is decided again on the new
//! state (up to `conflict_retries` times, with a jittered pause): callers see ABORTED
//! only when they named a version or the bound is exhausted.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{SubsecRound, Utc};
use shop_cart::{
    AddProduct, AssignCustomer, CartAggregate, CartCommand, CartSubscriptions,
    ChangeProductQuantity, DeleteCart, EventMeta, RemoveProduct, ResetCart, decide, pb,
};
use shop_kit::{RequestContext, ServiceError};
use shop_product::pb::product_service_client::ProductServiceClient;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::aggregate::Cart;
use crate::store::{Appended, Commit, EventStore, NewCommit, StoredEvent};

/// The commit id of `command` on `cart_id`: derived from the caller's idempotency key,
/// so that a retry finds its first commit; a new id when there is no key.
pub fn commit_id(command: &CartCommand, cart_id: Uuid, key: Option<&str>) -> Uuid {
    let name = match command {
        CartCommand::AddProduct(_) => "AddProduct",
        CartCommand::RemoveProduct(_) => "RemoveProduct",
        CartCommand::ChangeProductQuantity(_) => "ChangeProductQuantity",
        CartCommand::ResetCart(_) => "ResetCart",
        CartCommand::DeleteCart(_) => "DeleteCart",
        CartCommand::AssignCustomer(_) => "AssignCustomer",
    };
    shop_kit::idempotency::attempt_id(&format!("cart.{name}/{cart_id}"), key)
}

/// How long to wait before deciding again after losing a race: growing with the
/// attempt, jittered so that the writers that collided spread out.
fn conflict_backoff(attempt: u32) -> Duration {
    let cap_us = 200u64 << attempt.min(8);
    let jitter = (Uuid::new_v4().as_u128() % u128::from(cap_us.max(1))) as u64;
    Duration::from_micros(jitter)
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

/// What a command did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Executed {
    /// The cart's version after the command.
    pub version: i64,
    /// Where its commit was stored; `None` when it emitted nothing.
    pub position: Option<i64>,
    /// The commit id was stored before: this is the first attempt's result.
    pub duplicate: bool,
}

/// The cart's command use cases.
#[derive(Clone)]
pub struct CartCommands {
    store: EventStore,
    catalog: Arc<dyn ProductCatalog>,
    /// Without `expected_version`, how often a command that lost a race is decided again
    /// on the new state before the caller gets ABORTED.
    conflict_retries: u32,
}

impl CartCommands {
    pub fn new(store: EventStore, catalog: Arc<dyn ProductCatalog>) -> CartCommands {
        CartCommands {
            store,
            catalog,
            conflict_retries: 64,
        }
    }

    pub fn with_conflict_retries(mut self, retries: u32) -> CartCommands {
        self.conflict_retries = retries;
        self
    }

    pub fn store(&self) -> &EventStore {
        &self.store
    }

    /// The state and version of one cart, folded from the store.
    pub async fn load(&self, cart_id: Uuid) -> Result<(Cart, i64, Vec<Commit>), ServiceError> {
        let commits = self.store.load(cart_id).await?;
        let mut state = Cart::default();
        let mut version = 0;
        for c in &commits {
            for e in &c.events {
                if e.meta.version != version + 1 {
                    return Err(ServiceError::Internal(format!(
                        "cart {cart_id}: version {} follows {version}",
                        e.meta.version
                    )));
                }
                state.apply(&e.event);
                version = e.meta.version;
            }
        }
        Ok((state, version, commits))
    }

    /// Runs `command` under the idempotency key `key`, if any (see the module docs).
    pub async fn execute<'k>(
        &self,
        ctx: &RequestContext,
        key: impl Into<Option<&'k str>>,
        expected_version: Option<i64>,
        command: &CartCommand,
    ) -> Result<Executed, ServiceError> {
        let key = key.into();
        let retries = if expected_version.is_some() {
            0
        } else {
            self.conflict_retries
        };
        let mut attempt = 0;
        loop {
            match self.execute_once(ctx, key, expected_version, command).await {
                Err(ServiceError::Conflict(_)) if attempt < retries => {
                    attempt += 1;
                    tokio::time::sleep(conflict_backoff(attempt)).await;
                }
                other => return other,
            }
        }
    }

    async fn execute_once(
        &self,
        ctx: &RequestContext,
        key: Option<&str>,
        expected_version: Option<i64>,
        command: &CartCommand,
    ) -> Result<Executed, ServiceError> {
        let cart_id = command
            .stream_id()
            .ok_or_else(|| ServiceError::Internal("command without a cart id".into()))?;
        // Without a key, each attempt (also each decide-again) is new: nothing to find.
        let commit_id = commit_id(command, cart_id, key);
        let (state, version, commits) = self.load(cart_id).await?;
        if let Some(first) = commits.iter().find(|c| c.commit_id == commit_id) {
            return Ok(Executed {
                version: first.rev_to,
                position: Some(first.position),
                duplicate: true,
            });
        }
        if let Some(expected) = expected_version
            && expected != version
        {
            return Err(ServiceError::Conflict(format!(
                "cart {cart_id} is at version {version}, expected {expected}"
            )));
        }
        let new_events = decide(&state, command)?;
        if new_events.is_empty() {
            return Ok(Executed {
                version,
                position: None,
                duplicate: false,
            });
        }
        if let CartCommand::AddProduct(add) = command
            && !self.catalog.exists(ctx, add.product_id).await?
        {
            return Err(ServiceError::not_found("product", add.product_id));
        }
        // The store keeps milliseconds; truncate so the envelope equals what is stored.
        let occurred_at = Utc::now().trunc_subsecs(3);
        let events: Vec<StoredEvent> = new_events
            .into_iter()
            .zip(version + 1..)
            .map(|(event, v)| StoredEvent {
                meta: EventMeta {
                    event_id: Uuid::now_v7(),
                    stream_id: cart_id,
                    version: v,
                    occurred_at,
                    correlation_id: ctx.correlation_id.clone(),
                    causation_id: ctx.request_id.clone(),
                },
                event,
            })
            .collect();
        let commit = NewCommit {
            stream_id: cart_id,
            commit_seq: commits.last().map(|c| c.commit_seq).unwrap_or(0) + 1,
            commit_id,
            events,
            correlation_id: ctx.correlation_id.clone(),
            causation_id: ctx.request_id.clone(),
        };
        let done = match self.store.append(&commit).await? {
            Appended::Committed { position, rev_to } => Executed {
                version: rev_to,
                position: Some(position),
                duplicate: false,
            },
            Appended::Duplicate { position, rev_to } => Executed {
                version: rev_to,
                position: Some(position),
                duplicate: true,
            },
        };
        tracing::info!(
            request_id = %ctx.request_id,
            cart_id = %cart_id,
            version = done.version,
            position = ?done.position,
            duplicate = done.duplicate,
            "command committed"
        );
        Ok(done)
    }

    async fn run(
        &self,
        ctx: RequestContext,
        key: Option<String>,
        expected_version: Option<i64>,
        command: CartCommand,
    ) -> Result<(String, i64), ServiceError> {
        let cart_id = command.stream_id().unwrap_or_default();
        let done = self
            .execute(&ctx, key.as_deref(), expected_version, &command)
            .await?;
        Ok((cart_id.to_string(), done.version))
    }
}

impl shop_cart::CartCommandUseCases for CartCommands {
    async fn add_product(
        &self,
        ctx: RequestContext,
        request: pb::AddProductRequest,
    ) -> Result<pb::AddProductResponse, ServiceError> {
        let c = CartCommand::AddProduct(AddProduct::try_from(&request)?);
        let (cart_id, version) = self
            .run(ctx, request.idempotency_key, request.expected_version, c)
            .await?;
        Ok(pb::AddProductResponse { cart_id, version })
    }

    async fn remove_product(
        &self,
        ctx: RequestContext,
        request: pb::RemoveProductRequest,
    ) -> Result<pb::RemoveProductResponse, ServiceError> {
        let c = CartCommand::RemoveProduct(RemoveProduct::try_from(&request)?);
        let (cart_id, version) = self
            .run(ctx, request.idempotency_key, request.expected_version, c)
            .await?;
        Ok(pb::RemoveProductResponse { cart_id, version })
    }

    async fn change_product_quantity(
        &self,
        ctx: RequestContext,
        request: pb::ChangeProductQuantityRequest,
    ) -> Result<pb::ChangeProductQuantityResponse, ServiceError> {
        let c = CartCommand::ChangeProductQuantity(ChangeProductQuantity::try_from(&request)?);
        let (cart_id, version) = self
            .run(ctx, request.idempotency_key, request.expected_version, c)
            .await?;
        Ok(pb::ChangeProductQuantityResponse { cart_id, version })
    }

    async fn reset_cart(
        &self,
        ctx: RequestContext,
        request: pb::ResetCartRequest,
    ) -> Result<pb::ResetCartResponse, ServiceError> {
        let c = CartCommand::ResetCart(ResetCart::try_from(&request)?);
        let (cart_id, version) = self
            .run(ctx, request.idempotency_key, request.expected_version, c)
            .await?;
        Ok(pb::ResetCartResponse { cart_id, version })
    }

    async fn delete_cart(
        &self,
        ctx: RequestContext,
        request: pb::DeleteCartRequest,
    ) -> Result<pb::DeleteCartResponse, ServiceError> {
        let c = CartCommand::DeleteCart(DeleteCart::try_from(&request)?);
        let (cart_id, version) = self
            .run(ctx, request.idempotency_key, request.expected_version, c)
            .await?;
        Ok(pb::DeleteCartResponse { cart_id, version })
    }

    async fn assign_customer(
        &self,
        ctx: RequestContext,
        request: pb::AssignCustomerRequest,
    ) -> Result<pb::AssignCustomerResponse, ServiceError> {
        let c = CartCommand::AssignCustomer(AssignCustomer::try_from(&request)?);
        let (cart_id, version) = self
            .run(ctx, request.idempotency_key, request.expected_version, c)
            .await?;
        Ok(pb::AssignCustomerResponse { cart_id, version })
    }
    /// The cart folded from the event store at its latest version (strongly consistent,
    /// unlike ViewCart): checkout prices and resets exactly this version. Same contract
    /// as ViewCart: an unknown or deleted cart is NOT_FOUND.
    async fn load_cart(
        &self,
        _ctx: RequestContext,
        request: pb::LoadCartRequest,
    ) -> Result<pb::LoadCartResponse, ServiceError> {
        let id = Uuid::parse_str(&request.cart_id)
            .map_err(|_| ServiceError::invalid("cart_id", "must be a UUID"))?;
        let (state, version, _) = self.load(id).await?;
        if !state.is_live() {
            return Err(ServiceError::not_found("cart", id));
        }
        Ok(pb::LoadCartResponse {
            cart: Some(crate::query::cart_pb(id, state.customer_id, &state.items)),
            version,
        })
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
        for cart_id in self.store.streams_assigned_to(customer_id).await? {
            let (state, _, _) = self.load(cart_id).await?;
            if state.is_live() && state.customer_id == Some(customer_id) {
                commands.push(CartCommand::DeleteCart(DeleteCart { cart_id }));
            }
        }
        Ok(commands)
    }
}
