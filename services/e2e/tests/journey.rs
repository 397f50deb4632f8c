//! The first services end to end: PostgreSQL and Kafka for real, the product, user and
//! BFF binaries each behind its generated Envoy, driven through the BFF's Envoy. The
//! catalogue is changed by the back-office user, a customer's account by its customer.

use std::time::Duration;

use e2e::ops::{DELETE_ACCOUNT, PASSWORD, PROFILE, back_office};
use e2e::*;
use serde_json::json;

const CREATE: &str = "mutation($input: CreateProductInput!) { createProduct(input: $input) { id name price description } }";
const PAGE: &str = "query($first: Int, $after: String) { viewProducts(first: $first, after: $after) { nodes { id name price } pageInfo { endCursor hasNextPage } } }";

async fn product_names(gql: &Graphql) -> Vec<String> {
    let mut names = Vec::new();
    let mut after = serde_json::Value::Null;
    for _ in 0..20 {
        let d = gql.ok(PAGE, json!({ "first": 2, "after": after })).await;
        let page = &d["viewProducts"];
        let nodes = page["nodes"].as_array().expect("nodes");
        assert!(nodes.len() <= 2, "page larger than asked: {page}");
        names.extend(
            nodes
                .iter()
                .map(|n| n["name"].as_str().expect("name").to_string()),
        );
        if !page["pageInfo"]["hasNextPage"]
            .as_bool()
            .expect("hasNextPage")
        {
            return names;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
    panic!("paging never ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn products_and_customers_through_envoy() {
    let stack = start_shop(&["product", "user", "bff"]).await;
    let gql = stack.graphql();
    let admin = back_office(gql).await;

    // Products: create (the back office), page through (anybody) in a stable order.
    let mut ids = Vec::new();
    for (name, price) in [
        ("Matcha", 1200),
        ("Anpan", 180),
        ("Soba", 650),
        ("Daifuku", 240),
        ("Yuzu", 90),
    ] {
        let d = admin.ok(CREATE, json!({ "input": { "name": name, "price": price, "description": "from the e2e test" } })).await;
        assert_eq!(d["createProduct"]["price"], json!(price));
        ids.push(d["createProduct"]["id"].as_str().expect("id").to_string());
    }
    assert_eq!(
        product_names(gql).await,
        ["Anpan", "Daifuku", "Matcha", "Soba", "Yuzu"]
    );
    let d = gql
        .ok(
            "query($id: ID!) { getProduct(id: $id) { name price } }",
            json!({ "id": ids[0] }),
        )
        .await;
    assert_eq!(d["getProduct"], json!({ "name": "Matcha", "price": 1200 }));

    // Bad inputs: each a clear error, nothing changed.
    let (code, err) = admin
        .error_code(
            CREATE,
            json!({ "input": { "name": "Free lunch", "price": -1 } }),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT", "{err}");
    assert!(err.to_string().contains("price"), "{err}");
    let (code, _) = admin
        .error_code(
            CREATE,
            json!({ "input": { "name": "x".repeat(201), "price": 1 } }),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT");
    let (code, _) = gql
        .error_code(
            "query { getProduct(id: \"not-a-uuid\") { name } }",
            json!({}),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT");
    let unknown = uuid::Uuid::now_v7().to_string();
    let (code, _) = gql
        .error_code(
            "query($id: ID!) { getProduct(id: $id) { name } }",
            json!({ "id": unknown }),
        )
        .await;
    assert_eq!(code, "NOT_FOUND");
    // Customer.orders -> Order.customer -> ... is a cycle; past the depth limit it is refused.
    let cycle = (0..6).fold("id".to_string(), |inner, _| {
        format!("orders {{ nodes {{ customer {{ {inner} }} }} }}")
    });
    let (code, err) = gql
        .error_code(
            &format!("query($id: ID!) {{ viewProfile(customerId: $id) {{ {cycle} }} }}"),
            json!({ "id": unknown }),
        )
        .await;
    assert_eq!(code, "QUERY_TOO_DEEP", "{err}");
    assert_eq!(
        product_names(gql).await.len(),
        5,
        "bad inputs changed nothing"
    );

    // Customers: register, log in, view, delete, gone.
    let d = gql
        .ok(
            "mutation($input: RegisterCustomerInput!) { registerCustomer(input: $input) { customerId version } }",
            json!({ "input": { "email": "hanako@example.jp", "name": "Hanako", "password": PASSWORD } }),
        )
        .await;
    let customer = d["registerCustomer"]["customerId"]
        .as_str()
        .expect("customer id")
        .to_string();
    assert_eq!(d["registerCustomer"]["version"], json!(1));
    let (hanako, session) = gql.login("hanako@example.jp", PASSWORD).await;
    assert_eq!(session["roles"], json!(["customer"]), "{session:#}");
    let profile = "query($id: ID!) { viewProfile(customerId: $id) { id email name version } }";
    let d = hanako.ok(profile, json!({ "id": customer })).await;
    assert_eq!(d["viewProfile"]["email"], json!("hanako@example.jp"));
    // Without customerId it is the caller's; somebody else's is not theirs to see.
    let d = hanako.ok(PROFILE, json!({})).await;
    assert_eq!(d["viewProfile"]["id"], json!(customer));
    let (code, err) = admin.error_code(profile, json!({ "id": customer })).await;
    assert_eq!(code, "FORBIDDEN", "{err}");
    let (code, _) = gql
        .error_code(
            "mutation($input: RegisterCustomerInput!) { registerCustomer(input: $input) { customerId } }",
            json!({ "input": { "email": "hanako@example.jp", "name": "Hanako again", "password": PASSWORD } }),
        )
        .await;
    assert_eq!(code, "CONFLICT");
    let (code, _) = gql
        .error_code(
            "mutation($input: RegisterCustomerInput!) { registerCustomer(input: $input) { customerId } }",
            json!({ "input": { "email": "not an email", "name": "", "password": PASSWORD } }),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT");
    let d = hanako.ok(DELETE_ACCOUNT, json!({})).await;
    assert_eq!(d["deleteAccount"]["customerId"], json!(customer));
    assert_eq!(d["deleteAccount"]["version"], json!(2));
    // Gone: her session ended with her account (the BFF no longer takes its token), she
    // cannot log in again, and the user service has no such customer.
    let (code, err) = hanako.error_code(PROFILE, json!({})).await;
    assert_eq!(code, "UNAUTHENTICATED", "{err}");
    let login = "mutation($input: LoginInput!) { login(input: $input) { accessToken } }";
    let (code, err) = gql
        .error_code(
            login,
            json!({ "input": { "email": "hanako@example.jp", "password": PASSWORD } }),
        )
        .await;
    assert_eq!(code, "UNAUTHENTICATED", "{err}");
    let mut users =
        shop_user::pb::user_service_client::UserServiceClient::connect(stack.edge("user"))
            .await
            .expect("user client");
    let status = users
        .view_profile(shop_user::pb::ViewProfileRequest {
            customer_id: customer.clone(),
        })
        .await
        .expect_err("the profile of a deleted account");
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");

    // A short smoke load through the same stack: zero errors tolerated.
    let url = stack.graphql_url();
    let load = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
            .args(["--url", &url, "--customers", "4", "--duration", "5"])
            .args(["--products", "5", "--no-cart"])
            .output()
    })
    .await
    .expect("join")
    .expect("loadgen runs");
    let report = String::from_utf8_lossy(&load.stdout);
    assert!(
        load.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&load.stderr)
    );
    assert!(
        report.contains("registerCustomer") && report.ends_with("0 errors\n"),
        "{report}"
    );
    println!("{report}");

    // Graceful shutdown on SIGTERM.
    stack.stop_within(Duration::from_secs(10));
}
