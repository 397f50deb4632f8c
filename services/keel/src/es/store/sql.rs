//! The event store in SQL, over [`keel::sql::Db`]: PostgreSQL (`postgres://…`) or an
//! embedded SQLite file (`sqlite://path/events.db`), every statement written once for
//! both. Tables (generated from the spec's event store layout, migrations in
//! `generated/sql/shop_cart_events` and `generated/sqlite/shop_cart_events`):
//!
//! - `commits (position PK, stream_id, commit_seq, commit_id, rev_from, rev_to, events
//!   JSON, metadata JSON {correlation_id, causation_id}, committed_at)` with UNIQUE
//!   `(stream_id, commit_seq)` and UNIQUE `(stream_id, commit_id)`;
//! - `checkpoints (reader PK, position, updated_at)`, `skipped_positions (reader,
//!   position)`, `leases (name PK, owner, expires_at)`.
//!
//! An append is ONE transaction: take the store's write lock ([`Tx::lock`]:
//! `pg_advisory_xact_lock` on PostgreSQL; on SQLite every write transaction already
//! holds the database's single write lock), then `INSERT … SELECT MAX(position) + 1 …
//! ON CONFLICT DO NOTHING RETURNING position`. Positions are taken and committed one
//! writer at a time, so they are gap-free AND become visible in position order: a
//! reader never sees `N + 1` before `N`. No row returned means a unique key refused the
//! commit: the same `(stream_id, commit_id)` is a retried command (its first answer),
//! else the `commit_seq` is taken (a conflict).
//!
//! The lease is a row with an owner and an expiry (the MongoDB store's protocol, in one
//! upsert), so it works across processes on one SQLite file as well as on PostgreSQL.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Appended, Commit, NewCommit, StoreLayout};
use crate::es::{EventMeta, RawEvent};
use crate::sql::{self, ConnectOptions, Db, Migrations, Row, Tx};
use crate::{ServiceError, db};

/// The key of the store's write lock (`Tx::lock`): "cartevts" (the name it was born
/// with; a store's database holds one service's events).
const APPEND_LOCK: i64 = 0x6361_7274_6576_7473;

const COLUMNS: &str =
    "position, stream_id, commit_seq, commit_id, rev_from, rev_to, events, metadata, committed_at";

/// An event store in one SQL database.
#[derive(Clone)]
pub struct SqlStore {
    db: Db,
    migrations: &'static Migrations,
    /// Test hook: a pause between taking the lock and inserting.
    insert_delay: Option<Duration>,
}

fn bad(what: impl std::fmt::Display) -> ServiceError {
    ServiceError::Internal(format!("malformed commit row: {what}"))
}

fn encode_events(events: &[RawEvent]) -> Result<Value, ServiceError> {
    let mut out = Vec::with_capacity(events.len());
    for e in events {
        out.push(json!({
            "event_id": e.meta.event_id.to_string(),
            "type": e.event_type,
            "schema_version": e.schema_version,
            "version": e.meta.version,
            "payload": e.payload,
            "occurred_at": sql::sqlite_time(&e.meta.occurred_at),
        }));
    }
    Ok(Value::Array(out))
}

fn str_of<'a>(v: &'a Value, key: &str) -> Result<&'a str, ServiceError> {
    v.get(key).and_then(Value::as_str).ok_or_else(|| bad(key))
}

fn i64_of(v: &Value, key: &str) -> Result<i64, ServiceError> {
    v.get(key).and_then(Value::as_i64).ok_or_else(|| bad(key))
}

