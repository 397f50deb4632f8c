//! The read model of a CQRS service, kept from each stream's state: PostgreSQL or an
//! embedded SQLite file (by the scheme of its URL), statements written once for both.
//!
//! Tables (all generated from the spec): the entity's table with a `version` column, the
//! tables of what it owns, the tombstones `<entity>_deletions (id, version)`, the states
//! `<entity>_states (id, version, state)` (each stream's aggregate state, JSON, at the
//! version the rows show) and `parked_events`. The generator implements [`StateView`]:
//! those names, and the one mapping from state to rows (the aggregate's `view()` and the
//! entity's [`Record`]/[`Child`] mappings).
//!
//! The rows come from the aggregate's state, never from event-specific SQL: applying an
//! event folds it into the stored state with the aggregate's own `apply`, and the rows
//! are written again from `view()` (a deleted stream has no rows, only its tombstone).
//! A new event needs nothing here.
//!
//! Applying one event is ONE transaction: take the read model's lock
//! ([`StateView::LOCK`] with `Tx::lock`: a transaction advisory lock on PostgreSQL;
//! SQLite's write lock is already held), so appliers and a rebuild take turns; read the
//! stream's version, then:
//! - `version <= stored`: covered (a duplicate): nothing to do;
//! - `version == stored + 1`: apply to the state, write state and rows, commit;
//! - `version > stored + 1`: a gap: roll back, report it. [`Projector::project`] then
//!   reads the missing versions from the event store (the source of truth) and applies
//!   them first; what still cannot be applied (a version the store does not have, an
//!   undecodable message) goes to `parked_events` with the reason and the ERROR alert
//!   `<service>_event_parked`, and the handler goes on. `repair` retries them.
//!
//! The consumer commits a message's offset only after its transaction committed (or it
//! was covered or parked); a failure of the read database is retried, in memory, on the
//! same message. Several replicas in one group are safe: the version check makes each
//! event take effect once, whoever applies it, even while partitions move.

use std::future::Future;
use std::marker::PhantomData;

use prost::Message as _;
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::store::EventStore;
use super::{Decider, Event, EventMeta, Projected, Projection};
use crate::crud::{Child, Record};
use crate::sql::{self, Arg, Db, Tx};
use crate::{ServiceError, db};

/// The state of the streams of `V`.
pub type State<V> = <<V as ViewMapping>::Decider as Decider>::State;
/// The events of `V`.
pub type EventOf<V> = <<V as ViewMapping>::Decider as Decider>::Event;

/// How a stream's state is shown and stored: the generator implements it per
/// event-sourced service (the aggregate's `view()`, the entity's [`Record`]/[`Child`]
/// mappings, the database's migrations).
pub trait ViewMapping: Send + Sync + 'static {
    type Decider: Decider;
    /// What the API shows of one stream: a row of [`Record::TABLE`] (plus its `version`
    /// column) and what it owns.
    type View: Record + Send + 'static;

    fn migrations() -> &'static sql::Migrations;
    /// The stream as the API shows it; `None` when it does not exist for its callers.
    fn view(state: &State<Self>, id: Uuid) -> Option<Self::View>;
    /// Adds the rows of what `view` owns.
    fn owned_rows(view: &Self::View, id: Uuid, rows: &mut Rows) -> Result<(), ServiceError>;
    /// Fills in what each of `views` owns.
    fn attach(
        db: &Db,
        views: &mut [Self::View],
    ) -> impl Future<Output = Result<(), ServiceError>> + Send;
}

/// A CQRS read model kept from aggregate states (JSON, beside the rows).
pub trait StateView: ViewMapping<Decider: Decider<State: Serialize + DeserializeOwned>> {
    /// `<entity>_states`.
    const STATES: &'static str;
    /// `<entity>_deletions`.
    const DELETIONS: &'static str;
    /// Every table a rebuild replaces, children first.
    const TABLES: &'static [&'static str];
    /// The key every writer of the read model locks for its transaction.
    const LOCK: i64;
}

/// Rows to insert, per table in the order tables were first given (owners before what
/// they own).
#[derive(Default)]
pub struct Rows {
    tables: Vec<TableRows>,
}

struct TableRows {
    table: &'static str,
    columns: Vec<&'static str>,
    rows: Vec<Vec<Arg>>,
}

/// Rows per multi-row `INSERT … VALUES` statement, under SQLite's parameter limit.
const MAX_PARAMETERS: usize = 900;

