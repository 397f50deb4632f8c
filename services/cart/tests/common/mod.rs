//! Shared by the integration tests: the real PostgreSQL, Kafka and FerretDB of the
//! repository's infra harness (started here; a missing server fails, never skips), a
//! fresh event store (Mongo database, PostgreSQL database or SQLite file), read
//! database (PostgreSQL or SQLite) and Kafka topic per test, and the check that the
//! read model equals the fold of the event store.
#![allow(dead_code)]

pub mod procs;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use cart_service::Cart;
use keel::RequestContext;
#[allow(unused_imports)]
pub use keel::es::RawEvent;
use keel::es::command::{Checks, Executed, Executor};
#[allow(unused_imports)]
pub use keel::es::handler::HandlerConfig;
#[allow(unused_imports)]
pub use keel::es::relay::{PrefixReader, RelayConfig};
#[allow(unused_imports)]
pub use keel::es::store::{Appended, Commit, EventStore, NewCommit};
#[allow(unused_imports)]
pub use keel::es::subscriber::SubscriberConfig;
#[allow(unused_imports)]
pub use keel::es::tail::TailConfig;
use keel::sql::{self, ConnectOptions, Db, Dialect};
use keel::testing::{self, infra_up, infra_var};
use prost::Message as _;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message as _;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use shop_cart::CartDecider;
use shop_cart::{CartAggregate, pb};
use uuid::Uuid;

/// The runtime's pieces over the cart's generated types and hand-written aggregate.
pub type ReadModel = shop_cart::CartReadModel<Cart>;
pub type Projector = keel::es::view::Projector<ReadModel>;
pub type CartQueries = shop_cart::CartQueryHandlers<Cart>;
pub type Relay = keel::es::relay::Relay<shop_cart::CartEvent>;
pub type StoreTailer = keel::es::tail::StoreTailer<shop_cart::CartEvent, Projector>;

/// The products that exist for a test (`None`: every product).
pub struct FixedCatalog(pub Option<std::collections::HashSet<Uuid>>);

/// The product check over a [`FixedCatalog`] (the service's own asks the product
/// service; the e2e tests run that one).
#[derive(Clone)]
pub struct KnownProducts(Arc<FixedCatalog>);

impl Checks<CartDecider<Cart>> for KnownProducts {
    async fn check(
        &self,
        _ctx: &RequestContext,
        _state: &Cart,
        command: &shop_cart::CartCommand,
    ) -> Result<(), keel::ServiceError> {
        match (command, &self.0.0) {
            (shop_cart::CartCommand::AddProduct(add), Some(known))
                if !known.contains(&add.product_id) =>
            {
                Err(keel::ServiceError::not_found("product", add.product_id))
            }
            _ => Ok(()),
        }
    }
}

/// The command side as the tests drive it: the runtime's executor over the cart.
#[derive(Clone)]
pub struct CartCommands {
    executor: Executor<CartDecider<Cart>, KnownProducts>,
}

impl CartCommands {
    pub fn new(store: EventStore, catalog: Arc<FixedCatalog>) -> CartCommands {
        CartCommands {
            executor: Executor::new(store, KnownProducts(catalog)),
        }
    }

    pub fn with_conflict_retries(mut self, retries: u32) -> CartCommands {
        self.executor = self.executor.with_conflict_retries(retries);
        self
    }

    pub fn store(&self) -> &EventStore {
        self.executor.store()
    }

    pub fn executor(&self) -> &Executor<CartDecider<Cart>, KnownProducts> {
        &self.executor
    }

    /// The generated use cases of `CartCommandService` on this executor.
    pub fn handlers(&self) -> shop_cart::CartCommandHandlers<Cart, KnownProducts> {
        shop_cart::CartCommandHandlers {
            executor: self.executor.clone(),
        }
    }

    pub async fn load(&self, cart: Uuid) -> Result<(Cart, i64, Vec<Commit>), keel::ServiceError> {
        self.executor.load(cart).await
    }

    pub async fn execute<'k>(
        &self,
        ctx: &RequestContext,
        key: impl Into<Option<&'k str>>,
        expected_version: Option<i64>,
        command: &shop_cart::CartCommand,
    ) -> Result<Executed, keel::ServiceError> {
        self.executor
            .execute(ctx, key.into(), expected_version, command)
            .await
    }
}

/// The commit id the executor derives for `command` on `cart` under `key`.
pub fn commit_id(command: &shop_cart::CartCommand, cart: Uuid, key: Option<&str>) -> Uuid {
    keel::es::command::commit_id::<CartDecider<Cart>>(cart, command, key)
}

/// Serves `CartCommandService` (health, reflection) on `commands` until `shutdown`.
pub async fn serve_command(
    commands: CartCommands,
    incoming: tonic::transport::server::TcpIncoming,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    keel::server::grpc_router(
        &["shop.cart.v1.CartCommandService"],
        &[shop_cart::FILE_DESCRIPTOR_SET],
    )
    .await?
    .add_service(shop_cart::cart_command_server(Arc::new(
        commands.handlers(),
    )))
    .serve_with_incoming_shutdown(incoming, shutdown)
    .await?;
    Ok(())
}

