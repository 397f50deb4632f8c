//! The outbox relay, each case on PostgreSQL + real Kafka and on SQLite + the embedded
//! bus log: order per key (and by position), at least once across a crash between
//! publish and mark, one publisher at a time, outbox positions that never become
//! visible out of order, and the whole service through [`user_service::run`].

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use clap::Parser as _;
use common::{Seen, TestDb, consume, versions_by_key};
use common::{Users, users};
use keel::RequestContext;
use keel::es::app::Mode;
use keel::es::outbox::{Relay, RelayConfig};
use keel::sql::{self, Dialect};
use prost::Message as _;
use shop_user::{UserUseCases, pb};
use tokio::sync::watch;
use tonic::transport::server::TcpIncoming;
use user_service::Config;

fn ctx(request_id: &str) -> RequestContext {
    RequestContext {
        request_id: request_id.into(),
        correlation_id: format!("corr-{request_id}"),
    }
}

fn relay_config() -> RelayConfig {
    RelayConfig {
        topic: shop_user::TOPIC.into(),
        lease_key: shop_user::RELAY_LEASE_LOCK,
        poll_interval: Duration::from_millis(50),
        delivery_timeout: Duration::from_secs(10),
        ..RelayConfig::default()
    }
}

fn relay(db: &TestDb) -> Relay {
    Relay::new(db.db.clone(), &db.bus, relay_config()).expect("relay")
}

async fn register(users: &Users, email: &str) -> String {
    users
        .register_customer(
            ctx(&format!("reg-{email}")),
            pb::RegisterCustomerRequest {
                email: email.into(),
                name: "Test".into(),
                expected_version: None,
                idempotency_key: None,
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
                idempotency_key: None,
            },
        )
        .await
        .expect("deletes");
}

