//! PostgreSQL migrations: `sql/<database>/0001_init.sql` for every relational database.
//!
//! Files are named `NNNN_name.sql` (what `sqlx migrate` reads). Once the spec changes,
//! `migration` writes the incremental `0002_...` from the schema the earlier migrations
//! produce (the spec lock keeps it) to the new one. There is no BEGIN/COMMIT: sqlx runs
//! each migration in a transaction of its own.
//!
//! Names follow PostgreSQL's own conventions, so errors read the same as for hand-made
//! schemas: `<table>_pkey`, `<table>_<cols>_key` (UNIQUE), `<table>_<column>_check`,
//! `<table>_<cols>_fkey`, `<table>_<cols>_idx`. A name longer than PostgreSQL's 63 bytes
//! is shortened with a hash so that it stays unique.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::emit::{EmitError, GeneratedFile, header, render};
use crate::ir::{Column, Database, DatabaseKind, IndexColumn, SqlType, System, Table};
use crate::names;

const TEMPLATE: &str = include_str!("../../../templates/sql/init.sql.tera");

/// The longest identifier PostgreSQL keeps (NAMEDATALEN - 1).
const MAX_IDENT: usize = 63;

pub fn emit(system: &System) -> Result<Vec<GeneratedFile>, EmitError> {
    system
        .databases
        .iter()
        .map(|db| {
            let view = DatabaseView::new(db)?;
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
    fn new(db: &Database) -> Result<DatabaseView, EmitError> {
        // Index and constraint names share one namespace per schema.
        let mut used = BTreeSet::new();
        let tables = db
            .tables
            .iter()
            .map(|t| table(t, &mut used))
            .collect::<Result<_, _>>()?;
        let about = match db.kind {
            DatabaseKind::Crud => "the CRUD tables",
            DatabaseKind::EventsAndState => "the event table, the state tables and the outbox",
            DatabaseKind::ReadModel => "the read model projected from the event store",
            DatabaseKind::EventStore => {
                "the event store (one row per commit, reader checkpoints, leases)"
            }
        };
        Ok(DatabaseView {
            header: header("--"),
            database: db.name.clone(),
            about: format!("service `{}`: {about}", db.service),
            tables,
        })
    }
}

/// A constraint or index of a table, named the way PostgreSQL would name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SqlObject {
    /// Unquoted, already shortened to PostgreSQL's limit.
    pub(crate) name: String,
    pub(crate) index: bool,
    /// What follows the name: `PRIMARY KEY (id)`, `CHECK (...)`, or for an index
    /// `ON table (columns)`.
    pub(crate) def: String,
}

/// Every constraint, then every index of `t`, in the order `CREATE TABLE` lists them.
pub(crate) fn objects(t: &Table) -> Vec<SqlObject> {
    let constraint = |name: String, def: String| SqlObject {
        name: short_name(&name),
        index: false,
        def,
    };
    let mut out = Vec::new();
    if !t.primary_key.is_empty() {
        out.push(constraint(
            format!("{}_pkey", t.name),
            format!("PRIMARY KEY ({})", list(&t.primary_key)),
        ));
    }
    for u in &t.unique {
        out.push(constraint(
            format!("{}_{}_key", t.name, u.join("_")),
            format!("UNIQUE ({})", list(u)),
        ));
    }
    for c in t.columns.iter().filter(|c| !c.checks.is_empty()) {
        out.push(constraint(
            format!("{}_{}_check", t.name, c.name),
            format!("CHECK ({})", conjunction(&c.checks)),
        ));
    }
    for (i, check) in t.checks.iter().enumerate() {
        // PostgreSQL's own names for unnamed table checks: `t_check`, `t_check1`, ...
        let suffix = if i == 0 { String::new() } else { i.to_string() };
        out.push(constraint(
            format!("{}_check{suffix}", t.name),
            format!("CHECK ({check})"),
        ));
    }
    for fk in &t.foreign_keys {
        let mut def = format!(
            "FOREIGN KEY ({}) REFERENCES {} ({})",
            list(&fk.columns),
            ident(&fk.table),
            list(&fk.references)
        );
        if fk.on_delete_cascade {
            def.push_str(" ON DELETE CASCADE");
        }
        out.push(constraint(
            format!("{}_{}_fkey", t.name, fk.columns.join("_")),
            def,
        ));
    }
    for ix in &t.indexes {
        let cols: Vec<&str> = ix.iter().map(|c| c.field.as_str()).collect();
        out.push(SqlObject {
            name: short_name(&format!("{}_{}_idx", t.name, cols.join("_"))),
            index: true,
            def: format!("ON {} ({})", ident(&t.name), index_columns(ix)),
        });
    }
    out
}

fn column_definition(c: &Column, width: usize) -> String {
    let mut l = format!("{:width$} {}", ident(&c.name), c.sql_type.postgres());
    if !c.nullable {
        l.push_str(" NOT NULL");
    }
    if let Some(d) = &c.default {
        l.push_str(&format!(" DEFAULT {d}"));
    }
    l
}

fn table(t: &Table, used: &mut BTreeSet<String>) -> Result<TableView, EmitError> {
    let tn = ident(&t.name);
    let width = t
        .columns
        .iter()
        .map(|c| ident(&c.name).len())
        .max()
        .unwrap_or(0);
    let mut lines: Vec<String> = t
        .columns
        .iter()
        .map(|c| column_definition(c, width))
        .collect();
    let mut indexes = Vec::new();
    for o in objects(t) {
        if !used.insert(o.name.clone()) {
            return Err(EmitError::Other(format!(
                "two SQL constraints or indexes would be called `{}`: the spec declares the same one twice",
                o.name
            )));
        }
        if o.index {
            indexes.push(format!("CREATE INDEX {} {};", ident(&o.name), o.def));
        } else {
            lines.push(format!("CONSTRAINT {} {}", ident(&o.name), o.def));
        }
    }
    let mut comments = Vec::new();
    if let Some(doc) = &t.doc {
        comments.push(format!("COMMENT ON TABLE {tn} IS {};", literal(doc)));
    }
    for c in &t.columns {
        if let Some(doc) = &c.doc {
            comments.push(format!(
                "COMMENT ON COLUMN {tn}.{} IS {};",
                ident(&c.name),
                literal(doc)
            ));
        }
    }
    Ok(TableView {
        name: tn,
        lines,
        indexes,
        comments,
    })
}

// ---------------------------------------------------------------------- migrations

const MIGRATION_TEMPLATE: &str = include_str!("../../../templates/sql/migration.sql.tera");

/// A new column that existing rows could not fill: the spec must give a default (or
/// make the field optional).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingDefault {
    pub table: String,
    pub column: String,
    /// The column exists and was nullable; otherwise it is new.
    pub became_required: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error("existing rows would have no value for new NOT NULL columns")]
    MissingDefaults(Vec<MissingDefault>),
    #[error(transparent)]
    Emit(#[from] EmitError),
}