impl Rows {
    /// Adds one row of `table`.
    pub fn push(&mut self, table: &'static str, columns: &[&'static str], args: Vec<Arg>) {
        match self.tables.iter_mut().find(|t| t.table == table) {
            Some(t) => t.rows.push(args),
            None => self.tables.push(TableRows {
                table,
                columns: columns.to_vec(),
                rows: vec![args],
            }),
        }
    }

    /// Adds the rows of `items`, owned by `parent`.
    pub fn children<C: Child>(&mut self, parent: Uuid, items: &[C]) -> Result<(), ServiceError> {
        let mut columns = vec![C::PARENT];
        columns.extend_from_slice(C::COLUMNS);
        for item in items {
            let mut args = vec![Arg::from(parent)];
            args.extend(item.to_args()?);
            self.push(C::TABLE, &columns, args);
        }
        Ok(())
    }

    /// Inserts every row with multi-row `VALUES`.
    pub async fn insert(self, tx: &mut Tx) -> Result<(), sql::Error> {
        for t in self.tables {
            let width = t.columns.len().max(1);
            for chunk in t.rows.chunks((MAX_PARAMETERS / width).max(1)) {
                let values = (0..chunk.len())
                    .map(|i| format!("({})", sql::placeholders(i * width + 1, width)))
                    .collect::<Vec<_>>()
                    .join(", ");
                let statement = format!(
                    "INSERT INTO {} ({}) VALUES {values}",
                    t.table,
                    t.columns.join(", ")
                );
                sql::query(statement)
                    .bind_all(chunk.iter().flatten().cloned())
                    .execute(&mut *tx)
                    .await?;
            }
        }
        Ok(())
    }
}

/// The root table's columns: the view's, then `version`.
fn root_columns<V: ViewMapping>() -> Vec<&'static str> {
    let mut columns = V::View::COLUMNS.to_vec();
    columns.push("version");
    columns
}

/// Adds the rows of one stream at `version`: its state, and its view's rows when
/// `view()` shows it, else its tombstone.
pub fn stream_rows<V: StateView>(
    id: Uuid,
    version: i64,
    state: &State<V>,
    rows: &mut Rows,
) -> Result<(), ServiceError> {
    let json = serde_json::to_value(state)
        .map_err(|e| ServiceError::Internal(format!("encoding the state of {id}: {e}")))?;
    rows.push(
        V::STATES,
        &["id", "version", "state"],
        vec![Arg::from(id), Arg::from(version), Arg::from(json)],
    );
    if !view_rows::<V>(id, version, state, rows)? && version > 0 {
        rows.push(
            V::DELETIONS,
            &["id", "version"],
            vec![Arg::from(id), Arg::from(version)],
        );
    }
    Ok(())
}

/// Adds the rows `view()` shows of one stream at `version`; whether it shows any.
pub fn view_rows<V: ViewMapping>(
    id: Uuid,
    version: i64,
    state: &State<V>,
    rows: &mut Rows,
) -> Result<bool, ServiceError> {
    let Some(view) = V::view(state, id) else {
        return Ok(false);
    };
    let mut args = view.to_args()?;
    args.push(Arg::from(version));
    rows.push(V::View::TABLE, &root_columns::<V>(), args);
    V::owned_rows(&view, id, rows)?;
    Ok(true)
}

/// Applies the generated migrations of the read model.
pub async fn prepare<V: ViewMapping>(db: &Db) -> Result<(), ServiceError> {
    db.migrate(V::migrations())
        .await
        .map_err(|e| ServiceError::Unavailable(format!("migrating the read model: {e}")))
}