fn decode_commit(r: &Row) -> Result<Commit, ServiceError> {
    let stream_id = r.uuid("stream_id").map_err(db::error)?;
    let metadata = r.json("metadata").map_err(db::error)?;
    let meta_str = |k: &str| {
        metadata
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (correlation_id, causation_id) = (meta_str("correlation_id"), meta_str("causation_id"));
    let raw = r.json("events").map_err(db::error)?;
    let raw = raw.as_array().ok_or_else(|| bad("events"))?;
    let mut events = Vec::with_capacity(raw.len());
    for e in raw {
        let schema_version =
            u32::try_from(i64_of(e, "schema_version")?).map_err(|_| bad("schema_version"))?;
        let occurred_at = DateTime::parse_from_rfc3339(str_of(e, "occurred_at")?)
            .map_err(|_| bad("occurred_at"))?
            .with_timezone(&Utc);
        let payload = e.get("payload").ok_or_else(|| bad("payload"))?;
        events.push(RawEvent {
            meta: EventMeta {
                event_id: Uuid::parse_str(str_of(e, "event_id")?).map_err(|_| bad("event_id"))?,
                stream_id,
                version: i64_of(e, "version")?,
                occurred_at,
                correlation_id: correlation_id.clone(),
                causation_id: causation_id.clone(),
            },
            event_type: str_of(e, "type")?.to_string(),
            schema_version,
            payload: payload.clone(),
        });
    }
    Ok(Commit {
        position: r.i64("position").map_err(db::error)?,
        stream_id,
        commit_seq: r.i64("commit_seq").map_err(db::error)?,
        commit_id: r.uuid("commit_id").map_err(db::error)?,
        rev_from: r.i64("rev_from").map_err(db::error)?,
        rev_to: r.i64("rev_to").map_err(db::error)?,
        events,
        correlation_id,
        causation_id,
        committed_at: r.time("committed_at").map_err(db::error)?,
    })
}

fn decode_all(rows: &[Row]) -> Result<Vec<Commit>, ServiceError> {
    rows.iter().map(decode_commit).collect()
}

impl SqlStore {
    /// Connects to the database `url` names and applies the generated migrations.
    pub async fn connect(
        url: &str,
        layout: StoreLayout,
        options: &ConnectOptions,
    ) -> Result<SqlStore, ServiceError> {
        let db = Db::connect(url, options, Some(layout.migrations))
            .await
            .map_err(|e| match e {
                sqlx::Error::Configuration(_) | sqlx::Error::Migrate(_) => {
                    ServiceError::Internal(format!("event store: {e}"))
                }
                e => db::error(e),
            })?;
        Ok(SqlStore::new(db, layout))
    }

    /// Over an open database (its migrations run in [`SqlStore::prepare`]).
    pub fn new(db: Db, layout: StoreLayout) -> SqlStore {
        SqlStore {
            db,
            migrations: layout.migrations,
            insert_delay: None,
        }
    }

    pub fn with_insert_delay(mut self, delay: Option<Duration>) -> SqlStore {
        self.insert_delay = delay;
        self
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Applies the migrations (idempotent) and answers a ping.
    pub async fn prepare(&self) -> Result<(), ServiceError> {
        self.db
            .migrate(self.migrations)
            .await
            .map_err(|e| ServiceError::Internal(format!("event store migrations: {e}")))?;
        sql::query("SELECT 1 AS one")
            .fetch_one(&self.db)
            .await
            .map_err(db::error)?;
        Ok(())
    }

    pub async fn load(&self, stream_id: Uuid) -> Result<Vec<Commit>, ServiceError> {
        let rows = sql::query(format!(
            "SELECT {COLUMNS} FROM commits WHERE stream_id = $1 ORDER BY commit_seq"
        ))
        .bind(stream_id)
        .fetch_all(&self.db)
        .await
        .map_err(db::error)?;
        decode_all(&rows)
    }

    pub async fn max_position(&self) -> Result<i64, ServiceError> {
        sql::query("SELECT COALESCE(MAX(position), 0) AS top FROM commits")
            .fetch_one(&self.db)
            .await
            .and_then(|r| r.i64("top"))
            .map_err(db::error)
    }

    pub async fn at(&self, position: i64) -> Result<Option<Commit>, ServiceError> {
        let row = sql::query(format!("SELECT {COLUMNS} FROM commits WHERE position = $1"))
            .bind(position)
            .fetch_optional(&self.db)
            .await
            .map_err(db::error)?;
        row.as_ref().map(decode_commit).transpose()
    }

    pub async fn read_after(&self, position: i64, limit: i64) -> Result<Vec<Commit>, ServiceError> {
        let rows = sql::query(format!(
            "SELECT {COLUMNS} FROM commits WHERE position > $1 ORDER BY position LIMIT $2"
        ))
        .bind(position)
        .bind(limit.max(0))
        .fetch_all(&self.db)
        .await
        .map_err(db::error)?;
        decode_all(&rows)
    }

    /// Appends one commit in one transaction under the store's write lock (see the
    /// module docs).
    pub async fn append(&self, commit: &NewCommit) -> Result<Appended, ServiceError> {
        let events = encode_events(&commit.events)?;
        let metadata = json!({
            "correlation_id": commit.correlation_id,
            "causation_id": commit.causation_id,
        });
        let mut tx = self.db.begin().await.map_err(db::error)?;
        tx.lock(APPEND_LOCK).await.map_err(db::error)?;
        if let Some(d) = self.insert_delay {
            tokio::time::sleep(d).await;
        }
        // `WHERE true`: SQLite needs it to tell the upsert's ON from a join's.
        let inserted = sql::query(
            "INSERT INTO commits (position, stream_id, commit_seq, commit_id, rev_from, rev_to, events, metadata, committed_at) \
             SELECT COALESCE(MAX(position), 0) + 1, $1, $2, $3, $4, $5, $6, $7, $8 FROM commits WHERE true \
             ON CONFLICT DO NOTHING RETURNING position",
        )
        .bind(commit.stream_id)
        .bind(commit.commit_seq)
        .bind(commit.commit_id)
        .bind(commit.rev_from())
        .bind(commit.rev_to())
        .bind(events)
        .bind(metadata)
        .bind(Utc::now())
        .fetch_optional(&mut tx)
        .await
        .map_err(db::error)?;
        if let Some(row) = inserted {
            let position = row.i64("position").map_err(db::error)?;
            tx.commit().await.map_err(db::error)?;
            return Ok(Appended::Committed {
                position,
                rev_to: commit.rev_to(),
            });
        }
        let outcome = refused(&mut tx, commit).await;
        let _ = tx.rollback().await;
        outcome
    }

    /// See [`super::EventStore::streams_with`].
    pub async fn streams_with(
        &self,
        event_type: &str,
        field: &str,
        value: &str,
    ) -> Result<Vec<Uuid>, ServiceError> {
        // A text prefilter both dialects run (a scan, as on FerretDB), then the exact
        // test on the decoded events.
        let id = value.to_string();
        let pointer = format!("/payload/{field}");
        let rows =
            sql::query("SELECT stream_id, events FROM commits WHERE CAST(events AS TEXT) LIKE $1")
                .bind(format!("%{id}%"))
                .fetch_all(&self.db)
                .await
                .map_err(db::error)?;
        let mut streams = Vec::new();
        for r in &rows {
            let events = r.json("events").map_err(db::error)?;
            let matches = events.as_array().into_iter().flatten().any(|e| {
                e.get("type").and_then(Value::as_str) == Some(event_type)
                    && e.pointer(&pointer).and_then(Value::as_str) == Some(id.as_str())
            });
            if matches {
                streams.push(r.uuid("stream_id").map_err(db::error)?);
            }
        }
        streams.sort();
        streams.dedup();
        Ok(streams)
    }

    // ------------------------------------------------------------ checkpoints

    pub async fn checkpoint(&self, reader: &str) -> Result<i64, ServiceError> {
        let row = sql::query("SELECT position FROM checkpoints WHERE reader = $1")
            .bind(reader)
            .fetch_optional(&self.db)
            .await
            .map_err(db::error)?;
        row.map(|r| r.i64("position"))
            .transpose()
            .map(Option::unwrap_or_default)
            .map_err(db::error)
    }

    pub async fn save_checkpoint(&self, reader: &str, position: i64) -> Result<(), ServiceError> {
        sql::query(
            "INSERT INTO checkpoints (reader, position, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (reader) DO UPDATE SET \
             position = CASE WHEN checkpoints.position > excluded.position \
                        THEN checkpoints.position ELSE excluded.position END, \
             updated_at = excluded.updated_at",
        )
        .bind(reader)
        .bind(position)
        .bind(Utc::now())
        .execute(&self.db)
        .await
        .map_err(db::error)?;
        Ok(())
    }

    pub async fn record_skipped(&self, reader: &str, position: i64) -> Result<(), ServiceError> {
        sql::query(
            "INSERT INTO skipped_positions (reader, position, skipped_at) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(reader)
        .bind(position)
        .bind(Utc::now())
        .execute(&self.db)
        .await
        .map_err(db::error)?;
        Ok(())
    }

    pub async fn resolve_skipped(&self, reader: &str, position: i64) -> Result<(), ServiceError> {
        sql::query("DELETE FROM skipped_positions WHERE reader = $1 AND position = $2")
            .bind(reader)
            .bind(position)
            .execute(&self.db)
            .await
            .map_err(db::error)?;
        Ok(())
    }

    pub async fn skipped(&self, reader: &str) -> Result<Vec<i64>, ServiceError> {
        sql::query("SELECT position FROM skipped_positions WHERE reader = $1 ORDER BY position")
            .bind(reader)
            .fetch_all(&self.db)
            .await
            .map_err(db::error)?
            .iter()
            .map(|r| r.i64("position").map_err(db::error))
            .collect()
    }

    // ------------------------------------------------------------ leases

    /// Takes the lease if it is free, ours or expired, in one upsert; true when
    /// `owner` holds it afterwards.
    pub async fn try_lease(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, ServiceError> {
        let now = Utc::now();
        let until = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::seconds(10));
        let changed = sql::query(
            "INSERT INTO leases (name, owner, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at \
             WHERE leases.owner = excluded.owner OR leases.expires_at < $4",
        )
        .bind(name)
        .bind(owner)
        .bind(until)
        .bind(now)
        .execute(&self.db)
        .await
        .map_err(db::error)?;
        Ok(changed == 1)
    }

    pub async fn release_lease(&self, name: &str, owner: &str) -> Result<(), ServiceError> {
        sql::query("DELETE FROM leases WHERE name = $1 AND owner = $2")
            .bind(name)
            .bind(owner)
            .execute(&self.db)
            .await
            .map_err(db::error)?;
        Ok(())
    }

    pub async fn lease_owner(&self, name: &str) -> Result<Option<String>, ServiceError> {
        let row = sql::query("SELECT owner FROM leases WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.db)
            .await
            .map_err(db::error)?;
        row.map(|r| r.text("owner")).transpose().map_err(db::error)
    }
}

/// Why the insert stored nothing: a retried command (its first answer) or a taken
/// `commit_seq` (a conflict). Asked in the same transaction, under the lock.
async fn refused(tx: &mut Tx, commit: &NewCommit) -> Result<Appended, ServiceError> {
    let first =
        sql::query("SELECT position, rev_to FROM commits WHERE stream_id = $1 AND commit_id = $2")
            .bind(commit.stream_id)
            .bind(commit.commit_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db::error)?;
    if let Some(r) = first {
        return Ok(Appended::Duplicate {
            position: r.i64("position").map_err(db::error)?,
            rev_to: r.i64("rev_to").map_err(db::error)?,
        });
    }
    let taken = sql::query("SELECT position FROM commits WHERE stream_id = $1 AND commit_seq = $2")
        .bind(commit.stream_id)
        .bind(commit.commit_seq)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db::error)?;
    if taken.is_some() {
        return Err(ServiceError::Conflict(format!(
            "stream {} was changed concurrently (commit {} exists); reread and retry",
            commit.stream_id, commit.commit_seq
        )));
    }
    Err(ServiceError::Internal(format!(
        "commit {} of stream {} refused by the event store for no known key",
        commit.commit_seq, commit.stream_id
    )))
}
