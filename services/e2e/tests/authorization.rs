//! Who may do what, on `shop up` (the BFF verifies tokens itself when no Envoy is in
//! front): for every operation on another customer's cart, orders or profile, a call
//! without a token, with an expired, tampered or `alg: none` token, and with another
//! customer's token is refused and changes nothing; back-office operations need the
//! back-office role; logout ends the session; deleting the account removes the cart.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use e2e::embedded::start;
use e2e::ops::*;
use e2e::*;
use keel::auth::{Claims, KeyPair};
use serde_json::{Value, json};

const GET_ORDER: &str = "query($id: ID!) { getOrder(id: $id) { id total } }";
const ORDERS_OF: &str = "query($c: ID) { viewOrders(customerId: $c) { nodes { id } } }";
const PROFILE_OF: &str = "query($c: ID) { viewProfile(customerId: $c) { id email } }";
const DELETE_OF: &str =
    "mutation($c: ID) { deleteAccount(input: { customerId: $c }) { customerId } }";
const UPDATE: &str =
    "mutation($input: UpdateProductInput!) { updateProduct(input: $input) { id price } }";
const DELETE_PRODUCT: &str =
    "mutation($input: DeleteProductInput!) { deleteProduct(input: $input) { id } }";

/// The HTTP status and body of one request with `token` as bearer.
async fn post(url: &str, token: Option<&str>, query: &str, variables: Value) -> (u16, Value) {
    let mut req = reqwest::Client::new().post(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.expect("a JSON body"))
}

fn code_of(v: &Value) -> &str {
    v["errors"][0]["extensions"]["code"].as_str().unwrap_or("")
}

