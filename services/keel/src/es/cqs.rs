//! The store of a CQS + event sourcing service, written once: events, the state rows and
//! the outbox in ONE relational database (PostgreSQL or SQLite, by URL, the same
//! statements). A command runs in ONE transaction: load the stream's events and fold
//! them, answer a retry from its first commit, check the expected version, decide, append
//! the events, rewrite the state rows from `view()`, write one outbox row per event,
//! commit. A query reads the state rows. The outbox relay ([`super::outbox`]) publishes.
//!
//! Positions of both `events` and `outbox` are drawn as `MAX(position) + 1` inside the
//! transaction under the store's lock ([`CqsModel::LOCK`], `Tx::lock`: a transaction
//! advisory lock on PostgreSQL; SQLite's write lock is held from `BEGIN IMMEDIATE`), so
//! they are drawn and committed in one order: both tables only grow at their end,
//! gap-free, and a reader that has seen position N never later sees a smaller one.

use std::marker::PhantomData;

use chrono::{SubsecRound, Utc};
use prost::Message as _;
use uuid::Uuid;

use super::command::{commit_id, decide_again};
use super::view::{self, EventOf, Rows, State, ViewMapping};
use super::{Decider, Event, EventMeta};
use crate::crud::{self, Record};
use crate::sql::{self, Db, Tx, ViolationKind};
use crate::{RequestContext, ServiceError, db};

/// A CQS service's state rows and lock; the generator implements it.
pub trait CqsModel: ViewMapping {
    /// The key every command locks just before it appends, until it commits.
    const LOCK: i64;
}

/// What a successful command left behind.
#[derive(Debug, Clone, PartialEq)]
pub struct Committed<E> {
    pub stream_id: Uuid,
    /// The stream's version after the command (unchanged when it emitted nothing).
    pub version: i64,
    pub events: Vec<(EventMeta, E)>,
}

/// Commands and queries of the model `M` on one database.
pub struct Store<M> {
    db: Db,
    topic: String,
    conflict_retries: u32,
    model: PhantomData<fn() -> M>,
}

impl<M> Clone for Store<M> {
    fn clone(&self) -> Self {
        Store {
            db: self.db.clone(),
            topic: self.topic.clone(),
            conflict_retries: self.conflict_retries,
            model: PhantomData,
        }
    }
}

/// The stream's state and version, and each commit id it holds with the version the
/// commit left it at (the answer to a retry).
type Loaded<M> = (State<M>, i64, Vec<(Uuid, i64)>);

impl<M: CqsModel> Store<M> {
    /// Events go to the outbox for `topic`.
    pub fn new(db: Db, topic: impl Into<String>) -> Store<M> {
        Store {
            db,
            topic: topic.into(),
            conflict_retries: 64,
            model: PhantomData,
        }
    }

