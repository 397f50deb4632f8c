//! The store every generated `crud` service runs on: one table per entity (plus the
//! tables of what it owns), written once over [`crate::sql`] for both dialects.
//!
//! Generated code supplies the mapping ([`Record`], [`Child`]: table, columns, row ↔
//! message) and the spec's list shape ([`Sort`]); everything else (statements, keyset
//! paging with typed tokens, owned children, constraint errors) lives here once.

use std::collections::HashMap;

use base64::Engine;
use chrono::{DateTime, SubsecRound, Utc};
use prost_types::Timestamp;
use uuid::Uuid;

use crate::ServiceError;
use crate::sql::{self, Arg, Executor, Row, ViolationKind};

/// A message stored as one row of [`Record::TABLE`].
pub trait Record: Sized + Send + Sync {
    const TABLE: &'static str;
    /// The columns this record maps, in [`Record::to_args`] order. For a [`Child`]:
    /// without the parent's key column.
    const COLUMNS: &'static [&'static str];
    /// Unique constraints of the table, for errors that name the fields.
    const UNIQUE: &'static [Unique] = &[];
    fn from_row(row: &Row) -> Result<Self, sql::Error>;
    fn to_args(&self) -> Result<Vec<Arg>, ServiceError>;
}

/// A record owned by another: its rows carry the owner's id in [`Child::PARENT`].
pub trait Child: Record {
    const PARENT: &'static str;
    /// The order the children of one owner are listed in.
    const ORDER: &'static [Sort];
}

/// A generated unique constraint and the spec fields it covers.
#[derive(Debug, Clone, Copy)]
pub struct Unique {
    pub name: &'static str,
    pub columns: &'static [&'static str],
}

/// One column of a list's stable order.
#[derive(Debug, Clone, Copy)]
pub struct Sort {
    pub column: &'static str,
    pub descending: bool,
}

/// Now, truncated to what both dialects keep (microseconds), so that what a write
/// answers equals what a later read returns.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

pub fn timestamp(t: &DateTime<Utc>) -> Option<Timestamp> {
    Some(crate::utc_to_timestamp(t))
}

/// A message's UUID field as a UUID (requests are validated first; this is the guard).
pub fn uuid(field: &str, s: &str) -> Result<Uuid, ServiceError> {
    Uuid::parse_str(s).map_err(|_| ServiceError::invalid(field, "must be a UUID"))
}

pub fn opt_uuid(field: &str, s: &Option<String>) -> Result<Option<Uuid>, ServiceError> {
    s.as_deref().map(|s| uuid(field, s)).transpose()
}

pub fn time(field: &str, t: &Option<Timestamp>) -> Result<Option<DateTime<Utc>>, ServiceError> {
    t.as_ref()
        .map(|t| {
            crate::timestamp_to_utc(t)
                .ok_or_else(|| ServiceError::invalid(field, "is not a valid instant"))
        })
        .transpose()
}

pub fn required_time(field: &str, t: &Option<Timestamp>) -> Result<DateTime<Utc>, ServiceError> {
    time(field, t)?.ok_or_else(|| ServiceError::invalid(field, "is required"))
}

fn order_clause(order: &[Sort]) -> String {
    order
        .iter()
        .map(|s| format!("{}{}", s.column, if s.descending { " DESC" } else { "" }))
        .collect::<Vec<_>>()
        .join(", ")
}

fn columns(r: &[&str]) -> String {
    r.join(", ")
}

fn read_all<R: Record>(rows: &[Row]) -> Result<Vec<R>, ServiceError> {
    rows.iter()
        .map(R::from_row)
        .collect::<Result<_, _>>()
        .map_err(read_error)
}

fn read_error(e: sql::Error) -> ServiceError {
    ServiceError::Internal(format!("reading a stored row: {e}"))
}

