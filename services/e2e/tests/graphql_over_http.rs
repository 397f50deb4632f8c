//! The BFF against the GraphQL-over-HTTP spec: `graphql-http`'s server audit (the npm
//! package, pinned in `services/e2e/audit/`, installed there by its `run.sh` when
//! missing) against `/graphql` of `shop up`. Every audit must pass or be a notice (an
//! optional MAY the BFF does not do): no error, no warning. Needs node and npm.

use std::process::Command;

use e2e::embedded::start;
use e2e::*;
use serde_json::Value;

#[test]
fn the_bff_passes_the_graphql_over_http_audit() {
    build_binaries(&["shop"]);
    let data = tempfile::tempdir().expect("data folder");
    let (mut shop, banner) = start(data.path(), "graphql-over-http-shop");

    let script = repo_root().join("services/e2e/audit/run.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(&banner.graphql)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the audit failed to run (node and npm must be installed):\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let results: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    for r in &results {
        println!("{} {} {}", r["status"], r["id"], r["name"]);
        if r["status"] != "ok" {
            println!(
                "    {} (HTTP {}): {}",
                r["reason"], r["httpStatus"], r["body"]
            );
        }
    }
    let failed: Vec<&Value> = results
        .iter()
        .filter(|r| r["status"] == "error" || r["status"] == "warn")
        .collect();
    assert!(results.len() > 50, "only {} audits ran", results.len());
    assert!(
        failed.is_empty(),
        "{} audits failed: {failed:#?}",
        failed.len()
    );

    let status = shop.interrupt(std::time::Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "{}", shop.log_tail());
}
