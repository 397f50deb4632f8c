//! The relay against the real FerretDB and Kafka: many parallel writers while it polls
//! never make it miss a commit (NEventStore's OptimisticLoopTests in spirit); a commit
//! whose position shows up late is waited for, not skipped; a hole that never fills is
//! given up only after the timeout, with an alert, and still published if it appears
//! later; one relay at a time.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{CartCommands, FixedCatalog, Relay, RelayConfig};
use common::{NewCommit, RawEvent};
use common::{TestStore, all_commits, consume_all, ctx, infra, unique};
use keel::ServiceError;
use keel::bus::Bus;
use rand::{Rng, SeedableRng};
use shop_cart::{AddProduct, CartCommand, CartEvent, EventMeta, ProductAdded};
use uuid::Uuid;

fn config(topic: &str) -> RelayConfig {
    RelayConfig {
        topic: topic.to_string(),
        poll_interval: Duration::from_millis(5),
        batch_size: 7,
        lease_ttl: Duration::from_secs(2),
        gap_timeout: Duration::from_secs(30),
        delivery_timeout: Duration::from_secs(10),
        ..RelayConfig::default()
    }
}

async fn kafka() -> Bus {
    Bus::connect(&infra().brokers).await.expect("kafka")
}

async fn topic() -> String {
    let t = unique("cart-test-relay");
    kafka().await.ensure_topic(&t, 3).await.expect("topic");
    t
}

fn add(cart: Uuid, quantity: i32) -> CartCommand {
    CartCommand::AddProduct(AddProduct {
        cart_id: cart,
        product_id: Uuid::from_u128(7),
        quantity,
    })
}

/// Every stored event reached Kafka, and each cart's events in version order.
async fn assert_published_in_order(t: &TestStore, topic: &str) {
    let commits = all_commits(&t.store).await;
    let stored: HashSet<String> = commits
        .iter()
        .flat_map(|c| c.events.iter().map(|e| e.meta.event_id.to_string()))
        .collect();
    let seen = consume_all(topic, Duration::from_secs(20)).await;
    let mut last: BTreeMap<String, i64> = BTreeMap::new();
    let mut published = HashSet::new();
    for (key, e) in &seen {
        assert_eq!(key, &e.cart_id, "keyed by cart id");
        let prev = last.entry(key.clone()).or_insert(0);
        // Duplicates (a re-sent round) may repeat versions, never go past a missing one.
        assert!(
            e.version <= *prev + 1,
            "cart {key}: version {} after {prev}",
            e.version
        );
        *prev = (*prev).max(e.version);
        published.insert(e.event_id.clone());
    }
    let missing: Vec<_> = stored.difference(&published).collect();
    assert!(
        missing.is_empty(),
        "{} events never published: {missing:?}",
        missing.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_writers_never_make_the_relay_miss_a_commit() {
    let t = TestStore::create().await;
    let topic = topic().await;
    let relay = Relay::new(t.store.clone(), &kafka().await, config(&topic)).expect("relay");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let relay_task = tokio::spawn(relay.run(stopped));

    // 8 writers; half of them pause between reading the max position and inserting, so
    // writers overtake each other and positions are fought over.
    let carts: Vec<Uuid> = (0..5).map(|_| Uuid::now_v7()).collect();
    let mut writers = Vec::new();
    for w in 0..8u64 {
        let delay = (w % 2 == 1).then(|| Duration::from_millis(w * 2));
        let store = t.store.clone().with_insert_delay(delay);
        let cmds = CartCommands::new(store, Arc::new(FixedCatalog(None)));
        let carts = carts.clone();
        writers.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(w);
            let mut done = 0;
            for n in 0..20 {
                let cart = carts[rng.random_range(0..carts.len())];
                let key = format!("w{w}-{n}");
                for _ in 0..100 {
                    match cmds
                        .execute(&ctx(&key), key.as_str(), None, &add(cart, 1))
                        .await
                    {
                        Ok(_) => {
                            done += 1;
                            break;
                        }
                        Err(ServiceError::Conflict(_)) => {}
                        // A line is full: that cart has had enough.
                        Err(ServiceError::FailedPrecondition(_)) => break,
                        Err(e) => panic!("{e:?}"),
                    }
                }
            }
            done
        }));
    }
    let mut written = 0;
    for w in writers {
        written += w.await.expect("writer");
    }
    let max = t.store.max_position().await.expect("max");
    assert_eq!(max, written, "one position per command, none lost");
    let deadline = Instant::now() + Duration::from_secs(30);
    while t.store.checkpoint("relay").await.expect("checkpoint") < max {
        assert!(Instant::now() < deadline, "relay never caught up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send(true).expect("stop");
    relay_task.await.expect("relay stops");
    assert!(t.store.skipped("relay").await.expect("skipped").is_empty());
    assert_published_in_order(&t, &topic).await;
}

fn raw_commit(cart: Uuid, seq: i64) -> NewCommit {
    NewCommit {
        stream_id: cart,
        commit_seq: seq,
        commit_id: Uuid::now_v7(),
        events: vec![
            RawEvent::encode(
                EventMeta {
                    event_id: Uuid::now_v7(),
                    stream_id: cart,
                    version: seq,
                    occurred_at: chrono::Utc::now(),
                    correlation_id: "c".into(),
                    causation_id: "x".into(),
                },
                &CartEvent::ProductAdded(ProductAdded {
                    product_id: Uuid::from_u128(9),
                    quantity: 1,
                }),
            )
            .expect("encodes"),
        ],
        correlation_id: "c".into(),
        causation_id: "x".into(),
    }
}

/// A writer that took position 2 and inserts after position 3 is visible (what a
/// cursor that raced the insert sees): the relay stops before 2, waits, and publishes
/// 2 then 3 once 2 arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_commit_is_waited_for_not_skipped() {
    let t = TestStore::create().await;
    let topic = topic().await;
    let mut relay = Relay::new(t.store.clone(), &kafka().await, config(&topic)).expect("relay");
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let commits = t.store.mongo().expect("mongo").commits();
    commits
        .insert_one(raw_commit(a, 1).to_document(1).expect("doc"))
        .await
        .expect("insert 1");
    let late = raw_commit(b, 1);
    commits
        .insert_one(raw_commit(a, 2).to_document(3).expect("doc"))
        .await
        .expect("insert 3");
    let round = relay.run_once().await.expect("round");
    assert_eq!(
        (round.commits, round.checkpoint, round.waiting_for),
        (1, 1, Some(2))
    );
    let round = relay.run_once().await.expect("round");
    assert_eq!(
        (round.commits, round.checkpoint, round.waiting_for),
        (0, 1, Some(2))
    );
    commits
        .insert_one(late.to_document(2).expect("doc"))
        .await
        .expect("insert 2");
    let round = relay.run_once().await.expect("round");
    assert_eq!(
        (round.commits, round.checkpoint, round.waiting_for),
        (2, 3, None)
    );
    let seen = consume_all(&topic, Duration::from_secs(20)).await;
    let order: Vec<(String, i64)> = seen.iter().map(|(k, e)| (k.clone(), e.version)).collect();
    assert_eq!(order.len(), 3);
    assert!(
        order.contains(&(b.to_string(), 1)),
        "the late commit was published"
    );
    assert!(t.store.skipped("relay").await.expect("skipped").is_empty());
}