/// Tokens that must never pass: expired (signed with the real key), tampered
/// (roles raised, signature kept), unsigned (`alg: none`), and not a JWT at all.
async fn bad_tokens(data: &std::path::Path, good: &str) -> Vec<(&'static str, String)> {
    let url = format!("sqlite://{}", data.join("user.db").display());
    let db = keel::sql::Db::connect(&url, &keel::sql::ConnectOptions::new(1, 5), None)
        .await
        .expect("the user database");
    let row = keel::sql::query("SELECT kid, seed FROM auth_keys")
        .fetch_one(&db)
        .await
        .expect("a signing key");
    let seed: [u8; 32] = row
        .bytes("seed")
        .expect("seed")
        .try_into()
        .expect("32 bytes");
    let key = KeyPair::from_seed(row.text("kid").expect("kid"), seed);
    let parts: Vec<&str> = good.split('.').collect();
    let mut claims: Claims =
        serde_json::from_slice(&B64.decode(parts[1]).expect("base64")).expect("claims");
    let mut expired = claims.clone();
    expired.iat -= 3600;
    expired.exp = expired.iat + 60;
    claims.roles.push("back-office".into());
    let raised = B64.encode(serde_json::to_vec(&claims).expect("json"));
    let none_header = B64.encode(json!({"alg": "none", "kid": key.kid}).to_string());
    vec![
        ("expired", key.sign(&expired)),
        ("tampered", format!("{}.{raised}.{}", parts[0], parts[2])),
        ("alg none", format!("{none_header}.{raised}.")),
        ("garbage", "not-a-token".to_string()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_reach_only_what_is_theirs() {
    build_binaries(&["shop"]);
    let data = tempfile::tempdir().expect("tempdir");
    let (_shop, banner) = start(data.path(), "authorization");
    let url = banner.graphql.clone();
    let anon = Graphql::new(&url);

    // Anybody browses.
    let products = anon.ok(PRODUCTS, json!({})).await["viewProducts"]["nodes"].clone();
    let product = products[0]["id"]
        .as_str()
        .expect("a demo product")
        .to_string();
    let other = products[1]["id"]
        .as_str()
        .expect("a demo product")
        .to_string();

    // Bob shops: one cart checked out, one left open with two lines.
    let (bob, bob_id) = customer(&anon, "Bob").await;
    let (alice, _) = customer(&anon, "Alice").await;
    let paid = uuid::Uuid::new_v4().to_string();
    let open = uuid::Uuid::new_v4().to_string();
    for (cart, p) in [(&paid, &product), (&open, &product), (&open, &other)] {
        bob.ok(
            ADD,
            json!({"input": {"cartId": cart, "productId": p, "quantity": 2}}),
        )
        .await;
    }
    let order = bob.ok(CHECKOUT, json!({"input": {"cartId": paid}})).await["checkout"]["id"]
        .as_str()
        .expect("an order")
        .to_string();
    let before = view_at(&bob, &open, 3).await;
    assert_eq!(
        before["customerId"],
        json!(bob_id),
        "claimed by its first user"
    );

    let bobs: Vec<(&str, &str, Value)> = vec![
        ("viewCart", VIEW, json!({"id": open})),
        (
            "addProduct",
            ADD,
            json!({"input": {"cartId": open, "productId": product, "quantity": 1}}),
        ),
        (
            "removeProduct",
            REMOVE,
            json!({"input": {"cartId": open, "productId": product}}),
        ),
        (
            "changeProductQuantity",
            CHANGE,
            json!({"input": {"cartId": open, "productId": product, "quantity": 5}}),
        ),
        ("resetCart", RESET, json!({"input": {"cartId": open}})),
        ("checkout", CHECKOUT, json!({"input": {"cartId": open}})),
        ("getOrder", GET_ORDER, json!({"id": order})),
        ("viewOrders", ORDERS_OF, json!({"c": bob_id})),
        ("viewProfile", PROFILE_OF, json!({"c": bob_id})),
        ("deleteAccount", DELETE_OF, json!({"c": bob_id})),
    ];
    let bad = bad_tokens(data.path(), bob.token().expect("a token")).await;
    for (op, query, vars) in &bobs {
        let (status, v) = post(&url, None, query, vars.clone()).await;
        assert_eq!(
            (status, code_of(&v)),
            (200, "UNAUTHENTICATED"),
            "{op} without a token: {v:#}"
        );
        let (status, v) = post(&url, alice.token(), query, vars.clone()).await;
        assert_eq!(
            (status, code_of(&v)),
            (200, "FORBIDDEN"),
            "{op} with another customer's token: {v:#}"
        );
        for (what, token) in &bad {
            let (status, v) = post(&url, Some(token), query, vars.clone()).await;
            assert_eq!(
                (status, code_of(&v)),
                (401, "UNAUTHENTICATED"),
                "{op} with a {what} token: {v:#}"
            );
        }
    }

    // Nothing changed: Bob's cart, order, orders and profile are as they were.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(bob.ok(VIEW, json!({"id": open})).await["viewCart"], before);
    assert_eq!(
        bob.ok(GET_ORDER, json!({"id": order})).await["getOrder"]["id"],
        json!(order)
    );
    let mine = bob.ok(ORDERS, json!({})).await;
    assert_eq!(
        mine["viewOrders"]["nodes"].as_array().map(Vec::len),
        Some(1),
        "{mine:#}"
    );
    assert_eq!(
        bob.ok(PROFILE, json!({})).await["viewProfile"]["id"],
        json!(bob_id)
    );
    let theirs = alice.ok(ORDERS, json!({})).await;
    assert_eq!(
        theirs["viewOrders"]["nodes"],
        json!([]),
        "Alice sees none of Bob's orders"
    );

    // The back-office operations need the back-office role.
    let boss = back_office(&anon).await;
    let create = json!({"input": {"name": "Oolong", "price": 900}});
    for client in [&anon, &alice] {
        let (code, _) = client.error_code(CREATE, create.clone()).await;
        let want = if client.token().is_some() {
            "FORBIDDEN"
        } else {
            "UNAUTHENTICATED"
        };
        assert_eq!(code, want);
    }
    let created = boss.ok(CREATE, create).await["createProduct"]["id"].clone();
    let update = json!({"input": {"id": created, "name": "Oolong", "price": 950}});
    let (code, _) = alice.error_code(UPDATE, update.clone()).await;
    assert_eq!(code, "FORBIDDEN");
    boss.ok(UPDATE, update).await;
    let delete = json!({"input": {"id": created}});
    let (code, _) = alice.error_code(DELETE_PRODUCT, delete.clone()).await;
    assert_eq!(code, "FORBIDDEN");
    boss.ok(DELETE_PRODUCT, delete).await;

    // A session refreshes (the old refresh token is spent), then logout ends it.
    let carol =
        json!({"input": {"email": "carol@example.com", "name": "Carol", "password": PASSWORD}});
    anon.ok(REGISTER, carol).await;
    let (carol, session) = anon.login("Carol@Example.com", PASSWORD).await;
    let (wrong, _) = anon
        .error_code(
            "mutation { login(input: {email: \"carol@example.com\", password: \"wrong password\"}) { accessToken } }",
            json!({}),
        )
        .await;
    assert_eq!(wrong, "UNAUTHENTICATED");
    let first = session["refreshToken"].clone();
    let renewed = anon.ok(REFRESH, json!({"t": first})).await["refreshSession"].clone();
    let (spent, _) = anon.error_code(REFRESH, json!({"t": first})).await;
    assert_eq!(spent, "UNAUTHENTICATED", "a refresh token works once");
    carol.ok(PROFILE, json!({})).await;
    carol.ok(LOGOUT, json!({})).await;
    let (ended, _) = anon
        .error_code(REFRESH, json!({"t": renewed["refreshToken"]}))
        .await;
    assert_eq!(
        ended, "UNAUTHENTICATED",
        "logout ends the session's refresh token"
    );
    let (status, v) = post(&url, carol.token(), PROFILE, json!({})).await;
    assert_eq!(
        (status, code_of(&v)),
        (401, "UNAUTHENTICATED"),
        "and its access token: {v:#}"
    );

    // Bob deletes his account: he cannot log in again, and his open cart goes too.
    bob.ok(DELETE_ACCOUNT, json!({})).await;
    let (status, _) = post(&url, bob.token(), PROFILE, json!({})).await;
    assert_eq!(status, 401, "the deleted account's session ended");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, err) = alice.error_code(VIEW, json!({"id": open})).await;
        let deleted = code == "FAILED_PRECONDITION"
            && err["message"]
                .as_str()
                .is_some_and(|m| m.contains("deleted"));
        if code == "NOT_FOUND" || deleted {
            break;
        }
        assert_eq!(code, "FORBIDDEN", "{err:#}");
        assert!(
            Instant::now() < deadline,
            "Bob's cart was not deleted with his account"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keys_are_published_and_a_password_is_never_stored() {
    build_binaries(&["shop"]);
    let data = tempfile::tempdir().expect("tempdir");
    let (_shop, banner) = start(data.path(), "authorization-keys");
    let base = banner.graphql.trim_end_matches("/graphql").to_string();
    let jwks: Value = reqwest::get(format!("{base}/.well-known/jwks.json"))
        .await
        .expect("jwks")
        .json()
        .await
        .expect("JSON");
    assert_eq!(jwks["keys"][0]["kty"], "OKP", "{jwks:#}");
    assert_eq!(jwks["keys"][0]["alg"], "EdDSA");
    let anon = Graphql::new(&banner.graphql);
    let (code, err) = anon
        .error_code(
            REGISTER,
            json!({"input": {"email": "short@example.com", "name": "Short", "password": "short"}}),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT", "{err:#}");
    customer(&anon, "Dave").await;
    for file in ["user.db", "user.db-wal"] {
        let bytes = std::fs::read(data.path().join(file)).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(PASSWORD), "{file} holds a plain password");
    }
}
