//! A hostile-input corpus against `shop up`: malformed JSON, wrong content types,
//! oversized bodies, alias and fragment bombs, deep nesting, and injections into every
//! string argument. Nothing may answer 5xx or an INTERNAL error, and the data must be
//! as it was (or, for a string that passed validation, stored verbatim).

use e2e::embedded::start;
use e2e::ops::*;
use e2e::*;
use serde_json::{Value, json};

/// Status, body and the error codes of one raw request.
async fn send(
    url: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (u16, String) {
    let mut req = reqwest::Client::new().post(url).body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let r = req.send().await.expect("a response");
    let status = r.status().as_u16();
    (status, r.text().await.unwrap_or_default())
}

#[track_caller]
fn sane(what: &str, (status, body): &(u16, String)) {
    assert!(*status < 500, "{what}: {status} {body}");
    assert!(!body.contains("\"INTERNAL\""), "{what}: {body}");
}

fn graphql(query: &str, variables: Value) -> Vec<u8> {
    json!({ "query": query, "variables": variables })
        .to_string()
        .into_bytes()
}

const INJECTIONS: &[&str] = &[
    "'; DROP TABLE products; --",
    "\" OR \"1\"=\"1",
    "Robert'); DELETE FROM carts WHERE ('1'='1",
    "{\"$gt\": \"\"}",
    "$where: function() { return true }",
    "../../../../etc/passwd",
    "<script>alert(1)</script>",
    "%00%27%22",
    "\u{0000}nul",
    "\u{202e}txet desrever",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 🛒",
    "${jndi:ldap://x/a}",
    "{{7*7}}",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_gets_no_5xx_and_changes_nothing() {
    build_binaries(&["shop"]);
    let data = tempfile::tempdir().expect("tempdir");
    let (_shop, banner) = start(data.path(), "hostile-input");
    let url = banner.graphql.clone();
    let anon = Graphql::new(&url);
    let boss = back_office(&anon).await;
    let (alice, _) = customer(&anon, "Alice").await;
    let products = anon.ok(PRODUCTS, json!({})).await;
    let product = products["viewProducts"]["nodes"][0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let cart = uuid::Uuid::new_v4().to_string();
    alice
        .ok(
            ADD,
            json!({"input": {"cartId": cart, "productId": product, "quantity": 1}}),
        )
        .await;
    let cart_before = view_at(&alice, &cart, 2).await;
    let token = alice.token();
    let json_ct = Some("application/json");

    // Malformed bodies and content types.
    let bodies: &[&[u8]] = &[
        b"",
        b"{",
        b"{\"query\":",
        b"[]",
        b"null",
        b"\"q\"",
        b"{\"query\": 1}",
        b"{\"query\": \"{ viewProducts { nodes { id } } }\", \"variables\": \"x\"}",
        b"{\"query\": \"{ viewProducts { nodes { id } } }\", \"operationName\": 7}",
        b"\xff\xfe\x00{",
        b"{\"query\": \"\\ud800\"}",
    ];
    for body in bodies {
        sane(
            &format!("body {:?}", String::from_utf8_lossy(body)),
            &send(&url, token, json_ct, body.to_vec()).await,
        );
    }
    let query = graphql("{ viewProducts { nodes { id } } }", json!({}));
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/graphql"),
    ] {
        let r = send(&url, token, ct, query.clone()).await;
        sane(&format!("content type {ct:?}"), &r);
        assert_eq!(r.0, 415, "{ct:?} must not run: {}", r.1);
    }
    let r = send(&url, token, json_ct, vec![b' '; 200 * 1024]).await;
    assert_eq!(r.0, 413, "200 KB");
    // 5 MB: refused from its Content-Length; the server may close before the client has
    // written it all, which the client sees as a broken pipe instead of the 413.
    let big = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .body(vec![b' '; 5 * 1024 * 1024])
        .send()
        .await;
    match big {
        Ok(r) => assert_eq!(r.status().as_u16(), 413),
        Err(e) => assert!(e.is_request(), "{e}"),
    }

    // Amplification: aliases, __typename, fragment bombs, cycles, depth.
    let aliases: String = (0..3000)
        .map(|i| format!("a{i}: viewProducts(first: 100) {{ nodes {{ id }} }} "))
        .collect();
    let typenames: String = (0..10_000).map(|i| format!("t{i}: __typename ")).collect();
    let mut bomb = String::from("query { ...F0 } ");
    for i in 0..30 {
        bomb.push_str(&format!(
            "fragment F{i} on Query {{ ...F{} ...F{} }} ",
            i + 1,
            i + 1
        ));
    }
    bomb.push_str("fragment F30 on Query { viewProducts { nodes { id } } }");
    let cycle = "query { ...A } fragment A on Query { ...B } fragment B on Query { ...A }";
    let mut deep = String::from("{ viewOrders(first: 1) { nodes { ");
    for _ in 0..40 {
        deep.push_str("customer { orders(first: 1) { nodes { ");
    }
    deep.push_str("id");
    deep.push_str(&" } } }".repeat(40));
    deep.push_str(" } } }");
    let fanout =
        "{ viewOrders(first: 100) { nodes { customer { orders(first: 100) { nodes { id } } } } } }";
    for (what, q) in [
        ("aliases", aliases),
        ("typenames", typenames),
        ("fragment bomb", bomb),
        ("cycle", cycle.to_string()),
        ("depth", deep),
        ("fan-out", fanout.to_string()),
    ] {
        let r = send(&url, token, json_ct, graphql(&q, json!({}))).await;
        sane(what, &r);
        assert!(
            r.1.contains("\"errors\""),
            "{what} must be refused: {}",
            &r.1[..r.1.len().min(300)]
        );
    }

    // Injections into every string argument: refused as bad input, or kept verbatim.
    let mut created = Vec::new();
    for (i, s) in INJECTIONS.iter().enumerate() {
        let v = boss
            .run(
                CREATE,
                json!({"input": {"name": s, "price": 100, "description": s}}),
            )
            .await;
        sane(&format!("createProduct {s:?}"), &(200, v.to_string()));
        if let Some(id) = v["data"]["createProduct"]["id"].as_str() {
            let got = anon
                .ok(
                    "query($id: ID!) { getProduct(id: $id) { name description } }",
                    json!({"id": id}),
                )
                .await;
            assert_eq!(got["getProduct"]["name"], json!(s), "stored verbatim");
            created.push(id.to_string());
        }
        let email = format!("x{i}@example.com");
        for input in [
            json!({"email": s, "name": "X", "password": PASSWORD}),
            json!({"email": email, "name": s, "password": PASSWORD}),
            json!({"email": format!("y{i}@example.com"), "name": "Y", "password": format!("{s}-padding")}),
        ] {
            let v = anon.run(REGISTER, json!({"input": input})).await;
            sane(&format!("registerCustomer {s:?}"), &(200, v.to_string()));
        }
        for (q, vars) in [
            (
                "mutation($e: String!) { login(input: {email: $e, password: $e}) { accessToken } }",
                json!({"e": s}),
            ),
            (VIEW, json!({"id": s})),
            (
                "query($id: ID!) { getProduct(id: $id) { id } }",
                json!({"id": s}),
            ),
            (
                "query($a: String) { viewProducts(after: $a) { nodes { id } } }",
                json!({"a": s}),
            ),
            (
                ADD,
                json!({"input": {"cartId": s, "productId": product, "quantity": 1}}),
            ),
            (
                ADD,
                json!({"input": {"cartId": cart, "productId": product, "quantity": 1, "idempotencyKey": s}}),
            ),
            (REFRESH, json!({"t": s})),
        ] {
            let v = alice.run(q, vars).await;
            sane(&format!("{q} with {s:?}"), &(200, v.to_string()));
        }
    }

    // Nothing else changed: the catalogue has only what was created, Alice's cart only
    // the adds that carried an idempotency key (each a new, valid add of one).
    let after = anon.ok(PRODUCTS, json!({})).await["viewProducts"]["nodes"]
        .as_array()
        .expect("nodes")
        .len();
    let before = products["viewProducts"]["nodes"]
        .as_array()
        .expect("nodes")
        .len();
    assert_eq!(after, (before + created.len()).min(50));
    let cart_after = alice.ok(VIEW, json!({"id": cart})).await["viewCart"].clone();
    let added =
        cart_after["version"].as_i64().unwrap_or(0) - cart_before["version"].as_i64().unwrap_or(0);
    assert!(added <= INJECTIONS.len() as i64, "{cart_after:#}");
    assert_eq!(cart_after["customerId"], cart_before["customerId"]);
}
