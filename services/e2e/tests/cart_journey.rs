//! The cart end to end: PostgreSQL, Kafka and FerretDB for real; the product service,
//! the three cart processes (command + relay, query, event handler) and the BFF, each
//! behind its generated Envoy; driven through GraphQL at the BFF's Envoy. Add, change
//! the quantity, remove, view (each item's product through the BFF's loader), reset.
//!
//! The generated local ports are fixed, so this test and `journey.rs` serialize on
//! [`lock_ports`]; Kafka topics, consumer groups and the Mongo database are unique to
//! the run.

use std::time::{Duration, Instant};

use e2e::*;
use serde_json::{Value, json};

const BFF_EDGE: &str = "http://127.0.0.1:50200";

const CREATE: &str =
    "mutation($input: CreateProductInput!) { createProduct(input: $input) { id } }";
const ADD: &str =
    "mutation($input: AddProductInput!) { addProduct(input: $input) { cartId version } }";
const CHANGE: &str = "mutation($input: ChangeProductQuantityInput!) { changeProductQuantity(input: $input) { cartId version } }";
const REMOVE: &str =
    "mutation($input: RemoveProductInput!) { removeProduct(input: $input) { cartId version } }";
const RESET: &str =
    "mutation($input: ResetCartInput!) { resetCart(input: $input) { cartId version } }";
const VIEW: &str = "query($id: ID!) { viewCart(cartId: $id) { id customerId version items { productId quantity product { name price } } } }";

