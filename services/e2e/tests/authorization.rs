//! Who may do what, on `shop up` (the BFF verifies tokens itself when no Envoy is in
//! front): for every operation on another customer's cart, orders or profile, a call
//! without a token, with an expired, tampered or `alg: none` token, and with another
//! customer's token is refused and changes nothing; back-office operations need the
//! back-office role; logout ends the session; deleting the account removes the cart.

use std::time::{Duration, Instant};

use e2e::authz::*;
use e2e::embedded::start;
use e2e::ops::*;
use e2e::*;
use serde_json::{Value, json};

const UPDATE: &str =
    "mutation($input: UpdateProductInput!) { updateProduct(input: $input) { id price } }";
const DELETE_PRODUCT: &str =
    "mutation($input: DeleteProductInput!) { deleteProduct(input: $input) { id } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_reach_only_what_is_theirs() {
    build_binaries(&["shop"]);
    let data = tempfile::tempdir().expect("tempdir");
    let (_shop, banner) = start(data.path(), "authorization");
    let url = banner.graphql.clone();
    let anon = Graphql::new(&url);
    let user_db = format!("sqlite://{}", data.path().join("user.db").display());
    let (bob, _, open) = only_the_owner_reaches_their_things(&anon, &user_db).await;
    let (alice, _) = customer(&anon, "Alice").await;

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

    logout_ends_the_session(&anon).await;

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