    pub fn with_conflict_retries(mut self, retries: u32) -> Store<M> {
        self.conflict_retries = retries;
        self
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Runs one command, atomically, deciding again (a bounded number of times) when it
    /// lost a race and the caller named no version. `expected_version`: CONFLICT unless
    /// the stream is at this version (0: it does not exist yet). `key`: the caller's
    /// idempotency key; a retry with it gets the first answer. A command that names no
    /// stream opens a new one, its id derived from the key.
    pub async fn execute(
        &self,
        ctx: &RequestContext,
        key: Option<&str>,
        expected_version: Option<i64>,
        command: &<M::Decider as Decider>::Command,
    ) -> Result<Committed<EventOf<M>>, ServiceError> {
        let stream_id = super::command::stream_of::<M::Decider>(command, key);
        decide_again(expected_version, self.conflict_retries, || {
            self.execute_once(ctx, key, stream_id, expected_version, command)
        })
        .await
    }

    async fn execute_once(
        &self,
        ctx: &RequestContext,
        key: Option<&str>,
        stream_id: Uuid,
        expected_version: Option<i64>,
        command: &<M::Decider as Decider>::Command,
    ) -> Result<Committed<EventOf<M>>, ServiceError> {
        let commit_id = commit_id::<M::Decider>(stream_id, command, key);
        let mut tx = self.db.begin().await.map_err(db::error)?;
        let (mut state, version, commits) = load::<M>(&mut tx, stream_id).await?;
        let unchanged = |version| Committed {
            stream_id,
            version,
            events: Vec::new(),
        };
        if let Some(&(_, first)) = commits.iter().find(|(id, _)| *id == commit_id) {
            return Ok(unchanged(first));
        }
        if let Some(expected) = expected_version
            && expected != version
        {
            return Err(ServiceError::Conflict(format!(
                "{} {stream_id} is at version {version}, expected {expected}",
                M::Decider::SERVICE
            )));
        }
        let decided = M::Decider::decide(&state, command)?;
        if decided.is_empty() {
            return Ok(unchanged(version));
        }
        // Both dialects keep microseconds; truncate so the envelope equals what is stored.
        let occurred_at = Utc::now().trunc_subsecs(6);
        let mut events = Vec::with_capacity(decided.len());
        for (event, next) in decided.into_iter().zip(version + 1..) {
            let meta = EventMeta {
                event_id: Uuid::now_v7(),
                stream_id,
                version: next,
                occurred_at,
                correlation_id: ctx.correlation_id.clone(),
                causation_id: ctx.request_id.clone(),
            };
            M::Decider::apply(&mut state, &event, &meta);
            events.push((meta, event));
        }
        let version = version + events.len() as i64;
        // From here to the commit, appends are serialised (see the module docs). A
        // concurrent writer of this stream that took the lock first has committed by now,
        // so our insert meets its row: events_pkey, CONFLICT.
        tx.lock(M::LOCK).await.map_err(db::error)?;
        for (meta, event) in &events {
            append(&mut tx, ctx, commit_id, meta, event).await?;
        }
        save_state::<M>(&mut tx, stream_id, version, &state).await?;
        for (meta, event) in &events {
            self.enqueue(&mut tx, meta, event).await?;
        }
        tx.commit()
            .await
            .map_err(|e| write_error::<M>(e, stream_id))?;
        tracing::info!(request_id = %ctx.request_id, service = M::Decider::SERVICE,
            stream_id = %stream_id, version, events = events.len(), "command committed");
        Ok(Committed {
            stream_id,
            version,
            events,
        })
    }

    async fn enqueue(
        &self,
        tx: &mut Tx,
        meta: &EventMeta,
        event: &EventOf<M>,
    ) -> Result<(), ServiceError> {
        sql::query(
            "INSERT INTO outbox (position, topic, message_key, payload, created_at) \
             VALUES ((SELECT COALESCE(MAX(position), 0) + 1 FROM outbox), $1, $2, $3, $4)",
        )
        .bind(self.topic.as_str())
        .bind(meta.stream_id.to_string())
        .bind(event.to_envelope(meta).encode_to_vec())
        .bind(meta.occurred_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| write_error::<M>(e, meta.stream_id))?;
        Ok(())
    }

    /// The state of one stream folded from the event table, with its version.
    pub async fn load(&self, stream_id: Uuid) -> Result<(State<M>, i64), ServiceError> {
        let mut tx = self.db.begin().await.map_err(db::error)?;
        let (state, version, _) = load::<M>(&mut tx, stream_id).await?;
        tx.commit().await.map_err(db::error)?;
        Ok((state, version))
    }

    /// One stream as its state rows show it, with its version; `None` when it does not
    /// exist for callers.
    pub async fn view(&self, id: Uuid) -> Result<Option<(M::View, i64)>, ServiceError> {
        view::load::<M>(&self.db, id).await
    }
}

async fn load<M: CqsModel>(tx: &mut Tx, stream_id: Uuid) -> Result<Loaded<M>, ServiceError> {
    let rows = sql::query(
        "SELECT version, event_id, event_type, schema_version, payload, metadata, recorded_at \
         FROM events WHERE stream_id = $1 ORDER BY version",
    )
    .bind(stream_id)
    .fetch_all(&mut *tx)
    .await
    .map_err(db::error)?;
    let bad = |what: String| ServiceError::Internal(format!("stream {stream_id}: {what}"));
    let mut state = State::<M>::default();
    let mut version = 0;
    let mut commits: Vec<(Uuid, i64)> = Vec::new();
    for row in rows {
        let row_version = row.i64("version").map_err(db::error)?;
        if row_version != version + 1 {
            return Err(bad(format!("version {row_version} follows {version}")));
        }
        let json = row
            .json("payload")
            .map_err(|e| bad(format!("undecodable event: {e}")))?;
        let schema_version = u32::try_from(row.i64("schema_version").map_err(db::error)?)
            .map_err(|_| bad("bad schema version".into()))?;
        let event_type = row.text("event_type").map_err(db::error)?;
        // Through the generated decoder: older payload versions are upcast.
        let event = EventOf::<M>::decode_stored(&event_type, schema_version, &json)?;
        let metadata = row.json("metadata").unwrap_or_default();
        let text = |key: &str| {
            metadata
                .get(key)
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        let meta = EventMeta {
            event_id: row.uuid("event_id").map_err(db::error)?,
            stream_id,
            version: row_version,
            occurred_at: row.time("recorded_at").map_err(db::error)?,
            correlation_id: text("correlation_id").unwrap_or_default(),
            causation_id: text("causation_id").unwrap_or_default(),
        };
        M::Decider::apply(&mut state, &event, &meta);
        version = row_version;
        match (
            text("commit_id").and_then(|s| Uuid::parse_str(&s).ok()),
            commits.last_mut(),
        ) {
            (Some(id), Some((last, at))) if *last == id => *at = version,
            (Some(id), _) => commits.push((id, version)),
            (None, _) => {}
        }
    }
    Ok((state, version, commits))
}

/// Appends one event at the next position; the caller holds the store's lock.
async fn append<E: Event>(
    tx: &mut Tx,
    ctx: &RequestContext,
    commit_id: Uuid,
    meta: &EventMeta,
    event: &E,
) -> Result<(), ServiceError> {
    let (event_type, schema_version) = event.type_and_version();
    let metadata = serde_json::json!({
        "correlation_id": meta.correlation_id,
        "causation_id": meta.causation_id,
        "request_id": ctx.request_id,
        "commit_id": commit_id,
    });
    sql::query(
        "INSERT INTO events (stream_id, version, position, event_id, event_type, schema_version, payload, metadata, recorded_at) \
         VALUES ($1, $2, (SELECT COALESCE(MAX(position), 0) + 1 FROM events), $3, $4, $5, $6, $7, $8)",
    )
    .bind(meta.stream_id)
    .bind(meta.version)
    .bind(meta.event_id)
    .bind(event_type)
    .bind(i32::try_from(schema_version).unwrap_or(i32::MAX))
    .bind(event.to_json()?)
    .bind(metadata)
    .bind(meta.occurred_at)
    .execute(&mut *tx)
    .await
    .map_err(|e| conflict_or(e, meta.stream_id, crate::db::error))?;
    Ok(())
}

/// The state rows follow the stream: rewritten from `view()` while it shows the stream,
/// removed once it does not (which frees its unique values, e.g. an email).
async fn save_state<M: CqsModel>(
    tx: &mut Tx,
    stream_id: Uuid,
    version: i64,
    state: &State<M>,
) -> Result<(), ServiceError> {
    sql::query(format!("DELETE FROM {} WHERE id = $1", M::View::TABLE))
        .bind(stream_id)
        .execute(&mut *tx)
        .await
        .map_err(db::error)?;
    let mut rows = Rows::default();
    view::view_rows::<M>(stream_id, version, state, &mut rows)?;
    rows.insert(tx)
        .await
        .map_err(|e| write_error::<M>(e, stream_id))
}

/// A concurrent append to the same stream is a retryable conflict; the rest is `or`.
fn conflict_or(
    e: sql::Error,
    stream_id: Uuid,
    or: impl FnOnce(sql::Error) -> ServiceError,
) -> ServiceError {
    if let Some(v) = sql::violation(&e)
        && v.kind == ViolationKind::Unique
        && v.is("events_pkey", "events", &["stream_id", "version"])
    {
        return ServiceError::Conflict(format!(
            "stream {stream_id} was changed concurrently; reread and retry"
        ));
    }
    or(e)
}

/// A failed write: a concurrent append is a conflict, a unique value of the state rows
/// already taken is ALREADY_EXISTS naming the fields, the rest as usual.
fn write_error<M: CqsModel>(e: sql::Error, stream_id: Uuid) -> ServiceError {
    conflict_or(e, stream_id, crud::write_error::<M::View>)
}