async fn wait_all_published(db: &TestDb, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let left = db.unpublished().await;
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

async fn relay_task_publishes_each_stream_in_version_order(dialect: Dialect) {
    let db = TestDb::create(dialect).await;
    let users = users(db.db.clone());
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(relay(&db).run(stopped));

    let a = register(&users, "a@example.com").await;
    let b = register(&users, "b@example.com").await;
    delete(&users, &a).await;
    wait_all_published(&db, Duration::from_secs(15)).await;

    let keys: HashSet<String> = [a.clone(), b.clone()].into();
    let seen = consume(&db, &keys, Duration::from_secs(15)).await;
    let by_key = versions_by_key(&seen);
    assert_eq!(by_key[&a], [1, 2], "both events of a, in order, once");
    assert_eq!(by_key[&b], [1]);
    let first = &seen
        .iter()
        .find(|s| s.key == a)
        .expect("a's first event")
        .event;
    assert!(matches!(
        first.payload,
        Some(pb::customer_event::Payload::CustomerRegistered(ref r)) if r.email == "a@example.com"
    ));
    assert_eq!(first.causation_id, "reg-a@example.com");
    assert_eq!(first.correlation_id, "corr-reg-a@example.com");
    let last = &seen
        .iter()
        .rfind(|s| s.key == a)
        .expect("a's last event")
        .event;
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

/// A relay that dies after the bus acknowledged a batch but before it marked the rows:
/// the next relay sends them again. Duplicates on the wire, nothing lost.
async fn crash_between_publish_and_mark_duplicates_but_loses_nothing(dialect: Dialect) {
    let db = TestDb::create(dialect).await;
    let users = users(db.db.clone());
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(register(&users, &format!("crash{i}@example.com")).await);
    }
    delete(&users, &ids[0]).await;
    delete(&users, &ids[2]).await;
    assert_eq!(db.unpublished().await, 5);

    // First relay: publishes, then "crashes" before marking.
    let crashed = relay(&db);
    let delivered = crashed.publish_pending().await.expect("published");
    assert_eq!(delivered, db.outbox_positions().await, "all five, in order");
    drop(crashed);
    assert_eq!(db.unpublished().await, 5, "nothing marked");

    // Its successor publishes everything again and marks it.
    let restarted = relay(&db);
    assert_eq!(restarted.run_once().await.expect("round"), 5);
    assert_eq!(db.unpublished().await, 0);
    assert_eq!(
        restarted.run_once().await.expect("round"),
        0,
        "nothing left"
    );

    let keys: HashSet<String> = ids.iter().cloned().collect();
    let seen = consume(&db, &keys, Duration::from_secs(15)).await;
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
    let distinct: BTreeSet<(String, i64)> = seen
        .iter()
        .map(|s| (s.key.clone(), s.event.version))
        .collect();
    assert_eq!(distinct.len(), 5, "every (stream, version) is there");
}

async fn one_relay_holds_the_lease_and_the_others_stand_by(dialect: Dialect) {
    let db = TestDb::create(dialect).await;
    let first = keel::es::outbox::try_lease(&db.db, shop_user::RELAY_LEASE_LOCK)
        .await
        .expect("lease query")
        .expect("first takes the lease");
    assert!(
        keel::es::outbox::try_lease(&db.db, shop_user::RELAY_LEASE_LOCK)
            .await
            .expect("lease query")
            .is_none(),
        "second stands by"
    );
    first.release().await;
    let second = keel::es::outbox::try_lease(&db.db, shop_user::RELAY_LEASE_LOCK)
        .await
        .expect("lease query")
        .expect("free again after release");
    second.release().await;

    // Two relay tasks on one outbox: only the lease holder publishes, so each event
    // goes out once.
    let users = users(db.db.clone());
    let (stop, stopped) = watch::channel(false);
    let tasks: Vec<_> = (0..2)
        .map(|_| tokio::spawn(relay(&db).run(stopped.clone())))
        .collect();
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(register(&users, &format!("lease{i}@example.com")).await);
    }
    wait_all_published(&db, Duration::from_secs(15)).await;
    let keys: HashSet<String> = ids.iter().cloned().collect();
    let by_key = versions_by_key(&consume(&db, &keys, Duration::from_secs(15)).await);
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
/// last seen`). Because commands append to the outbox under one lock, a position never
/// becomes visible after a larger one, so the checkpoint never skips a row (the hazard
/// of a position drawn before a late commit). Positions are also gap-free.
async fn a_checkpoint_reader_never_skips_a_late_commit(dialect: Dialect) {
    const WRITERS: usize = 8;
    const PER_WRITER: usize = 15;
    let db = TestDb::create(dialect).await;
    let users = users(db.db.clone());
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
    let pool = db.db.clone();
    let writers_done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done = writers_done.clone();
    let reader = tokio::spawn(async move {
        let mut checkpoint = 0_i64;
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            // Read once more after the writers finished: then everything is committed.
            let last_round = done.load(std::sync::atomic::Ordering::SeqCst);
            let batch: Vec<i64> =
                sql::query("SELECT position FROM outbox WHERE position > $1 ORDER BY position")
                    .bind(checkpoint)
                    .fetch_all(&pool)
                    .await
                    .expect("tail")
                    .iter()
                    .map(|r| r.i64("position").expect("position"))
                    .collect();
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
    let all = db.outbox_positions().await;
    let total = WRITERS * (PER_WRITER + PER_WRITER.div_ceil(2));
    assert_eq!(all.len(), total);
    assert_eq!(seen, all, "the tailing reader saw every row, in order");
    assert_eq!(
        all,
        (1..=total as i64).collect::<Vec<_>>(),
        "outbox positions are 1..=n"
    );
    let events: Vec<i64> = sql::query("SELECT position FROM events ORDER BY position")
        .fetch_all(&db.db)
        .await
        .expect("events")
        .iter()
        .map(|r| r.i64("position").expect("position"))
        .collect();
    assert_eq!(
        events,
        (1..=total as i64).collect::<Vec<_>>(),
        "event positions are 1..=n"
    );
}

/// Writers commit concurrently while a relay runs: every event reaches the bus exactly
/// once (no crash here), and each partition carries its events in outbox position order
/// (the embedded log has one partition: the whole outbox, in order).
async fn relay_publishes_every_event_once_in_position_order(dialect: Dialect) {
    const WRITERS: usize = 4;
    const PER_WRITER: usize = 10;
    let db = TestDb::create(dialect).await;
    let users = users(db.db.clone());
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(relay(&db).run(stopped));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let users = users.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in 0..PER_WRITER {
                    let id = register(&users, &format!("order{w}-{i}@example.com")).await;
                    if i % 3 == 0 {
                        delete(&users, &id).await;
                    }
                    ids.push(id);
                }
                ids
            })
        })
        .collect();
    let mut keys = HashSet::new();
    for w in writers {
        keys.extend(w.await.expect("writer"));
    }
    wait_all_published(&db, Duration::from_secs(30)).await;

    // (stream, version) -> outbox position, from the envelopes the outbox holds.
    let mut position_of = HashMap::new();
    for r in sql::query("SELECT position, payload FROM outbox ORDER BY position")
        .fetch_all(&db.db)
        .await
        .expect("outbox")
    {
        let e = pb::CustomerEvent::decode(r.bytes("payload").expect("payload").as_slice())
            .expect("envelope");
        position_of.insert(
            (e.customer_id, e.version),
            r.i64("position").expect("position"),
        );
    }
    let total = WRITERS * (PER_WRITER + PER_WRITER.div_ceil(3));
    assert_eq!(position_of.len(), total);

    let seen: Vec<Seen> = consume(&db, &keys, Duration::from_secs(30)).await;
    let mut by_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for s in &seen {
        let p = position_of[&(s.key.clone(), s.event.version)];
        by_partition.entry(s.partition).or_default().push(p);
    }
    let mut all: Vec<i64> = by_partition.values().flatten().copied().collect();
    all.sort_unstable();
    assert_eq!(
        all,
        db.outbox_positions().await,
        "every outbox row published exactly once"
    );
    for (partition, positions) in &by_partition {
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "partition {partition} in position order: {positions:?}"
        );
    }
    if dialect == Dialect::Sqlite {
        assert_eq!(by_partition.len(), 1, "the log has one partition");
    }

    stop.send(true).expect("relay listening");
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("relay stops within 5 s")
        .expect("relay task");
}

