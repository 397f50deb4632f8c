//! The browser code type-checks: the generated client and back-office metadata
//! (`generated/web/`), the shop's storefront and keel's back-office and console, with
//! `tsc --checkJs --strict` (TypeScript pinned in `services/e2e/typecheck/package-lock.json`,
//! installed with `npm ci` when missing). A spec edit that changed a type the storefront
//! uses fails here, before any browser runs.

use std::path::Path;
use std::process::Command;

use e2e::repo_root;

#[test]
fn the_browser_code_type_checks() {
    let dir = repo_root().join("services/e2e/typecheck");
    let tsc = dir.join("node_modules/typescript/bin/tsc");
    if !tsc.exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .status()
            .expect("npm runs (install Node.js and npm: `.ci/run` does)");
        assert!(status.success(), "npm ci in {} failed", dir.display());
    }
    let out = Command::new("node")
        .arg(&tsc)
        .args(["-p", "tsconfig.json"])
        .current_dir(&dir)
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "tsc --checkJs found errors:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(Path::new(&tsc).exists());
}
