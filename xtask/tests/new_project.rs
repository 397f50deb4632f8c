//! A framework, not one app: `cargo xtask new` makes a project outside this repository
//! that builds and answers GraphQL, and it grows as a user would grow it: a new entity
//! with its own CRUD service, added to the spec and generated with the project's own
//! `cargo xtask generate` (the defaults found from the current directory), needs Rust
//! only for its custom rule: generation scaffolds the rules crate, the build names the
//! missing rule, and the rule is all that is written. The project's `cargo test` runs
//! its scaffolded journey (items and tasks through `<name> up` on embedded storage) and
//! one added here for the new service.

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
      PinNote:
        kind: custom
        params:
          note_id: { ref: Note }
        input: [note_id]
        output: Note
        idempotent: true

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
    let listed = ask("{ listNotes { nodes { id text } } }").await;
    assert_eq!(listed["data"]["listNotes"]["nodes"][0]["text"], "Buy milk", "{listed:#}");
    let unpinned = ask("mutation { createNote(input: { text: \"Call Bob\" }) { id pinned } }").await;
    assert_eq!(unpinned["data"]["createNote"]["pinned"], false, "{unpinned:#}");
    let id = unpinned["data"]["createNote"]["id"].as_str().expect("id").to_string();
    let pin = format!("mutation {{ pinNote(input: {{ noteId: \"{id}\" }}) {{ text pinned }} }}");
    let request = client.post(&url).json(&json!({ "query": pin }));
    let pinned: Value = request.send().await.expect("answers").json().await.expect("json");
    assert_eq!(pinned["data"]["pinNote"], json!({ "text": "Call Bob", "pinned": true }), "{pinned:#}");
    system.stop().await.expect("stops cleanly");
}
"#;

/// The one rule of the notes service, written where the scaffold left the empty impl.
const PIN_RULE: &str = r#"impl NotesHooks for Rules {
    async fn pin_note(
        &self,
        db: &keel::sql::Db,
        _ctx: keel::RequestContext,
        request: lend_notes::pb::PinNoteRequest,
    ) -> Result<lend_notes::pb::PinNoteResponse, keel::ServiceError> {
        let id = keel::crud::uuid("note_id", &request.note_id)?;
        let mut tx = db.begin().await.map_err(keel::db::error)?;
        let mut note = keel::crud::get::<lend_notes::pb::Note>(&mut tx, id)
            .await?
            .ok_or_else(|| keel::ServiceError::not_found("note", id))?;
        note.pinned = true;
        let set = vec![("pinned", keel::sql::Arg::from(true))];
        keel::crud::update::<lend_notes::pb::Note>(&mut tx, id, set).await?;
        tx.commit().await.map_err(keel::db::error)?;
        Ok(lend_notes::pb::PinNoteResponse { note: Some(note) })
    }
}"#;

fn cargo(project: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(project)
        .env("CARGO_TARGET_DIR", "/var/tmp/shop-spec-edit-repo-target")
        .env_remove("RUSTFLAGS");
    cmd
}

fn edit_spec(spec: &Path) {
    let text = fs::read_to_string(spec).expect("spec");
    let text = text
        .replacen("\nservices:\n", &format!("\n{NOTE}services:\n"), 1)
        .replacen("\nbff:\n", &format!("\n{NOTES}bff:\n"), 1)
        .replacen("queries: [ListItems,", "queries: [ListNotes, ListItems,", 1)
        .replacen(
            "mutations: [CreateItem,",
            "mutations: [CreateNote, PinNote, CreateItem,",
            1,
        );
    assert!(text.contains("ListNotes, ListItems"), "{text}");
    fs::write(spec, text).expect("spec written");
}

#[test]
fn a_new_project_builds_answers_graphql_and_grows_with_rust_only_for_a_rule() {
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
    assert!(
        generated.contains("services/notes/: yours to edit"),
        "{generated}"
    );
    run(xtask().current_dir(&project).args(["generate", "--check"]));
    run(cargo(&project).args(["fmt", "--all", "--check"]));
    let unwritten = cargo(&project)
        .args(["build", "-p", "notes-service"])
        .output()
        .expect("cargo runs");
    let said = String::from_utf8_lossy(&unwritten.stderr);
    assert!(
        !unwritten.status.success() && said.contains("missing `pin_note`"),
        "the build should name the missing rule:\n{said}"
    );
    let rules = project.join("services/notes/src/lib.rs");
    let scaffold = fs::read_to_string(&rules).expect("scaffolded rules");
    assert!(
        scaffold.contains("impl NotesHooks for Rules {}"),
        "{scaffold}"
    );
    fs::write(
        &rules,
        scaffold.replace("impl NotesHooks for Rules {}", PIN_RULE),
    )
    .expect("rule");
    let regenerated = run(xtask().current_dir(&project).arg("generate"));
    assert!(!regenerated.contains("scaffolded"), "{regenerated}");
    fs::write(project.join("services/lend/tests/notes.rs"), NOTES_JOURNEY).expect("test");

    let tested = run(cargo(&project).arg("test"));
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
