//! The read model in PostgreSQL and the event handler that projects into it.
//!
//! Tables: the generated `carts (id, customer_id, version)` and `cart_items`, plus one
//! hand-written table, `cart_deletions (id, version)`: a deleted cart's row goes away
//! (its items cascade) and its last version stays here, so a duplicate of an older
//! event cannot bring the cart back.
//!
//! Applying one event is ONE transaction: lock the three tables in a fixed order
//! (ROW EXCLUSIVE: writers do not block each other, a rebuild's swap waits for them) and
//! the cart (a transaction advisory lock on its id), read its version, then:
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
use rdkafka::Offset;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message as _};
use shop_cart::{CartEvent, EventMeta, pb};
use shop_kit::{ServiceError, db};
use sqlx::{PgPool, Postgres, Transaction};
use tokio::sync::watch;
use uuid::Uuid;

use crate::relay::stopped;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../generated/sql/shop_cart_read");

/// The hand-written part of the read model (see the module docs).
pub const DELETIONS_SQL: &str = "CREATE TABLE IF NOT EXISTS cart_deletions (\n    id      uuid NOT NULL,\n    version bigint NOT NULL,\n    CONSTRAINT cart_deletions_pkey PRIMARY KEY (id),\n    CONSTRAINT cart_deletions_version_check CHECK (version > 0)\n)";

/// The read model's tables, in the order every writer locks them.
pub const TABLES: [&str; 3] = ["carts", "cart_items", "cart_deletions"];

/// Applies the generated migrations and the hand-written table.
pub async fn prepare(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR.run(pool).await?;
    sqlx::query(DELETIONS_SQL).execute(pool).await?;
    Ok(())
}

/// A cart as the read model holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CartView {
    pub id: Uuid,
    pub customer_id: Option<Uuid>,
    pub version: i64,
    pub items: BTreeMap<Uuid, i32>,
}

/// (customer_id, version, product_id, quantity) of one cart row joined with an item.
type ViewRow = (Option<Uuid>, i64, Option<Uuid>, Option<i32>);

/// One cart from the read model; `None` when it was never projected or is deleted.
pub async fn load_view<'e, E>(executor: E, id: Uuid) -> Result<Option<CartView>, ServiceError>
where
    E: sqlx::PgExecutor<'e>,
{
    // One statement: the cart and its items from the same snapshot.
    let rows: Vec<ViewRow> = sqlx::query_as(
        "SELECT c.customer_id, c.version, i.product_id, i.quantity \
         FROM carts c LEFT JOIN cart_items i ON i.cart_id = c.id \
         WHERE c.id = $1 ORDER BY i.product_id",
    )
    .bind(id)
    .fetch_all(executor)
    .await
    .map_err(db::error)?;
    let Some((customer_id, version, _, _)) = rows.first().copied() else {
        return Ok(None);
    };
    let items = rows
        .iter()
        .filter_map(|(_, _, p, q)| Some(((*p)?, (*q)?)))
        .collect();
    Ok(Some(CartView {
        id,
        customer_id,
        version,
        items,
    }))
}

/// The version at which a cart was deleted, if it was.
pub async fn deleted_at(pool: &PgPool, id: Uuid) -> Result<Option<i64>, ServiceError> {
    sqlx::query_scalar("SELECT version FROM cart_deletions WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
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

/// Advisory lock key of one cart.
fn cart_lock_key(id: Uuid) -> i64 {
    let (hi, lo) = id.as_u64_pair();
    (hi ^ lo ^ 0x6361_7274_7072_6f6a) as i64
}

/// Locks the read model's tables in [`TABLES`] order, so that writers and a rebuild's
/// swap never deadlock.
pub async fn lock_tables(
    tx: &mut Transaction<'_, Postgres>,
    mode: &str,
) -> Result<(), ServiceError> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "LOCK TABLE {} IN {mode} MODE",
        TABLES.join(", ")
    )))
    .execute(&mut **tx)
    .await
    .map_err(db::error)?;
    Ok(())
}

