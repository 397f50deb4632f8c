//! The read model (PostgreSQL, or an embedded SQLite file: by the scheme of its URL,
//! statements written once for both) and the event handler that projects into it.
//!
//! Tables (all generated): `carts (id, customer_id, version)`, `cart_items`, the read
//! model's tombstones, `cart_deletions (id, version)`, and `cart_states (id, version,
//! state)`: each cart's aggregate state (JSON) at the version the rows show.
//!
//! The rows come from the aggregate's state, never from event-specific SQL: applying an
//! event folds it into the stored state with the aggregate's own `apply`, and the rows
//! are written again from `view()` (the one mapping from state to what the API shows; a
//! deleted cart has no rows, only its tombstone). A new event needs nothing here.
//!
//! Applying one event is ONE transaction: take the read model's lock ([`READ_MODEL_LOCK`]
//! with `Tx::lock`: a transaction advisory lock on PostgreSQL; SQLite's write lock is
//! already held), so appliers and a rebuild take turns; read the cart's version, then:
//! - `version <= stored`: covered (a duplicate): nothing to do;
//! - `version == stored + 1`: apply to the state, write state and rows, commit;
//! - `version > stored + 1`: a gap: roll back, report it. [`Projector::project`] then
//!   reads the missing versions from the event store (the source of truth) and applies
//!   them first; what still cannot be applied (a version the store does not have, an
//!   undecodable message) goes to `parked_events` with the reason and the ERROR alert
//!   `cart_event_parked`, and the handler goes on. `cart-service repair` retries them.
//!
//! The consumer commits a message's offset only after its transaction committed (or it
//! was covered or parked); a failure of the read database is retried, in memory, on
//! the same message. Several replicas in one group are safe: the version check makes each
//! event take effect once, whoever applies it, even while partitions move.

use std::collections::BTreeMap;

use prost::Message as _;
use shop_cart::CartAggregate;
use shop_cart::{CartEvent, EventMeta, pb};
use shop_kit::bus::Bus;
pub use shop_kit::es::Projected;
use shop_kit::es::Projection;
pub use shop_kit::es::handler::HandlerConfig;
use shop_kit::sql::{self, Arg, ConnectOptions, Db, Migrations, Tx};
use shop_kit::{ServiceError, db};
use sqlx::migrate::Migrator;
use tokio::sync::watch;
use uuid::Uuid;

use crate::aggregate::Cart;
use crate::store::EventStore;

pub static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("../../generated/sql/shop_cart_read");
pub static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("../../generated/sqlite/shop_cart_read");

/// The generated migrations of the read model, per dialect.
pub const MIGRATIONS: Migrations = Migrations {
    postgres: &POSTGRES_MIGRATOR,
    sqlite: &SQLITE_MIGRATOR,
};

/// The read model's tables, children first.
pub const TABLES: [&str; 4] = ["cart_items", "cart_deletions", "carts", "cart_states"];

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
    /// Where a version gap is filled from (the source of truth); without it a gap parks.
    store: Option<EventStore>,
}

impl Projector {
    pub fn new(db: Db) -> Projector {
        Projector { db, store: None }
    }

    /// Fills version gaps from `store` instead of parking them.
    pub fn with_store(mut self, store: EventStore) -> Projector {
        self.store = Some(store);
        self
    }

    /// Applies one event; a gap (the read model is behind: an earlier event was lost
    /// on the way, or the read database lost a commit in a crash) is filled from the
    /// event store first. What still cannot be applied is parked with the reason and an
    /// alert, so that it never blocks the streams behind it. `Err` only when the read
    /// database failed: try again later.
    pub async fn project(
        &self,
        meta: &EventMeta,
        event: &CartEvent,
        source: &str,
    ) -> Result<Projected, ServiceError> {
        match self.try_project(meta, event).await? {
            Ok(done) => {
                if let Projected::Filled { from, to } = done {
                    tracing::warn!(cart_id = %meta.stream_id, from, to, source,
                        "read model was behind: missing versions read from the event store");
                }
                Ok(done)
            }
            Err(reason) => {
                let payload = event.to_envelope(meta).encode_to_vec();
                self.park(Some(meta), source, &reason, &payload).await?;
                Ok(Projected::Parked)
            }
        }
    }

