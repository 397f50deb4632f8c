//! The SQLite migrations (`generated/sqlite/`), applied with sqlx's migrator to real
//! SQLite files: the shop's constraints hold, and a sequence of spec edits migrates a
//! database with rows in it to exactly the schema of a fresh `0001_init.sql`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sqlx::migrate::Migrator;
use sqlx::sqlite::SqlitePool;
use sqlx::{AssertSqlSafe, Row};

#[path = "support/sqlite.rs"]
mod support;
use support::{migrate, open, schema};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "codegen-sqlite-{}-{name}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

async fn exec(pool: &SqlitePool, sql: &str) -> Result<(), sqlx::Error> {
    // Test-only SQL built from constants of this file.
    sqlx::query(AssertSqlSafe(sql.to_string()))
        .execute(pool)
        .await
        .map(|_| ())
}

async fn count(pool: &SqlitePool, sql: &str) -> i64 {
    sqlx::query_scalar(AssertSqlSafe(sql.to_string()))
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

async fn columns(pool: &SqlitePool, table: &str) -> Vec<String> {
    sqlx::query(AssertSqlSafe(format!(
        "SELECT name FROM pragma_table_info('{table}')"
    )))
    .fetch_all(pool)
    .await
    .expect("table_info")
    .iter()
    .map(|r| r.get(0))
    .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[track_caller]
fn rejected(r: Result<(), sqlx::Error>, what: &str, needle: &str) {
    match r {
        Ok(()) => panic!("{what}: accepted"),
        Err(e) => assert!(e.to_string().contains(needle), "{what}: {e}"),
    }
}

const O1: &str = "00000000-0000-0000-0000-000000000001";
const O2: &str = "00000000-0000-0000-0000-000000000002";
const P1: &str = "00000000-0000-0000-0000-0000000000a1";
const P2: &str = "00000000-0000-0000-0000-0000000000a2";

#[test]
fn the_shop_migrations_apply_and_enforce_the_spec() {
    runtime().block_on(async {
        let dir = scratch("shop");
        let generated = root().join("generated/sqlite");
        let mut dbs: Vec<String> = std::fs::read_dir(&generated)
            .expect("generated/sqlite")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        dbs.sort();
        let pg: Vec<String> = {
            let mut v: Vec<String> = std::fs::read_dir(root().join("generated/sql"))
                .expect("generated/sql")
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        assert_eq!(dbs, pg, "one SQLite folder per PostgreSQL database");
        // Every database's history, applied in order, gives the schema of a fresh
        // generation of the current spec.
        let text = std::fs::read_to_string(root().join("spec/shop.yaml")).expect("spec");
        let system = codegen::load(Path::new("spec/shop.yaml"), &text).expect("the shop spec");
        let mut fresh = BTreeMap::new();
        for f in codegen::emit::sqlite::emit(&system).expect("sqlite") {
            let db = f.path.split('/').nth(1).expect("sqlite/<db>/file").to_string();
            fresh.insert(db, f.contents);
        }
        let mut pools = BTreeMap::new();
        for db in &dbs {
            let names = |d: &str| -> Vec<String> {
                let mut v: Vec<String> = std::fs::read_dir(root().join(d).join(db))
                    .expect("migrations")
                    .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                    .collect();
                v.sort();
                v
            };
            assert_eq!(names("generated/sqlite"), names("generated/sql"), "{db}");
            let pool = open(&dir.join(format!("{db}.sqlite"))).await;
            let migrator = Migrator::new(generated.join(db)).await.expect("migrator");
            migrator
                .run(&pool)
                .await
                .unwrap_or_else(|e| panic!("{db}: {e}"));
            let fresh_pool = open(&dir.join(format!("{db}.fresh.sqlite"))).await;
            sqlx::raw_sql(sqlx::AssertSqlSafe(fresh[db].clone()))
                .execute(&fresh_pool)
                .await
                .unwrap_or_else(|e| panic!("{db} fresh: {e}"));
            assert_eq!(
                schema(&pool).await,
                schema(&fresh_pool).await,
                "{db}: the migrated schema differs from a fresh one"
            );
            pools.insert(db.clone(), pool);
        }

        let product = &pools["shop_product"];
        assert_eq!(
            columns(product, "products").await,
            ["id", "name", "description", "price", "created_at"]
        );
        let insert_product = |id: &str, name: &str, price: i64| {
            format!(
                "INSERT INTO products (id, name, price, created_at) \
                 VALUES ('{id}', '{name}', {price}, '2026-01-01T00:00:00Z')"
            )
        };
        exec(product, &insert_product(P1, "Lamp", 1200))
            .await
            .expect("a good product");
        rejected(
            exec(product, &insert_product(P2, "Desk", -1)).await,
            "negative price",
            "products_price_check",
        );
        rejected(
            exec(product, &insert_product(P2, &"x".repeat(201), 1)).await,
            "too long a name",
            "products_name_check",
        );
        rejected(
            exec(product, &insert_product("not-a-uuid", "Desk", 1)).await,
            "a malformed id",
            "CHECK constraint failed",
        );

        let order = &pools["shop_order"];
        let cols = columns(order, "orders").await;
        assert!(cols.contains(&"status".to_string()), "{cols:?}");
        assert_eq!(
            columns(order, "order_details").await,
            ["order_id", "product_id", "product_name", "unit_price", "quantity"]
        );
        let insert_order = |id: &str, version: i64, status: &str| {
            format!(
                "INSERT INTO orders (id, customer_id, cart_id, cart_version, total, placed_at, status) \
                 VALUES ('{id}', '{P1}', '{P2}', {version}, 100, '2026-01-01T00:00:00Z', '{status}')"
            )
        };
        exec(order, &insert_order(O1, 1, "placed"))
            .await
            .expect("a good order");
        rejected(
            exec(order, &insert_order(O2, 2, "lost")).await,
            "a status outside one_of",
            "orders_status_check",
        );
        rejected(
            exec(order, &insert_order(O2, 1, "placed")).await,
            "the same cart version twice",
            "UNIQUE constraint failed",
        );
        exec(
            order,
            &format!(
                "INSERT INTO order_details (order_id, product_id, product_name, unit_price, quantity) \
                 VALUES ('{O1}', '{P1}', 'Lamp', 1200, 1), ('{O1}', '{P2}', 'Desk', 5000, 2)"
            ),
        )
        .await
        .expect("order lines");
        rejected(
            exec(
                order,
                &format!(
                    "INSERT INTO order_details (order_id, product_id, product_name, unit_price, quantity) \
                     VALUES ('{O2}', '{P1}', 'Lamp', 1200, 1)"
                ),
            )
            .await,
            "a line of no order",
            "FOREIGN KEY constraint failed",
        );
        assert_eq!(count(order, "SELECT count(*) FROM order_details").await, 2);
        exec(order, &format!("DELETE FROM orders WHERE id = '{O1}'"))
            .await
            .expect("delete");
        assert_eq!(
            count(order, "SELECT count(*) FROM order_details").await,
            0,
            "ON DELETE CASCADE"
        );

        let user = &pools["shop_user"];
        exec(
            user,
            &format!(
                "INSERT INTO events (stream_id, version, position, event_id, event_type, schema_version, payload) \
                 VALUES ('{O1}', 1, 1, '{O2}', 'Registered', 1, '{{\"a\":1}}')"
            ),
        )
        .await
        .expect("an event, with defaults");
        assert_eq!(
            count(
                user,
                "SELECT count(*) FROM events WHERE metadata = '{}' AND recorded_at LIKE '____-__-__T__:__:__.___Z'"
            )
            .await,
            1
        );
        rejected(
            exec(
                user,
                &format!(
                    "INSERT INTO events (stream_id, version, position, event_id, event_type, schema_version, payload) \
                     VALUES ('{O1}', 2, 2, '{P1}', 'Registered', 1, 'not json')"
                ),
            )
            .await,
            "a payload that is not JSON",
            "CHECK constraint failed",
        );
        // The event store in SQL: one row per commit, the concurrency and idempotency
        // keys, and a position per commit.
        let events = &pools["shop_cart_events"];
        assert_eq!(
            columns(events, "commits").await,
            [
                "position",
                "stream_id",
                "commit_seq",
                "commit_id",
                "rev_from",
                "rev_to",
                "events",
                "metadata",
                "committed_at"
            ]
        );
        let commit = |position: i64, seq: i64, commit_id: &str| {
            format!(
                "INSERT INTO commits (position, stream_id, commit_seq, commit_id, rev_from, rev_to, events) \
                 VALUES ({position}, '{O1}', {seq}, '{commit_id}', {seq}, {seq}, '[]')"
            )
        };
        exec(events, &commit(1, 1, P1)).await.expect("a first commit");
        assert_eq!(
            count(
                events,
                "SELECT count(*) FROM commits WHERE metadata = '{}' AND committed_at LIKE '____-__-__T__:__:__.___Z'"
            )
            .await,
            1,
            "defaults"
        );
        rejected(
            exec(events, &commit(2, 1, P2)).await,
            "the same commit_seq twice",
            "UNIQUE constraint failed: commits.stream_id, commits.commit_seq",
        );
        rejected(
            exec(events, &commit(2, 2, P1)).await,
            "the same commit id twice",
            "UNIQUE constraint failed: commits.stream_id, commits.commit_id",
        );
        rejected(
            exec(events, &commit(1, 2, P2)).await,
            "the same position twice",
            "UNIQUE constraint failed: commits.position",
        );
        rejected(
            exec(events, &commit(0, 2, P2)).await,
            "position 0",
            "commits_position_check",
        );
        rejected(
            exec(
                events,
                &format!(
                    "INSERT INTO commits (position, stream_id, commit_seq, commit_id, rev_from, rev_to, events) \
                     VALUES (2, '{O1}', 2, '{P2}', 2, 2, 'not json')"
                ),
            )
            .await,
            "events that are not JSON",
            "CHECK constraint failed",
        );
        exec(events, &commit(2, 2, P2)).await.expect("the next commit");
        exec(
            events,
            "INSERT INTO leases (name, owner, expires_at) VALUES ('relay', 'a', '2026-01-01T00:00:00.000000Z')",
        )
        .await
        .expect("a lease");
        exec(
            events,
            "INSERT INTO skipped_positions (reader, position) VALUES ('relay', 7)",
        )
        .await
        .expect("a skipped position");

        for pool in pools.values() {
            pool.close().await;
        }
        let _ = std::fs::remove_dir_all(&dir);
    });
}

// ---------------------------------------------------------------------- evolution

const SPEC: &str = "evo.yaml";
const CATALOG: &str = "evo_catalog";

fn edit(spec: &str, from: &str, to: &str) -> String {
    assert_eq!(spec.matches(from).count(), 1, "`{from}` once in the spec");
    spec.replacen(from, to, 1)
}

fn sqlite_files(files: &BTreeMap<String, String>, db: &str) -> BTreeMap<String, String> {
    let prefix = format!("sqlite/{db}/");
    files
        .iter()
        .filter_map(|(p, c)| Some((p.strip_prefix(&prefix)?.to_string(), c.clone())))
        .collect()
}

#[test]
fn spec_edits_migrate_a_sqlite_database_with_rows_to_the_fresh_schema() {
    runtime().block_on(async {
        let dir = scratch("evolution");
        let s0 = std::fs::read_to_string(root().join("codegen/tests/fixtures/evolve.yaml"))
            .expect("fixture");
        let mut lock: Option<String> = None;
        let mut files: BTreeMap<String, String> = BTreeMap::new();
        let migrated = open(&dir.join("migrated.sqlite")).await;
        let listed = "      listed_at: { type: timestamp, readonly: true }\n";
        let indexes = "    indexes:\n      - [title]\n";
        let s1 = edit(
            &s0,
            listed,
            &format!(
                "{listed}      colour: {{ type: string, max_len: 20, optional: true }}\n      stock: {{ type: int, min: 0, default: 5, readonly: true }}\n"
            ),
        );
        let s2 = edit(
            &s1,
            "title: { type: string, min_len: 1, max_len: 80 }",
            "title: { type: string, min_len: 1, max_len: 120 }",
        );
        let s3 = edit(&s2, indexes, &format!("{indexes}      - [quantity]\n"));
        let indexes = format!("{indexes}      - [quantity]\n");
        let s4 = edit(
            &s3,
            &indexes,
            &format!(
                "{indexes}    relations:\n      tags: {{ to: Tag, cardinality: \"0..*\", owned: true }}\n\n  Tag:\n    doc: A word to search by.\n    key: [label]\n    fields:\n      label: {{ type: string, min_len: 1, max_len: 30 }}\n"
            ),
        );
        let s5 = edit(
            &edit(
                &edit(
                    &s4,
                    "      title: { type: string, min_len: 1, max_len: 120 }",
                    "      name: { type: string, min_len: 1, max_len: 120, renamed_from: title }",
                ),
                "      - [title]",
                "      - [name]",
            ),
            "order_by: [title]",
            "order_by: [name]",
        );
        let steps = [
            ("0-base", &s0, None),
            ("1-add-columns", &s1, Some("0002_items_add_colour_stock.sql")),
            ("2-rebuild", &s2, Some("0003_items_constraints.sql")),
            ("3-add-index", &s3, Some("0004_items_add_index.sql")),
            ("4-add-table", &s4, Some("0005_create_tags.sql")),
            ("5-rename-in-a-parent", &s5, None),
        ];
        let mut rows = 0;
        for (n, (step, spec, file)) in steps.into_iter().enumerate() {
            let title = if step.starts_with('5') { "name" } else { "title" };
            let g = codegen::generate(Path::new(SPEC), spec, lock.as_deref(), true)
                .unwrap_or_else(|e| panic!("{step}: {e}"));
            for p in &g.preserved {
                assert_eq!(
                    codegen::lock::sha256(&files[&p.path]),
                    p.sha256,
                    "{step}: {}",
                    p.path
                );
            }
            for f in g.files {
                assert!(
                    !g.preserved.iter().any(|p| p.path == f.path),
                    "{step}: {} rewritten",
                    f.path
                );
                files.insert(f.path, f.contents);
            }
            lock = Some(g.lock_text);
            let sqlite = sqlite_files(&files, CATALOG);
            let pg: Vec<String> = files
                .keys()
                .filter_map(|p| p.strip_prefix(&format!("sql/{CATALOG}/")).map(str::to_string))
                .collect();
            assert_eq!(
                sqlite.keys().cloned().collect::<Vec<_>>(),
                pg,
                "{step}: same files"
            );
            if let Some(file) = file {
                assert!(sqlite.contains_key(file), "{step}: {:?}", sqlite.keys());
            }
            if step == "2-rebuild" {
                let sql = &sqlite["0003_items_constraints.sql"];
                assert!(
                    sql.contains("INSERT INTO items_rebuild (") && sql.contains("DROP TABLE items;"),
                    "{sql}"
                );
            }

            migrate(&migrated, &sqlite, &dir.join(format!("m{n}"))).await;
            // A fresh database of the same spec.
            let system = codegen::load(Path::new(SPEC), spec).unwrap_or_else(|e| panic!("{e}"));
            let fresh_files: BTreeMap<String, String> = codegen::emit::sqlite::emit(&system)
                .expect("sqlite")
                .into_iter()
                .filter_map(|f| {
                    Some((
                        f.path.strip_prefix(&format!("sqlite/{CATALOG}/"))?.to_string(),
                        f.contents,
                    ))
                })
                .collect();
            let fresh = open(&dir.join(format!("fresh-{n}.sqlite"))).await;
            migrate(&fresh, &fresh_files, &dir.join(format!("f{n}"))).await;
            let (got, want) = (schema(&migrated).await, schema(&fresh).await);
            fresh.close().await;
            assert!(
                want.iter().any(|l| l.starts_with("index items_"))
                    && want.iter().any(|l| l.contains("CONSTRAINT items_pkey")),
                "{want:#?}"
            );
            assert_eq!(
                got,
                want,
                "{step}: migrated differs from fresh\n{}",
                sqlite.values().last().expect("a migration")
            );
            assert_eq!(
                count(&migrated, "SELECT count(*) FROM items").await,
                rows,
                "{step}: rows lost"
            );
            if step == "5-rename-in-a-parent" {
                assert_eq!(
                    count(&migrated, "SELECT count(*) FROM tags").await,
                    1,
                    "a rebuilt parent keeps its children"
                );
            }
            exec(
                &migrated,
                &format!(
                    "INSERT INTO items (id, {title}, quantity, listed_at) \
                     VALUES ('00000000-0000-0000-0000-00000000000{n}', 'Lamp {n}', {n}, '2026-01-01T00:00:00Z')"
                ),
            )
            .await
            .unwrap_or_else(|e| panic!("{step}: insert: {e}"));
            if step == "4-add-table" {
                exec(
                    &migrated,
                    "INSERT INTO tags (item_id, label) VALUES ('00000000-0000-0000-0000-000000000001', 'light')",
                )
                .await
                .expect("a tag");
            }
            rows += 1;
        }
        assert_eq!(
            count(&migrated, "SELECT count(*) FROM items WHERE stock = 5").await,
            rows
        );
        migrated.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    });
}
