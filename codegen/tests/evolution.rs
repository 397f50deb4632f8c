//! Spec evolution, scenario by scenario: a sequence of spec edits (add fields, add an
//! entity, change an event payload, reorder, remove a field, rename one, change a type)
//! each generated against the lock the step before wrote, as `cargo xtask generate`
//! does. After every step the migrations written so far are applied, in order, to a
//! real PostgreSQL that holds rows from every earlier step, and its catalog must equal
//! the catalog of a fresh database built from the current spec's own `0001_init.sql`.
//! The lock, the proto (`reserved`) and the breaking-change report are checked along
//! the way; a second set of tests checks the report on its own.
//!
//! PostgreSQL comes from `xtask/infra/infra.sh up postgres`; the test fails, never
//! skips, without it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use codegen::lock::Lock;

#[path = "support/sqlite.rs"]
mod sqlite;
use codegen::{GenerateError, Generation};

const SPEC: &str = "evo.yaml";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn base() -> String {
    std::fs::read_to_string(root().join("codegen/tests/fixtures/evolve.yaml")).expect("fixture")
}

/// `spec` with `from` (which must occur exactly once) replaced by `to`.
#[track_caller]
fn edit(spec: &str, from: &str, to: &str) -> String {
    assert_eq!(spec.matches(from).count(), 1, "`{from}` must occur once");
    spec.replacen(from, to, 1)
}

/// `evo.yaml:LINE:COLUMN` of the first occurrence of `needle`.
#[track_caller]
fn at(spec: &str, needle: &str) -> String {
    let (n, line) = spec
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains(needle))
        .unwrap_or_else(|| panic!("`{needle}` not in the spec"));
    let column = line.find(needle).expect("on the line") + 1;
    format!("{SPEC}:{}:{column}", n + 1)
}

#[track_caller]
fn breaking(result: Result<Generation, GenerateError>) -> String {
    match result {
        Err(GenerateError::Breaking(report)) => report.to_string(),
        Err(other) => panic!("expected breaking changes, got: {other}"),
        Ok(g) => panic!(
            "expected breaking changes, generation went through:\n{}",
            g.report
        ),
    }
}

#[track_caller]
fn assert_has(text: &str, fragment: &str) {
    assert!(text.contains(fragment), "`{fragment}` not in:\n{text}");
}

/// The message `name { ... }` of a proto file.
#[track_caller]
fn message<'a>(proto: &'a str, name: &str) -> &'a str {
    let start = proto
        .find(&format!("\nmessage {name} {{"))
        .unwrap_or_else(|| panic!("no message {name}"));
    let end = proto[start..].find("\n}").expect("message end") + start;
    &proto[start..end]
}

/// What `cargo xtask generate` would leave behind: every file, the spec and its lock.
#[derive(Default)]
struct Project {
    lock: Option<String>,
    files: BTreeMap<String, String>,
}

impl Project {
    fn generate(&self, spec: &str, accept: bool) -> Result<Generation, GenerateError> {
        codegen::generate(Path::new(SPEC), spec, self.lock.as_deref(), accept)
    }

    /// Generates and writes; history (migrations in the lock) must come back untouched.
    #[track_caller]
    fn step(&mut self, spec: &str, accept: bool) -> Generation {
        let g = self
            .generate(spec, accept)
            .unwrap_or_else(|e| panic!("generation failed:\n{e}"));
        let keep: BTreeSet<&str> = g.preserved.iter().map(|p| p.path.as_str()).collect();
        for p in &g.preserved {
            let have = self
                .files
                .get(&p.path)
                .unwrap_or_else(|| panic!("{} is history but was never written", p.path));
            assert_eq!(codegen::lock::sha256(have), p.sha256, "{}", p.path);
        }
        self.files.retain(|path, _| keep.contains(path.as_str()));
        for f in &g.files {
            assert!(
                !keep.contains(f.path.as_str()),
                "{} is history, yet generated again",
                f.path
            );
            self.files.insert(f.path.clone(), f.contents.clone());
        }
        self.lock = Some(g.lock_text.clone());
        g
    }

    fn lock(&self) -> Lock {
        Lock::parse(self.lock.as_deref().expect("a lock")).expect("the lock parses")
    }

    fn file(&self, path: &str) -> &str {
        self.files
            .get(path)
            .unwrap_or_else(|| panic!("{path} was not generated"))
    }

    fn migrations(&self, db: &str) -> Vec<&str> {
        let prefix = format!("sql/{db}/");
        self.files
            .keys()
            .filter_map(|p| p.strip_prefix(&prefix))
            .collect()
    }
}

