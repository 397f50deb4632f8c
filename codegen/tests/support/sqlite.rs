//! SQLite helpers shared by the tests that apply the generated SQLite migrations.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use sqlx::Row;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

pub async fn open(file: &Path) -> SqlitePool {
    let options = SqliteConnectOptions::new()
        .filename(file)
        .create_if_missing(true)
        .foreign_keys(true);
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .expect("open sqlite")
}

/// Applies `files` (file name → SQL) as sqlx migrations read from `dir` (sqlx skips
/// applied ones and fails if one of those changed).
pub async fn migrate(pool: &SqlitePool, files: &BTreeMap<String, String>, dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("mkdir");
    for (name, contents) in files {
        std::fs::write(dir.join(name), contents).expect("write");
    }
    Migrator::new(dir)
        .await
        .expect("read migrations")
        .run(pool)
        .await
        .unwrap_or_else(|e| panic!("migrate {}: {e}", dir.display()));
}

/// The schema in `sqlite_master`, normalised: a table is its sorted column and
/// constraint definitions (ADD COLUMN appends at the end of the text; RENAME quotes).
pub async fn schema(pool: &SqlitePool) -> BTreeSet<String> {
    let rows = sqlx::query(
        "SELECT type, name, sql FROM sqlite_master \
         WHERE name NOT LIKE '\\_sqlx%' ESCAPE '\\' AND sql IS NOT NULL",
    )
    .fetch_all(pool)
    .await
    .expect("sqlite_master");
    let squash = |s: &str| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .replace('"', "")
    };
    let mut out = BTreeSet::new();
    for r in rows {
        let (ty, name, sql): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        if ty != "table" {
            out.insert(format!("{ty} {name}: {}", squash(&sql)));
            continue;
        }
        let (open, close) = (sql.find('(').expect("("), sql.rfind(')').expect(")"));
        let (mut depth, mut quoted, mut item) = (0, false, String::new());
        let mut items = Vec::new();
        for ch in sql[open + 1..close].chars() {
            match ch {
                '\'' => quoted = !quoted,
                '(' if !quoted => depth += 1,
                ')' if !quoted => depth -= 1,
                ',' if !quoted && depth == 0 => {
                    items.push(squash(&item));
                    item.clear();
                    continue;
                }
                _ => {}
            }
            item.push(ch);
        }
        items.push(squash(&item));
        items.sort();
        out.insert(format!(
            "table {name} {}: {}",
            squash(&sql[close + 1..]),
            items.join(" | ")
        ));
    }
    out
}
