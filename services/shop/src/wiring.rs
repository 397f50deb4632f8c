//! Each deployable of the spec, configured for embedded storage, on its own loopback
//! port. The configurations are built in code (not from flags or the environment), so
//! a `DATABASE_URL` or `KAFKA_BROKERS` exported in the user's shell cannot leak in.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tonic::transport::server::TcpIncoming;

use crate::Addresses;

/// Every deployable `shop up` runs, named as the spec's layout names them (a test
/// compares this with the spec).
pub const DEPLOYABLES: &[&str] = &[
    "bff",
    "product",
    "order",
    "user",
    "cart-command",
    "cart-query",
    "cart-event-handler",
];

/// Where the embedded shop keeps things and where its parts listen.
pub struct Embedded<'a> {
    /// `sqlite://…` URL of a file in the data folder.
    pub url: &'a dyn Fn(&str) -> String,
    pub addresses: &'a Addresses,
}

impl Embedded<'_> {
    fn grpc_url(&self, deployable: &str) -> String {
        format!("http://{}", self.addresses.grpc[deployable])
    }

    fn listen(&self, deployable: &str) -> SocketAddr {
        self.addresses.grpc[deployable]
    }
}

type Tasks = JoinSet<(&'static str, anyhow::Result<()>)>;

const STARTUP_TIMEOUT_SECS: u64 = 30;
/// SQLite serialises writers; a few connections per file are plenty.
const MAX_CONNECTIONS: u32 = 4;

pub fn spawn(
    tasks: &mut Tasks,
    at: &Embedded<'_>,
    mut incoming: BTreeMap<&'static str, TcpIncoming>,
    graphql: tokio::net::TcpListener,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut take = |name: &str| {
        incoming
            .remove(name)
            .with_context(|| format!("no port bound for {name}"))
    };

    let product = product_service::Config {
        listen: at.listen("product"),
        database_url: (at.url)("product.db"),
        max_connections: MAX_CONNECTIONS,
        startup_timeout_secs: STARTUP_TIMEOUT_SECS,
    };
    tasks.spawn(named(
        "product",
        product_service::run(product, take("product")?, stop.clone()),
    ));

    let order = order_service::Config {
        listen: at.listen("order"),
        database_url: (at.url)("order.db"),
        max_connections: MAX_CONNECTIONS,
        startup_timeout_secs: STARTUP_TIMEOUT_SECS,
        product_url: at.grpc_url("product"),
        cart_command_url: at.grpc_url("cart-command"),
        recovery_interval_secs: 5,
        recovery_after_secs: 10,
        recovery_batch: 100,
    };
    tasks.spawn(named(
        "order",
        order_service::run(order, take("order")?, stop.clone()),
    ));

    let user = user_service::Config {
        mode: user_service::Mode::Serve,
        listen: at.listen("user"),
        database_url: (at.url)("user.db"),
        max_connections: MAX_CONNECTIONS,
        bus_url: Some((at.url)("bus.db")),
        kafka_brokers: String::new(),
        topic_partitions: 1,
        relay: true,
        relay_poll_ms: 50,
        relay_batch: 100,
        startup_timeout_secs: STARTUP_TIMEOUT_SECS,
        shutdown_timeout_secs: 10,
    };
    tasks.spawn(named(
        "user",
        user_service::run(user, take("user")?, stop.clone()),
    ));

    // The cart: its command side (with the relay to the cart topic and the user-events
    // subscriber), its query side, and the event handler that projects the cart topic
    // into the read model: production's shape, every queue on the embedded log.
    let cart = |role: cart_service::Role, name: &str| cart_service::Config {
        role,
        listen: Some(at.listen(name)),
        event_store_url: Some((at.url)("cart-events.db")),
        database_url: Some((at.url)("cart-read.db")),
        bus_url: Some((at.url)("bus.db")),
        max_connections: MAX_CONNECTIONS,
        product_url: at.grpc_url("product"),
        cart_topic_partitions: 1,
        relay_poll_ms: 20,
        startup_timeout_secs: STARTUP_TIMEOUT_SECS,
        ..cart_service::Config::default()
    };
    for (role, name) in [
        (cart_service::Role::Command, "cart-command"),
        (cart_service::Role::Query, "cart-query"),
        (cart_service::Role::EventHandler, "cart-event-handler"),
    ] {
        let name: &'static str = DEPLOYABLES
            .iter()
            .copied()
            .find(|d| *d == name)
            .context("a cart deployable")?;
        tasks.spawn(named(
            name,
            cart_service::run(cart(role, name), take(name)?, stop.clone()),
        ));
    }

    let bff = bff::Config {
        listen: graphql.local_addr()?,
        upstreams: bff::UpstreamConfig {
            product_url: at.grpc_url("product"),
            order_url: at.grpc_url("order"),
            cart_command_url: at.grpc_url("cart-command"),
            cart_query_url: at.grpc_url("cart-query"),
            user_url: at.grpc_url("user"),
            ..bff::UpstreamConfig::default()
        },
        limits: bff::Limits::default(),
    };
    let mut bff_stop = stop.clone();
    tasks.spawn(named(
        "bff",
        bff::serve_on(bff, graphql, async move {
            shop_kit::server::stopped(&mut bff_stop).await;
        }),
    ));
    Ok(())
}

async fn named(
    name: &'static str,
    run: impl std::future::Future<Output = anyhow::Result<()>>,
) -> (&'static str, anyhow::Result<()>) {
    (name, run.await)
}
