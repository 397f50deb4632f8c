//! The `orders` and `order_details` tables: inserts, reads, keyset pages, status changes.

use std::collections::{HashMap, HashSet};

use base64::Engine;
use chrono::{DateTime, SubsecRound, Utc};
use shop_kit::sql::{self, Arg, Db};
use shop_kit::{ServiceError, db};
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

struct OrderRow {
    id: Uuid,
    customer_id: Uuid,
    cart_id: Uuid,
    cart_version: i32,
    total: i64,
    placed_at: DateTime<Utc>,
    status: String,
}

impl OrderRow {
    fn read(r: &sql::Row) -> Result<OrderRow, sql::Error> {
        Ok(OrderRow {
            id: r.uuid("id")?,
            customer_id: r.uuid("customer_id")?,
            cart_id: r.uuid("cart_id")?,
            cart_version: r.i32("cart_version")?,
            total: r.i64("total")?,
            placed_at: r.time("placed_at")?,
            status: r.text("status")?,
        })
    }

    fn read_all(rows: &[sql::Row]) -> Result<Vec<OrderRow>, ServiceError> {
        rows.iter()
            .map(OrderRow::read)
            .collect::<Result<_, _>>()
            .map_err(db::error)
    }
}

/// Reads one `order_details` row: (order id, the detail).
fn read_detail(r: &sql::Row) -> Result<(Uuid, pb::OrderDetail), sql::Error> {
    Ok((
        r.uuid("order_id")?,
        pb::OrderDetail {
            product_id: r.uuid("product_id")?.to_string(),
            product_name: r.text("product_name")?,
            unit_price: r.i64("unit_price")?,
            quantity: r.i32("quantity")?,
        },
    ))
}

fn to_pb(r: OrderRow, details: Vec<pb::OrderDetail>) -> pb::Order {
    pb::Order {
        id: r.id.to_string(),
        customer_id: r.customer_id.to_string(),
        cart_id: r.cart_id.to_string(),
        cart_version: r.cart_version,
        total: r.total,
        placed_at: Some(shop_kit::utc_to_timestamp(&r.placed_at)),
        details,
        status: r.status,
    }
}

const ORDER_COLUMNS: &str = "id, customer_id, cart_id, cart_version, total, placed_at, status";

/// Details per multi-row INSERT: 4 parameters a row plus the order id stay far below
/// either dialect's parameter limit (SQLite 32766, PostgreSQL 65535).
const DETAILS_PER_INSERT: usize = 500;

/// Inserts the order and its details in one transaction. `None` when an order with the
/// same id or the same (cart_id, cart_version) already exists (nothing is written then).
pub async fn insert(db: &Db, o: &NewOrder) -> Result<Option<pb::Order>, ServiceError> {
    let total = total_of(&o.details).ok_or_else(|| {
        ServiceError::invalid("details", "the order total does not fit in 64 bits")
    })?;
    // Both dialects keep microseconds; truncate so the answer equals what a read returns.
    let placed_at = Utc::now().trunc_subsecs(6);
    let mut tx = db.begin().await.map_err(db::error)?;
    let inserted = sql::query(
        "INSERT INTO orders (id, customer_id, cart_id, cart_version, total, placed_at, status) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(o.id)
    .bind(o.customer_id)
    .bind(o.cart_id)
    .bind(o.cart_version)
    .bind(total)
    .bind(placed_at)
    .bind(o.status.as_str())
    .fetch_optional(&mut tx)
    .await
    .map_err(db::error)?;
    if inserted.is_none() {
        tx.rollback().await.map_err(db::error)?;
        return Ok(None);
    }
    for chunk in o.details.chunks(DETAILS_PER_INSERT) {
        // ($1, $2, $3, $4, $5), ($1, $6, $7, $8, $9), …: $1 is the order id.
        let rows: Vec<String> = (0..chunk.len())
            .map(|i| format!("($1, {})", sql::placeholders(2 + 4 * i, 4)))
            .collect();
        let args = chunk.iter().flat_map(|d| {
            [
                Arg::from(d.product_id),
                Arg::from(&d.product_name),
                Arg::from(d.unit_price),
                Arg::from(d.quantity),
            ]
        });
        sql::query(format!(
            "INSERT INTO order_details (order_id, product_id, product_name, unit_price, quantity) \
             VALUES {}",
            rows.join(", ")
        ))
        .bind(o.id)
        .bind_all(args)
        .execute(&mut tx)
        .await
        .map_err(db::error)?;
    }
    tx.commit().await.map_err(db::error)?;
    let mut details: Vec<pb::OrderDetail> = o
        .details
        .iter()
        .map(|d| pb::OrderDetail {
            product_id: d.product_id.to_string(),
            product_name: d.product_name.clone(),
            unit_price: d.unit_price,
            quantity: d.quantity,
        })
        .collect();
    sort_details(&mut details);
    Ok(Some(to_pb(
        OrderRow {
            id: o.id,
            customer_id: o.customer_id,
            cart_id: o.cart_id,
            cart_version: o.cart_version,
            total,
            placed_at,
            status: o.status.as_str().to_string(),
        },
        details,
    )))
}

/// Details are listed by product name, then product id (the same order as the query).
fn sort_details(details: &mut [pb::OrderDetail]) {
    details.sort_by(|a, b| {
        (a.product_name.as_str(), a.product_id.as_str())
            .cmp(&(b.product_name.as_str(), b.product_id.as_str()))
    });
}

/// Loads the orders of `rows` with their details: one query for all the details.
async fn with_details(db: &Db, rows: Vec<OrderRow>) -> Result<Vec<pb::Order>, ServiceError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    // Lowercase hyphenated UUID text sorts like the uuid type, so `product_id` orders
    // the same on both dialects.
    let details = sql::query(format!(
        "SELECT order_id, product_id, product_name, unit_price, quantity FROM order_details \
         WHERE order_id IN ({}) ORDER BY order_id, product_name, product_id",
        sql::placeholders(1, rows.len())
    ))
    .bind_all(rows.iter().map(|r| Arg::from(r.id)))
    .fetch_all(db)
    .await
    .map_err(db::error)?;
    let mut by_order: HashMap<Uuid, Vec<pb::OrderDetail>> = HashMap::new();
    for d in &details {
        let (order_id, detail) = read_detail(d).map_err(db::error)?;
        by_order.entry(order_id).or_default().push(detail);
    }
    Ok(rows
        .into_iter()
        .map(|r| {
            let mut details = by_order.remove(&r.id).unwrap_or_default();
            sort_details(&mut details);
            to_pb(r, details)
        })
        .collect())
}

