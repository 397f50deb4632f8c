//! `cargo xtask generate` as a user runs it: the committed tree is fresh, a spec edit
//! makes `--check` fail with a diff, regeneration writes only what changed and removes
//! what is no longer produced, and spec errors point at the line.

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
    let sql: String = fs::read_dir(out.join("sql/shop_product"))
        .expect("sql dir")
        .map(|e| fs::read_to_string(e.expect("entry").path()).expect("sql"))
        .collect();
    assert!(
        sql.lines()
            .any(|l| l.trim_start().starts_with("colour ") && l.contains(" text")),
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
