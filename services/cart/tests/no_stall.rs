//! Nothing the read model cannot apply stalls it: a version gap (an event lost on the
//! way, or a read database that lost a commit in a crash) is filled from the event
//! store; what still cannot be applied (an undecodable message, a version the store does
//! not have) is parked with its reason while every other stream goes on; `repair`
//! applies it once it can. On PostgreSQL and on SQLite, and through the event handler
//! on the embedded bus.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::load_view;
use common::{CartCommands, FixedCatalog, HandlerConfig, Projector};
use common::{ReadDb, TestStore, ctx, read_model_diff, unique};
use keel::bus::{Bus, Outgoing};
use keel::es::Projected;
use keel::sql::Dialect;
use prost::Message as _;
use shop_cart::{AddProduct, CartCommand, CartEvent, ChangeProductQuantity, EventMeta};
use uuid::Uuid;

fn add(cart: Uuid, product: u128, quantity: i32) -> CartCommand {
    CartCommand::AddProduct(AddProduct {
        cart_id: cart,
        product_id: Uuid::from_u128(product),
        quantity,
    })
}

/// The stored events of one cart, in version order.
async fn stored(t: &TestStore, cart: Uuid) -> Vec<(EventMeta, CartEvent)> {
    let commits = t.store.load(cart).await.expect("load");
    commits
        .iter()
        .flat_map(|c| c.decode::<CartEvent>().expect("decodes"))
        .collect()
}

