//! `cargo xtask`: the project's own commands.

mod generate;
mod new;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "The keel framework's generator and developer commands"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Generate every artifact from the spec into generated/, and the spec lock beside the spec.
    Generate {
        /// Write nothing; fail with a diff if generated/ is stale.
        #[arg(long)]
        check: bool,
        /// The spec to read, relative to the current directory (default: the one
        /// `spec/*.yaml` of the project the current directory is in).
        #[arg(long)]
        spec: Option<PathBuf>,
        /// The folder to write into, relative to the current directory (default:
        /// `generated/` beside the spec's `spec/` folder).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Go ahead despite breaking changes (the report lists them; they are written).
        #[arg(long)]
        accept_breaking: bool,
    },
    /// Start a new system on this framework in DIR (absent or empty): a starter spec,
    /// its generated code, a workspace, a launcher and a journey test.
    New {
        dir: PathBuf,
        /// The system's name (default: DIR's name).
        #[arg(long)]
        name: Option<String>,
    },
    /// Real infrastructure on this machine: PostgreSQL, Kafka, FerretDB, Envoy.
    Infra {
        /// install | up | down | status | env, then optional components.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        args: Vec<String>,
    },
}

/// This framework's repository.
pub fn framework_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The project `dir` is in: the nearest folder holding a `spec/`.
fn project_of(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .find(|d| d.join("spec").is_dir())
        .map(Path::to_path_buf)
}

/// The project of the spec file `spec`: the folder of its `spec/` folder.
fn project_of_spec(spec: &Path) -> Option<PathBuf> {
    let folder = spec.parent()?;
    (folder.file_name()? == "spec").then(|| folder.parent().map(Path::to_path_buf))?
}

/// The one `spec/*.yaml` of `project`.
fn default_spec(project: &Path) -> Result<PathBuf> {
    let dir = project.join("spec");
    let mut specs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    specs.sort();
    match specs.as_slice() {
        [one] => Ok(one.clone()),
        [] => anyhow::bail!("no spec in {}: pass --spec", dir.display()),
        _ => anyhow::bail!("several specs in {}: pass --spec", dir.display()),
    }
}

fn generate_command(
    spec: Option<PathBuf>,
    out: Option<PathBuf>,
    check: bool,
    accept_breaking: bool,
) -> Result<bool> {
    let cwd = std::env::current_dir().context("the current directory")?;
    let project = || {
        project_of(&cwd).with_context(|| {
            format!(
                "{} is in no project (a folder with a spec/ folder): pass --spec",
                cwd.display()
            )
        })
    };
    let spec = match spec {
        Some(s) => cwd.join(s),
        None => default_spec(&project()?)?,
    };
    // A spec that cannot be read says so first, named as given.
    std::fs::metadata(&spec).with_context(|| {
        format!(
            "reading {}",
            spec.strip_prefix(&cwd).unwrap_or(&spec).display()
        )
    })?;
    // Without --out, the spec's own project: never another project's generated/.
    let out = match out {
        Some(o) => cwd.join(o),
        None => project_of_spec(&spec)
            .with_context(|| {
                format!(
                    "{} is not in a `spec/` folder, so it has no project: pass --out",
                    spec.display()
                )
            })?
            .join("generated"),
    };
    generate::run(&spec, &out, check, accept_breaking)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: Result<bool> = match cli.command {
        Cmd::Generate {
            check,
            spec,
            out,
            accept_breaking,
        } => generate_command(spec, out, check, accept_breaking),
        Cmd::New { dir, name } => std::env::current_dir()
            .context("the current directory")
            .and_then(|cwd| new::run(&cwd.join(dir), name.as_deref(), &framework_root())),
        Cmd::Infra { args } => infra(&args),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn infra(args: &[String]) -> Result<bool> {
    let script = framework_root().join("xtask/infra/infra.sh");
    let status = Command::new("bash")
        .arg(&script)
        .args(args)
        .status()
        .with_context(|| format!("running {}", script.display()))?;
    Ok(status.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_s_project_is_the_folder_of_its_spec_folder() {
        assert_eq!(
            project_of_spec(Path::new("/p/lend/spec/lend.yaml")),
            Some(PathBuf::from("/p/lend"))
        );
        assert_eq!(project_of_spec(Path::new("/p/lend/lend.yaml")), None);
        assert_eq!(project_of_spec(Path::new("lend.yaml")), None);
    }
}