/// One incremental migration from the schema the earlier ones produce to `db`'s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// `0002_products_add_colour.sql`.
    pub file: String,
    pub contents: String,
    /// One line per change, e.g. `add column products.colour`.
    pub changes: Vec<String>,
    /// What it drops along with the data: `(table, Some(column))`, or `(table, None)`
    /// for a whole table.
    pub drops: Vec<(String, Option<String>)>,
}

#[derive(Serialize)]
struct MigrationView {
    header: String,
    database: String,
    number: String,
    changes: Vec<String>,
    before: Vec<String>,
    tables: Vec<TableView>,
    after: Vec<String>,
}

/// What changed, for the file name: `products_add_colour`, `create_wishlists`.
struct Step {
    table: String,
    verb: &'static str,
    object: String,
}

/// The migration that takes a database from `old` (what the existing migrations
/// produce) to `db.tables`; `None` when they already agree.
pub fn migration(
    db: &Database,
    old: &[Table],
    number: u32,
) -> Result<Option<Migration>, MigrationError> {
    let mut renames = Vec::new();
    let mut drop_objects = Vec::new();
    let mut drop_columns = Vec::new();
    let mut drop_tables = Vec::new();
    let mut add_columns = Vec::new();
    let mut alter_columns = Vec::new();
    let mut creates = Vec::new();
    let mut add_objects = Vec::new();
    let mut comments = Vec::new();
    let mut changes = Vec::new();
    let mut steps: Vec<Step> = Vec::new();
    let mut drops = Vec::new();
    let mut missing = Vec::new();
    let step = |steps: &mut Vec<Step>, table: &str, verb: &'static str, object: &str| {
        steps.push(Step {
            table: table.to_string(),
            verb,
            object: object.to_string(),
        })
    };

    for new in &db.tables {
        let Some(before) = old.iter().find(|t| t.name == new.name) else {
            continue;
        };
        let tn = ident(&new.name);
        let map = column_renames(before, new);
        for (from, to) in &map {
            renames.push(format!(
                "ALTER TABLE {tn} RENAME COLUMN {} TO {};",
                ident(from),
                ident(to)
            ));
            changes.push((0, format!("rename column {}.{from} to {to}", new.name)));
            step(&mut steps, &new.name, "rename", &format!("{from}_to_{to}"));
        }
        let renamed = rename_columns(before, &map);
        // Names derived from a renamed column follow it, as a fresh schema names them.
        for (a, b) in objects(before).iter().zip(objects(&renamed)) {
            if a.name != b.name {
                renames.push(if a.index {
                    format!(
                        "ALTER INDEX {} RENAME TO {};",
                        ident(&a.name),
                        ident(&b.name)
                    )
                } else {
                    format!(
                        "ALTER TABLE {tn} RENAME CONSTRAINT {} TO {};",
                        ident(&a.name),
                        ident(&b.name)
                    )
                });
            }
        }
        let (was, now) = (objects(&renamed), objects(new));
        for o in was.iter().filter(|o| !now.contains(o)) {
            drop_objects.push(if o.index {
                format!("DROP INDEX {};", ident(&o.name))
            } else {
                format!("ALTER TABLE {tn} DROP CONSTRAINT {};", ident(&o.name))
            });
            changes.push((1, format!("drop {} {}", kind(o), o.name)));
            step(
                &mut steps,
                &new.name,
                if o.index { "drop_index" } else { "constraints" },
                "",
            );
        }
        for o in now.iter().filter(|o| !was.contains(o)) {
            add_objects.push(if o.index {
                format!("CREATE INDEX {} {};", ident(&o.name), o.def)
            } else {
                format!(
                    "ALTER TABLE {tn} ADD CONSTRAINT {} {};",
                    ident(&o.name),
                    o.def
                )
            });
            changes.push((7, format!("add {} {}", kind(o), o.name)));
            step(
                &mut steps,
                &new.name,
                if o.index { "add_index" } else { "constraints" },
                "",
            );
        }
        for c in renamed
            .columns
            .iter()
            .filter(|c| !new.columns.iter().any(|n| n.name == c.name))
        {
            drop_columns.push(format!("ALTER TABLE {tn} DROP COLUMN {};", ident(&c.name)));
            changes.push((3, format!("drop column {}.{}", new.name, c.name)));
            step(&mut steps, &new.name, "drop", &c.name);
            drops.push((new.name.clone(), Some(c.name.clone())));
        }
        for c in &new.columns {
            let cn = ident(&c.name);
            let Some(was) = renamed.columns.iter().find(|b| b.name == c.name) else {
                if !c.nullable && c.default.is_none() {
                    missing.push(MissingDefault {
                        table: new.name.clone(),
                        column: c.name.clone(),
                        became_required: false,
                    });
                }
                add_columns.push(format!(
                    "ALTER TABLE {tn} ADD COLUMN {};",
                    column_definition(c, 0)
                ));
                if let Some(doc) = &c.doc {
                    comments.push(format!("COMMENT ON COLUMN {tn}.{cn} IS {};", literal(doc)));
                }
                changes.push((4, format!("add column {}.{}", new.name, c.name)));
                step(&mut steps, &new.name, "add", &c.name);
                continue;
            };
            let mut altered = false;
            let retyped = was.sql_type != c.sql_type;
            if retyped {
                if was.default.is_some() {
                    alter_columns.push(format!("ALTER TABLE {tn} ALTER COLUMN {cn} DROP DEFAULT;"));
                }
                let ty = c.sql_type.postgres();
                let using = conversion(&cn, was.sql_type, c.sql_type);
                alter_columns.push(format!(
                    "ALTER TABLE {tn} ALTER COLUMN {cn} TYPE {ty} USING {using};"
                ));
                altered = true;
            }
            let had_default = if retyped { None } else { was.default.as_ref() };
            if had_default != c.default.as_ref() {
                alter_columns.push(match &c.default {
                    Some(d) => format!("ALTER TABLE {tn} ALTER COLUMN {cn} SET DEFAULT {d};"),
                    None => format!("ALTER TABLE {tn} ALTER COLUMN {cn} DROP DEFAULT;"),
                });
                altered = true;
            }
            if was.nullable && !c.nullable {
                match &c.default {
                    Some(d) => alter_columns
                        .push(format!("UPDATE {tn} SET {cn} = {d} WHERE {cn} IS NULL;")),
                    None => missing.push(MissingDefault {
                        table: new.name.clone(),
                        column: c.name.clone(),
                        became_required: true,
                    }),
                }
                alter_columns.push(format!("ALTER TABLE {tn} ALTER COLUMN {cn} SET NOT NULL;"));
                altered = true;
            } else if !was.nullable && c.nullable {
                alter_columns.push(format!("ALTER TABLE {tn} ALTER COLUMN {cn} DROP NOT NULL;"));
                altered = true;
            }
            if altered {
                changes.push((5, format!("change column {}.{}", new.name, c.name)));
                step(&mut steps, &new.name, "alter", &c.name);
            }
            if trimmed(&was.doc) != trimmed(&c.doc) {
                comments.push(format!(
                    "COMMENT ON COLUMN {tn}.{cn} IS {};",
                    c.doc.as_deref().map_or("NULL".to_string(), literal)
                ));
                changes.push((8, format!("comment on column {}.{}", new.name, c.name)));
                step(&mut steps, &new.name, "comments", "");
            }
        }
        if trimmed(&before.doc) != trimmed(&new.doc) {
            comments.push(format!(
                "COMMENT ON TABLE {tn} IS {};",
                new.doc.as_deref().map_or("NULL".to_string(), literal)
            ));
            changes.push((8, format!("comment on table {}", new.name)));
            step(&mut steps, &new.name, "comments", "");
        }
    }
    // Children were created after their parents: drop them first.
    for t in old
        .iter()
        .rev()
        .filter(|t| !db.tables.iter().any(|n| n.name == t.name))
    {
        drop_tables.push(format!("DROP TABLE {};", ident(&t.name)));
        changes.push((2, format!("drop table {}", t.name)));
        step(&mut steps, &t.name, "drop_table", "");
        drops.push((t.name.clone(), None));
    }
    let mut used = BTreeSet::new();
    for t in db
        .tables
        .iter()
        .filter(|t| !old.iter().any(|o| o.name == t.name))
    {
        creates.push(table(t, &mut used)?);
        changes.push((6, format!("create table {}", t.name)));
        step(&mut steps, &t.name, "create", "");
    }
    if !missing.is_empty() {
        return Err(MigrationError::MissingDefaults(missing));
    }
    if changes.is_empty() {
        return Ok(None);
    }
    let mut before = renames;
    before.extend(drop_objects);
    before.extend(drop_tables);
    before.extend(drop_columns);
    before.extend(add_columns);
    before.extend(alter_columns);
    let mut after = add_objects;
    after.extend(comments);
    // In the order the statements run.
    changes.sort_by_key(|(phase, _)| *phase);
    let changes: Vec<String> = changes.into_iter().map(|(_, c)| c).collect();
    let number = format!("{number:04}");
    let view = MigrationView {
        header: header("--"),
        database: db.name.clone(),
        number: number.clone(),
        changes: changes.clone(),
        before,
        tables: creates,
        after,
    };
    let ctx = tera::Context::from_serialize(&view)
        .map_err(|e| EmitError::Other(format!("migration context for `{}`: {e}", db.name)))?;
    let contents = render("sql/migration.sql.tera", MIGRATION_TEMPLATE, &ctx)?;
    Ok(Some(Migration {
        file: format!("{number}_{}.sql", slug(&steps)),
        contents: format!("{}\n", contents.trim_end()),
        changes,
        drops,
    }))
}

