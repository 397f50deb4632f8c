//! The outbox relay against real PostgreSQL and Kafka: order per key, at least once
//! across a crash between publish and mark, one publisher at a time, and outbox
//! positions that never become visible out of order.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, Instant};

use common::{TestDb, consume, infra, versions_by_key};
use shop_kit::RequestContext;
use shop_user::{UserUseCases, pb};
use tokio::sync::watch;
use user_service::{Lease, Relay, RelayConfig, Users};

fn ctx(request_id: &str) -> RequestContext {
    RequestContext {
        request_id: request_id.into(),
        correlation_id: format!("corr-{request_id}"),
    }
}

fn relay_config() -> RelayConfig {
    RelayConfig {
        poll_interval: Duration::from_millis(50),
        delivery_timeout: Duration::from_secs(10),
        ..RelayConfig::new(infra().brokers.clone())
    }
}

async fn register(users: &Users, email: &str) -> String {
    users
        .register_customer(
            ctx(&format!("reg-{email}")),
            pb::RegisterCustomerRequest {
                email: email.into(),
                name: "Test".into(),
                expected_version: None,
            },
        )
        .await
        .expect("registers")
        .customer_id
}

async fn delete(users: &Users, id: &str) {
    users
        .delete_account(
            ctx(&format!("del-{id}")),
            pb::DeleteAccountRequest {
                customer_id: id.into(),
                expected_version: Some(1),
            },
        )
        .await
        .expect("deletes");
}

async fn unpublished(db: &TestDb) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(&db.pool)
        .await
        .expect("count")
}

async fn wait_all_published(db: &TestDb, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let left = unpublished(db).await;
        if left == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{left} outbox rows still unpublished after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_task_publishes_each_stream_in_version_order() {
    let db = TestDb::create().await;
    let users = Users::new(db.pool.clone());
    let (stop, stopped) = watch::channel(false);
    let relay = Relay::new(db.pool.clone(), relay_config()).expect("relay");
    let task = tokio::spawn(relay.run(db.url.clone(), stopped));

    let a = register(&users, "a@example.com").await;
    let b = register(&users, "b@example.com").await;
    delete(&users, &a).await;
    wait_all_published(&db, Duration::from_secs(15)).await;

    let keys: HashSet<String> = [a.clone(), b.clone()].into();
    let seen = consume(&keys, Duration::from_secs(15)).await;
    let by_key = versions_by_key(&seen);
    assert_eq!(by_key[&a], [1, 2], "both events of a, in order, once");
    assert_eq!(by_key[&b], [1]);
    let (_, first) = seen.iter().find(|(k, _)| k == &a).expect("a's first event");
    assert!(matches!(
        first.payload,
        Some(pb::customer_event::Payload::CustomerRegistered(ref r)) if r.email == "a@example.com"
    ));
    assert_eq!(first.causation_id, "reg-a@example.com");
    assert_eq!(first.correlation_id, "corr-reg-a@example.com");
    let (_, last) = seen.iter().rfind(|(k, _)| k == &a).expect("a's last event");
    assert!(matches!(
        last.payload,
        Some(pb::customer_event::Payload::AccountDeleted(_))
    ));

    stop.send(true).expect("relay listening");
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("relay stops within 5 s")
        .expect("relay task");
}

/// A relay that dies after Kafka acknowledged a batch but before it marked the rows:
/// the next relay sends them again. Duplicates on the wire, nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_between_publish_and_mark_duplicates_but_loses_nothing() {
    let db = TestDb::create().await;
    let users = Users::new(db.pool.clone());
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(register(&users, &format!("crash{i}@example.com")).await);
    }
    delete(&users, &ids[0]).await;
    delete(&users, &ids[2]).await;
    assert_eq!(unpublished(&db).await, 5);

    // First relay: publishes, then "crashes" before marking.
    let crashed = Relay::new(db.pool.clone(), relay_config()).expect("relay");
    let delivered = crashed.publish_pending().await.expect("published");
    assert_eq!(delivered.len(), 5);
    drop(crashed);
    assert_eq!(unpublished(&db).await, 5, "nothing marked");

    // Its successor publishes everything again and marks it.
    let restarted = Relay::new(db.pool.clone(), relay_config()).expect("relay");
    assert_eq!(restarted.run_once().await.expect("round"), 5);
    assert_eq!(unpublished(&db).await, 0);
    assert_eq!(
        restarted.run_once().await.expect("round"),
        0,
        "nothing left"
    );

    let keys: HashSet<String> = ids.iter().cloned().collect();
    let seen = consume(&keys, Duration::from_secs(15)).await;
    let by_key = versions_by_key(&seen);
    let expected: BTreeMap<String, Vec<i64>> = [
        (ids[0].clone(), vec![1, 2, 1, 2]),
        (ids[1].clone(), vec![1, 1]),
        (ids[2].clone(), vec![1, 2, 1, 2]),
    ]
    .into();
    assert_eq!(
        by_key, expected,
        "each pass in order; every event at least once"
    );
    let distinct: BTreeSet<(String, i64)> =
        seen.iter().map(|(k, e)| (k.clone(), e.version)).collect();
    assert_eq!(distinct.len(), 5, "every (stream, version) is there");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_relay_holds_the_lease_and_the_others_stand_by() {
    let db = TestDb::create().await;
    let first = Lease::try_acquire(&db.url)
        .await
        .expect("lease query")
        .expect("first takes the lease");
    assert!(
        Lease::try_acquire(&db.url)
            .await
            .expect("lease query")
            .is_none(),
        "second stands by"
    );
    first.release().await;
    let second = Lease::try_acquire(&db.url)
        .await
        .expect("lease query")
        .expect("free again after release");
    second.release().await;

    // Two relay tasks on one outbox: only the lease holder publishes, so each event
    // goes out once.
    let users = Users::new(db.pool.clone());
    let (stop, stopped) = watch::channel(false);
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let relay = Relay::new(db.pool.clone(), relay_config()).expect("relay");
            tokio::spawn(relay.run(db.url.clone(), stopped.clone()))
        })
        .collect();
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(register(&users, &format!("lease{i}@example.com")).await);
    }
    wait_all_published(&db, Duration::from_secs(15)).await;
    let keys: HashSet<String> = ids.iter().cloned().collect();
    let by_key = versions_by_key(&consume(&keys, Duration::from_secs(15)).await);
    assert_eq!(by_key.len(), 5);
    assert!(by_key.values().all(|v| v == &[1]), "{by_key:?}");
    stop.send(true).expect("relays listening");
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(5), t)
            .await
            .expect("relay stops within 5 s")
            .expect("relay task");
    }
}

