//! The event store on the MongoDB wire protocol: one document per commit (see the
//! parent module for the layout and the guarantees).

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use mongodb::bson::{self, Bson, Document, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::IndexOptions;
use mongodb::{Client, Collection, Database, IndexModel};
use serde::Deserialize;
use uuid::Uuid;

use super::{Appended, Commit, NewCommit, StoreLayout};
use crate::ServiceError;
use crate::es::{EventMeta, RawEvent};

const DUPLICATE_KEY: i32 = 11000;

/// How often a writer retries a position another writer took first.
const POSITION_ATTEMPTS: usize = 50;

#[derive(Deserialize)]
struct CollectionSpec {
    name: String,
    indexes: Vec<IndexSpec>,
}

#[derive(Deserialize)]
struct IndexSpec {
    name: String,
    key: Document,
    #[serde(default)]
    unique: bool,
}

#[derive(Deserialize)]
struct StoreSpec {
    collections: Vec<CollectionSpec>,
}

/// An event store in one MongoDB database.
#[derive(Clone)]
pub struct MongoStore {
    db: Database,
    commits: Collection<Document>,
    /// Serializes this process's appends and remembers the next free position (see
    /// [`MongoStore::append`]).
    next_position: std::sync::Arc<tokio::sync::Mutex<Option<i64>>>,
    /// Test hook: a pause between reading the max position and inserting, to widen the
    /// window in which writers race (see the relay tests).
    insert_delay: Option<Duration>,
    /// The generated collections and indexes (JSON).
    collections_json: &'static str,
}

pub fn mongo_error(e: mongodb::error::Error) -> ServiceError {
    match e.kind.as_ref() {
        ErrorKind::Io(_)
        | ErrorKind::ServerSelection { .. }
        | ErrorKind::ConnectionPoolCleared { .. } => {
            ServiceError::Unavailable(format!("event store: {e}"))
        }
        _ => ServiceError::Internal(format!("event store: {e}")),
    }
}

/// Whether `e` is a duplicate key error (E11000), from a write or a command.
pub fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == DUPLICATE_KEY,
        ErrorKind::Command(c) => c.code == DUPLICATE_KEY,
        _ => false,
    }
}

fn bad(what: impl std::fmt::Display) -> ServiceError {
    ServiceError::Internal(format!("malformed commit document: {what}"))
}

fn to_bson_datetime(t: &DateTime<Utc>) -> bson::DateTime {
    bson::DateTime::from_millis(t.timestamp_millis())
}

fn from_bson_datetime(t: bson::DateTime) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or_default()
}

fn schema_version(e: &Document) -> Result<u32, ServiceError> {
    let v = get_i64(e, "schema_version")?;
    u32::try_from(v).map_err(|_| bad("schema_version"))
}

impl NewCommit {
    /// The document stored for this commit at `position`.
    pub fn to_document(&self, position: i64) -> Result<Document, ServiceError> {
        let mut events = Vec::with_capacity(self.events.len());
        for e in &self.events {
            let payload = bson::to_bson(&e.payload)
                .map_err(|err| ServiceError::Internal(format!("encoding event: {err}")))?;
            events.push(Bson::Document(doc! {
                "event_id": e.meta.event_id.to_string(),
                "type": &e.event_type,
                "schema_version": i64::from(e.schema_version),
                "version": e.meta.version,
                "payload": payload,
                "occurred_at": to_bson_datetime(&e.meta.occurred_at),
            }));
        }
        let rev_from = self.events.first().map(|e| e.meta.version).unwrap_or(0);
        let rev_to = self.events.last().map(|e| e.meta.version).unwrap_or(0);
        Ok(doc! {
            "_id": position,
            "stream_id": self.stream_id.to_string(),
            "commit_seq": self.commit_seq,
            "commit_id": self.commit_id.to_string(),
            "rev_from": rev_from,
            "rev_to": rev_to,
            "events": events,
            "correlation_id": &self.correlation_id,
            "causation_id": &self.causation_id,
            "committed_at": bson::DateTime::now(),
        })
    }
}

fn get_i64(d: &Document, key: &str) -> Result<i64, ServiceError> {
    match d.get(key) {
        Some(Bson::Int64(v)) => Ok(*v),
        Some(Bson::Int32(v)) => Ok(i64::from(*v)),
        Some(Bson::Double(v)) if v.fract() == 0.0 => Ok(*v as i64),
        other => Err(bad(format!("{key}: {other:?}"))),
    }
}

fn get_str<'a>(d: &'a Document, key: &str) -> Result<&'a str, ServiceError> {
    d.get_str(key).map_err(|_| bad(key))
}

fn get_uuid(d: &Document, key: &str) -> Result<Uuid, ServiceError> {
    Uuid::parse_str(get_str(d, key)?).map_err(|_| bad(key))
}

