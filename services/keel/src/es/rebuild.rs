//! Rebuilds a read model ([`StateView`]) from the event store, without the bus.
//!
//! 1. Fold every commit in position order (a contiguous prefix, see `relay`) into
//!    per-stream states in memory, up to position P1.
//! 2. In ONE transaction on the read database (PostgreSQL or SQLite, the same
//!    statements): take the read model's lock ([`StateView::LOCK`], which every applier
//!    takes: the event handler waits, readers go on with the old rows), fold the commits
//!    after P1 up to the store's max P2 (read after the lock: every event the handler
//!    applied before the lock is at or below it), delete every row of the view's tables
//!    and insert the folded states' rows (multi-row `VALUES`), commit.
//!
//! Readers see the old read model until the commit and the new one after it (MVCC on
//! PostgreSQL, WAL snapshots on SQLite): the replacement is atomic, without
//! dialect-specific DDL. The event handler resumes on the new rows: what it sees at or
//! below P2 is covered, what comes after applies.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::Decider;
use super::store::{Commit, EventStore};
use super::view::{self, EventOf, Rows, State, StateView};
use crate::sql::{self, Db};
use crate::{ServiceError, db};

/// What a rebuild did.
#[derive(Debug, Clone, PartialEq)]
pub struct RebuildReport {
    pub commits: u64,
    pub events: u64,
    pub streams: usize,
    /// The last position folded in.
    pub position: i64,
    pub elapsed: Duration,
}

impl RebuildReport {
    pub fn events_per_second(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

struct Folded<V: StateView> {
    streams: HashMap<Uuid, (State<V>, i64)>,
    commits: u64,
    events: u64,
    position: i64,
}

impl<V: StateView> Folded<V> {
    fn add(&mut self, c: &Commit) {
        let (state, version) = self.streams.entry(c.stream_id).or_default();
        for e in &c.events {
            match e.decode::<EventOf<V>>() {
                Ok(event) => V::Decider::apply(state, &event, &e.meta),
                Err(err) => tracing::error!(alert = "event_undecodable", stream_id = %c.stream_id,
                    version = e.meta.version, error = %err, "ALERT: rebuild skips an undecodable stored event"),
            }
            *version = e.meta.version;
        }
        self.commits += 1;
        self.events += c.events.len() as u64;
        self.position = c.position;
    }

    /// Folds the commits after `self.position`, up to `until` (or as far as they are
    /// contiguous when `until` is `None`). A hole below `until` is a read that raced an
    /// insert: read again, for a bounded time.
    async fn catch_up(
        &mut self,
        store: &EventStore,
        until: Option<i64>,
    ) -> Result<(), ServiceError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if until.is_some_and(|u| self.position >= u) {
                return Ok(());
            }
            // Large batches: FerretDB v1 sorts in memory, so each read costs about a scan.
            let batch = store.read_after(self.position, 20_000).await?;
            let mut progressed = false;
            for c in &batch {
                if c.position != self.position + 1 || until.is_some_and(|u| c.position > u) {
                    break;
                }
                self.add(c);
                progressed = true;
            }
            if progressed {
                continue;
            }
            match until {
                None => return Ok(()),
                Some(u) if Instant::now() >= deadline => {
                    return Err(ServiceError::Unavailable(format!(
                        "position {} below {u} never became readable",
                        self.position + 1
                    )));
                }
                Some(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    /// The rows of every folded stream, in id order.
    fn rows(&self) -> Result<Rows, ServiceError> {
        let mut ids: Vec<&Uuid> = self.streams.keys().collect();
        ids.sort();
        let mut rows = Rows::default();
        for id in ids {
            let (state, version) = &self.streams[id];
            view::stream_rows::<V>(*id, *version, state, &mut rows)?;
        }
        Ok(rows)
    }
}

/// Rebuilds the read model `V` in `db` from `store` (see the module docs).
pub async fn rebuild<V: StateView>(
    store: &EventStore,
    db: &Db,
) -> Result<RebuildReport, ServiceError> {
    let started = Instant::now();
    view::prepare::<V>(db).await?;
    let mut folded = Folded::<V> {
        streams: HashMap::new(),
        commits: 0,
        events: 0,
        position: 0,
    };
    folded.catch_up(store, None).await?;
    tracing::info!(
        position = folded.position,
        events = folded.events,
        "rebuild: store folded"
    );

    // Catch up under the read model's lock, then replace the rows in the same
    // transaction: readers see the old rows until it commits.
    let mut tx = db.begin().await.map_err(db::error)?;
    tx.lock(V::LOCK).await.map_err(db::error)?;
    let until = store.max_position().await?;
    folded.catch_up(store, Some(until)).await?;
    for t in V::TABLES {
        sql::query(format!("DELETE FROM {t}"))
            .execute(&mut tx)
            .await
            .map_err(db::error)?;
    }
    folded.rows()?.insert(&mut tx).await.map_err(db::error)?;
    tx.commit().await.map_err(db::error)?;
    let report = RebuildReport {
        commits: folded.commits,
        events: folded.events,
        streams: folded.streams.len(),
        position: folded.position,
        elapsed: started.elapsed(),
    };
    tracing::info!(
        commits = report.commits,
        events = report.events,
        streams = report.streams,
        position = report.position,
        elapsed_ms = report.elapsed.as_millis() as u64,
        events_per_second = report.events_per_second(),
        "rebuild: swapped in"
    );
    Ok(report)
}
