//! The read model on a real PostgreSQL and on SQLite: idempotent projection that stops
//! at gaps, the ViewCart contract, the event handler on the bus, account deletion from
//! `user.events`, and the rebuild from the event store. The whole pipeline runs twice:
//! production backends (FerretDB, Kafka, PostgreSQL) and embedded ones (SQLite event
//! store, SQLite bus log, SQLite read model).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{
    CartCommands, CartQueries, FixedCatalog, HandlerConfig, Projector, Relay, RelayConfig,
    SubscriberConfig,
};
use common::{ReadDb, TestStore, ctx, infra, read_model_diff, unique, wait_read_model_matches};
use common::{deleted_at, load_view};
use keel::ServiceError;
use keel::bus::{Bus, Outgoing};
use keel::es::view::Applied;
use keel::sql::{self, Dialect};
use prost::Message as _;
use shop_cart::{
    AddProduct, AssignCustomer, CartCommand, CartDeleted, CartEvent, CartQueryUseCases, CartReset,
    EventMeta, ProductAdded, ProductQuantityChanged, ResetCart, pb,
};
use uuid::Uuid;

fn meta(cart: Uuid, version: i64) -> EventMeta {
    EventMeta {
        event_id: Uuid::now_v7(),
        stream_id: cart,
        version,
        occurred_at: chrono::Utc::now(),
        correlation_id: "c".into(),
        causation_id: "x".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projection_applies_each_version_once_and_stops_at_gaps() {
    for d in [Dialect::Postgres, Dialect::Sqlite] {
        projection_applies_each_version_once_and_stops_at_gaps_on(d).await;
    }
}

async fn projection_applies_each_version_once_and_stops_at_gaps_on(d: Dialect) {
    let db = ReadDb::create_in(d).await;
    let p = Projector::new(db.pool.clone());
    let (cart, product) = (Uuid::now_v7(), Uuid::now_v7());
    let added = CartEvent::ProductAdded(ProductAdded {
        product_id: product,
        quantity: 2,
    });
    let changed = CartEvent::ProductQuantityChanged(ProductQuantityChanged {
        product_id: product,
        quantity: 5,
    });
    assert_eq!(
        p.apply(&meta(cart, 1), &added).await.expect("v1"),
        Applied::Applied
    );
    assert_eq!(
        p.apply(&meta(cart, 1), &added).await.expect("dup"),
        Applied::Covered
    );
    assert_eq!(
        p.apply(&meta(cart, 3), &added).await.expect("v3"),
        Applied::Gap { have: 1 }
    );
    let view = load_view(&db.pool, cart)
        .await
        .expect("view")
        .expect("cart");
    assert_eq!(
        (view.version, view.items[&product]),
        (1, 2),
        "the gap changed nothing"
    );
    assert_eq!(
        p.apply(&meta(cart, 2), &changed).await.expect("v2"),
        Applied::Applied
    );
    assert_eq!(
        p.apply(&meta(cart, 3), &added).await.expect("v3"),
        Applied::Applied
    );
    let view = load_view(&db.pool, cart)
        .await
        .expect("view")
        .expect("cart");
    assert_eq!((view.version, view.items[&product]), (3, 7));
    let deleted = CartEvent::CartDeleted(CartDeleted {});
    assert_eq!(
        p.apply(&meta(cart, 4), &deleted).await.expect("v4"),
        Applied::Applied
    );
    // A duplicate of an older event cannot bring a deleted cart back.
    assert_eq!(
        p.apply(&meta(cart, 1), &added).await.expect("old"),
        Applied::Covered
    );
    assert_eq!(load_view(&db.pool, cart).await.expect("view"), None);
    assert_eq!(deleted_at(&db.pool, cart).await.expect("deleted"), Some(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn view_cart_is_not_found_until_projected_and_after_deletion() {
    for d in [Dialect::Postgres, Dialect::Sqlite] {
        view_cart_is_not_found_until_projected_and_after_deletion_on(d).await;
    }
}

async fn view_cart_is_not_found_until_projected_and_after_deletion_on(d: Dialect) {
    let db = ReadDb::create_in(d).await;
    let p = Projector::new(db.pool.clone());
    let q = CartQueries::new(db.pool.clone());
    let (cart, product) = (Uuid::now_v7(), Uuid::now_v7());
    let view = |id: Uuid| {
        q.view_cart(
            ctx("v"),
            pb::ViewCartRequest {
                cart_id: id.to_string(),
            },
        )
    };
    let r = view(cart).await;
    assert!(matches!(r, Err(ServiceError::NotFound { .. })), "{r:?}");
    let added = CartEvent::ProductAdded(ProductAdded {
        product_id: product,
        quantity: 3,
    });
    p.apply(&meta(cart, 1), &added).await.expect("v1");
    let r = view(cart).await.expect("found");
    assert_eq!(r.version, 1);
    let c = r.cart.expect("cart");
    assert_eq!(c.customer_id, None);
    assert_eq!(
        c.items,
        [pb::CartItem {
            product_id: product.to_string(),
            quantity: 3
        }]
    );
    p.apply(&meta(cart, 2), &CartEvent::CartReset(CartReset {}))
        .await
        .expect("v2");
    let r = view(cart).await.expect("an empty cart is still a cart");
    assert_eq!((r.version, r.cart.expect("cart").items.len()), (2, 0));
    p.apply(&meta(cart, 3), &CartEvent::CartDeleted(CartDeleted {}))
        .await
        .expect("v3");
    assert!(matches!(
        view(cart).await,
        Err(ServiceError::NotFound { .. })
    ));
}

async fn produce_account_deleted(bus: &Bus, topic: &str, customer: Uuid, event_id: Uuid) {
    let envelope = shop_user::CustomerEvent::AccountDeleted(shop_user::AccountDeleted {})
        .to_envelope(&shop_user::EventMeta {
            event_id,
            stream_id: customer,
            version: 2,
            occurred_at: chrono::Utc::now(),
            correlation_id: "corr".into(),
            causation_id: "del".into(),
        });
    let payload = envelope.encode_to_vec();
    let key = customer.to_string();
    let published = bus
        .publisher(Duration::from_secs(10))
        .expect("publisher")
        .publish(&[Outgoing {
            topic,
            key: key.as_bytes(),
            payload: &payload,
        }])
        .await;
    assert_eq!(published.acknowledged, 1, "{:?}", published.error);
}

/// The whole pipeline in one process on Kafka, FerretDB and PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_deletion_and_rebuild_through_the_pipeline() {
    let t = TestStore::create().await;
    let db = ReadDb::create().await;
    let bus = Bus::connect(&infra().brokers).await.expect("kafka");
    pipeline(t, db, bus).await;
}

/// The same pipeline embedded: SQLite event store, SQLite bus log, SQLite read model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_deletion_and_rebuild_through_the_embedded_pipeline() {
    let t = TestStore::create_sql(Dialect::Sqlite).await;
    let db = ReadDb::create_in(Dialect::Sqlite).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let bus = Bus::connect(&format!("sqlite://{}/bus.db", dir.path().display()))
        .await
        .expect("embedded bus");
    assert!(matches!(bus, Bus::Log(_)));
    pipeline(t, db, bus).await;
}

/// Commands, relay, event handler and the `user.events` subscriber in one process. An
/// AccountDeleted delivered twice deletes that customer's carts once, the read model
/// follows, and a rebuild gives the same read model.
async fn pipeline(t: TestStore, db: ReadDb, bus: Bus) {
    let (cart_topic, user_topic) = (unique("cart-test-events"), unique("cart-test-users"));
    for topic in [&cart_topic, &user_topic] {
        bus.ensure_topic(topic, 2).await.expect("topic");
    }
    let cmds = CartCommands::new(t.store.clone(), Arc::new(FixedCatalog(None)));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let relay = Relay::new(
        t.store.clone(),
        &bus,
        RelayConfig {
            topic: cart_topic.clone(),
            poll_interval: Duration::from_millis(20),
            ..RelayConfig::default()
        },
    )
    .expect("relay");
    let mut tasks = vec![tokio::spawn(async move {
        relay.run(stopped).await;
        Ok(())
    })];
    let handler = keel::es::handler::run_event_handler(
        Projector::new(db.pool.clone()),
        bus.clone(),
        HandlerConfig {
            topic: cart_topic.clone(),
            group: unique("cart-test-handler"),
            ..HandlerConfig::default()
        },
        stop.subscribe(),
    );
    tasks.push(tokio::spawn(async move { Ok(handler.await?) }));
    tasks.push(tokio::spawn(common::run_subscriber(
        cmds.clone(),
        bus.clone(),
        SubscriberConfig {
            topic: user_topic.clone(),
            group: unique("cart-test-users"),
            ..SubscriberConfig::default()
        },
        stop.subscribe(),
    )));

    let (customer, other) = (Uuid::now_v7(), Uuid::now_v7());
    let carts: Vec<Uuid> = (0..4).map(|_| Uuid::now_v7()).collect();
    for (i, cart) in carts.iter().enumerate() {
        let key = format!("add-{i}");
        let add = CartCommand::AddProduct(AddProduct {
            cart_id: *cart,
            product_id: Uuid::from_u128(i as u128 + 1),
            quantity: 2,
        });
        cmds.execute(&ctx(&key), key.as_str(), None, &add)
            .await
            .expect("add");
        let owner = match i {
            0 | 1 => Some(customer),
            2 => Some(other),
            _ => None,
        };
        if owner.is_some() {
            let key = format!("assign-{i}");
            let assign = CartCommand::AssignCustomer(AssignCustomer {
                cart_id: *cart,
                customer_id: owner,
            });
            cmds.execute(&ctx(&key), key.as_str(), None, &assign)
                .await
                .expect("assign");
        }
    }
    let reset = CartCommand::ResetCart(ResetCart { cart_id: carts[3] });
    cmds.execute(&ctx("reset"), "reset", None, &reset)
        .await
        .expect("reset");
    wait_read_model_matches(&t.store, &db.pool, Duration::from_secs(30)).await;

    let event_id = Uuid::now_v7();
    produce_account_deleted(&bus, &user_topic, customer, event_id).await;
    produce_account_deleted(&bus, &user_topic, customer, event_id).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (a, _, _) = cmds.load(carts[0]).await.expect("load");
        let (b, _, _) = cmds.load(carts[1]).await.expect("load");
        if a.deleted && b.deleted {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "carts never deleted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A later, distinct delivery of the same fact changes nothing either.
    produce_account_deleted(&bus, &user_topic, customer, Uuid::now_v7()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for cart in &carts[..2] {
        let (_, version, commits) = cmds.load(*cart).await.expect("load");
        let deletions = commits
            .iter()
            .flat_map(|c| &c.events)
            .filter(|e| e.event_type == "CartDeleted")
            .count();
        assert_eq!((deletions, version), (1, 3), "deleted exactly once");
    }
    assert!(
        cmds.load(carts[2]).await.expect("load").0.is_live(),
        "other customer's cart"
    );
    assert!(
        cmds.load(carts[3]).await.expect("load").0.is_live(),
        "cart without customer"
    );
    wait_read_model_matches(&t.store, &db.pool, Duration::from_secs(30)).await;
    assert_eq!(load_view(&db.pool, carts[0]).await.expect("view"), None);

    // Rebuild: damage the read model, replay the store, the same read model again.
    sql::query("DELETE FROM cart_items")
        .execute(&db.pool)
        .await
        .expect("damage");
    assert!(!read_model_diff(&t.store, &db.pool).await.is_empty());
    let report = keel::es::rebuild::rebuild::<common::ReadModel>(&t.store, &db.pool)
        .await
        .expect("rebuild");
    assert_eq!(report.streams, 4);
    assert_eq!(report.position, t.store.max_position().await.expect("max"));
    assert!(report.events_per_second() > 0.0);
    let diff = read_model_diff(&t.store, &db.pool).await;
    assert!(diff.is_empty(), "{diff:?}");
    // The event handler goes on writing into the rebuilt tables.
    let add = CartCommand::AddProduct(AddProduct {
        cart_id: carts[3],
        product_id: Uuid::from_u128(99),
        quantity: 1,
    });
    cmds.execute(&ctx("after"), "after", None, &add)
        .await
        .expect("add after rebuild");
    wait_read_model_matches(&t.store, &db.pool, Duration::from_secs(30)).await;

    stop.send(true).expect("stop");
    for task in tasks {
        task.await.expect("task").expect("ran cleanly");
    }
}
