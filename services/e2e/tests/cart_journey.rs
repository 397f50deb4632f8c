//! The cart end to end: PostgreSQL, Kafka and FerretDB for real; the product service,
//! the three cart processes (command + relay, query, event handler), the user service
//! (who logs in) and the BFF, each behind its generated Envoy; driven through GraphQL at
//! the BFF's Envoy. Add, change the quantity, remove, view (each item's product through
//! the BFF's loader), reset; the cart is its customer's only.
//!
//! The generated local ports are fixed, so this test and `journey.rs` serialize on
//! [`lock_ports`] (in [`Stack::start`]); Kafka topics, consumer groups and the Mongo
//! database are unique to the run (the table's settings name them).

use e2e::ops::*;
use e2e::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cart_journey_through_envoy() {
    let stack = start_shop(&[
        "product",
        "user",
        "cart-command",
        "cart-query",
        "cart-event-handler",
        "bff",
    ])
    .await;
    let anonymous = stack.graphql();
    let admin = back_office(anonymous).await;
    let (gql, customer) = ops::customer(anonymous, "Taro").await;
    let gql = &gql;

    let mut products = Vec::new();
    for (name, price) in [("Matcha", 1200), ("Anpan", 180)] {
        let d = admin
            .ok(CREATE, json!({ "input": { "name": name, "price": price } }))
            .await;
        products.push(d["createProduct"]["id"].as_str().expect("id").to_string());
    }
    let (matcha, anpan) = (&products[0], &products[1]);
    let cart = uuid::Uuid::now_v7().to_string();
    let mut lags = Vec::new();

    // A new cart id: created by its first AddProduct, which the BFF precedes with the
    // claim that makes the cart Taro's (CustomerAssigned): versions 2 and 3 (were 1
    // and 2 before carts had owners), and the cart has a customer (had none).
    let (code, _) = gql.error_code(VIEW, json!({ "id": cart })).await;
    assert_eq!(code, "NOT_FOUND", "an unknown cart is NOT_FOUND");
    let (code, _) = anonymous
        .error_code(
            ADD,
            json!({ "input": { "cartId": cart, "productId": matcha, "quantity": 2 } }),
        )
        .await;
    assert_eq!(code, "UNAUTHENTICATED", "a cart needs a login");
    let d = gql
        .ok(
            ADD,
            json!({ "input": { "cartId": cart, "productId": matcha, "quantity": 2 } }),
        )
        .await;
    assert_eq!(version(&d, "addProduct"), 2);
    let d = gql
        .ok(
            ADD,
            json!({ "input": { "cartId": cart, "productId": anpan, "quantity": 1 } }),
        )
        .await;
    assert_eq!(version(&d, "addProduct"), 3);
    let (c, lag) = view_at_timed(gql, &cart, 3).await;
    lags.push(lag);
    assert_eq!(c["id"], json!(cart));
    assert_eq!(c["customerId"], json!(customer));
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

    // Somebody else may neither see nor change Taro's cart.
    let (hanako, _) = ops::customer(anonymous, "Hanako").await;
    let (code, err) = hanako.error_code(VIEW, json!({ "id": cart })).await;
    assert_eq!(code, "FORBIDDEN", "{err}");
    let (code, err) = hanako
        .error_code(
            ADD,
            json!({ "input": { "cartId": cart, "productId": anpan, "quantity": 1 } }),
        )
        .await;
    assert_eq!(code, "FORBIDDEN", "{err}");

    // Adding it again increases the quantity.
    let d = gql
        .ok(
            ADD,
            json!({ "input": { "cartId": cart, "productId": anpan, "quantity": 2 } }),
        )
        .await;
    assert_eq!(version(&d, "addProduct"), 4);
    let d = gql
        .ok(
            CHANGE,
            json!({ "input": { "cartId": cart, "productId": matcha, "quantity": 5 } }),
        )
        .await;
    assert_eq!(version(&d, "changeProductQuantity"), 5);
    let (c, lag) = view_at_timed(gql, &cart, 5).await;
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
    assert_eq!(version(&d, "removeProduct"), 6);
    let (c, lag) = view_at_timed(gql, &cart, 6).await;
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
            json!({ "input": { "cartId": cart, "expectedVersion": 6 } }),
        )
        .await;
    assert_eq!(version(&d, "resetCart"), 7);
    let (c, lag) = view_at_timed(gql, &cart, 7).await;
    lags.push(lag);
    assert_eq!(c["items"], json!([]));
    assert_eq!(c["version"], json!(7));
    eprintln!("command-to-ViewCart lag through the Envoys: {lags:?}");

    stack.stop();
}
