//! Who may do what, checked the same way on `shop up` (the BFF verifies tokens) and on
//! the real servers through the BFF's Envoy (`jwt_authn` first, then the BFF): for every
//! operation on another customer's cart, orders or profile, a call without a token, with
//! an expired, tampered, `alg: none` or garbage token and with another customer's token
//! is refused with its code and changes nothing.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use keel::auth::{Claims, KeyPair};
use serde_json::{Value, json};

use crate::Graphql;
use crate::ops::*;

pub const GET_ORDER: &str = "query($id: ID!) { getOrder(id: $id) { id total } }";
pub const ORDERS_OF: &str = "query($c: ID) { viewOrders(customerId: $c) { nodes { id } } }";
pub const PROFILE_OF: &str = "query($c: ID) { viewProfile(customerId: $c) { id email } }";
pub const DELETE_OF: &str =
    "mutation($c: ID) { deleteAccount(input: { customerId: $c }) { customerId } }";

/// The HTTP status and body of one request with `token` as bearer.
pub async fn post(url: &str, token: Option<&str>, query: &str, variables: Value) -> (u16, Value) {
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

/// The code of the first error of a GraphQL answer ("" without one).
pub fn code_of(v: &Value) -> &str {
    v["errors"][0]["extensions"]["code"].as_str().unwrap_or("")
}

/// Tokens that must never pass: expired (signed with the identity's real key, read from
/// its database at `user_db`), tampered (roles raised, signature kept), unsigned
/// (`alg: none`), and not a JWT at all.
pub async fn bad_tokens(user_db: &str, good: &str) -> Vec<(&'static str, String)> {
    let db = keel::sql::Db::connect(user_db, &keel::sql::ConnectOptions::new(1, 5), None)
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

fn id_at(v: &Value) -> String {
    v.as_str().expect("an id").to_string()
}

/// Bob shops (one cart checked out, one left open with two lines), then every operation
/// on his things is tried without a token, with Alice's and with each bad token; his
/// cart, order, orders and profile are as they were after. `user_db` is the identity's
/// database (for the real signing key). Returns Bob's client, his id and his open cart.
pub async fn only_the_owner_reaches_their_things(
    anon: &Graphql,
    user_db: &str,
) -> (Graphql, String, String) {
    let url = anon.url().to_string();
    let boss = back_office(anon).await;
    let mut products = Vec::new();
    for (name, price) in [("Hojicha", 700), ("Mochi", 220)] {
        let d = boss
            .ok(CREATE, json!({"input": {"name": name, "price": price}}))
            .await;
        products.push(id_at(&d["createProduct"]["id"]));
    }
    let (product, other) = (&products[0], &products[1]);

    let (bob, bob_id) = customer(anon, "Bob").await;
    let (alice, _) = customer(anon, "Alice").await;
    let paid = uuid::Uuid::new_v4().to_string();
    let open = uuid::Uuid::new_v4().to_string();
    for (cart, p) in [(&paid, product), (&open, product), (&open, other)] {
        bob.ok(
            ADD,
            json!({"input": {"cartId": cart, "productId": p, "quantity": 2}}),
        )
        .await;
    }
    let order =
        id_at(&bob.ok(CHECKOUT, json!({"input": {"cartId": paid}})).await["checkout"]["id"]);
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
    let bad = bad_tokens(user_db, bob.token().expect("a token")).await;
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
    (bob, bob_id, open)
}

/// A session refreshes (the old refresh token is spent), then logout ends its refresh
/// token and, on this BFF, its access token at once.
pub async fn logout_ends_the_session(anon: &Graphql) {
    let email = format!("carol-{}@example.com", uuid::Uuid::new_v4().simple());
    let carol = json!({"input": {"email": email, "name": "Carol", "password": PASSWORD}});
    anon.ok(REGISTER, carol).await;
    let (carol, session) = anon.login(&email.to_uppercase(), PASSWORD).await;
    let wrong = format!(
        "mutation {{ login(input: {{email: \"{email}\", password: \"wrong password\"}}) {{ accessToken }} }}"
    );
    let (code, _) = anon.error_code(&wrong, json!({})).await;
    assert_eq!(code, "UNAUTHENTICATED");
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
    let (status, v) = post(anon.url(), carol.token(), PROFILE, json!({})).await;
    assert_eq!(
        (status, code_of(&v)),
        (401, "UNAUTHENTICATED"),
        "and its access token: {v:#}"
    );
}

/// Runs `graphql-http`'s server audit (pinned in `services/e2e/audit/`) against `url`
/// and asserts every audit passed or is a notice: no error, no warning.
pub fn graphql_over_http_audit(url: &str) {
    let script = crate::repo_root().join("services/e2e/audit/run.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg(url)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the audit failed to run (node and npm must be installed):\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    for r in &results {
        println!("{} {} {}", r["status"], r["id"], r["name"]);
        if r["status"] != "ok" {
            println!(
                "    {} (HTTP {}): {}",
                r["reason"], r["httpStatus"], r["body"]
            );
        }
    }
    let failed: Vec<&Value> = results
        .iter()
        .filter(|r| r["status"] == "error" || r["status"] == "warn")
        .collect();
    assert!(results.len() > 50, "only {} audits ran", results.len());
    assert!(
        failed.is_empty(),
        "{} audits failed: {failed:#?}",
        failed.len()
    );
}
