//! The SQL event store (SQLite file; PostgreSQL where noted) end to end without any
//! server for SQLite: many parallel writers against a polling reader that must never
//! miss a commit, checkpoints and leases, the account-deletion lookup, the relay through
//! the embedded bus, and the store-tailing projection plus rebuild into a SQLite read
//! model equal to the fold of the store.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::PrefixReader;
use common::{CartCommands, FixedCatalog, Projector, Relay, RelayConfig, StoreTailer, TailConfig};
use common::{ReadDb, TestStore, all_commits, ctx, read_model_diff, wait_read_model_matches};
use keel::ServiceError;
use keel::bus::Bus;
use keel::sql::{self, Dialect};
use prost::Message as _;
use shop_cart::{AddProduct, AssignCustomer, CartCommand, CartSubscriptions, pb};
use uuid::Uuid;

fn commands(t: &TestStore) -> CartCommands {
    CartCommands::new(t.store.clone(), Arc::new(FixedCatalog(None)))
}

fn add(cart: Uuid, product: u128) -> CartCommand {
    CartCommand::AddProduct(AddProduct {
        cart_id: cart,
        product_id: Uuid::from_u128(product),
        quantity: 1,
    })
}

/// `writers` tasks, each adding its own product `rounds` times over `carts`.
fn spawn_writers(
    cmds: &CartCommands,
    carts: &[Uuid],
    writers: u128,
    rounds: usize,
) -> Vec<tokio::task::JoinHandle<usize>> {
    (0..writers)
        .map(|w| {
            let (cmds, carts) = (cmds.clone(), carts.to_vec());
            tokio::spawn(async move {
                let mut done = 0;
                for r in 0..rounds {
                    let key = format!("w{w}-r{r}");
                    match cmds
                        .execute(
                            &ctx(&key),
                            key.as_str(),
                            None,
                            &add(carts[r % carts.len()], w + 1),
                        )
                        .await
                    {
                        Ok(_) => done += 1,
                        Err(ServiceError::Conflict { .. }) => {}
                        Err(e) => panic!("writer {w}: {e}"),
                    }
                }
                done
            })
        })
        .collect()
}

