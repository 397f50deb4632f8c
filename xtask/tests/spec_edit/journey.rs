//! The edited spec's new CRUD service and new Product field through GraphQL, in `shop up`,
//! on the real servers through the generated Envoys, and in the regenerated compose
//! stack (podman). Written into the scratch
//! workspace's `services/e2e/tests/` by `xtask/tests/spec_edit.rs`; not part of the
//! repository's own build. The names used here are the ones the generator derives from
//! the edit (`Supplier`, `viewSuppliers`, `colour`, …).

use std::time::{Duration, Instant};

use e2e::*;
use serde_json::{Value, json};

const CREATE: &str = "mutation($input: CreateSupplierInput!) { createSupplier(input: $input) { id name country rating createdAt } }";
const LIST: &str = "query($country: String, $first: Int, $after: String) { viewSuppliers(country: $country, first: $first, after: $after) { nodes { id name country } pageInfo { hasNextPage endCursor } } }";
const GET: &str = "query($id: ID!) { getSupplier(id: $id) { id name rating } }";
const UPDATE: &str = "mutation($input: UpdateSupplierInput!) { updateSupplier(input: $input) { id name rating } }";
const DELETE: &str = "mutation($id: ID!) { deleteSupplier(input: {id: $id}) { id } }";
const PRODUCT: &str = "mutation($input: CreateProductInput!) { createProduct(input: $input) { id colour } }";
const GET_PRODUCT: &str = "query($id: ID!) { getProduct(id: $id) { name colour price } }";