/// Runs the cart's subscriptions (the service's own decision) on `commands`.
pub async fn run_subscriber(
    commands: CartCommands,
    bus: keel::bus::Bus,
    config: SubscriberConfig,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let reaction = shop_cart::CartOnUserEvents(cart_service::Subscriptions::new(commands.store()));
    keel::es::subscriber::run_subscriber(commands.executor().clone(), reaction, bus, config, stop)
        .await?;
    Ok(())
}

/// A cart as the read model holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CartView {
    pub id: Uuid,
    pub customer_id: Option<Uuid>,
    pub version: i64,
    pub items: BTreeMap<Uuid, i32>,
}

/// One cart from the read model (the runtime's `view::load`); `None` when it was never
/// projected or is deleted.
pub async fn load_view(db: &Db, id: Uuid) -> Result<Option<CartView>, keel::ServiceError> {
    let Some((cart, version)) = keel::es::view::load::<ReadModel>(db, id).await? else {
        return Ok(None);
    };
    let uuid = |s: &str| Uuid::parse_str(s).expect("a UUID in the read model");
    Ok(Some(CartView {
        id,
        customer_id: cart.customer_id.as_deref().map(uuid),
        version,
        items: cart
            .items
            .iter()
            .map(|i| (uuid(&i.product_id), i.quantity))
            .collect(),
    }))
}

/// The version at which a cart was deleted from the read model, if it was.
pub async fn deleted_at(db: &Db, id: Uuid) -> Result<Option<i64>, keel::ServiceError> {
    sql::query("SELECT version FROM cart_deletions WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await
        .and_then(|r| r.map(|r| r.i64("version")).transpose())
        .map_err(keel::db::error)
}

pub struct Infra {
    pub brokers: String,
    pub mongo_url: String,
}

/// Starts (or finds running) PostgreSQL, Kafka and FerretDB once per test binary.
pub fn infra() -> &'static Infra {
    static INFRA: OnceLock<Infra> = OnceLock::new();
    INFRA.get_or_init(|| {
        infra_up(&["postgres", "kafka", "mongo"]);
        Infra {
            brokers: infra_var("KAFKA_BOOTSTRAP_SERVERS"),
            mongo_url: infra_var("MONGO_URL"),
        }
    })
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", Uuid::now_v7().simple())
}

pub fn ctx(request_id: &str) -> RequestContext {
    RequestContext {
        request_id: request_id.to_string(),
        correlation_id: format!("corr-{request_id}"),
    }
}

/// An event store of its own: a Mongo database (dropped with this value), or the SQL
/// store in a fresh PostgreSQL database or SQLite file.
pub struct TestStore {
    pub name: String,
    pub store: EventStore,
    /// The SQL store's database, kept alive (and removed) with this value.
    pub sql: Option<testing::TestStore>,
}

impl TestStore {
    /// On the MongoDB wire (FerretDB).
    pub async fn create() -> TestStore {
        let infra = infra();
        let name = unique("cart_test");
        let store = EventStore::connect(&infra.mongo_url, &name, shop_cart::EVENT_STORE)
            .await
            .expect("connecting to the event store");
        store.ensure_indexes().await.expect("creating the indexes");
        TestStore {
            name,
            store,
            sql: None,
        }
    }

    /// In SQL: a fresh PostgreSQL database of the harness, or a SQLite file.
    pub async fn create_sql(dialect: Dialect) -> TestStore {
        if dialect == Dialect::Postgres {
            infra();
        }
        let db = testing::TestStore::create(dialect, "cart_events").await;
        let store = EventStore::connect_with(
            db.url(),
            "ignored",
            shop_cart::EVENT_STORE,
            &ConnectOptions {
                max_connections: 20,
                ..Default::default()
            },
        )
        .await
        .expect("connecting to the SQL event store");
        assert!(store.sql().is_some(), "{} is a SQL store", db.url());
        store.ensure_indexes().await.expect("preparing the store");
        TestStore {
            name: db.url().to_string(),
            store,
            sql: Some(db),
        }
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if self.sql.is_some() {
            return;
        }
        let (url, name) = (infra().mongo_url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                if let Ok(c) = mongodb::Client::with_uri_str(&url).await {
                    let _ = c.database(&name).drop().await;
                }
            })
        })
        .join();
    }
}

/// Where a test's event store lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Mongo,
    Postgres,
    Sqlite,
}

/// Every event store backend: the store's contract tests run on each.
pub const BACKENDS: [Backend; 3] = [Backend::Mongo, Backend::Postgres, Backend::Sqlite];

impl TestStore {
    pub async fn on(backend: Backend) -> TestStore {
        match backend {
            Backend::Mongo => TestStore::create().await,
            Backend::Postgres => TestStore::create_sql(Dialect::Postgres).await,
            Backend::Sqlite => TestStore::create_sql(Dialect::Sqlite).await,
        }
    }
}

