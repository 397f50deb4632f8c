//! Random specs (tests/support/random_spec.rs) edited at random, step by step, each
//! step generated against the lock of the one before (breaking changes accepted): the
//! migrations every step wrote, applied in order, give each database exactly the schema
//! a fresh generation of the last spec gives, on a real PostgreSQL and on SQLite. An
//! edit that makes the spec invalid must be refused with positioned errors.
//!
//! `GENERATED_SPECS_SEED=<n>` explores other specs and edits.

use std::collections::BTreeMap;
use std::path::Path;

use codegen::GenerateError;
use serde_yaml::{Mapping, Value};

#[path = "support/postgres.rs"]
mod postgres;
#[path = "support/random_spec.rs"]
mod random_spec;
#[path = "support/sqlite.rs"]
mod sqlite;

const SPEC: &str = "random.yaml";

fn base_seed() -> u64 {
    std::env::var("GENERATED_SPECS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_261_129)
}

/// The stored (not abstract) entities' field maps, with their entity names.
fn stored_entities(spec: &mut Value) -> Vec<(String, &mut Mapping)> {
    let Some(entities) = spec["entities"].as_mapping_mut() else {
        return Vec::new();
    };
    entities
        .iter_mut()
        .filter(|(_, e)| e.get("abstract").is_none())
        .filter_map(|(name, e)| {
            let name = name.as_str()?.to_string();
            Some((name, e.get_mut("fields")?.as_mapping_mut()?))
        })
        .collect()
}

/// One random edit of the kinds people make: add, drop, rename, retype or constrain a
/// field (optional, unique, required with a default), index one, or add an entity with
/// its service.
fn edit(text: &str, rng: &mut random_spec::Rng, step: u64) -> String {
    let mut spec: Value = serde_yaml::from_str(text).expect("a random spec parses");
    let kind = rng.below(9);
    if kind == 8 {
        let entity = format!("Added{step}");
        let svc = format!("added_{step}");
        let yaml = |s: &str| serde_yaml::from_str::<Value>(s).expect("yaml");
        spec["entities"].as_mapping_mut().expect("entities").insert(
            entity.clone().into(),
            yaml("fields: { id: uuid, label: { type: string, max_len: 20 } }"),
        );
        spec["services"].as_mapping_mut().expect("services").insert(
            svc.into(),
            yaml(&format!(
                "{{ pattern: crud, entity: {entity}, store: postgres, use_cases: {{ List{entity}: {{ kind: list }}, Create{entity}: {{ kind: create }} }} }}"
            )),
        );
        return serde_yaml::to_string(&spec).expect("yaml");
    }
    let mut entities = stored_entities(&mut spec);
    if entities.is_empty() {
        return text.to_string();
    }
    let pick = rng.below(entities.len());
    let (_, fields) = &mut entities[pick];
    let names: Vec<String> = fields
        .keys()
        .filter_map(|k| k.as_str().map(str::to_string))
        .filter(|k| k != "id")
        .collect();
    let field = names.get(rng.below(names.len().max(1))).cloned();
    match (kind, field) {
        (0, _) | (_, None) => {
            fields.insert(
                format!("added_{step}").into(),
                serde_yaml::from_str("{ type: int, optional: true }").expect("yaml"),
            );
        }
        (1, Some(f)) => {
            fields.remove(f.as_str());
        }
        (2, Some(f)) => {
            let decl = fields.remove(f.as_str()).expect("field");
            let mut decl = match decl {
                Value::Mapping(m) => m,
                short => Mapping::from_iter([("type".into(), short)]),
            };
            decl.insert("renamed_from".into(), f.clone().into());
            fields.insert(format!("{f}_{step}").into(), Value::Mapping(decl));
        }
        (3, Some(f)) => {
            if let Some(Value::Mapping(m)) = fields.get_mut(f.as_str())
                && m.contains_key("max_len")
            {
                m.insert("max_len".into(), (90 + step).into());
            } else if let Some(Value::Mapping(m)) = fields.get_mut(f.as_str()) {
                m.insert("optional".into(), true.into());
            }
        }
        (5, Some(f)) => {
            let retyped = "{ type: string, max_len: 10, optional: true }";
            fields.insert(f.into(), serde_yaml::from_str(retyped).expect("yaml"));
        }
        (6, Some(f)) => {
            if let Some(Value::Mapping(m)) = fields.get_mut(f.as_str()) {
                m.insert("unique".into(), true.into());
            }
        }
        (7, Some(f)) => {
            let required = "{ type: int, min: 0, default: 7 }";
            fields.insert(f.into(), serde_yaml::from_str(required).expect("yaml"));
        }
        (_, Some(f)) => {
            let entity = entities[pick].0.clone();
            let e = &mut spec["entities"][entity.as_str()];
            let index: Value = serde_yaml::from_str(&format!("[[{f}]]")).expect("yaml");
            e.as_mapping_mut()
                .expect("entity")
                .insert("indexes".into(), index);
        }
    }
    serde_yaml::to_string(&spec).expect("yaml")
}

/// Every file path -> contents, as the output folder holds them after each step.
type Tree = BTreeMap<String, String>;

fn migrations(tree: &Tree, prefix: &str, db: &str) -> Tree {
    let dir = format!("{prefix}{db}/");
    tree.iter()
        .filter_map(|(p, c)| Some((p.strip_prefix(&dir)?.to_string(), c.clone())))
        .filter(|(p, _)| p.ends_with(".sql"))
        .collect()
}

async fn same_as_fresh(tree: &Tree, spec: &str, case: &str) {
    let system = codegen::load(Path::new(SPEC), spec).unwrap_or_else(|e| panic!("{e}"));
    let mut fresh: Tree = Tree::new();
    for f in codegen::emit::sql::emit(&system)
        .expect("sql")
        .into_iter()
        .chain(codegen::emit::sqlite::emit(&system).expect("sqlite"))
    {
        fresh.insert(f.path, f.contents);
    }
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("random-evolution")
        .join(format!("{case}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).expect("scratch");
    for db in &system.databases {
        let db = db.name.as_str();
        // SQLite
        let migrated = sqlite::open(&scratch.join(format!("{db}.sqlite"))).await;
        sqlite::migrate(
            &migrated,
            &migrations(tree, "sqlite/", db),
            &scratch.join(db),
        )
        .await;
        let new = sqlite::open(&scratch.join(format!("{db}-fresh.sqlite"))).await;
        let fresh_dir = scratch.join(format!("{db}-fresh"));
        sqlite::migrate(&new, &migrations(&fresh, "sqlite/", db), &fresh_dir).await;
        let (got, want) = (sqlite::schema(&migrated).await, sqlite::schema(&new).await);
        assert_eq!(
            got, want,
            "{case}: {db} on SQLite differs from a fresh one\n{spec}"
        );
        // PostgreSQL
        let mut catalogs = Vec::new();
        for (label, files) in [
            ("m", migrations(tree, "sql/", db)),
            ("f", migrations(&fresh, "sql/", db)),
        ] {
            let name = format!("{case}_{label}_{}", std::process::id());
            let got = postgres::with_database(&name, |pool| async move {
                for (file, sql) in &files {
                    if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
                        .execute(&pool)
                        .await
                    {
                        panic!("{case}: {db}/{file} does not apply to PostgreSQL: {e}\n{sql}");
                    }
                }
                postgres::catalog(&pool).await
            })
            .await;
            catalogs.push(got);
        }
        let missing: Vec<_> = catalogs[1].difference(&catalogs[0]).collect();
        let extra: Vec<_> = catalogs[0].difference(&catalogs[1]).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{case}: {db} after its migrations differs from a fresh one\nmissing: {missing:#?}\nextra: {extra:#?}\n{spec}"
        );
    }
    let _ = std::fs::remove_dir_all(&scratch);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_edits_migrate_every_database_to_the_fresh_schema() {
    let base = base_seed();
    let (mut steps, mut refused) = (0, 0);
    for i in 0..8 {
        let seed = base.wrapping_add(i * 7919);
        let mut rng = random_spec::Rng::new(seed ^ 0x5eed);
        let mut text = random_spec::spec(seed, 0);
        let first = codegen::generate(Path::new(SPEC), &text, None, false)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}\n{text}"));
        let mut tree: Tree = first
            .files
            .into_iter()
            .map(|f| (f.path, f.contents))
            .collect();
        let mut lock = first.lock_text;
        for step in 0..3 {
            let next = edit(&text, &mut rng, step);
            match codegen::generate(Path::new(SPEC), &next, Some(&lock), true) {
                Ok(g) => {
                    tree.extend(g.files.into_iter().map(|f| (f.path, f.contents)));
                    lock = g.lock_text;
                    text = next;
                    steps += 1;
                }
                Err(GenerateError::Spec(e)) => {
                    let shown = e.to_string();
                    assert!(
                        shown
                            .lines()
                            .filter(|l| l.contains("error:"))
                            .all(|l| l.starts_with(SPEC)),
                        "seed {seed}: an error without a position:\n{shown}"
                    );
                    refused += 1;
                }
                Err(other) => panic!("seed {seed} step {step}: internal error: {other}\n{next}"),
            }
        }
        same_as_fresh(&tree, &text, &format!("evo{i}")).await;
    }
    assert!(
        steps >= 12,
        "only {steps} edits generated ({refused} refused)"
    );
}
