//! The read model (PostgreSQL, or an embedded SQLite file: by the scheme of its URL,
//! statements written once for both) and the event handler that projects into it.
//!
//! Tables (all generated): `carts (id, customer_id, version)`, `cart_items`, and the
//! read model's tombstones, `cart_deletions (id, version)`: a deleted cart's row goes away
//! (its items cascade) and its last version stays here, so a duplicate of an older
//! event cannot bring the cart back.
//!
//! Applying one event is ONE transaction: take the read model's lock ([`READ_MODEL_LOCK`]
//! with `Tx::lock`: a transaction advisory lock on PostgreSQL; SQLite's write lock is
//! already held), so appliers and a rebuild take turns; read the cart's version, then:
//! - `version <= stored`: covered (a duplicate): nothing to do;
//! - `version == stored + 1`: apply, store the new version, commit;
//! - `version > stored + 1`: a gap: roll back, report it; the consumer does not commit
//!   the offset and reads the message again later.
//!
//! The consumer commits a message's offset only after its transaction committed (or it
//! was covered). Several replicas in one group are safe: the version check makes each
//! event take effect once, whoever applies it, even while partitions move.

use std::collections::BTreeMap;
use std::time::Duration;

use prost::Message as _;
use shop_cart::{CartEvent, EventMeta, pb};
use shop_kit::bus::{Backoff, Bus, Handled, Handler, Received, Subscriber};
use shop_kit::sql::{self, ConnectOptions, Db, Migrations};
use shop_kit::{ServiceError, db};
use sqlx::migrate::Migrator;
use tokio::sync::watch;
use uuid::Uuid;

pub static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("../../generated/sql/shop_cart_read");
pub static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("../../generated/sqlite/shop_cart_read");

/// The generated migrations of the read model, per dialect.
pub const MIGRATIONS: Migrations = Migrations {
    postgres: &POSTGRES_MIGRATOR,
    sqlite: &SQLITE_MIGRATOR,
};

/// The read model's tables.
pub const TABLES: [&str; 3] = ["carts", "cart_items", "cart_deletions"];

/// The key every writer of the read model locks ([`sql::Tx::lock`]) for its
/// transaction: appliers and a rebuild take turns.
pub const READ_MODEL_LOCK: i64 = 0x6361_7274_7072_6f6a;

/// Applies the generated migrations (the view's tables and its `cart_deletions`
/// tombstones).
pub async fn prepare(db: &Db) -> anyhow::Result<()> {
    db.migrate(&MIGRATIONS).await?;
    Ok(())
}

/// Connects to the read database `url` names (`postgres://…` or `sqlite://path`) and
/// prepares it.
pub async fn connect(url: &str, options: &ConnectOptions) -> anyhow::Result<Db> {
    let db = Db::connect(url, options, None).await?;
    prepare(&db).await?;
    Ok(db)
}

/// A cart as the read model holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CartView {
    pub id: Uuid,
    pub customer_id: Option<Uuid>,
    pub version: i64,
    pub items: BTreeMap<Uuid, i32>,
}

/// One cart from the read model; `None` when it was never projected or is deleted.
pub async fn load_view<'a>(
    on: impl sql::Executor<'a>,
    id: Uuid,
) -> Result<Option<CartView>, ServiceError> {
    // One statement: the cart and its items from the same snapshot.
    let rows = sql::query(
        "SELECT c.customer_id, c.version, i.product_id, i.quantity \
         FROM carts c LEFT JOIN cart_items i ON i.cart_id = c.id \
         WHERE c.id = $1 ORDER BY i.product_id",
    )
    .bind(id)
    .fetch_all(on)
    .await
    .map_err(db::error)?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let customer_id = first.opt_uuid("customer_id").map_err(db::error)?;
    let version = first.i64("version").map_err(db::error)?;
    let mut items = BTreeMap::new();
    for r in &rows {
        if let (Some(p), Some(q)) = (
            r.opt_uuid("product_id").map_err(db::error)?,
            r.opt_i64("quantity").map_err(db::error)?,
        ) {
            items.insert(
                p,
                i32::try_from(q).map_err(|e| ServiceError::Internal(e.to_string()))?,
            );
        }
    }
    Ok(Some(CartView {
        id,
        customer_id,
        version,
        items,
    }))
}

