//! The event store of a CQRS + ES service, chosen by URL: the MongoDB wire (`mongodb://…`: MongoDB, or
//! FerretDB v1 which has no multi-document transactions) or SQL (`postgres://…`, or
//! `sqlite://path/events.db` embedded). Callers see one API, [`EventStore`]; both keep
//! the same guarantees with ONE record per command holding all of its events:
//!
//! ```text
//! { position: <i64 global position>, stream_id: "<uuid>", commit_seq: <i64, from 1>,
//!   commit_id: "<uuid>", rev_from: <first event version>, rev_to: <last event version>,
//!   events: [ { event_id, type, schema_version, version, payload: {..}, occurred_at } ],
//!   correlation_id, causation_id, committed_at }
//! ```
//!
//! - Optimistic concurrency: unique `(stream_id, commit_seq)`. Two commands that decided
//!   on the same state both try `commit_seq = n + 1`; one wins, the other gets
//!   [`ServiceError::Conflict`] (ABORTED, retryable).
//! - Idempotency: unique `(stream_id, commit_id)`. A command retried with the same commit
//!   id finds its first commit and is answered with that commit's result.
//! - A global, gap-free position: stored positions are always exactly `1..=max`.
//!   - MongoDB ([`mongo`]): `_id` = max + 1, taken by the insert itself: a duplicate
//!     `_id` means another writer took that position first, so the writer reads the max
//!     again and retries. A position exists only once its insert succeeded, and a writer
//!     only picks `N + 1` after it has seen `N`; documents are never deleted. A reader
//!     that sees `N + 1` without `N` only read too early (a cursor is not a snapshot).
//!     See `relay`.
//!   - SQL ([`sql`]): one transaction per commit that takes the store's write lock
//!     (`pg_advisory_xact_lock`; SQLite's single writer), then inserts at
//!     `MAX(position) + 1`: commits become visible in position order, so a reader never
//!     sees `N + 1` without `N`. The tables are generated from the spec's event store
//!     layout (`generated/sql|sqlite/<system>_<service>_events`).
//!
//! The store keeps events in their stored form ([`RawEvent`]); each service decodes
//! them with its generated [`Event`](super::Event) implementation.

pub mod mongo;
pub mod sql;

use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Event, EventMeta, RawEvent};
use crate::ServiceError;
use crate::sql::Migrations;

pub use mongo::{MongoStore, is_duplicate_key, mongo_error};
pub use sql::SqlStore;

/// What the generator wrote for one service's event store: the SQL migrations (both
/// dialects) and the MongoDB collections with their indexes (JSON).
#[derive(Clone, Copy)]
pub struct StoreLayout {
    pub migrations: &'static Migrations,
    pub collections_json: &'static str,
}

/// One commit document.
#[derive(Debug, Clone, PartialEq)]
pub struct Commit {
    pub position: i64,
    pub stream_id: Uuid,
    pub commit_seq: i64,
    pub commit_id: Uuid,
    pub rev_from: i64,
    pub rev_to: i64,
    pub events: Vec<RawEvent>,
    pub correlation_id: String,
    pub causation_id: String,
    pub committed_at: DateTime<Utc>,
}

impl Commit {
    /// The commit's events, decoded.
    pub fn decode<E: Event>(&self) -> Result<Vec<(EventMeta, E)>, ServiceError> {
        self.events
            .iter()
            .map(|e| Ok((e.meta.clone(), e.decode()?)))
            .collect()
    }
}

/// A commit to append (its position is assigned by [`EventStore::append`]).
#[derive(Debug, Clone)]
pub struct NewCommit {
    pub stream_id: Uuid,
    pub commit_seq: i64,
    pub commit_id: Uuid,
    pub events: Vec<RawEvent>,
    pub correlation_id: String,
    pub causation_id: String,
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Stored at this global position; the stream is now at `rev_to`.
    Committed { position: i64, rev_to: i64 },
    /// The same commit id was already stored (a retried command): its result.
    Duplicate { position: i64, rev_to: i64 },
}

