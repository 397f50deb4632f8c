//! Event delivery between services, chosen by URL: Kafka (`kafka://host:port[,…]`, or a
//! bare broker list) or, embedded, an append-only log in one SQLite file
//! (`sqlite://path/to/bus.db`).
//!
//! Both give the relays and consumers the same contract: a publish acknowledges a
//! prefix of its batch, in order; a subscriber reads each topic in order from its
//! group's committed offset (the earliest when it has none), commits after handling,
//! and can seek back to read a message again. Delivery is at least once either way.
//!
//! The log keeps one partition per topic and no group coordination: every subscriber
//! of a group reads every message, so a group runs one member (the embedded launcher
//! runs one of each). Messages are kept; nothing prunes them.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::Utc;
use rdkafka::ClientConfig;
use rdkafka::Offset;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message as _;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::Notify;

use crate::sql::{self, Db};

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("bad bus URL {0:?}: use kafka://host:port or sqlite://path")]
    Url(String),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("kafka: {0}")]
    KafkaOther(String),
    #[error("bus log: {0}")]
    Log(#[from] sqlx::Error),
}

/// Where events travel.
#[derive(Clone)]
pub enum Bus {
    Kafka { brokers: String },
    Log(Log),
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bus::Kafka { brokers } => write!(f, "Bus::Kafka({brokers})"),
            Bus::Log(l) => write!(f, "Bus::Log({})", l.url),
        }
    }
}

impl Bus {
    /// `kafka://b1:9092,b2:9092`, `b1:9092` (a bare broker list) or `sqlite://path`.
    pub async fn connect(url: &str) -> Result<Bus, BusError> {
        if let Some(brokers) = url.strip_prefix("kafka://") {
            let brokers = brokers.trim_end_matches('/');
            if brokers.is_empty() {
                return Err(BusError::Url(url.into()));
            }
            return Ok(Bus::Kafka {
                brokers: brokers.to_string(),
            });
        }
        if url.starts_with("sqlite:") {
            return Ok(Bus::Log(Log::open(url).await?));
        }
        if url.contains("://") || url.is_empty() {
            return Err(BusError::Url(url.into()));
        }
        Ok(Bus::Kafka {
            brokers: url.to_string(),
        })
    }

    /// Creates `topic` unless it exists, so consumers can subscribe before the first
    /// message (Kafka); the log needs nothing.
    pub async fn ensure_topic(&self, topic: &str, partitions: i32) -> Result<(), BusError> {
        let Bus::Kafka { brokers } = self else {
            return Ok(());
        };
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .create()?;
        let new = NewTopic::new(topic, partitions.max(1), TopicReplication::Fixed(1));
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        for r in admin.create_topics([&new], &opts).await? {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((t, e)) => return Err(BusError::KafkaOther(format!("creating {t}: {e}"))),
            }
        }
        Ok(())
    }

    /// An idempotent, `acks=all` Kafka producer (retries never duplicate or reorder
    /// within a partition), or the log's appender.
    pub fn publisher(&self, delivery_timeout: Duration) -> Result<Publisher, BusError> {
        Ok(match self {
            Bus::Kafka { brokers } => Publisher::Kafka(
                ClientConfig::new()
                    .set("bootstrap.servers", brokers)
                    .set("enable.idempotence", "true")
                    .set("acks", "all")
                    .set("linger.ms", "2")
                    .set(
                        "message.timeout.ms",
                        delivery_timeout.as_millis().max(1).to_string(),
                    )
                    .create()?,
            ),
            Bus::Log(l) => Publisher::Log(l.clone()),
        })
    }

    /// A member of consumer group `group` reading `topics`; commits only when told.
    /// With `instance_id` a Kafka member is static (`group.instance.id`): restarted under
    /// the same id it gets its partitions back at once, without a rebalance.
    pub async fn subscriber(
        &self,
        group: &str,
        instance_id: Option<&str>,
        topics: &[&str],
    ) -> Result<Subscriber, BusError> {
        match self {
            Bus::Kafka { brokers } => {
                let mut c = ClientConfig::new();
                if let Some(id) = instance_id.filter(|s| !s.is_empty()) {
                    c.set("group.instance.id", id);
                }
                let consumer: StreamConsumer = c
                    .set("bootstrap.servers", brokers)
                    .set("group.id", group)
                    // At least once without a commit request per message: `commit`
                    // stores the offset of a handled message and the client commits
                    // the stored offsets every second (and when it closes). A commit
                    // request per message starves the group's heartbeats on a backlog.
                    .set("enable.auto.commit", "true")
                    .set("enable.auto.offset.store", "false")
                    .set("auto.commit.interval.ms", "1000")
                    .set("auto.offset.reset", "earliest")
                    .set("session.timeout.ms", "6000")
                    .set("heartbeat.interval.ms", "1000")
                    .set("topic.metadata.refresh.interval.ms", "5000")
                    .create()?;
                consumer.subscribe(topics)?;
                Ok(Subscriber::Kafka(Box::new(consumer)))
            }
            Bus::Log(l) => Ok(Subscriber::Log(
                LogSubscriber::new(l.clone(), group, topics).await?,
            )),
        }
    }
}

