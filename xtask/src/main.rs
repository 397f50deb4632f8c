//! `cargo xtask`: the project's own commands.

mod generate;

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Generator and developer commands for the shop"
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
        /// The spec to read, relative to the current directory (default: the
        /// repository's `spec/shop.yaml`).
        #[arg(long)]
        spec: Option<PathBuf>,
        /// The folder to write into, relative to the current directory (default: the
        /// repository's `generated/`).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Go ahead despite breaking changes (the report lists them; they are written).
        #[arg(long)]
        accept_breaking: bool,
    },
    /// Real infrastructure on this machine: PostgreSQL, Kafka, FerretDB, Envoy.
    Infra {
        /// install | up | down | status | env, then optional components.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        args: Vec<String>,
    },
}

pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: Result<bool> = match cli.command {
        Cmd::Generate {
            check,
            spec,
            out,
            accept_breaking,
        } => {
            let root = project_root();
            let given = |p: Option<PathBuf>, default: &str| match p {
                Some(p) => std::env::current_dir().map(|cwd| cwd.join(p)),
                None => Ok(root.join(default)),
            };
            match (given(spec, "spec/shop.yaml"), given(out, "generated")) {
                (Ok(spec), Ok(out)) => generate::run(&spec, &out, check, accept_breaking),
                (Err(e), _) | (_, Err(e)) => {
                    Err(anyhow::Error::from(e).context("the current directory"))
                }
            }
        }
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
    let script = project_root().join("xtask/infra/infra.sh");
    let status = Command::new("bash")
        .arg(&script)
        .args(args)
        .status()
        .with_context(|| format!("running {}", script.display()))?;
    Ok(status.success())
}