async fn run(cmds: &CartCommands, command: CartCommand) {
    let key = Uuid::now_v7().to_string();
    cmds.execute(&ctx(&key), key.as_str(), None, &command)
        .await
        .expect("command");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gaps_are_filled_from_the_store_and_the_rest_is_parked_then_repaired() {
    for d in [Dialect::Postgres, Dialect::Sqlite] {
        gaps_filled_and_parked_on(d).await;
    }
}

async fn gaps_filled_and_parked_on(d: Dialect) {
    let t = TestStore::create_sql(d).await;
    let db = ReadDb::create_in(d).await;
    let cmds = CartCommands::new(t.store.clone(), Arc::new(FixedCatalog(None)));
    let p = Projector::new(db.pool.clone()).with_store(t.store.clone());

    // Cart A: three versions stored, only the first reaches the read model, then the
    // third arrives: the second is read from the store.
    let a = Uuid::now_v7();
    run(&cmds, add(a, 1, 1)).await;
    run(&cmds, add(a, 2, 1)).await;
    run(
        &cmds,
        CartCommand::ChangeProductQuantity(ChangeProductQuantity {
            cart_id: a,
            product_id: Uuid::from_u128(1),
            quantity: 5,
        }),
    )
    .await;
    let events = stored(&t, a).await;
    assert_eq!(events.len(), 3);
    assert_eq!(
        p.project(&events[0].0, &events[0].1, "test")
            .await
            .expect("v1"),
        Projected::Applied
    );
    assert_eq!(
        p.project(&events[2].0, &events[2].1, "test")
            .await
            .expect("v3"),
        Projected::Filled { from: 2, to: 3 }
    );
    let view = load_view(&db.pool, a).await.expect("view").expect("cart a");
    assert_eq!(view.version, 3);
    assert_eq!(view.items[&Uuid::from_u128(1)], 5);
    assert_eq!(view.items[&Uuid::from_u128(2)], 1);

    // Cart B: its version 2 arrives before the store has version 1 (a copy restored
    // from a backup, a message from another environment): parked, not retried forever.
    let b = Uuid::now_v7();
    let ahead = EventMeta {
        event_id: Uuid::now_v7(),
        stream_id: b,
        version: 2,
        occurred_at: chrono::Utc::now(),
        correlation_id: "c".into(),
        causation_id: "x".into(),
    };
    let ahead_event = CartEvent::ProductAdded(shop_cart::ProductAdded {
        product_id: Uuid::from_u128(3),
        quantity: 1,
    });
    assert_eq!(
        p.project(&ahead, &ahead_event, "test").await.expect("b v2"),
        Projected::Parked
    );
    assert_eq!(p.parked().await.expect("parked"), 1);
    // Other streams go on.
    let c = Uuid::now_v7();
    run(&cmds, add(c, 1, 2)).await;
    let (m, e) = stored(&t, c).await.remove(0);
    assert_eq!(
        p.project(&m, &e, "test").await.expect("c"),
        Projected::Applied
    );
    // Repair cannot apply it yet.
    assert_eq!(p.repair().await.expect("repair"), (0, 1));

    // The store gets cart B's history; repair fills the gap and applies the parked event.
    run(&cmds, add(b, 3, 1)).await;
    run(&cmds, add(b, 3, 1)).await;
    assert_eq!(p.repair().await.expect("repair"), (1, 0));
    assert_eq!(p.parked().await.expect("parked"), 0);
    assert_eq!(
        read_model_diff(&t.store, &db.pool).await,
        Vec::<String>::new(),
        "the read model equals the fold of the store ({d:?})"
    );
}

/// On the bus: an undecodable message and an event whose predecessor never came do not
/// hold up the partition; the events behind them are applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_handler_parks_what_it_cannot_apply_and_goes_on() {
    let t = TestStore::create_sql(Dialect::Sqlite).await;
    let db = ReadDb::create_in(Dialect::Sqlite).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let bus = Bus::connect(&format!("sqlite://{}/bus.db", dir.path().display()))
        .await
        .expect("embedded bus");
    let topic = unique("cart-test-parking");
    let cmds = CartCommands::new(t.store.clone(), Arc::new(FixedCatalog(None)));

    // Cart A's three versions are stored; only version 3 travels (1 and 2 were lost on
    // the way). Then garbage, then cart B's first event.
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    for q in [1, 2, 3] {
        run(&cmds, add(a, 1, q)).await;
    }
    run(&cmds, add(b, 2, 4)).await;
    let a3 = stored(&t, a).await.remove(2);
    let b1 = stored(&t, b).await.remove(0);
    let payloads = [
        a3.1.to_envelope(&a3.0).encode_to_vec(),
        b"not a protobuf envelope \xff\xff".to_vec(),
        b1.1.to_envelope(&b1.0).encode_to_vec(),
    ];
    let keys = [a.to_string(), "garbage".into(), b.to_string()];
    let batch: Vec<Outgoing<'_>> = payloads
        .iter()
        .zip(&keys)
        .map(|(payload, key)| Outgoing {
            topic: &topic,
            key: key.as_bytes(),
            payload,
        })
        .collect();
    let published = bus
        .publisher(Duration::from_secs(5))
        .expect("publisher")
        .publish(&batch)
        .await;
    assert_eq!(published.acknowledged, 3, "{:?}", published.error);

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let projector = Projector::new(db.pool.clone()).with_store(t.store.clone());
    let handler = tokio::spawn(keel::es::handler::run_event_handler(
        projector.clone(),
        bus.clone(),
        HandlerConfig {
            topic: topic.clone(),
            group: unique("cart-test-handler"),
            ..HandlerConfig::default()
        },
        stopped,
    ));
    let deadline = Instant::now() + Duration::from_secs(20);
    while load_view(&db.pool, b).await.expect("view").is_none() {
        assert!(
            Instant::now() < deadline,
            "cart B never projected: the handler stalled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(true);
    handler.await.expect("join").expect("handler");
    let view = load_view(&db.pool, a).await.expect("view").expect("cart a");
    assert_eq!(
        (view.version, view.items[&Uuid::from_u128(1)]),
        (3, 6),
        "versions 1 and 2 were read from the store"
    );
    assert_eq!(projector.parked().await.expect("parked"), 1, "the garbage");
    assert_eq!(
        read_model_diff(&t.store, &db.pool).await,
        Vec::<String>::new()
    );
}

/// The health status says when events are parked: the event handler and the query role
/// (run as the service runs them, on SQLite, tailing the store) report the read model as
/// `cart.read_model` NOT_SERVING while any event is parked and SERVING again once none
/// is; the process itself stays SERVING.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_events_show_in_the_health_status() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

    let t = TestStore::create_sql(Dialect::Sqlite).await;
    let db = ReadDb::create_in(Dialect::Sqlite).await;
    let sql_store = t.sql.as_ref().expect("a SQL store").url().to_string();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut roles = Vec::new();
    let mut clients = Vec::new();
    for role in ["event-handler", "query"] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("port");
        let addr = listener.local_addr().expect("addr");
        let config = <cart_service::Config as clap::Parser>::try_parse_from([
            "cart-service",
            "--role",
            role,
            "--event-store-url",
            &sql_store,
            "--database-url",
            db.url(),
            "--events-from",
            "store",
            "--parked-check-ms",
            "50",
        ])
        .expect("settings");
        roles.push(tokio::spawn(cart_service::run(
            config,
            listener.into(),
            stopped.clone(),
        )));
        let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
            .expect("uri")
            .connect_lazy();
        clients.push(HealthClient::new(channel));
    }
    let status = |mut client: HealthClient<tonic::transport::Channel>, service: &str| {
        let service = service.to_string();
        async move {
            client
                .check(HealthCheckRequest { service })
                .await
                .ok()
                .map(|r| r.into_inner().status())
        }
    };
    let wait_for = |want: ServingStatus| {
        let clients = clients.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            for client in clients {
                while status(client.clone(), "cart.read_model").await != Some(want) {
                    assert!(Instant::now() < deadline, "cart.read_model never {want:?}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                assert_eq!(status(client, "").await, Some(ServingStatus::Serving));
            }
        }
    };
    wait_for(ServingStatus::Serving).await;

    Projector::new(db.pool.clone())
        .park(None, "test", "undecodable message", b"garbage")
        .await
        .expect("parks");
    wait_for(ServingStatus::NotServing).await;

    keel::sql::query("DELETE FROM parked_events")
        .execute(&db.pool)
        .await
        .expect("cleared");
    wait_for(ServingStatus::Serving).await;

    stop.send(true).expect("roles listening");
    for role in roles {
        tokio::time::timeout(Duration::from_secs(15), role)
            .await
            .expect("stops in time")
            .expect("role task")
            .expect("role ran cleanly");
    }
}