pub async fn get(db: &Db, id: Uuid) -> Result<Option<pb::Order>, ServiceError> {
    let row = sql::query(format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await
        .map_err(db::error)?;
    let rows = OrderRow::read_all(row.as_slice())?;
    Ok(with_details(db, rows).await?.pop())
}

/// The order of `cart_id` at `cart_version`, if checkout stored one.
pub async fn by_cart(
    db: &Db,
    cart_id: Uuid,
    cart_version: i32,
) -> Result<Option<pb::Order>, ServiceError> {
    let row = sql::query(format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE cart_id = $1 AND cart_version = $2"
    ))
    .bind(cart_id)
    .bind(cart_version)
    .fetch_optional(db)
    .await
    .map_err(db::error)?;
    let rows = OrderRow::read_all(row.as_slice())?;
    Ok(with_details(db, rows).await?.pop())
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
    get(db, id)
        .await?
        .ok_or_else(|| ServiceError::Internal(format!("order {id} vanished")))
}

/// Pending orders placed before `older_than`, oldest first, at most `limit`.
pub async fn pending(
    db: &Db,
    older_than: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<pb::Order>, ServiceError> {
    let rows = sql::query(format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE status = 'pending' AND placed_at < $1 \
         ORDER BY placed_at, id LIMIT $2"
    ))
    .bind(older_than)
    .bind(limit)
    .fetch_all(db)
    .await
    .map_err(db::error)?;
    let rows = OrderRow::read_all(&rows)?;
    with_details(db, rows).await
}

/// Keyset position after which the next page starts: the last (placed_at, id) seen.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct PageToken {
    /// Microseconds since the epoch (what both dialects keep).
    at: i64,
    id: Uuid,
}

fn encode_token(t: &PageToken) -> String {
    let json = serde_json::to_vec(t).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

pub fn decode_token(s: &str) -> Result<Option<PageToken>, ServiceError> {
    if s.is_empty() {
        return Ok(None);
    }
    let bad = || ServiceError::invalid("page_token", "is not a token this service issued");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| bad())?;
    let t: PageToken = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    DateTime::<Utc>::from_timestamp_micros(t.at).ok_or_else(bad)?;
    Ok(Some(t))
}

/// One page of orders, newest first (placed_at desc, then id), optionally of one
/// customer, and the token of the next page (empty on the last).
pub async fn page(
    db: &Db,
    customer_id: Option<Uuid>,
    after: Option<&PageToken>,
    limit: i64,
) -> Result<(Vec<pb::Order>, String), ServiceError> {
    // Only the conditions that apply, so each shape of the query can use the
    // (customer_id, placed_at DESC, id) index.
    let mut conditions = Vec::new();
    let mut args = Vec::new();
    if let Some(customer_id) = customer_id {
        args.push(Arg::from(customer_id));
        conditions.push(format!("customer_id = ${}", args.len()));
    }
    if let Some(t) = after
        && let Some(at) = DateTime::<Utc>::from_timestamp_micros(t.at)
    {
        args.push(Arg::from(at));
        let at = args.len();
        args.push(Arg::from(t.id));
        let id = args.len();
        conditions.push(format!(
            "(placed_at < ${at} OR (placed_at = ${at} AND id > ${id}))"
        ));
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {} ", conditions.join(" AND "))
    };
    // One row more than asked tells whether another page follows.
    args.push(Arg::from(limit + 1));
    let rows = sql::query(format!(
        "SELECT {ORDER_COLUMNS} FROM orders {filter}ORDER BY placed_at DESC, id LIMIT ${}",
        args.len()
    ))
    .bind_all(args)
    .fetch_all(db)
    .await
    .map_err(db::error)?;
    let mut rows = OrderRow::read_all(&rows)?;
    let more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    let next = match (more, rows.last()) {
        (true, Some(last)) => encode_token(&PageToken {
            at: last.placed_at.timestamp_micros(),
            id: last.id,
        }),
        _ => String::new(),
    };
    Ok((with_details(db, rows).await?, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_reject_garbage() {
        let t = PageToken {
            at: 1_700_000_000_123_456,
            id: Uuid::now_v7(),
        };
        let back = decode_token(&encode_token(&t))
            .expect("decodes")
            .expect("some");
        assert_eq!((back.at, back.id), (t.at, t.id));
        assert!(decode_token("").expect("empty ok").is_none());
        assert!(matches!(
            decode_token("%%%"),
            Err(ServiceError::InvalidArgument(_))
        ));
        assert!(matches!(
            decode_token("bm9wZQ"),
            Err(ServiceError::InvalidArgument(_))
        ));
    }

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
