//! A framework, not one app: `cargo xtask new` makes a project outside this repository
//! that builds and answers GraphQL, and it grows as a user would grow it: a new entity
//! with its own CRUD service, added to the spec and generated with the project's own
//! `cargo xtask generate` (the defaults found from the current directory), needs no Rust.
//! The project's `cargo test` runs its scaffolded journey (items and tasks through
//! `<name> up` on embedded storage) and one added here for the new service.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn xtask() -> Command {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("command runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

const NOTE: &str = "  Note:
    doc: A line written down.
    fields:
      id: uuid
      text: { type: string, min_len: 1, max_len: 500 }
      pinned: { type: bool, default: false }

";

const NOTES: &str = "  notes:
    pattern: crud
    entity: Note
    store: postgres
    use_cases:
      ListNotes: { kind: list, order_by: [text] }
      CreateNote: { kind: create }

";

const NOTES_JOURNEY: &str = r#"
use serde_json::{Value, json};

#[tokio::test]
async fn a_service_added_to_the_spec_answers() {
    let folder = tempfile::tempdir().expect("data folder");
    let system = keel::embedded::spawn(lend_launcher::SYSTEM, folder.path().to_path_buf())
        .await
        .expect("starts");
    let url = system.graphql_url.clone();
    let client = reqwest::Client::new();
    let ask = |query: &'static str| {
        let request = client.post(&url).json(&json!({ "query": query }));
        async move { request.send().await.expect("answers").json::<Value>().await.expect("json") }
    };
    let created = ask("mutation { createNote(input: { text: \"Buy milk\", pinned: true }) { text pinned } }").await;
    assert_eq!(created["data"]["createNote"], json!({ "text": "Buy milk", "pinned": true }), "{created:#}");
    let listed = ask("{ listNotes { nodes { text } } }").await;
    assert_eq!(listed["data"]["listNotes"]["nodes"], json!([{ "text": "Buy milk" }]), "{listed:#}");
    system.stop().await.expect("stops cleanly");
}
"#;

fn edit_spec(spec: &Path) {
    let text = fs::read_to_string(spec).expect("spec");
    let text = text
        .replacen("\nservices:\n", &format!("\n{NOTE}services:\n"), 1)
        .replacen("\nbff:\n", &format!("\n{NOTES}bff:\n"), 1)
        .replacen("queries: [ListItems,", "queries: [ListNotes, ListItems,", 1)
        .replacen(
            "mutations: [CreateItem,",
            "mutations: [CreateNote, CreateItem,",
            1,
        );
    assert!(text.contains("ListNotes, ListItems"), "{text}");
    fs::write(spec, text).expect("spec written");
}

#[test]
fn a_new_project_builds_answers_graphql_and_grows_without_rust() {
    let scratch = tempfile::tempdir().expect("scratch");
    let project: PathBuf = scratch.path().join("lend");
    let said = run(xtask().current_dir(scratch.path()).args(["new", "lend"]));
    assert!(said.contains("cargo run --release -p lend -- up"), "{said}");
    for file in [
        "Cargo.toml",
        "Cargo.lock",
        "README.md",
        "spec/lend.yaml",
        "spec/lend.lock",
        "generated/graphql/schema.graphql",
        "generated/rust/launcher/Cargo.toml",
        "services/lend/src/main.rs",
        "services/tasks/src/aggregate.rs",
    ] {
        assert!(project.join(file).is_file(), "{file} missing");
    }
    let refused = xtask()
        .current_dir(scratch.path())
        .args(["new", "lend"])
        .output()
        .expect("runs");
    assert!(
        !refused.status.success(),
        "`new` wrote into a non-empty folder"
    );

    edit_spec(&project.join("spec/lend.yaml"));
    // From inside the project, with no flags: its spec, its generated/.
    let generated = run(xtask()
        .current_dir(project.join("services"))
        .arg("generate"));
    assert!(
        generated.contains("created   sql/lend_notes/0001_init.sql"),
        "{generated}"
    );
    run(xtask().current_dir(&project).args(["generate", "--check"]));
    fs::write(project.join("services/lend/tests/notes.rs"), NOTES_JOURNEY).expect("test");

    let tested = run(Command::new(env!("CARGO"))
        .current_dir(&project)
        .arg("test")
        .env("CARGO_TARGET_DIR", "/var/tmp/shop-spec-edit-repo-target")
        .env_remove("RUSTFLAGS"));
    for test in [
        "items_and_tasks_through_graphql",
        "a_service_added_to_the_spec_answers",
        "a_done_task_keeps_its_title",
    ] {
        assert!(
            tested.contains(&format!("{test} ... ok")),
            "{test} did not pass:\n{tested}"
        );
    }
}
