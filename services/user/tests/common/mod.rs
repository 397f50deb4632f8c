//! Shared by the integration tests, which run the same cases on both configurations of
//! the service: PostgreSQL + real Kafka (started by the repository's infra harness, a
//! fresh database per test), and SQLite + the embedded bus log (files in a temporary
//! folder per test). The gRPC server runs on an ephemeral port. Nothing here skips:
//! missing infrastructure fails the test.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use keel::bus::Bus;
use keel::sql::{self, ConnectOptions, Db, Dialect};
use keel::testing::{TestStore, infra_up, infra_var};
use prost::Message as _;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message as _;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use shop_user::pb;
use shop_user::pb::user_service_client::UserServiceClient;
use tokio::sync::oneshot;
use tonic::transport::Channel;
use tonic::transport::server::TcpIncoming;

/// Generates `mod $name { postgres, sqlite }`: one test per dialect running
/// `$name(Dialect)`.
#[macro_export]
macro_rules! on_both_dialects {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres_kafka() {
                super::$name(keel::sql::Dialect::Postgres).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite_embedded_bus() {
                super::$name(keel::sql::Dialect::Sqlite).await
            }
        }
    )*};
}

/// Kafka's bootstrap servers, once PostgreSQL and Kafka are up (once per test binary).
pub fn brokers() -> &'static str {
    static BROKERS: OnceLock<String> = OnceLock::new();
    BROKERS.get_or_init(|| {
        infra_up(&["postgres", "kafka"]);
        infra_var("KAFKA_BOOTSTRAP_SERVERS")
    })
}

/// A fresh, migrated store and the bus of its configuration: PostgreSQL + Kafka, or a
/// SQLite file + the embedded log next to it. Dropped (database, files) with this value.
pub struct TestDb {
    pub db: Db,
    pub bus: Bus,
    pub url: String,
    pub bus_url: String,
    /// Last: dropping it drops the database (PostgreSQL) or deletes the files (SQLite).
    pub store: TestStore,
}

impl TestDb {
    pub async fn create(dialect: Dialect) -> TestDb {
        let bus_url_for_pg = match dialect {
            Dialect::Postgres => Some(brokers().to_string()),
            Dialect::Sqlite => None,
        };
        let store = TestStore::create(dialect, "user_test").await;
        let bus_url = match (&store, bus_url_for_pg) {
            (TestStore::Sqlite { dir, .. }, _) => {
                format!("sqlite://{}/bus.db", dir.path().display())
            }
            (TestStore::Postgres(_), Some(brokers)) => brokers,
            (TestStore::Postgres(_), None) => unreachable!("a PostgreSQL store has Kafka"),
        };
        let url = store.url().to_string();
        let db = Db::connect(
            &url,
            &ConnectOptions {
                max_connections: 30,
                startup_timeout: Duration::from_secs(30),
            },
            Some(&shop_user::DB_MIGRATIONS),
        )
        .await
        .expect("connecting to the test database and migrating it");
        assert_eq!(db.dialect(), dialect);
        let bus = Bus::connect(&bus_url).await.expect("connecting to the bus");
        TestDb {
            db,
            bus,
            url,
            bus_url,
            store,
        }
    }

    pub fn dialect(&self) -> Dialect {
        self.db.dialect()
    }

    pub async fn scalar(&self, statement: &str) -> i64 {
        sql::query(statement.to_string())
            .fetch_one(&self.db)
            .await
            .expect("query")
            .i64("n")
            .expect("n")
    }

    pub async fn count(&self, table: &str) -> i64 {
        self.scalar(&format!("SELECT COUNT(*) AS n FROM {table}"))
            .await
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
        sql::query("SELECT version FROM events WHERE stream_id = $1 ORDER BY version")
            .bind(stream)
            .fetch_all(&self.db)
            .await
            .expect("reading versions")
            .iter()
            .map(|r| r.i64("version").expect("version"))
            .collect()
    }

    /// Every outbox position, in order.
    pub async fn outbox_positions(&self) -> Vec<i64> {
        sql::query("SELECT position FROM outbox ORDER BY position")
            .fetch_all(&self.db)
            .await
            .expect("outbox")
            .iter()
            .map(|r| r.i64("position").expect("position"))
            .collect()
    }

    pub async fn unpublished(&self) -> i64 {
        self.scalar("SELECT COUNT(*) AS n FROM outbox WHERE published_at IS NULL")
            .await
    }
}

