//! Rebuilds the read model from the event store, without Kafka.
//!
//! 1. Fold every commit in position order (a contiguous prefix, see `relay`) into
//!    per-cart states in memory, up to position P1.
//! 2. In ONE transaction on the read database (PostgreSQL or SQLite, the same
//!    statements): take the read model's lock (`projection::READ_MODEL_LOCK`, which
//!    every applier takes: the event handler waits, readers go on with the old rows),
//!    fold the commits after P1 up to the store's max P2 (read after the lock: every
//!    event the handler applied before the lock is at or below it), delete every row of
//!    the three tables and insert the folded states (multi-row `VALUES`), commit.
//!
//! Readers see the old read model until the commit and the new one after it (MVCC on
//! PostgreSQL, WAL snapshots on SQLite): the replacement is atomic, like the schema
//! swap it replaces, without dialect-specific DDL. The event handler resumes on the
//! new rows: what it sees at or below P2 is covered, what comes after applies.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use shop_cart::CartAggregate;
use shop_kit::sql::{self, Db, Tx};
use uuid::Uuid;

use crate::aggregate::Cart;
use crate::projection::{
    CART_COLUMNS, DELETION_COLUMNS, ITEM_COLUMNS, READ_MODEL_LOCK, STATE_COLUMNS, TABLES,
    cart_rows, insert_rows,
};
use crate::store::{Commit, EventStore};

/// What a rebuild did.
#[derive(Debug, Clone, PartialEq)]
pub struct RebuildReport {
    pub commits: u64,
    pub events: u64,
    pub carts: usize,
    /// The last position folded in.
    pub position: i64,
    pub elapsed: Duration,
}

impl RebuildReport {
    pub fn events_per_second(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

#[derive(Default)]
struct Folded {
    carts: HashMap<Uuid, (Cart, i64)>,
    commits: u64,
    events: u64,
    position: i64,
}

impl Folded {
    fn add(&mut self, c: &Commit) {
        let (state, version) = self.carts.entry(c.stream_id).or_default();
        for e in &c.events {
            match e.decode::<shop_cart::CartEvent>() {
                Ok(event) => state.apply(&event),
                Err(err) => {
                    tracing::error!(alert = "cart_event_undecodable", cart_id = %c.stream_id,
                    version = e.meta.version, error = %err, "ALERT: rebuild skips an undecodable stored event")
                }
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
        touched: &mut BTreeSet<Uuid>,
    ) -> anyhow::Result<()> {
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
                touched.insert(c.stream_id);
                progressed = true;
            }
            if progressed {
                continue;
            }
            match until {
                None => return Ok(()),
                Some(u) => anyhow::ensure!(
                    Instant::now() < deadline,
                    "position {} below {u} never became readable",
                    self.position + 1
                ),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Writes the folded state of every cart into the (emptied) tables: rows from each
/// state's `view()`, as the event handler writes them.
async fn write_carts(tx: &mut Tx, folded: &Folded) -> anyhow::Result<()> {
    let mut ids: Vec<&Uuid> = folded.carts.keys().collect();
    ids.sort();
    let (mut states, mut carts, mut items, mut deletions) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for id in ids {
        let (state, version) = &folded.carts[id];
        let rows = cart_rows(*id, *version, state)?;
        states.push(rows.state);
        carts.extend(rows.cart);
        items.extend(rows.items);
        deletions.extend(rows.deletion);
    }
    insert_rows(tx, "cart_states", STATE_COLUMNS, states).await?;
    insert_rows(tx, "carts", CART_COLUMNS, carts).await?;
    insert_rows(tx, "cart_items", ITEM_COLUMNS, items).await?;
    insert_rows(tx, "cart_deletions", DELETION_COLUMNS, deletions).await?;
    Ok(())
}

/// Rebuilds the read model in `db` from `store` (see the module docs).
pub async fn rebuild(store: &EventStore, db: &Db) -> anyhow::Result<RebuildReport> {
    let started = Instant::now();
    crate::projection::prepare(db).await?;
    let mut folded = Folded::default();
    let mut touched = BTreeSet::new();
    folded.catch_up(store, None, &mut touched).await?;
    tracing::info!(
        position = folded.position,
        events = folded.events,
        "rebuild: store folded"
    );

    // Catch up under the read model's lock, then replace the rows in the same
    // transaction: readers see the old rows until it commits.
    let mut tx = db.begin().await?;
    tx.lock(READ_MODEL_LOCK).await?;
    let until = store.max_position().await?;
    folded.catch_up(store, Some(until), &mut touched).await?;
    for t in TABLES {
        sql::query(format!("DELETE FROM {t}"))
            .execute(&mut tx)
            .await?;
    }
    write_carts(&mut tx, &folded).await?;
    tx.commit().await?;
    let report = RebuildReport {
        commits: folded.commits,
        events: folded.events,
        carts: folded.carts.len(),
        position: folded.position,
        elapsed: started.elapsed(),
    };
    tracing::info!(
        commits = report.commits,
        events = report.events,
        carts = report.carts,
        position = report.position,
        elapsed_ms = report.elapsed.as_millis() as u64,
        events_per_second = report.events_per_second(),
        "rebuild: swapped in"
    );
    Ok(report)
}