/// A failed write as the caller's error when a constraint refused it.
pub fn write_error<R: Record>(e: sql::Error) -> ServiceError {
    if let Some(v) = sql::violation(&e)
        && v.kind == ViolationKind::Unique
        && let Some(u) = R::UNIQUE.iter().find(|u| v.is(u.name, R::TABLE, u.columns))
    {
        return ServiceError::AlreadyExists(format!(
            "{} with this {} already exists",
            R::TABLE,
            u.columns.join(" and ")
        ));
    }
    crate::db::error(e)
}

pub async fn get<'a, R: Record>(
    on: impl Executor<'a>,
    id: Uuid,
) -> Result<Option<R>, ServiceError> {
    let sql = format!(
        "SELECT {} FROM {} WHERE id = $1",
        columns(R::COLUMNS),
        R::TABLE
    );
    let row = sql::query(sql)
        .bind(id)
        .fetch_optional(on)
        .await
        .map_err(crate::db::error)?;
    row.as_ref()
        .map(R::from_row)
        .transpose()
        .map_err(read_error)
}

/// The rows of `ids` that exist (each once, in no particular order); more than `max`
/// ids is the caller's error.
pub async fn get_many<R: Record>(
    db: &sql::Db,
    ids: &[String],
    max: usize,
) -> Result<Vec<R>, ServiceError> {
    if ids.len() > max {
        return Err(ServiceError::invalid(
            "ids",
            format!("at most {max} ids in one call, got {}", ids.len()),
        ));
    }
    let mut unique: Vec<Uuid> = ids
        .iter()
        .map(|id| uuid("ids", id))
        .collect::<Result<_, _>>()?;
    unique.sort_unstable();
    unique.dedup();
    if unique.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT {} FROM {} WHERE id IN ({})",
        columns(R::COLUMNS),
        R::TABLE,
        sql::placeholders(1, unique.len())
    );
    let rows = sql::query(sql)
        .bind_all(unique.into_iter().map(Arg::from))
        .fetch_all(db)
        .await
        .map_err(crate::db::error)?;
    read_all(&rows)
}

/// The id of a created row: derived from the idempotency key (so that a retry finds the
/// row its first attempt created), else a new UUIDv7.
pub fn new_id(scope: &str, key: Option<&str>) -> Uuid {
    match key {
        Some(key) => crate::idempotency::derived_id(scope, key),
        None => Uuid::now_v7(),
    }
}

pub async fn insert<'a, R: Record>(on: impl Executor<'a>, record: &R) -> Result<(), ServiceError> {
    let sql = format!(
        "INSERT INTO {} ({}) VALUES ({})",
        R::TABLE,
        columns(R::COLUMNS),
        sql::placeholders(1, R::COLUMNS.len())
    );
    sql::query(sql)
        .bind_all(record.to_args()?)
        .execute(on)
        .await
        .map_err(write_error::<R>)?;
    Ok(())
}

/// Sets `set` (column, value) on the row `id`; whether it existed.
pub async fn update<'a, R: Record>(
    on: impl Executor<'a>,
    id: Uuid,
    set: Vec<(&'static str, Arg)>,
) -> Result<bool, ServiceError> {
    if set.is_empty() {
        return Ok(get::<R>(on, id).await?.is_some());
    }
    let assignments: Vec<String> = set
        .iter()
        .enumerate()
        .map(|(i, (c, _))| format!("{c} = ${}", i + 2))
        .collect();
    let sql = format!(
        "UPDATE {} SET {} WHERE id = $1",
        R::TABLE,
        assignments.join(", ")
    );
    let changed = sql::query(sql)
        .bind(id)
        .bind_all(set.into_iter().map(|(_, a)| a))
        .execute(on)
        .await
        .map_err(write_error::<R>)?;
    Ok(changed > 0)
}

/// Deletes the row `id` (owned rows go with it: their foreign keys cascade).
pub async fn delete<'a, R: Record>(on: impl Executor<'a>, id: Uuid) -> Result<bool, ServiceError> {
    let sql = format!("DELETE FROM {} WHERE id = $1", R::TABLE);
    let deleted = sql::query(sql)
        .bind(id)
        .execute(on)
        .await
        .map_err(crate::db::error)?;
    Ok(deleted > 0)
}

