//! A generation's output checked by the tools that consume it: protox compiles every
//! proto, async-graphql builds the SDL into a schema, every SQLite and PostgreSQL
//! migration applies in order to a fresh database, and (when asked) Envoy validates
//! every config.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use codegen::Generation;
use serde::Deserialize;

#[path = "envoy.rs"]
mod envoy;
#[path = "gql.rs"]
mod gql;
#[path = "postgres.rs"]
mod postgres;

pub struct Checks {
    pub postgres: bool,
    pub envoy: bool,
}

/// Panics, showing `spec`, at the first consumer that rejects an output.
pub fn accept(g: &Generation, spec: &str, checks: Checks) {
    let files: BTreeMap<&str, &str> = g
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.contents.as_str()))
        .collect();
    protos_compile(&files, spec);
    deploy_names_are_valid(&files, spec);
    let sdl = files.get("graphql/schema.graphql").expect("an SDL");
    let built = std::panic::catch_unwind(|| gql::build(&gql::parse(sdl)));
    assert!(built.is_ok(), "the SDL is not a schema\n{spec}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        for (db, migrations) in migrations(&files, "sqlite/") {
            let pool = sqlx::sqlite::SqlitePool::connect("sqlite::memory:")
                .await
                .expect("sqlite");
            apply(&pool, &db, &migrations, spec).await;
        }
        if checks.postgres {
            for (db, migrations) in migrations(&files, "sql/") {
                on_fresh_postgres(&db, |pool| {
                    let (db, migrations) = (db.clone(), migrations.clone());
                    async move { apply(&pool, &db, &migrations, spec).await }
                })
                .await;
            }
        }
    });
    if checks.envoy {
        envoy_validates(&files, spec);
    }
}

fn protos_compile(files: &BTreeMap<&str, &str>, spec: &str) {
    struct Memory(BTreeMap<String, String>);
    impl protox::file::FileResolver for Memory {
        fn open_file(&self, name: &str) -> Result<protox::file::File, protox::Error> {
            match self.0.get(name) {
                Some(src) => protox::file::File::from_source(name, src),
                None => Err(protox::Error::file_not_found(name)),
            }
        }
    }
    let protos: BTreeMap<String, String> = files
        .iter()
        .filter_map(|(p, c)| Some((p.strip_prefix("proto/")?.to_string(), c.to_string())))
        .filter(|(p, _)| p.ends_with(".proto"))
        .collect();
    assert!(!protos.is_empty(), "no protos\n{spec}");
    let mut resolver = protox::file::ChainFileResolver::new();
    resolver.add(Memory(protos.clone()));
    resolver.add(protox::file::GoogleFileResolver::new());
    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    for name in protos.keys() {
        if let Err(e) = compiler.open_file(name) {
            panic!("protox rejects {name}: {e:?}\n{spec}");
        }
    }
}

/// The migrations under `prefix` by database, each list in file-name order.
fn migrations(
    files: &BTreeMap<&str, &str>,
    prefix: &str,
) -> BTreeMap<String, Vec<(String, String)>> {
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for (path, contents) in files {
        let Some((db, file)) = path.strip_prefix(prefix).and_then(|r| r.split_once('/')) else {
            continue;
        };
        if file.ends_with(".sql") {
            out.entry(db.to_string())
                .or_default()
                .push((path.to_string(), contents.to_string()));
        }
    }
    out
}

async fn apply<DB: sqlx::Database>(
    pool: &sqlx::Pool<DB>,
    db: &str,
    migrations: &[(String, String)],
    spec: &str,
) where
    for<'c> &'c sqlx::Pool<DB>: sqlx::Executor<'c, Database = DB>,
{
    for (path, sql) in migrations {
        if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
            .execute(pool)
            .await
        {
            panic!("{path} does not apply to {db} on {}: {e}\n{spec}", DB::NAME);
        }
    }
}

/// Runs `f` on a database of its own, dropped afterwards.
async fn on_fresh_postgres<F, Fut>(db: &str, f: F)
where
    F: FnOnce(sqlx::PgPool) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let name = format!("gen_{db}_{}_{n}", std::process::id());
    postgres::with_database(&name, f).await;
}

fn envoy_validates(files: &BTreeMap<&str, &str>, spec: &str) {
    let dir = std::env::temp_dir().join(format!(
        "envoy-configs-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let mut configs: Vec<PathBuf> = Vec::new();
    for (path, contents) in files {
        if path.starts_with("envoy/") || path.starts_with("k8s/base/envoy/") {
            let file = dir.join(path);
            std::fs::create_dir_all(file.parent().unwrap_or(Path::new("."))).expect("dir");
            std::fs::write(&file, contents).expect("write");
            configs.push(file);
        }
    }
    assert!(!configs.is_empty(), "no Envoy configs\n{spec}");
    let failures = envoy::validate(&configs);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        failures.is_empty(),
        "envoy rejected:\n{}\n{spec}",
        failures.join("\n")
    );
}

/// Every Kubernetes object is named as its kind requires (a Service or Namespace name is
/// a DNS label of at most 63 characters, other objects DNS subdomains), and every compose
/// service name is one compose accepts.
fn deploy_names_are_valid(files: &BTreeMap<&str, &str>, spec: &str) {
    let label = |s: &str| {
        !s.is_empty()
            && s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-')
    };
    let subdomain = |s: &str| s.len() <= 253 && s.split('.').all(label);
    let mut named = 0;
    for (path, contents) in files
        .iter()
        .filter(|(p, _)| p.starts_with("k8s/") && p.ends_with(".yaml"))
    {
        for doc in serde_yaml::Deserializer::from_str(contents) {
            let value = serde_yaml::Value::deserialize(doc).expect("k8s YAML");
            let kind = value["kind"].as_str().unwrap_or_default();
            for name in [&value["metadata"]["name"], &value["namespace"]] {
                let Some(name) = name.as_str() else { continue };
                let ok = match kind {
                    "Service" | "Namespace" | "Kustomization" => label(name),
                    _ => subdomain(name),
                };
                assert!(
                    ok,
                    "{path}: {kind} name `{name}` is not valid in Kubernetes\n{spec}"
                );
                named += 1;
            }
        }
    }
    assert!(named > 0, "no Kubernetes names\n{spec}");
    let compose = files
        .get("compose/docker-compose.yaml")
        .expect("a compose file");
    let compose: serde_yaml::Value = serde_yaml::from_str(compose).expect("compose YAML");
    let services = compose["services"].as_mapping().expect("compose services");
    for name in services.keys().filter_map(|k| k.as_str()) {
        let ok = name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        assert!(ok, "compose service name `{name}` is not valid\n{spec}");
    }
}