/// One message to publish.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    pub topic: &'a str,
    pub key: &'a [u8],
    pub payload: &'a [u8],
}

/// What a publish achieved: the first `acknowledged` messages are durable, in order;
/// `error` stopped the rest.
#[derive(Debug)]
pub struct Published {
    pub acknowledged: usize,
    pub error: Option<BusError>,
}

pub enum Publisher {
    Kafka(FutureProducer),
    Log(Log),
}

impl Publisher {
    /// Sends `batch` in order and waits for the acknowledgements.
    pub async fn publish(&self, batch: &[Outgoing<'_>]) -> Published {
        match self {
            Publisher::Kafka(producer) => {
                let mut in_flight = Vec::with_capacity(batch.len());
                let mut first_failed = batch.len();
                let mut error = None;
                for (i, m) in batch.iter().enumerate() {
                    let record = FutureRecord::to(m.topic).key(m.key).payload(m.payload);
                    match producer.send_result(record) {
                        Ok(delivery) => in_flight.push((i, delivery)),
                        Err((e, _)) => {
                            first_failed = i;
                            error = Some(BusError::Kafka(e));
                            break;
                        }
                    }
                }
                for (i, delivery) in in_flight {
                    let failed = match delivery.await {
                        Ok(Ok(_)) => None,
                        Ok(Err((e, _))) => Some(BusError::Kafka(e)),
                        Err(_) => Some(BusError::KafkaOther("producer gone".into())),
                    };
                    if let Some(e) = failed {
                        first_failed = first_failed.min(i);
                        error.get_or_insert(e);
                    }
                }
                Published {
                    acknowledged: first_failed,
                    error,
                }
            }
            Publisher::Log(log) => match log.append(batch).await {
                Ok(()) => Published {
                    acknowledged: batch.len(),
                    error: None,
                },
                Err(e) => Published {
                    acknowledged: 0,
                    error: Some(e.into()),
                },
            },
        }
    }
}

/// A message as a subscriber sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Vec<u8>,
    pub payload: Vec<u8>,
}

pub enum Subscriber {
    Kafka(Box<StreamConsumer>),
    Log(LogSubscriber),
}

impl Subscriber {
    /// The next message (waits for one).
    pub async fn recv(&mut self) -> Result<Received, BusError> {
        match self {
            Subscriber::Kafka(c) => {
                let m = c.recv().await?;
                Ok(Received {
                    topic: m.topic().to_string(),
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().unwrap_or_default().to_vec(),
                    payload: m.payload().unwrap_or_default().to_vec(),
                })
            }
            Subscriber::Log(l) => l.recv().await,
        }
    }

    /// Done with `m` and everything before it in its partition: a restarted member of
    /// the group starts after it (Kafka: within a second, or at once on a clean close).
    pub async fn commit(&mut self, m: &Received) -> Result<(), BusError> {
        match self {
            Subscriber::Kafka(c) => {
                // Stores `m.offset + 1`, committed with the next automatic commit.
                c.store_offset(&m.topic, m.partition, m.offset)?;
                Ok(())
            }
            Subscriber::Log(l) => l.commit(m).await,
        }
    }