/// The version at which a cart was deleted, if it was.
pub async fn deleted_at<'a>(
    on: impl sql::Executor<'a>,
    id: Uuid,
) -> Result<Option<i64>, ServiceError> {
    sql::query("SELECT version FROM cart_deletions WHERE id = $1")
        .bind(id)
        .fetch_optional(on)
        .await
        .and_then(|r| r.map(|r| r.i64("version")).transpose())
        .map_err(db::error)
}

/// What applying one event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Applied,
    /// Already covered by the stored version (a duplicate).
    Covered,
    /// The stored version is `have`; the event is further ahead.
    Gap {
        have: i64,
    },
}

/// Projects events into the read model.
#[derive(Clone)]
pub struct Projector {
    db: Db,
}

impl Projector {
    pub fn new(db: Db) -> Projector {
        Projector { db }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Applies one event if it is the cart's next version (see the module docs).
    pub async fn apply(
        &self,
        meta: &EventMeta,
        event: &CartEvent,
    ) -> Result<Applied, ServiceError> {
        let id = meta.stream_id;
        let mut tx = self.db.begin().await.map_err(db::error)?;
        tx.lock(READ_MODEL_LOCK).await.map_err(db::error)?;
        let deleted = deleted_at(&mut tx, id).await?;
        if let Some(at) = deleted {
            if meta.version > at {
                tracing::error!(cart_id = %id, version = meta.version, deleted_at = at,
                    "event after the cart's deletion: ignored");
            }
            let _ = tx.rollback().await;
            return Ok(Applied::Covered);
        }
        let stored = sql::query("SELECT version FROM carts WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut tx)
            .await
            .and_then(|r| r.map(|r| r.i64("version")).transpose())
            .map_err(db::error)?;
        let have = stored.unwrap_or(0);
        if meta.version <= have {
            let _ = tx.rollback().await;
            return Ok(Applied::Covered);
        }
        if meta.version > have + 1 {
            let _ = tx.rollback().await;
            return Ok(Applied::Gap { have });
        }
        if stored.is_none() {
            sql::query("INSERT INTO carts (id, customer_id, version) VALUES ($1, NULL, 0)")
                .bind(id)
                .execute(&mut tx)
                .await
                .map_err(db::error)?;
        }
        let q = match event {
            CartEvent::ProductAdded(e) => sql::query(
                "INSERT INTO cart_items (cart_id, product_id, quantity) VALUES ($1, $2, $3) \
                 ON CONFLICT (cart_id, product_id) DO UPDATE SET quantity = cart_items.quantity + excluded.quantity",
            )
            .bind(id)
            .bind(e.product_id)
            .bind(e.quantity),
            CartEvent::ProductRemoved(e) => {
                sql::query("DELETE FROM cart_items WHERE cart_id = $1 AND product_id = $2")
                    .bind(id)
                    .bind(e.product_id)
            }
            CartEvent::ProductQuantityChanged(e) => sql::query(
                "INSERT INTO cart_items (cart_id, product_id, quantity) VALUES ($1, $2, $3) \
                 ON CONFLICT (cart_id, product_id) DO UPDATE SET quantity = excluded.quantity",
            )
            .bind(id)
            .bind(e.product_id)
            .bind(e.quantity),
            CartEvent::CartReset(_) => {
                sql::query("DELETE FROM cart_items WHERE cart_id = $1").bind(id)
            }
            CartEvent::CartDeleted(_) => {
                sql::query("INSERT INTO cart_deletions (id, version) VALUES ($1, $2)")
                    .bind(id)
                    .bind(meta.version)
            }
            CartEvent::CustomerAssigned(e) => {
                sql::query("UPDATE carts SET customer_id = $2 WHERE id = $1")
                    .bind(id)
                    .bind(e.customer_id)
            }
        };
        q.execute(&mut tx).await.map_err(db::error)?;
        let last = if matches!(event, CartEvent::CartDeleted(_)) {
            sql::query("DELETE FROM carts WHERE id = $1").bind(id)
        } else {
            sql::query("UPDATE carts SET version = $2 WHERE id = $1")
                .bind(id)
                .bind(meta.version)
        };
        last.execute(&mut tx).await.map_err(db::error)?;
        tx.commit().await.map_err(db::error)?;
        Ok(Applied::Applied)
    }
}

#[derive(Debug, Clone)]
pub struct HandlerConfig {
    pub topic: String,
    pub group: String,
    /// Static group membership on Kafka (see `shop_kit::bus::Bus::subscriber`).
    pub instance_id: Option<String>,
    /// First wait before a message that could not be applied is read again (doubles up
    /// to `max_backoff`).
    pub backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for HandlerConfig {
    fn default() -> HandlerConfig {
        HandlerConfig {
            topic: shop_cart::TOPIC.to_string(),
            group: "cart-event-handler".into(),
            instance_id: None,
            backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// The event handler's part of the bus loop: apply, then commit or read again.
struct ProjectFromBus(Projector);

impl Handler for ProjectFromBus {
    async fn handle(&mut self, m: &Received) -> Handled {
        handle(&self.0, m).await
    }
}

async fn handle(projector: &Projector, m: &Received) -> Handled {
    let envelope = match pb::CartEvent::decode(m.payload.as_slice()) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(alert = "cart_event_undecodable", partition = m.partition, offset = m.offset,
                error = %e, "ALERT: undecodable message on the cart topic: skipped (rebuild repairs the read model)");
            return Handled::Done;
        }
    };
    let (meta, event) = match CartEvent::from_envelope(&envelope) {
        Ok(x) => x,
        Err(e) => {
            tracing::error!(alert = "cart_event_undecodable", partition = m.partition, offset = m.offset,
                error = %e, "ALERT: malformed cart event: skipped (rebuild repairs the read model)");
            return Handled::Done;
        }
    };
    match projector.apply(&meta, &event).await {
        Ok(Applied::Applied) => {
            tracing::debug!(cart_id = %meta.stream_id, version = meta.version, "event applied");
            Handled::Done
        }
        Ok(Applied::Covered) => {
            tracing::debug!(cart_id = %meta.stream_id, version = meta.version, "duplicate skipped");
            Handled::Done
        }
        Ok(Applied::Gap { have }) => {
            tracing::error!(alert = "cart_projection_gap", cart_id = %meta.stream_id, version = meta.version, have,
                partition = m.partition, offset = m.offset,
                "ALERT: event ahead of the read model (a gap): not applied, offset not committed; retrying");
            Handled::Retry
        }
        Err(e) => {
            tracing::warn!(cart_id = %meta.stream_id, version = meta.version, error = %e,
                "applying the event failed: retrying");
            Handled::Retry
        }
    }
}

/// Consumes the cart topic of `bus` in group `group` and projects every event, until
/// `shutdown`. The offset is committed after the read DB committed; a message that
/// could not be applied is read again (seek back) after a backoff.
pub async fn run_event_handler(
    projector: Projector,
    bus: Bus,
    config: HandlerConfig,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut consumer: Subscriber = bus
        .subscriber(
            &config.group,
            config.instance_id.as_deref(),
            &[&config.topic],
        )
        .await?;
    tracing::info!(topic = %config.topic, group = %config.group, bus = ?bus, "event handler consuming");
    let backoff = Backoff {
        initial: config.backoff,
        max: config.max_backoff,
    };
    consumer
        .consume(&mut shutdown, backoff, &mut ProjectFromBus(projector))
        .await;
    tracing::info!("event handler stopped");
    Ok(())
}