/// The children of each of `parents`, in key order.
pub async fn children<'a, C: Child>(
    on: impl Executor<'a>,
    parents: &[Uuid],
) -> Result<HashMap<Uuid, Vec<C>>, ServiceError> {
    let mut out: HashMap<Uuid, Vec<C>> = HashMap::new();
    if parents.is_empty() {
        return Ok(out);
    }
    let sql = format!(
        "SELECT {parent}, {cols} FROM {table} WHERE {parent} IN ({ids}) ORDER BY {parent}, {order}",
        parent = C::PARENT,
        cols = columns(C::COLUMNS),
        table = C::TABLE,
        ids = sql::placeholders(1, parents.len()),
        order = order_clause(C::ORDER),
    );
    let rows = sql::query(sql)
        .bind_all(parents.iter().map(Arg::from))
        .fetch_all(on)
        .await
        .map_err(crate::db::error)?;
    for row in &rows {
        let parent = row.uuid(C::PARENT).map_err(read_error)?;
        let child = C::from_row(row).map_err(read_error)?;
        out.entry(parent).or_default().push(child);
    }
    Ok(out)
}

/// Inserts `items` under `parent`, in statements of at most a few hundred rows (SQLite
/// caps the parameters of one statement).
pub async fn insert_children<C: Child>(
    tx: &mut sql::Tx,
    parent: Uuid,
    items: &[C],
) -> Result<(), ServiceError> {
    let width = C::COLUMNS.len() + 1;
    for chunk in items.chunks((900 / width).max(1)) {
        let rows: Vec<String> = (0..chunk.len())
            .map(|i| format!("({})", sql::placeholders(i * width + 1, width)))
            .collect();
        let sql = format!(
            "INSERT INTO {} ({}, {}) VALUES {}",
            C::TABLE,
            C::PARENT,
            columns(C::COLUMNS),
            rows.join(", ")
        );
        let mut args = Vec::with_capacity(chunk.len() * width);
        for item in chunk {
            args.push(Arg::from(parent));
            args.extend(item.to_args()?);
        }
        sql::query(sql)
            .bind_all(args)
            .execute(&mut *tx)
            .await
            .map_err(write_error::<C>)?;
    }
    Ok(())
}

pub async fn delete_children<C: Child>(tx: &mut sql::Tx, parent: Uuid) -> Result<(), ServiceError> {
    let sql = format!("DELETE FROM {} WHERE {} = $1", C::TABLE, C::PARENT);
    sql::query(sql)
        .bind(parent)
        .execute(&mut *tx)
        .await
        .map_err(crate::db::error)?;
    Ok(())
}

/// What a list request asks for, already validated against the spec.
pub struct ListRequest<'s> {
    /// Equality filters that were given: column and value.
    pub filters: Vec<(&'static str, Arg)>,
    pub order: &'s [Sort],
    /// 0: `default_size`.
    pub page_size: i32,
    pub default_size: u32,
    pub page_token: &'s str,
}

/// One page in the list's order, and the token of the next one ("" on the last page).
pub async fn list<R: Record>(
    db: &sql::Db,
    req: ListRequest<'_>,
) -> Result<(Vec<R>, String), ServiceError> {
    let limit = match req.page_size {
        n if n > 0 => i64::from(n),
        _ => i64::from(req.default_size.max(1)),
    };
    let after = decode_token(req.page_token, req.order)?;
    let mut args: Vec<Arg> = Vec::new();
    let mut conditions: Vec<String> = Vec::new();
    for (column, value) in req.filters {
        args.push(value);
        conditions.push(format!("{column} = ${}", args.len()));
    }
    if let Some(after) = after {
        conditions.push(keyset_condition(req.order, after, &mut args));
    }
    args.push(Arg::from(limit + 1));
    let sql = format!(
        "SELECT {} FROM {}{} ORDER BY {} LIMIT ${}",
        columns(R::COLUMNS),
        R::TABLE,
        if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        },
        order_clause(req.order),
        args.len()
    );
    let rows = sql::query(sql)
        .bind_all(args)
        .fetch_all(db)
        .await
        .map_err(crate::db::error)?;
    let mut items: Vec<R> = read_all(&rows)?;
    // One row more than asked tells whether another page follows.
    let more = items.len() as i64 > limit;
    items.truncate(limit as usize);
    let next = match (more, items.last()) {
        (true, Some(last)) => encode_token::<R>(last, req.order)?,
        _ => String::new(),
    };
    Ok((items, next))
}