    /// Read `m` (and what follows it) again.
    pub async fn seek(&mut self, m: &Received) -> Result<(), BusError> {
        match self {
            Subscriber::Kafka(c) => {
                c.seek(
                    &m.topic,
                    m.partition,
                    Offset::Offset(m.offset),
                    Duration::from_secs(5),
                )?;
                Ok(())
            }
            Subscriber::Log(l) => {
                l.seek(m);
                Ok(())
            }
        }
    }
}

/// What a handler made of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Done: commit it.
    Done,
    /// Not now: read it again after a backoff.
    Retry,
}

/// How long to wait before reading a message again: `initial`, doubling on every
/// further retry up to `max`, back to `initial` after a message is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

/// What [`Subscriber::consume`] hands each message to.
pub trait Handler {
    fn handle(&mut self, m: &Received) -> impl std::future::Future<Output = Handled> + Send;
}

impl Subscriber {
    /// Hands every message to `handler` until `stop` turns true (or its sender is gone):
    /// commits after [`Handled::Done`]; after [`Handled::Retry`] waits and hands the SAME
    /// message again, so nothing after it is read first. No seek back: a seek that fails
    /// (the broker restarting) would let the consumer go on past the message, which is
    /// how a read model once lost an event. A receive error waits `backoff.initial`.
    pub async fn consume(
        &mut self,
        stop: &mut tokio::sync::watch::Receiver<bool>,
        backoff: Backoff,
        handler: &mut impl Handler,
    ) {
        loop {
            let m = tokio::select! {
                m = self.recv() => m,
                _ = stop.wait_for(|s| *s) => return,
            };
            let m = match m {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "consumer error");
                    tokio::select! {
                        () = tokio::time::sleep(backoff.initial) => {}
                        _ = stop.wait_for(|s| *s) => return,
                    }
                    continue;
                }
            };
            let mut wait = backoff.initial;
            while handler.handle(&m).await == Handled::Retry {
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                wait = (wait * 2).min(backoff.max);
            }
            if let Err(e) = self.commit(&m).await {
                // Not fatal: the message comes again; handlers are idempotent.
                tracing::warn!(error = %e, "offset commit failed");
            }
        }
    }
}

const LOG_SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS bus_messages (
        topic       TEXT NOT NULL,
        position    INTEGER NOT NULL,
        message_key BLOB NOT NULL,
        payload     BLOB NOT NULL,
        appended_at TEXT NOT NULL,
        PRIMARY KEY (topic, position)
    ) STRICT",
    "CREATE TABLE IF NOT EXISTS bus_group_offsets (
        group_id    TEXT NOT NULL,
        topic       TEXT NOT NULL,
        next_offset INTEGER NOT NULL,
        PRIMARY KEY (group_id, topic)
    ) STRICT",
];

/// How long a subscriber sleeps when the log has nothing new and no in-process append
/// woke it (another process may append).
const LOG_POLL: Duration = Duration::from_millis(200);
const LOG_BATCH: i64 = 200;

/// The embedded log: one SQLite file, shared by every publisher and subscriber of the
/// process that opened it (appends wake subscribers at once).
#[derive(Clone)]
pub struct Log {
    url: String,
    db: Db,
    appended: Arc<Notify>,
}

impl Log {
    /// Opens (creating) the log at `url`; one `Log` per URL per process.
    pub async fn open(url: &str) -> Result<Log, sqlx::Error> {
        static OPEN: OnceLock<Mutex<HashMap<String, Log>>> = OnceLock::new();
        let open = OPEN.get_or_init(Default::default);
        if let Some(l) = open.lock().unwrap_or_else(|p| p.into_inner()).get(url) {
            return Ok(l.clone());
        }
        let db = Db::connect(
            url,
            &sql::ConnectOptions {
                max_connections: 4,
                ..Default::default()
            },
            None,
        )
        .await?;
        for ddl in LOG_SCHEMA {
            sql::query(*ddl).execute(&db).await?;
        }
        let log = Log {
            url: url.to_string(),
            db,
            appended: Arc::new(Notify::new()),
        };
        Ok(open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(url.to_string())
            .or_insert(log)
            .clone())
    }

