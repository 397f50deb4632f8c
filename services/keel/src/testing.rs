//! Integration tests run against the real PostgreSQL that `xtask/infra/infra.sh`
//! installs and starts; each test gets a database of its own.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use sqlx::{Connection, Executor, PgConnection};

#[cfg(feature = "stack")]
pub mod process;
#[cfg(feature = "stack")]
pub mod stack;

/// The repository root (this crate lives in `services/keel`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Starts the harness's components (idempotent); panics with the script's output if
/// they cannot be started, so a missing server fails the test instead of skipping it.
pub fn infra_up(components: &[&str]) {
    let out = Command::new("bash")
        .arg(repo_root().join("xtask/infra/infra.sh"))
        .arg("up")
        .args(components)
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "infra.sh up {components:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `KEY=value` pairs that `infra.sh env` exports.
pub fn infra_env() -> &'static Vec<(String, String)> {
    static ENV: OnceLock<Vec<(String, String)>> = OnceLock::new();
    ENV.get_or_init(|| {
        let out = Command::new("bash")
            .arg(repo_root().join("xtask/infra/infra.sh"))
            .arg("env")
            .output()
            .expect("bash runs");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches(['\'', '"']).to_string()))
            .collect()
    })
}

pub fn infra_var(key: &str) -> String {
    infra_env()
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("infra.sh env does not export {key}"))
}

/// A database created for one test and dropped with it.
pub struct TestDatabase {
    pub url: String,
    name: String,
    admin_url: String,
}

impl TestDatabase {
    /// Starts PostgreSQL if needed and creates `<prefix>_<random>`.
    pub async fn create(prefix: &str) -> TestDatabase {
        infra_up(&["postgres"]);
        let admin_url = infra_var("DATABASE_URL");
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .expect("connect to postgres");
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("create database");
        let url = match admin_url.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => panic!("DATABASE_URL without a database: {admin_url}"),
        };
        TestDatabase {
            url,
            name,
            admin_url,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop runs outside the test's runtime; a short-lived one is enough.
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    if let Ok(mut c) = PgConnection::connect(&admin_url).await {
                        let _ = c
                            .execute(sqlx::AssertSqlSafe(format!(
                                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                            )))
                            .await;
                    }
                });
            }
        })
        .join();
    }
}

/// A fresh, empty store of one dialect for a test: a database on the harness's
/// PostgreSQL, or a SQLite file in a temporary folder. Tests of code written once for
/// both dialects run against each (`for d in [Dialect::Postgres, Dialect::Sqlite]`).
pub enum TestStore {
    Postgres(TestDatabase),
    Sqlite { dir: tempfile::TempDir, url: String },
}

impl TestStore {
    pub async fn create(dialect: crate::sql::Dialect, prefix: &str) -> TestStore {
        match dialect {
            crate::sql::Dialect::Postgres => {
                TestStore::Postgres(TestDatabase::create(prefix).await)
            }
            crate::sql::Dialect::Sqlite => {
                let dir = tempfile::tempdir().expect("temporary folder");
                let url = format!("sqlite://{}/{prefix}.db", dir.path().display());
                TestStore::Sqlite { dir, url }
            }
        }
    }

    pub fn url(&self) -> &str {
        match self {
            TestStore::Postgres(d) => &d.url,
            TestStore::Sqlite { url, .. } => url,
        }
    }

    pub fn dialect(&self) -> crate::sql::Dialect {
        match self {
            TestStore::Postgres(_) => crate::sql::Dialect::Postgres,
            TestStore::Sqlite { .. } => crate::sql::Dialect::Sqlite,
        }
    }
}