/// Rows after `after` in the order `order`, which may mix directions:
/// `(a > $1) OR (a = $2 AND b > $3) OR …`.
fn keyset_condition(order: &[Sort], after: Vec<Arg>, args: &mut Vec<Arg>) -> String {
    let mut disjuncts = Vec::new();
    for (i, sort) in order.iter().enumerate() {
        let mut parts = Vec::new();
        for (prev, value) in order[..i].iter().zip(&after) {
            args.push(value.clone());
            parts.push(format!("{} = ${}", prev.column, args.len()));
        }
        args.push(after[i].clone());
        let op = if sort.descending { "<" } else { ">" };
        parts.push(format!("{} {op} ${}", sort.column, args.len()));
        disjuncts.push(format!("({})", parts.join(" AND ")));
    }
    format!("({})", disjuncts.join(" OR "))
}

const TOKEN_BAD: &str = "is not a token this list issued";

/// The sort values of `last`, typed as their columns are, with the columns named so that
/// a token of another list (or another order) is refused.
fn encode_token<R: Record>(last: &R, order: &[Sort]) -> Result<String, ServiceError> {
    let args = last.to_args()?;
    let mut values = Vec::with_capacity(order.len());
    for s in order {
        let i = R::COLUMNS
            .iter()
            .position(|c| *c == s.column)
            .ok_or_else(|| {
                ServiceError::Internal(format!("sort column {} is not mapped", s.column))
            })?;
        values.push(token_value(&args[i]));
    }
    let token = serde_json::json!({
        "k": order.iter().map(|s| s.column).collect::<Vec<_>>(),
        "v": values,
    });
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token.to_string()))
}

fn token_value(a: &Arg) -> serde_json::Value {
    use serde_json::Value as J;
    match a {
        Arg::Uuid(v) => v.map_or(J::Null, |u| J::from(format!("u:{u}"))),
        Arg::I64(v) => v.map_or(J::Null, |n| J::from(format!("l:{n}"))),
        Arg::I32(v) => v.map_or(J::Null, |n| J::from(format!("i:{n}"))),
        Arg::Bool(v) => v.map_or(J::Null, |b| J::from(format!("b:{b}"))),
        Arg::Text(v) => v.as_ref().map_or(J::Null, |s| J::from(format!("s:{s}"))),
        Arg::Time(v) => v.map_or(J::Null, |t| J::from(format!("t:{}", sql::sqlite_time(&t)))),
        Arg::Bytes(_) | Arg::Json(_) => J::Null,
    }
}

fn arg_of_token(v: &serde_json::Value) -> Option<Arg> {
    let s = v.as_str()?;
    let (tag, rest) = s.split_once(':')?;
    Some(match tag {
        "u" => Arg::from(Uuid::parse_str(rest).ok()?),
        "l" => Arg::from(rest.parse::<i64>().ok()?),
        "i" => Arg::from(rest.parse::<i32>().ok()?),
        "b" => Arg::from(rest.parse::<bool>().ok()?),
        "s" => Arg::from(rest.to_string()),
        "t" => Arg::from(DateTime::parse_from_rfc3339(rest).ok()?.with_timezone(&Utc)),
        _ => return None,
    })
}