/// The service's generated use cases on the runtime's store, over the hand-written
/// aggregate.
pub type Users = shop_user::UserHandlers<user_service::Customer>;

pub fn users(db: Db) -> Users {
    shop_user::UserHandlers {
        store: keel::es::cqs::Store::new(db, shop_user::TOPIC),
    }
}

/// Serves `users` (health, reflection) on `incoming` until `shutdown`.
pub async fn serve(
    users: Users,
    incoming: TcpIncoming,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    keel::server::grpc_router(
        &["shop.user.v1.UserService"],
        &[shop_user::FILE_DESCRIPTOR_SET],
    )
    .await?
    .add_service(shop_user::user_server(std::sync::Arc::new(users)))
    .serve_with_incoming_shutdown(incoming, shutdown)
    .await?;
    Ok(())
}

/// The gRPC server (health, reflection, the service) on 127.0.0.1:<ephemeral>.
pub struct TestServer {
    pub addr: std::net::SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    pub async fn start(db: Db) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding an ephemeral port");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(users(db), TcpIncoming::from(listener), async move {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn channel(&self) -> Channel {
        connect(self.addr).await
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

/// A channel to the server at `addr`, retried for 5 s while it starts.
pub async fn connect(addr: std::net::SocketAddr) -> Channel {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match Channel::from_shared(format!("http://{addr}"))
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

/// One message of the events topic as read back from the bus.
#[derive(Debug, Clone)]
pub struct Seen {
    pub partition: i32,
    pub key: String,
    pub event: pb::CustomerEvent,
}

/// Reads the events topic of `db`'s bus from the beginning up to its current end
/// (everything the bus has acknowledged so far) and returns the messages whose key is
/// in `keys`, in the order read (per partition: the order of the partition), decoded as
/// `pb::CustomerEvent`. Fails if the end is not reached within `timeout`.
///
/// Kafka (shared by every test): each partition up to its high watermark, assigned
/// directly. The embedded log (one per test): a fresh [`Bus::subscriber`] group reading
/// as many messages as the log holds.
pub async fn consume(db: &TestDb, keys: &HashSet<String>, timeout: Duration) -> Vec<Seen> {
    let raw = match &db.bus {
        Bus::Kafka { brokers } => consume_kafka(brokers, timeout).await,
        Bus::Log(log) => {
            let end = log.len(shop_user::TOPIC).await.expect("log length");
            let mut sub = db
                .bus
                .subscriber(
                    &format!("user-test-{}", uuid::Uuid::now_v7()),
                    None,
                    &[shop_user::TOPIC],
                )
                .await
                .expect("subscribing to the log");
            let mut raw = Vec::new();
            for expected_offset in 0..end {
                let m = tokio::time::timeout(timeout, sub.recv())
                    .await
                    .expect("the log is read to its end in time")
                    .expect("receiving from the log");
                assert_eq!(m.offset, expected_offset, "the log is gap-free");
                raw.push((m.partition, m.key, m.payload));
            }
            raw
        }
    };
    raw.into_iter()
        .filter_map(|(partition, key, payload)| {
            let key = String::from_utf8_lossy(&key).into_owned();
            keys.contains(&key).then(|| Seen {
                partition,
                event: pb::CustomerEvent::decode(payload.as_slice())
                    .expect("a protobuf CustomerEvent"),
                key,
            })
        })
        .collect()
}

async fn consume_kafka(brokers: &str, timeout: Duration) -> Vec<(i32, Vec<u8>, Vec<u8>)> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
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
                let Some(end) = unread.get(&m.partition()).copied() else {
                    continue;
                };
                if m.offset() >= end {
                    continue;
                }
                if m.offset() + 1 >= end {
                    unread.remove(&m.partition());
                }
                seen.push((
                    m.partition(),
                    m.key().unwrap_or_default().to_vec(),
                    m.payload().unwrap_or_default().to_vec(),
                ));
            }
        }
    }
    seen
}

/// The versions of each key's events, in the order they were read.
pub fn versions_by_key(seen: &[Seen]) -> std::collections::BTreeMap<String, Vec<i64>> {
    let mut m = std::collections::BTreeMap::<String, Vec<i64>>::new();
    for s in seen {
        assert_eq!(s.event.customer_id, s.key, "message key is the stream id");
        m.entry(s.key.clone()).or_default().push(s.event.version);
    }
    m
}
