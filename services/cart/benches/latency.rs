//! `cargo bench -p cart-service --bench latency`: a benchmark binary, not a timed test.
//!
//! 1. Command-to-read-model latency: commands are appended to the event store at a
//!    fixed rate (in this process, through the runtime's executor), while the relay
//!    (`cart-service --role command`) and the event handler (`--role event-handler`)
//!    run as release processes with their default settings. For each command: the time
//!    from calling it until the read model's `carts.version` reaches the version it
//!    returned (polled every 5 ms). p50/p90/p99/max.
//! 2. Rebuild throughput: the store is seeded with more commits, then
//!    `cart-service rebuild` runs three times; the median events per second.
//!
//! Environment: `BENCH_RATE` (commands/s, default 50), `BENCH_SECONDS` (default 20),
//! `BENCH_CARTS` (default 200), `BENCH_REBUILD_EVENTS` (default 100000).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cart_service::Cart;
use keel::RequestContext;
use keel::es::RawEvent;
use keel::es::command::{Executor, NoChecks};
use keel::es::store::{EventStore, NewCommit};
use keel::testing::{TestDatabase, infra_up, infra_var};
use shop_cart::CartDecider;
use shop_cart::{
    AddProduct, CartCommand, CartEvent, ChangeProductQuantity, EventMeta, ProductAdded,
};
use uuid::Uuid;

