//! Generation against the spec lock: safe spec evolution.
//!
//! The lock is applied to the freshly lowered IR (proto numbers pinned by name, removed
//! ones reserved, event schema versions counted, port slots pinned by deployable name),
//! so every emitter sees the pinned numbers and ports. The new spec is then compared
//! with the lock for what breaks clients or data, and each database gets one new
//! migration from the schema its existing migrations produce to the one the spec
//! describes. Existing migrations are history: never regenerated, only listed with
//! their checksum.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use crate::diag::{Diagnostic, SpecErrors};
use crate::emit::sql::{self, MigrationError};
use crate::emit::sqlite;
use crate::emit::{EmitError, GeneratedFile};
use crate::ir::*;
use crate::layout;
use crate::lock::{self, Lock, LockedField, LockedMessage, LockedMigration};
use crate::names;

/// Everything one generation produces; the caller writes it.
#[derive(Debug, Clone)]
pub struct Generation {
    /// Files to write, sorted by path, relative to the output folder.
    pub files: Vec<GeneratedFile>,
    /// Applied migrations that must stay exactly as they are (never rewritten).
    pub preserved: Vec<Preserved>,
    /// The new lock, to write beside the spec.
    pub lock_text: String,
    /// What changed since the lock: breaking changes (accepted, or there would be no
    /// generation) and notes.
    pub report: Report,
    /// The lowered spec the files were emitted from.
    pub system: System,
}

/// A file of the output folder that generation keeps but does not write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preserved {
    pub path: String,
    /// Hex sha256 of its contents, as recorded in the lock.
    pub sha256: String,
}

/// What changed since the lock, each item at its spec position (for a removed item,
/// where it was).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub file: PathBuf,
    pub breaking: Vec<Change>,
    pub notes: Vec<Change>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub at: Option<Span>,
    pub message: String,
}

impl Report {
    pub fn is_empty(&self) -> bool {
        self.breaking.is_empty() && self.notes.is_empty()
    }

    fn breaking(&mut self, at: Option<Span>, message: impl Into<String>) {
        let c = Change {
            at,
            message: message.into(),
        };
        if !self.breaking.contains(&c) {
            self.breaking.push(c);
        }
    }