/// Many writers commit while a reader tails the outbox by checkpoint (`position >
/// last seen`). Because commands append to the outbox under one advisory lock, a
/// position never becomes visible after a larger one, so the checkpoint never skips a
/// row (the hazard of a bigserial drawn before a late commit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_reader_never_skips_a_late_commit() {
    const WRITERS: usize = 8;
    const PER_WRITER: usize = 15;
    let db = TestDb::create().await;
    let users = Users::new(db.pool.clone());
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let users = users.clone();
            tokio::spawn(async move {
                for i in 0..PER_WRITER {
                    let id = register(&users, &format!("w{w}-{i}@example.com")).await;
                    if i % 2 == 0 {
                        delete(&users, &id).await;
                    }
                }
            })
        })
        .collect();
    let pool = db.pool.clone();
    let writers_done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done = writers_done.clone();
    let reader = tokio::spawn(async move {
        let mut checkpoint = 0_i64;
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            // Read once more after the writers finished: then everything is committed.
            let last_round = done.load(std::sync::atomic::Ordering::SeqCst);
            let batch: Vec<i64> = sqlx::query_scalar(
                "SELECT position FROM outbox WHERE position > $1 ORDER BY position",
            )
            .bind(checkpoint)
            .fetch_all(&pool)
            .await
            .expect("tail");
            if let Some(last) = batch.last() {
                checkpoint = *last;
            }
            seen.extend(batch);
            if last_round || Instant::now() > deadline {
                return seen;
            }
        }
    });
    for w in writers {
        w.await.expect("writer");
    }
    writers_done.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = reader.await.expect("reader");
    let all: Vec<i64> = sqlx::query_scalar("SELECT position FROM outbox ORDER BY position")
        .fetch_all(&db.pool)
        .await
        .expect("outbox");
    assert_eq!(all.len(), WRITERS * (PER_WRITER + PER_WRITER.div_ceil(2)));
    assert_eq!(seen, all, "the tailing reader saw every row, in order");
}