impl Commit {
    pub fn from_document(d: &Document) -> Result<Commit, ServiceError> {
        let stream_id = get_uuid(d, "stream_id")?;
        let correlation_id = get_str(d, "correlation_id")?.to_string();
        let causation_id = get_str(d, "causation_id")?.to_string();
        let raw_events = d.get_array("events").map_err(|_| bad("events"))?;
        let mut events = Vec::with_capacity(raw_events.len());
        for raw in raw_events {
            let e = raw.as_document().ok_or_else(|| bad("events[]"))?;
            let kind = get_str(e, "type")?;
            let payload = e.get("payload").ok_or_else(|| bad("payload"))?;
            let occurred_at = e
                .get_datetime("occurred_at")
                .map(|t| from_bson_datetime(*t))
                .map_err(|_| bad("occurred_at"))?;
            events.push(RawEvent {
                meta: EventMeta {
                    event_id: get_uuid(e, "event_id")?,
                    stream_id,
                    version: get_i64(e, "version")?,
                    occurred_at,
                    correlation_id: correlation_id.clone(),
                    causation_id: causation_id.clone(),
                },
                event_type: kind.to_string(),
                schema_version: schema_version(e)?,
                payload: payload.clone().into_relaxed_extjson(),
            });
        }
        Ok(Commit {
            position: get_i64(d, "_id")?,
            stream_id,
            commit_seq: get_i64(d, "commit_seq")?,
            commit_id: get_uuid(d, "commit_id")?,
            rev_from: get_i64(d, "rev_from")?,
            rev_to: get_i64(d, "rev_to")?,
            events,
            correlation_id,
            causation_id,
            committed_at: d
                .get_datetime("committed_at")
                .map(|t| from_bson_datetime(*t))
                .map_err(|_| bad("committed_at"))?,
        })
    }
}

impl MongoStore {
    /// Connects (lazily: the driver connects on first use) to `database` at `url`.
    pub async fn connect(
        url: &str,
        database: &str,
        layout: StoreLayout,
    ) -> Result<MongoStore, ServiceError> {
        let client = Client::with_uri_str(url).await.map_err(mongo_error)?;
        Ok(MongoStore::new(client.database(database), layout))
    }

    pub fn new(db: Database, layout: StoreLayout) -> MongoStore {
        // An acknowledged command must survive the server's crash: journaled, and on a
        // replica set acknowledged by a majority (a rollback cannot take it back).
        let durable = mongodb::options::WriteConcern::builder()
            .w(mongodb::options::Acknowledgment::Majority)
            .journal(true)
            .build();
        let options = mongodb::options::CollectionOptions::builder()
            .write_concern(durable)
            .build();
        MongoStore {
            commits: db.collection_with_options("commits", options),
            db,
            next_position: Default::default(),
            insert_delay: None,
            collections_json: layout.collections_json,
        }
    }

