//! Crash test with real processes: the relay (inside `cart-service --role command`) and
//! the event handler (`--role event-handler`) run as children of this test and are
//! killed with SIGKILL at random moments (seeded, bounded) while writers append
//! commands; each is restarted. Afterwards the read model equals the fold of the event
//! store for every cart, and so it does after `cart-service rebuild`.
//!
//! The binary is the package's own (`CARGO_BIN_EXE_cart-service`: cargo builds it
//! before it runs this test). `CART_CRASH_SEED` replays a run.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::procs::{BIN, Proc, cart_env, random_command, with};
use common::{CartCommands, FixedCatalog};
use common::{ReadDb, TestStore, ctx, infra, unique, wait_read_model_matches};
use keel::ServiceError;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_relay_and_event_handler_lose_nothing() {
    let seed: u64 = std::env::var("CART_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261126);
    eprintln!("CART_CRASH_SEED={seed}");
    let t = TestStore::create().await;
    let db = ReadDb::create().await;
    let topic = unique("cart-test-crash");
    let brokers = infra().brokers.clone();
    keel::bus::Bus::connect(&brokers)
        .await
        .expect("kafka")
        .ensure_topic(&topic, 3)
        .await
        .expect("topic");
    let common = cart_env(&t.name, db.url(), &topic);
    let with = |extra: &[(&str, &str)]| with(&common, extra);
    let mut relay = Proc::start(
        "relay",
        with(&[
            ("ROLE", "command"),
            ("SUBSCRIBER", "false"),
            ("RELAY_POLL_MS", "20"),
            ("RELAY_LEASE_TTL_MS", "1000"),
        ]),
    );
    let group = unique("cart-test-crash-handler");
    let mut handler = Proc::start(
        "event-handler",
        with(&[
            ("ROLE", "event-handler"),
            ("CONSUMER_GROUP", &group),
            ("CONSUMER_INSTANCE_ID", "handler-0"),
        ]),
    );

    // The load: 4 writers on 12 carts until the chaos is over (at most 300 commands each).
    let load_on = Arc::new(AtomicBool::new(true));
    let carts: Vec<Uuid> = (0..12).map(|_| Uuid::now_v7()).collect();
    let customers: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
    let mut writers = Vec::new();
    for w in 0..4u64 {
        let cmds = CartCommands::new(t.store.clone(), Arc::new(FixedCatalog(None)));
        let (carts, customers, load_on) = (carts.clone(), customers.clone(), load_on.clone());
        writers.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ (w + 1));
            let mut acknowledged = 0;
            for n in 0..300 {
                if !load_on.load(Ordering::Relaxed) {
                    break;
                }
                let c = random_command(&mut rng, &carts, &customers);
                let key = format!("w{w}-{n}");
                match cmds.execute(&ctx(&key), key.as_str(), None, &c).await {
                    Ok(_) => acknowledged += 1,
                    Err(
                        ServiceError::NotFound { .. }
                        | ServiceError::FailedPrecondition(_)
                        | ServiceError::Conflict(_),
                    ) => {}
                    Err(e) => panic!("{e:?}"),
                }
                tokio::time::sleep(Duration::from_millis(rng.random_range(0..15))).await;
            }
            acknowledged
        }));
    }

    // The chaos: 6 kills at random moments, either process.
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for round in 0..6 {
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..600))).await;
        let victim = if rng.random_bool(0.5) {
            &mut relay
        } else {
            &mut handler
        };
        victim.assert_running();
        eprintln!("round {round}: kill -9 {}", victim.name);
        victim.crash_and_restart();
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..300))).await;
    }
    load_on.store(false, Ordering::Relaxed);
    let mut acknowledged = 0;
    for w in writers {
        acknowledged += w.await.expect("writer");
    }
    eprintln!(
        "{acknowledged} commands acknowledged; relay started {}x, handler {}x",
        relay.starts, handler.starts
    );
    relay.assert_running();
    handler.assert_running();
    wait_read_model_matches(&t.store, &db.pool, Duration::from_secs(60)).await;
    relay.assert_running();
    handler.assert_running();

    // A rebuild (a real process too) gives the same read model.
    let out = Command::new(BIN)
        .arg("rebuild")
        .envs(common.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("RUST_LOG", "warn")
        .output()
        .expect("running cart-service rebuild");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "rebuild failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("events/s"), "{stdout}");
    eprintln!("{}", stdout.trim());
    wait_read_model_matches(&t.store, &db.pool, Duration::from_secs(10)).await;
}