    fn note(&mut self, at: Option<Span>, message: impl Into<String>) {
        self.notes.push(Change {
            at,
            message: message.into(),
        });
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (kind, list) in [("breaking", &self.breaking), ("note", &self.notes)] {
            for c in list {
                if !first {
                    writeln!(f)?;
                }
                first = false;
                match c.at {
                    Some(at) => write!(
                        f,
                        "{}:{}:{}: {kind}: {}",
                        self.file.display(),
                        at.line,
                        at.column,
                        c.message
                    )?,
                    None => write!(f, "{kind}: {}", c.message)?,
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("{0}")]
    Spec(#[from] SpecErrors),
    #[error("{path}: {message}")]
    Lock { path: PathBuf, message: String },
    /// Breaking changes that were not accepted; nothing was generated.
    #[error("{0}")]
    Breaking(Report),
    #[error(transparent)]
    Emit(#[from] EmitError),
}

/// The lock that belongs to a spec: same folder, same name, `.lock`.
pub fn lock_path(spec: &Path) -> PathBuf {
    spec.with_extension("lock")
}

/// Generates from `spec_text` (read from `spec`, used in messages) against its lock,
/// if there is one yet. Breaking changes stop generation unless `accept_breaking`.
pub fn generate(
    spec: &Path,
    spec_text: &str,
    lock_text: Option<&str>,
    accept_breaking: bool,
) -> Result<Generation, GenerateError> {
    let mut system = crate::load(spec, spec_text)?;
    let lock_file = lock_path(spec);
    let old = lock_text
        .map(Lock::parse)
        .transpose()
        .map_err(|message| GenerateError::Lock {
            path: lock_file.clone(),
            message,
        })?;
    let mut report = Report {
        file: spec.to_path_buf(),
        ..Report::default()
    };
    let mut errors = Vec::new();
    let mut history: BTreeMap<String, Vec<LockedMigration>> = BTreeMap::new();
    let mut sqlite_history: BTreeMap<String, Vec<LockedMigration>> = BTreeMap::new();
    let mut preserved = Vec::new();
    let mut migrations = Vec::new();
    if let Some(old) = &old {
        errors.extend(check_renames(old, &system, &lock_file));
        apply(&mut system, old);
        compare(old, &system, &mut report);
        for db in &system.databases {
            let Some(locked) = old.databases.get(&db.name) else {
                continue;
            };
            let tables = locked
                .tables
                .iter()
                .map(|t| t.to_table())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|message| GenerateError::Lock {
                    path: lock_file.clone(),
                    message: format!("database `{}`: {message}", db.name),
                })?;
            let mut list = locked.migrations.clone();
            preserved.extend(list.iter().map(|m| Preserved {
                path: format!("sql/{}/{}", db.name, m.file),
                sha256: m.sha256.clone(),
            }));
            let mut slist = locked.sqlite_migrations.clone();
            if slist.is_empty() {
                // A lock from before the SQLite dialect: its history starts at the schema
                // the lock records, numbered like the PostgreSQL one.
                for (i, m) in list.iter().enumerate() {
                    let contents = if i == 0 {
                        sqlite::init(db, &tables)?
                    } else {
                        sqlite::placeholder(db, &list[list.len() - 1].file)
                    };
                    slist.push(LockedMigration {
                        file: m.file.clone(),
                        sha256: lock::sha256(&contents),
                    });
                    migrations.push(GeneratedFile {
                        path: format!("sqlite/{}/{}", db.name, m.file),
                        contents,
                    });
                }
            } else {
                preserved.extend(slist.iter().map(|m| Preserved {
                    path: format!("sqlite/{}/{}", db.name, m.file),
                    sha256: m.sha256.clone(),
                }));
            }
            let number = list
                .iter()
                .filter_map(|m| m.file.get(..4)?.parse::<u32>().ok())
                .max()
                .unwrap_or(0)
                + 1;
            match sql::migration(db, &tables, number) {
                Ok(Some(m)) => {
                    let path = format!("sql/{}/{}", db.name, m.file);
                    report.note(None, format!("migration {path}: {}", m.changes.join(", ")));
                    for (table, column) in &m.drops {
                        let at = dropped_at(old, db, table, column.as_deref());
                        report.breaking(
                            at,
                            match column {
                                Some(c) => format!(
                                    "database `{}`: column `{table}.{c}` is dropped, with its data",
                                    db.name
                                ),
                                None => format!(
                                    "database `{}`: table `{table}` is dropped, with its data",
                                    db.name
                                ),
                            },
                        );
                    }
                    let contents = sqlite::migration(db, &tables, &m)?;
                    slist.push(LockedMigration {
                        file: m.file.clone(),
                        sha256: lock::sha256(&contents),
                    });
                    migrations.push(GeneratedFile {
                        path: format!("sqlite/{}/{}", db.name, m.file),
                        contents,
                    });
                    list.push(LockedMigration {
                        file: m.file.clone(),
                        sha256: lock::sha256(&m.contents),
                    });
                    migrations.push(GeneratedFile {
                        path,
                        contents: m.contents,
                    });
                }
                Ok(None) => {}
                Err(MigrationError::MissingDefaults(missing)) => {
                    errors.extend(missing.iter().map(|m| missing_default(&system, db, m)));
                }
                Err(MigrationError::Emit(e)) => return Err(e.into()),
            }
            history.insert(db.name.clone(), list);
            sqlite_history.insert(db.name.clone(), slist);
        }
    }
    errors.extend(pin_slots(&mut system, old.as_ref()));
    if !errors.is_empty() {
        let mut d = crate::diag::Diagnostics::default();
        for e in errors {
            d.error(e.span, e.message);
        }
        return Err(SpecErrors {
            file: spec.to_path_buf(),
            errors: d.into_sorted(),
        }
        .into());
    }
    if !report.breaking.is_empty() && !accept_breaking {
        return Err(GenerateError::Breaking(report));
    }

    let emitted = crate::emit::all(&system).map_err(|e| match e {
        EmitError::At { span, message } => GenerateError::Spec(SpecErrors {
            file: spec.to_path_buf(),
            errors: vec![crate::diag::Diagnostic { span, message }],
        }),
        other => other.into(),
    })?;
    let mut files: Vec<GeneratedFile> = emitted
        .into_iter()
        .filter(|f| {
            // A database with history gets new migrations only, never a fresh init.
            !history.keys().any(|db| {
                f.path.starts_with(&format!("sql/{db}/"))
                    || f.path.starts_with(&format!("sqlite/{db}/"))
            })
        })
        .collect();
    for db in &system.databases {
        if !history.contains_key(&db.name) {
            let prefix = format!("sql/{}/", db.name);
            let list = files
                .iter()
                .filter_map(|f| {
                    f.path.strip_prefix(&prefix).map(|file| LockedMigration {
                        file: file.to_string(),
                        sha256: lock::sha256(&f.contents),
                    })
                })
                .collect();
            history.insert(db.name.clone(), list);
            let prefix = format!("sqlite/{}/", db.name);
            let list = files
                .iter()
                .filter_map(|f| {
                    f.path.strip_prefix(&prefix).map(|file| LockedMigration {
                        file: file.to_string(),
                        sha256: lock::sha256(&f.contents),
                    })
                })
                .collect();
            sqlite_history.insert(db.name.clone(), list);
        }
    }
    files.extend(migrations);
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let mut lock = Lock::of(&system, &history, &sqlite_history);
    if let Some(old) = &old {
        lock.retire_deployables(old);
    }
    let lock_text = lock.render();
    Ok(Generation {
        files,
        preserved,
        lock_text,
        report,
        system,
    })
}

// ---------------------------------------------------------------------- applying the lock

/// Pins every proto number the lock knows, reserves the ones that are gone, orders
/// fields by number and counts event schema versions.
fn apply(system: &mut System, lock: &Lock) {
    for svc in &mut system.services {
        let package = lock.proto.get(&svc.proto.package);
        for m in &mut svc.proto.messages {
            if let Some(locked) = package.and_then(|p| p.get(&m.name)) {
                pin(m, locked);
            }
        }
        let messages = svc.proto.messages.clone();
        let find = |name: &str| messages.iter().find(|m| m.name == name);
        for o in &mut svc.operations {
            if let Some(m) = find(&o.rpc.request) {
                follow(&mut o.input, m);
            }
        }
        let locked_events = lock.services.get(&svc.name).map(|s| &s.events);
        for e in &mut svc.events {
            if let Some(m) = find(&e.name) {
                follow(&mut e.fields, m);
            }
            if let Some(locked) = locked_events.and_then(|l| l.get(&e.name)) {
                version(e, &locked.versions);
            }
        }
    }
    for i in 0..system.entities.len() {
        let name = system.entities[i].name.clone();
        let message = system
            .services
            .iter()
            .filter(|s| s.entity == name)
            .chain(&system.services)
            .find_map(|s| s.proto.messages.iter().find(|m| m.name == name))
            .cloned();
        if let Some(m) = message {
            follow(&mut system.entities[i].fields, &m);
        }
    }
    // Tables follow the entities' (now pinned) field order.
    layout::derive(system);
    // So do GraphQL object fields. What could fail here failed in lowering already.
    let _ = crate::graphql_model::derive(system);
}

/// Gives every deployable the port slot the lock pins to its name; a new one gets the
/// highest slot ever used + 1, so no port changes hands. Without a lock (or a lock from
/// before slots), slots follow deployable order, as layout assigned them.
fn pin_slots(system: &mut System, lock: Option<&Lock>) -> Vec<Diagnostic> {
    let mut next = lock
        .and_then(Lock::max_slot)
        .map_or(0, |s| u32::from(s) + 1);
    let mut errors = Vec::new();
    for i in 0..system.deployables.len() {
        let name = &system.deployables[i].name;
        let slot = match lock.and_then(|l| l.deployables.get(name)) {
            Some(l) => u32::from(l.slot),
            None => {
                next += 1;
                next - 1
            }
        };
        match u16::try_from(slot)
            .ok()
            .filter(|s| *s < layout::LOCAL_SLOTS)
        {
            Some(slot) => {
                let d = &mut system.deployables[i];
                d.slot = slot;
                d.local = layout::local_ports(slot);
            }
            None => errors.push(slot_error(system, &system.deployables[i], slot)),
        }
    }
    errors
}

fn slot_error(system: &System, d: &Deployable, slot: u32) -> Diagnostic {
    let span = system
        .services
        .iter()
        .find(|s| s.name == d.service)
        .map_or(Span { line: 1, column: 1 }, |s| s.span);
    Diagnostic {
        span,
        message: format!(
            "deployable `{}` would get port slot {slot}, but there are {} local port slots: the lock keeps every slot ever used",
            d.name,
            layout::LOCAL_SLOTS
        ),
    }
}

/// Whether a field of proto type `old` may keep its number as `new` (same encoding).
fn wire_compatible(old: &str, new: &ProtoType) -> bool {
    let new = new.proto_name();
    old == new || (old == "int32" && new == "int64")
}

fn pin(m: &mut Message, locked: &LockedMessage) {
    let names: Vec<String> = m
        .fields
        .iter()
        .chain(m.oneof.iter().flat_map(|(_, f)| f))
        .map(|f| f.name.clone())
        .collect();
    let mut fields: Vec<&mut MessageField> = m
        .fields
        .iter_mut()
        .chain(m.oneof.iter_mut().flat_map(|(_, f)| f.iter_mut()))
        .collect();
    let mut used: Vec<u32> = Vec::new();
    let mut pending = Vec::new();
    for (i, f) in fields.iter_mut().enumerate() {
        match locked.fields.get(&f.name) {
            Some(l) if wire_compatible(&l.ty, &f.ty) => {
                f.number = l.number;
                used.push(l.number);
            }
            _ => pending.push(i),
        }
    }
    let mut fresh = Vec::new();
    for i in pending {
        let f = &mut fields[i];
        let previous = f
            .renamed_from
            .as_ref()
            .filter(|old| !names.contains(old))
            .and_then(|old| locked.fields.get(old))
            .filter(|l| wire_compatible(&l.ty, &f.ty) && !used.contains(&l.number));
        match previous {
            Some(l) => {
                f.number = l.number;
                used.push(l.number);
            }
            None => fresh.push(i),
        }
    }
    // Never reuse a number, not even one reserved long ago.
    for (number, i) in (locked.max_number() + 1..).zip(fresh) {
        fields[i].number = number;
    }
    let mut reserved = locked.reserved.clone();
    reserved.extend(
        locked
            .fields
            .values()
            .map(|l| l.number)
            .filter(|n| !used.contains(n)),
    );
    reserved.sort_unstable();
    reserved.dedup();
    let mut reserved_names = locked.reserved_names.clone();
    reserved_names.extend(locked.fields.keys().cloned());
    reserved_names.retain(|n| !names.contains(n));
    reserved_names.sort();
    reserved_names.dedup();
    m.reserved_numbers = reserved;
    m.reserved_names = reserved_names;
    m.fields.sort_by_key(|f| f.number);
    if let Some((_, members)) = &mut m.oneof {
        members.sort_by_key(|f| f.number);
    }
}

/// Gives IR fields the numbers of the message built from them, and their order.
fn follow(fields: &mut [Field], m: &Message) {
    for f in fields.iter_mut() {
        if let Some(mf) = m.fields.iter().find(|x| x.name == f.name) {
            f.number = mf.number;
        }
    }
    fields.sort_by_key(|f| f.number);
}

fn shape(fields: &[(String, FieldType, bool)]) -> BTreeMap<&str, (&'static str, bool)> {
    fields
        .iter()
        .map(|(n, t, o)| (n.as_str(), (t.class(), *o)))
        .collect()
}

/// The event's schema version: the lock's last one if the payload has the same shape,
/// else the next one, with the lock's versions as history.
fn version(e: &mut Event, versions: &[lock::LockedEventVersion]) {
    let Some(last) = versions.last() else { return };
    let history: Vec<EventSchema> = versions
        .iter()
        .map(|v| EventSchema {
            version: v.version,
            fields: v
                .fields
                .iter()
                .map(|(name, f)| EventSchemaField {
                    name: name.clone(),
                    ty: FieldType::from_spec_name(&f.ty).unwrap_or(FieldType::String),
                    optional: f.optional,
                    renamed_from: f.renamed_from.clone(),
                    default: f.default.clone(),
                })
                .collect(),
        })
        .collect();
    let current: Vec<(String, FieldType, bool)> = e
        .fields
        .iter()
        .map(|f| (f.name.clone(), f.ty.clone(), f.optional))
        .collect();
    let before: Vec<(String, FieldType, bool)> = history[history.len() - 1]
        .fields
        .iter()
        .map(|f| (f.name.clone(), f.ty.clone(), f.optional))
        .collect();
    if shape(&current) == shape(&before) {
        e.version = last.version;
        // What the step into this version needs stays known after the spec drops it.
        for f in &mut e.fields {
            if let Some(l) = last.fields.get(&f.name) {
                if f.renamed_from.is_none() {
                    f.renamed_from = l.renamed_from.clone();
                }
                if f.default.is_none() {
                    f.default = l.default.clone();
                }
            }
        }
        e.history = history[..history.len() - 1].to_vec();
    } else {
        e.version = last.version + 1;
        e.history = history;
    }
}

/// A `renamed_from` must name a field the lock knows, unless the rename is done.
fn check_renames(lock: &Lock, system: &System, lock_file: &Path) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for e in system.entities.iter().filter(|e| !e.is_abstract) {
        let Some(locked) = lock.entities.get(&e.name) else {
            continue;
        };
        for f in &e.fields {
            if let Some(old) = &f.renamed_from
                && !locked.fields.contains_key(&f.name)
                && !locked.fields.contains_key(old)
            {
                out.push(Diagnostic {
                    span: f.span,
                    message: format!(
                        "`{}` is `renamed_from: {old}`, but `{}` had no field `{old}` in {}: name the field this one replaces, or remove `renamed_from`",
                        f.name,
                        e.name,
                        lock_file.display()
                    ),
                });
            }
        }
    }
    out
}

fn missing_default(system: &System, db: &Database, m: &sql::MissingDefault) -> Diagnostic {
    let entity = stored_in(system, &m.table);
    let span = entity
        .and_then(|e| e.field(&m.column).map(|f| f.span).or(Some(e.span)))
        .or_else(|| {
            system
                .services
                .iter()
                .find(|s| s.name == db.service)
                .map(|s| s.span)
        })
        .unwrap_or_default();
    let what = match entity {
        Some(e) => format!("field `{}` of `{}`", m.column, e.name),
        None => format!("column `{}.{}`", m.table, m.column),
    };
    let message = if m.became_required {
        format!(
            "{what} becomes required, but rows of table `{}` in database `{}` may have no value: give it `default: <value>`",
            m.table, db.name
        )
    } else {
        format!(
            "{what} is new and required, but table `{}` already exists in database `{}` and its rows would have no value: give it `default: <value>` or make it `optional: true`",
            m.table, db.name
        )
    };
    Diagnostic { span, message }
}

/// The entity whose rows `table` holds.
fn stored_in<'a>(system: &'a System, table: &str) -> Option<&'a Entity> {
    system
        .entities
        .iter()
        .find(|e| !e.is_abstract && names::plural(&names::snake(&e.name)) == table)
}

fn dropped_at(lock: &Lock, db: &Database, table: &str, column: Option<&str>) -> Option<Span> {
    let entity = lock
        .entities
        .iter()
        .find(|(name, _)| names::plural(&names::snake(name)) == table)
        .map(|(_, e)| e);
    entity
        .and_then(|e| column.and_then(|c| e.fields.get(c)).and_then(|f| f.at))
        .map(|a| a.0)
        .or(entity.map(|e| e.at.0))
        .or(lock.services.get(&db.service).map(|s| s.at.0))
}

// ---------------------------------------------------------------------- the report

/// Whether clients of a field typed `old` keep working when it becomes `new`.
fn same_type(old: &FieldType, new: &FieldType) -> bool {
    use FieldType::*;
    old == new
        || matches!(
            (old, new),
            (String | Text, String | Text)
                | (Email, String | Text)
                | (Uuid, Ref(_))
                | (Ref(_), Uuid)
        )
}

/// What a field accepts that it did not before, in words; empty when nothing tightens.
fn tightenings(
    old: &LockedField,
    old_ty: &FieldType,
    new_ty: &FieldType,
    optional: bool,
    c: &Constraints,
) -> Vec<String> {
    let mut out = Vec::new();
    if old.optional && !optional {
        out.push("becomes required".to_string());
    }
    if *new_ty == FieldType::Email && matches!(old_ty, FieldType::String | FieldType::Text) {
        out.push("must now be an email address".to_string());
    }
    let show = |v: Option<i64>| v.map_or("none".to_string(), |v| v.to_string());
    let up = |o: Option<i64>, n: Option<i64>| n.is_some_and(|n| o.is_none_or(|o| n > o));
    let down = |o: Option<i64>, n: Option<i64>| n.is_some_and(|n| o.is_none_or(|o| n < o));
    let len = |v: Option<u32>| v.map(i64::from);
    for (key, o, n, tighter) in [
        (
            "min_len",
            len(old.min_len),
            len(c.min_len),
            up(len(old.min_len), len(c.min_len)),
        ),
        (
            "max_len",
            len(old.max_len),
            len(c.max_len),
            down(len(old.max_len), len(c.max_len)),
        ),
        ("min", old.min, c.min, up(old.min, c.min)),
        ("max", old.max, c.max, down(old.max, c.max)),
    ] {
        if tighter {
            out.push(format!("`{key}` {} -> {}", show(o), show(n)));
        }
    }
    if old.one_of.is_empty() && !c.one_of.is_empty() {
        out.push(format!("`one_of` added: only {:?} pass", c.one_of));
    } else if !c.one_of.is_empty() {
        for v in old.one_of.iter().filter(|v| !c.one_of.contains(v)) {
            out.push(format!("`one_of` no longer accepts `{v}`"));
        }
    }
    out
}

/// Compares the new spec (lowered, lock applied) with the lock.
fn compare(lock: &Lock, system: &System, report: &mut Report) {
    // Fields already reported at their entity: operations that carry them stay quiet.
    let mut covered: HashSet<String> = HashSet::new();
    for (name, locked) in &lock.entities {
        let Some(e) = system
            .entities
            .iter()
            .find(|e| &e.name == name && !e.is_abstract)
        else {
            report.breaking(
                Some(locked.at.0),
                format!("entity `{name}` was removed: its messages, GraphQL type and table go, and clients that use them break"),
            );
            covered.extend(locked.fields.keys().cloned());
            continue;
        };
        for (fname, lf) in &locked.fields {
            let old_ty = FieldType::from_spec_name(&lf.ty).unwrap_or(FieldType::String);
            let Some(f) = e.field(fname) else {
                covered.insert(fname.clone());
                match e.fields.iter().find(|f| f.renamed_from.as_ref() == Some(fname)) {
                    Some(f) if !locked.fields.contains_key(&f.name) => {
                        covered.insert(f.name.clone());
                        report.breaking(
                            Some(f.span),
                            format!(
                                "field `{fname}` of `{name}` is renamed to `{}`: its proto number and column stay, but GraphQL and JSON clients that use the old name break",
                                f.name
                            ),
                        );
                    }
                    _ => report.breaking(
                        lf.at.map(|a| a.0),
                        format!(
                            "field `{fname}` of `{name}` was removed: clients that send or read it break, and its proto number becomes reserved"
                        ),
                    ),
                }
                continue;
            };
            if !same_type(&old_ty, &f.ty) {
                covered.insert(fname.clone());
                report.breaking(
                    Some(f.span),
                    format!(
                        "field `{fname}` of `{name}` changes type from {} to {}: clients and stored values of the old type break",
                        old_ty.spec_name(),
                        f.ty.spec_name()
                    ),
                );
                continue;
            }
            let t = tightenings(lf, &old_ty, &f.ty, f.optional, &f.constraints);
            if !t.is_empty() {
                covered.insert(fname.clone());
                // Clients never send a readonly field; the rows already stored may fail.
                let who = if f.readonly {
                    "values already stored may fail the new check"
                } else {
                    "values clients send today may be refused"
                };
                report.breaking(
                    Some(f.span),
                    format!("field `{fname}` of `{name}` {}: {who}", t.join(", ")),
                );
            }
        }
        for (rname, lr) in &locked.relations {
            if !e.relations.iter().any(|r| &r.name == rname) {
                covered.insert(rname.clone());
                report.breaking(
                    Some(lr.at.0),
                    format!(
                        "relation `{rname}` of `{name}` was removed: clients that read it break"
                    ),
                );
            }
        }
    }

    let mut removed_ops = HashSet::new();
    for (sname, ls) in &lock.services {
        let Some(s) = system.services.iter().find(|s| &s.name == sname) else {
            report.breaking(
                Some(ls.at.0),
                format!("service `{sname}` was removed: its API, its events and its database go"),
            );
            removed_ops.extend(ls.operations.keys().cloned());
            continue;
        };
        if s.pattern.as_str() != ls.pattern {
            report.breaking(
                Some(s.span),
                format!(
                    "service `{sname}` changes pattern from {} to {}: its API, storage and processes change",
                    ls.pattern,
                    s.pattern.as_str()
                ),
            );
        }
        for (op, lo) in &ls.operations {
            let Some(o) = s.operation(op) else {
                removed_ops.insert(op.clone());
                report.breaking(
                    Some(lo.at.0),
                    format!("operation `{op}` of service `{sname}` was removed: clients that call it break"),
                );
                continue;
            };
            let kind = format!("{:?}", o.kind).to_lowercase();
            if kind != lo.kind {
                report.breaking(
                    Some(o.span),
                    format!(
                        "operation `{op}` changes kind from {} to {kind}: its request and response change",
                        lo.kind
                    ),
                );
                continue;
            }
            let request = s.proto.messages.iter().find(|m| m.name == o.rpc.request);
            let now: Vec<(String, LockedField, Option<&Check>)> = request
                .map(|m| {
                    m.fields
                        .iter()
                        .map(|f| (f.name.clone(), lock::input_field(f), f.check.as_ref()))
                        .collect()
                })
                .unwrap_or_default();
            for (iname, li) in &lo.input {
                if covered.contains(iname) {
                    continue;
                }
                let Some((_, ni, check)) = now.iter().find(|(n, ..)| n == iname) else {
                    report.breaking(
                        Some(o.span),
                        format!("operation `{op}` no longer takes input `{iname}`: GraphQL clients that send it break"),
                    );
                    continue;
                };
                let (Some(old_ty), Some(new_ty)) = (
                    FieldType::from_spec_name(&li.ty),
                    check.map(|c| c.ty.clone()),
                ) else {
                    continue;
                };
                if !same_type(&old_ty, &new_ty) {
                    report.breaking(
                        Some(o.span),
                        format!(
                            "input `{iname}` of `{op}` changes type from {} to {}: clients that send the old type break",
                            old_ty.spec_name(),
                            new_ty.spec_name()
                        ),
                    );
                    continue;
                }
                let t = tightenings(li, &old_ty, &new_ty, ni.optional, &ni.constraints());
                if !t.is_empty() {
                    report.breaking(
                        Some(o.span),
                        format!(
                            "input `{iname}` of `{op}` {}: values clients send today may be refused",
                            t.join(", ")
                        ),
                    );
                }
            }
            for (iname, ni, _) in &now {
                if lo.input.contains_key(iname) || ni.optional || covered.contains(iname) {
                    continue;
                }
                let at = o
                    .input
                    .iter()
                    .find(|f| &f.name == iname)
                    .map(|f| f.span)
                    .or_else(|| entity_field_span(system, &s.entity, iname))
                    .unwrap_or(o.span);
                report.breaking(
                    Some(at),
                    format!(
                        "operation `{op}` now requires input `{iname}`: clients that do not send it break (an `optional: true` field would not)"
                    ),
                );
            }
        }
        let agg = &s.entity;
        for (ev, le) in &ls.events {
            match s.events.iter().find(|e| &e.name == ev) {
                None => report.breaking(
                    Some(le.at.0),
                    format!("event `{ev}` of service `{sname}` was removed: subscribers break, and stored events of this type can no longer be read"),
                ),
                Some(e) if le.versions.last().is_some_and(|v| v.version < e.version) => {
                    let step = format!("{}_v{}", names::snake(ev), e.version - 1);
                    report.note(
                        Some(e.span),
                        format!(
                            "event `{ev}` of service `{sname}` has a new payload: schema version {}; stored events of version {} are read through `{agg}Upcaster::{step}`",
                            e.version,
                            e.version - 1
                        ),
                    );
                }
                Some(_) => {}
            }
        }
    }
    for (key, locked, now) in [
        ("queries", &lock.graphql.queries, &system.bff.queries),
        ("mutations", &lock.graphql.mutations, &system.bff.mutations),
    ] {
        for (op, at) in locked {
            if !removed_ops.contains(op) && !now.iter().any(|b| &b.operation == op) {
                report.breaking(
                    Some(at.0),
                    format!("`{op}` is no longer in bff.graphql.{key}: GraphQL clients that use it break"),
                );
            }
        }
    }
}

/// Where `name` is declared among the fields of `entity` and of what it owns.
fn entity_field_span(system: &System, entity: &str, name: &str) -> Option<Span> {
    let mut todo = vec![entity.to_string()];
    while let Some(n) = todo.pop() {
        let e = system.entities.iter().find(|e| e.name == n)?;
        if let Some(f) = e.field(name) {
            return Some(f.span);
        }
        todo.extend(
            e.relations
                .iter()
                .filter(|r| r.owned)
                .map(|r| r.target.clone()),
        );
    }
    None
}