/// A hole that outlives the gap timeout is given up with an alert, recorded, and the
/// relay goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hole_older_than_the_timeout_is_skipped_and_recorded() {
    let t = TestStore::create().await;
    let topic = topic().await;
    let cfg = RelayConfig {
        gap_timeout: Duration::from_millis(300),
        ..config(&topic)
    };
    let mut relay = Relay::new(t.store.clone(), &kafka().await, cfg).expect("relay");
    let a = Uuid::now_v7();
    let commits = t.store.mongo().expect("mongo").commits();
    for (seq, position) in [(1, 1), (2, 3)] {
        commits
            .insert_one(raw_commit(a, seq).to_document(position).expect("doc"))
            .await
            .expect("insert");
    }
    assert_eq!(relay.run_once().await.expect("round").waiting_for, Some(2));
    tokio::time::sleep(Duration::from_millis(400)).await;
    let round = relay.run_once().await.expect("round");
    assert_eq!((round.checkpoint, round.waiting_for), (2, None));
    assert_eq!(t.store.skipped("relay").await.expect("skipped"), [2]);
    let round = relay.run_once().await.expect("round");
    assert_eq!((round.commits, round.checkpoint), (1, 3));

    // The given-up position appears after all (a writer that stalled past the timeout):
    // it is still published, once, and no longer recorded as skipped.
    let b = Uuid::now_v7();
    commits
        .insert_one(raw_commit(b, 1).to_document(2).expect("doc"))
        .await
        .expect("insert 2");
    let round = relay.run_once().await.expect("round");
    assert_eq!((round.commits, round.checkpoint), (1, 3));
    assert!(t.store.skipped("relay").await.expect("skipped").is_empty());
    let round = relay.run_once().await.expect("round");
    assert_eq!(round.commits, 0, "published once");
    let seen = consume_all(&topic, Duration::from_secs(20)).await;
    let keys: Vec<(String, i64)> = seen.iter().map(|(k, e)| (k.clone(), e.version)).collect();
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert!(keys.contains(&(b.to_string(), 1)), "late commit published");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_relay_holds_the_lease_until_it_expires() {
    let t = TestStore::create().await;
    let topic = topic().await;
    let cfg = RelayConfig {
        lease_ttl: Duration::from_millis(800),
        ..config(&topic)
    };
    let first = Relay::new(t.store.clone(), &kafka().await, cfg.clone()).expect("relay");
    let second = Relay::new(t.store.clone(), &kafka().await, cfg).expect("relay");
    assert!(first.lease().await.expect("lease"));
    assert!(!second.lease().await.expect("lease"), "held by the first");
    assert!(first.lease().await.expect("renew"), "renewed by its holder");
    assert!(!second.lease().await.expect("lease"));
    // The first stops renewing (as if killed): the lease expires and passes on.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(second.lease().await.expect("take over"));
    assert!(
        !first.lease().await.expect("lease"),
        "the old holder stands by"
    );
    assert_eq!(
        t.store
            .lease_owner("relay")
            .await
            .expect("owner")
            .as_deref(),
        Some(second.owner())
    );
}