/// The launcher's entry point: `run` migrates, serves gRPC on the listener it is given,
/// relays to the bus its configuration names (Kafka on PostgreSQL, the embedded log on
/// SQLite), and returns once `stop` flips.
async fn run_serves_relays_and_stops(dialect: Dialect) {
    let db = TestDb::create(dialect).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding an ephemeral port");
    let addr = listener.local_addr().expect("local addr");
    // Parsed like the binary's flags, so a setting the spec adds keeps its default here.
    let addr_text = addr.to_string();
    let config = <Config as clap::Parser>::try_parse_from([
        "user-service",
        "serve",
        "--listen",
        addr_text.as_str(),
        "--database-url",
        db.url.as_str(),
        "--bus-url",
        db.bus_url.as_str(),
        "--max-connections",
        "5",
        "--shutdown-timeout-secs",
        "5",
    ])
    .expect("the service's flags");
    assert_eq!(config.mode, Mode::Serve);
    assert_eq!(config.user_topic, shop_user::TOPIC);
    let (stop, stopped) = watch::channel(false);
    let service = tokio::spawn(user_service::run(
        config,
        TcpIncoming::from(listener),
        stopped,
    ));
    let mut client = pb::user_service_client::UserServiceClient::new(common::connect(addr).await);
    let id = client
        .register_customer(pb::RegisterCustomerRequest {
            email: "run@example.com".into(),
            name: "Run".into(),
            expected_version: None,
            idempotency_key: None,
        })
        .await
        .expect("registers")
        .into_inner()
        .customer_id;
    let profile = client
        .view_profile(pb::ViewProfileRequest {
            customer_id: id.clone(),
        })
        .await
        .expect("views")
        .into_inner();
    assert_eq!(profile.customer.expect("customer").email, "run@example.com");
    wait_all_published(&db, Duration::from_secs(15)).await;
    let seen = consume(&db, &[id.clone()].into(), Duration::from_secs(15)).await;
    assert_eq!(versions_by_key(&seen)[&id], [1]);

    stop.send(true).expect("service listening");
    tokio::time::timeout(Duration::from_secs(10), service)
        .await
        .expect("run returns within 10 s of the stop")
        .expect("service task")
        .expect("service ran cleanly");
    assert!(
        client
            .view_profile(pb::ViewProfileRequest { customer_id: id })
            .await
            .is_err(),
        "no longer serving"
    );
}

on_both_dialects!(
    relay_task_publishes_each_stream_in_version_order,
    crash_between_publish_and_mark_duplicates_but_loses_nothing,
    one_relay_holds_the_lease_and_the_others_stand_by,
    a_checkpoint_reader_never_skips_a_late_commit,
    relay_publishes_every_event_once_in_position_order,
    run_serves_relays_and_stops,
);

#[test]
fn the_mode_and_the_relay_flag_parse() {
    let parse = |args: &[&str]| {
        let mut all = vec!["user-service", "--database-url", "sqlite://x/user.db"];
        all.extend_from_slice(args);
        Config::try_parse_from(all).expect("parses")
    };
    let c = parse(&["--bus-url", "sqlite://data/bus.db"]);
    assert_eq!(c.bus_url, "sqlite://data/bus.db");
    assert_eq!(c.mode, Mode::Serve);
    assert!(c.runtime.relay);
    let c = parse(&["relay", "--relay", "false", "--bus-url", "kafka://k:1"]);
    assert_eq!(c.mode, Mode::Relay);
    assert!(!c.runtime.relay, "relay mode relays whatever --relay says");
    assert_eq!(c.bus_url, "kafka://k:1");
}
