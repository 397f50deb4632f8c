//! What checkout reads and writes beyond the generated store: a pending order inserted
//! at most once per cart version, the order of a cart version, status changes, and the
//! pending orders recovery completes. Rows map through the generated `Record` of
//! `pb::Order`, owned lines through the generated `load_order`/`attach_order`.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use keel::crud::{self, Record};
use keel::sql::{self, Arg, Db};
use keel::{ServiceError, db};
use shop_order::pb;
use uuid::Uuid;

/// Where an order is in checkout (the `orders.status` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Stored; the cart reset is not known to have happened yet.
    Pending,
    /// The cart was reset at the order's cart version: done.
    Placed,
    /// The cart changed after the order's cart version; the reset never happened.
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Placed => "placed",
            Status::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "pending" => Some(Status::Pending),
            "placed" => Some(Status::Placed),
            "cancelled" => Some(Status::Cancelled),
            _ => None,
        }
    }
}

/// Namespace of the order ids checkout derives from (cart id, cart version).
const CHECKOUT_NAMESPACE: Uuid = Uuid::from_u128(0x6f72_6465_722d_4000_8000_6368_6563_6b6f);

/// The id of the order that checks out `cart_id` at `version`: the same on every retry,
/// in every process, so it doubles as the commit id of the cart reset.
pub fn order_id_for(cart_id: Uuid, version: i64) -> Uuid {
    let mut name = Vec::with_capacity(24);
    name.extend_from_slice(cart_id.as_bytes());
    name.extend_from_slice(&version.to_be_bytes());
    Uuid::new_v5(&CHECKOUT_NAMESPACE, &name)
}

/// One line of an order as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detail {
    pub product_id: Uuid,
    pub product_name: String,
    pub unit_price: i64,
    pub quantity: i32,
}

pub struct NewOrder {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub cart_id: Uuid,
    pub cart_version: i32,
    pub status: Status,
    pub details: Vec<Detail>,
}

/// The sum of unit price × quantity, `None` if it does not fit in an i64.
pub fn total_of(details: &[Detail]) -> Option<i64> {
    details.iter().try_fold(0i64, |sum, d| {
        d.unit_price
            .checked_mul(i64::from(d.quantity))
            .and_then(|line| sum.checked_add(line))
    })
}

