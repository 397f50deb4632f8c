//! Envoy for the tests that validate generated configs or run them: the binary the
//! project's harness installs (`xtask/infra/infra.sh install envoy`).

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

/// A copy of `config` (YAML) whose admin interface and listeners bind port 0, so that
/// Envoy can start it beside anything else on this machine.
pub fn on_free_ports(config: &str) -> serde_yaml::Value {
    let mut v: serde_yaml::Value = serde_yaml::from_str(config).expect("Envoy YAML");
    v["admin"]["address"]["socket_address"]["port_value"] = 0.into();
    let listeners = v["static_resources"]["listeners"].as_sequence_mut();
    for l in listeners.into_iter().flatten() {
        l["address"]["socket_address"]["port_value"] = 0.into();
    }
    v
}

/// Runs Envoy on `config` in `mode`; what it said if it failed.
fn envoy(bin: &Path, mode: &str, config: &Path) -> Result<(), String> {
    let out = Command::new(bin)
        .args([
            "--mode",
            mode,
            "--disable-hot-restart",
            "--log-level",
            "warn",
            "-c",
        ])
        .arg(config)
        .output()
        .unwrap();
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{} ({mode}):\n{}{}",
        config.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// `--mode validate` checks the listeners and clusters but not the bootstrap's
/// extensions (an overload manager naming an unknown resource monitor passes it):
/// `--mode init_only` builds the whole server, here on free ports.
fn validate_one(bin: &Path, path: &Path) -> Result<(), String> {
    envoy(bin, "validate", path)?;
    let text = std::fs::read_to_string(path).expect("config");
    let copy = path.with_extension("init.yaml");
    std::fs::write(&copy, serde_yaml::to_string(&on_free_ports(&text)).unwrap()).unwrap();
    let init = envoy(bin, "init_only", &copy);
    let _ = std::fs::remove_file(&copy);
    init
}

/// `envoy --mode validate` (then `--mode init_only`) on every config, two at a time
/// (this machine has two cores); what Envoy said about each one it rejected.
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
                    if let Err(e) = validate_one(&bin, path) {
                        failures.lock().unwrap().push(e);
                    }
                }
            });
        }
    });
    failures.into_inner().unwrap()
}
