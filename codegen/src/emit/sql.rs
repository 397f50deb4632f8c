//! PostgreSQL migrations: `sql/<database>/0001_init.sql` for every relational database.
//!
//! Files are named `NNNN_name.sql` (what `sqlx migrate` reads), so that an incremental
//! `0002_...` can follow once the spec changes. There is no BEGIN/COMMIT: sqlx runs
//! each migration in a transaction of its own.
//!
//! Names follow PostgreSQL's own conventions, so errors read the same as for hand-made
//! schemas: `<table>_pkey`, `<table>_<cols>_key` (UNIQUE), `<table>_<column>_check`,
//! `<table>_<cols>_fkey`, `<table>_<cols>_idx`. A name longer than PostgreSQL's 63 bytes
//! is shortened with a hash so that it stays unique.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::emit::{EmitError, GeneratedFile, header, render};
use crate::ir::{Database, DatabaseKind, IndexColumn, System, Table};
use crate::names;

const TEMPLATE: &str = include_str!("../../../templates/sql/init.sql.tera");

/// The longest identifier PostgreSQL keeps (NAMEDATALEN - 1).
const MAX_IDENT: usize = 63;

pub fn emit(system: &System) -> Result<Vec<GeneratedFile>, EmitError> {
    system
        .databases
        .iter()
        .map(|db| {
            let view = DatabaseView::new(system, db)?;
            let ctx = tera::Context::from_serialize(&view)
                .map_err(|e| EmitError::Other(format!("sql context for `{}`: {e}", db.name)))?;
            let contents = render("sql/init.sql.tera", TEMPLATE, &ctx)?;
            let contents = format!("{}\n", contents.trim_end());
            Ok(GeneratedFile {
                path: format!("sql/{}/0001_init.sql", db.name),
                contents,
            })
        })
        .collect()
}

#[derive(Serialize)]
struct DatabaseView {
    header: String,
    database: String,
    about: String,
    tables: Vec<TableView>,
}

#[derive(Serialize)]
struct TableView {
    name: String,
    /// Column definitions, then constraints; the template separates them with commas.
    lines: Vec<String>,
    /// Complete `CREATE INDEX` statements.
    indexes: Vec<String>,
    /// Complete `COMMENT ON` statements.
    comments: Vec<String>,
}

impl DatabaseView {
    fn new(system: &System, db: &Database) -> Result<DatabaseView, EmitError> {
        // Index and constraint names share one namespace per schema.
        let mut used = BTreeSet::new();
        let tables = db
            .tables
            .iter()
            .map(|t| table(system, t, &mut used))
            .collect::<Result<_, _>>()?;
        let about = match db.kind {
            DatabaseKind::Crud => "the CRUD tables",
            DatabaseKind::EventsAndState => "the event table, the state tables and the outbox",
            DatabaseKind::ReadModel => "the read model projected from the event store",
        };
        Ok(DatabaseView {
            header: header("--"),
            database: db.name.clone(),
            about: format!("service `{}`: {about}", db.service),
            tables,
        })
    }
}

