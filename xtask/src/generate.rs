//! Writes what codegen produces: only files whose content changed, removing files it
//! no longer produces; or, with `--check`, writes nothing and shows the difference.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};

/// Marks a folder as owned by the generator: stale files in it may be deleted.
const MARKER: &str = ".generated";

pub fn run(spec: &Path, out: &Path, check: bool) -> Result<bool> {
    let started = Instant::now();
    let text = fs::read_to_string(spec).with_context(|| format!("reading {}", spec.display()))?;
    let display = spec
        .strip_prefix(crate::project_root())
        .unwrap_or(spec)
        .to_path_buf();
    let system = match codegen::load(&display, &text) {
        Ok(s) => s,
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(false);
        }
    };
    let files = codegen::emit::all(&system)?;
    let wanted: BTreeSet<PathBuf> = files.iter().map(|f| PathBuf::from(&f.path)).collect();
    let existing = existing_files(out)?;

    let mut report = Report::default();
    for f in &files {
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
    if !check {
        fs::create_dir_all(out)?;
        let marker = out.join(MARKER);
        let note = "Everything in this folder is written by `cargo xtask generate`. Do not edit.\n";
        if fs::read_to_string(&marker).ok().as_deref() != Some(note) {
            fs::write(marker, note)?;
        }
    }
    let elapsed = started.elapsed();
    if check {
        if report.stale.is_empty() {
            println!(
                "generated/ is up to date ({} files, {elapsed:.2?})",
                report.unchanged
            );
            return Ok(true);
        }
        for d in &report.stale {
            eprintln!("{d}");
        }
        eprintln!(
            "{} is stale: {} to create, {} to update, {} to remove. Run `cargo xtask generate` and commit.",
            out.display(),
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
    println!(
        "{} created, {} updated, {} unchanged, {} removed in {elapsed:.2?}",
        report.created.len(),
        report.updated.len(),
        report.unchanged,
        report.removed.len()
    );
    Ok(true)
}

#[derive(Default)]
struct Report {
    created: Vec<String>,
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
