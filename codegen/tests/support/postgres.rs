//! PostgreSQL for the tests that apply generated migrations: started with the
//! project's harness (`xtask/infra/infra.sh up postgres`); a test fails, never skips,
//! when it cannot be started.

#![allow(dead_code)]

use std::collections::BTreeSet;
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

/// Everything about the schema that a migration can get wrong, one line per fact.
pub async fn catalog(pool: &sqlx::PgPool) -> BTreeSet<String> {
    let sql = r"
        SELECT format('column %s.%s %s null=%s default=%s', table_name, column_name, data_type,
                      is_nullable, coalesce(column_default, '-'))
          FROM information_schema.columns
         WHERE table_schema = 'public' AND table_name NOT LIKE '\_sqlx%'
        UNION ALL
        SELECT format('constraint %s.%s %s', c.conrelid::regclass::text, c.conname,
                      pg_get_constraintdef(c.oid))
          FROM pg_constraint c
         WHERE c.connamespace = 'public'::regnamespace AND c.contype <> 'n'
           AND c.conrelid::regclass::text NOT LIKE '\_sqlx%'
        UNION ALL
        SELECT format('index %s.%s %s', tablename, indexname, indexdef)
          FROM pg_indexes
         WHERE schemaname = 'public' AND tablename NOT LIKE '\_sqlx%'
        UNION ALL
        SELECT format('comment %s.%s %s', c.relname, coalesce(a.attname, '-'), d.description)
          FROM pg_description d
          JOIN pg_class c ON c.oid = d.objoid AND d.classoid = 'pg_class'::regclass
          LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.objsubid AND d.objsubid > 0
         WHERE c.relnamespace = 'public'::regnamespace AND c.relname NOT LIKE '\_sqlx%'";
    sqlx::query_scalar(sql)
        .fetch_all(pool)
        .await
        .expect("catalog")
        .into_iter()
        .collect()
}

/// Runs `f` on a new database `name`, dropped afterwards.
pub async fn with_database<T, F, Fut>(name: &str, f: F) -> T
where
    F: FnOnce(sqlx::PgPool) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let admin_url = postgres_url();
    let admin = sqlx::PgPool::connect(admin_url).await.expect("postgres");
    let ddl = |sql: String| {
        let admin = admin.clone();
        async move {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
                .execute(&admin)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    };
    ddl(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await;
    ddl(format!("CREATE DATABASE \"{name}\"")).await;
    let pool = sqlx::PgPool::connect(&db_url(admin_url, name))
        .await
        .expect("connect");
    let out = f(pool.clone()).await;
    pool.close().await;
    ddl(format!("DROP DATABASE \"{name}\" WITH (FORCE)")).await;
    admin.close().await;
    out
}