fn decode_token(token: &str, order: &[Sort]) -> Result<Option<Vec<Arg>>, ServiceError> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || ServiceError::invalid("page_token", TOKEN_BAD);
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let json: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let keys = json["k"].as_array().ok_or_else(bad)?;
    let values = json["v"].as_array().ok_or_else(bad)?;
    let same_order = keys.len() == order.len()
        && keys
            .iter()
            .zip(order)
            .all(|(k, s)| k.as_str() == Some(s.column));
    if !same_order || values.len() != order.len() {
        return Err(bad());
    }
    values
        .iter()
        .map(|v| arg_of_token(v).ok_or_else(bad))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Item {
        id: Uuid,
        name: String,
        at: DateTime<Utc>,
    }

    impl Record for Item {
        const TABLE: &'static str = "items";
        const COLUMNS: &'static [&'static str] = &["id", "name", "at"];
        fn from_row(row: &Row) -> Result<Self, sql::Error> {
            Ok(Item {
                id: row.uuid("id")?,
                name: row.text("name")?,
                at: row.time("at")?,
            })
        }
        fn to_args(&self) -> Result<Vec<Arg>, ServiceError> {
            Ok(vec![
                Arg::from(self.id),
                Arg::from(&self.name),
                Arg::from(self.at),
            ])
        }
    }

    const ORDER: &[Sort] = &[
        Sort {
            column: "at",
            descending: true,
        },
        Sort {
            column: "id",
            descending: false,
        },
    ];

    #[test]
    fn tokens_round_trip_typed_and_refuse_other_lists() {
        let item = Item {
            id: Uuid::now_v7(),
            name: "Tea".into(),
            at: now(),
        };
        let token = encode_token(&item, ORDER).expect("encodes");
        let back = decode_token(&token, ORDER).expect("decodes").expect("some");
        assert_eq!(back, vec![Arg::from(item.at), Arg::from(item.id)]);
        let other = [Sort {
            column: "name",
            descending: false,
        }];
        assert!(decode_token(&token, &other).is_err());
        assert!(decode_token("%%%", ORDER).is_err());
        assert!(decode_token("bm9wZQ", ORDER).is_err());
        assert!(decode_token("", ORDER).expect("empty ok").is_none());
    }

    #[test]
    fn keyset_mixes_directions() {
        let mut args = Vec::new();
        let c = keyset_condition(
            ORDER,
            vec![Arg::from(now()), Arg::from(Uuid::nil())],
            &mut args,
        );
        assert_eq!(c, "((at < $1) OR (at = $2 AND id > $3))");
        assert_eq!(args.len(), 3);
    }

    #[tokio::test]
    async fn pages_in_mixed_order_on_sqlite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let db = sql::Db::connect(&url, &sql::ConnectOptions::default(), None)
            .await
            .expect("connect");
        sql::query(
            "CREATE TABLE items (id TEXT PRIMARY KEY, name TEXT NOT NULL, at TEXT NOT NULL)",
        )
        .execute(&db)
        .await
        .expect("create");
        let base = now();
        let mut ids = Vec::new();
        for i in 0..7i64 {
            // Two items share each instant, so the id breaks ties.
            let item = Item {
                id: Uuid::now_v7(),
                name: format!("n{i}"),
                at: base + chrono::Duration::seconds(i / 2),
            };
            ids.push((item.at, item.id));
            insert(&db, &item).await.expect("insert");
        }
        ids.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut seen = Vec::new();
        let mut token = String::new();
        loop {
            let (page, next): (Vec<Item>, String) = list(
                &db,
                ListRequest {
                    filters: Vec::new(),
                    order: ORDER,
                    page_size: 3,
                    default_size: 20,
                    page_token: &token,
                },
            )
            .await
            .expect("page");
            seen.extend(page.iter().map(|i| (i.at, i.id)));
            if next.is_empty() {
                break;
            }
            token = next;
        }
        assert_eq!(seen, ids);
    }
}
