//! SQLite migrations: `sqlite/<database>/NNNN_<slug>.sql`, beside the PostgreSQL ones of
//! `sql.rs`, with the same numbers and names, from the same tables and the same changes.
//!
//! Types: uuid → TEXT (CHECK length 36), text → TEXT, integer/bigint → INTEGER, boolean
//! → INTEGER (CHECK IN (0, 1)), timestamptz → TEXT (RFC 3339 UTC), jsonb → TEXT (CHECK
//! json_valid), bytea → BLOB, bigserial → INTEGER (the rowid when it is the whole primary
//! key). Tables are STRICT. Column checks sit on their column (so that ADD COLUMN and
//! DROP COLUMN carry them); other constraints keep the PostgreSQL names.
//!
//! What `ALTER TABLE` cannot do in SQLite (a changed constraint, type, default or
//! nullability, a new column with an expression default, a rename that changes a
//! constraint's name) rebuilds the table inside the migration's transaction (SQLite's
//! documented procedure): create the new table, copy the rows, drop the old one, rename
//! the new one, create its indexes. The rows of the tables that reference it (directly
//! or not) are kept aside in temporary tables and put back, since dropping the old table
//! would delete them (ON DELETE CASCADE) with `foreign_keys` on.

use crate::emit::sql::{self, conjunction, ident, objects, short_name};
use crate::emit::{EmitError, GeneratedFile, header};
use crate::ir::{Column, Database, SqlType, Table};

pub fn emit(system: &crate::ir::System) -> Result<Vec<GeneratedFile>, EmitError> {
    system
        .databases
        .iter()
        .map(|db| {
            Ok(GeneratedFile {
                path: format!("sqlite/{}/0001_init.sql", db.name),
                contents: init(db, &db.tables)?,
            })
        })
        .collect()
}

fn preamble(db: &Database, what: &str) -> String {
    format!(
        "{}-- Database `{}` (SQLite), {what}.\n\
         -- Connect with `PRAGMA foreign_keys = ON` (sqlx's SqliteConnectOptions does by default):\n\
         -- ON DELETE CASCADE needs it. Time is TEXT in RFC 3339 UTC, booleans 0/1, JSON TEXT.\n\
         -- No BEGIN/COMMIT: sqlx runs every migration in its own transaction.\n",
        header("--"),
        db.name
    )
}

/// The first migration: `tables` from scratch.
pub fn init(db: &Database, tables: &[Table]) -> Result<String, EmitError> {
    let mut out = preamble(db, &format!("service `{}`", db.service));
    for t in tables {
        out.push('\n');
        if let Some(doc) = &t.doc {
            out.push_str(&comment(&t.name, doc));
        }
        for c in &t.columns {
            if let Some(doc) = &c.doc {
                out.push_str(&comment(&format!("{}.{}", t.name, c.name), doc));
            }
        }
        out.push_str(&create_table(t, &ident(&t.name)));
        for i in create_indexes(t) {
            out.push_str(&i);
            out.push('\n');
        }
    }
    Ok(out)
}

/// A migration of a database whose SQLite history starts after `file`: nothing to do.
pub fn placeholder(db: &Database, file: &str) -> String {
    format!(
        "{}-- The SQLite history of this database began after PostgreSQL's `{file}`: its\n\
         -- 0001_init.sql already holds this change. Kept so that both dialects number alike.\n\
         SELECT 1;\n",
        preamble(db, "nothing to do")
    )
}

fn comment(what: &str, doc: &str) -> String {
    doc.trim()
        .lines()
        .map(|l| format!("-- {what}: {}\n", l.trim()))
        .collect()
}

pub fn sqlite_type(t: SqlType) -> &'static str {
    match t {
        SqlType::Uuid | SqlType::Text | SqlType::TimestampTz | SqlType::Jsonb => "TEXT",
        SqlType::Integer | SqlType::BigInt | SqlType::BigSerial | SqlType::Boolean => "INTEGER",
        SqlType::Bytea => "BLOB",
    }
}

/// A PostgreSQL CHECK expression in SQLite.
fn expr(e: &str) -> String {
    e.replace("char_length(", "length(")
}

/// A PostgreSQL default in SQLite.
fn default(d: &str) -> String {
    match d {
        "now()" => "(strftime('%Y-%m-%dT%H:%M:%fZ','now'))".to_string(),
        "true" => "1".to_string(),
        "false" => "0".to_string(),
        _ => match d.rsplit_once("::") {
            Some((v, _)) if v.ends_with('\'') => v.to_string(),
            _ => d.to_string(),
        },
    }
}