/// Checks what the generated validation cannot (at least one line, no product twice).
pub fn details_from_request(details: &[pb::OrderDetail]) -> Result<Vec<Detail>, ServiceError> {
    if details.is_empty() {
        return Err(ServiceError::invalid(
            "details",
            "an order needs at least one detail",
        ));
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(details.len());
    for (i, d) in details.iter().enumerate() {
        let product_id = Uuid::parse_str(&d.product_id).map_err(|_| {
            ServiceError::invalid(format!("details[{i}].product_id"), "must be a UUID")
        })?;
        if !seen.insert(product_id) {
            return Err(ServiceError::invalid(
                format!("details[{i}].product_id"),
                "the same product appears twice; use one detail with the summed quantity",
            ));
        }
        out.push(Detail {
            product_id,
            product_name: d.product_name.clone(),
            unit_price: d.unit_price,
            quantity: d.quantity,
        });
    }
    if total_of(&out).is_none() {
        return Err(ServiceError::invalid(
            "details",
            "the order total does not fit in 64 bits",
        ));
    }
    Ok(out)
}

/// Inserts the order and its details in one transaction. `None` when an order with the
/// same id or the same (cart_id, cart_version) already exists (nothing is written then).
pub async fn insert(db: &Db, o: &NewOrder) -> Result<Option<pb::Order>, ServiceError> {
    let total = total_of(&o.details).ok_or_else(|| {
        ServiceError::invalid("details", "the order total does not fit in 64 bits")
    })?;
    let record = pb::Order {
        id: o.id.to_string(),
        customer_id: o.customer_id.to_string(),
        cart_id: o.cart_id.to_string(),
        cart_version: o.cart_version,
        total,
        placed_at: crud::timestamp(&crud::now()),
        status: o.status.as_str().to_string(),
        details: o.details.iter().map(Detail::to_pb).collect(),
    };
    let mut tx = db.begin().await.map_err(db::error)?;
    match crud::insert(&mut tx, &record).await {
        Ok(()) => {}
        Err(ServiceError::AlreadyExists(_)) => {
            tx.rollback().await.map_err(db::error)?;
            return Ok(None);
        }
        Err(e) => return Err(e),
    }
    shop_order::store_order_owned(&mut tx, o.id, &record).await?;
    tx.commit().await.map_err(db::error)?;
    shop_order::load_order(db, o.id).await
}

impl Detail {
    fn to_pb(&self) -> pb::OrderDetail {
        pb::OrderDetail {
            product_id: self.product_id.to_string(),
            product_name: self.product_name.clone(),
            unit_price: self.unit_price,
            quantity: self.quantity,
        }
    }
}

/// The orders `where` selects, with their details.
async fn orders_where(
    db: &Db,
    condition: &str,
    args: Vec<Arg>,
) -> Result<Vec<pb::Order>, ServiceError> {
    let rows = sql::query(format!(
        "SELECT {} FROM orders WHERE {condition}",
        pb::Order::COLUMNS.join(", ")
    ))
    .bind_all(args)
    .fetch_all(db)
    .await
    .map_err(db::error)?;
    let mut orders = rows
        .iter()
        .map(pb::Order::from_row)
        .collect::<Result<Vec<_>, _>>()
        .map_err(db::error)?;
    shop_order::attach_order(db, &mut orders).await?;
    Ok(orders)
}

/// The order of `cart_id` at `cart_version`, if checkout stored one.
pub async fn by_cart(
    db: &Db,
    cart_id: Uuid,
    cart_version: i32,
) -> Result<Option<pb::Order>, ServiceError> {
    let args = vec![Arg::from(cart_id), Arg::from(cart_version)];
    Ok(orders_where(db, "cart_id = $1 AND cart_version = $2", args)
        .await?
        .pop())
}

/// Moves a pending order to `to`; an order that already left `pending` keeps its status.
/// Returns the order as it now is.
pub async fn finish(db: &Db, id: Uuid, to: Status) -> Result<pb::Order, ServiceError> {
    sql::query("UPDATE orders SET status = $2 WHERE id = $1 AND status = 'pending'")
        .bind(id)
        .bind(to.as_str())
        .execute(db)
        .await
        .map_err(db::error)?;
    shop_order::load_order(db, id)
        .await?
        .ok_or_else(|| ServiceError::Internal(format!("order {id} vanished")))
}

/// Pending orders placed before `older_than`, oldest first, at most `limit`.
pub async fn pending(
    db: &Db,
    older_than: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<pb::Order>, ServiceError> {
    let args = vec![Arg::from(older_than), Arg::from(limit)];
    orders_where(
        db,
        "status = 'pending' AND placed_at < $1 ORDER BY placed_at, id LIMIT $2",
        args,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_ids_are_deterministic_per_cart_version() {
        let cart = Uuid::now_v7();
        assert_eq!(order_id_for(cart, 3), order_id_for(cart, 3));
        assert_ne!(order_id_for(cart, 3), order_id_for(cart, 4));
        assert_ne!(order_id_for(cart, 3), order_id_for(Uuid::now_v7(), 3));
    }

    #[test]
    fn totals_are_checked() {
        let d = |price, quantity| Detail {
            product_id: Uuid::now_v7(),
            product_name: "x".into(),
            unit_price: price,
            quantity,
        };
        assert_eq!(total_of(&[d(250, 2), d(100, 3)]), Some(800));
        assert_eq!(total_of(&[d(i64::MAX / 2, 3)]), None);
        assert_eq!(total_of(&[d(i64::MAX, 1), d(1, 1)]), None);
    }
}
