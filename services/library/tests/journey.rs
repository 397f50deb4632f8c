//! The library through GraphQL, on embedded storage (`library up` in this process) and
//! on the real servers (each deployable its own process behind its Envoy): the
//! catalogue generated but for one rule (a reference, filters, an order, a unique ISBN, an
//! idempotent create, the appraisal behind `kind: custom`), members (CQS + ES) and loans (CQRS + ES: the rules of a card,
//! the `exists` check of a borrowed book, and a member leaving closing their card
//! through the event subscription across services).

use std::time::{Duration, Instant};

use keel::testing::process::Graphql;
use serde_json::{Value, json};

const ADD_BOOK: &str = "mutation($input: AddBookInput!) { addBook(input: $input) { id title } }";
const BORROW: &str = "mutation($card: ID!, $book: ID!) { borrow(input: { cardId: $card, bookId: $book }) { version } }";
const CARD: &str =
    "query($id: ID!) { viewCard(cardId: $id) { closed version loans { bookId renewals } } }";

async fn journey(gql: &Graphql) {
    let author = gql
        .ok(
            "mutation { addAuthor(input: { name: \"Ursula K. Le Guin\", countryCode: \"US\" }) { id } }",
            json!({}),
        )
        .await["addAuthor"]["id"]
        .clone();
    let mut books = Vec::new();
    for (title, isbn, year) in [
        ("A Wizard of Earthsea", "9780553383041", 1968),
        ("The Dispossessed", "9780061054884", 1974),
        ("The Left Hand of Darkness", "9780441478125", 1969),
    ] {
        let input = json!({ "title": title, "isbn": isbn, "authorId": author, "genre": "fiction", "year": year, "replacementCost": 1999 });
        books.push(gql.ok(ADD_BOOK, json!({ "input": input })).await["addBook"]["id"].clone());
    }
    let again = json!({ "title": "Copy", "isbn": "9780553383041", "authorId": author, "genre": "fiction", "year": 1968, "replacementCost": 1999 });
    assert_eq!(
        gql.error_code(ADD_BOOK, json!({ "input": again })).await.0,
        "CONFLICT"
    );
    let listed = gql
        .ok(
            "query($a: ID!) { listBooks(authorId: $a, genre: \"fiction\", first: 2) { nodes { title year } pageInfo { hasNextPage } } }",
            json!({ "a": author }),
        )
        .await;
    assert_eq!(
        listed["listBooks"]["nodes"],
        json!([{ "title": "The Dispossessed", "year": 1974 }, { "title": "The Left Hand of Darkness", "year": 1969 }])
    );
    assert_eq!(listed["listBooks"]["pageInfo"]["hasNextPage"], true);

    // A field with a spec `default:` may be left out of a create.
    let defaulted = json!({ "title": "Lavinia", "isbn": "9780151014248", "authorId": author, "genre": "fiction", "year": 2008 });
    let lavinia = gql
        .ok(
            "mutation($input: AddBookInput!) { addBook(input: $input) { replacementCost } }",
            json!({ "input": defaulted }),
        )
        .await;
    assert_eq!(lavinia["addBook"]["replacementCost"], 2000, "{lavinia:#}");

    // The one hand-written rule of the catalogue (`kind: custom`): older books cost more.
    let appraise = "mutation($b: ID!, $base: Money!) { appraise(input: { bookId: $b, base: $base }) { replacementCost } }";
    let cost = |v: Value| v["appraise"]["replacementCost"].clone();
    let earthsea = json!({ "b": books[0], "base": 1500 });
    assert_eq!(cost(gql.ok(appraise, earthsea.clone()).await), 1500);
    assert_eq!(
        cost(gql.ok(appraise, earthsea).await),
        1500,
        "the same request, the same cost"
    );
    let missing = json!({ "b": "00000000-0000-7000-8000-000000000002", "base": 1500 });
    assert_eq!(gql.error_code(appraise, missing).await.0, "NOT_FOUND");
    let negative = json!({ "b": books[0], "base": -1 });
    assert_eq!(gql.error_code(appraise, negative).await.0, "BAD_USER_INPUT");

    let member = gql
        .ok(
            "mutation { join(input: { name: \"Ged\", email: \"ged@roke.example\" }) { memberId } }",
            json!({}),
        )
        .await["join"]["memberId"]
        .clone();
    let card = gql
        .ok(
            "mutation($m: ID!) { openCard(input: { memberId: $m }) { cardId } }",
            json!({ "m": member }),
        )
        .await["openCard"]["cardId"]
        .clone();
    for book in &books {
        gql.ok(BORROW, json!({ "card": card, "book": book })).await;
    }
    assert_eq!(
        gql.error_code(BORROW, json!({ "card": card, "book": books[0] }))
            .await
            .0,
        "FAILED_PRECONDITION"
    );
    // The strong query answers from the event store: no waiting for the read model.
    let checked = gql
        .ok(
            "query($id: ID!) { checkCard(cardId: $id) { version loans { bookId } } }",
            json!({ "id": card }),
        )
        .await;
    assert_eq!(checked["checkCard"]["version"], 4, "{checked:#}");
    let nowhere = "00000000-0000-7000-8000-000000000001";
    assert_eq!(
        gql.error_code(BORROW, json!({ "card": card, "book": nowhere }))
            .await
            .0,
        "NOT_FOUND"
    );
    gql.ok(
        "mutation($c: ID!, $b: ID!) { renew(input: { cardId: $c, bookId: $b }) { version } }",
        json!({ "c": card, "b": books[1] }),
    )
    .await;
    gql.ok(
        "mutation($c: ID!, $b: ID!) { giveBack(input: { cardId: $c, bookId: $b }) { version } }",
        json!({ "c": card, "b": books[2] }),
    )
    .await;
    // Opened, three borrowed, one renewed, one given back: version 6.
    let seen = eventually(gql, card.clone(), |c| c["version"] == 6).await;
    let mut loans: Vec<(String, i64)> = seen["loans"]
        .as_array()
        .expect("loans")
        .iter()
        .map(|l| {
            let book = l["bookId"].as_str().unwrap_or("").to_string();
            (book, l["renewals"].as_i64().unwrap_or(-1))
        })
        .collect();
    loans.sort();
    let mut expected: Vec<(String, i64)> = vec![
        (books[0].as_str().unwrap_or("").to_string(), 0),
        (books[1].as_str().unwrap_or("").to_string(), 1),
    ];
    expected.sort();
    assert_eq!(loans, expected, "{seen:#}");

    gql.ok(
        "mutation($m: ID!) { leave(input: { memberId: $m }) { version } }",
        json!({ "m": member }),
    )
    .await;
    let closed = eventually(gql, card.clone(), |c| c["closed"] == true).await;
    assert_eq!(closed["closed"], true);
    assert_eq!(
        gql.error_code(BORROW, json!({ "card": card, "book": books[2] }))
            .await
            .0,
        "FAILED_PRECONDITION"
    );
    let gone = "query($m: ID!) { viewMember(memberId: $m) { name } }";
    assert_eq!(
        gql.error_code(gone, json!({ "m": member })).await.0,
        "NOT_FOUND"
    );
}

/// The card as the read model shows it once `done` holds (the query side lags).
async fn eventually(gql: &Graphql, card: Value, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = gql.run(CARD, json!({ "id": card })).await;
        let c = r["data"]["viewCard"].clone();
        if done(&c) {
            return c;
        }
        assert!(Instant::now() < deadline, "the card never got there: {r:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_library_through_graphql() {
    let folder = tempfile::tempdir().expect("data folder");
    let system = keel::embedded::spawn(library_launcher::SYSTEM, folder.path().to_path_buf())
        .await
        .expect("the library starts");
    let gql = Graphql::new(system.graphql_url.clone());
    journey(&gql).await;
    system.stop().await.expect("stops cleanly");
}

#[tokio::test]
async fn the_library_on_real_servers_through_envoy() {
    let system = keel::testing::stack::System {
        name: library_system::SYSTEM,
        table: library_system::DEPLOYABLES,
        root: std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")),
        env: Vec::new(),
    };
    let names = system.names();
    let stack = keel::testing::stack::Stack::start(system, &names).await;
    journey(stack.graphql()).await;
    stack.stop();
}
