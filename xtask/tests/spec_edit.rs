//! The framework's promise, tried as a user would: take the repository's spec, add a
//! field to a CRUD entity and a new entity with its own CRUD service (inserted before the
//! others), generate into a scratch workspace, build, and run what was generated with no
//! hand-written Rust: the new service and the changed one answer over real gRPC on SQLite
//! and on the harness's PostgreSQL (create, list with its filter and paging, get,
//! update, delete, a constraint violation, an unknown id, the new field read back).
//!
//! The first test's scratch workspace holds the generated tree, the runtime
//! (`services/keel`) and a small probe program (`spec_edit/probe.rs`). The second copies
//! the whole repository, edits its spec, regenerates and runs a GraphQL journey
//! (`spec_edit/journey.rs`) against `shop up` and against the deployables behind their
//! Envoys on the real servers, with no hand-written Rust added. Both build into their own
//! target folders under /var/tmp, kept between runs so that only what the edit changed
//! recompiles.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use keel::sql::Dialect;
use keel::testing::TestStore;

#[path = "../../codegen/tests/support/random_spec.rs"]
mod random_spec;

fn root() -> PathBuf {
    // One spelling of the repository (the harness keys its state by the path).
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repository root")
}

const SUPPLIER: &str = "  Supplier:
    doc: Who delivers products.
    fields:
      id: uuid
      name: { type: string, min_len: 1, max_len: 100 }
      country: { type: string, min_len: 2, max_len: 2 }
      rating: { type: int, min: 1, max: 5, optional: true }
      created_at: { type: timestamp, readonly: true }

";

const SUPPLIER_SERVICE: &str = "  supplier:
    pattern: crud
    entity: Supplier
    store: postgres
    use_cases:
      ViewSuppliers: { kind: list, filter: [country], order_by: [name, id], page_size: { default: 2, max: 50 } }
      GetSupplier: { kind: get }
      CreateSupplier: { kind: create, audience: back-office }
      UpdateSupplier: { kind: update, audience: back-office }
      DeleteSupplier: { kind: delete, audience: back-office }

";

fn edited_spec() -> String {
    let spec = fs::read_to_string(root().join("spec/shop.yaml")).expect("spec");
    let edited = spec
        .replacen("  Product:\n", &format!("{SUPPLIER}  Product:\n"), 1)
        .replacen(
            "      price: { type: money, min: 0 }\n",
            "      price: { type: money, min: 0 }\n      colour: { type: string, max_len: 30, optional: true }\n",
            1,
        )
        .replacen("  product:\n", &format!("{SUPPLIER_SERVICE}  product:\n"), 1)
        .replacen(
            "    queries: [ViewProducts,",
            "    queries: [ViewSuppliers, GetSupplier, ViewProducts,",
            1,
        )
        .replacen(
            "      - DeleteProduct\n",
            "      - DeleteProduct\n      - CreateSupplier\n      - UpdateSupplier\n      - DeleteSupplier\n  limits: { max_body_bytes: 20000 }\n",
            1,
        );
    assert_ne!(edited, spec);
    edited
}

/// A workspace of the generated crates and the runtime, plus the probe.
fn scratch_workspace(dir: &Path) {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir.join("spec")).expect("scratch");
    let members = ["generated/rust/product", "generated/rust/supplier", "probe"];
    runtime_workspace(dir, &members.map(String::from));
    fs::create_dir_all(dir.join("probe/src")).expect("probe");
    fs::write(
        dir.join("probe/Cargo.toml"),
        "[package]\nname = \"probe\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n\
         [dependencies]\nshop-product = { path = \"../generated/rust/product\" }\n\
         shop-supplier = { path = \"../generated/rust/supplier\" }\n\
         tokio = { workspace = true }\ntonic = { workspace = true }\n",
    )
    .expect("probe manifest");
    fs::copy(
        root().join("xtask/tests/spec_edit/probe.rs"),
        dir.join("probe/src/main.rs"),
    )
    .expect("probe source");
    // The committed tree, as a user's clone has it: applied migrations are history.
    copy_dir(&root().join("generated"), &dir.join("generated"));
    fs::copy(root().join("spec/shop.lock"), dir.join("spec/shop.lock")).expect("spec lock");
    fs::write(dir.join("spec/shop.yaml"), edited_spec()).expect("spec");
}