/// Projects events into the read model.
#[derive(Clone)]
pub struct Projector {
    pool: PgPool,
}

impl Projector {
    pub fn new(pool: PgPool) -> Projector {
        Projector { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Applies one event if it is the cart's next version (see the module docs).
    pub async fn apply(
        &self,
        meta: &EventMeta,
        event: &CartEvent,
    ) -> Result<Applied, ServiceError> {
        let id = meta.stream_id;
        let mut tx = self.pool.begin().await.map_err(db::error)?;
        lock_tables(&mut tx, "ROW EXCLUSIVE").await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(cart_lock_key(id))
            .execute(&mut *tx)
            .await
            .map_err(db::error)?;
        let deleted: Option<i64> =
            sqlx::query_scalar("SELECT version FROM cart_deletions WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db::error)?;
        if let Some(at) = deleted {
            if meta.version > at {
                tracing::error!(cart_id = %id, version = meta.version, deleted_at = at,
                    "event after the cart's deletion: ignored");
            }
            return Ok(Applied::Covered);
        }
        let stored: Option<i64> = sqlx::query_scalar("SELECT version FROM carts WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db::error)?;
        let have = stored.unwrap_or(0);
        if meta.version <= have {
            return Ok(Applied::Covered);
        }
        if meta.version > have + 1 {
            return Ok(Applied::Gap { have });
        }
        if stored.is_none() {
            sqlx::query("INSERT INTO carts (id, customer_id, version) VALUES ($1, NULL, 0)")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db::error)?;
        }
        let q = match event {
            CartEvent::ProductAdded(e) => sqlx::query(
                "INSERT INTO cart_items (cart_id, product_id, quantity) VALUES ($1, $2, $3) \
                 ON CONFLICT (cart_id, product_id) DO UPDATE SET quantity = cart_items.quantity + EXCLUDED.quantity",
            )
            .bind(id)
            .bind(e.product_id)
            .bind(e.quantity),
            CartEvent::ProductRemoved(e) => {
                sqlx::query("DELETE FROM cart_items WHERE cart_id = $1 AND product_id = $2")
                    .bind(id)
                    .bind(e.product_id)
            }
            CartEvent::ProductQuantityChanged(e) => sqlx::query(
                "INSERT INTO cart_items (cart_id, product_id, quantity) VALUES ($1, $2, $3) \
                 ON CONFLICT (cart_id, product_id) DO UPDATE SET quantity = EXCLUDED.quantity",
            )
            .bind(id)
            .bind(e.product_id)
            .bind(e.quantity),
            CartEvent::CartReset(_) => {
                sqlx::query("DELETE FROM cart_items WHERE cart_id = $1").bind(id)
            }
            CartEvent::CartDeleted(_) => {
                sqlx::query("INSERT INTO cart_deletions (id, version) VALUES ($1, $2)")
                    .bind(id)
                    .bind(meta.version)
            }
            CartEvent::CustomerAssigned(e) => {
                sqlx::query("UPDATE carts SET customer_id = $2 WHERE id = $1")
                    .bind(id)
                    .bind(e.customer_id)
            }
        };
        q.execute(&mut *tx).await.map_err(db::error)?;
        let last = if matches!(event, CartEvent::CartDeleted(_)) {
            sqlx::query("DELETE FROM carts WHERE id = $1").bind(id)
        } else {
            sqlx::query("UPDATE carts SET version = $2 WHERE id = $1")
                .bind(id)
                .bind(meta.version)
        };
        last.execute(&mut *tx).await.map_err(db::error)?;
        tx.commit().await.map_err(db::error)?;
        Ok(Applied::Applied)
    }
}

#[derive(Debug, Clone)]
pub struct HandlerConfig {
    pub brokers: String,
    pub topic: String,
    pub group: String,
    /// Static group membership (see `kafka::consumer`).
    pub instance_id: Option<String>,
    /// First wait before a message that could not be applied is read again (doubles up
    /// to `max_backoff`).
    pub backoff: Duration,
    pub max_backoff: Duration,
}

impl HandlerConfig {
    pub fn new(brokers: impl Into<String>) -> HandlerConfig {
        HandlerConfig {
            brokers: brokers.into(),
            topic: shop_cart::TOPIC.to_string(),
            group: "cart-event-handler".into(),
            instance_id: None,
            backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
        }
    }
}

enum Outcome {
    /// Done with this message: commit its offset.
    Commit,
    /// Read it again later: do not commit, seek back.
    Retry,
}

async fn handle(projector: &Projector, m: &BorrowedMessage<'_>) -> Outcome {
    let envelope = match pb::CartEvent::decode(m.payload().unwrap_or_default()) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(alert = "cart_event_undecodable", partition = m.partition(), offset = m.offset(),
                error = %e, "ALERT: undecodable message on the cart topic: skipped (rebuild repairs the read model)");
            return Outcome::Commit;
        }
    };
    let (meta, event) = match CartEvent::from_envelope(&envelope) {
        Ok(x) => x,
        Err(e) => {
            tracing::error!(alert = "cart_event_undecodable", partition = m.partition(), offset = m.offset(),
                error = %e, "ALERT: malformed cart event: skipped (rebuild repairs the read model)");
            return Outcome::Commit;
        }
    };
    match projector.apply(&meta, &event).await {
        Ok(Applied::Applied) => {
            tracing::debug!(cart_id = %meta.stream_id, version = meta.version, "event applied");
            Outcome::Commit
        }
        Ok(Applied::Covered) => {
            tracing::debug!(cart_id = %meta.stream_id, version = meta.version, "duplicate skipped");
            Outcome::Commit
        }
        Ok(Applied::Gap { have }) => {
            tracing::error!(alert = "cart_projection_gap", cart_id = %meta.stream_id, version = meta.version, have,
                partition = m.partition(), offset = m.offset(),
                "ALERT: event ahead of the read model (a gap): not applied, offset not committed; retrying");
            Outcome::Retry
        }
        Err(e) => {
            tracing::warn!(cart_id = %meta.stream_id, version = meta.version, error = %e,
                "applying the event failed: retrying");
            Outcome::Retry
        }
    }
}

/// Consumes the cart topic in group `group` and projects every event, until `shutdown`.
pub async fn run_event_handler(
    projector: Projector,
    config: HandlerConfig,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let consumer: StreamConsumer = crate::kafka::consumer(
        &config.brokers,
        &config.group,
        config.instance_id.as_deref(),
    )?;
    consumer.subscribe(&[&config.topic])?;
    tracing::info!(topic = %config.topic, group = %config.group, "event handler consuming");
    let mut backoff = config.backoff;
    loop {
        let m = tokio::select! {
            m = consumer.recv() => m,
            () = stopped(&mut shutdown) => break,
        };
        let m = match m {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "consumer error");
                tokio::select! {
                    () = tokio::time::sleep(config.backoff) => {}
                    () = stopped(&mut shutdown) => break,
                }
                continue;
            }
        };
        match handle(&projector, &m).await {
            Outcome::Commit => {
                backoff = config.backoff;
                if let Err(e) = consumer.commit_message(&m, CommitMode::Async) {
                    // Not fatal: the message comes again and is skipped as covered.
                    tracing::warn!(error = %e, "offset commit failed");
                }
            }
            Outcome::Retry => {
                let (topic, partition, offset) = (m.topic().to_string(), m.partition(), m.offset());
                drop(m);
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = stopped(&mut shutdown) => break,
                }
                backoff = (backoff * 2).min(config.max_backoff);
                if let Err(e) = consumer.seek(
                    &topic,
                    partition,
                    Offset::Offset(offset),
                    Duration::from_secs(5),
                ) {
                    // The partition may have moved to another replica; it resumes from
                    // the committed offset, which is before this message.
                    tracing::warn!(error = %e, partition, offset, "seek back failed");
                }
            }
        }
    }
    tracing::info!("event handler stopped");
    Ok(())
}