/// The lock without positions: what a pure reordering must leave alone.
fn without_positions(lock: &str) -> String {
    let mut out = String::new();
    for part in lock.split('"') {
        let is_position = part.split_once(':').is_some_and(|(l, c)| {
            !l.is_empty()
                && !c.is_empty()
                && l.chars().all(|ch| ch.is_ascii_digit())
                && c.chars().all(|ch| ch.is_ascii_digit())
        });
        out.push_str(if is_position { "_" } else { part });
        out.push('"');
    }
    out
}

// ---------------------------------------------------------------------- PostgreSQL

#[path = "support/postgres.rs"]
mod postgres;
use postgres::catalog;

struct Server {
    url: String,
    admin: sqlx::PgPool,
    prefix: String,
}

impl Server {
    async fn start() -> Server {
        let url = postgres::postgres_url().to_string();
        let admin = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis();
        // Databases a failed run left behind, after an hour.
        let old: Vec<String> = sqlx::query_scalar(
            "SELECT datname::text FROM pg_database WHERE datname LIKE 'evolution\\_%'",
        )
        .fetch_all(&admin)
        .await
        .expect("list databases");
        for name in old {
            let made: u128 = name
                .split('_')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            if made + 3_600_000 < millis {
                exec(
                    &admin,
                    &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                )
                .await;
            }
        }
        Server {
            url,
            admin,
            prefix: format!("evolution_{millis}_{}", std::process::id()),
        }
    }

    async fn create(&self, name: &str) -> sqlx::PgPool {
        let db = format!("{}_{name}", self.prefix);
        exec(&self.admin, &format!("CREATE DATABASE {db}")).await;
        let (server, _) = self.url.rsplit_once('/').expect("URL with a database");
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect(&format!("{server}/{db}"))
            .await
            .expect("connect")
    }

    async fn drop(&self, name: &str, pool: sqlx::PgPool) {
        pool.close().await;
        let db = format!("{}_{name}", self.prefix);
        exec(&self.admin, &format!("DROP DATABASE {db} WITH (FORCE)")).await;
    }
}

async fn exec(pool: &sqlx::PgPool, sql: &str) {
    // Test-only SQL built from constants of this file.
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn count(pool: &sqlx::PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Where this run writes migrations for sqlx to read.
fn scratch() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("evolution")
        .join(std::process::id().to_string())
}

/// Applies the migrations of `db` among `files`, in order (sqlx skips applied ones and
/// fails if one of those changed).
async fn migrate(pool: &sqlx::PgPool, files: &BTreeMap<String, String>, db: &str, dir: &str) {
    let out = scratch().join(dir).join(db);
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).expect("mkdir");
    for (path, contents) in files {
        if let Some(name) = path.strip_prefix(&format!("sql/{db}/")) {
            std::fs::write(out.join(name), contents).expect("write");
        }
    }
    let migrator = sqlx::migrate::Migrator::new(out.as_path())
        .await
        .expect("read migrations");
    migrator
        .run(pool)
        .await
        .unwrap_or_else(|e| panic!("{db}: migrations fail: {e}"));
}

/// The migrated database `a` has exactly the schema that the current spec's fresh
/// `0001_init.sql` gives a new database.
async fn assert_same_as_fresh(server: &Server, a: &sqlx::PgPool, spec: &str, db: &str, step: &str) {
    let system = codegen::load(Path::new(SPEC), spec).unwrap_or_else(|e| panic!("{e}"));
    let fresh: BTreeMap<String, String> = codegen::emit::sql::emit(&system)
        .expect("sql")
        .into_iter()
        .map(|f| (f.path, f.contents))
        .collect();
    let name = format!("fresh_{db}");
    let b = server.create(&name).await;
    migrate(&b, &fresh, db, &format!("{step}-fresh")).await;
    let (got, want) = (catalog(a).await, catalog(&b).await);
    server.drop(&name, b).await;
    for kind in ["column ", "constraint ", "index ", "comment "] {
        assert!(
            want.iter().any(|l| l.starts_with(kind)),
            "{step}: no {kind}in {want:#?}"
        );
    }
    let missing: Vec<&String> = want.difference(&got).collect();
    let extra: Vec<&String> = got.difference(&want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{step}: {db} after its migrations differs from a fresh one\nmissing: {missing:#?}\nextra: {extra:#?}"
    );
}

// ---------------------------------------------------------------------- the scenario

const CATALOG: &str = "evo_catalog";
const MEMBER: &str = "evo_member";
const ID1: &str = "00000000-0000-0000-0000-000000000001";
const ID2: &str = "00000000-0000-0000-0000-000000000002";
const ID3: &str = "00000000-0000-0000-0000-000000000003";
const ID4: &str = "00000000-0000-0000-0000-000000000004";

#[test]
fn a_sequence_of_spec_edits_migrates_real_data() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(scenario());
}

