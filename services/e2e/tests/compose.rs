//! The generated compose file, run for real: `xtask/infra/compose.sh` builds every image
//! it names without a registry (the servers from the sources the real-server harness
//! installs, the shop's processes from `generated/docker/Dockerfile` packaging the
//! binaries cargo built for the other journeys), brings it up with podman on the
//! project's own internal network, health checks gating the start order as the file
//! says; then the customer journey with checkout and a short load go through the BFF's
//! Envoy, the only published port, from the host; then everything goes down. On a
//! failure each container's log is printed.
//!
//! One compose project per machine: the test holds a machine-wide lock on it.

use std::time::{Duration, Instant};

use e2e::compose::{Compose, k8s_images_are_built};
use e2e::ops::*;
use e2e::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generated_compose_file_runs_the_journey_with_podman() {
    // The shop's processes as cargo built them for the other journeys.
    let mut packages: Vec<&str> = shop_system::DEPLOYABLES.iter().map(|d| d.package).collect();
    packages.sort_unstable();
    packages.dedup();
    build_binaries(&packages);
    let stack = Compose::up(&bin_dir());
    k8s_images_are_built();

    let anonymous = &Graphql::new(stack.graphql_url());
    journey(anonymous).await;
    // A short load of the whole journey with checkout: zero errors tolerated.
    let report = smoke_load(env!("CARGO_BIN_EXE_loadgen"), stack.graphql_url()).await;
    println!("{report}");
    stack.down();
}

/// The customer journey through GraphQL: the back office's catalogue, a customer's
/// cart (add, change, remove), checkout, the empty cart and the order.
async fn journey(anonymous: &Graphql) {
    let admin = back_office(anonymous).await;
    let names = ["Matcha", "Anpan", "Soba"].map(|n| format!("{n} {}", uuid::Uuid::new_v4()));
    let mut ids = Vec::new();
    for (name, price) in names.iter().zip([1200, 180, 650]) {
        let d = admin
            .ok(CREATE, json!({ "input": { "name": name, "price": price } }))
            .await;
        ids.push(d["createProduct"]["id"].as_str().expect("id").to_string());
    }
    let listed = anonymous.ok(PRODUCTS, json!({})).await;
    for name in &names {
        assert!(
            listed["viewProducts"]["nodes"]
                .as_array()
                .expect("nodes")
                .iter()
                .any(|p| p["name"] == json!(name)),
            "{name} listed: {listed:#}"
        );
    }
    let (matcha, anpan, soba) = (&ids[0], &ids[1], &ids[2]);

    let (taro, customer) = ops::customer(anonymous, "Taro").await;
    let gql = &taro;
    let cart = uuid::Uuid::now_v7().to_string();
    // The BFF claims the new cart for Taro (version 1) before his first add.
    let first = json!({ "input": { "cartId": cart, "productId": matcha, "quantity": 1 } });
    assert_eq!(version(&gql.ok(ADD, first).await, "addProduct"), 2);
    // The query side sees the edits through Kafka and its read model.
    let c = ops::edit_cart(gql, &cart, [matcha, anpan, soba]).await;
    assert_eq!(c["customerId"], json!(customer));
    assert_eq!(
        cart_lines(&c),
        [(names[1].clone(), 2), (names[0].clone(), 3)],
        "{c:#}"
    );

    let checkout = json!({ "input": { "cartId": cart } });
    let placed = gql.ok(CHECKOUT, checkout.clone()).await["checkout"].clone();
    assert_eq!(placed["status"], json!("placed"), "{placed:#}");
    assert_eq!(placed["customerId"], json!(customer));
    assert_eq!(placed["cartVersion"], json!(6));
    assert_eq!(placed["total"], json!(3 * 1200 + 2 * 180));
    let again = gql.ok(CHECKOUT, checkout).await["checkout"].clone();
    assert_eq!(again, placed, "a retried checkout returns the same order");

    let c = view_at(gql, &cart, 7).await;
    assert_eq!(c["items"], json!([]));
    let started = Instant::now();
    loop {
        let d = gql.ok(ORDERS, json!({})).await;
        let nodes = d["viewOrders"]["nodes"].as_array().expect("nodes").clone();
        if nodes.len() == 1 {
            assert_eq!(nodes[0]["id"], placed["id"]);
            assert_eq!(nodes[0]["status"], json!("placed"));
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{d:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    gql.ok(LOGOUT, json!({})).await;
    let (code, err) = gql.error_code(ORDERS, json!({})).await;
    assert_eq!(code, "UNAUTHENTICATED", "logged out: {err}");
}
