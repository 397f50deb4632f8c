//! The Kubernetes manifest checkers the project's harness pins
//! (`xtask/infra/infra.sh install k8s`): kustomize, and kubernetes-validate with the
//! OpenAPI schemas of [`KUBERNETES_VERSION`].

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// The Kubernetes API the manifests are checked against (the README names it).
pub const KUBERNETES_VERSION: &str = "1.34.0";

pub struct Tools {
    pub kustomize: PathBuf,
    pub validate: PathBuf,
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8(out.stdout).expect("utf-8"))
}

/// The tools, installed on first use.
pub fn tools() -> &'static Tools {
    static TOOLS: OnceLock<Tools> = OnceLock::new();
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    TOOLS.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../xtask/infra/infra.sh");
        run(Command::new("bash").arg(&script).args(["install", "k8s"])).unwrap();
        let env = run(Command::new("bash").arg(&script).arg("env")).unwrap();
        let var = |name: &str| {
            let v = env
                .lines()
                .find_map(|l| l.strip_prefix(&format!("export {name}=")))
                .unwrap_or_else(|| panic!("infra.sh env prints {name}"))
                .trim_matches(['"', '\'']);
            let p = PathBuf::from(v);
            assert!(p.exists(), "{name} {} does not exist", p.display());
            p
        };
        Tools {
            kustomize: var("KUSTOMIZE_BIN"),
            validate: var("KUBERNETES_VALIDATE_BIN"),
        }
    })
}

/// `kustomize build DIR`.
pub fn build(dir: &Path) -> String {
    run(Command::new(&tools().kustomize).arg("build").arg(dir)).unwrap()
}

/// Writes `manifests` (a multi-document YAML stream) to `file` and checks it strictly
/// against the pinned Kubernetes API: what the validator said, if anything failed.
pub fn validate(manifests: &str, file: &Path) -> Result<(), String> {
    std::fs::write(file, manifests).map_err(|e| format!("{}: {e}", file.display()))?;
    run(Command::new(&tools().validate)
        .args(["--strict", "--quiet", "-k", KUBERNETES_VERSION])
        .arg(file))
    .map(drop)
}