/// A fresh read database with the read model's tables.
pub struct ReadDb {
    pub db: testing::TestStore,
    pub pool: Db,
}

impl ReadDb {
    /// On the harness's PostgreSQL.
    pub async fn create() -> ReadDb {
        ReadDb::create_in(Dialect::Postgres).await
    }

    pub async fn create_in(dialect: Dialect) -> ReadDb {
        if dialect == Dialect::Postgres {
            infra();
        }
        let db = testing::TestStore::create(dialect, "cart_read").await;
        let pool = Db::open(
            db.url(),
            &ConnectOptions {
                max_connections: 20,
                ..Default::default()
            },
            &shop_cart::READ_MIGRATIONS,
        )
        .await
        .expect("preparing the read model");
        ReadDb { db, pool }
    }

    pub fn url(&self) -> &str {
        self.db.url()
    }
}

/// Every commit of the store, in position order, checking the positions are 1..=max.
pub async fn all_commits(store: &EventStore) -> Vec<Commit> {
    let mut out: Vec<Commit> = Vec::new();
    loop {
        let after = out.last().map(|c| c.position).unwrap_or(0);
        let batch = store
            .read_after(after, 1000)
            .await
            .expect("reading commits");
        if batch.is_empty() {
            break;
        }
        out.extend(batch);
    }
    for (i, c) in out.iter().enumerate() {
        assert_eq!(
            c.position,
            i as i64 + 1,
            "positions are 1..=max without holes"
        );
    }
    out
}

/// The fold of the event store per cart: (state, version).
pub async fn store_fold(store: &EventStore) -> BTreeMap<Uuid, (Cart, i64)> {
    let mut carts: BTreeMap<Uuid, (Cart, i64)> = BTreeMap::new();
    for c in all_commits(store).await {
        let (state, version) = carts.entry(c.stream_id).or_default();
        assert_eq!(
            c.rev_from,
            *version + 1,
            "cart {} commit {}",
            c.stream_id,
            c.commit_seq
        );
        for e in &c.events {
            assert_eq!(e.meta.version, *version + 1, "versions are gap-free");
            state.apply(&e.decode::<shop_cart::CartEvent>().expect("decodes"));
            *version = e.meta.version;
        }
        assert_eq!(c.rev_to, *version);
    }
    carts
}

/// Differences between the read model and the fold of the store (empty: equal).
pub async fn read_model_diff(store: &EventStore, pool: &Db) -> Vec<String> {
    let folded = store_fold(store).await;
    let mut diff = Vec::new();
    let rows: i64 = sql::query("SELECT count(*) AS n FROM carts")
        .fetch_one(pool)
        .await
        .and_then(|r| r.i64("n"))
        .expect("count");
    let live = folded.values().filter(|(c, _)| c.is_live()).count() as i64;
    if rows != live {
        diff.push(format!(
            "{rows} carts in the read model, {live} live in the store"
        ));
    }
    for (id, (state, version)) in &folded {
        let view = load_view(pool, *id).await.expect("reading the view");
        let deleted = deleted_at(pool, *id).await.expect("reading deletions");
        if state.deleted {
            if view.is_some() || deleted != Some(*version) {
                diff.push(format!(
                    "cart {id}: deleted at {version}, read model {view:?} / {deleted:?}"
                ));
            }
            continue;
        }
        let expected = CartView {
            id: *id,
            customer_id: state.customer_id,
            version: *version,
            items: state.items.clone(),
        };
        if view.as_ref() != Some(&expected) {
            diff.push(format!(
                "cart {id}: store {expected:?}, read model {view:?}"
            ));
        }
    }
    diff
}

/// Waits until the read model equals the fold of the store, or fails with the diff.
pub async fn wait_read_model_matches(store: &EventStore, pool: &Db, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let diff = read_model_diff(store, pool).await;
        if diff.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "read model differs from the event store after {timeout:?} ({} carts):\n{}",
            diff.len(),
            diff.iter().take(10).cloned().collect::<Vec<_>>().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Reads `topic` from the beginning to its current end and decodes every message.
pub async fn consume_all(topic: &str, timeout: Duration) -> Vec<(String, pb::CartEvent)> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &infra().brokers)
        .set("group.id", unique("cart-test-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .unwrap_or_default();
    assert!(!partitions.is_empty(), "topic {topic} has no partitions");
    let mut unread: HashMap<i32, i64> = HashMap::new();
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(5))
            .expect("watermarks");
        if high > low {
            unread.insert(p, high);
        }
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("offset");
    }
    consumer.assign(&tpl).expect("assign");
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    while !unread.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "topic not read to its end: {unread:?}");
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
                let e = pb::CartEvent::decode(m.payload().unwrap_or_default())
                    .expect("a protobuf CartEvent");
                seen.push((key, e));
            }
        }
    }
    seen
}