fn column_check_name(t: &Table, c: &Column) -> String {
    short_name(&format!("{}_{}_check", t.name, c.name))
}

fn column_definition(t: &Table, c: &Column, width: usize) -> String {
    let n = ident(&c.name);
    let mut l = format!("{n:width$} {}", sqlite_type(c.sql_type));
    if !c.nullable {
        l.push_str(" NOT NULL");
    }
    if c.sql_type == SqlType::BigSerial
        && t.primary_key != [c.name.clone()]
        && !t.unique.contains(&vec![c.name.clone()])
    {
        l.push_str(" UNIQUE");
    }
    if let Some(d) = &c.default {
        l.push_str(&format!(" DEFAULT {}", default(d)));
    }
    match c.sql_type {
        SqlType::Uuid => l.push_str(&format!(" CHECK (length({n}) = 36)")),
        SqlType::Boolean => l.push_str(&format!(" CHECK ({n} IN (0, 1))")),
        SqlType::Jsonb => l.push_str(&format!(" CHECK (json_valid({n}))")),
        _ => {}
    }
    if !c.checks.is_empty() {
        l.push_str(&format!(
            " CONSTRAINT {} CHECK ({})",
            ident(&column_check_name(t, c)),
            expr(&conjunction(&c.checks))
        ));
    }
    l
}

/// Table constraints other than column checks, as `CREATE TABLE` lists them.
fn constraints(t: &Table) -> Vec<String> {
    let column_checks: Vec<String> = t
        .columns
        .iter()
        .filter(|c| !c.checks.is_empty())
        .map(|c| column_check_name(t, c))
        .collect();
    objects(t)
        .into_iter()
        .filter(|o| !o.index && !column_checks.contains(&o.name))
        .map(|o| format!("CONSTRAINT {} {}", ident(&o.name), expr(&o.def)))
        .collect()
}

fn create_table(t: &Table, name: &str) -> String {
    let width = t
        .columns
        .iter()
        .map(|c| ident(&c.name).len())
        .max()
        .unwrap_or(0);
    let mut lines: Vec<String> = t
        .columns
        .iter()
        .map(|c| column_definition(t, c, width))
        .collect();
    lines.extend(constraints(t));
    format!(
        "CREATE TABLE {name} (\n    {}\n) STRICT;\n",
        lines.join(",\n    ")
    )
}

fn create_indexes(t: &Table) -> Vec<String> {
    objects(t)
        .into_iter()
        .filter(|o| o.index)
        .map(|o| format!("CREATE INDEX {} {};", ident(&o.name), o.def))
        .collect()
}

