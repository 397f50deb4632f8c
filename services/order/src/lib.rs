//! Orders in PostgreSQL, behind the generated `OrderUseCases` trait. Requests arrive
//! validated against the spec; this code keeps to storage, paging and the checkout
//! protocol (see `README.md` and [`checkout`]).

pub mod checkout;
pub mod clients;
mod store;

use shop_kit::{RequestContext, ServiceError};
use shop_order::{OrderUseCases, pb};
use sqlx::PgPool;
use uuid::Uuid;

pub use checkout::{CartSnapshot, Carts, Catalog, PricedProduct, ResetOutcome};
pub use store::{Status, order_id_for};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../generated/sql/shop_order");

const DEFAULT_PAGE: i64 = 20;

/// The order service: its database, the cart command side and the product catalog.
pub struct Orders<C, P> {
    pool: PgPool,
    carts: C,
    catalog: P,
}

impl<C: Carts, P: Catalog> Orders<C, P> {
    pub fn new(pool: PgPool, carts: C, catalog: P) -> Self {
        Orders {
            pool,
            carts,
            catalog,
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
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
        let order = store::insert(&self.pool, &new)
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
            store::page(&self.pool, customer_id, after.as_ref(), limit).await?;
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
        let order = store::get(&self.pool, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("order", id))?;
        Ok(pb::GetOrderResponse { order: Some(order) })
    }
}
