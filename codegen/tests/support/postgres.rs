//! PostgreSQL for the tests that apply generated migrations: started with the
//! project's harness (`xtask/infra/infra.sh up postgres`); a test fails, never skips,
//! when it cannot be started.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Starts PostgreSQL with the project's harness (once) and returns its URL.
pub fn postgres_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let script = root().join("xtask/infra/infra.sh");
        let up = Command::new("bash")
            .arg(&script)
            .args(["up", "postgres"])
            .output()
            .expect("run infra.sh");
        assert!(
            up.status.success(),
            "`xtask/infra/infra.sh up postgres` failed: PostgreSQL is required for this test\n{}{}",
            String::from_utf8_lossy(&up.stdout),
            String::from_utf8_lossy(&up.stderr)
        );
        let env = Command::new("bash")
            .arg(&script)
            .arg("env")
            .output()
            .expect("run infra.sh env");
        assert!(env.status.success(), "infra.sh env failed");
        String::from_utf8_lossy(&env.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("export DATABASE_URL="))
            .map(|u| u.trim_matches(['\'', '"']).to_string())
            .expect("DATABASE_URL in `infra.sh env`")
    })
}

pub fn db_url(base: &str, db: &str) -> String {
    let (server, _) = base.rsplit_once('/').expect("URL with a database");
    format!("{server}/{db}")
}