fn kind(o: &SqlObject) -> &'static str {
    if o.index { "index" } else { "constraint" }
}

fn trimmed(doc: &Option<String>) -> Option<&str> {
    doc.as_deref().map(str::trim)
}

/// `old` as it looks after `RENAME COLUMN from TO to` for each pair of `map`.
pub(crate) fn rename_columns(old: &Table, map: &[(String, String)]) -> Table {
    let r = |n: &String| {
        map.iter()
            .find(|(from, _)| from == n)
            .map_or_else(|| n.clone(), |(_, to)| to.clone())
    };
    let expr = |e: &String| {
        map.iter()
            .fold(e.clone(), |e, (from, to)| replace_ident(&e, from, to))
    };
    let mut t = old.clone();
    for c in &mut t.columns {
        c.name = r(&c.name);
        c.checks = c.checks.iter().map(expr).collect();
    }
    t.primary_key = t.primary_key.iter().map(r).collect();
    t.unique = t.unique.iter().map(|u| u.iter().map(r).collect()).collect();
    for fk in &mut t.foreign_keys {
        fk.columns = fk.columns.iter().map(r).collect();
    }
    for ix in &mut t.indexes {
        for c in ix {
            c.field = r(&c.field);
        }
    }
    t.checks = t.checks.iter().map(expr).collect();
    t
}