    /// A copy with its own position cache and append lock (as another process would
    /// have) and a pause between taking a position and inserting: for tests.
    pub fn with_insert_delay(mut self, delay: Option<Duration>) -> MongoStore {
        self.insert_delay = delay;
        self.next_position = Default::default();
        self
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    pub fn commits(&self) -> &Collection<Document> {
        &self.commits
    }

    /// Creates the generated collections' indexes (idempotent) and answers a ping, so a
    /// process fails at start, not at its first command, when the store is unusable.
    pub async fn ensure_indexes(&self) -> Result<(), ServiceError> {
        let spec: StoreSpec = serde_json::from_str(self.collections_json)
            .map_err(|e| ServiceError::Internal(format!("generated store spec: {e}")))?;
        self.db
            .run_command(doc! { "ping": 1 })
            .await
            .map_err(mongo_error)?;
        for c in spec.collections {
            let coll: Collection<Document> = self.db.collection(&c.name);
            for i in c.indexes {
                let model = IndexModel::builder()
                    .keys(i.key)
                    .options(
                        IndexOptions::builder()
                            .name(i.name)
                            .unique(i.unique)
                            .build(),
                    )
                    .build();
                coll.create_index(model).await.map_err(mongo_error)?;
            }
        }
        Ok(())
    }

    /// Every commit of one stream, in commit order.
    pub async fn load(&self, stream_id: Uuid) -> Result<Vec<Commit>, ServiceError> {
        let docs: Vec<Document> = self
            .commits
            .find(doc! { "stream_id": stream_id.to_string() })
            .sort(doc! { "commit_seq": 1 })
            .await
            .map_err(mongo_error)?
            .try_collect()
            .await
            .map_err(mongo_error)?;
        docs.iter().map(Commit::from_document).collect()
    }

    /// The highest position stored (0 when empty).
    pub async fn max_position(&self) -> Result<i64, ServiceError> {
        let top = self
            .commits
            .find_one(doc! {})
            .sort(doc! { "_id": -1 })
            .projection(doc! { "_id": 1 })
            .await
            .map_err(mongo_error)?;
        match top {
            Some(d) => get_i64(&d, "_id"),
            None => Ok(0),
        }
    }

    async fn find_by(&self, filter: Document) -> Result<Option<Commit>, ServiceError> {
        match self.commits.find_one(filter).await.map_err(mongo_error)? {
            Some(d) => Commit::from_document(&d).map(Some),
            None => Ok(None),
        }
    }

    /// The commit at `position`, if it is stored.
    pub async fn at(&self, position: i64) -> Result<Option<Commit>, ServiceError> {
        self.find_by(doc! { "_id": position }).await
    }

    /// Up to `limit` commits after `position`, in position order. NOT a snapshot: a
    /// commit at a lower position may show up in a later read (see the module docs).
    pub async fn read_after(&self, position: i64, limit: i64) -> Result<Vec<Commit>, ServiceError> {
        let docs: Vec<Document> = self
            .commits
            .find(doc! { "_id": { "$gt": position } })
            .sort(doc! { "_id": 1 })
            .limit(limit)
            .await
            .map_err(mongo_error)?
            .try_collect()
            .await
            .map_err(mongo_error)?;
        docs.iter().map(Commit::from_document).collect()
    }

    /// Appends one commit with one insert. See the module docs for the outcomes.
    ///
    /// Within one process appends take turns (a lock held only around taking a position
    /// and inserting), so the process's own writers never fight over a position, and it
    /// remembers `last + 1` instead of reading the max each time. The remembered value is
    /// never above `max + 1` (its own insert is there), so it cannot open a hole; when
    /// another process took it, the duplicate `_id` sends it back to reading the max.
    pub async fn append(&self, commit: &NewCommit) -> Result<Appended, ServiceError> {
        let mut next = self.next_position.lock().await;
        for attempt in 0..POSITION_ATTEMPTS {
            let position = match next.take() {
                Some(p) => p,
                None => self.max_position().await? + 1,
            };
            let document = commit.to_document(position)?;
            if let Some(d) = self.insert_delay {
                tokio::time::sleep(d).await;
            }
            match self.commits.insert_one(document).await {
                Ok(_) => {
                    *next = Some(position + 1);
                    return Ok(Appended::Committed {
                        position,
                        rev_to: commit.rev_to(),
                    });
                }
                Err(e) if is_duplicate_key(&e) => {
                    // Which unique index refused it? Ask the store rather than parse the
                    // message (MongoDB and FerretDB word it differently).
                    let stream = commit.stream_id.to_string();
                    if let Some(first) = self
                        .find_by(doc! { "stream_id": &stream, "commit_id": commit.commit_id.to_string() })
                        .await?
                    {
                        return Ok(Appended::Duplicate {
                            position: first.position,
                            rev_to: first.rev_to,
                        });
                    }
                    let taken = self
                        .commits
                        .count_documents(
                            doc! { "stream_id": &stream, "commit_seq": commit.commit_seq },
                        )
                        .await
                        .map_err(mongo_error)?;
                    if taken > 0 {
                        return Err(ServiceError::Conflict(format!(
                            "stream {} was changed concurrently (commit {} exists); reread and retry",
                            commit.stream_id, commit.commit_seq
                        )));
                    }
                    // Position taken by another process's writer: read the max again,
                    // after a short, growing, jittered pause so that processes do not
                    // keep colliding in step.
                    let jitter = u64::from(commit.commit_id.as_u128() as u8) % 4;
                    tokio::time::sleep(Duration::from_millis((attempt as u64).min(20) + jitter))
                        .await;
                }
                Err(e) => return Err(mongo_error(e)),
            }
        }
        Err(ServiceError::Unavailable(
            "event store too busy: no free position after retries".into(),
        ))
    }

    /// See [`super::EventStore::streams_with`]. A full scan on FerretDB v1 (no index on
    /// event payloads).
    pub async fn streams_with(
        &self,
        event_type: &str,
        field: &str,
        value: &str,
    ) -> Result<Vec<Uuid>, ServiceError> {
        let mut filter = doc! { "events.type": event_type };
        filter.insert(format!("events.payload.{field}"), value);
        let docs: Vec<Document> = self
            .commits
            .find(filter)
            .projection(doc! { "stream_id": 1 })
            .await
            .map_err(mongo_error)?
            .try_collect()
            .await
            .map_err(mongo_error)?;
        let mut streams: Vec<Uuid> = docs
            .iter()
            .map(|d| get_uuid(d, "stream_id"))
            .collect::<Result<_, _>>()?;
        streams.sort();
        streams.dedup();
        Ok(streams)
    }

    // ------------------------------------------------------------ checkpoints

    fn checkpoints(&self) -> Collection<Document> {
        self.db.collection("checkpoints")
    }

    /// The last position `reader` has fully handled (0 if none).
    pub async fn checkpoint(&self, reader: &str) -> Result<i64, ServiceError> {
        match self
            .checkpoints()
            .find_one(doc! { "_id": reader })
            .await
            .map_err(mongo_error)?
        {
            Some(d) => get_i64(&d, "position"),
            None => Ok(0),
        }
    }

    /// Moves `reader`'s checkpoint forward to `position` (never back: `$max`, so a
    /// relay that lost its lease cannot rewind the one that took it).
    pub async fn save_checkpoint(&self, reader: &str, position: i64) -> Result<(), ServiceError> {
        let now = bson::DateTime::now();
        let r = self
            .checkpoints()
            .update_one(
                doc! { "_id": reader },
                doc! { "$max": { "position": position }, "$set": { "updated_at": now } },
            )
            .await
            .map_err(mongo_error)?;
        if r.matched_count == 1 {
            return Ok(());
        }
        match self
            .checkpoints()
            .insert_one(doc! { "_id": reader, "position": position, "updated_at": now })
            .await
        {
            Ok(_) => Ok(()),
            // Created meanwhile by another relay: move it forward.
            Err(e) if is_duplicate_key(&e) => {
                self.checkpoints()
                    .update_one(
                        doc! { "_id": reader },
                        doc! { "$max": { "position": position }, "$set": { "updated_at": now } },
                    )
                    .await
                    .map_err(mongo_error)?;
                Ok(())
            }
            Err(e) => Err(mongo_error(e)),
        }
    }

    /// Records positions a reader gave up waiting for (an alert's audit trail).
    pub async fn record_skipped(&self, reader: &str, position: i64) -> Result<(), ServiceError> {
        // The checkpoint document exists afterwards (it holds the list); `$max` keeps it.
        self.save_checkpoint(reader, position - 1).await?;
        self.checkpoints()
            .update_one(
                doc! { "_id": reader },
                doc! { "$addToSet": { "skipped": position } },
            )
            .await
            .map_err(mongo_error)?;
        Ok(())
    }

    pub async fn resolve_skipped(&self, reader: &str, position: i64) -> Result<(), ServiceError> {
        self.checkpoints()
            .update_one(
                doc! { "_id": reader },
                doc! { "$pull": { "skipped": position } },
            )
            .await
            .map_err(mongo_error)?;
        Ok(())
    }

    pub async fn skipped(&self, reader: &str) -> Result<Vec<i64>, ServiceError> {
        let d = self
            .checkpoints()
            .find_one(doc! { "_id": reader })
            .await
            .map_err(mongo_error)?;
        Ok(d.and_then(|d| d.get_array("skipped").ok().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|b| match b {
                Bson::Int64(v) => Some(*v),
                Bson::Int32(v) => Some(i64::from(*v)),
                _ => None,
            })
            .collect())
    }

    // ------------------------------------------------------------ leases

    fn leases(&self) -> Collection<Document> {
        self.db.collection("leases")
    }

    /// Takes or renews the lease `name` for `owner` until now + `ttl`. True when
    /// `owner` holds it afterwards. Two steps, each atomic on one document: renew it or
    /// take it over if it is ours or expired, else create it (duplicate key: somebody
    /// else holds it).
    pub async fn try_lease(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, ServiceError> {
        let now = Utc::now();
        let until = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::seconds(10));
        let (now, until) = (to_bson_datetime(&now), to_bson_datetime(&until));
        let r = self
            .leases()
            .update_one(
                doc! { "_id": name, "$or": [ { "owner": owner }, { "expires_at": { "$lt": now } } ] },
                doc! { "$set": { "owner": owner, "expires_at": until } },
            )
            .await
            .map_err(mongo_error)?;
        if r.matched_count == 1 {
            return Ok(true);
        }
        match self
            .leases()
            .insert_one(doc! { "_id": name, "owner": owner, "expires_at": until })
            .await
        {
            Ok(_) => Ok(true),
            // Held by someone else (and not expired).
            Err(e) if is_duplicate_key(&e) => Ok(false),
            Err(e) => Err(mongo_error(e)),
        }
    }

    /// Gives the lease up (if `owner` still holds it), so a standby takes over at once.
    pub async fn release_lease(&self, name: &str, owner: &str) -> Result<(), ServiceError> {
        self.leases()
            .delete_one(doc! { "_id": name, "owner": owner })
            .await
            .map_err(mongo_error)?;
        Ok(())
    }

    /// Who holds the lease `name` now (expired or not).
    pub async fn lease_owner(&self, name: &str) -> Result<Option<String>, ServiceError> {
        let d = self
            .leases()
            .find_one(doc! { "_id": name })
            .await
            .map_err(mongo_error)?;
        Ok(d.and_then(|d| d.get_str("owner").ok().map(str::to_string)))
    }
}
