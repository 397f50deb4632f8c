//! Shared by the integration tests: real PostgreSQL and Kafka from the repository's
//! infra harness, a fresh database per test, the gRPC server on an ephemeral port, and
//! a Kafka reader. Nothing here skips: missing infrastructure fails the test.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use prost::Message as _;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message as _;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use shop_user::pb;
use shop_user::pb::user_service_client::UserServiceClient;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::oneshot;
use tonic::transport::Channel;
use tonic::transport::server::TcpIncoming;

pub struct Infra {
    /// The maintenance database, where test databases are created and dropped.
    pub admin_url: String,
    pub brokers: String,
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Starts (or finds running) PostgreSQL and Kafka once per test binary.
pub fn infra() -> &'static Infra {
    static INFRA: OnceLock<Infra> = OnceLock::new();
    INFRA.get_or_init(|| {
        let root = repo_root();
        let up = Command::new("bash")
            .args(["xtask/infra/infra.sh", "up", "postgres", "kafka"])
            .current_dir(&root)
            .output()
            .expect("running xtask/infra/infra.sh up postgres kafka");
        assert!(
            up.status.success(),
            "xtask/infra/infra.sh up postgres kafka failed ({}):\n{}\n{}",
            up.status,
            String::from_utf8_lossy(&up.stdout),
            String::from_utf8_lossy(&up.stderr)
        );
        let env = Command::new("bash")
            .args(["xtask/infra/infra.sh", "env"])
            .current_dir(&root)
            .output()
            .expect("running xtask/infra/infra.sh env");
        assert!(env.status.success(), "infra.sh env failed");
        let text = String::from_utf8_lossy(&env.stdout);
        let var = |name: &str| {
            text.lines()
                .filter_map(|l| l.trim().strip_prefix("export "))
                .filter_map(|l| l.split_once('='))
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.trim_matches(|c| c == '"' || c == '\'').to_string())
                .unwrap_or_else(|| panic!("infra.sh env prints no {name}:\n{text}"))
        };
        Infra {
            admin_url: var("DATABASE_URL"),
            brokers: var("KAFKA_BOOTSTRAP_SERVERS"),
        }
    })
}

/// A fresh, migrated database, dropped when this value is (even when the test fails).
pub struct TestDb {
    pub name: String,
    pub url: String,
    pub pool: PgPool,
}

impl TestDb {
    pub async fn create() -> TestDb {
        static N: AtomicUsize = AtomicUsize::new(0);
        let infra = infra();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_nanos();
        let name = format!(
            "user_test_{}_{}_{}",
            std::process::id(),
            nanos % 1_000_000_000_000,
            N.fetch_add(1, Ordering::SeqCst)
        );
        let mut admin = PgConnection::connect(&infra.admin_url)
            .await
            .expect("connecting to the maintenance database");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await
            .expect("creating the test database");
        let _ = admin.close().await;
        let (base, _) = infra
            .admin_url
            .rsplit_once('/')
            .expect("DATABASE_URL ends in /<database>");
        let url = format!("{base}/{name}");
        let pool = PgPoolOptions::new()
            .max_connections(30)
            .acquire_timeout(Duration::from_secs(10))
            .connect(&url)
            .await
            .expect("connecting to the test database");
        user_service::MIGRATOR
            .run(&pool)
            .await
            .expect("applying migrations");
        TestDb { name, url, pool }
    }

    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(&self.pool)
            .await
            .expect("counting rows")
    }

    /// (events, customers, outbox) row counts.
    pub async fn counts(&self) -> (i64, i64, i64) {
        (
            self.count("events").await,
            self.count("customers").await,
            self.count("outbox").await,
        )
    }

    pub async fn versions(&self, stream: uuid::Uuid) -> Vec<i64> {
        sqlx::query_scalar("SELECT version FROM events WHERE stream_id = $1 ORDER BY version")
            .bind(stream)
            .fetch_all(&self.pool)
            .await
            .expect("reading versions")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin_url = infra().admin_url.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime: do the async work on a thread of its own.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let mut admin = PgConnection::connect(&admin_url).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                )))
                .execute(&mut admin)
                .await?;
                admin.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}: {dropped:?}", self.name);
        }
    }
}

