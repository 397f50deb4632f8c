//! `cargo xtask generate` as a user runs it: the committed tree is fresh, a spec edit
//! makes `--check` fail with a diff, regeneration writes only what changed and removes
//! what is no longer produced, spec errors point at the line, and the spec lock keeps
//! wire numbers and applied migrations stable across edits.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .expect("xtask runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xtask-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn committed_generated_tree_is_fresh() {
    let o = xtask(&["generate", "--check"]);
    assert!(
        o.status.success(),
        "generated/ is stale: run `cargo xtask generate` and commit\n{}",
        text(&o)
    );
}

#[test]
fn edit_check_regenerate_cycle() {
    let dir = scratch("cycle");
    let spec = dir.join("shop.yaml");
    let out = dir.join("out");
    let original = fs::read_to_string(root().join("spec/shop.yaml")).expect("spec");
    fs::write(&spec, &original).expect("write spec");
    let (s, o) = (spec.to_str().expect("utf-8"), out.to_str().expect("utf-8"));

    let first = xtask(&["generate", "--spec", s, "--out", o]);
    assert!(first.status.success(), "{}", text(&first));
    assert!(
        text(&first).contains("created   proto/shop/product/v1/product.proto"),
        "{}",
        text(&first)
    );
    assert!(
        text(&first).contains(&format!("created   {}", dir.join("shop.lock").display())),
        "{}",
        text(&first)
    );
    let again = xtask(&["generate", "--spec", s, "--out", o]);
    let summary = text(&again);
    assert!(
        summary
            .lines()
            .any(|l| l.starts_with("0 created, 0 updated, ") && l.contains(" 0 removed")),
        "{summary}"
    );

    // A stray file in the generated folder is removed.
    fs::write(out.join("proto/stale.proto"), "// old").expect("stray file");
    let edited = original.replace(
        "      price: { type: money, min: 0 }\n",
        "      price: { type: money, min: 0 }\n      colour: { type: string, max_len: 30, optional: true }\n",
    );
    assert_ne!(edited, original, "the edit must apply");
    fs::write(&spec, &edited).expect("edit spec");

    let check = xtask(&["generate", "--check", "--spec", s, "--out", o]);
    assert!(!check.status.success());
    let report = text(&check);
    assert!(report.contains("+  optional string colour = "), "{report}");
    assert!(
        report.contains("Run `cargo xtask generate` and commit"),
        "{report}"
    );
    assert!(report.contains("proto/stale.proto"), "{report}");

    let regen = xtask(&["generate", "--spec", s, "--out", o]);
    let report = text(&regen);
    assert!(
        report.contains("updated   proto/shop/product/v1/product.proto"),
        "{report}"
    );
    assert!(report.contains("removed   proto/stale.proto"), "{report}");
    assert!(!out.join("proto/stale.proto").exists());
    let proto = fs::read_to_string(out.join("proto/shop/product/v1/product.proto")).expect("proto");
    assert!(proto.contains("optional string colour"), "{proto}");
    let sdl = fs::read_to_string(out.join("graphql/schema.graphql")).expect("sdl");
    assert!(sdl.contains("colour: String"), "{sdl}");
    // The applied migration stays; a new one adds the column.
    assert!(
        report.contains("created   sql/shop_product/0002_products_add_colour.sql"),
        "{report}"
    );
    assert!(!report.contains("updated   sql/"), "{report}");
    let sql = fs::read_to_string(out.join("sql/shop_product/0002_products_add_colour.sql"))
        .expect("the new migration");
    assert!(
        sql.contains("ALTER TABLE products ADD COLUMN colour text;"),
        "{sql}"
    );
    assert!(
        xtask(&["generate", "--check", "--spec", s, "--out", o])
            .status
            .success()
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_typo_points_at_its_line() {
    let dir = scratch("typo");
    let spec = dir.join("shop.yaml");
    let original = fs::read_to_string(root().join("spec/shop.yaml")).expect("spec");
    let line = original
        .lines()
        .position(|l| l.contains("price: { type: money"))
        .expect("price line")
        + 1;
    fs::write(
        &spec,
        original.replace("price: { type: money", "price: { type: mony"),
    )
    .expect("write");
    let o = xtask(&[
        "generate",
        "--spec",
        spec.to_str().expect("utf-8"),
        "--out",
        dir.join("out").to_str().expect("utf-8"),
    ]);
    assert!(!o.status.success());
    let report = text(&o);
    assert!(report.contains(&format!("shop.yaml:{line}:")), "{report}");
    assert!(report.contains("unknown type `mony`"), "{report}");
    assert!(
        !dir.join("out").exists(),
        "nothing is written for a bad spec"
    );
    let _ = fs::remove_dir_all(&dir);
}

/// The "done when", as a new user would try it: add a field, reorder, remove it.
#[test]
fn add_reorder_remove_a_field() {
    let dir = scratch("evolve");
    let spec = dir.join("shop.yaml");
    let lock = dir.join("shop.lock");
    let out = dir.join("out");
    let original = fs::read_to_string(root().join("spec/shop.yaml")).expect("spec");
    fs::write(&spec, &original).expect("write spec");
    let (s, o) = (spec.to_str().expect("utf-8"), out.to_str().expect("utf-8"));
    let generate = |extra: &[&str]| {
        let mut args = vec!["generate", "--spec", s, "--out", o];
        args.extend(extra);
        xtask(&args)
    };
    assert!(generate(&[]).status.success());
    let proto_path = out.join("proto/shop/product/v1/product.proto");
    let price = "      price: { type: money, min: 0 }\n";
    let colour = "      colour: { type: string, max_len: 30, optional: true }\n";

    // Add: one new migration, a fresh number after the highest one.
    let added = original.replacen(price, &format!("{price}{colour}"), 1);
    fs::write(&spec, &added).expect("edit");
    let run = generate(&[]);
    let report = text(&run);
    assert!(run.status.success(), "{report}");
    assert_eq!(report.matches("created   sql/").count(), 1, "{report}");
    assert!(
        report.contains("created   sql/shop_product/0002_products_add_colour.sql"),
        "{report}"
    );
    let proto = fs::read_to_string(&proto_path).expect("proto");
    assert!(proto.contains("optional string colour = 6;"), "{proto}");

    // Reorder: nothing generated changes (the lock records new positions only).
    let reordered = added.replacen(&format!("{price}{colour}"), &format!("{colour}{price}"), 1);
    fs::write(&spec, &reordered).expect("reorder");
    let run = generate(&[]);
    let report = text(&run);
    assert!(run.status.success(), "{report}");
    assert!(report.contains("0 created, 1 updated, "), "{report}");
    assert!(
        report.contains(&format!("updated   {}", lock.display())),
        "{report}"
    );
    assert_eq!(fs::read_to_string(&proto_path).expect("proto"), proto);

    // Remove: a breaking change; nothing is written until it is accepted.
    fs::write(&spec, &original).expect("remove");
    let lock_before = fs::read_to_string(&lock).expect("lock");
    let line = reordered
        .lines()
        .position(|l| l.starts_with("      colour:"))
        .expect("colour line")
        + 1;
    let run = generate(&[]);
    let report = text(&run);
    assert!(!run.status.success(), "{report}");
    assert!(
        report.contains(&format!(
            "shop.yaml:{line}:7: breaking: field `colour` of `Product` was removed"
        )),
        "{report}"
    );
    assert!(report.contains("nothing was written"), "{report}");
    assert!(report.contains("--accept-breaking"), "{report}");
    assert_eq!(fs::read_to_string(&proto_path).expect("proto"), proto);
    assert_eq!(fs::read_to_string(&lock).expect("lock"), lock_before);
    assert!(
        !xtask(&["generate", "--check", "--spec", s, "--out", o])
            .status
            .success()
    );

    let run = generate(&["--accept-breaking"]);
    let report = text(&run);
    assert!(run.status.success(), "{report}");
    assert!(
        report.contains("created   sql/shop_product/0003_products_drop_colour.sql"),
        "{report}"
    );
    let proto = fs::read_to_string(&proto_path).expect("proto");
    assert!(
        proto.contains("  reserved 6;\n  reserved \"colour\";"),
        "{proto}"
    );
    let drop = fs::read_to_string(out.join("sql/shop_product/0003_products_drop_colour.sql"))
        .expect("drop migration");
    assert!(
        drop.contains("ALTER TABLE products DROP COLUMN colour;"),
        "{drop}"
    );
    assert!(
        xtask(&["generate", "--check", "--spec", s, "--out", o])
            .status
            .success()
    );

    // Adding it back gets yet another number: 6 stays reserved.
    fs::write(&spec, &added).expect("add again");
    assert!(generate(&[]).status.success());
    let proto = fs::read_to_string(&proto_path).expect("proto");
    assert!(
        proto.contains("optional string colour = 7;") && proto.contains("reserved 6;"),
        "{proto}"
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn applied_migrations_and_the_lock_are_guarded() {
    let dir = scratch("history");
    let spec = dir.join("shop.yaml");
    let lock = dir.join("shop.lock");
    let out = dir.join("out");
    fs::copy(root().join("spec/shop.yaml"), &spec).expect("spec");
    let (s, o) = (spec.to_str().expect("utf-8"), out.to_str().expect("utf-8"));
    assert!(
        xtask(&["generate", "--spec", s, "--out", o])
            .status
            .success()
    );
    let init = out.join("sql/shop_product/0001_init.sql");
    let original = fs::read_to_string(&init).expect("init");

    // A hand-edited applied migration stops --check and generation, and is left as is.
    let edited = format!("{original}-- tweak\n");
    fs::write(&init, &edited).expect("edit");
    for args in [
        vec!["generate", "--check", "--spec", s, "--out", o],
        vec!["generate", "--spec", s, "--out", o],
    ] {
        let run = xtask(&args);
        let report = text(&run);
        assert!(!run.status.success(), "{report}");
        assert!(
            report.contains("0001_init.sql was edited after it was generated"),
            "{report}"
        );
    }
    assert_eq!(fs::read_to_string(&init).expect("init"), edited);
    fs::remove_file(&init).expect("delete");
    let report = text(&xtask(&["generate", "--check", "--spec", s, "--out", o]));
    assert!(report.contains("0001_init.sql is missing"), "{report}");
    fs::write(&init, &original).expect("restore");
    assert!(
        xtask(&["generate", "--check", "--spec", s, "--out", o])
            .status
            .success()
    );

    // --check also wants the lock current.
    let lock_text = fs::read_to_string(&lock).expect("lock");
    let tampered = lock_text.replace("  name: { number: 2", "  name: { number: 9");
    assert_ne!(tampered, lock_text);
    fs::write(&lock, tampered).expect("lock edit");
    let run = xtask(&["generate", "--check", "--spec", s, "--out", o]);
    assert!(!run.status.success(), "{}", text(&run));
    assert!(text(&run).contains("shop.lock"), "{}", text(&run));
    fs::write(&lock, &lock_text).expect("restore lock");

    // Without its lock, migrations cannot be told from history: generation refuses to
    // rewrite them.
    fs::write(
        &spec,
        fs::read_to_string(&spec).expect("spec").replacen(
            "      price: { type: money, min: 0 }\n",
            "      price: { type: money, min: 0 }\n      colour: { type: string, optional: true }\n",
            1,
        ),
    )
    .expect("edit spec");
    assert!(
        xtask(&["generate", "--spec", s, "--out", o])
            .status
            .success()
    );
    fs::remove_file(&lock).expect("lose the lock");
    let run = xtask(&["generate", "--spec", s, "--out", o]);
    let report = text(&run);
    assert!(!run.status.success(), "{report}");
    assert!(report.contains("shop.lock is missing"), "{report}");
    assert!(
        out.join("sql/shop_product/0002_products_add_colour.sql")
            .exists()
    );
    let _ = fs::remove_dir_all(&dir);
}

/// `--spec` and `--out` are paths as the user means them: relative to the current
/// directory, wherever the repository is; errors name them as given.
#[test]
fn paths_are_relative_to_the_current_directory() {
    let dir = scratch("cwd");
    fs::copy(
        root().join("codegen/tests/fixtures/mini.yaml"),
        dir.join("lib.yaml"),
    )
    .expect("spec");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("xtask runs")
    };
    let done = run(&["generate", "--spec", "lib.yaml", "--out", "gen"]);
    assert!(done.status.success(), "{}", text(&done));
    assert!(
        dir.join("gen/proto").is_dir(),
        "written under the current directory"
    );
    assert!(dir.join("lib.lock").is_file(), "the lock beside the spec");
    assert!(!root().join("lib.yaml").exists() && !root().join("gen").exists());

    let homeless = run(&["generate", "--spec", "lib.yaml"]);
    assert!(!homeless.status.success(), "wrote somewhere without --out");
    assert!(
        text(&homeless).contains("pass --out"),
        "{}",
        text(&homeless)
    );

    let missing = run(&["generate", "--spec", "nope/missing.yaml"]);
    assert!(!missing.status.success());
    let said = text(&missing);
    assert!(said.contains("reading nope/missing.yaml"), "{said}");
    let _ = fs::remove_dir_all(&dir);
}
