//! Rebuilds the read model from the event store, without Kafka.
//!
//! 1. Fold every commit in position order (a contiguous prefix, see `relay`) into
//!    per-cart states in memory, up to position P1.
//! 2. Create fresh tables in a new schema by running the generated migrations there
//!    (plus `cart_deletions`), and bulk-insert the states.
//! 3. In ONE transaction: lock the live tables (EXCLUSIVE: readers go on, the event
//!    handler waits), fold the commits after P1 up to the store's max P2 (read after the
//!    lock: every event the handler applied before the lock is at or below it), rewrite
//!    the carts they touched, then swap: the live tables move to a scratch schema, the
//!    fresh ones into `public`; drop the old ones; commit.
//!
//! The event handler resumes on the new tables: what it sees at or below P2 is covered,
//! what comes after applies.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use anyhow::Context;
use shop_cart::CartAggregate;
use sqlx::{Connection, PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::aggregate::Cart;
use crate::projection::{DELETIONS_SQL, MIGRATOR, TABLES, lock_tables};
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
            state.apply(&e.event);
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

async fn write_carts(
    tx: &mut Transaction<'_, Postgres>,
    schema: &str,
    folded: &Folded,
    ids: &[Uuid],
) -> anyhow::Result<()> {
    for chunk in ids.chunks(5000) {
        let (mut c_id, mut c_customer, mut c_version) = (Vec::new(), Vec::new(), Vec::new());
        let (mut i_cart, mut i_product, mut i_quantity) = (Vec::new(), Vec::new(), Vec::new());
        let (mut d_id, mut d_version) = (Vec::new(), Vec::new());
        for id in chunk {
            let Some((state, version)) = folded.carts.get(id) else {
                continue;
            };
            if state.deleted {
                d_id.push(*id);
                d_version.push(*version);
            } else if state.exists {
                c_id.push(*id);
                c_customer.push(state.customer_id);
                c_version.push(*version);
                for (p, q) in &state.items {
                    i_cart.push(*id);
                    i_product.push(*p);
                    i_quantity.push(*q);
                }
            }
        }
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {schema}.carts (id, customer_id, version) \
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::bigint[])"
        )))
        .bind(&c_id)
        .bind(&c_customer)
        .bind(&c_version)
        .execute(&mut **tx)
        .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {schema}.cart_items (cart_id, product_id, quantity) \
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::int[])"
        )))
        .bind(&i_cart)
        .bind(&i_product)
        .bind(&i_quantity)
        .execute(&mut **tx)
        .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {schema}.cart_deletions (id, version) \
             SELECT * FROM UNNEST($1::uuid[], $2::bigint[])"
        )))
        .bind(&d_id)
        .bind(&d_version)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Rebuilds the read model of `database_url` from `store` (see the module docs).
pub async fn rebuild(
    store: &EventStore,
    pool: &PgPool,
    database_url: &str,
) -> anyhow::Result<RebuildReport> {
    let started = Instant::now();
    crate::projection::prepare(pool).await?;
    let mut folded = Folded::default();
    let mut touched = BTreeSet::new();
    folded.catch_up(store, None, &mut touched).await?;
    tracing::info!(
        position = folded.position,
        events = folded.events,
        "rebuild: store folded"
    );

    // Fresh tables from the generated migrations, in a schema of their own.
    let schema = format!("cart_rebuild_{}", Uuid::now_v7().simple());
    let scratch = format!("cart_replaced_{}", Uuid::now_v7().simple());
    {
        let mut conn = PgConnection::connect(database_url)
            .await
            .context("connecting for the new tables")?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&mut conn)
            .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("SET search_path TO {schema}")))
            .execute(&mut conn)
            .await?;
        MIGRATOR
            .run(&mut conn)
            .await
            .context("creating the new tables")?;
        sqlx::query(DELETIONS_SQL).execute(&mut conn).await?;
        let _ = conn.close().await;
    }
    let ids: Vec<Uuid> = folded.carts.keys().copied().collect();
    let mut tx = pool.begin().await?;
    write_carts(&mut tx, &schema, &folded, &ids).await?;
    tx.commit().await?;

    // Catch up under the lock, then swap.
    let mut tx = pool.begin().await?;
    lock_tables(&mut tx, "EXCLUSIVE").await?;
    let until = store.max_position().await?;
    let mut late = BTreeSet::new();
    folded.catch_up(store, Some(until), &mut late).await?;
    let late: Vec<Uuid> = late.into_iter().collect();
    for table in ["cart_items", "cart_deletions"] {
        let column = if table == "cart_items" {
            "cart_id"
        } else {
            "id"
        };
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {schema}.{table} WHERE {column} = ANY($1)"
        )))
        .bind(&late)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM {schema}.carts WHERE id = ANY($1)"
    )))
    .bind(&late)
    .execute(&mut *tx)
    .await?;
    write_carts(&mut tx, &schema, &folded, &late).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {scratch}")))
        .execute(&mut *tx)
        .await?;
    for t in TABLES {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER TABLE public.{t} SET SCHEMA {scratch}"
        )))
        .execute(&mut *tx)
        .await?;
    }
    for t in TABLES {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER TABLE {schema}.{t} SET SCHEMA public"
        )))
        .execute(&mut *tx)
        .await?;
    }
    for s in [&scratch, &schema] {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {s} CASCADE")))
            .execute(&mut *tx)
            .await?;
    }
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