async fn scenario() {
    let server = Server::start().await;
    let catalog_db = server.create(CATALOG).await;
    let member_db = server.create(MEMBER).await;
    let mut p = Project::default();
    // Each step: migrate the databases that hold the earlier steps' rows, compare them
    // with fresh ones.
    async fn settle(server: &Server, p: &Project, dbs: [&sqlx::PgPool; 2], spec: &str, step: &str) {
        for (pool, db) in dbs.into_iter().zip([CATALOG, MEMBER]) {
            migrate(pool, &p.files, db, step).await;
            assert_same_as_fresh(server, pool, spec, db, step).await;
            sqlite_same_as_fresh(p, spec, db, step).await;
        }
    }
    let dbs = [&catalog_db, &member_db];

    // 0. The first generation writes the lock and one init migration per database.
    let s0 = base();
    let g = p.step(&s0, false);
    assert!(g.report.is_empty(), "{}", g.report);
    assert!(g.preserved.is_empty());
    let lock = p.lock();
    let item = &lock.proto["evo.catalog.v1"]["Item"];
    let numbers: Vec<(&str, u32)> = item
        .fields
        .iter()
        .map(|(n, f)| (n.as_str(), f.number))
        .collect();
    assert_eq!(
        numbers,
        [
            ("id", 1),
            ("title", 2),
            ("quantity", 3),
            ("note", 4),
            ("listed_at", 5)
        ]
    );
    assert_eq!(lock.databases[CATALOG].migrations.len(), 1);
    assert_eq!(p.migrations(CATALOG), ["0001_init.sql"]);
    settle(&server, &p, dbs, &s0, "0-base").await;
    exec(
        &catalog_db,
        &format!(
            "INSERT INTO items (id, title, quantity, note, listed_at) VALUES \
             ('{ID1}', 'Lamp', 3, 'old', now()), ('{ID2}', 'Desk', 1, NULL, now())"
        ),
    )
    .await;
    exec(
        &member_db,
        &format!(
            "INSERT INTO members (id, email, name) VALUES ('{ID1}', 'ann@example.com', 'Ann')"
        ),
    )
    .await;
    exec(
        &member_db,
        &format!(
            "INSERT INTO events (stream_id, version, event_id, event_type, schema_version, payload) VALUES \
             ('{ID1}', 1, gen_random_uuid(), 'Joined', 1, '{{\"type\":\"Joined\",\"data\":{{\"email\":\"ann@example.com\",\"name\":\"Ann\"}}}}')"
        ),
    )
    .await;

    // 1. Add fields: an optional one, and a required one, which existing rows can only
    //    get from a `default:`.
    let listed = "      listed_at: { type: timestamp, readonly: true }\n";
    let no_default = edit(
        &s0,
        listed,
        &format!("{listed}      stock: {{ type: int, min: 0, readonly: true }}\n"),
    );
    match p.generate(&no_default, true) {
        Err(GenerateError::Spec(e)) => {
            let e = e.to_string();
            assert_has(
                &e,
                &format!(
                    "{}: error: field `stock` of `Item` is new and required",
                    at(&no_default, "stock:")
                ),
            );
            assert_has(&e, "give it `default: <value>` or make it `optional: true`");
        }
        other => panic!(
            "a new required column without a default must be refused: {:?}",
            other.map(|g| g.report)
        ),
    }
    let s1 = edit(
        &s0,
        listed,
        &format!(
            "{listed}      colour: {{ type: string, max_len: 20, optional: true }}\n      stock: {{ type: int, min: 0, default: 5, readonly: true }}\n"
        ),
    );
    let g = p.step(&s1, false);
    assert!(g.report.breaking.is_empty(), "{}", g.report);
    assert_eq!(
        p.migrations(CATALOG),
        ["0001_init.sql", "0002_items_add_colour_stock.sql"]
    );
    assert_eq!(
        p.migrations(MEMBER),
        ["0001_init.sql"],
        "no change, no migration"
    );
    let proto = p.file("proto/evo/catalog/v1/catalog.proto").to_string();
    assert_has(message(&proto, "Item"), "optional string colour = 6;");
    assert_has(message(&proto, "Item"), "int32 stock = 7;");
    assert_has(
        &g.report.to_string(),
        "note: migration sql/evo_catalog/0002_items_add_colour_stock.sql",
    );
    settle(&server, &p, dbs, &s1, "1-add-fields").await;
    assert_eq!(
        count(
            &catalog_db,
            "SELECT count(*) FROM items WHERE stock = 5 AND colour IS NULL"
        )
        .await,
        2
    );
    exec(
        &catalog_db,
        &format!("INSERT INTO items (id, title, quantity, listed_at, colour, stock) VALUES ('{ID3}', 'Vase', 7, now(), 'red', 2)"),
    )
    .await;

    // 2. Add an entity: a new table in an existing database.
    let indexes = "    indexes:\n      - [title]\n";
    let s2 = edit(
        &s1,
        indexes,
        &format!(
            "{indexes}    relations:\n      tags: {{ to: Tag, cardinality: \"0..*\", owned: true }}\n\n  Tag:\n    doc: A word to search by.\n    key: [label]\n    fields:\n      label: {{ type: string, min_len: 1, max_len: 30 }}\n"
        ),
    );
    let g = p.step(&s2, false);
    assert!(g.report.breaking.is_empty(), "{}", g.report);
    assert_eq!(p.migrations(CATALOG).last(), Some(&"0003_create_tags.sql"));
    assert_has(
        p.file("sql/evo_catalog/0003_create_tags.sql"),
        "CREATE TABLE tags (",
    );
    let proto = p.file("proto/evo/catalog/v1/catalog.proto").to_string();
    assert_has(message(&proto, "Item"), "repeated Tag tags = 8;");
    settle(&server, &p, dbs, &s2, "2-add-entity").await;
    exec(
        &catalog_db,
        &format!("INSERT INTO tags (item_id, label) VALUES ('{ID1}', 'light')"),
    )
    .await;

    // 3. An event payload changes: a new schema version, an upcaster for the old one.
    let name_line = "      name: { type: string, min_len: 1, max_len: 50 }\n";
    let s3 = edit(
        &edit(
            &s2,
            name_line,
            &format!(
                "{name_line}      nickname: {{ type: string, max_len: 30, optional: true }}\n"
            ),
        ),
        "      Joined: [email, name]",
        "      Joined: [email, name, nickname]",
    );
    let g = p.step(&s3, false);
    assert!(g.report.breaking.is_empty(), "{}", g.report);
    assert_has(
        &g.report.to_string(),
        &format!(
            "{}: note: event `Joined` of service `member` has a new payload: schema version 2",
            at(&s3, "Joined:")
        ),
    );
    let joined = &p.lock().services["member"].events["Joined"];
    let versions: Vec<(u32, Vec<&str>)> = joined
        .versions
        .iter()
        .map(|v| (v.version, v.fields.keys().map(String::as_str).collect()))
        .collect();
    assert_eq!(
        versions,
        [
            (1, vec!["email", "name"]),
            (2, vec!["email", "name", "nickname"])
        ]
    );
    assert_eq!(p.lock().services["member"].events["Left"].versions.len(), 1);
    let api = p.file("rust/member/src/api.rs");
    assert_has(api, "pub const SCHEMA_VERSION: u32 = 2u32;");
    assert_has(api, "fn joined_v1(");
    assert_has(
        api,
        "data.entry(\"nickname\").or_insert(serde_json::Value::Null);",
    );
    assert_has(api, "pub fn decode_stored(");
    assert_eq!(
        p.migrations(MEMBER).last(),
        Some(&"0002_members_add_nickname.sql")
    );
    settle(&server, &p, dbs, &s3, "3-event-payload").await;
    exec(&member_db, &format!("INSERT INTO members (id, email, name, nickname) VALUES ('{ID2}', 'bo@example.com', 'Bo', 'b')")).await;

    // 4. Reorder fields, an event payload and a command input: no number moves and no
    //    file changes; only the lock's positions do.
    let start = s3.find("  Item:\n").expect("Item");
    let from = s3[start..].find("    fields:\n").expect("fields") + start + "    fields:\n".len();
    let to = s3[from..].find("    indexes:").expect("indexes") + from;
    let mut lines: Vec<&str> = s3[from..to].lines().collect();
    lines.reverse();
    let mut s4 = format!("{}{}\n{}", &s3[..from], lines.join("\n"), &s3[to..]);
    s4 = edit(
        &s4,
        "      Joined: [email, name, nickname]",
        "      Joined: [nickname, name, email]",
    );
    s4 = edit(&s4, "input: [email, name]", "input: [name, email]");
    let before = p.files.clone();
    let old_lock = p.lock.clone().expect("lock");
    let g = p.step(&s4, false);
    assert!(g.report.is_empty(), "{}", g.report);
    assert_eq!(p.files, before, "a reordering changed files");
    assert_ne!(
        p.lock.as_deref(),
        Some(old_lock.as_str()),
        "positions moved"
    );
    assert_eq!(
        without_positions(p.lock.as_deref().expect("lock")),
        without_positions(&old_lock)
    );
    // Moving an entity moves its GraphQL type (and its converter in the BFF's crate),
    // nothing else.
    let member_start = s4.find("  Member:\n").expect("Member");
    let member_end = s4.find("services:").expect("services");
    let member = s4[member_start..member_end].to_string();
    s4 = format!("{}{}", &s4[..member_start], &s4[member_end..]);
    s4 = edit(&s4, "entities:\n", &format!("entities:\n{member}"));
    let before = p.files.clone();
    let old_lock = p.lock.clone().expect("lock");
    p.step(&s4, false);
    let changed: Vec<&String> = p
        .files
        .iter()
        .filter(|(path, contents)| before.get(*path) != Some(contents))
        .map(|(path, _)| path)
        .collect();
    // The GraphQL types (and the client's typedefs, in the same order) move.
    assert!(
        changed.iter().all(|p| *p == "graphql/schema.graphql"
            || *p == "rust/bff/src/api.rs"
            || *p == "web/client.js"),
        "{changed:?}"
    );
    let sorted = |s: &str| -> Vec<String> {
        let mut v: Vec<String> = s.lines().map(str::to_string).collect();
        v.sort();
        v
    };
    assert_eq!(
        sorted(p.file("graphql/schema.graphql")),
        sorted(&before["graphql/schema.graphql"])
    );
    assert_eq!(
        without_positions(p.lock.as_deref().expect("lock")),
        without_positions(&old_lock)
    );
    settle(&server, &p, dbs, &s4, "4-reorder").await;

    // 5. Remove a field: breaking; accepted, its number is reserved and its column dropped.
    let note = "      note: { type: text, optional: true, max_len: 500 }\n";
    let s5 = edit(&s4, note, "");
    let report = breaking(p.generate(&s5, false));
    assert_has(
        &report,
        &format!(
            "{}: breaking: field `note` of `Item` was removed",
            at(&s4, "note:")
        ),
    );
    assert_has(
        &report,
        &format!(
            "{}: breaking: database `evo_catalog`: column `items.note` is dropped, with its data",
            at(&s4, "note:")
        ),
    );
    let g = p.step(&s5, true);
    assert_eq!(g.report.breaking.len(), 2, "{}", g.report);
    let proto = p.file("proto/evo/catalog/v1/catalog.proto").to_string();
    for m in ["Item", "CreateItemRequest"] {
        assert_has(message(&proto, m), "reserved \"note\";");
    }
    assert_has(message(&proto, "Item"), "reserved 4;");
    assert_eq!(p.lock().proto["evo.catalog.v1"]["Item"].reserved, [4]);
    let drop = p
        .migrations(CATALOG)
        .last()
        .map(|f| f.to_string())
        .expect("a migration");
    assert_eq!(drop, "0004_items_drop_note.sql");
    assert_has(
        p.file(&format!("sql/evo_catalog/{drop}")),
        "ALTER TABLE items DROP COLUMN note;",
    );
    settle(&server, &p, dbs, &s5, "5-remove-field").await;
    assert_eq!(
        count(&catalog_db, "SELECT count(*) FROM items").await,
        3,
        "no row lost"
    );

    // 6. Rename a field: breaking for GraphQL/JSON; the proto number and the data stay.
    let s6 = edit(
        &edit(
            &edit(
                &s5,
                "      title: { type: string, min_len: 1, max_len: 80 }",
                "      name: { type: string, min_len: 1, max_len: 80, renamed_from: title }",
            ),
            "      - [title]",
            "      - [name]",
        ),
        "order_by: [title]",
        "order_by: [name]",
    );
    let report = breaking(p.generate(&s6, false));
    assert_has(
        &report,
        &format!(
            "{}: breaking: field `title` of `Item` is renamed to `name`",
            at(&s6, "name: { type: string, min_len: 1, max_len: 80")
        ),
    );
    let g = p.step(&s6, true);
    assert!(
        g.report
            .breaking
            .iter()
            .all(|c| !c.message.contains("dropped")),
        "{}",
        g.report
    );
    let proto = p.file("proto/evo/catalog/v1/catalog.proto").to_string();
    assert_has(message(&proto, "Item"), "string name = 2;");
    assert_has(message(&proto, "Item"), "reserved \"note\", \"title\";");
    let rename = p
        .migrations(CATALOG)
        .last()
        .map(|f| f.to_string())
        .expect("a migration");
    assert_eq!(rename, "0005_items_rename_title_to_name.sql");
    let sql = p.file(&format!("sql/evo_catalog/{rename}"));
    assert_has(sql, "ALTER TABLE items RENAME COLUMN title TO name;");
    assert_has(
        sql,
        "ALTER TABLE items RENAME CONSTRAINT items_title_check TO items_name_check;",
    );
    settle(&server, &p, dbs, &s6, "6-rename").await;
    let names: Vec<String> = sqlx::query_scalar("SELECT name FROM items ORDER BY name")
        .fetch_all(&catalog_db)
        .await
        .expect("names");
    assert_eq!(names, ["Desk", "Lamp", "Vase"]);
    exec(
        &catalog_db,
        &format!(
            "INSERT INTO items (id, name, quantity, listed_at) VALUES ('{ID4}', 'Rug', 2, now())"
        ),
    )
    .await;

    // 7. Change a type: breaking; int -> money keeps its wire number (varint either way).
    //    And an optional field becomes required: its `default:` fills the rows without one.
    let s7 = edit(
        &edit(
            &s6,
            "      quantity: { type: int, min: 0 }",
            "      quantity: { type: money, min: 0 }",
        ),
        "      colour: { type: string, max_len: 20, optional: true }",
        "      colour: { type: string, max_len: 20, default: none }",
    );
    let report = breaking(p.generate(&s7, false));
    assert_has(
        &report,
        &format!(
            "{}: breaking: field `quantity` of `Item` changes type from int to money",
            at(&s7, "quantity:")
        ),
    );
    p.step(&s7, true);
    let proto = p.file("proto/evo/catalog/v1/catalog.proto").to_string();
    assert_has(message(&proto, "Item"), "int64 quantity = 3;");
    let retype = p
        .migrations(CATALOG)
        .last()
        .map(|f| f.to_string())
        .expect("a migration");
    assert_has(
        p.file(&format!("sql/evo_catalog/{retype}")),
        "ALTER TABLE items ALTER COLUMN quantity TYPE bigint USING quantity::bigint;",
    );
    assert_has(
        &report,
        &format!(
            "{}: breaking: field `colour` of `Item` becomes required",
            at(&s7, "colour:")
        ),
    );
    settle(&server, &p, dbs, &s7, "7-retype").await;
    assert_eq!(
        count(
            &catalog_db,
            "SELECT count(*) FROM items WHERE colour = 'none'"
        )
        .await,
        3
    );
    assert_eq!(
        count(&catalog_db, "SELECT sum(quantity)::bigint FROM items").await,
        3 + 1 + 7 + 2
    );
    exec(
        &catalog_db,
        "UPDATE items SET quantity = 3000000000 WHERE name = 'Rug'",
    )
    .await;
    assert_eq!(
        count(&catalog_db, "SELECT count(*) FROM items").await,
        4,
        "no row lost"
    );
    assert_eq!(
        count(&catalog_db, "SELECT count(*) FROM tags").await,
        1,
        "no row lost"
    );
    assert_eq!(
        count(&member_db, "SELECT count(*) FROM members").await,
        2,
        "no row lost"
    );
    assert_eq!(
        count(&member_db, "SELECT count(*) FROM events").await,
        1,
        "no row lost"
    );

    // 8. Drop an entity (its table goes, with its rows: breaking) and add an index.
    let s8 = edit(
        &edit(
            &s7,
            "    relations:\n      tags: { to: Tag, cardinality: \"0..*\", owned: true }\n",
            "",
        ),
        "      - [name]\n",
        "      - [name]\n      - [quantity desc]\n",
    );
    let tag_start = s8.find("  Tag:\n").expect("Tag");
    let tag_end = s8[tag_start..].find("\n\n").expect("end of Tag") + tag_start + 2;
    let s8 = format!("{}{}", &s8[..tag_start], &s8[tag_end..]);
    let report = breaking(p.generate(&s8, false));
    assert_has(
        &report,
        &format!("{}: breaking: entity `Tag` was removed", at(&s7, "Tag:")),
    );
    assert_has(
        &report,
        &format!(
            "{}: breaking: relation `tags` of `Item` was removed",
            at(&s7, "tags:")
        ),
    );
    assert_has(
        &report,
        "breaking: database `evo_catalog`: table `tags` is dropped, with its data",
    );
    p.step(&s8, true);
    let last = p
        .migrations(CATALOG)
        .last()
        .map(|f| f.to_string())
        .expect("a migration");
    let sql = p.file(&format!("sql/evo_catalog/{last}"));
    assert_eq!(last, "0007_items_add_index_and_drop_tags.sql");
    assert_has(sql, "DROP TABLE tags;");
    assert_has(
        sql,
        "CREATE INDEX items_quantity_idx ON items (quantity DESC);",
    );
    settle(&server, &p, dbs, &s8, "8-drop-entity").await;
    assert_eq!(
        count(&catalog_db, "SELECT count(*) FROM items").await,
        4,
        "no row lost"
    );

    // Generating again changes nothing: every migration is history now.
    let s7 = s8;
    let again = p.generate(&s7, false).expect("generation");
    assert!(again.report.is_empty(), "{}", again.report);
    assert_eq!(again.lock_text, p.lock.clone().expect("lock"));
    // Each PostgreSQL migration and its SQLite twin.
    assert_eq!(
        again.preserved.len(),
        2 * (p.migrations(CATALOG).len() + p.migrations(MEMBER).len())
    );

    server.drop(CATALOG, catalog_db).await;
    server.drop(MEMBER, member_db).await;
    server.admin.close().await;
    let _ = std::fs::remove_dir_all(scratch());
}