    /// Appends `batch` in one transaction: all or nothing, in order.
    async fn append(&self, batch: &[Outgoing<'_>]) -> Result<(), sqlx::Error> {
        if batch.is_empty() {
            return Ok(());
        }
        let now = Utc::now();
        let mut tx = self.db.begin().await?;
        for m in batch {
            sql::query(
                "INSERT INTO bus_messages (topic, position, message_key, payload, appended_at) \
                 SELECT $1, COALESCE(MAX(position) + 1, 0), $2, $3, $4 FROM bus_messages WHERE topic = $1",
            )
            .bind(m.topic)
            .bind(m.key)
            .bind(m.payload)
            .bind(now)
            .execute(&mut tx)
            .await?;
        }
        tx.commit().await?;
        self.appended.notify_waiters();
        Ok(())
    }

    /// The number of messages in `topic` (for tests and status).
    pub async fn len(&self, topic: &str) -> Result<i64, sqlx::Error> {
        sql::query("SELECT COUNT(*) AS n FROM bus_messages WHERE topic = $1")
            .bind(topic)
            .fetch_one(&self.db)
            .await?
            .i64("n")
    }
}

pub struct LogSubscriber {
    log: Log,
    group: String,
    /// Per topic: the offset of the next message to read.
    next: Vec<(String, i64)>,
    buffered: VecDeque<Received>,
}

impl LogSubscriber {
    async fn new(log: Log, group: &str, topics: &[&str]) -> Result<LogSubscriber, sqlx::Error> {
        let mut next = Vec::with_capacity(topics.len());
        for t in topics {
            let committed = sql::query(
                "SELECT next_offset FROM bus_group_offsets WHERE group_id = $1 AND topic = $2",
            )
            .bind(group)
            .bind(*t)
            .fetch_optional(&log.db)
            .await?
            .map(|r| r.i64("next_offset"))
            .transpose()?;
            next.push((t.to_string(), committed.unwrap_or(0)));
        }
        Ok(LogSubscriber {
            log,
            group: group.to_string(),
            next,
            buffered: VecDeque::new(),
        })
    }

    async fn recv(&mut self) -> Result<Received, BusError> {
        loop {
            if let Some(m) = self.buffered.pop_front() {
                if let Some(n) = self.next.iter_mut().find(|(t, _)| *t == m.topic) {
                    n.1 = m.offset + 1;
                }
                return Ok(m);
            }
            // Registered before the read, so an append right after it still wakes us.
            let appended = self.log.appended.notified();
            tokio::pin!(appended);
            appended.as_mut().enable();
            for (topic, from) in &self.next {
                let rows = sql::query(
                    "SELECT position, message_key, payload FROM bus_messages \
                     WHERE topic = $1 AND position >= $2 ORDER BY position LIMIT $3",
                )
                .bind(topic)
                .bind(*from)
                .bind(LOG_BATCH)
                .fetch_all(&self.log.db)
                .await?;
                for r in rows {
                    self.buffered.push_back(Received {
                        topic: topic.clone(),
                        partition: 0,
                        offset: r.i64("position")?,
                        key: r.bytes("message_key")?,
                        payload: r.bytes("payload")?,
                    });
                }
            }
            if self.buffered.is_empty() {
                tokio::select! {
                    () = &mut appended => {}
                    () = tokio::time::sleep(LOG_POLL) => {}
                }
            }
        }
    }

    async fn commit(&mut self, m: &Received) -> Result<(), BusError> {
        sql::query(
            "INSERT INTO bus_group_offsets (group_id, topic, next_offset) VALUES ($1, $2, $3) \
             ON CONFLICT (group_id, topic) DO UPDATE \
             SET next_offset = MAX(bus_group_offsets.next_offset, excluded.next_offset)",
        )
        .bind(&self.group)
        .bind(&m.topic)
        .bind(m.offset + 1)
        .execute(&self.log.db)
        .await?;
        Ok(())
    }

    fn seek(&mut self, m: &Received) {
        self.buffered.clear();
        if let Some(n) = self.next.iter_mut().find(|(t, _)| *t == m.topic) {
            n.1 = m.offset;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out<'a>(topic: &'a str, key: &'a str, payload: &'a str) -> Outgoing<'a> {
        Outgoing {
            topic,
            key: key.as_bytes(),
            payload: payload.as_bytes(),
        }
    }