/// Replaces the identifier `from` by `to` in a SQL expression, outside string literals.
fn replace_ident(expr: &str, from: &str, to: &str) -> String {
    let mut out = String::new();
    let mut word = String::new();
    let mut quoted = false;
    let flush = |word: &mut String, out: &mut String| {
        out.push_str(if word == from { to } else { word });
        word.clear();
    };
    for ch in expr.chars() {
        if !quoted && (ch.is_ascii_alphanumeric() || ch == '_') {
            word.push(ch);
            continue;
        }
        flush(&mut word, &mut out);
        if ch == '\'' {
            quoted = !quoted;
        }
        out.push(ch);
    }
    flush(&mut word, &mut out);
    out
}

/// A file name from what changed: `products_add_colour`, `products_add_colour_size`,
/// `create_wishlists_and_products_drop_note`; long lists end in `_and_more`.
fn slug(steps: &[Step]) -> String {
    let mut groups: Vec<(String, &str, Vec<String>)> = Vec::new();
    for s in steps {
        // Constraint, index and comment changes only name a table nothing else names.
        let minor = |verb: &str| {
            matches!(
                verb,
                "constraints" | "comments" | "add_index" | "drop_index"
            )
        };
        if minor(s.verb) && steps.iter().any(|o| o.table == s.table && !minor(o.verb)) {
            continue;
        }
        match groups
            .iter_mut()
            .find(|(t, v, _)| *t == s.table && *v == s.verb)
        {
            Some((_, _, objects)) => {
                if !s.object.is_empty() && !objects.contains(&s.object) {
                    objects.push(s.object.clone());
                }
            }
            None => groups.push((
                s.table.clone(),
                s.verb,
                if s.object.is_empty() {
                    Vec::new()
                } else {
                    vec![s.object.clone()]
                },
            )),
        }
    }
    let parts: Vec<String> = groups
        .iter()
        .map(|(table, verb, objects)| match *verb {
            "create" => format!("create_{table}"),
            "drop_table" => format!("drop_{table}"),
            _ if objects.is_empty() => format!("{table}_{verb}"),
            _ => format!("{table}_{verb}_{}", objects.join("_")),
        })
        .collect();
    let mut out = String::new();
    for (i, p) in parts.iter().enumerate() {
        let next = if i == 0 {
            p.clone()
        } else {
            format!("{out}_and_{p}")
        };
        if i > 0 && next.len() > 60 {
            out.push_str("_and_more");
            break;
        }
        out = next;
    }
    out
}

