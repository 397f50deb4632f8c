//! The whole customer journey end to end: PostgreSQL, Kafka and FerretDB for real; the
//! product, user, cart (command, query, event handler), order and BFF processes, each
//! behind its generated Envoy; driven through GraphQL at the BFF's Envoy. Browse, add,
//! change a quantity, remove, view the cart, check out (and retry), see the empty cart
//! and the order; delete the account and see the cart go. Then a smoke load with
//! checkout. The customer logs in; the catalogue is the back-office user's.
//!
//! The generated local ports are fixed: this test serializes with the other journeys on
//! [`lock_ports`].

use std::time::{Duration, Instant};

use e2e::ops::*;
use e2e::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customer_journey_with_checkout_through_envoy() {
    let stack = start_whole_shop().await;
    let anonymous = stack.graphql();
    let admin = back_office(anonymous).await;

    // Browse.
    for (name, price) in [("Matcha", 1200), ("Anpan", 180), ("Soba", 650)] {
        admin
            .ok(CREATE, json!({ "input": { "name": name, "price": price } }))
            .await;
    }
    let d = anonymous.ok(PRODUCTS, json!({})).await;
    let id_of = |name: &str| {
        d["viewProducts"]["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .find(|p| p["name"] == json!(name))
            .map(|p| p["id"].as_str().expect("id").to_string())
            .expect("product listed")
    };
    let (matcha, anpan, soba) = (id_of("Matcha"), id_of("Anpan"), id_of("Soba"));

    // A customer and their cart.
    let (taro, customer) = ops::customer(anonymous, "Taro").await;
    let gql = &taro;
    let cart = uuid::Uuid::now_v7().to_string();
    let add = |product: &str, quantity: i64| json!({ "input": { "cartId": cart, "productId": product, "quantity": quantity } });
    // The BFF claims the new cart for Taro (CustomerAssigned, version 1) before his
    // first add (version 2; was 1 before carts had owners).
    assert_eq!(
        version(&gql.ok(ADD, add(&matcha, 1)).await, "addProduct"),
        2
    );
    // AssignCustomer is internal (gRPC only): assigning Taro again changes nothing (it
    // was what made the cart his, version 2, before the BFF claimed carts); assigning
    // anybody else is refused.
    let mut cart_commands =
        shop_cart::pb::cart_command_service_client::CartCommandServiceClient::connect(
            stack.edge("cart-command"),
        )
        .await
        .expect("cart command client");
    let assigned = cart_commands
        .assign_customer(shop_cart::pb::AssignCustomerRequest {
            cart_id: cart.clone(),
            customer_id: Some(customer.clone()),
            expected_version: None,
            idempotency_key: None,
        })
        .await
        .expect("assign customer")
        .into_inner();
    assert_eq!(assigned.version, 2);
    let refused = cart_commands
        .assign_customer(shop_cart::pb::AssignCustomerRequest {
            cart_id: cart.clone(),
            customer_id: Some(uuid::Uuid::now_v7().to_string()),
            expected_version: None,
            idempotency_key: None,
        })
        .await
        .expect_err("the cart is Taro's");
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    let c = ops::edit_cart(gql, &cart, [&matcha, &anpan, &soba]).await;
    assert_eq!(c["customerId"], json!(customer));
    assert_eq!(
        cart_lines(&c),
        [("Anpan".to_string(), 2), ("Matcha".to_string(), 3)]
    );

    // Nobody else may check Taro's cart out, nor name Taro as the customer.
    let (hanako, _) = ops::customer(anonymous, "Hanako").await;
    let (code, err) = hanako
        .error_code(CHECKOUT, json!({ "input": { "cartId": cart } }))
        .await;
    assert_eq!(code, "FORBIDDEN", "{err}");
    let (code, err) = hanako
        .error_code(
            CHECKOUT,
            json!({ "input": { "cartId": cart, "customerId": customer } }),
        )
        .await;
    assert_eq!(code, "FORBIDDEN", "{err}");

    // Check out: the order holds the cart at version 6, priced by the product service.
    // (customerId omitted: it is the caller's.)
    let checkout = json!({ "input": { "cartId": cart } });
    let placed = gql.ok(CHECKOUT, checkout.clone()).await["checkout"].clone();
    assert_eq!(placed["status"], json!("placed"), "{placed:#}");
    assert_eq!(placed["customerId"], json!(customer));
    assert_eq!(placed["cartVersion"], json!(6));
    assert_eq!(placed["total"], json!(3 * 1200 + 2 * 180));
    let mut details: Vec<(String, i64, i64)> = placed["details"]
        .as_array()
        .expect("details")
        .iter()
        .map(|d| {
            (
                d["productName"].as_str().expect("name").to_string(),
                d["unitPrice"].as_i64().expect("price"),
                d["quantity"].as_i64().expect("quantity"),
            )
        })
        .collect();
    details.sort();
    assert_eq!(
        details,
        [
            ("Anpan".to_string(), 180, 2),
            ("Matcha".to_string(), 1200, 3)
        ]
    );
    // A retried checkout (the answer was lost, say) is the same order.
    let again = gql.ok(CHECKOUT, checkout.clone()).await["checkout"].clone();
    assert_eq!(again, placed, "a retried checkout returns the same order");

    // The cart is empty (reset at version 7), the order is in the history.
    let c = view_at(gql, &cart, 7).await;
    assert_eq!(c["items"], json!([]));
    assert_eq!(c["version"], json!(7));
    let d = gql.ok(ORDERS, json!({})).await;
    let nodes = d["viewOrders"]["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 1, "{d:#}");
    assert_eq!(nodes[0]["id"], placed["id"]);
    assert_eq!(nodes[0]["status"], json!("placed"));
    assert_eq!(nodes[0]["details"].as_array().map(Vec::len), Some(2));
    let d = hanako.ok(ORDERS, json!({})).await;
    assert_eq!(
        d["viewOrders"]["nodes"],
        json!([]),
        "Taro's orders are his: {d:#}"
    );

    // Checking out the empty cart again is refused... once the cart changed, that is.
    assert_eq!(version(&gql.ok(ADD, add(&soba, 1)).await, "addProduct"), 8);
    let d = gql
        .ok(
            REMOVE,
            json!({ "input": { "cartId": cart, "productId": soba } }),
        )
        .await;
    assert_eq!(version(&d, "removeProduct"), 9);
    let (code, err) = gql.error_code(CHECKOUT, checkout.clone()).await;
    assert_eq!(code, "FAILED_PRECONDITION", "an empty cart: {err}");

    // Deleting the account deletes the cart (user event -> Kafka -> cart command side).
    // Taro's session ends with his account, so Hanako looks: FORBIDDEN while the cart
    // is Taro's, NOT_FOUND once it is gone.
    assert_eq!(
        version(&gql.ok(ADD, add(&anpan, 1)).await, "addProduct"),
        10
    );
    gql.ok(DELETE_ACCOUNT, json!({})).await;
    let (code, err) = gql.error_code(ORDERS, json!({})).await;
    assert_eq!(code, "UNAUTHENTICATED", "the session ended: {err}");
    let started = Instant::now();
    loop {
        let v = hanako.run(VIEW, json!({ "id": cart })).await;
        let code = &v["errors"][0]["extensions"]["code"];
        if *code == json!("NOT_FOUND") {
            break;
        }
        assert!(
            *code == json!("FORBIDDEN") && started.elapsed() < Duration::from_secs(30),
            "the cart of a deleted account is still there: {v:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Its orders stay (history): nobody may list them through GraphQL any more, so ask
    // the order service (through its Envoy).
    let mut orders =
        shop_order::pb::order_service_client::OrderServiceClient::connect(stack.edge("order"))
            .await
            .expect("order client");
    let kept = orders
        .view_orders(shop_order::pb::ViewOrdersRequest {
            customer_id: Some(customer.clone()),
            ..Default::default()
        })
        .await
        .expect("view orders")
        .into_inner();
    assert_eq!(kept.orders.len(), 1, "{kept:?}");
    assert_eq!(kept.orders[0].id, placed["id"].as_str().expect("id"));

    // A short smoke load of the whole journey with checkout: zero errors tolerated.
    let report = smoke_load(env!("CARGO_BIN_EXE_loadgen"), stack.graphql_url()).await;
    println!("{report}");

    stack.stop();
}
