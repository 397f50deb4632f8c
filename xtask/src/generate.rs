//! Writes what codegen produces: only files whose content changed, removing files it
//! no longer produces, and the spec lock beside the spec; or, with `--check`, writes
//! nothing and shows the difference. Migrations the lock records are history: they
//! must still be there, byte for byte, and are never rewritten or removed.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use codegen::GenerateError;

/// Marks a folder as owned by the generator: stale files in it may be deleted.
const MARKER: &str = ".generated";

/// `path` as the user would write it: relative to the current directory when it is under
/// it, else to the repository, else as is.
fn shown(path: &Path) -> &Path {
    let cwd = std::env::current_dir().ok();
    cwd.as_deref()
        .and_then(|c| path.strip_prefix(c).ok())
        .or_else(|| path.strip_prefix(crate::framework_root()).ok())
        .unwrap_or(path)
}

pub fn run(spec: &Path, out: &Path, check: bool, accept_breaking: bool) -> Result<bool> {
    let started = Instant::now();
    let display = shown(spec).to_path_buf();
    let text =
        fs::read_to_string(spec).with_context(|| format!("reading {}", display.display()))?;
    let out_display = shown(out);
    let lock_file = codegen::lock_path(spec);
    let lock_display = codegen::lock_path(&display);
    let lock_text = match fs::read_to_string(&lock_file) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", lock_file.display())),
    };
    let generation = match codegen::generate(&display, &text, lock_text.as_deref(), accept_breaking)
    {
        Ok(g) => g,
        Err(GenerateError::Spec(errors)) => {
            eprintln!("{errors}");
            return Ok(false);
        }
        Err(GenerateError::Breaking(report)) => {
            eprintln!("{report}");
            eprintln!(
                "{} breaking change(s) since {}: nothing was written. If they are intended, run `cargo xtask generate --accept-breaking`.",
                report.breaking.len(),
                lock_display.display()
            );
            return Ok(false);
        }
        Err(e) => return Err(e.into()),
    };
    let files = &generation.files;

    // History first: a changed or missing applied migration stops everything.
    let mut history_errors = Vec::new();
    for p in &generation.preserved {
        let shown = out.join(&p.path);
        match fs::read_to_string(&shown) {
            Ok(c) if codegen::lock::sha256(&c) == p.sha256 => {}
            Ok(_) => history_errors.push(format!(
                "{} was edited after it was generated ({} records another sha256): a migration that may have been applied is never changed. Restore it (`git checkout -- {}`) and change the spec instead; the next generation writes a new migration.",
                shown.display(),
                lock_display.display(),
                shown.display()
            )),
            Err(_) => history_errors.push(format!(
                "{} is missing, but {} records it as an applied migration: restore it from version control.",
                shown.display(),
                lock_display.display()
            )),
        }
    }
    if !history_errors.is_empty() {
        for e in &history_errors {
            eprintln!("error: {e}");
        }
        return Ok(false);
    }

    let wanted: BTreeSet<PathBuf> = files
        .iter()
        .map(|f| PathBuf::from(&f.path))
        .chain(generation.preserved.iter().map(|p| PathBuf::from(&p.path)))
        .collect();
    let existing = existing_files(out)?;

    // Without a lock, existing migrations cannot be told from history: refuse to touch them.
    if lock_text.is_none() && !check {
        let at_risk: Vec<String> = existing
            .iter()
            .filter(|rel| rel.starts_with("sql"))
            .filter(|rel| {
                files
                    .iter()
                    .find(|f| Path::new(&f.path) == rel.as_path())
                    .is_none_or(|f| {
                        fs::read_to_string(out.join(rel)).ok().as_deref() != Some(&f.contents)
                    })
            })
            .map(|rel| rel.display().to_string())
            .collect();
        if !at_risk.is_empty() {
            eprintln!(
                "error: {} is missing, but these migrations would be rewritten or removed: {}. Restore the lock from version control (it records which migrations are applied history).",
                lock_display.display(),
                at_risk.join(", ")
            );
            return Ok(false);
        }
    }

    let mut report = Report::default();
    for f in files {
        let path = out.join(&f.path);
        let old = fs::read_to_string(&path).ok();
        match old {
            Some(ref o) if *o == f.contents => report.unchanged += 1,
            _ => {
                if check {
                    report
                        .stale
                        .push(diff(&f.path, old.as_deref().unwrap_or(""), &f.contents));
                } else {
                    if let Some(dir) = path.parent() {
                        fs::create_dir_all(dir)?;
                    }
                    fs::write(&path, &f.contents)
                        .with_context(|| format!("writing {}", path.display()))?;
                }
                if old.is_some() {
                    report.updated.push(f.path.clone());
                } else {
                    report.created.push(f.path.clone());
                }
            }
        }
    }
    report.unchanged += generation.preserved.len();
    for rel in existing.difference(&wanted) {
        if rel.as_os_str() == MARKER {
            continue;
        }
        if check {
            report.stale.push(format!(
                "--- {0}\n+++ /dev/null\n(file is no longer generated)\n",
                rel.display()
            ));
        } else {
            fs::remove_file(out.join(rel))?;
            remove_empty_parents(out, &out.join(rel));
        }
        report.removed.push(rel.display().to_string());
    }
    let lock_name = lock_display.display().to_string();
    if lock_text.as_deref() != Some(generation.lock_text.as_str()) {
        if check {
            report.stale.push(diff(
                &lock_name,
                lock_text.as_deref().unwrap_or(""),
                &generation.lock_text,
            ));
        } else {
            fs::write(&lock_file, &generation.lock_text)
                .with_context(|| format!("writing {}", lock_file.display()))?;
        }
        if lock_text.is_some() {
            report.updated.push(lock_name);
        } else {
            report.created.push(lock_name);
        }
    }
    if !check {
        fs::create_dir_all(out)?;
        let marker = out.join(MARKER);
        let note = "Everything in this folder is written by `cargo xtask generate`. Do not edit.\n";
        if fs::read_to_string(&marker).ok().as_deref() != Some(note) {
            fs::write(marker, note)?;
        }
    }
    scaffold(&generation.system, out, check, &mut report)?;
    if !generation.report.is_empty() {
        println!("{}", generation.report);
    }
    let elapsed = started.elapsed();
    if check {
        if report.stale.is_empty() {
            println!(
                "{}/ and {} are up to date ({} files, {elapsed:.2?})",
                out_display.display(),
                lock_display.display(),
                report.unchanged
            );
            return Ok(true);
        }
        for d in &report.stale {
            eprintln!("{d}");
        }
        eprintln!(
            "{}/ or {} is stale: {} to create, {} to update, {} to remove. Run `cargo xtask generate` and commit.",
            out_display.display(),
            lock_display.display(),
            report.created.len(),
            report.updated.len(),
            report.removed.len()
        );
        return Ok(false);
    }
    for p in &report.created {
        println!("created   {p}");
    }
    for p in &report.updated {
        println!("updated   {p}");
    }
    for p in &report.removed {
        println!("removed   {p}");
    }
    for p in &report.scaffolded {
        println!("scaffolded {p}/: yours to edit; `cargo build` names each rule the spec asks for");
    }
    println!(
        "{} created, {} updated, {} unchanged, {} removed in {elapsed:.2?}",
        report.created.len(),
        report.updated.len(),
        report.unchanged,
        report.removed.len()
    );
    Ok(true)
}