    #[tokio::test]
    async fn bare_broker_lists_and_kafka_urls_are_kafka() {
        let b = Bus::connect("127.0.0.1:59092").await.expect("bare");
        assert!(matches!(b, Bus::Kafka { ref brokers } if brokers == "127.0.0.1:59092"));
        let b = Bus::connect("kafka://a:1,b:2").await.expect("kafka url");
        assert!(matches!(b, Bus::Kafka { ref brokers } if brokers == "a:1,b:2"));
        assert!(matches!(
            Bus::connect("amqp://x").await,
            Err(BusError::Url(_))
        ));
        assert!(matches!(
            Bus::connect("kafka://").await,
            Err(BusError::Url(_))
        ));
    }

    #[tokio::test]
    async fn log_delivers_in_order_and_resumes_from_the_committed_offset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}/bus.db", dir.path().display());
        let bus = Bus::connect(&url).await.expect("log");
        let publisher = bus.publisher(Duration::from_secs(1)).expect("publisher");
        let p = publisher
            .publish(&[
                out("a", "k1", "one"),
                out("b", "k2", "x"),
                out("a", "k1", "two"),
            ])
            .await;
        assert_eq!(p.acknowledged, 3);
        assert!(p.error.is_none());

        let mut sub = bus.subscriber("g", None, &["a"]).await.expect("subscriber");
        let first = sub.recv().await.expect("first");
        assert_eq!((first.offset, first.payload.as_slice()), (0, &b"one"[..]));
        sub.commit(&first).await.expect("commit");
        let second = sub.recv().await.expect("second");
        assert_eq!((second.offset, second.key.as_slice()), (1, &b"k1"[..]));
        // Not committed: seek back reads it again.
        sub.seek(&second).await.expect("seek");
        assert_eq!(sub.recv().await.expect("again"), second);

        // A new member of the group starts after the last commit; another group at 0.
        let mut again = bus
            .subscriber("g", None, &["a"])
            .await
            .expect("resubscribe");
        assert_eq!(again.recv().await.expect("resumed").offset, 1);
        let mut other = bus
            .subscriber("h", None, &["a", "b"])
            .await
            .expect("other group");
        let mut seen = Vec::new();
        for _ in 0..3 {
            let m = other.recv().await.expect("other");
            seen.push((m.topic, m.offset));
        }
        seen.sort();
        assert_eq!(
            seen,
            vec![("a".into(), 0), ("a".into(), 1), ("b".into(), 0)]
        );
    }

    #[tokio::test]
    async fn a_waiting_subscriber_wakes_on_append() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}/bus.db", dir.path().display());
        let bus = Bus::connect(&url).await.expect("log");
        let mut sub = bus.subscriber("g", None, &["t"]).await.expect("subscriber");
        let waiting = tokio::spawn(async move { sub.recv().await.map(|m| m.payload) });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let p = bus
            .publisher(Duration::from_secs(1))
            .expect("publisher")
            .publish(&[out("t", "k", "late")])
            .await;
        assert_eq!(p.acknowledged, 1);
        let got = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("woken")
            .expect("joined")
            .expect("received");
        assert_eq!(got, b"late");
    }

    #[tokio::test]
    async fn concurrent_publishers_never_share_an_offset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}/bus.db", dir.path().display());
        let bus = Bus::connect(&url).await.expect("log");
        let mut tasks = Vec::new();
        for w in 0..8 {
            let publisher = bus.publisher(Duration::from_secs(1)).expect("publisher");
            tasks.push(tokio::spawn(async move {
                for i in 0..20 {
                    let payload = format!("{w}-{i}");
                    let p = publisher.publish(&[out("t", "k", &payload)]).await;
                    assert_eq!(p.acknowledged, 1, "{:?}", p.error);
                }
            }));
        }
        for t in tasks {
            t.await.expect("writer");
        }
        let Bus::Log(log) = &bus else { unreachable!() };
        assert_eq!(log.len("t").await.expect("len"), 160);
        let mut sub = bus.subscriber("g", None, &["t"]).await.expect("subscriber");
        for expected in 0..160 {
            assert_eq!(sub.recv().await.expect("recv").offset, expected);
        }
    }
}