async fn drive(gql: &Graphql) {
    let mut ids = Vec::new();
    for (name, country) in [("Umami", "JP"), ("Alpine", "CH"), ("Kobe", "JP"), ("Nara", "JP")] {
        let d = gql
            .ok(CREATE, json!({ "input": { "name": name, "country": country, "rating": 5 } }))
            .await;
        assert_eq!(d["createSupplier"]["rating"], 5, "{d}");
        assert!(d["createSupplier"]["createdAt"].is_string(), "{d}");
        ids.push(d["createSupplier"]["id"].as_str().expect("id").to_string());
    }

    // The filter, the spec's order (name, id) and cursor paging.
    let mut names = Vec::new();
    let mut after = Value::Null;
    loop {
        let d = gql
            .ok(LIST, json!({ "country": "JP", "first": 2, "after": after }))
            .await;
        let page = &d["viewSuppliers"];
        for n in page["nodes"].as_array().expect("nodes") {
            names.push(n["name"].as_str().expect("name").to_string());
        }
        if page["pageInfo"]["hasNextPage"] != json!(true) {
            break;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(names, ["Kobe", "Nara", "Umami"]);

    let d = gql.ok(GET, json!({ "id": ids[1] })).await;
    assert_eq!(d["getSupplier"]["name"], "Alpine", "{d}");
    let d = gql
        .ok(UPDATE, json!({ "input": { "id": ids[1], "name": "Alpine AG", "country": "CH" } }))
        .await;
    assert_eq!((d["updateSupplier"]["name"].clone(), d["updateSupplier"]["rating"].clone()), (json!("Alpine AG"), Value::Null));

    // A constraint of the spec (country is two letters, rating at most 5): coded, and
    // nothing is written.
    let (code, err) = gql
        .error_code(CREATE, json!({ "input": { "name": "Bad", "country": "JPN", "rating": 9 } }))
        .await;
    assert_eq!(code, "BAD_USER_INPUT", "{err}");
    let d = gql.ok(LIST, json!({ "first": 50 })).await;
    assert_eq!(d["viewSuppliers"]["nodes"].as_array().map(Vec::len), Some(4));

    gql.ok(DELETE, json!({ "id": ids[0] })).await;
    let (code, err) = gql.error_code(GET, json!({ "id": ids[0] })).await;
    assert_eq!(code, "NOT_FOUND", "{err}");
    let (code, err) = gql.error_code(DELETE, json!({ "id": ids[0] })).await;
    assert_eq!(code, "NOT_FOUND", "{err}");

    // The field added to an existing entity goes all the way through.
    let d = gql
        .ok(PRODUCT, json!({ "input": { "name": "Matcha", "price": 1200, "colour": "green" } }))
        .await;
    let id = d["createProduct"]["id"].clone();
    let d = gql.ok(GET_PRODUCT, json!({ "id": id })).await;
    assert_eq!(d["getProduct"]["colour"], "green", "{d}");
}

/// `shop up` on a fresh folder; the GraphQL URL from its banner.
fn shop_up(data: &std::path::Path) -> (Process, String) {
    let mut shop = spawn(
        "shop",
        &bin_dir().join("shop"),
        &["up", "--data", data.to_str().expect("utf-8"), "--listen", "127.0.0.1:0", "--no-demo"],
        &[
            ("RUST_LOG", "warn".to_string()),
            ("AUTH_BACK_OFFICE_EMAILS", e2e::ops::BACK_OFFICE_EMAIL.to_string()),
        ],
    );
    let started = Instant::now();
    loop {
        let out = shop.output();
        if out.contains("Ctrl-C stops it.") {
            let url = out
                .lines()
                .find_map(|l| l.trim().strip_prefix("GraphQL").map(|u| u.trim().to_string()))
                .expect("the banner names the GraphQL URL");
            return (shop, url);
        }
        assert!(shop.is_running(), "shop up exited:\n{}", shop.log_tail());
        assert!(started.elapsed() < Duration::from_secs(120), "shop up did not serve:\n{}", shop.log_tail());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The edited spec's `bff.limits.max_body_bytes` (20000) holds at `url`: a 30 KB body is
/// refused with 413, a 15 KB one is executed.
async fn the_body_limit_is_the_specs(url: &str) {
    let post = |size: usize| {
        let padding = " ".repeat(size);
        let body = json!({ "query": format!("{{ __typename{padding}}}") });
        reqwest::Client::new().post(url).json(&body).send()
    };
    assert_eq!(post(30_000).await.expect("big").status().as_u16(), 413);
    assert_eq!(post(15_000).await.expect("small").status().as_u16(), 200);
}

/// The back-office the BFF at `url` serves knows the new entity: its generated metadata
/// lists `Supplier` with its operations and constraints, and the screens are there.
async fn the_back_office_lists_the_new_entity(url: &str) {
    let base = url.strip_suffix("/graphql").expect("a /graphql URL");
    let get = |path: &str| reqwest::get(format!("{base}{path}"));
    let meta = get("/assets/gen/backoffice.js").await.expect("metadata");
    assert_eq!(meta.status().as_u16(), 200);
    let meta = meta.text().await.expect("text");
    for expected in ["\"name\": \"Supplier\"", "\"field\": \"createSupplier\"", "\"field\": \"viewSuppliers\"", "\"name\": \"country\""] {
        assert!(meta.contains(expected), "{expected} in backoffice.js:\n{meta}");
    }
    let client = get("/assets/gen/client.js").await.expect("client").text().await.expect("text");
    assert!(client.contains("export async function createSupplier("), "{client}");
    let screens = get("/back-office/").await.expect("back-office");
    assert_eq!(screens.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_new_service_answers_graphql_embedded_and_through_envoys() {
    build_binaries(&["shop"]);
    let data = tempfile::tempdir().expect("data folder");
    let (mut shop, url) = shop_up(data.path());
    // With the shop's `auth:`, the new operations are for a logged-in user (the default
    // audience) and product writes for the back office: one user who is both.
    drive(&e2e::ops::back_office(&Graphql::new(url.clone())).await).await;
    the_body_limit_is_the_specs(&url).await;
    the_back_office_lists_the_new_entity(&url).await;
    assert!(shop.interrupt(Duration::from_secs(20)).is_some_and(|s| s.success()));

    let stack = start_shop(&["supplier", "product", "user", "bff"]).await;
    drive(&e2e::ops::back_office(stack.graphql()).await).await;
    the_body_limit_is_the_specs(&stack.graphql_url()).await;
    stack.stop();

}

/// The compose stack of the edit: images built by the regenerated Dockerfile from these
/// binaries, the regenerated compose file with the new service and its Envoy, run with
/// podman like the shop's (`services/e2e/tests/compose.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_new_service_answers_graphql_through_compose() {
    let mut packages: Vec<&str> = shop_system::DEPLOYABLES.iter().map(|d| d.package).collect();
    packages.sort_unstable();
    packages.dedup();
    assert!(packages.contains(&"shop-supplier"), "{packages:?}");
    build_binaries(&packages);
    let compose = e2e::compose::Compose::up(&bin_dir());
    drive(&e2e::ops::back_office(&Graphql::new(compose.graphql_url())).await).await;
    compose.down();
}