/// A workspace in `dir` of `members` on the repository's runtime (`services/keel`), with
/// the repository's dependency versions and lock file.
fn runtime_workspace(dir: &Path, members: &[String]) {
    let manifest = fs::read_to_string(root().join("Cargo.toml")).expect("Cargo.toml");
    let deps = manifest
        .split_once("[workspace.dependencies]")
        .expect("workspace dependencies")
        .1;
    let members: Vec<String> = members.iter().map(|m| format!("\"{m}\"")).collect();
    fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[workspace]\nresolver = \"3\"\nmembers = [{}]\n\n\
             [workspace.package]\nedition = \"2024\"\nlicense = \"MIT\"\npublish = false\n\n\
             [workspace.dependencies]{deps}",
            members.join(", ")
        ),
    )
    .expect("manifest");
    fs::copy(root().join("Cargo.lock"), dir.join("Cargo.lock")).expect("lock file");
    for part in ["src", "proto", "web"] {
        copy_dir(
            &root().join("services/keel").join(part),
            &dir.join("services/keel").join(part),
        );
    }
    for file in ["Cargo.toml", "build.rs"] {
        fs::copy(
            root().join("services/keel").join(file),
            dir.join("services/keel").join(file),
        )
        .expect("runtime manifest and build script");
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("dir");
    for entry in fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).expect("copy");
        }
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("command runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

#[tokio::test]
async fn a_new_crud_entity_and_field_work_from_a_spec_edit_alone() {
    let dir = std::env::temp_dir().join(format!("spec-edit-{}", std::process::id()));
    scratch_workspace(&dir);
    let report = run(Command::new(env!("CARGO_BIN_EXE_xtask")).args([
        "generate",
        "--spec",
        dir.join("spec/shop.yaml").to_str().expect("utf-8"),
        "--out",
        dir.join("generated").to_str().expect("utf-8"),
    ]));
    assert!(report.contains("rust/supplier/src/main.rs"), "{report}");
    assert!(
        fs::read_dir(dir.join("generated/sql/shop_product"))
            .expect("migrations")
            .any(|e| e
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .contains("add_colour")),
        "a new migration adds the column"
    );

    let target = "/var/tmp/shop-spec-edit-target";
    let cargo = || {
        let mut c = Command::new(env!("CARGO"));
        c.current_dir(&dir)
            .env("CARGO_TARGET_DIR", target)
            .env("CARGO_INCREMENTAL", "0")
            .env_remove("RUSTFLAGS");
        c
    };
    // The new service's binary builds from its generated crate alone.
    run(cargo().args(["build", "-p", "shop-supplier", "-p", "probe", "--bins"]));
    assert!(Path::new(&format!("{target}/debug/supplier-service")).exists());

    let sqlite = dir.join("data");
    let lite = |name: &str| format!("sqlite://{}", sqlite.join(format!("{name}.db")).display());
    let out = run(
        Command::new(format!("{target}/debug/probe")).args([lite("supplier"), lite("product")])
    );
    assert!(out.contains("probe: ok"), "{out}");

    let supplier_pg = TestStore::create(Dialect::Postgres, "spec_edit_supplier").await;
    let product_pg = TestStore::create(Dialect::Postgres, "spec_edit_product").await;
    let out =
        run(Command::new(format!("{target}/debug/probe"))
            .args([supplier_pg.url(), product_pg.url()]));
    assert!(out.contains("probe: ok"), "{out}");
    let _ = fs::remove_dir_all(&dir);
}

/// The repository as a clone has it (tracked and new files, nothing ignored).
fn copy_repository(to: &Path) {
    let _ = fs::remove_dir_all(to);
    let out = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(root())
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git ls-files failed");
    for file in out.stdout.split(|b| *b == 0).filter(|f| !f.is_empty()) {
        let rel = Path::new(std::str::from_utf8(file).expect("utf-8 path"));
        let from = root().join(rel);
        if !from.is_file() {
            continue; // deleted in the working tree
        }
        let target = to.join(rel);
        fs::create_dir_all(target.parent().expect("parent")).expect("dir");
        fs::copy(&from, &target).expect("copy");
    }
}

#[test]
fn a_new_crud_service_answers_graphql_in_shop_up_and_through_envoys() {
    let dir = std::env::temp_dir().join(format!("spec-edit-repo-{}", std::process::id()));
    copy_repository(&dir);
    fs::write(dir.join("spec/shop.yaml"), edited_spec()).expect("spec");
    run(Command::new(env!("CARGO_BIN_EXE_xtask")).args([
        "generate",
        "--spec",
        dir.join("spec/shop.yaml").to_str().expect("utf-8"),
        "--out",
        dir.join("generated").to_str().expect("utf-8"),
    ]));
    // The deploy files list the new service and build it from its generated crate.
    let compose =
        fs::read_to_string(dir.join("generated/compose/docker-compose.yaml")).expect("compose");
    assert!(
        compose.contains("CRATE: shop-supplier"),
        "compose builds the new service"
    );
    let kustomization =
        fs::read_to_string(dir.join("generated/k8s/base/kustomization.yaml")).expect("k8s");
    assert!(
        kustomization.contains("supplier.yaml"),
        "k8s lists the new service"
    );
    let dockerfile =
        fs::read_to_string(dir.join("generated/docker/Dockerfile")).expect("Dockerfile");
    assert!(
        dockerfile.contains("shop-supplier, supplier-service"),
        "{dockerfile}"
    );
    fs::copy(
        root().join("xtask/tests/spec_edit/journey.rs"),
        dir.join("services/e2e/tests/spec_edit_journey.rs"),
    )
    .expect("journey");
    // Both journeys: the real-server stack and the regenerated compose file with podman.
    let out = run(Command::new(env!("CARGO"))
        .args([
            "test",
            "-p",
            "e2e",
            "--test",
            "spec_edit_journey",
            "--",
            "--nocapture",
        ])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", "/var/tmp/shop-spec-edit-repo-target")
        .env("CARGO_INCREMENTAL", "0")
        // The servers this repository's harness installed and started.
        .env("INFRA_DIR", root().join(".infra")));
    let passed = "ok. 2 passed";
    assert!(out.contains(passed), "{out}");
    let _ = fs::remove_dir_all(&dir);
}

/// A new command with its event, added to the cart's spec: regeneration makes the
/// hand-written aggregate fail to compile, naming the missing decision; writing that
/// decision and the event's `apply` arm (nothing else: use case, gRPC, executor, read
/// model, BFF are generated or generic) makes the whole workspace build again.
#[test]
fn a_new_command_needs_only_its_decision_and_apply() {
    let dir = std::env::temp_dir().join(format!("spec-edit-command-{}", std::process::id()));
    copy_repository(&dir);
    let spec = fs::read_to_string(dir.join("spec/shop.yaml")).expect("spec");
    let spec = spec
        .replacen(
            "      ResetCart: { input: [cart_id], emits: [CartReset] }\n",
            "      ResetCart: { input: [cart_id], emits: [CartReset] }\n      PinCart: { input: [cart_id], emits: [CartPinned] }\n",
            1,
        )
        .replacen(
            "      CartReset: []\n",
            "      CartReset: []\n      CartPinned: []\n",
            1,
        )
        .replacen("      - ResetCart\n", "      - ResetCart\n      - PinCart\n", 1);
    assert!(
        spec.contains("PinCart: {") && spec.contains("CartPinned: []"),
        "spec edited"
    );
    fs::write(dir.join("spec/shop.yaml"), spec).expect("spec");
    run(Command::new(env!("CARGO_BIN_EXE_xtask")).args([
        "generate",
        "--spec",
        dir.join("spec/shop.yaml").to_str().expect("utf-8"),
        "--out",
        dir.join("generated").to_str().expect("utf-8"),
    ]));
    let check = || {
        Command::new(env!("CARGO"))
            .args(["check", "--workspace", "--all-targets"])
            .current_dir(&dir)
            .env("CARGO_TARGET_DIR", "/var/tmp/shop-spec-edit-repo-target")
            .env("CARGO_INCREMENTAL", "0")
            .output()
            .expect("cargo runs")
    };
    let before = check();
    let errors = String::from_utf8_lossy(&before.stderr).to_string();
    assert!(!before.status.success(), "the aggregate lacks the decision");
    assert!(
        errors.contains("pin_cart"),
        "the error names the decision:\n{errors}"
    );
    let aggregate = dir.join("services/cart/src/aggregate.rs");
    let code = fs::read_to_string(&aggregate).expect("aggregate");
    let code = code
        .replacen(
            "            CartEvent::CartReset(_) => self.items.clear(),\n",
            "            CartEvent::CartReset(_) => self.items.clear(),\n            CartEvent::CartPinned(_) => {}\n",
            1,
        )
        .replacen(
            "    fn reset_cart(",
            "    fn pin_cart(&self, command: &shop_cart::PinCart) -> Result<Vec<CartEvent>, ServiceError> {\n        self.open(command.cart_id)?;\n        Ok(vec![CartEvent::CartPinned(shop_cart::CartPinned {})])\n    }\n\n    fn reset_cart(",
            1,
        );
    fs::write(&aggregate, code).expect("aggregate");
    let after = check();
    assert!(
        after.status.success(),
        "only the decision and apply were written, and it builds:\n{}",
        String::from_utf8_lossy(&after.stderr)
    );
    let _ = fs::remove_dir_all(&dir);
}

/// The Rust emitted for each fixture spec, and for random specs (names with Rust
/// keywords among them), compiles (as diesel checks its output): every generated crate
/// but the launcher, which needs the hand-written crates of a real project, with every
/// feature (the event-sourced services' `runtime`: read model, state store, use cases,
/// settings and `run_with`).
#[test]
fn the_rust_generated_for_the_fixture_specs_compiles() {
    let mut specs: Vec<(String, String)> = ["mini", "deploy-mini", "evolve"]
        .iter()
        .map(|f| {
            let path = root().join(format!("codegen/tests/fixtures/{f}.yaml"));
            (f.to_string(), fs::read_to_string(path).expect("fixture"))
        })
        .collect();
    // `GENERATED_SPECS_SEED=<n>` compiles other random specs.
    let seed = std::env::var("GENERATED_SPECS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_261_129_u64);
    // The first from `seed` with both event-sourced patterns, a query by more than id,
    // and `auth:` with an owned, claimed aggregate.
    let plain = (seed..)
        .map(|seed| random_spec::spec(seed, 0))
        .find(|text| {
            text.contains("pattern: cqs-es")
                && text.contains("pattern: cqrs-es")
                && text.contains(random_spec::HAND_WRITTEN_QUERY)
                && text.contains("\nauth:\n")
                && text.contains("owned_by: ")
        })
        .expect("a random spec of every pattern");
    specs.push(("random-plain".into(), plain));
    // One whose entities include one named like a Rust keyword (`Match`: its field and
    // variable names are `r#match`).
    let keyword_entity = |text: &String| {
        codegen::load(Path::new("r.yaml"), text).is_ok_and(|system| {
            system.entities.iter().any(|e| {
                let snake = codegen::names::snake(&e.name);
                codegen::names::rust_ident(&snake) != snake
            })
        }) && codegen::generate(Path::new("r.yaml"), text, None, false).is_ok()
    };
    let reserved = (seed..)
        .map(|seed| random_spec::spec(seed, 25))
        .find(keyword_entity)
        .expect("a random spec with reserved names that generates");
    specs.push(("random-reserved".into(), reserved));
    for (name, text) in specs {
        let dir = std::env::temp_dir().join(format!("fixture-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("scratch");
        let spec = dir.join("spec.yaml");
        fs::write(&spec, &text).expect("spec");
        run(Command::new(env!("CARGO_BIN_EXE_xtask")).args([
            "generate",
            "--spec",
            spec.to_str().expect("utf-8"),
            "--out",
            dir.join("generated").to_str().expect("utf-8"),
        ]));
        let crates: Vec<String> = fs::read_dir(dir.join("generated/rust"))
            .expect("generated crates")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|name| name != "launcher")
            .map(|name| format!("generated/rust/{name}"))
            .collect();
        runtime_workspace(&dir, &crates);
        run(Command::new(env!("CARGO"))
            .args(["check", "--workspace", "--all-targets", "--all-features"])
            .current_dir(&dir)
            .env("CARGO_TARGET_DIR", "/var/tmp/shop-spec-edit-target")
            .env("CARGO_INCREMENTAL", "0"));
        let _ = fs::remove_dir_all(&dir);
    }
}