// ---------------------------------------------------------------------- SQLite

/// The SQLite twins of the migrations so far, applied (those not applied yet) to one
/// SQLite file per database, give the schema of the current spec's fresh SQLite
/// `0001_init.sql`.
async fn sqlite_same_as_fresh(p: &Project, spec: &str, db: &str, step: &str) {
    let only = |files: &BTreeMap<String, String>| -> BTreeMap<String, String> {
        let prefix = format!("sqlite/{db}/");
        files
            .iter()
            .filter_map(|(path, c)| Some((path.strip_prefix(&prefix)?.to_string(), c.clone())))
            .collect()
    };
    let dir = scratch().join("sqlite");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let migrated = sqlite::open(&dir.join(format!("{db}.sqlite"))).await;
    sqlite::migrate(
        &migrated,
        &only(&p.files),
        &dir.join(format!("{step}-{db}")),
    )
    .await;
    let system = codegen::load(Path::new(SPEC), spec).unwrap_or_else(|e| panic!("{e}"));
    let fresh_files: BTreeMap<String, String> = codegen::emit::sqlite::emit(&system)
        .expect("sqlite")
        .into_iter()
        .map(|f| (f.path, f.contents))
        .collect();
    let fresh = sqlite::open(&dir.join(format!("{step}-{db}-fresh.sqlite"))).await;
    sqlite::migrate(
        &fresh,
        &only(&fresh_files),
        &dir.join(format!("{step}-{db}-fresh")),
    )
    .await;
    let (got, want) = (
        sqlite::schema(&migrated).await,
        sqlite::schema(&fresh).await,
    );
    migrated.close().await;
    fresh.close().await;
    assert!(!want.is_empty(), "{step}: {db}: an empty SQLite schema");
    assert_eq!(got, want, "{step}: {db} on SQLite differs from a fresh one");
}