impl NewCommit {
    pub fn rev_from(&self) -> i64 {
        self.events.first().map(|e| e.meta.version).unwrap_or(0)
    }

    pub fn rev_to(&self) -> i64 {
        self.events.last().map(|e| e.meta.version).unwrap_or(0)
    }
}

/// An event store: MongoDB wire or SQL, by URL (see the module docs).
#[derive(Clone)]
pub enum EventStore {
    Mongo(MongoStore),
    Sql(SqlStore),
}

/// Whether `url` names the SQL form of the store (`postgres://`, `sqlite://`).
pub fn is_sql_url(url: &str) -> bool {
    crate::sql::Dialect::of_url(url).is_some()
}

impl EventStore {
    /// `mongodb://…` (database `database`), or `postgres://…` / `sqlite://path` (the
    /// URL names the database; its generated migrations run here).
    pub async fn connect(
        url: &str,
        database: &str,
        layout: StoreLayout,
    ) -> Result<EventStore, ServiceError> {
        EventStore::connect_with(
            url,
            database,
            layout,
            &crate::sql::ConnectOptions::default(),
        )
        .await
    }

    pub async fn connect_with(
        url: &str,
        database: &str,
        layout: StoreLayout,
        options: &crate::sql::ConnectOptions,
    ) -> Result<EventStore, ServiceError> {
        if is_sql_url(url) {
            Ok(EventStore::Sql(
                SqlStore::connect(url, layout, options).await?,
            ))
        } else if url.starts_with("mongodb://") || url.starts_with("mongodb+srv://") {
            Ok(EventStore::Mongo(
                MongoStore::connect(url, database, layout).await?,
            ))
        } else {
            Err(ServiceError::Internal(format!(
                "unsupported event store URL {:?}: use mongodb://…, postgres://… or sqlite://path",
                crate::sql::redact(url)
            )))
        }
    }

    pub fn mongo(&self) -> Option<&MongoStore> {
        match self {
            EventStore::Mongo(m) => Some(m),
            EventStore::Sql(_) => None,
        }
    }

    pub fn sql(&self) -> Option<&SqlStore> {
        match self {
            EventStore::Sql(s) => Some(s),
            EventStore::Mongo(_) => None,
        }
    }

    /// A copy with a pause between taking a position and inserting (and, on MongoDB,
    /// its own position cache, as another process would have): for tests.
    pub fn with_insert_delay(self, delay: Option<Duration>) -> EventStore {
        match self {
            EventStore::Mongo(m) => EventStore::Mongo(m.with_insert_delay(delay)),
            EventStore::Sql(s) => EventStore::Sql(s.with_insert_delay(delay)),
        }
    }

    /// Makes the store usable (MongoDB: the generated indexes; SQL: the generated
    /// migrations) and answers a ping, so a process fails at start when it is not.
    pub async fn ensure_indexes(&self) -> Result<(), ServiceError> {
        match self {
            EventStore::Mongo(m) => m.ensure_indexes().await,
            EventStore::Sql(s) => s.prepare().await,
        }
    }

    /// Every commit of one stream, in commit order.
    pub async fn load(&self, stream_id: Uuid) -> Result<Vec<Commit>, ServiceError> {
        match self {
            EventStore::Mongo(m) => m.load(stream_id).await,
            EventStore::Sql(s) => s.load(stream_id).await,
        }
    }

    /// The highest position stored (0 when empty).
    pub async fn max_position(&self) -> Result<i64, ServiceError> {
        match self {
            EventStore::Mongo(m) => m.max_position().await,
            EventStore::Sql(s) => s.max_position().await,
        }
    }

    /// The commit at `position`, if it is stored.
    pub async fn at(&self, position: i64) -> Result<Option<Commit>, ServiceError> {
        match self {
            EventStore::Mongo(m) => m.at(position).await,
            EventStore::Sql(s) => s.at(position).await,
        }
    }

