//! The GraphQL operations of the customer journey, shared by the journeys.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::Graphql;

pub const CREATE: &str =
    "mutation($input: CreateProductInput!) { createProduct(input: $input) { id } }";
pub const PRODUCTS: &str = "query { viewProducts(first: 50) { nodes { id name price } } }";
/// The load generator's product listing, page by page (`first: 100` while it sets up).
pub const PRODUCT_PAGE: &str = "query($first: Int, $after: String) { viewProducts(first: $first, after: $after) { nodes { id price } pageInfo { endCursor hasNextPage } } }";
pub const REGISTER: &str = "mutation($input: RegisterCustomerInput!) { registerCustomer(input: $input) { customerId version } }";
pub const ADD: &str =
    "mutation($input: AddProductInput!) { addProduct(input: $input) { cartId version } }";
pub const CHANGE: &str = "mutation($input: ChangeProductQuantityInput!) { changeProductQuantity(input: $input) { cartId version } }";
pub const REMOVE: &str =
    "mutation($input: RemoveProductInput!) { removeProduct(input: $input) { cartId version } }";
pub const RESET: &str =
    "mutation($input: ResetCartInput!) { resetCart(input: $input) { cartId version } }";
pub const VIEW: &str = "query($id: ID!) { viewCart(cartId: $id) { id customerId version items { productId quantity product { name price } } } }";
pub const CHECKOUT: &str = "mutation($input: CheckoutInput!) { checkout(input: $input) { id customerId cartId cartVersion total status details { productId productName unitPrice quantity } } }";
pub const ORDERS: &str = "query { viewOrders(first: 10) { nodes { id total status cartVersion details { productName unitPrice quantity } } pageInfo { hasNextPage } } }";
pub const DELETE_ACCOUNT: &str = "mutation { deleteAccount(input: {}) { customerId version } }";

/// The password every test customer registers with.
pub const PASSWORD: &str = "correct horse battery";
/// The back-office user the test stacks grant (`AUTH_BACK_OFFICE_EMAILS`).
pub const BACK_OFFICE_EMAIL: &str = "back-office@example.com";
pub const LOGOUT: &str = "mutation { logout }";
pub const REFRESH: &str =
    "mutation($t: String!) { refreshSession(refreshToken: $t) { accessToken refreshToken } }";
pub const PROFILE: &str = "query { viewProfile { id email name } }";

/// Registers a customer with a fresh email, logs in: their client and their id.
pub async fn customer(gql: &Graphql, name: &str) -> (Graphql, String) {
    let email = format!(
        "{}-{}@example.com",
        name.to_lowercase(),
        uuid::Uuid::new_v4().simple()
    );
    let input = serde_json::json!({"input": {"email": email, "name": name, "password": PASSWORD}});
    let id = gql.ok(REGISTER, input).await["registerCustomer"]["customerId"]
        .as_str()
        .expect("a customer id")
        .to_string();
    let (client, _) = gql.login(&email, PASSWORD).await;
    (client, id)
}

/// The back-office user's client: registered on first use (a second registration of
/// the email is a conflict, which is fine), then logged in.
pub async fn back_office(gql: &Graphql) -> Graphql {
    let input = serde_json::json!({"input": {"email": BACK_OFFICE_EMAIL, "name": "Back Office", "password": PASSWORD}});
    let v = gql.run(REGISTER, input).await;
    if let Some(e) = v.get("errors").filter(|e| !e.is_null()) {
        assert_eq!(
            e[0]["extensions"]["code"], "CONFLICT",
            "registering the back-office user: {v:#}"
        );
    }
    gql.login(BACK_OFFICE_EMAIL, PASSWORD).await.0
}

/// Polls viewCart until the read model reached `version`.
pub async fn view_at(gql: &Graphql, cart: &str, version: i64) -> Value {
    view_at_timed(gql, cart, version).await.0
}

/// [`view_at`], and how long the command took to become visible (from the first poll).
pub async fn view_at_timed(gql: &Graphql, cart: &str, version: i64) -> (Value, Duration) {
    let started = Instant::now();
    loop {
        let v = gql.run(VIEW, serde_json::json!({ "id": cart })).await;
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

/// The edits both checkout journeys make to a cart holding Matcha ×1 (version 2): Anpan
/// ×2 and Soba ×1 added, Matcha changed to 3, Soba removed, each answer's version checked
/// (3 to 6); the cart as the query side shows it at version 6.
pub async fn edit_cart(gql: &Graphql, cart: &str, [matcha, anpan, soba]: [&str; 3]) -> Value {
    let line = |product: &str, quantity: Option<i64>| {
        let mut input = serde_json::json!({ "cartId": cart, "productId": product });
        if let Some(q) = quantity {
            input["quantity"] = q.into();
        }
        serde_json::json!({ "input": input })
    };
    let steps = [
        (ADD, "addProduct", line(anpan, Some(2))),
        (ADD, "addProduct", line(soba, Some(1))),
        (CHANGE, "changeProductQuantity", line(matcha, Some(3))),
        (REMOVE, "removeProduct", line(soba, None)),
    ];
    for (expected, (query, field, vars)) in (3..).zip(steps) {
        assert_eq!(
            version(&gql.ok(query, vars).await, field),
            expected,
            "{field}"
        );
    }
    view_at(gql, cart, 6).await
}

/// `data.<field>.version` of a command's answer.
pub fn version(d: &Value, field: &str) -> i64 {
    d[field]["version"].as_i64().expect("version")
}

/// (product name, quantity) of each line of a viewed cart, sorted.
pub fn cart_lines(cart: &Value) -> Vec<(String, i64)> {
    let mut lines: Vec<(String, i64)> = cart["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            (
                i["product"]["name"].as_str().expect("name").to_string(),
                i["quantity"].as_i64().expect("quantity"),
            )
        })
        .collect();
    lines.sort();
    lines
}

/// A short load of the whole journey with checkout through `graphql_url` (the
/// `loadgen` binary at `loadgen`); zero errors tolerated. CI runs a 5-second smoke
/// load of 4 customers; `LOAD_CUSTOMERS` / `LOAD_SECONDS` make it the longer runs
/// recorded in BENCHMARKS.md. Returns the report.
pub async fn smoke_load(loadgen: &'static str, graphql_url: String) -> String {
    let load = tokio::task::spawn_blocking(move || {
        std::process::Command::new(loadgen)
            .args(["--url", &graphql_url, "--products", "5", "--checkout"])
            .args([
                "--customers",
                &std::env::var("LOAD_CUSTOMERS").unwrap_or_else(|_| "4".into()),
            ])
            .args([
                "--duration",
                &std::env::var("LOAD_SECONDS").unwrap_or_else(|_| "5".into()),
            ])
            .output()
    })
    .await
    .expect("join")
    .expect("loadgen runs");
    let report = String::from_utf8_lossy(&load.stdout).to_string();
    assert!(
        load.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&load.stderr)
    );
    assert!(
        report.contains("checkout") && report.ends_with("0 errors\n"),
        "{report}"
    );
    report
}