/// The SQLite twin of the PostgreSQL migration `m`, from `old` (what the earlier
/// migrations produce) to `db.tables`.
pub fn migration(db: &Database, old: &[Table], m: &sql::Migration) -> Result<String, EmitError> {
    let mut stmts: Vec<String> = Vec::new();
    for t in old
        .iter()
        .rev()
        .filter(|t| !db.tables.iter().any(|n| n.name == t.name))
    {
        stmts.push(format!("DROP TABLE {};", ident(&t.name)));
    }
    for new in &db.tables {
        let Some(before) = old.iter().find(|t| t.name == new.name) else {
            continue;
        };
        let tn = ident(&new.name);
        let map = sql::column_renames(before, new);
        let renamed = sql::rename_columns(before, &map);
        if needs_rebuild(before, &renamed, new, &map) {
            // Dropping the old table would delete (or refuse to delete) the rows of the
            // tables that reference it, directly or not: keep them aside and put them back.
            let mut dependents: Vec<&Table> = Vec::new();
            for t in old {
                let refers = |name: &str| t.foreign_keys.iter().any(|f| f.table == name);
                let kept = db.tables.iter().any(|n| n.name == t.name);
                if t.name != new.name
                    && kept
                    && (refers(&new.name) || dependents.iter().any(|d| refers(&d.name)))
                {
                    dependents.push(t);
                }
            }
            for d in &dependents {
                stmts.push(format!(
                    "CREATE TEMP TABLE {} AS SELECT * FROM {};",
                    ident(&format!("{}_keep", d.name)),
                    ident(&d.name)
                ));
            }
            for d in dependents.iter().rev() {
                stmts.push(format!("DELETE FROM {};", ident(&d.name)));
            }
            let tmp = ident(&format!("{}_rebuild", new.name));
            stmts.push(create_table(new, &tmp).trim_end().to_string());
            let (mut into, mut from) = (Vec::new(), Vec::new());
            for c in &new.columns {
                let source = map
                    .iter()
                    .find(|(_, to)| *to == c.name)
                    .map_or(c.name.as_str(), |(f, _)| f.as_str());
                let Some(was) = before.columns.iter().find(|b| b.name == source) else {
                    continue;
                };
                let mut e = ident(source);
                if sqlite_type(was.sql_type) != sqlite_type(c.sql_type) {
                    e = format!("CAST({e} AS {})", sqlite_type(c.sql_type));
                }
                if let (false, Some(d)) = (c.nullable, &c.default) {
                    e = format!("coalesce({e}, {})", default(d));
                }
                into.push(ident(&c.name));
                from.push(e);
            }
            stmts.push(format!(
                "INSERT INTO {tmp} ({}) SELECT {} FROM {tn};",
                into.join(", "),
                from.join(", ")
            ));
            stmts.push(format!("DROP TABLE {tn};"));
            stmts.push(format!("ALTER TABLE {tmp} RENAME TO {tn};"));
            stmts.extend(create_indexes(new));
            for d in &dependents {
                let keep = ident(&format!("{}_keep", d.name));
                stmts.push(format!(
                    "INSERT INTO {} SELECT * FROM temp.{keep};",
                    ident(&d.name)
                ));
                stmts.push(format!("DROP TABLE temp.{keep};"));
            }
            continue;
        }
        let (was_ix, now_ix) = (create_indexes(before), create_indexes(new));
        for (o, s) in objects(before).iter().filter(|o| o.index).zip(&was_ix) {
            if !now_ix.contains(s) {
                stmts.push(format!("DROP INDEX {};", ident(&o.name)));
            }
        }
        for (from, to) in &map {
            stmts.push(format!(
                "ALTER TABLE {tn} RENAME COLUMN {} TO {};",
                ident(from),
                ident(to)
            ));
        }
        for c in renamed
            .columns
            .iter()
            .filter(|c| !new.columns.iter().any(|n| n.name == c.name))
        {
            stmts.push(format!("ALTER TABLE {tn} DROP COLUMN {};", ident(&c.name)));
        }
        for c in new
            .columns
            .iter()
            .filter(|c| !renamed.columns.iter().any(|b| b.name == c.name))
        {
            stmts.push(format!(
                "ALTER TABLE {tn} ADD COLUMN {};",
                column_definition(new, c, 0)
            ));
        }
        stmts.extend(now_ix.into_iter().filter(|s| !was_ix.contains(s)));
    }
    for t in db
        .tables
        .iter()
        .filter(|t| !old.iter().any(|o| o.name == t.name))
    {
        stmts.push(create_table(t, &ident(&t.name)).trim_end().to_string());
        stmts.extend(create_indexes(t));
    }
    let number = m.file.get(..4).unwrap_or("");
    let mut out = preamble(
        db,
        &format!("migration {number}: what the spec changed since the migration before"),
    );
    out.push_str("-- Written once and never rewritten: the spec lock records its checksum.\n--\n");
    for c in &m.changes {
        out.push_str(&format!("--   {c}\n"));
    }
    out.push('\n');
    if stmts.is_empty() {
        stmts.push("SELECT 1;".to_string());
    }
    for s in stmts {
        out.push_str(&s);
        out.push('\n');
    }
    Ok(out)
}

/// Whether `new` differs from `before` (as `renamed` after the column renames) in a way
/// `ALTER TABLE` cannot express in SQLite.
fn needs_rebuild(before: &Table, renamed: &Table, new: &Table, map: &[(String, String)]) -> bool {
    if constraints(renamed) != constraints(new)
        || (!map.is_empty() && constraints(before) != constraints(renamed))
    {
        return true;
    }
    // A renamed column's check keeps its old name in SQLite.
    if map.iter().any(|(_, to)| {
        new.columns
            .iter()
            .any(|c| &c.name == to && !c.checks.is_empty())
    }) {
        return true;
    }
    for c in &new.columns {
        match renamed.columns.iter().find(|b| b.name == c.name) {
            Some(was) => {
                if column_definition(renamed, was, 0) != column_definition(new, c, 0) {
                    return true;
                }
            }
            None => {
                let d = c.default.as_deref().map(default);
                if c.sql_type == SqlType::BigSerial
                    || d.as_deref().is_some_and(|d| d.starts_with('('))
                    || (!c.nullable && d.is_none())
                {
                    return true;
                }
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialect() {
        assert_eq!(
            expr("char_length(name) BETWEEN 1 AND 9"),
            "length(name) BETWEEN 1 AND 9"
        );
        assert_eq!(default("'{}'::jsonb"), "'{}'");
        assert_eq!(default("'placed'"), "'placed'");
        assert_eq!(default("true"), "1");
        assert!(default("now()").starts_with("(strftime("));
    }
}