fn table(system: &System, t: &Table, used: &mut BTreeSet<String>) -> Result<TableView, EmitError> {
    let tn = ident(&t.name);
    let width = t
        .columns
        .iter()
        .map(|c| ident(&c.name).len())
        .max()
        .unwrap_or(0);
    let mut lines = Vec::new();
    for c in &t.columns {
        let mut l = format!("{:width$} {}", ident(&c.name), c.sql_type.postgres());
        if !c.nullable {
            l.push_str(" NOT NULL");
        }
        if let Some(d) = &c.default {
            l.push_str(&format!(" DEFAULT {d}"));
        }
        lines.push(l);
    }
    if !t.primary_key.is_empty() {
        let name = unique_name(used, &format!("{}_pkey", t.name))?;
        lines.push(format!(
            "CONSTRAINT {name} PRIMARY KEY ({})",
            list(&t.primary_key)
        ));
    }
    for u in &t.unique {
        let name = unique_name(used, &format!("{}_{}_key", t.name, u.join("_")))?;
        lines.push(format!("CONSTRAINT {name} UNIQUE ({})", list(u)));
    }
    for c in t.columns.iter().filter(|c| !c.checks.is_empty()) {
        let name = unique_name(used, &format!("{}_{}_check", t.name, c.name))?;
        lines.push(format!(
            "CONSTRAINT {name} CHECK ({})",
            conjunction(&c.checks)
        ));
    }
    for (i, check) in t.checks.iter().enumerate() {
        // PostgreSQL's own names for unnamed table checks: `t_check`, `t_check1`, ...
        let suffix = if i == 0 { String::new() } else { i.to_string() };
        let name = unique_name(used, &format!("{}_check{suffix}", t.name))?;
        lines.push(format!("CONSTRAINT {name} CHECK ({check})"));
    }
    for fk in &t.foreign_keys {
        let name = unique_name(used, &format!("{}_{}_fkey", t.name, fk.columns.join("_")))?;
        let mut l = format!(
            "CONSTRAINT {name} FOREIGN KEY ({}) REFERENCES {} ({})",
            list(&fk.columns),
            ident(&fk.table),
            list(&fk.references)
        );
        if fk.on_delete_cascade {
            l.push_str(" ON DELETE CASCADE");
        }
        lines.push(l);
    }
    let mut indexes = Vec::new();
    for ix in &t.indexes {
        let cols: Vec<&str> = ix.iter().map(|c| c.field.as_str()).collect();
        let name = unique_name(used, &format!("{}_{}_idx", t.name, cols.join("_")))?;
        indexes.push(format!(
            "CREATE INDEX {name} ON {tn} ({});",
            index_columns(ix)
        ));
    }
    let mut comments = Vec::new();
    if let Some(doc) = &t.doc {
        comments.push(format!("COMMENT ON TABLE {tn} IS {};", literal(doc)));
    }
    // Columns carry no doc in the IR: take it from the field of the entity stored here.
    let entity = system
        .entities
        .iter()
        .find(|e| !e.is_abstract && names::plural(&names::snake(&e.name)) == t.name);
    if let Some(e) = entity {
        for c in &t.columns {
            if let Some(doc) = e.field(&c.name).and_then(|f| f.doc.as_ref()) {
                comments.push(format!(
                    "COMMENT ON COLUMN {tn}.{} IS {};",
                    ident(&c.name),
                    literal(doc)
                ));
            }
        }
    }
    Ok(TableView {
        name: tn,
        lines,
        indexes,
        comments,
    })
}

fn index_columns(ix: &[IndexColumn]) -> String {
    ix.iter()
        .map(|c| {
            if c.descending {
                format!("{} DESC", ident(&c.field))
            } else {
                ident(&c.field)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn list(cols: &[String]) -> String {
    cols.iter().map(|c| ident(c)).collect::<Vec<_>>().join(", ")
}

/// One CHECK expression from several, each parenthesised when there are more.
fn conjunction(checks: &[String]) -> String {
    match checks {
        [one] => one.clone(),
        many => many
            .iter()
            .map(|c| format!("({c})"))
            .collect::<Vec<_>>()
            .join(" AND "),
    }
}

/// An identifier, quoted only when it has to be (not lower_snake, or a reserved word).
fn ident(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !names::field_collisions(name).contains(&"SQL");
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// A string literal.
fn literal(s: &str) -> String {
    format!("'{}'", s.trim().replace('\'', "''"))
}

/// `name`, shortened to fit PostgreSQL's limit; an error if it is taken already.
fn unique_name(used: &mut BTreeSet<String>, name: &str) -> Result<String, EmitError> {
    let name = if name.len() <= MAX_IDENT {
        name.to_string()
    } else {
        let mut cut = MAX_IDENT - 9;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}_{:08x}", &name[..cut], fnv1a(name))
    };
    if !used.insert(name.clone()) {
        return Err(EmitError::Other(format!(
            "two SQL constraints or indexes would be called `{name}`: the spec declares the same one twice"
        )));
    }
    Ok(ident(&name))
}

/// A small stable hash (FNV-1a, 32-bit): the same name always shortens the same way.
fn fnv1a(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert_eq!(ident("cart_items"), "cart_items");
        assert_eq!(ident("user"), "\"user\"");
        assert_eq!(ident("Odd"), "\"Odd\"");
        assert_eq!(literal("the customer's cart"), "'the customer''s cart'");
    }

    #[test]
    fn long_names_stay_unique() {
        let mut used = BTreeSet::new();
        let a = unique_name(&mut used, &format!("{}_a_idx", "t".repeat(70))).unwrap();
        let b = unique_name(&mut used, &format!("{}_b_idx", "t".repeat(70))).unwrap();
        assert_eq!(a.len(), MAX_IDENT);
        assert_ne!(a, b);
        assert!(unique_name(&mut used, &format!("{}_a_idx", "t".repeat(70))).is_err());
    }

    #[test]
    fn checks_combine() {
        assert_eq!(conjunction(&["a > 1".into()]), "a > 1");
        assert_eq!(
            conjunction(&["a > 1".into(), "a < 9".into()]),
            "(a > 1) AND (a < 9)"
        );
    }
}
