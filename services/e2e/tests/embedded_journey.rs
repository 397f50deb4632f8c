//! The customer journey against `shop up`, the one-process embedded mode the README
//! starts first: no PostgreSQL, Kafka, MongoDB or Envoy; SQLite files in a data folder
//! and the embedded event log. The shop is killed (SIGKILL) in the middle of the
//! journey and stopped with Ctrl-C later; each restart on the same folder must have
//! lost nothing.

use std::time::{Duration, Instant};

use e2e::embedded::{Banner, start};
use e2e::ops::*;
use e2e::*;
use serde_json::json;

async fn assign(banner: &Banner, cart: &str, customer: &str) -> i64 {
    let mut client = shop_cart::pb::cart_command_service_client::CartCommandServiceClient::connect(
        banner.grpc["cart-command"].clone(),
    )
    .await
    .expect("cart command client");
    client
        .assign_customer(shop_cart::pb::AssignCustomerRequest {
            cart_id: cart.to_string(),
            customer_id: Some(customer.to_string()),
            expected_version: None,
            idempotency_key: None,
        })
        .await
        .expect("assign customer")
        .into_inner()
        .version
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journey_on_embedded_storage_survives_a_crash_and_a_restart() {
    build_binaries(&["shop"]);
    let data = tempfile::tempdir().expect("data folder");
    let (mut shop, banner) = start(data.path(), "embedded-shop-1");
    let expected_deployables: Vec<&str> = shop::deployables()
        .iter()
        .copied()
        .filter(|d| *d != "bff")
        .collect();
    assert_eq!(
        banner.grpc.keys().map(String::as_str).collect::<Vec<_>>(),
        {
            let mut v = expected_deployables.clone();
            v.sort();
            v
        },
        "every deployable serves gRPC"
    );
    let gql = Graphql::new(banner.graphql.clone());

    // A second shop on the same folder is refused, clearly, and the first goes on.
    let mut second = spawn(
        "embedded-shop-second",
        &bin_dir().join("shop"),
        &[
            "up",
            "--data",
            data.path().to_str().expect("utf-8"),
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    let refused = second.wait_exit(Duration::from_secs(20));
    assert!(
        refused.is_some_and(|s| !s.success()),
        "a second shop on the same data folder must fail"
    );
    assert!(
        second.output().contains("another `shop up` is using"),
        "{}",
        second.log_tail()
    );

    // The demo catalogue is there on the first start.
    let d = gql.ok(PRODUCTS, json!({})).await;
    let products = d["viewProducts"]["nodes"]
        .as_array()
        .expect("nodes")
        .clone();
    assert_eq!(products.len(), 8, "{d:#}");
    let id_of = |name: &str| {
        products
            .iter()
            .find(|p| p["name"] == json!(name))
            .map(|p| p["id"].as_str().expect("id").to_string())
            .unwrap_or_else(|| panic!("{name} is a demo product"))
    };
    let price_of = |name: &str| {
        products
            .iter()
            .find(|p| p["name"] == json!(name))
            .and_then(|p| p["price"].as_i64())
            .expect("price")
    };
    let (tea, mug, kettle) = (
        id_of("Assam Tea"),
        id_of("Ceramic Mug"),
        id_of("Gooseneck Kettle"),
    );

    // Bad input: a coded error, nothing stored. (Changing the catalogue is the back
    // office's, whom `start` grants it.)
    let admin = back_office(&gql).await;
    let (code, err) = admin
        .error_code(
            CREATE,
            json!({ "input": { "name": "Free lunch", "price": -1 } }),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT", "{err}");

    let (hana, customer) = ops::customer(&gql, "Hana").await;
    let cart = uuid::Uuid::now_v7().to_string();
    let add = |product: &str, quantity: i64| json!({ "input": { "cartId": cart, "productId": product, "quantity": quantity } });
    // The BFF claims the new cart for Hana (CustomerAssigned, version 1) before her
    // first add (version 2); assigning her again over gRPC changes nothing.
    assert_eq!(version(&hana.ok(ADD, add(&tea, 1)).await, "addProduct"), 2);
    assert_eq!(assign(&banner, &cart, &customer).await, 2);
    assert_eq!(version(&hana.ok(ADD, add(&mug, 2)).await, "addProduct"), 3);
    assert_eq!(
        version(&hana.ok(ADD, add(&kettle, 1)).await, "addProduct"),
        4
    );
    let d = hana
        .ok(
            CHANGE,
            json!({ "input": { "cartId": cart, "productId": tea, "quantity": 3 } }),
        )
        .await;
    assert_eq!(version(&d, "changeProductQuantity"), 5);
    let (code, err) = hana
        .error_code(
            CHANGE,
            json!({ "input": { "cartId": cart, "productId": tea, "quantity": 0 } }),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT", "{err}");

    // Crash right after an acknowledged command: nothing acknowledged may be lost.
    let d = hana
        .ok(
            REMOVE,
            json!({ "input": { "cartId": cart, "productId": kettle } }),
        )
        .await;
    assert_eq!(version(&d, "removeProduct"), 6);
    shop.kill();
    let (mut shop, banner) = start(data.path(), "embedded-shop-2");
    let gql = Graphql::new(banner.graphql.clone());
    // Hana's access token outlives the crash: the signing key is in the data folder.
    let hana = gql.with_token(hana.token().expect("logged in"));
    let d = gql.ok(PRODUCTS, json!({})).await;
    assert_eq!(
        d["viewProducts"]["nodes"].as_array().map(Vec::len),
        Some(8),
        "the demo products are added once: {d:#}"
    );
    let c = view_at(&hana, &cart, 6).await;
    assert_eq!(c["version"], json!(6), "{c:#}");
    assert_eq!(c["customerId"], json!(customer));
    assert_eq!(
        cart_lines(&c),
        [("Assam Tea".to_string(), 3), ("Ceramic Mug".to_string(), 2)]
    );

    // Check out after the restart; a retry is the same order. (No customerId: it is the
    // caller's.)
    let checkout = json!({ "input": { "cartId": cart } });
    let placed = hana.ok(CHECKOUT, checkout.clone()).await["checkout"].clone();
    assert_eq!(placed["status"], json!("placed"), "{placed:#}");
    assert_eq!(placed["customerId"], json!(customer));
    assert_eq!(placed["cartVersion"], json!(6));
    assert_eq!(
        placed["total"],
        json!(3 * price_of("Assam Tea") + 2 * price_of("Ceramic Mug"))
    );
    let again = hana.ok(CHECKOUT, checkout.clone()).await["checkout"].clone();
    assert_eq!(again, placed, "a retried checkout returns the same order");
    let c = view_at(&hana, &cart, 7).await;
    assert_eq!(c["items"], json!([]));

    // Ctrl-C: a clean stop; the next start has the order.
    let status = shop.interrupt(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "Ctrl-C stops the shop cleanly: {status:?}\n{}",
        shop.log_tail()
    );
    assert!(shop.output().contains("The shop stopped cleanly."));
    let (mut shop, banner) = start(data.path(), "embedded-shop-3");
    let gql = Graphql::new(banner.graphql.clone());
    let hana = gql.with_token(hana.token().expect("logged in"));
    let d = hana.ok(ORDERS, json!({})).await;
    let nodes = d["viewOrders"]["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 1, "{d:#}");
    assert_eq!(nodes[0]["id"], placed["id"]);
    assert_eq!(nodes[0]["status"], json!("placed"));

    // Two commands in one GraphQL request both apply, in order (each is an attempt of
    // its own); a command retried with its idempotency key gets its first answer. The
    // first claims the new cart: versions 2 and 3 (were 1 and 2 before carts had owners).
    let other = uuid::Uuid::now_v7().to_string();
    let two = format!(
        r#"mutation {{ a: addProduct(input: {{cartId: "{other}", productId: "{tea}", quantity: 1}}) {{ version }}
                       b: addProduct(input: {{cartId: "{other}", productId: "{mug}", quantity: 1}}) {{ version }} }}"#
    );
    let d = hana.ok(&two, json!({})).await;
    assert_eq!(
        (&d["a"]["version"], &d["b"]["version"]),
        (&json!(2), &json!(3)),
        "{d:#}"
    );
    let keyed = json!({ "input": { "cartId": other, "productId": kettle, "quantity": 1, "idempotencyKey": "add-kettle-1" } });
    assert_eq!(version(&hana.ok(ADD, keyed.clone()).await, "addProduct"), 4);
    assert_eq!(
        version(&hana.ok(ADD, keyed).await, "addProduct"),
        4,
        "the retry is answered with its first version"
    );
    let c = view_at(&hana, &other, 4).await;
    assert_eq!(
        cart_lines(&c),
        [
            ("Assam Tea".to_string(), 1),
            ("Ceramic Mug".to_string(), 1),
            ("Gooseneck Kettle".to_string(), 1)
        ],
        "both products of the two-mutation request, the kettle once"
    );

    // Deleting the account deletes the cart: user outbox -> relay -> embedded log ->
    // the cart's subscriber -> DeleteCart -> event handler -> read model. Hana's session
    // ends with her account, so somebody else looks: Hana's cart is FORBIDDEN to him
    // until it is gone (NOT_FOUND).
    assert_eq!(version(&hana.ok(ADD, add(&mug, 1)).await, "addProduct"), 8);
    let (ken, _) = ops::customer(&gql, "Ken").await;
    let (code, err) = ken.error_code(VIEW, json!({ "id": cart })).await;
    assert_eq!(code, "FORBIDDEN", "{err}");
    hana.ok(DELETE_ACCOUNT, json!({})).await;
    let (code, err) = hana.error_code(ORDERS, json!({})).await;
    assert_eq!(code, "UNAUTHENTICATED", "the session ended: {err}");
    let started = Instant::now();
    loop {
        let v = ken.run(VIEW, json!({ "id": cart })).await;
        if v["errors"][0]["extensions"]["code"] == json!("NOT_FOUND") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the cart outlived its account: {v:#}\n{}",
            shop.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Many customers at once on the SQLite files: zero errors.
    let report = smoke_load(env!("CARGO_BIN_EXE_loadgen"), banner.graphql.clone()).await;
    println!("{report}");

    let status = shop.interrupt(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "{}", shop.log_tail());
}