const BIN: &str = env!("CARGO_BIN_EXE_cart-service");

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rate: u64 = env_or("BENCH_RATE", 50);
    let seconds: u64 = env_or("BENCH_SECONDS", 20);
    let cart_count: usize = env_or("BENCH_CARTS", 200);
    let rebuild_events: usize = env_or("BENCH_REBUILD_EVENTS", 100_000);

    infra_up(&["postgres", "kafka", "mongo"]);
    let brokers = infra_var("KAFKA_BOOTSTRAP_SERVERS");
    let mongo_url = infra_var("MONGO_URL");
    let run = Uuid::now_v7().simple().to_string();
    let mongo_db = format!("cart_bench_{run}");
    let topic = format!("cart-bench-{run}");
    let db = TestDatabase::create("cart_bench").await;
    let store = EventStore::connect(&mongo_url, &mongo_db, shop_cart::EVENT_STORE)
        .await
        .expect("event store");
    store.ensure_indexes().await.expect("indexes");
    keel::bus::Bus::connect(&brokers)
        .await
        .expect("kafka")
        .ensure_topic(&topic, 3)
        .await
        .expect("topic");
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .connect(&db.url)
        .await
        .expect("read db");
    keel::sql::Db::open(&db.url, &Default::default(), &shop_cart::READ_MIGRATIONS)
        .await
        .expect("read model")
        .close()
        .await;

    let env = [
        ("EVENT_STORE_URL", mongo_url.clone()),
        ("EVENT_STORE_DATABASE", mongo_db.clone()),
        ("DATABASE_URL", db.url.clone()),
        ("BUS_URL", brokers.clone()),
        ("CART_TOPIC", topic.clone()),
        ("LISTEN_ADDR", "127.0.0.1:0".into()),
        ("RUST_LOG", "warn".into()),
        ("CONSUMER_GROUP", format!("cart-bench-{run}")),
    ];
    let spawn = |role: &str| {
        let mut cmd = Command::new(BIN);
        cmd.env("ROLE", role)
            .env("SUBSCRIBER", "false")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in &env {
            cmd.env(k, v);
        }
        Kill(cmd.spawn().expect("cart-service"))
    };
    let relay = spawn("command");
    let handler = spawn("event-handler");

    let commands = Executor::<CartDecider<Cart>, NoChecks>::new(store.clone(), NoChecks);
    let carts: Vec<Uuid> = (0..cart_count).map(|_| Uuid::now_v7()).collect();
    // Warm up: every cart exists and the pipeline has carried one event end to end.
    for (i, cart) in carts.iter().enumerate() {
        let c = CartCommand::AddProduct(AddProduct {
            cart_id: *cart,
            product_id: Uuid::from_u128(1),
            quantity: 1,
        });
        let key = format!("warm-{i}");
        let ctx = RequestContext {
            request_id: key.clone(),
            correlation_id: key.clone(),
        };
        commands
            .execute(&ctx, Some(key.as_str()), None, &c)
            .await
            .expect("warm-up");
    }
    let warm_deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM carts")
            .fetch_one(&pool)
            .await
            .expect("count");
        if n as usize == carts.len() {
            break;
        }
        assert!(
            Instant::now() < warm_deadline,
            "pipeline not warm after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let total = rate * seconds;
    println!(
        "latency: {total} commands at {rate}/s over {cart_count} carts ({seconds} s), relay and event handler as release processes"
    );
    let interval = Duration::from_nanos(1_000_000_000 / rate.max(1));
    let mut ticker = tokio::time::interval(interval);
    let mut samples = Vec::new();
    let mut acks = Vec::new();
    let mut tasks = Vec::new();
    for n in 0..total {
        ticker.tick().await;
        let (commands, pool) = (commands.clone(), pool.clone());
        let cart = carts[(n as usize * 7919) % carts.len()];
        tasks.push(tokio::spawn(async move {
            let key = format!("bench-{n}");
            let ctx = RequestContext {
                request_id: key.clone(),
                correlation_id: key.clone(),
            };
            let c = CartCommand::ChangeProductQuantity(ChangeProductQuantity {
                cart_id: cart,
                product_id: Uuid::from_u128(1),
                quantity: (n % 98 + 2) as i32,
            });
            let started = Instant::now();
            let done = loop {
                match commands.execute(&ctx, Some(key.as_str()), None, &c).await {
                    Ok(d) => break d,
                    Err(keel::ServiceError::Conflict(_)) => continue,
                    Err(e) => panic!("{e:?}"),
                }
            };
            let acked = started.elapsed();
            loop {
                let v: i64 = sqlx::query_scalar("SELECT version FROM carts WHERE id = $1")
                    .bind(cart)
                    .fetch_one(&pool)
                    .await
                    .expect("version");
                if v >= done.version {
                    return (acked, started.elapsed());
                }
                assert!(started.elapsed() < Duration::from_secs(60), "never visible");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    for t in tasks {
        let (acked, visible) = t.await.expect("command task");
        acks.push(acked);
        samples.push(visible);
    }
    samples.sort();
    acks.sort();
    println!("| measure | p50 | p90 | p99 | max |");
    println!("|---|---:|---:|---:|---:|");
    for (name, s) in [
        ("command acknowledged (append to the store)", &acks),
        ("command to read model (ViewCart sees it)", &samples),
    ] {
        println!(
            "| {name} | {} | {} | {} | {} |",
            ms(percentile(s, 0.5)),
            ms(percentile(s, 0.9)),
            ms(percentile(s, 0.99)),
            ms(*s.last().expect("samples"))
        );
    }
    drop(relay);
    drop(handler);

    // Rebuild: seed the store with more commits (written directly, in position order).
    let mut position = store.max_position().await.expect("max");
    let seeded_carts: Vec<Uuid> = (0..(rebuild_events / 20).max(1))
        .map(|_| Uuid::now_v7())
        .collect();
    let mut versions = vec![0i64; seeded_carts.len()];
    let mut batch = Vec::with_capacity(1000);
    for n in 0..rebuild_events {
        let i = n % seeded_carts.len();
        versions[i] += 1;
        position += 1;
        let cart = seeded_carts[i];
        let commit = NewCommit {
            stream_id: cart,
            commit_seq: versions[i],
            commit_id: Uuid::now_v7(),
            events: vec![
                RawEvent::encode(
                    EventMeta {
                        event_id: Uuid::now_v7(),
                        stream_id: cart,
                        version: versions[i],
                        occurred_at: chrono::Utc::now(),
                        correlation_id: "bench".into(),
                        causation_id: "bench".into(),
                    },
                    &CartEvent::ProductAdded(ProductAdded {
                        product_id: Uuid::from_u128((versions[i] % 4) as u128 + 1),
                        quantity: 1,
                    }),
                )
                .expect("encodes"),
            ],
            correlation_id: "bench".into(),
            causation_id: "bench".into(),
        };
        batch.push(commit.to_document(position).expect("doc"));
        if batch.len() == 1000 {
            store
                .mongo()
                .expect("mongo")
                .commits()
                .insert_many(std::mem::take(&mut batch))
                .await
                .expect("seed");
        }
    }
    if !batch.is_empty() {
        store
            .mongo()
            .expect("mongo")
            .commits()
            .insert_many(batch)
            .await
            .expect("seed");
    }
    println!(
        "\nrebuild: {position} events in the store ({} carts)",
        seeded_carts.len() + carts.len()
    );
    let mut rates = Vec::new();
    for _ in 0..3 {
        let mut cmd = Command::new(BIN);
        cmd.arg("rebuild");
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("rebuild");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "rebuild failed: {text}");
        println!("  {}", text.trim());
        let rate: f64 = text
            .trim()
            .rsplit(": ")
            .next()
            .and_then(|s| s.trim_end_matches(" events/s").parse().ok())
            .expect("events/s in the output");
        rates.push(rate);
    }
    rates.sort_by(f64::total_cmp);
    println!("rebuild throughput (median of 3): {:.0} events/s", rates[1]);
    let _ = store.mongo().expect("mongo").database().drop().await;
}