/// The gRPC server (health, reflection, the service) on 127.0.0.1:<ephemeral>.
pub struct TestServer {
    pub addr: std::net::SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    pub async fn start(pool: PgPool) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding an ephemeral port");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(user_service::serve(
            user_service::Users::new(pool),
            TcpIncoming::from(listener),
            async move {
                let _ = stopped.await;
            },
        ));
        TestServer {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn channel(&self) -> Channel {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match Channel::from_shared(format!("http://{}", self.addr))
                .expect("uri")
                .connect()
                .await
            {
                Ok(c) => return c,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("server not up yet: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("cannot connect to the test server: {e}"),
            }
        }
    }

    pub async fn client(&self) -> UserServiceClient<Channel> {
        UserServiceClient::new(self.channel().await)
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(5), t)
                .await
                .expect("server stops within 5 s")
                .expect("server task")
                .expect("server ran cleanly");
        }
    }
}

/// Reads the events topic from the beginning of every partition up to its current end
/// (the high watermark when called: everything Kafka has acknowledged so far) and
/// returns the messages whose key is in `keys`, in the order read, decoded as
/// `pb::CustomerEvent`. Fails if the end is not reached within `timeout`.
pub async fn consume(
    keys: &HashSet<String>,
    timeout: Duration,
) -> Vec<(String, pb::CustomerEvent)> {
    let infra = infra();
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &infra.brokers)
        .set("group.id", format!("user-test-{}", uuid::Uuid::now_v7()))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("creating the consumer");
    let deadline = Instant::now() + timeout;
    let partitions: Vec<i32> = loop {
        let found = consumer
            .fetch_metadata(Some(shop_user::TOPIC), Duration::from_secs(5))
            .ok()
            .and_then(|m| {
                m.topics()
                    .iter()
                    .find(|t| t.name() == shop_user::TOPIC && t.error().is_none())
                    .map(|t| t.partitions().iter().map(|p| p.id()).collect::<Vec<_>>())
            })
            .filter(|p| !p.is_empty());
        match found {
            Some(p) => break p,
            None if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            None => panic!("topic {} never showed up", shop_user::TOPIC),
        }
    };
    // Where each partition ends now; partitions already read to the end drop out.
    let mut unread: HashMap<i32, i64> = HashMap::new();
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        let (low, high) = consumer
            .fetch_watermarks(shop_user::TOPIC, p, Duration::from_secs(5))
            .expect("watermarks");
        if high > low {
            unread.insert(p, high);
        }
        // Assigned, not subscribed: no group rebalance to wait for.
        tpl.add_partition_offset(shop_user::TOPIC, p, Offset::Beginning)
            .expect("partition offset");
    }
    consumer.assign(&tpl).expect("assigning partitions");
    let mut seen = Vec::new();
    while !unread.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "topic not read to its end in {timeout:?}: {unread:?} left"
        );
        match tokio::time::timeout(left, consumer.recv()).await {
            Err(_) => continue,
            Ok(Err(e)) => eprintln!("consumer: {e}"),
            Ok(Ok(m)) => {
                if unread
                    .get(&m.partition())
                    .is_some_and(|end| m.offset() + 1 >= *end)
                {
                    unread.remove(&m.partition());
                }
                let key = m
                    .key()
                    .map(|k| String::from_utf8_lossy(k).into_owned())
                    .unwrap_or_default();
                if keys.contains(&key) {
                    let event = pb::CustomerEvent::decode(m.payload().unwrap_or_default())
                        .expect("a protobuf CustomerEvent");
                    seen.push((key, event));
                }
            }
        }
    }
    seen
}

/// The versions of each key's events, in the order they were read.
pub fn versions_by_key(
    seen: &[(String, pb::CustomerEvent)],
) -> std::collections::BTreeMap<String, Vec<i64>> {
    let mut m = std::collections::BTreeMap::<String, Vec<i64>>::new();
    for (k, e) in seen {
        assert_eq!(&e.customer_id, k, "message key is the stream id");
        m.entry(k.clone()).or_default().push(e.version);
    }
    m
}
