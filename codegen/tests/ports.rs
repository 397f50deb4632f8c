//! Local ports are pinned by deployable name in the spec lock: inserting or reordering
//! services moves no existing deployable's ports, a new one gets the highest slot ever
//! used + 1, and a removed one's slot is never handed to another. Each step generates
//! against the lock the step before wrote, on a copy of the real spec.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use codegen::lock::Lock;
use codegen::{GenerateError, Generation};

const SPEC: &str = "shop.yaml";

fn real_spec() -> String {
    let root: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::read_to_string(root.join("spec/shop.yaml")).expect("spec/shop.yaml")
}

/// `spec` with `from` (which must occur exactly once) replaced by `to`.
#[track_caller]
fn edit(spec: &str, from: &str, to: &str) -> String {
    assert_eq!(spec.matches(from).count(), 1, "`{from}` must occur once");
    spec.replacen(from, to, 1)
}

fn generate(spec: &str, lock: Option<&str>) -> Result<Generation, GenerateError> {
    codegen::generate(Path::new(SPEC), spec, lock, true)
}

#[track_caller]
fn step(spec: &str, lock: Option<&str>) -> Generation {
    generate(spec, lock).unwrap_or_else(|e| panic!("generation failed:\n{e}"))
}

/// Slot by deployable name, retired ones marked with a trailing `!`.
fn slots(g: &Generation) -> BTreeMap<String, String> {
    let lock = Lock::parse(&g.lock_text).expect("the lock parses");
    lock.deployables
        .iter()
        .map(|(name, d)| {
            let mark = if d.retired { "!" } else { "" };
            (name.clone(), format!("{}{mark}", d.slot))
        })
        .collect()
}

fn file<'a>(g: &'a Generation, path: &str) -> &'a str {
    g.files
        .iter()
        .find(|f| f.path == path)
        .map(|f| f.contents.as_str())
        .unwrap_or_else(|| panic!("{path} was not generated"))
}

/// A CRUD service of its own entity, inserted before every other service.
fn with_new_service(spec: &str, name: &str, entity: &str) -> String {
    let spec = edit(
        spec,
        "entities:\n",
        &format!(
            "entities:\n  {entity}:\n    fields:\n      id: uuid\n      note: {{ type: string, max_len: 50 }}\n\n"
        ),
    );
    edit(
        &spec,
        "services:\n",
        &format!(
            "services:\n  {name}:\n    pattern: crud\n    entity: {entity}\n    store: postgres\n    use_cases:\n      Get{entity}: {{ kind: get, audience: internal }}\n\n"
        ),
    )
}

/// The `user` service moved before `cart`.
fn reordered(spec: &str) -> String {
    let start = spec.find("  user:\n").expect("user service");
    // The service ends where the next top-level item (or its comment) starts.
    let end = start
        + spec[start..]
            .find("\n#")
            .or_else(|| spec[start..].find("\nbff:"))
            .expect("something after the services")
        + 1;
    let user = &spec[start..end];
    let spec = spec.replacen(user, "", 1);
    edit(&spec, "  cart:\n", &format!("{user}  cart:\n"))
}

fn today() -> BTreeMap<String, String> {
    [
        ("bff", "0"),
        ("product", "1"),
        ("order", "2"),
        ("cart-command", "3"),
        ("cart-query", "4"),
        ("cart-event-handler", "5"),
        ("user", "6"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

#[test]
fn the_first_generation_takes_the_deployable_order_and_a_lock_without_slots_too() {
    let spec = real_spec();
    let first = step(&spec, None);
    assert_eq!(slots(&first), today());
    let table = file(&first, "rust/system/src/table.rs");
    assert!(table.contains("app: 20106"), "user's app port:\n{table}");

    // A lock written before ports were pinned: the positional slots become the pins.
    let mut old = Lock::parse(&first.lock_text).expect("the lock parses");
    old.deployables.clear();
    let text = old.render();
    assert!(!text.contains("\ndeployables:"), "{text}");
    let again = step(&spec, Some(&text));
    assert_eq!(slots(&again), today());
    // Migrations are history now (preserved, not written); everything else is the same.
    for f in &again.files {
        assert_eq!(f.contents, file(&first, &f.path), "{} changed", f.path);
    }
}

#[test]
fn inserting_and_reordering_services_moves_no_port() {
    let s0 = real_spec();
    let g0 = step(&s0, None);
    let s1 = reordered(&with_new_service(&s0, "review", "Review"));
    let g1 = step(&s1, Some(&g0.lock_text));
    let mut want = today();
    want.insert("review".into(), "7".into());
    assert_eq!(slots(&g1), want);
    for d in today().keys() {
        let path = format!("envoy/local/{d}.yaml");
        assert_eq!(file(&g1, &path), file(&g0, &path), "{path} changed");
    }
    let review = file(&g1, "envoy/local/review.yaml");
    for port in ["20107", "20207", "20307"] {
        assert!(review.contains(port), "{port} not in:\n{review}");
    }
}

#[test]
fn a_removed_deployables_slot_is_never_reused() {
    let s0 = real_spec();
    let g0 = step(&s0, None);
    let s1 = with_new_service(&s0, "review", "Review");
    let g1 = step(&s1, Some(&g0.lock_text));

    // `review` goes (breaking, accepted); its slot stays taken.
    let g2 = step(&s0, Some(&g1.lock_text));
    let mut want = today();
    want.insert("review".into(), "7!".into());
    assert_eq!(slots(&g2), want);

    // A later addition gets the next slot, not the free-looking 7.
    let s3 = with_new_service(&s0, "rating", "Rating");
    let g3 = step(&s3, Some(&g2.lock_text));
    want.insert("rating".into(), "8".into());
    assert_eq!(slots(&g3), want);
    assert!(file(&g3, "envoy/local/rating.yaml").contains("20108"));

    // A deployable that comes back takes its own slot again.
    let s4 = with_new_service(&s3, "review", "Review");
    let g4 = step(&s4, Some(&g3.lock_text));
    want.insert("review".into(), "7".into());
    assert_eq!(slots(&g4), want);
}

#[test]
fn running_out_of_slots_is_an_error() {
    let s0 = real_spec();
    let g0 = step(&s0, None);
    let mut lock = Lock::parse(&g0.lock_text).expect("the lock parses");
    lock.deployables.insert(
        "gone".into(),
        codegen::lock::LockedDeployable {
            slot: 99,
            retired: true,
        },
    );
    let s1 = with_new_service(&s0, "review", "Review");
    match generate(&s1, Some(&lock.render())) {
        Err(GenerateError::Spec(e)) => {
            let e = e.to_string();
            assert!(
                e.contains("deployable `review` would get port slot 100"),
                "{e}"
            );
        }
        Err(other) => panic!("expected a spec error, got: {other}"),
        Ok(_) => panic!("slot 100 would give review an Envoy's port"),
    }
}
