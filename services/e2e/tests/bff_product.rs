//! The BFF in-process against the REAL product service (in-process too, on an
//! ephemeral port) on a fresh database of the real PostgreSQL that
//! `xtask/infra/infra.sh up postgres` starts. No Envoy here: PRODUCT_URL points
//! straight at the service. If PostgreSQL cannot be started the test fails.
//! Changing the catalogue needs the back-office role: the real user service (the
//! identity, in-process through the launcher, on a database of its own, without its
//! relay) registers and logs in the back-office user.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use e2e::ops::{BACK_OFFICE_EMAIL, PASSWORD, REGISTER};
use keel::testing::TestDatabase;
use serde_json::{Value as Json, json};
use tower::ServiceExt;

#[derive(Clone)]
struct Gql {
    router: Router,
    /// Sent as `Authorization: Bearer …`.
    token: Option<String>,
}

impl Gql {
    async fn run(&self, query: &str, variables: Json) -> Json {
        let body = json!({"query": query, "variables": variables}).to_string();
        let mut req = Request::post("/graphql")
            .header("content-type", "application/json")
            .header("x-request-id", "bff-product-it");
        if let Some(token) = &self.token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        let req = req.body(Body::from(body)).expect("request");
        let res = self.router.clone().oneshot(req).await.expect("infallible");
        assert_eq!(res.status(), StatusCode::OK);
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .expect("body");
        serde_json::from_slice(&bytes).expect("JSON response")
    }

    /// Runs an operation that must succeed and returns its data.
    async fn ok(&self, query: &str, variables: Json) -> Json {
        let r = self.run(query, variables).await;
        assert_eq!(r["errors"], Json::Null, "{r:#}");
        r["data"].clone()
    }

    /// Registers `email` (with [`PASSWORD`]) and logs in: a client calling as them.
    async fn registered(&self, email: &str) -> Gql {
        let input = json!({"input": {"email": email, "name": "Somebody", "password": PASSWORD}});
        self.ok(REGISTER, input).await;
        let login = "mutation($input: LoginInput!) { login(input: $input) { accessToken roles } }";
        let d = self
            .ok(
                login,
                json!({"input": {"email": email, "password": PASSWORD}}),
            )
            .await;
        let token = d["login"]["accessToken"].as_str().expect("an access token");
        Gql {
            token: Some(token.to_string()),
            ..self.clone()
        }
    }

    /// Every product, in list order, read page by page.
    async fn all(&self) -> Vec<Json> {
        let mut out = vec![];
        let mut after = Json::Null;
        loop {
            let d = self
                .ok(
                    "query($after: String) { viewProducts(first: 100, after: $after) {
                        nodes { id name description price createdAt }
                        pageInfo { endCursor hasNextPage } } }",
                    json!({"after": after}),
                )
                .await;
            let page = &d["viewProducts"];
            out.extend(page["nodes"].as_array().cloned().unwrap_or_default());
            if page["pageInfo"]["hasNextPage"] != json!(true) {
                return out;
            }
            after = page["pageInfo"]["endCursor"].clone();
        }
    }
}