/// Polls viewCart until the read model reached `version`; returns the cart and how long
/// the command took to become visible.
async fn view_at(gql: &Graphql, cart: &str, version: i64) -> (Value, Duration) {
    let started = Instant::now();
    loop {
        let v = gql.run(VIEW, json!({ "id": cart })).await;
        let c = &v["data"]["viewCart"];
        if c["version"].as_i64().is_some_and(|have| have >= version) {
            assert!(v.get("errors").is_none_or(|e| e.is_null()), "{v:#}");
            return (c.clone(), started.elapsed());
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "cart {cart} never reached version {version}: {v:#}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn version(d: &Value, field: &str) -> i64 {
    d[field]["version"].as_i64().expect("version")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cart_journey_through_envoy() {
    let _ports = lock_ports();
    build_binaries(&["product-service", "cart-service", "bff"]);
    infra_up(&["postgres", "kafka", "mongo", "envoy"]);
    let product_db = TestDatabase::create("e2e_product").await;
    let cart_db = TestDatabase::create("e2e_cart_read").await;
    let run = format!(
        "{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default()
    );
    let bin = bin_dir();
    let kafka = infra_var("KAFKA_BOOTSTRAP_SERVERS");
    let cart_env = |role: &str, port: u16| {
        vec![
            ("ROLE", role.to_string()),
            ("LISTEN_ADDR", format!("127.0.0.1:{port}")),
            ("MONGO_URL", infra_var("MONGO_URL")),
            ("MONGO_DATABASE", format!("e2e_cart_{run}")),
            ("DATABASE_URL", cart_db.url.clone()),
            ("KAFKA_BROKERS", kafka.clone()),
            ("CART_TOPIC", format!("e2e-cart-events-{run}")),
            ("USER_TOPIC", format!("e2e-user-events-{run}")),
            ("USER_EVENTS_GROUP", format!("e2e-cart-users-{run}")),
            ("CONSUMER_GROUP", format!("e2e-cart-handler-{run}")),
            ("PRODUCT_URL", "http://127.0.0.1:50201".into()),
        ]
    };

    let mut product = spawn(
        "product",
        &bin.join("product-service"),
        &[],
        &[
            ("LISTEN_ADDR", "127.0.0.1:50101".into()),
            ("DATABASE_URL", product_db.url.clone()),
        ],
    );
    let cart_bin = bin.join("cart-service");
    let mut command = spawn("cart-command", &cart_bin, &[], &cart_env("command", 50103));
    let mut query = spawn("cart-query", &cart_bin, &[], &cart_env("query", 50104));
    let mut handler = spawn(
        "cart-event-handler",
        &cart_bin,
        &[],
        &cart_env("event-handler", 50105),
    );
    let mut bff = spawn(
        "bff",
        &bin.join("bff"),
        &[],
        &[
            ("LISTEN_ADDR", "127.0.0.1:50100".into()),
            ("PRODUCT_URL", "http://127.0.0.1:50201".into()),
            ("USER_URL", "http://127.0.0.1:50206".into()),
            ("ORDER_URL", "http://127.0.0.1:50202".into()),
            ("CART_COMMAND_URL", "http://127.0.0.1:50203".into()),
            ("CART_QUERY_URL", "http://127.0.0.1:50204".into()),
        ],
    );
    let mut envoys = [
        envoy("bff"),
        envoy("product"),
        envoy("cart-command"),
        envoy("cart-query"),
        envoy("cart-event-handler"),
    ];
    {
        let [a, b, c, d, e] = &mut envoys;
        let mut all: Vec<&mut Process> = vec![
            &mut product,
            &mut command,
            &mut query,
            &mut handler,
            &mut bff,
            a,
            b,
            c,
            d,
            e,
        ];
        wait_http_ok(
            &format!("{BFF_EDGE}/healthz"),
            Duration::from_secs(60),
            &mut all,
        )
        .await;
    }
    for (admin, cluster) in [
        (50301, "product"),
        (50303, "cart-command"),
        (50304, "cart-query"),
        (50305, "cart-event-handler"),
    ] {
        wait_envoy_healthy(admin, cluster, Duration::from_secs(30)).await;
    }
    let gql = Graphql::new(format!("{BFF_EDGE}/graphql"));

    let mut products = Vec::new();
    for (name, price) in [("Matcha", 1200), ("Anpan", 180)] {
        let d = gql
            .ok(CREATE, json!({ "input": { "name": name, "price": price } }))
            .await;
        products.push(d["createProduct"]["id"].as_str().expect("id").to_string());
    }
    let (matcha, anpan) = (&products[0], &products[1]);
    let cart = uuid::Uuid::now_v7().to_string();
    let mut lags = Vec::new();

    // A new cart id: created by its first AddProduct.
    let (code, _) = gql.error_code(VIEW, json!({ "id": cart })).await;
    assert_eq!(code, "NOT_FOUND", "an unknown cart is NOT_FOUND");
    let d = gql
        .ok(
            ADD,
            json!({ "input": { "cartId": cart, "productId": matcha, "quantity": 2 } }),
        )
        .await;
    assert_eq!(version(&d, "addProduct"), 1);
    let d = gql
        .ok(
            ADD,
            json!({ "input": { "cartId": cart, "productId": anpan, "quantity": 1 } }),
        )
        .await;
    assert_eq!(version(&d, "addProduct"), 2);
    let (c, lag) = view_at(&gql, &cart, 2).await;
    lags.push(lag);
    assert_eq!(c["id"], json!(cart));
    assert_eq!(c["customerId"], Value::Null);
    let items = c["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{c:#}");
    let line = |id: &str| {
        items
            .iter()
            .find(|i| i["productId"] == json!(id))
            .cloned()
            .expect("line")
    };
    assert_eq!(line(matcha)["quantity"], json!(2));
    assert_eq!(
        line(matcha)["product"],
        json!({ "name": "Matcha", "price": 1200 })
    );
    assert_eq!(line(anpan)["product"]["name"], json!("Anpan"));

    // Adding it again increases the quantity.
    let d = gql
        .ok(
            ADD,
            json!({ "input": { "cartId": cart, "productId": anpan, "quantity": 2 } }),
        )
        .await;
    assert_eq!(version(&d, "addProduct"), 3);
    let d = gql
        .ok(
            CHANGE,
            json!({ "input": { "cartId": cart, "productId": matcha, "quantity": 5 } }),
        )
        .await;
    assert_eq!(version(&d, "changeProductQuantity"), 4);
    let (c, lag) = view_at(&gql, &cart, 4).await;
    lags.push(lag);
    let quantities: Vec<(String, i64)> = c["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            (
                i["productId"].as_str().expect("id").to_string(),
                i["quantity"].as_i64().expect("quantity"),
            )
        })
        .collect();
    assert!(quantities.contains(&(matcha.clone(), 5)), "{quantities:?}");
    assert!(quantities.contains(&(anpan.clone(), 3)), "{quantities:?}");

    let d = gql
        .ok(
            REMOVE,
            json!({ "input": { "cartId": cart, "productId": anpan } }),
        )
        .await;
    assert_eq!(version(&d, "removeProduct"), 5);
    let (c, lag) = view_at(&gql, &cart, 5).await;
    lags.push(lag);
    assert_eq!(c["items"].as_array().expect("items").len(), 1);

    // Clear errors, nothing changed.
    let (code, err) = gql
        .error_code(
            REMOVE,
            json!({ "input": { "cartId": cart, "productId": anpan } }),
        )
        .await;
    assert_eq!(code, "NOT_FOUND", "removing an absent item: {err}");
    let unknown = uuid::Uuid::now_v7().to_string();
    let (code, err) = gql
        .error_code(
            ADD,
            json!({ "input": { "cartId": cart, "productId": unknown, "quantity": 1 } }),
        )
        .await;
    assert_eq!(code, "NOT_FOUND", "an unknown product: {err}");
    assert!(err.to_string().contains("product"), "{err}");
    let (code, _) = gql
        .error_code(
            ADD,
            json!({ "input": { "cartId": cart, "productId": matcha, "quantity": 100 } }),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT");
    let (code, err) = gql
        .error_code(
            ADD,
            json!({ "input": { "cartId": cart, "productId": matcha, "quantity": 95 } }),
        )
        .await;
    assert_eq!(
        code, "FAILED_PRECONDITION",
        "more than 99 in one line: {err}"
    );
    let (code, err) = gql
        .error_code(
            RESET,
            json!({ "input": { "cartId": cart, "expectedVersion": 2 } }),
        )
        .await;
    assert_eq!(code, "CONFLICT", "a stale expected version: {err}");

    let d = gql
        .ok(
            RESET,
            json!({ "input": { "cartId": cart, "expectedVersion": 5 } }),
        )
        .await;
    assert_eq!(version(&d, "resetCart"), 6);
    let (c, lag) = view_at(&gql, &cart, 6).await;
    lags.push(lag);
    assert_eq!(c["items"], json!([]));
    assert_eq!(c["version"], json!(6));
    eprintln!("command-to-ViewCart lag through the Envoys: {lags:?}");

    for p in [
        &mut bff,
        &mut command,
        &mut query,
        &mut handler,
        &mut product,
    ] {
        assert!(
            p.terminate(Duration::from_secs(15)),
            "{} ignored SIGTERM:\n{}",
            p.name,
            p.log_tail()
        );
    }
}
