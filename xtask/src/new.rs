//! `cargo xtask new <dir>`: a new system on this framework. A starter spec (one CRUD
//! service generated whole, one CQS + event-sourced service whose aggregate is the only
//! hand-written code), its generated tree, a workspace on this framework's runtime
//! (`keel`, by path) with the framework's dependency versions and lock file, a launcher
//! (`<name> up`), a journey test and a README with the two commands.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The scaffold, compiled in: (path in the new project, contents with `{{…}}` holes).
const FILES: &[(&str, &str)] = &[
    ("README.md", include_str!("../../templates/new/README.md")),
    (".gitignore", include_str!("../../templates/new/gitignore")),
    (
        ".cargo/config.toml",
        include_str!("../../templates/new/cargo-config.toml"),
    ),
    (
        "spec/{{system}}.yaml",
        include_str!("../../templates/new/spec.yaml"),
    ),
    (
        "services/{{system}}/Cargo.toml",
        include_str!("../../templates/new/services/launcher/Cargo.toml"),
    ),
    (
        "services/{{system}}/src/main.rs",
        include_str!("../../templates/new/services/launcher/src/main.rs"),
    ),
    (
        "services/{{system}}/tests/journey.rs",
        include_str!("../../templates/new/services/launcher/tests/journey.rs"),
    ),
    (
        "services/tasks/Cargo.toml",
        include_str!("../../templates/new/services/tasks/Cargo.toml"),
    ),
    (
        "services/tasks/src/lib.rs",
        include_str!("../../templates/new/services/tasks/src/lib.rs"),
    ),
    (
        "services/tasks/src/main.rs",
        include_str!("../../templates/new/services/tasks/src/main.rs"),
    ),
    (
        "services/tasks/src/aggregate.rs",
        include_str!("../../templates/new/services/tasks/src/aggregate.rs"),
    ),
];

/// Service folders of the starter spec: the launcher's folder must not be one of them.
const STARTER_SERVICES: &[&str] = &["catalog", "tasks"];

/// A system name the generated crates, databases and Kubernetes objects can all carry.
fn check_name(name: &str) -> Result<()> {
    let ok = name.len() <= 30
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        bail!(
            "`{name}` cannot name a system: use 1 to 30 lowercase letters, digits and `_`, starting with a letter (pass --name)"
        );
    }
    if STARTER_SERVICES.contains(&name) {
        bail!("`{name}` is a service of the starter spec; choose another name (pass --name)");
    }
    Ok(())
}

/// Creates the project in `dir` (absent or empty) for the system `name` (default: the
/// folder's name) and generates it.
pub fn run(dir: &Path, name: Option<&str>, framework: &Path) -> Result<bool> {
    let name = match name {
        Some(n) => n.to_string(),
        None => dir
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("{} has no folder name: pass --name", dir.display()))?
            .to_string(),
    };
    check_name(&name)?;
    if dir.exists() && fs::read_dir(dir)?.next().is_some() {
        bail!(
            "{} is not empty: `new` only writes into a new or empty folder",
            dir.display()
        );
    }
    let framework = framework
        .canonicalize()
        .with_context(|| format!("resolving {}", framework.display()))?;
    let fill = |text: &str| {
        text.replace("{{system}}", &name)
            .replace("{{crate}}", &name.replace('-', "_"))
            .replace("{{framework}}", &framework.display().to_string())
    };
    for (path, text) in FILES {
        write(&dir.join(fill(path)), &fill(text))?;
    }
    write(&dir.join("Cargo.toml"), &workspace_manifest(&framework)?)?;
    fs::copy(framework.join("Cargo.lock"), dir.join("Cargo.lock"))
        .context("copying the framework's Cargo.lock")?;
    let spec = dir.join(format!("spec/{name}.yaml"));
    let generated = crate::generate::run(&spec, &dir.join("generated"), false, false)?;
    if generated {
        println!(
            "created {}: `cd {} && cargo run --release -p {name} -- up`, or `cargo test`",
            dir.display(),
            dir.display()
        );
    }
    Ok(generated)
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// The new workspace: its generated crates and services, the framework's dependency
/// versions, and `keel` from the framework's folder.
fn workspace_manifest(framework: &Path) -> Result<String> {
    let manifest = fs::read_to_string(framework.join("Cargo.toml"))
        .context("reading the framework's Cargo.toml")?;
    let Some((_, deps)) = manifest.split_once("[workspace.dependencies]\n") else {
        bail!("the framework's Cargo.toml has no [workspace.dependencies]");
    };
    let keel: PathBuf = framework.join("services/keel");
    let deps: Vec<String> = deps
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| match l.split_once('=') {
            Some((key, _)) if key.trim() == "keel" => {
                format!("keel = {{ path = {:?} }}", keel.display().to_string())
            }
            _ => l.to_string(),
        })
        .collect();
    Ok(format!(
        "[workspace]\nresolver = \"3\"\nmembers = [\"generated/rust/*\", \"services/*\"]\n\n\
         [workspace.package]\nedition = \"2024\"\nlicense = \"MIT OR Apache-2.0\"\npublish = false\n\
         rust-version = \"1.85\"\n\n[workspace.dependencies]\n{}\n",
        deps.join("\n").trim_end()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_cannot_name_a_system_are_refused() {
        for bad in ["", "Lend", "1lend", "my-lend", "tasks", &"x".repeat(31)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        check_name("lend_2").expect("accepted");
    }

    #[test]
    fn the_manifest_points_keel_at_the_framework() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let text = workspace_manifest(&root.canonicalize().expect("root")).expect("manifest");
        assert!(text.contains("services/keel\" }"), "{text}");
        assert!(text.contains("tonic = \"0.14\""), "{text}");
        assert!(!text.contains("path = \"services/keel\""), "{text}");
        // Debug logins stay fast in the new workspace too (see the framework's manifest).
        assert!(
            text.contains("[profile.dev.package.argon2]\nopt-level = 3"),
            "{text}"
        );
    }
}
