//! The first services end to end: PostgreSQL and Kafka for real, the product, user and
//! BFF binaries each behind its generated Envoy, driven through the BFF's Envoy.

use std::time::Duration;

use e2e::*;
use serde_json::json;

const BFF_EDGE: &str = "http://127.0.0.1:50200";

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
    let _ports = lock_ports();
    build_binaries(&["product-service", "user-service", "bff"]);
    infra_up(&["postgres", "kafka", "envoy"]);
    let product_db = TestDatabase::create("e2e_product").await;
    let user_db = TestDatabase::create("e2e_user").await;
    let bin = bin_dir();
    let kafka = infra_var("KAFKA_BOOTSTRAP_SERVERS");

    let mut product = spawn(
        "product",
        &bin.join("product-service"),
        &[],
        &[
            ("LISTEN_ADDR", "127.0.0.1:50101".into()),
            ("DATABASE_URL", product_db.url.clone()),
        ],
    );
    let mut user = spawn(
        "user",
        &bin.join("user-service"),
        &[],
        &[
            ("LISTEN_ADDR", "127.0.0.1:50106".into()),
            ("DATABASE_URL", user_db.url.clone()),
            ("KAFKA_BROKERS", kafka),
        ],
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
    let mut envoys = [envoy("bff"), envoy("product"), envoy("user")];
    {
        let [a, b, c] = &mut envoys;
        let mut all: Vec<&mut Process> = vec![&mut product, &mut user, &mut bff, a, b, c];
        wait_http_ok(
            &format!("{BFF_EDGE}/healthz"),
            Duration::from_secs(60),
            &mut all,
        )
        .await;
    }
    wait_envoy_healthy(50301, "product", Duration::from_secs(30)).await;
    wait_envoy_healthy(50306, "user", Duration::from_secs(30)).await;
    let gql = Graphql::new(format!("{BFF_EDGE}/graphql"));

    // Products: create, page through in a stable order.
    let mut ids = Vec::new();
    for (name, price) in [
        ("Matcha", 1200),
        ("Anpan", 180),
        ("Soba", 650),
        ("Daifuku", 240),
        ("Yuzu", 90),
    ] {
        let d = gql.ok(CREATE, json!({ "input": { "name": name, "price": price, "description": "from the e2e test" } })).await;
        assert_eq!(d["createProduct"]["price"], json!(price));
        ids.push(d["createProduct"]["id"].as_str().expect("id").to_string());
    }
    assert_eq!(
        product_names(&gql).await,
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
    let (code, err) = gql
        .error_code(
            CREATE,
            json!({ "input": { "name": "Free lunch", "price": -1 } }),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT", "{err}");
    assert!(err.to_string().contains("price"), "{err}");
    let (code, _) = gql
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
        product_names(&gql).await.len(),
        5,
        "bad inputs changed nothing"
    );

    // Customers: register, view, delete, gone.
    let d = gql
        .ok(
            "mutation($input: RegisterCustomerInput!) { registerCustomer(input: $input) { customerId version } }",
            json!({ "input": { "email": "hanako@example.jp", "name": "Hanako" } }),
        )
        .await;
    let customer = d["registerCustomer"]["customerId"]
        .as_str()
        .expect("customer id")
        .to_string();
    assert_eq!(d["registerCustomer"]["version"], json!(1));
    let profile = "query($id: ID!) { viewProfile(customerId: $id) { id email name version } }";
    let d = gql.ok(profile, json!({ "id": customer })).await;
    assert_eq!(d["viewProfile"]["email"], json!("hanako@example.jp"));
    let (code, _) = gql
        .error_code(
            "mutation($input: RegisterCustomerInput!) { registerCustomer(input: $input) { customerId } }",
            json!({ "input": { "email": "hanako@example.jp", "name": "Hanako again" } }),
        )
        .await;
    assert_eq!(code, "CONFLICT");
    let (code, _) = gql
        .error_code(
            "mutation($input: RegisterCustomerInput!) { registerCustomer(input: $input) { customerId } }",
            json!({ "input": { "email": "not an email", "name": "" } }),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT");
    let d = gql
        .ok(
            "mutation($input: DeleteAccountInput!) { deleteAccount(input: $input) { customerId version } }",
            json!({ "input": { "customerId": customer } }),
        )
        .await;
    assert_eq!(d["deleteAccount"]["version"], json!(2));
    let (code, _) = gql.error_code(profile, json!({ "id": customer })).await;
    assert_eq!(code, "NOT_FOUND");

    // A short smoke load through the same stack: zero errors tolerated.
    let load = tokio::task::spawn_blocking(|| {
        std::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
            .args([
                "--url",
                &format!("{BFF_EDGE}/graphql"),
                "--customers",
                "4",
                "--duration",
                "5",
            ])
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
    for p in [&mut bff, &mut user, &mut product] {
        assert!(
            p.terminate(Duration::from_secs(10)),
            "{} ignored SIGTERM:\n{}",
            p.name,
            p.log_tail()
        );
    }
}