/// Writes the first version of each hand-written crate the spec asks for whose folder
/// (beside the output folder, under `services/`) does not exist; never touches one that
/// does. In check mode a missing one is stale.
fn scaffold(
    system: &codegen::ir::System,
    out: &Path,
    check: bool,
    report: &mut Report,
) -> Result<()> {
    let root = out.parent().unwrap_or(Path::new("."));
    let generated = out
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("generated");
    for (dir, files) in codegen::emit::scaffold::rules_crates(system, generated) {
        if root.join(&dir).exists() {
            continue;
        }
        let shown = match shown(root) {
            base if base.as_os_str().is_empty() => dir.clone(),
            base => base.join(&dir).display().to_string(),
        };
        if check {
            report.stale.push(format!(
                "{shown}/ is missing: the spec asks for rules there (`cargo xtask generate` scaffolds it)\n"
            ));
            continue;
        }
        for f in files {
            let path = root.join(&f.path);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent)?;
            }
            fs::write(&path, &f.contents).with_context(|| format!("writing {}", path.display()))?;
        }
        report.scaffolded.push(shown);
    }
    Ok(())
}

#[derive(Default)]
struct Report {
    created: Vec<String>,
    /// Hand-written crates written for the first time (folders).
    scaffolded: Vec<String>,
    updated: Vec<String>,
    removed: Vec<String>,
    unchanged: usize,
    stale: Vec<String>,
}

fn existing_files(out: &Path) -> Result<BTreeSet<PathBuf>> {
    let mut found = BTreeSet::new();
    if !out.exists() {
        return Ok(found);
    }
    let mut stack = vec![out.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                stack.push(path);
            } else if let Ok(rel) = path.strip_prefix(out) {
                found.insert(rel.to_path_buf());
            }
        }
    }
    Ok(found)
}

fn remove_empty_parents(root: &Path, file: &Path) {
    let mut dir = file.parent();
    while let Some(d) = dir {
        if d == root || fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
}

fn diff(path: &str, old: &str, new: &str) -> String {
    let mut out = similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(2)
        .header(&format!("a/{path}"), &format!("b/{path}"))
        .to_string();
    const LIMIT: usize = 4000;
    if out.len() > LIMIT {
        let cut = (0..=LIMIT)
            .rev()
            .find(|&i| out.is_char_boundary(i))
            .unwrap_or(0);
        out.truncate(cut);
        out.push_str("\n... (diff cut)\n");
    }
    out
}