fn code(r: &Json) -> &str {
    r["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("<none>")
}

fn violated_fields(r: &Json) -> Vec<String> {
    r["errors"][0]["extensions"]["fieldViolations"]
        .as_array()
        .map(|v| {
            v.iter()
                .filter_map(|f| f["field"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

const CREATE: &str = "mutation($input: CreateProductInput!) {
    createProduct(input: $input) { id name description price createdAt } }";
const UPDATE: &str = "mutation($input: UpdateProductInput!) {
    updateProduct(input: $input) { id name description price createdAt } }";
const DELETE: &str = "mutation($id: ID!) { deleteProduct(input: {id: $id}) { id } }";
const GET: &str = "query($id: ID!) { getProduct(id: $id) { id name description price createdAt } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_crud_against_the_real_product_service() {
    let db = TestDatabase::create("bff_it").await;
    let store = keel::sql::Db::connect(
        &db.url,
        &keel::sql::ConnectOptions::default(),
        Some(&shop_product::MIGRATIONS),
    )
    .await
    .expect("connect to the test database and apply migrations");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let product_url = format!("http://{}", listener.local_addr().expect("addr"));
    let service = tonic::transport::Server::builder()
        .add_service(shop_product::product_server(Arc::new(
            shop_product::ProductCrud::new(store.clone(), Arc::new(())),
        )))
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
    let service = tokio::spawn(service);

    // The identity: the user service as `shop up` starts it, granting the back office.
    let user_db = TestDatabase::create("bff_it_user").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let user_url = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop_user, stopped) = tokio::sync::watch::channel(false);
    let user = (shop::SYSTEM.start)(
        "user",
        &[("DATABASE_URL", user_db.url.clone())],
        &[
            ("RELAY", "false"),
            ("AUTH_BACK_OFFICE_EMAILS", BACK_OFFICE_EMAIL),
        ],
        listener,
        stopped,
    )
    .expect("the user service starts");
    let user = tokio::spawn(user);

    let config = shop_bff::Config {
        upstreams: shop_bff::UpstreamConfig {
            product_url,
            user_url,
            ..Default::default()
        },
        ..Default::default()
    };
    let anonymous = Gql {
        router: shop_bff::app(&config).expect("the BFF builds"),
        token: None,
    };
    let gql = anonymous.registered(BACK_OFFICE_EMAIL).await;

    // ---- only the back office changes the catalogue
    let input = json!({"input": {"name": "Durian", "price": 1}});
    let r = anonymous.run(CREATE, input.clone()).await;
    assert_eq!(code(&r), "UNAUTHENTICATED", "{r:#}");
    let customer = anonymous.registered("customer@example.com").await;
    let r = customer.run(CREATE, input).await;
    assert_eq!(code(&r), "FORBIDDEN", "{r:#}");

    // ---- create three
    let mut made = vec![];
    for (name, description, price) in [
        ("Cherry", Json::Null, 300),
        ("Apple", json!("Crisp and red"), 100),
        ("Banana", Json::Null, 200),
    ] {
        let d = gql
            .ok(
                CREATE,
                json!({"input": {"name": name, "description": description, "price": price}}),
            )
            .await;
        let p = d["createProduct"].clone();
        assert_eq!(p["name"], name);
        assert_eq!(p["description"], description);
        assert_eq!(p["price"], json!(price), "Money is a JSON integer");
        let created = p["createdAt"].as_str().unwrap_or("");
        assert!(
            created.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(created).is_ok(),
            "{created}"
        );
        assert!(uuid::Uuid::parse_str(p["id"].as_str().unwrap_or("")).is_ok());
        made.push(p);
    }
    let (cherry, apple, banana) = (made[0].clone(), made[1].clone(), made[2].clone());

    // ---- page through them (anybody may): first 2, then after endCursor
    let page = "query($after: String) { viewProducts(first: 2, after: $after) {
        nodes { id name price } pageInfo { endCursor hasNextPage } } }";
    let d = anonymous.ok(page, json!({"after": null})).await;
    let first = &d["viewProducts"];
    let names: Vec<&str> = first["nodes"]
        .as_array()
        .map(|n| n.iter().filter_map(|p| p["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["Apple", "Banana"]);
    assert_eq!(first["pageInfo"]["hasNextPage"], true);
    let cursor = first["pageInfo"]["endCursor"].clone();
    assert!(cursor.is_string(), "{first:#}");
    let d = anonymous.ok(page, json!({"after": cursor})).await;
    let second = &d["viewProducts"];
    assert_eq!(
        second["nodes"],
        json!([{"id": cherry["id"], "name": "Cherry", "price": 300}])
    );
    assert_eq!(
        second["pageInfo"],
        json!({"endCursor": null, "hasNextPage": false})
    );

    // ---- get
    let d = anonymous.ok(GET, json!({"id": apple["id"]})).await;
    assert_eq!(d["getProduct"], apple);

    // ---- update
    let d = gql
        .ok(
            UPDATE,
            json!({"input": {"id": apple["id"], "name": "Apricot", "description": null, "price": 150}}),
        )
        .await;
    let updated = d["updateProduct"].clone();
    assert_eq!(
        updated,
        json!({"id": apple["id"], "name": "Apricot", "description": null, "price": 150,
               "createdAt": apple["createdAt"]})
    );
    assert_eq!(
        gql.ok(GET, json!({"id": apple["id"]})).await["getProduct"],
        updated
    );

    // ---- delete
    let d = gql.ok(DELETE, json!({"id": banana["id"]})).await;
    assert_eq!(d["deleteProduct"], json!({"id": banana["id"]}));
    let r = gql.run(GET, json!({"id": banana["id"]})).await;
    assert_eq!(r["data"], json!({"getProduct": null}), "{r:#}");
    assert_eq!(code(&r), "NOT_FOUND", "{r:#}");

    // ---- bad input changes nothing
    let before = gql.all().await;
    assert_eq!(before.len(), 2);
    let unknown = uuid::Uuid::new_v4().to_string();

    let r = gql
        .run(CREATE, json!({"input": {"name": "Durian", "price": -1}}))
        .await;
    assert_eq!(code(&r), "BAD_USER_INPUT", "{r:#}");
    assert_eq!(violated_fields(&r), ["price"], "{r:#}");
    assert_eq!(r["data"], Json::Null);

    let r = gql
        .run(
            CREATE,
            json!({"input": {"name": "x".repeat(201), "price": 1}}),
        )
        .await;
    assert_eq!(code(&r), "BAD_USER_INPUT", "{r:#}");
    assert_eq!(violated_fields(&r), ["name"], "{r:#}");

    let r = gql
        .run(
            UPDATE,
            json!({"input": {"id": cherry["id"], "name": "", "price": -5}}),
        )
        .await;
    assert_eq!(code(&r), "BAD_USER_INPUT", "{r:#}");
    assert_eq!(violated_fields(&r), ["name", "price"], "{r:#}");

    let r = gql.run(GET, json!({"id": "not-a-uuid"})).await;
    assert_eq!(r["data"], json!({"getProduct": null}), "{r:#}");
    assert_eq!(code(&r), "BAD_USER_INPUT", "{r:#}");
    assert_eq!(violated_fields(&r), ["id"], "{r:#}");

    let r = gql.run(DELETE, json!({"id": "not-a-uuid"})).await;
    assert_eq!(code(&r), "BAD_USER_INPUT", "{r:#}");

    let r = gql
        .run("{ viewProducts(first: 101) { nodes { id } } }", json!({}))
        .await;
    assert_eq!(code(&r), "BAD_USER_INPUT", "{r:#}");
    assert_eq!(violated_fields(&r), ["first"], "{r:#}");

    let r = gql
        .run(
            "{ viewProducts(after: \"garbage\") { nodes { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&r), "BAD_USER_INPUT", "{r:#}");
    assert_eq!(violated_fields(&r), ["after"], "{r:#}");

    let r = gql.run(GET, json!({"id": unknown})).await;
    assert_eq!(r["data"], json!({"getProduct": null}), "{r:#}");
    assert_eq!(code(&r), "NOT_FOUND", "{r:#}");

    let r = gql
        .run(
            UPDATE,
            json!({"input": {"id": unknown, "name": "Ghost", "price": 1}}),
        )
        .await;
    assert_eq!(code(&r), "NOT_FOUND", "{r:#}");

    let r = gql.run(DELETE, json!({"id": unknown})).await;
    assert_eq!(code(&r), "NOT_FOUND", "{r:#}");

    assert_eq!(
        gql.all().await,
        before,
        "a rejected request changed the data"
    );

    stop_user.send(true).expect("the user service runs");
    user.await
        .expect("join")
        .expect("the user service stops cleanly");
    service.abort();
    store.close().await;
    drop(db);
    drop(user_db);
}
