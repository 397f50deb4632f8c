//! The real [`Carts`] and [`Catalog`]: gRPC through the Envoys of the cart command side
//! and of the product service.

use keel::upstream::{Timeouts, error, with_ids};
use keel::{RequestContext, ServiceError};
use shop_cart::pb as cart;
use shop_cart::pb::cart_command_service_client::CartCommandServiceClient;
use shop_product::pb as product;
use shop_product::pb::product_service_client::ProductServiceClient;
use tonic::Code;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::checkout::{CartSnapshot, Carts, Catalog, PricedProduct, ResetOutcome};

/// A lazily connected channel to deployable `name`: the service starts even if a
/// dependency is not up yet.
pub fn channel(name: &str, url: &str) -> anyhow::Result<Channel> {
    Ok(keel::upstream::channel(
        name,
        url,
        Timeouts::from_millis(10_000, 3_000),
    )?)
}

#[derive(Clone)]
pub struct GrpcCarts {
    command: CartCommandServiceClient<Channel>,
}

impl GrpcCarts {
    pub fn new(channel: Channel) -> Self {
        GrpcCarts {
            command: CartCommandServiceClient::new(channel),
        }
    }
}

impl Carts for GrpcCarts {
    async fn load(
        &self,
        ctx: &RequestContext,
        cart_id: Uuid,
    ) -> Result<Option<CartSnapshot>, ServiceError> {
        // LoadCart: the cart folded from the event store at its latest version (strong).
        let request = with_ids(
            cart::LoadCartRequest {
                cart_id: cart_id.to_string(),
            },
            &ctx.request_id,
            &ctx.correlation_id,
        );
        let response = match self.command.clone().load_cart(request).await {
            Ok(r) => r.into_inner(),
            Err(s) if s.code() == Code::NotFound => return Ok(None),
            Err(s) => return Err(error("cart", s)),
        };
        Ok(response.cart.map(|c| CartSnapshot {
            customer_id: c.customer_id,
            items: c
                .items
                .into_iter()
                .map(|i| (i.product_id, i.quantity))
                .collect(),
            version: response.version,
        }))
    }

    async fn reset(
        &self,
        correlation_id: &str,
        cart_id: Uuid,
        expected_version: i64,
        commit_id: Uuid,
    ) -> Result<ResetOutcome, ServiceError> {
        let request = with_ids(
            cart::ResetCartRequest {
                cart_id: cart_id.to_string(),
                expected_version: Some(expected_version),
                // The order's reset, under its own key: a retried checkout finds it.
                idempotency_key: Some(commit_id.to_string()),
            },
            &commit_id.to_string(),
            correlation_id,
        );
        match self.command.clone().reset_cart(request).await {
            Ok(_) => Ok(ResetOutcome::Reset),
            Err(s) if s.code() == Code::Aborted => Ok(ResetOutcome::Changed(s.message().into())),
            Err(s) => Err(error("cart", s)),
        }
    }
}

#[derive(Clone)]
pub struct GrpcCatalog {
    client: ProductServiceClient<Channel>,
}

impl GrpcCatalog {
    pub fn new(channel: Channel) -> Self {
        GrpcCatalog {
            client: ProductServiceClient::new(channel),
        }
    }
}

impl Catalog for GrpcCatalog {
    async fn product(
        &self,
        ctx: &RequestContext,
        id: Uuid,
    ) -> Result<Option<PricedProduct>, ServiceError> {
        let request = with_ids(
            product::GetProductRequest { id: id.to_string() },
            &format!("{}-{id}", ctx.request_id),
            &ctx.correlation_id,
        );
        match self.client.clone().get_product(request).await {
            Ok(r) => Ok(r.into_inner().product.map(|p| PricedProduct {
                name: p.name,
                price: p.price,
            })),
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) => Err(error("product", s)),
        }
    }
}
