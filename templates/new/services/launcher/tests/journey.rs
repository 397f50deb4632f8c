//! The system answers GraphQL: `{{system}} up` in this process on a fresh data folder, then
//! the catalogue (generated whole) and the tasks (their rules in services/tasks).

use serde_json::{Value, json};

async fn graphql(url: &str, query: &str, variables: Value) -> Value {
    let response: Value = reqwest::Client::new()
        .post(url)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .expect("the BFF answers")
        .json()
        .await
        .expect("a JSON response");
    response
}

fn data(response: &Value) -> &Value {
    assert!(response["errors"].is_null(), "{response:#}");
    &response["data"]
}

#[tokio::test]
async fn items_and_tasks_through_graphql() {
    let folder = tempfile::tempdir().expect("data folder");
    let system = keel::embedded::spawn({{crate}}_launcher::SYSTEM, folder.path().to_path_buf())
        .await
        .expect("the system starts");
    let url = system.graphql_url.clone();

    let created = graphql(
        &url,
        "mutation($input: CreateItemInput!) { createItem(input: $input) { id name price } }",
        json!({ "input": { "name": "Lamp", "price": 2500 } }),
    )
    .await;
    assert_eq!(data(&created)["createItem"]["name"], "Lamp");
    let listed = graphql(&url, "{ listItems { nodes { name price } } }", json!({})).await;
    assert_eq!(
        data(&listed)["listItems"]["nodes"],
        json!([{ "name": "Lamp", "price": 2500 }])
    );
    let refused = graphql(
        &url,
        "mutation { createItem(input: { name: \"\", price: -1 }) { id } }",
        json!({}),
    )
    .await;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{refused:#}"
    );

    let added = graphql(
        &url,
        "mutation { addTask(input: { title: \" Water the plants \" }) { taskId version } }",
        json!({}),
    )
    .await;
    let task = data(&added)["addTask"]["taskId"]
        .as_str()
        .expect("id")
        .to_string();
    let done = graphql(
        &url,
        "mutation($id: ID!) { completeTask(input: { taskId: $id }) { version } }",
        json!({ "id": task }),
    )
    .await;
    assert_eq!(data(&done)["completeTask"]["version"], 2);
    let viewed = graphql(
        &url,
        "query($id: ID!) { viewTask(taskId: $id) { title done version } }",
        json!({ "id": task }),
    )
    .await;
    assert_eq!(
        data(&viewed)["viewTask"],
        json!({ "title": "Water the plants", "done": true, "version": 2 })
    );
    let renamed = graphql(
        &url,
        "mutation($id: ID!) { renameTask(input: { taskId: $id, title: \"Later\" }) { version } }",
        json!({ "id": task }),
    )
    .await;
    assert_eq!(
        renamed["errors"][0]["extensions"]["code"], "FAILED_PRECONDITION",
        "{renamed:#}"
    );

    system.stop().await.expect("stops cleanly");
}