    /// [`Projector::project`] without parking: the inner `Err` says why it cannot apply.
    async fn try_project(
        &self,
        meta: &EventMeta,
        event: &CartEvent,
    ) -> Result<Result<Projected, String>, ServiceError> {
        let have = match self.apply(meta, event).await? {
            Applied::Applied => return Ok(Ok(Projected::Applied)),
            Applied::Covered => return Ok(Ok(Projected::Covered)),
            Applied::Gap { have } => have,
        };
        if let Err(reason) = self.fill(meta, have).await? {
            return Ok(Err(reason));
        }
        Ok(match self.apply(meta, event).await? {
            Applied::Applied => Ok(Projected::Filled {
                from: have + 1,
                to: meta.version,
            }),
            Applied::Covered => Ok(Projected::Covered),
            Applied::Gap { have } => Err(format!("version gap: the read model is at {have}")),
        })
    }

    /// Applies the stored versions after `have` and before `meta.version`. The inner
    /// `Err` says why the gap cannot be filled.
    async fn fill(&self, meta: &EventMeta, have: i64) -> Result<Result<(), String>, ServiceError> {
        let Some(store) = &self.store else {
            return Ok(Err(format!(
                "version gap: the read model is at {have} and no event store is configured to fill it"
            )));
        };
        let commits = store.load(meta.stream_id).await?;
        let missing = commits
            .iter()
            .flat_map(|c| &c.events)
            .filter(|e| e.meta.version > have && e.meta.version < meta.version);
        let mut next = have + 1;
        for e in missing {
            if e.meta.version != next {
                break;
            }
            match self.apply(&e.meta, &e.decode::<CartEvent>()?).await? {
                Applied::Applied | Applied::Covered => next += 1,
                Applied::Gap { .. } => break,
            }
        }
        if next < meta.version {
            return Ok(Err(format!(
                "version gap: the event store has no version {next} of this stream (read model at {})",
                next - 1
            )));
        }
        Ok(Ok(()))
    }

