//! The generated compose file run for real with podman, by `xtask/infra/compose.sh`:
//! images built from the binaries cargo made (the generated Dockerfile's `PREBUILT`),
//! the stack up on its own network, health-gated, the BFF's Envoy the only port
//! published on the host. One compose project per machine: [`Compose`] holds a
//! machine-wide lock on it while it lives.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::ops::BACK_OFFICE_EMAIL;
use crate::repo_root;

/// A compose stack of this repository's generated files; taken down when dropped
/// (first, if the test is failing, every container's log is printed; `COMPOSE_KEEP=1`
/// then keeps it up for a look).
pub struct Compose {
    port: u16,
    _lock: File,
}

impl Compose {
    /// Builds the images (the shop's from the binaries in `bins`), then brings the
    /// stack up; returns once every service is healthy.
    pub fn up(bins: &Path) -> Compose {
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(format!("/tmp/keel-compose-{}.lock", shop_system::SYSTEM))
            .expect("lock file");
        lock.lock().expect("the compose project's lock");
        // What an earlier run may have left.
        compose(&["down"], &[]);
        compose(
            &["images", "--prebuilt", bins.to_str().expect("utf-8 path")],
            &[],
        );
        let port = free_port();
        let stack = Compose { port, _lock: lock };
        let env = [
            (
                format!("{}_HTTP_PORT", shop_system::SYSTEM.to_uppercase()),
                port.to_string(),
            ),
            (
                "AUTH_BACK_OFFICE_EMAILS".to_string(),
                BACK_OFFICE_EMAIL.to_string(),
            ),
        ];
        compose(&["up"], &env);
        stack
    }

    /// The BFF's GraphQL endpoint through its Envoy, from the host.
    pub fn graphql_url(&self) -> String {
        format!("http://127.0.0.1:{}/graphql", self.port)
    }

    /// Takes the stack down and checks nothing of it is left: containers, network,
    /// volumes.
    pub fn down(self) {
        drop(self);
        let left = podman()
            .args([
                "ps",
                "-a",
                "--filter",
                &format!("label=io.podman.compose.project={}", shop_system::SYSTEM),
                "--format",
                "{{.Names}}",
            ])
            .output()
            .expect("podman ps");
        assert!(left.status.success(), "{left:?}");
        assert_eq!(
            String::from_utf8_lossy(&left.stdout).trim(),
            "",
            "left running"
        );
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = Command::new("bash").arg(script()).arg("logs").status();
            if std::env::var_os("COMPOSE_KEEP").is_some() {
                eprintln!("COMPOSE_KEEP: the stack stays up (`xtask/infra/compose.sh down`)");
                return;
            }
        }
        let _ = Command::new("bash").arg(script()).arg("down").status();
    }
}

/// The images every manifest under `generated/k8s/base` names; each must exist
/// locally (after [`Compose::up`] built them).
pub fn k8s_images_are_built() {
    let base = repo_root().join("generated/k8s/base");
    let mut images = BTreeSet::new();
    for file in yaml_files(&base) {
        let text = std::fs::read_to_string(&file).expect("manifest");
        for line in text.lines() {
            if let Some(image) = line.trim().trim_start_matches("- ").strip_prefix("image:") {
                images.insert(image.trim().trim_matches(['"', '\'']).to_string());
            }
        }
    }
    assert!(!images.is_empty(), "no image in {}", base.display());
    for image in &images {
        let exists = podman()
            .args(["image", "exists", image])
            .status()
            .expect("podman image exists");
        assert!(
            exists.success(),
            "the k8s manifests name {image}, which was not built"
        );
    }
}

fn script() -> PathBuf {
    repo_root().join("xtask/infra/compose.sh")
}

/// Runs `compose.sh ARGS` with `env`, panicking on failure (its output went to ours).
fn compose(args: &[&str], env: &[(String, String)]) {
    let started = Instant::now();
    let mut cmd = Command::new("bash");
    cmd.arg(script()).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let status = cmd.status().expect("compose.sh runs");
    assert!(status.success(), "compose.sh {args:?} failed: {status}");
    println!("compose.sh {args:?}: {:.0?}", started.elapsed());
}

/// `podman` with the project's containers.conf, as `compose.sh` runs it.
fn podman() -> Command {
    let mut cmd = Command::new("podman");
    cmd.env(
        "CONTAINERS_CONF",
        std::env::var("INFRA_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| repo_root().join(".infra"))
            .join("compose/containers.conf"),
    );
    cmd
}

/// A port nothing listens on now, for the BFF's Envoy on the host.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Every `.yaml` file under `dir`.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("a directory").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(yaml_files(&path));
        } else if path.extension().is_some_and(|e| e == "yaml") {
            files.push(path);
        }
    }
    files
}
