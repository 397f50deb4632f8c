//! What the cart's aggregate cannot decide alone: the check before an append (an added
//! product exists, asked of the product service) and the subscription decision (an
//! account deleted deletes that customer's carts).

use shop_cart::{CartCommand, CartDecider, CartSubscriptions, Config, DeleteCart};
use shop_kit::es::command::{Checks, load};
use shop_kit::es::store::EventStore;
use shop_kit::upstream::{self, Timeouts};
use shop_kit::{RequestContext, ServiceError};
use shop_product::pb::{GetProductRequest, product_service_client::ProductServiceClient};
use tonic::transport::Channel;
use uuid::Uuid;

use crate::aggregate::Cart;

/// The check before an append: an added product exists in the product service.
#[derive(Clone)]
pub struct ProductExists(ProductServiceClient<Channel>);

impl ProductExists {
    pub fn from_config(config: &Config) -> anyhow::Result<ProductExists> {
        let timeouts = Timeouts {
            call: config.runtime.call_timeout(),
            connect: std::time::Duration::from_secs(1),
        };
        let channel = upstream::channel("product", &config.product_url, timeouts)?;
        Ok(ProductExists(ProductServiceClient::new(channel)))
    }
}

impl Checks<CartDecider<Cart>> for ProductExists {
    async fn check(
        &self,
        ctx: &RequestContext,
        _: &Cart,
        command: &CartCommand,
    ) -> Result<(), ServiceError> {
        let CartCommand::AddProduct(add) = command else {
            return Ok(());
        };
        let id = add.product_id.to_string();
        match self
            .0
            .clone()
            .get_product(upstream::request(ctx, GetProductRequest { id }))
            .await
        {
            Ok(_) => Ok(()),
            Err(s) if s.code() == tonic::Code::NotFound => {
                Err(ServiceError::not_found("product", add.product_id))
            }
            Err(s) => Err(upstream::error("product service", s)),
        }
    }
}

/// The cart's reactions to other services' events.
#[derive(Clone)]
pub struct Subscriptions(EventStore);

impl Subscriptions {
    pub fn new(store: &EventStore) -> Subscriptions {
        Subscriptions(store.clone())
    }
}

impl CartSubscriptions for Subscriptions {
    /// The carts whose customer is `customer_id` now, found in the event store (the
    /// source of truth, not the possibly lagging read model): each gets a `DeleteCart`.
    async fn on_user_account_deleted(
        &self,
        customer_id: Uuid,
        _event: &shop_user::AccountDeleted,
    ) -> Result<Vec<CartCommand>, ServiceError> {
        let mut commands = Vec::new();
        for cart_id in (self.0)
            .streams_with("CustomerAssigned", "customer_id", &customer_id.to_string())
            .await?
        {
            let (state, _, _) = load::<CartDecider<Cart>>(&self.0, cart_id).await?;
            if state.is_live() && state.customer_id == Some(customer_id) {
                commands.push(CartCommand::DeleteCart(DeleteCart { cart_id }));
            }
        }
        Ok(commands)
    }
}
