//! The framework beyond the shop: the spec language's features, each used by an example
//! outside the shop (the library in `services/library` and the starter of `cargo xtask
//! new`), both of which generate, build and answer GraphQL in their own tests. A feature
//! no such example uses is listed in `NOT_YET`, which the README repeats.

use std::collections::BTreeSet;
use std::path::Path;

use serde_yaml::Value;

/// Every feature of the spec language, as `key` or `key:value` facts of a spec's YAML.
const FEATURES: &[&str] = &[
    "pattern:crud",
    "pattern:cqs-es",
    "pattern:cqrs-es",
    "type:uuid",
    "type:string",
    "type:text",
    "type:email",
    "type:int",
    "type:money",
    "type:timestamp",
    "type:bool",
    "ref",
    "optional",
    "unique",
    "readonly",
    "min_len",
    "max_len",
    "min",
    "max",
    "one_of",
    "default",
    "renamed_from",
    "abstract",
    "extends",
    "relations",
    "owned",
    "on_delete:cascade",
    "key",
    "indexes",
    "kind:list",
    "kind:get",
    "kind:create",
    "kind:update",
    "kind:delete",
    "kind:custom",
    "params",
    "audience:back-office",
    "audience:internal",
    "idempotent",
    "page_size",
    "filter",
    "order_by",
    "commands",
    "events",
    "queries",
    "consistency:strong",
    "exists",
    "calls",
    "subscribes",
    "messaging",
    "doc",
    "limits",
    "max_body_bytes",
    "request_timeout_ms",
];

/// Used by the shop and the generator's fixtures only, for now.
const NOT_YET: &[&str] = &[];

fn facts(value: &Value, parent: Option<&str>, out: &mut BTreeSet<String>) {
    match value {
        Value::Mapping(m) => {
            for (k, v) in m {
                let Some(k) = k.as_str() else { continue };
                out.insert(k.to_string());
                match v {
                    Value::String(s) if parent == Some("fields") => {
                        out.insert(format!("type:{s}"));
                    }
                    Value::String(s) => {
                        out.insert(format!("{k}:{s}"));
                    }
                    _ => {}
                }
                facts(v, Some(k), out);
            }
        }
        Value::Sequence(items) => items.iter().for_each(|v| facts(v, parent, out)),
        _ => {}
    }
}

fn example(path: &str) -> (String, String) {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{path}: {e}"));
    (path.to_string(), text.replace("{{system}}", "starter"))
}

#[test]
fn the_examples_beyond_the_shop_use_every_feature_of_the_spec_language() {
    let mut seen = BTreeSet::new();
    for (path, text) in [
        example("services/library/spec/library.yaml"),
        example("templates/new/spec.yaml"),
    ] {
        if let Err(e) = codegen::load(Path::new(&path), &text) {
            panic!("{path} does not load:\n{e}");
        }
        let value: Value = serde_yaml::from_str(&text).expect("YAML");
        facts(&value, None, &mut seen);
    }
    let missing: Vec<&str> = FEATURES
        .iter()
        .copied()
        .filter(|f| !seen.contains(*f))
        .collect();
    assert!(
        missing.is_empty(),
        "no example outside the shop uses {missing:?}"
    );
    let now_used: Vec<&str> = NOT_YET
        .iter()
        .copied()
        .filter(|f| seen.contains(*f))
        .collect();
    assert!(
        now_used.is_empty(),
        "move {now_used:?} from NOT_YET to FEATURES"
    );
}

/// The deployables table promises each deployable reads the variables it lists (test
/// stacks and deploy files set them): the generated crate of its service declares each
/// one as an `env` of its `Config`, for the shop and both examples beyond it.
#[test]
fn every_setting_of_the_deployables_table_is_read_by_the_generated_config() {
    for (path, text) in [
        example("spec/shop.yaml"),
        example("services/library/spec/library.yaml"),
        example("templates/new/spec.yaml"),
    ] {
        let system = codegen::load(Path::new(&path), &text).unwrap_or_else(|e| panic!("{e}"));
        let files = codegen::emit::all(&system).unwrap_or_else(|e| panic!("{path}: {e}"));
        for d in &system.deployables {
            let crate_dir = format!("rust/{}/", d.service);
            let sources: String = files
                .iter()
                .filter(|f| f.path.starts_with(&crate_dir) && f.path.ends_with(".rs"))
                .map(|f| f.contents.as_str())
                .collect();
            assert!(!sources.is_empty(), "{path}: no crate {crate_dir}");
            for s in &d.settings {
                assert!(
                    sources.contains(&format!("env = \"{}\"", s.env)),
                    "{path}: {} lists {} ({:?}) but {crate_dir} does not read it",
                    d.name,
                    s.env,
                    s.kind
                );
            }
        }
    }
}