/// NEventStore's OptimisticLoopTests in spirit: a reader polling after its checkpoint
/// while 12 writers append (with a pause inside the append transaction, to widen the
/// window) sees every position exactly once, in order, never a later one first.
async fn parallel_writers_vs_a_polling_reader(dialect: Dialect) {
    let t = TestStore::create_sql(dialect).await;
    let slow = t
        .store
        .clone()
        .with_insert_delay(Some(Duration::from_millis(1)));
    let cmds = CartCommands::new(slow, Arc::new(FixedCatalog(None)));
    let carts: Vec<Uuid> = (0..4).map(|_| Uuid::now_v7()).collect();
    let writers = spawn_writers(&cmds, &carts, 12, 25);
    let reader = PrefixReader::new(t.store.clone(), "poller", 7, Duration::from_secs(60), "x");
    let mut seen: Vec<i64> = Vec::new();
    let mut holes = 0;
    let mut finished = false;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let prefix = reader.read().await.expect("read");
        if prefix.hole.is_some() {
            holes += 1;
        }
        for c in &prefix.commits {
            assert_eq!(c.position, seen.len() as i64 + 1, "positions in order");
            seen.push(c.position);
        }
        if let Some(last) = prefix.commits.last() {
            reader.save(last.position).await.expect("checkpoint");
        }
        if finished && prefix.commits.is_empty() {
            break;
        }
        finished = writers.iter().all(|w| w.is_finished());
        assert!(Instant::now() < deadline, "reader never caught up");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut accepted = 0;
    for w in writers {
        accepted += w.await.expect("writer");
    }
    let all = all_commits(&t.store).await;
    assert_eq!(seen.len(), all.len(), "the reader saw every commit");
    assert_eq!(accepted, all.len(), "one commit per accepted command");
    assert!(accepted > 0);
    assert_eq!(holes, 0, "SQL commits become visible in position order");
    assert_eq!(
        t.store.checkpoint("poller").await.expect("checkpoint"),
        all.len() as i64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_writers_never_make_a_polling_reader_miss_a_commit_on_sqlite() {
    parallel_writers_vs_a_polling_reader(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_writers_never_make_a_polling_reader_miss_a_commit_on_postgres() {
    parallel_writers_vs_a_polling_reader(Dialect::Postgres).await;
}

async fn checkpoints_leases_and_lookups(dialect: Dialect) {
    let t = TestStore::create_sql(dialect).await;
    let s = &t.store;
    // Checkpoints only move forward.
    assert_eq!(s.checkpoint("relay").await.expect("none"), 0);
    s.save_checkpoint("relay", 5).await.expect("save");
    s.save_checkpoint("relay", 3).await.expect("save back");
    assert_eq!(s.checkpoint("relay").await.expect("read"), 5);
    s.save_checkpoint("relay", 8).await.expect("save");
    assert_eq!(s.checkpoint("relay").await.expect("read"), 8);
    assert_eq!(s.checkpoint("projection").await.expect("other"), 0);
    s.record_skipped("relay", 4).await.expect("skip");
    s.record_skipped("relay", 4).await.expect("skip again");
    assert_eq!(s.skipped("relay").await.expect("skipped"), [4]);
    // One lease holder until it expires or is released.
    let ttl = Duration::from_millis(300);
    assert!(s.try_lease("relay", "a", ttl).await.expect("take"));
    assert!(!s.try_lease("relay", "b", ttl).await.expect("held"));
    assert!(s.try_lease("relay", "a", ttl).await.expect("renew"));
    assert_eq!(
        s.lease_owner("relay").await.expect("owner").as_deref(),
        Some("a")
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(s.try_lease("relay", "b", ttl).await.expect("expired"));
    assert!(!s.try_lease("relay", "a", ttl).await.expect("b holds it"));
    s.release_lease("relay", "a").await.expect("not the owner");
    assert_eq!(
        s.lease_owner("relay").await.expect("owner").as_deref(),
        Some("b")
    );
    s.release_lease("relay", "b").await.expect("release");
    assert!(s.try_lease("relay", "a", ttl).await.expect("free again"));
    // The account-deletion lookup: the carts ever assigned to a customer.
    let cmds = commands(&t);
    let (customer, other) = (Uuid::now_v7(), Uuid::now_v7());
    let carts: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
    for (i, (cart, owner)) in carts
        .iter()
        .zip([Some(customer), Some(other), Some(customer)])
        .enumerate()
    {
        let key = format!("create-{i}");
        cmds.execute(&ctx(&key), key.as_str(), None, &add(*cart, 1))
            .await
            .expect("create");
        let key = format!("assign-{i}");
        cmds.execute(
            &ctx(&key),
            key.as_str(),
            None,
            &CartCommand::AssignCustomer(AssignCustomer {
                cart_id: *cart,
                customer_id: owner,
            }),
        )
        .await
        .expect("assign");
    }
    let mut want = vec![carts[0], carts[2]];
    want.sort();
    assert_eq!(
        s.streams_with("CustomerAssigned", "customer_id", &customer.to_string())
            .await
            .expect("lookup"),
        want
    );
    assert_eq!(
        s.streams_with("CustomerAssigned", "customer_id", &other.to_string())
            .await
            .expect("lookup"),
        [carts[1]]
    );
    assert!(
        s.streams_with(
            "CustomerAssigned",
            "customer_id",
            &Uuid::now_v7().to_string()
        )
        .await
        .expect("lookup")
        .is_empty()
    );
    let todo = cart_service::Subscriptions::new(cmds.store())
        .on_user_account_deleted(customer, &shop_user::AccountDeleted {})
        .await
        .expect("account deletion");
    assert_eq!(todo.len(), 2, "{todo:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_leases_and_the_customer_lookup_on_sqlite() {
    checkpoints_leases_and_lookups(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_leases_and_the_customer_lookup_on_postgres() {
    checkpoints_leases_and_lookups(Dialect::Postgres).await;
}

/// The relay from a SQLite store through the embedded SQLite bus: every event once per
/// commit position, in store order (duplicates only after a crash, none here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_publishes_the_sqlite_store_through_the_embedded_bus() {
    let t = TestStore::create_sql(Dialect::Sqlite).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let bus = Bus::connect(&format!("sqlite://{}/bus.db", dir.path().display()))
        .await
        .expect("bus");
    let cmds = commands(&t);
    let carts: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let relay = Relay::new(
        t.store.clone(),
        &bus,
        RelayConfig {
            topic: "cart.events.test".into(),
            poll_interval: Duration::from_millis(5),
            batch_size: 7,
            ..RelayConfig::default()
        },
    )
    .expect("relay");
    let relay = tokio::spawn(relay.run(stopped));
    let mut accepted = 0;
    for w in spawn_writers(&cmds, &carts, 6, 20) {
        accepted += w.await.expect("writer");
    }
    let events: usize = all_commits(&t.store)
        .await
        .iter()
        .map(|c| c.events.len())
        .sum();
    assert!(accepted > 0);
    let mut sub = bus
        .subscriber("reader", None, &["cart.events.test"])
        .await
        .expect("subscriber");
    let mut got: Vec<(String, pb::CartEvent)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < events {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "{} of {events} events relayed", got.len());
        if let Ok(m) = tokio::time::timeout(left, sub.recv()).await {
            let m = m.expect("recv");
            got.push((
                String::from_utf8(m.key.clone()).expect("key"),
                pb::CartEvent::decode(m.payload.as_slice()).expect("envelope"),
            ));
        }
    }
    stop.send(true).expect("stop");
    relay.await.expect("relay stopped");
    assert_eq!(got.len(), events, "nothing twice");
    // Per cart: versions 1, 2, 3, … in order, keyed by the cart.
    let mut versions: BTreeMap<String, i64> = BTreeMap::new();
    for (key, e) in &got {
        assert_eq!(&e.cart_id, key);
        let v = versions.entry(key.clone()).or_default();
        assert_eq!(e.version, *v + 1, "cart {key} in version order");
        *v = e.version;
    }
    assert_eq!(
        t.store.checkpoint("relay").await.expect("checkpoint"),
        t.store.max_position().await.expect("max")
    );
}

/// The event handler tailing a SQLite store into a SQLite read model while writers
/// run, stopped and resumed from its checkpoint; then a damaged read model is rebuilt
/// to the fold of the store and the tailer goes on applying.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_and_rebuild_on_sqlite_equal_the_fold_of_the_store() {
    let t = TestStore::create_sql(Dialect::Sqlite).await;
    let db = ReadDb::create_in(Dialect::Sqlite).await;
    let cmds = commands(&t);
    let carts: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
    let config = || TailConfig {
        poll_interval: Duration::from_millis(10),
        batch_size: 5,
        ..TailConfig::default()
    };
    let (stop1, rx1) = tokio::sync::watch::channel(false);
    let first = tokio::spawn(
        StoreTailer::new(t.store.clone(), Projector::new(db.pool.clone()), config()).run(rx1),
    );
    let writers = spawn_writers(&cmds, &carts, 4, 15);
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop1.send(true).expect("stop");
    first.await.expect("join");
    let (stop2, rx2) = tokio::sync::watch::channel(false);
    let second = tokio::spawn(
        StoreTailer::new(t.store.clone(), Projector::new(db.pool.clone()), config()).run(rx2),
    );
    for w in writers {
        w.await.expect("writer");
    }
    wait_read_model_matches(&t.store, &db.pool, Duration::from_secs(60)).await;

    sql::query("DELETE FROM cart_items")
        .execute(&db.pool)
        .await
        .expect("damage");
    assert!(!read_model_diff(&t.store, &db.pool).await.is_empty());
    let report = keel::es::rebuild::rebuild::<common::ReadModel>(&t.store, &db.pool)
        .await
        .expect("rebuild");
    assert_eq!(report.streams, carts.len());
    assert_eq!(report.position, t.store.max_position().await.expect("max"));
    let diff = read_model_diff(&t.store, &db.pool).await;
    assert!(diff.is_empty(), "{diff:?}");
    cmds.execute(&ctx("after"), "after", None, &add(carts[0], 77))
        .await
        .expect("after the rebuild");
    wait_read_model_matches(&t.store, &db.pool, Duration::from_secs(30)).await;
    stop2.send(true).expect("stop");
    second.await.expect("join");
}
