//! Envoy for the tests that validate generated configs: the binary the project's
//! harness installs (`xtask/infra/infra.sh install envoy`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// The Envoy binary, installed on first use.
pub fn bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap();
    BIN.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../xtask/infra/infra.sh");
        run(Command::new("bash").arg(&script).args(["install", "envoy"]));
        let env = run(Command::new("bash").arg(&script).arg("env"));
        let bin = env
            .lines()
            .find_map(|l| l.strip_prefix("export ENVOY_BIN="))
            .expect("infra.sh env prints ENVOY_BIN")
            .trim_matches(['"', '\''])
            .to_string();
        let bin = PathBuf::from(bin);
        assert!(bin.is_file(), "ENVOY_BIN {} does not exist", bin.display());
        bin
    })
    .clone()
}

/// `envoy --mode validate` on every config, two at a time (this machine has two
/// cores); what Envoy said about each one it rejected.
pub fn validate(configs: &[PathBuf]) -> Vec<String> {
    let bin = bin();
    let failures = Mutex::new(Vec::new());
    let next = Mutex::new(configs.iter());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                loop {
                    let Some(path) = next.lock().unwrap().next() else {
                        break;
                    };
                    let out = Command::new(&bin)
                        .args([
                            "--mode",
                            "validate",
                            "--disable-hot-restart",
                            "--log-level",
                            "warn",
                            "-c",
                        ])
                        .arg(path)
                        .output()
                        .unwrap();
                    if !out.status.success() {
                        failures.lock().unwrap().push(format!(
                            "{}:\n{}{}",
                            path.display(),
                            String::from_utf8_lossy(&out.stdout),
                            String::from_utf8_lossy(&out.stderr)
                        ));
                    }
                }
            });
        }
    });
    failures.into_inner().unwrap()
}