    /// Up to `limit` commits after `position`, in position order (on MongoDB not a
    /// snapshot: see the module docs).
    pub async fn read_after(&self, position: i64, limit: i64) -> Result<Vec<Commit>, ServiceError> {
        match self {
            EventStore::Mongo(m) => m.read_after(position, limit).await,
            EventStore::Sql(s) => s.read_after(position, limit).await,
        }
    }

    /// Appends one commit. See the module docs for the outcomes.
    pub async fn append(&self, commit: &NewCommit) -> Result<Appended, ServiceError> {
        match self {
            EventStore::Mongo(m) => m.append(commit).await,
            EventStore::Sql(s) => s.append(commit).await,
        }
    }

    /// The streams with an event of type `event_type` whose payload field `field` was
    /// ever `value` (e.g. the carts a customer was assigned to): a scan, for the
    /// subscriptions' decisions.
    pub async fn streams_with(
        &self,
        event_type: &str,
        field: &str,
        value: &str,
    ) -> Result<Vec<Uuid>, ServiceError> {
        match self {
            EventStore::Mongo(m) => m.streams_with(event_type, field, value).await,
            EventStore::Sql(s) => s.streams_with(event_type, field, value).await,
        }
    }

    /// The last position `reader` has fully handled (0 if none).
    pub async fn checkpoint(&self, reader: &str) -> Result<i64, ServiceError> {
        match self {
            EventStore::Mongo(m) => m.checkpoint(reader).await,
            EventStore::Sql(s) => s.checkpoint(reader).await,
        }
    }

    /// Moves `reader`'s checkpoint forward to `position` (never back, so a relay that
    /// lost its lease cannot rewind the one that took it).
    pub async fn save_checkpoint(&self, reader: &str, position: i64) -> Result<(), ServiceError> {
        match self {
            EventStore::Mongo(m) => m.save_checkpoint(reader, position).await,
            EventStore::Sql(s) => s.save_checkpoint(reader, position).await,
        }
    }

    /// Records a position a reader gave up waiting for (an alert's audit trail).
    pub async fn record_skipped(&self, reader: &str, position: i64) -> Result<(), ServiceError> {
        match self {
            EventStore::Mongo(m) => m.record_skipped(reader, position).await,
            EventStore::Sql(s) => s.record_skipped(reader, position).await,
        }
    }

    /// A skipped position appeared after all and `reader` handled it.
    pub async fn resolve_skipped(&self, reader: &str, position: i64) -> Result<(), ServiceError> {
        match self {
            EventStore::Mongo(m) => m.resolve_skipped(reader, position).await,
            EventStore::Sql(s) => s.resolve_skipped(reader, position).await,
        }
    }

    pub async fn skipped(&self, reader: &str) -> Result<Vec<i64>, ServiceError> {
        match self {
            EventStore::Mongo(m) => m.skipped(reader).await,
            EventStore::Sql(s) => s.skipped(reader).await,
        }
    }

    /// Takes or renews the lease `name` for `owner` until now + `ttl`; true when
    /// `owner` holds it afterwards.
    pub async fn try_lease(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, ServiceError> {
        match self {
            EventStore::Mongo(m) => m.try_lease(name, owner, ttl).await,
            EventStore::Sql(s) => s.try_lease(name, owner, ttl).await,
        }
    }

    /// Gives the lease up (if `owner` still holds it), so a standby takes over at once.
    pub async fn release_lease(&self, name: &str, owner: &str) -> Result<(), ServiceError> {
        match self {
            EventStore::Mongo(m) => m.release_lease(name, owner).await,
            EventStore::Sql(s) => s.release_lease(name, owner).await,
        }
    }

    /// Who holds the lease `name` now (expired or not).
    pub async fn lease_owner(&self, name: &str) -> Result<Option<String>, ServiceError> {
        match self {
            EventStore::Mongo(m) => m.lease_owner(name).await,
            EventStore::Sql(s) => s.lease_owner(name).await,
        }
    }
}