    /// Keeps an event this view cannot apply, with the reason, and raises the alert.
    pub async fn park(
        &self,
        meta: Option<&EventMeta>,
        source: &str,
        reason: &str,
        payload: &[u8],
    ) -> Result<(), ServiceError> {
        tracing::error!(alert = "cart_event_parked", cart_id = ?meta.map(|m| m.stream_id),
            version = ?meta.map(|m| m.version), source, reason,
            "ALERT: event parked (not applied; `cart-service repair` retries it)");
        sql::query(
            "INSERT INTO parked_events (id, stream_id, version, source, reason, payload, parked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(Uuid::now_v7())
        .bind(meta.map(|m| m.stream_id))
        .bind(meta.map(|m| m.version))
        .bind(source)
        .bind(reason)
        .bind(payload)
        .bind(chrono::Utc::now())
        .execute(&self.db)
        .await
        .map_err(db::error)?;
        Ok(())
    }

    /// How many events are parked (for the health status and `repair`).
    pub async fn parked(&self) -> Result<i64, ServiceError> {
        sql::query("SELECT COUNT(*) AS n FROM parked_events")
            .fetch_one(&self.db)
            .await
            .and_then(|r| r.i64("n"))
            .map_err(db::error)
    }

    /// Projects every parked event again (gaps filled from the event store), oldest
    /// first; removes those that are now applied or covered. Returns (repaired, still
    /// parked).
    pub async fn repair(&self) -> Result<(u64, u64), ServiceError> {
        let rows =
            sql::query("SELECT id, source, payload FROM parked_events ORDER BY parked_at, id")
                .fetch_all(&self.db)
                .await
                .map_err(db::error)?;
        let (mut repaired, mut left) = (0, 0);
        for row in rows {
            let id = row.uuid("id").map_err(db::error)?;
            let payload = row.bytes("payload").map_err(db::error)?;
            let decoded = pb::CartEvent::decode(payload.as_slice())
                .map_err(|e| e.to_string())
                .and_then(|e| CartEvent::from_envelope(&e).map_err(|e| e.to_string()));
            let done = match decoded {
                Ok((meta, event)) => self.try_project(&meta, &event).await?.is_ok(),
                Err(_) => false,
            };
            if done {
                sql::query("DELETE FROM parked_events WHERE id = $1")
                    .bind(id)
                    .execute(&self.db)
                    .await
                    .map_err(db::error)?;
                repaired += 1;
            } else {
                left += 1;
            }
        }
        Ok((repaired, left))
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
        let (have, state) = stored_state(&mut tx, id).await?;
        if meta.version <= have {
            let _ = tx.rollback().await;
            return Ok(Applied::Covered);
        }
        if meta.version > have + 1 {
            let _ = tx.rollback().await;
            return Ok(Applied::Gap { have });
        }
        let mut state = match state {
            Some(state) => state,
            None if have == 0 => Cart::default(),
            // Rows written before states were kept: fold the stream from the store.
            None => self.fold_from_store(id, have).await?,
        };
        state.apply(event);
        write_cart(&mut tx, id, meta.version, &state).await?;
        tx.commit().await.map_err(db::error)?;
        Ok(Applied::Applied)
    }

    async fn fold_from_store(&self, id: Uuid, until: i64) -> Result<Cart, ServiceError> {
        let store = self.store.as_ref().ok_or_else(|| {
            ServiceError::Internal(format!(
                "cart {id}: no stored state and no event store to fold it from; run `cart-service rebuild`"
            ))
        })?;
        let mut state = Cart::default();
        for c in store.load(id).await? {
            for (meta, event) in c.decode::<CartEvent>()? {
                if meta.version <= until {
                    state.apply(&event);
                }
            }
        }
        Ok(state)
    }
}

/// The version the read model holds for a cart and its state there (`None`: no state
/// stored; the version then comes from rows written before states were kept).
async fn stored_state(tx: &mut Tx, id: Uuid) -> Result<(i64, Option<Cart>), ServiceError> {
    let row = sql::query("SELECT version, state FROM cart_states WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db::error)?;
    if let Some(row) = row {
        let version = row.i64("version").map_err(db::error)?;
        let json = row.json("state").map_err(db::error)?;
        let state = serde_json::from_value(json)
            .map_err(|e| ServiceError::Internal(format!("cart {id}: stored state: {e}")))?;
        return Ok((version, Some(state)));
    }
    let shown = sql::query("SELECT version FROM carts WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .and_then(|r| r.map(|r| r.i64("version")).transpose())
        .map_err(db::error)?;
    let deleted = deleted_at(&mut *tx, id).await?;
    Ok((shown.or(deleted).unwrap_or(0), None))
}

/// The rows of one cart at `version`, from its state: its `carts` row and items when
/// `view()` shows it, else its tombstone; and the state itself.
pub struct CartRows {
    pub cart: Option<Vec<Arg>>,
    pub items: Vec<Vec<Arg>>,
    pub deletion: Option<Vec<Arg>>,
    pub state: Vec<Arg>,
}

pub fn cart_rows(id: Uuid, version: i64, state: &Cart) -> Result<CartRows, ServiceError> {
    let json = serde_json::to_value(state)
        .map_err(|e| ServiceError::Internal(format!("encoding cart state: {e}")))?;
    let uuid = |field: &str, v: &str| {
        Uuid::parse_str(v).map_err(|_| {
            ServiceError::Internal(format!("view of cart {id}: {field} is not a UUID"))
        })
    };
    let mut rows = CartRows {
        cart: None,
        items: Vec::new(),
        deletion: None,
        state: vec![Arg::from(id), Arg::from(version), Arg::from(json)],
    };
    match state.view(id) {
        Some(view) => {
            let customer = view
                .customer_id
                .as_deref()
                .map(|c| uuid("customer_id", c))
                .transpose()?;
            rows.cart = Some(vec![Arg::from(id), Arg::from(customer), Arg::from(version)]);
            for item in &view.items {
                rows.items.push(vec![
                    Arg::from(id),
                    Arg::from(uuid("product_id", &item.product_id)?),
                    Arg::from(item.quantity),
                ]);
            }
        }
        None if version > 0 => rows.deletion = Some(vec![Arg::from(id), Arg::from(version)]),
        None => {}
    }
    Ok(rows)
}

/// Replaces one cart's rows and state with those of `state` at `version`.
async fn write_cart(tx: &mut Tx, id: Uuid, version: i64, state: &Cart) -> Result<(), ServiceError> {
    for (table, key) in [
        ("carts", "id"),
        ("cart_deletions", "id"),
        ("cart_states", "id"),
    ] {
        sql::query(format!("DELETE FROM {table} WHERE {key} = $1"))
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db::error)?;
    }
    let rows = cart_rows(id, version, state)?;
    insert_rows(tx, "cart_states", STATE_COLUMNS, vec![rows.state]).await?;
    insert_rows(tx, "carts", CART_COLUMNS, rows.cart.into_iter().collect()).await?;
    insert_rows(tx, "cart_items", ITEM_COLUMNS, rows.items).await?;
    insert_rows(
        tx,
        "cart_deletions",
        DELETION_COLUMNS,
        rows.deletion.into_iter().collect(),
    )
    .await?;
    Ok(())
}

pub const STATE_COLUMNS: &str = "id, version, state";
pub const CART_COLUMNS: &str = "id, customer_id, version";
pub const ITEM_COLUMNS: &str = "cart_id, product_id, quantity";
pub const DELETION_COLUMNS: &str = "id, version";

/// Rows per multi-row `INSERT … VALUES` (well under both dialects' parameter limits).
const CHUNK: usize = 300;

/// Inserts `rows` into `table` with multi-row `VALUES`.
pub async fn insert_rows(
    tx: &mut Tx,
    table: &str,
    columns: &str,
    rows: Vec<Vec<Arg>>,
) -> Result<(), ServiceError> {
    for chunk in rows.chunks(CHUNK) {
        let width = chunk.first().map(Vec::len).unwrap_or(0);
        let values = (0..chunk.len())
            .map(|i| format!("({})", sql::placeholders(i * width + 1, width)))
            .collect::<Vec<_>>()
            .join(", ");
        sql::query(format!("INSERT INTO {table} ({columns}) VALUES {values}"))
            .bind_all(chunk.iter().flatten().cloned())
            .execute(&mut *tx)
            .await
            .map_err(db::error)?;
    }
    Ok(())
}

impl Projection<CartEvent> for Projector {
    async fn project(
        &self,
        meta: &EventMeta,
        event: &CartEvent,
        source: &str,
    ) -> Result<Projected, ServiceError> {
        Projector::project(self, meta, event, source).await
    }

    async fn park(
        &self,
        meta: Option<&EventMeta>,
        source: &str,
        reason: &str,
        payload: &[u8],
    ) -> Result<(), ServiceError> {
        Projector::park(self, meta, source, reason, payload).await
    }
}

/// Consumes the cart topic of `bus` and projects every event, until `shutdown`.
pub async fn run_event_handler(
    projector: Projector,
    bus: Bus,
    config: HandlerConfig,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    shop_kit::es::handler::run_event_handler::<CartEvent, _>(projector, bus, config, shutdown)
        .await?;
    Ok(())
}