// ---------------------------------------------------------------------- the report alone

#[test]
fn the_report_names_each_breaking_change_at_its_line() {
    let mut p = Project::default();
    let s0 = base();
    p.step(&s0, false);
    let listed = "      listed_at: { type: timestamp, readonly: true }\n";
    let s1 = [
        ("      title: { type: string, min_len: 1, max_len: 80 }", "      title: { type: string, min_len: 1, max_len: 40 }"),
        ("      note: { type: text, optional: true, max_len: 500 }", "      note: { type: text, max_len: 500, default: \"\" }"),
        (listed, "      listed_at: { type: timestamp, readonly: true }\n      weight: { type: int, min: 0, default: 0 }\n"),
        ("      DeleteItem: { kind: delete }\n", ""),
        ("      Leave: { input: [member_id], emits: [Left] }\n", ""),
        ("      Left: []\n", ""),
        ("queries: [ListItems, GetItem, ViewMember]", "queries: [GetItem, ViewMember]"),
        ("mutations: [CreateItem, DeleteItem, Join, Leave]", "mutations: [CreateItem, Join]"),
    ]
    .iter()
    .fold(s0.clone(), |s, (from, to)| edit(&s, from, to));
    let report = breaking(p.generate(&s1, false));
    for (position, what) in [
        (
            at(&s1, "title:"),
            "field `title` of `Item` `max_len` 80 -> 40",
        ),
        (at(&s1, "note:"), "field `note` of `Item` becomes required"),
        (
            at(&s1, "weight:"),
            "operation `CreateItem` now requires input `weight`",
        ),
        (
            at(&s0, "DeleteItem: { kind"),
            "operation `DeleteItem` of service `catalog` was removed",
        ),
        (
            at(&s0, "Leave: { input"),
            "operation `Leave` of service `member` was removed",
        ),
        (
            at(&s0, "Left: []"),
            "event `Left` of service `member` was removed",
        ),
        (
            at(&s0, "ListItems, GetItem"),
            "`ListItems` is no longer in bff.graphql.queries",
        ),
    ] {
        assert_has(&report, &format!("{position}: breaking: {what}"));
    }
    assert_eq!(report.matches("breaking:").count(), 7, "{report}");
    // Accepted, the same edit goes through and says what it accepted.
    let g = p.generate(&s1, true).expect("accepted");
    assert_eq!(g.report.breaking.len(), 7, "{}", g.report);
    let proto = &g
        .files
        .iter()
        .find(|f| f.path == "proto/evo/member/v1/member.proto")
        .expect("member proto")
        .contents;
    let envelope = message(proto, "MemberEvent");
    assert_has(envelope, "reserved 11;");
    assert_has(envelope, "reserved \"left\";");
    assert!(!proto.contains("message LeaveRequest"), "{proto}");

    // A changed pattern and a removed service.
    let s2 = edit(
        &s0,
        "    pattern: cqs-es\n    aggregate: Member\n    store: postgres\n",
        "    pattern: cqrs-es\n    aggregate: Member\n    event_store: mongodb\n    read_model: postgres\n",
    );
    let report = breaking(p.generate(&s2, false));
    assert_has(
        &report,
        &format!(
            "{}: breaking: service `member` changes pattern from cqs-es to cqrs-es",
            at(&s2, "member:")
        ),
    );
    let start = s0.find("  catalog:\n").expect("catalog");
    let end = s0.find("  member:\n").expect("member");
    let s3 = edit(
        &edit(
            &format!("{}{}", &s0[..start], &s0[end..]),
            "queries: [ListItems, GetItem, ViewMember]",
            "queries: [ViewMember]",
        ),
        "mutations: [CreateItem, DeleteItem, Join, Leave]",
        "mutations: [Join, Leave]",
    );
    let report = breaking(p.generate(&s3, false));
    assert_has(
        &report,
        &format!(
            "{}: breaking: service `catalog` was removed",
            at(&s0, "catalog:")
        ),
    );
    let g = p.generate(&s3, true).expect("accepted");
    assert!(
        g.files
            .iter()
            .chain([])
            .all(|f| !f.path.starts_with("sql/evo_catalog/"))
            && g.preserved
                .iter()
                .all(|f| !f.path.starts_with("sql/evo_catalog/")),
        "the removed service's migrations go with it"
    );
}