/// One stream as the read model shows it, and its version; `None` when it was never
/// projected or is deleted.
pub async fn load<V: ViewMapping>(
    db: &Db,
    id: Uuid,
) -> Result<Option<(V::View, i64)>, ServiceError> {
    let statement = format!(
        "SELECT {} FROM {} WHERE id = $1",
        root_columns::<V>().join(", "),
        V::View::TABLE
    );
    let Some(row) = sql::query(statement)
        .bind(id)
        .fetch_optional(db)
        .await
        .map_err(db::error)?
    else {
        return Ok(None);
    };
    let read = |e: sql::Error| ServiceError::Internal(format!("reading the read model: {e}"));
    let version = row.i64("version").map_err(read)?;
    let mut views = vec![V::View::from_row(&row).map_err(read)?];
    V::attach(db, &mut views).await?;
    Ok(views.pop().map(|v| (v, version)))
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

/// Projects events into the read model `V` (see the module docs).
pub struct Projector<V> {
    db: Db,
    /// Where a version gap is filled from (the source of truth); without it a gap parks.
    store: Option<EventStore>,
    view: PhantomData<fn() -> V>,
}

impl<V> Clone for Projector<V> {
    fn clone(&self) -> Self {
        Projector {
            db: self.db.clone(),
            store: self.store.clone(),
            view: PhantomData,
        }
    }
}

impl<V: StateView> Projector<V> {
    pub fn new(db: Db) -> Projector<V> {
        Projector {
            db,
            store: None,
            view: PhantomData,
        }
    }

    /// Fills version gaps from `store` instead of parking them.
    pub fn with_store(mut self, store: EventStore) -> Projector<V> {
        self.store = Some(store);
        self
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    fn service() -> &'static str {
        <V::Decider as Decider>::SERVICE
    }

    /// Applies one event; a gap (the read model is behind: an earlier event was lost
    /// on the way, or the read database lost a commit in a crash) is filled from the
    /// event store first. What still cannot be applied is parked with the reason and an
    /// alert, so that it never blocks the streams behind it. `Err` only when the read
    /// database failed: try again later.
    pub async fn project(
        &self,
        meta: &EventMeta,
        event: &EventOf<V>,
        source: &str,
    ) -> Result<Projected, ServiceError> {
        match self.try_project(meta, event).await? {
            Ok(done) => {
                if let Projected::Filled { from, to } = done {
                    tracing::warn!(service = Self::service(), stream_id = %meta.stream_id, from, to, source,
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
        event: &EventOf<V>,
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
            match self.apply(&e.meta, &e.decode::<EventOf<V>>()?).await? {
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
        let alert = format!("{}_event_parked", Self::service());
        tracing::error!(alert = %alert, stream_id = ?meta.map(|m| m.stream_id),
            version = ?meta.map(|m| m.version), source, reason,
            "ALERT: event parked (not applied; `repair` retries it)");
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
        parked(&self.db).await
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
            let decoded = <EventOf<V> as Event>::Envelope::decode(payload.as_slice())
                .map_err(|e| e.to_string())
                .and_then(|e| EventOf::<V>::from_envelope(&e).map_err(|e| e.to_string()));
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

    /// Applies one event if it is the stream's next version (see the module docs).
    pub async fn apply(
        &self,
        meta: &EventMeta,
        event: &EventOf<V>,
    ) -> Result<Applied, ServiceError> {
        let id = meta.stream_id;
        let mut tx = self.db.begin().await.map_err(db::error)?;
        tx.lock(V::LOCK).await.map_err(db::error)?;
        let (have, state) = stored_state::<V>(&mut tx, id).await?;
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
            None if have == 0 => State::<V>::default(),
            // Rows written before states were kept: fold the stream from the store.
            None => self.fold_from_store(id, have).await?,
        };
        V::Decider::apply(&mut state, event, meta);
        replace_stream::<V>(&mut tx, id, meta.version, &state).await?;
        tx.commit().await.map_err(db::error)?;
        Ok(Applied::Applied)
    }

    async fn fold_from_store(&self, id: Uuid, until: i64) -> Result<State<V>, ServiceError> {
        let store = self.store.as_ref().ok_or_else(|| {
            ServiceError::Internal(format!(
                "stream {id}: no stored state and no event store to fold it from; run `rebuild`"
            ))
        })?;
        let mut state = State::<V>::default();
        for c in store.load(id).await? {
            for (meta, event) in c.decode::<EventOf<V>>()? {
                if meta.version <= until {
                    V::Decider::apply(&mut state, &event, &meta);
                }
            }
        }
        Ok(state)
    }
}

/// How many events are parked in the read model `db`.
pub async fn parked(db: &Db) -> Result<i64, ServiceError> {
    sql::query("SELECT COUNT(*) AS n FROM parked_events")
        .fetch_one(db)
        .await
        .and_then(|r| r.i64("n"))
        .map_err(db::error)
}

/// The version the read model holds for a stream and its state there (`None`: no state
/// stored; the version then comes from rows written before states were kept).
async fn stored_state<V: StateView>(
    tx: &mut Tx,
    id: Uuid,
) -> Result<(i64, Option<State<V>>), ServiceError> {
    let statement = format!("SELECT version, state FROM {} WHERE id = $1", V::STATES);
    let row = sql::query(statement)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db::error)?;
    if let Some(row) = row {
        let version = row.i64("version").map_err(db::error)?;
        let json = row.json("state").map_err(db::error)?;
        let state = serde_json::from_value(json)
            .map_err(|e| ServiceError::Internal(format!("stream {id}: stored state: {e}")))?;
        return Ok((version, Some(state)));
    }
    let mut version = 0;
    for table in [V::View::TABLE, V::DELETIONS] {
        let shown = sql::query(format!("SELECT version FROM {table} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .and_then(|r| r.map(|r| r.i64("version")).transpose())
            .map_err(db::error)?;
        version = version.max(shown.unwrap_or(0));
    }
    Ok((version, None))
}

/// Replaces one stream's rows and state with those of `state` at `version` (owned rows
/// go with the root row: their foreign keys cascade).
async fn replace_stream<V: StateView>(
    tx: &mut Tx,
    id: Uuid,
    version: i64,
    state: &State<V>,
) -> Result<(), ServiceError> {
    for table in [V::View::TABLE, V::DELETIONS, V::STATES] {
        sql::query(format!("DELETE FROM {table} WHERE id = $1"))
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db::error)?;
    }
    let mut rows = Rows::default();
    stream_rows::<V>(id, version, state, &mut rows)?;
    rows.insert(tx).await.map_err(db::error)
}

impl<V: StateView> Projection<EventOf<V>> for Projector<V> {
    async fn project(
        &self,
        meta: &EventMeta,
        event: &EventOf<V>,
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
