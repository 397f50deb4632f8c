//! What the cart's aggregate cannot decide alone: an account deleted deletes that
//! customer's carts. (That an added product exists is the spec's `exists` check,
//! generated.)

use keel::ServiceError;
use keel::es::command::load;
use keel::es::store::EventStore;
use shop_cart::{CartCommand, CartDecider, CartSubscriptions, DeleteCart};
use uuid::Uuid;

use crate::aggregate::Cart;

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
        let customer = customer_id.to_string();
        for cart_id in (self.0)
            .streams_with("CustomerAssigned", "customer_id", &customer)
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
