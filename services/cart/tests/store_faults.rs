//! The stores themselves fail: while writers run commands, PostgreSQL (the read model,
//! and FerretDB's backend), the Kafka broker and FerretDB (the event store's server)
//! are each killed with SIGKILL twice and restarted, mid-load. The relay
//! (`cart-service --role command`) and the event handler (`--role event-handler`) are
//! real processes. Afterwards every acknowledged command is in the event store, every
//! read model equals the fold of the store, and nothing was parked.
//!
//! This binary kills the harness's shared servers, so it holds only this test (cargo
//! runs test binaries one after another). `CART_FAULT_SEED` replays a run.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::procs::{Proc, cart_env, random_command, with};
use common::{CartCommands, FixedCatalog, Projector};
use common::{ReadDb, TestStore, ctx, infra, unique, wait_read_model_matches};
use keel::ServiceError;
use keel::testing::{infra_up, repo_root};
use rand::{Rng, SeedableRng};
use uuid::Uuid;

/// The server process of a harness component, as `infra.sh status` reports it (the
/// script knows where each keeps its pid: PostgreSQL's data dir moves under /var/tmp
/// when the checkout is not reachable by its unprivileged owner).
fn server_pid(component: &str) -> u32 {
    let out = std::process::Command::new("bash")
        .arg(repo_root().join("xtask/infra/infra.sh"))
        .args(["status", component])
        .output()
        .expect("bash runs");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .find_map(|w| w.strip_prefix("pid="))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{component} is not running: {text}"))
}

/// SIGKILL to the component's server process; returns once the process is gone (a
/// dead but unreaped postmaster would make the restarted one refuse its lock file).
fn kill_server(component: &str) {
    let pid = server_pid(component);
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -9 {pid} ({component})");
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while proc_dir.exists() {
        assert!(
            Instant::now() < deadline,
            "{component} (pid {pid}) never went away"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What the writers were told: (cart, version) of every acknowledged command that
/// stored a commit, by position.
type Acknowledged = BTreeMap<i64, (Uuid, i64)>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_stores_mid_load_loses_and_stalls_nothing() {
    let seed: u64 = std::env::var("CART_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261129);
    eprintln!("CART_FAULT_SEED={seed}");
    let t = TestStore::create().await;
    let db = ReadDb::create().await;
    let topic = unique("cart-test-faults");
    let brokers = infra().brokers.clone();
    keel::bus::Bus::connect(&brokers)
        .await
        .expect("kafka")
        .ensure_topic(&topic, 3)
        .await
        .expect("topic");
    let base = cart_env(&t.name, db.url(), &topic);
    let env = |extra: &[(&str, &str)]| with(&base, extra);
    let mut relay = Proc::start(
        "fault-relay",
        env(&[
            ("ROLE", "command"),
            ("SUBSCRIBER", "false"),
            ("RELAY_POLL_MS", "20"),
        ]),
    );
    let group = unique("cart-test-faults-handler");
    let mut handler = Proc::start(
        "fault-event-handler",
        env(&[("ROLE", "event-handler"), ("CONSUMER_GROUP", &group)]),
    );

    // 8 writers on 16 carts while the faults go on. A command that fails because a
    // store is down is retried with the same idempotency key: if its first attempt did
    // commit, the retry is answered with that commit.
    let load_on = Arc::new(AtomicBool::new(true));
    let carts: Vec<Uuid> = (0..16).map(|_| Uuid::now_v7()).collect();
    let customers: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
    let mut writers = Vec::new();
    for w in 0..8u64 {
        let cmds = CartCommands::new(t.store.clone(), Arc::new(FixedCatalog(None)));
        let (carts, customers, load_on) = (carts.clone(), customers.clone(), load_on.clone());
        writers.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ (w + 1));
            let mut acknowledged = Acknowledged::new();
            let mut failures = 0;
            let mut n = 0;
            while load_on.load(Ordering::Relaxed) {
                let c = random_command(&mut rng, &carts, &customers);
                let key = format!("w{w}-{n}");
                n += 1;
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    match cmds.execute(&ctx(&key), key.as_str(), None, &c).await {
                        Ok(done) => {
                            if let Some(p) = done.position {
                                acknowledged
                                    .insert(p, (c.stream_id().expect("cart"), done.version));
                            }
                            break;
                        }
                        Err(
                            ServiceError::NotFound { .. }
                            | ServiceError::FailedPrecondition(_)
                            | ServiceError::Conflict(_),
                        ) => break,
                        Err(e) => {
                            failures += 1;
                            assert!(
                                Instant::now() < deadline,
                                "w{w}: a store stayed down: {e:?}"
                            );
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(rng.random_range(5..30))).await;
            }
            (acknowledged, failures)
        }));
    }

    // The faults: each store's server killed twice, in a seeded order, mid-load.
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut faults: Vec<&str> = ["postgres", "kafka", "mongo"].repeat(2);
    for i in (1..faults.len()).rev() {
        faults.swap(i, rng.random_range(0..=i));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (round, component) in faults.iter().enumerate() {
        relay.assert_running();
        handler.assert_running();
        eprintln!("fault {round}: kill -9 {component}");
        let victim = *component;
        tokio::task::spawn_blocking(move || kill_server(victim))
            .await
            .expect("kill");
        tokio::time::sleep(Duration::from_millis(rng.random_range(500..2000))).await;
        let restart = *component;
        tokio::task::spawn_blocking(move || {
            let mut started = vec![restart];
            // FerretDB needs its PostgreSQL; restarting both keeps them in order.
            if restart == "postgres" {
                started.push("mongo");
            }
            infra_up(&started);
        })
        .await
        .expect("restart");
        tokio::time::sleep(Duration::from_millis(rng.random_range(1000..4000))).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    load_on.store(false, Ordering::Relaxed);
    let mut acknowledged = Acknowledged::new();
    let mut failures = 0;
    for w in writers {
        let (acks, failed) = w.await.expect("writer");
        acknowledged.extend(acks);
        failures += failed;
    }
    eprintln!(
        "{} commits acknowledged, {failures} attempts failed while a store was down; relay started {}x, handler {}x",
        acknowledged.len(),
        relay.starts,
        handler.starts
    );
    assert!(
        acknowledged.len() > 100,
        "the load ran: {}",
        acknowledged.len()
    );

    // Every acknowledged commit is in the store, where it was acknowledged.
    let stored = common::all_commits(&t.store).await;
    let by_position: BTreeMap<i64, (Uuid, i64)> = stored
        .iter()
        .map(|c| (c.position, (c.stream_id, c.rev_to)))
        .collect();
    for (position, ack) in &acknowledged {
        assert_eq!(
            by_position.get(position),
            Some(ack),
            "acknowledged commit at position {position} is not in the store"
        );
    }
    // Every read model converges to the fold of the store, nothing parked, and the
    // processes survived their stores' deaths.
    wait_read_model_matches(&t.store, &db.pool, Duration::from_secs(180)).await;
    let parked = Projector::new(db.pool.clone())
        .parked()
        .await
        .expect("parked");
    assert_eq!(parked, 0, "events were parked");
    relay.assert_running();
    handler.assert_running();
}
