//! The query side: `shop.cart.v1.CartQueryService/ViewCart` from the read model.
//!
//! Contract: a cart the read model does not hold (never created, not yet projected, or
//! deleted) is NOT_FOUND. A cart that exists has `version >= 1` and may have no items
//! (after a reset or removals). The read model lags the command side: a client that
//! just ran a command and wants to see it polls until `version` reaches the version the
//! command returned (NOT_FOUND until a new cart's first event is projected).

use std::collections::BTreeMap;

use shop_cart::pb;
use shop_kit::sql::Db;
use shop_kit::{RequestContext, ServiceError};
use uuid::Uuid;

use crate::projection::load_view;

#[derive(Clone)]
pub struct CartQueries {
    db: Db,
}

impl CartQueries {
    pub fn new(db: Db) -> CartQueries {
        CartQueries { db }
    }
}

impl shop_cart::CartQueryUseCases for CartQueries {
    async fn view_cart(
        &self,
        _ctx: RequestContext,
        request: pb::ViewCartRequest,
    ) -> Result<pb::ViewCartResponse, ServiceError> {
        let id = Uuid::parse_str(&request.cart_id)
            .map_err(|_| ServiceError::invalid("cart_id", "must be a UUID"))?;
        let view = load_view(&self.db, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("cart", id))?;
        Ok(pb::ViewCartResponse {
            cart: Some(cart_pb(id, view.customer_id, &view.items)),
            version: view.version,
        })
    }
}

/// A cart as the proto carries it, for both the read model and the command side.
pub fn cart_pb(id: Uuid, customer_id: Option<Uuid>, items: &BTreeMap<Uuid, i32>) -> pb::Cart {
    pb::Cart {
        id: id.to_string(),
        customer_id: customer_id.map(|c| c.to_string()),
        items: items
            .iter()
            .map(|(p, q)| pb::CartItem {
                product_id: p.to_string(),
                quantity: *q,
            })
            .collect(),
    }
}