pub(crate) fn index_columns(ix: &[IndexColumn]) -> String {
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

pub(crate) fn list(cols: &[String]) -> String {
    cols.iter().map(|c| ident(c)).collect::<Vec<_>>().join(", ")
}

/// One CHECK expression from several, each parenthesised when there are more.
pub(crate) fn conjunction(checks: &[String]) -> String {
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
pub(crate) fn ident(name: &str) -> String {
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

/// How a retyped column's values become the new type: PostgreSQL's own cast where it
/// has one, else through their text form, which any type has and any type reads (a
/// value that does not read fails the migration, in its transaction: nothing is lost).
fn conversion(column: &str, from: SqlType, to: SqlType) -> String {
    use SqlType::*;
    let direct = matches!(
        (from, to),
        (Integer, BigInt) | (BigInt, Integer) | (Integer, Boolean) | (Boolean, Integer) | (_, Text)
    );
    let ty = to.postgres();
    if direct {
        format!("{column}::{ty}")
    } else {
        format!("{column}::text::{ty}")
    }
}

/// A string literal.
pub(crate) fn literal(s: &str) -> String {
    format!("'{}'", s.trim().replace('\'', "''"))
}

/// `name`, shortened with a hash to fit PostgreSQL's limit, so that it stays unique.
pub(crate) fn short_name(name: &str) -> String {
    if name.len() <= MAX_IDENT {
        return name.to_string();
    }
    let mut cut = MAX_IDENT - 9;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}_{:08x}", &name[..cut], fnv1a(name))
}

/// A small stable hash (FNV-1a, 32-bit): the same name always shortens the same way.
fn fnv1a(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// The columns `new` renames from `before` (`renamed_from` naming a column that is
/// there and whose new name is not yet): (old name, new name).
pub(crate) fn column_renames(before: &Table, new: &Table) -> Vec<(String, String)> {
    new.columns
        .iter()
        .filter_map(|c| {
            let from = c.renamed_from.as_ref()?;
            let has = |n: &str| before.columns.iter().any(|b| b.name == n);
            (has(from) && !has(&c.name)).then(|| (from.clone(), c.name.clone()))
        })
        .collect()
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
        let a = short_name(&format!("{}_a_idx", "t".repeat(70)));
        let b = short_name(&format!("{}_b_idx", "t".repeat(70)));
        assert_eq!(a.len(), MAX_IDENT);
        assert_ne!(a, b);
        assert_eq!(short_name("items_pkey"), "items_pkey");
    }

    #[test]
    fn identifiers_are_replaced_outside_strings() {
        assert_eq!(
            replace_ident("char_length(a) <= 3 AND a_b LIKE 'a'", "a", "z"),
            "char_length(z) <= 3 AND a_b LIKE 'a'"
        );
    }

    #[test]
    fn slugs_name_the_change() {
        let s = |table: &str, verb: &'static str, object: &str| Step {
            table: table.into(),
            verb,
            object: object.into(),
        };
        assert_eq!(
            slug(&[
                s("products", "add", "colour"),
                s("products", "constraints", "")
            ]),
            "products_add_colour"
        );
        assert_eq!(
            slug(&[s("products", "add", "colour"), s("products", "add", "size")]),
            "products_add_colour_size"
        );
        assert_eq!(
            slug(&[s("tags", "create", ""), s("items", "drop", "note")]),
            "create_tags_and_items_drop_note"
        );
        assert_eq!(slug(&[s("items", "constraints", "")]), "items_constraints");
        let many: Vec<Step> = (0..9)
            .map(|i| s(&format!("table{i}"), "create", ""))
            .collect();
        assert!(slug(&many).ends_with("_and_more"), "{}", slug(&many));
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