#[test]
fn a_retyped_field_gets_a_fresh_number_and_the_old_one_is_reserved() {
    let mut p = Project::default();
    let s0 = base();
    p.step(&s0, false);
    let s1 = edit(
        &s0,
        "      note: { type: text, optional: true, max_len: 500 }",
        "      note: { type: bool, optional: true }",
    );
    let report = breaking(p.generate(&s1, false));
    assert_has(
        &report,
        "field `note` of `Item` changes type from text to bool",
    );
    p.step(&s1, true);
    let proto = p.file("proto/evo/catalog/v1/catalog.proto").to_string();
    let item = message(&proto, "Item");
    assert_has(item, "reserved 4;");
    assert_has(item, "optional bool note = 6;");
    assert!(
        !item.contains("reserved \"note\""),
        "the name is still in use:\n{item}"
    );
}

#[test]
fn renames_need_a_field_the_lock_knows() {
    let mut p = Project::default();
    let s0 = base();
    p.step(&s0, false);
    let s1 = edit(
        &s0,
        "      title: { type: string, min_len: 1, max_len: 80 }",
        "      heading: { type: string, min_len: 1, max_len: 80, renamed_from: headline }\n      title: { type: string, min_len: 1, max_len: 80 }",
    );
    match p.generate(&s1, true) {
        Err(GenerateError::Spec(e)) => assert_has(
            &e.to_string(),
            &format!(
                "{}: error: `heading` is `renamed_from: headline`, but `Item` had no field `headline` in evo.lock",
                at(&s1, "heading:")
            ),
        ),
        other => panic!("expected a spec error: {:?}", other.map(|g| g.report)),
    }
}

#[test]
fn a_lock_that_is_not_a_lock_is_reported() {
    match codegen::generate(
        Path::new(SPEC),
        &base(),
        Some("format: 1\nentities: 3\n"),
        false,
    ) {
        Err(e @ GenerateError::Lock { .. }) => assert_has(&e.to_string(), "evo.lock:"),
        other => panic!("expected a lock error: {:?}", other.map(|g| g.report)),
    }
    match codegen::generate(Path::new(SPEC), &base(), Some("format: 99\n"), false) {
        Err(e) => assert_has(&e.to_string(), "lock format 99"),
        Ok(_) => panic!("a newer lock format must be refused"),
    }
}
