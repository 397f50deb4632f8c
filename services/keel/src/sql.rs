//! One relational store API over PostgreSQL and SQLite, chosen by URL
//! (`postgres://…` or `sqlite://path/to/file.db`).
//!
//! Services write each statement once, in the subset both dialects share (`$1`
//! placeholders, `RETURNING`, `ON CONFLICT`, row values, `IN (…)` built with
//! [`placeholders`]); values are bound and read through [`Arg`] and [`Row`], which map
//! the spec's types onto each dialect the way the generated migrations declare them
//! (PostgreSQL: `uuid`, `timestamptz`, `jsonb`; SQLite: 36-char TEXT, RFC 3339 UTC TEXT
//! with microseconds, JSON TEXT). What only one dialect has (advisory locks) is a
//! method here with the equivalent guarantee on the other, never a fork in a service.

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Postgres, Row as _, Sqlite, Transaction};
use uuid::Uuid;

pub use sqlx::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Sqlite,
}

impl Dialect {
    /// The dialect a database URL names, or `None` for an unknown scheme.
    pub fn of_url(url: &str) -> Option<Dialect> {
        let scheme = url.split_once(':')?.0;
        match scheme {
            "postgres" | "postgresql" => Some(Dialect::Postgres),
            "sqlite" => Some(Dialect::Sqlite),
            _ => None,
        }
    }
}

/// A service's generated migrations, one directory per dialect.
#[derive(Clone, Copy)]
pub struct Migrations {
    pub postgres: &'static Migrator,
    pub sqlite: &'static Migrator,
}

/// A connection pool on either dialect.
#[derive(Clone, Debug)]
pub enum Db {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// Pool and start-up settings; the defaults suit a service.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub max_connections: u32,
    /// How long to wait for a PostgreSQL server that is still starting.
    pub startup_timeout: Duration,
}

impl ConnectOptions {
    /// A service's settings: pool size and how long to wait for the server at start.
    pub fn new(max_connections: u32, startup_timeout_secs: u64) -> ConnectOptions {
        ConnectOptions {
            max_connections,
            startup_timeout: Duration::from_secs(startup_timeout_secs),
        }
    }
}

/// A service could not open its database; names the URL (without its password).
#[derive(Debug, thiserror::Error)]
#[error("connecting to {url} and applying migrations")]
pub struct OpenError {
    pub url: String,
    #[source]
    pub source: Error,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            max_connections: 10,
            startup_timeout: Duration::from_secs(30),
        }
    }
}

impl Db {
    /// Connects to the database `url` names, then applies `migrations` (when given).
    ///
    /// SQLite: the file (and its folder) is created when missing; WAL journal so readers
    /// never wait for the writer; `synchronous = FULL` so an acknowledged commit
    /// survives a crash of the machine, not only of the process; foreign keys on (the
    /// generated `ON DELETE CASCADE` needs them); writers wait up to 30 s for the lock.
    pub async fn connect(
        url: &str,
        options: &ConnectOptions,
        migrations: Option<&Migrations>,
    ) -> Result<Db, Error> {
        let db = match Dialect::of_url(url) {
            Some(Dialect::Postgres) => {
                let pool = crate::retry::retry_until("database", options.startup_timeout, || {
                    PgPoolOptions::new()
                        .max_connections(options.max_connections)
                        .acquire_timeout(Duration::from_secs(5))
                        .connect(url)
                })
                .await?;
                Db::Postgres(pool)
            }
            Some(Dialect::Sqlite) => {
                let connect = SqliteConnectOptions::from_str(url)?;
                if let Some(dir) = connect.get_filename().parent()
                    && !dir.as_os_str().is_empty()
                {
                    std::fs::create_dir_all(dir).map_err(Error::Io)?;
                }
                let connect = connect
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(30));
                let pool = SqlitePoolOptions::new()
                    .max_connections(options.max_connections.max(1))
                    .acquire_timeout(Duration::from_secs(30))
                    .connect_with(connect)
                    .await?;
                Db::Sqlite(pool)
            }
            None => {
                return Err(Error::Configuration(
                    format!(
                        "unsupported database URL {:?}: use postgres://… or sqlite://path",
                        redact(url)
                    )
                    .into(),
                ));
            }
        };
        if let Some(m) = migrations {
            db.migrate(m).await?;
        }
        Ok(db)
    }

    /// Applies the migrations of this dialect. PostgreSQL serialises concurrent
    /// migrators with sqlx's advisory lock; SQLite has none, so migrators of one file in
    /// this process (a launcher starting a service's roles together) take turns here.
    /// [`Db::connect`] with the service's migrations, for a service's start: the error
    /// says which database (password redacted).
    pub async fn open(
        url: &str,
        options: &ConnectOptions,
        migrations: &Migrations,
    ) -> Result<Db, OpenError> {
        Db::connect(url, options, Some(migrations))
            .await
            .map_err(|source| OpenError {
                url: redact(url),
                source,
            })
    }

    pub async fn migrate(&self, migrations: &Migrations) -> Result<(), Error> {
        let result = match self {
            Db::Postgres(p) => migrations.postgres.run(p).await,
            Db::Sqlite(p) => {
                type Locks = std::sync::Mutex<
                    std::collections::HashMap<
                        std::path::PathBuf,
                        std::sync::Arc<tokio::sync::Mutex<()>>,
                    >,
                >;
                static MIGRATING: std::sync::OnceLock<Locks> = std::sync::OnceLock::new();
                let file = p.connect_options().get_filename().to_path_buf();
                let lock = MIGRATING
                    .get_or_init(Default::default)
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .entry(file)
                    .or_default()
                    .clone();
                let _turn = lock.lock().await;
                migrations.sqlite.run(p).await
            }
        };
        result.map_err(|e| Error::Migrate(Box::new(e)))
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Db::Postgres(_) => Dialect::Postgres,
            Db::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// Starts a transaction. On SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`): a transaction that reads and then writes cannot fail halfway with
    /// "database is locked" the way a deferred one upgrading its lock can, and writers
    /// run one at a time in the order they began.
    pub async fn begin(&self) -> Result<Tx, Error> {
        Ok(match self {
            Db::Postgres(p) => Tx::Postgres(p.begin().await?),
            Db::Sqlite(p) => Tx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
        })
    }

    pub async fn close(&self) {
        match self {
            Db::Postgres(p) => p.close().await,
            Db::Sqlite(p) => p.close().await,
        }
    }

    /// The PostgreSQL pool, for what only PostgreSQL does (e.g. a session lock on a
    /// dedicated connection).
    pub fn postgres(&self) -> Option<&PgPool> {
        match self {
            Db::Postgres(p) => Some(p),
            Db::Sqlite(_) => None,
        }
    }
}

/// The right to be the one active worker named `key` (e.g. an outbox relay) on a
/// database, held until released or dropped.
///
/// PostgreSQL: a session advisory lock on a connection of its own (taken out of the
/// pool), so it is released when that session ends, crash included. SQLite: a lock held
/// in this process, per database file and key; the embedded launcher holds the data
/// folder exclusively, so no other process writes the file.
pub struct Lease(LeaseInner);

enum LeaseInner {
    Postgres { conn: PgConnection, key: i64 },
    Local(#[allow(dead_code)] tokio::sync::OwnedMutexGuard<()>),
}

impl Db {
    /// Tries to take lease `key`; `None` when another holder has it.
    pub async fn try_lease(&self, key: i64) -> Result<Option<Lease>, Error> {
        match self {
            Db::Postgres(p) => {
                let mut conn = p.acquire().await?.detach();
                let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                    .bind(key)
                    .fetch_one(&mut conn)
                    .await?;
                if got {
                    Ok(Some(Lease(LeaseInner::Postgres { conn, key })))
                } else {
                    use sqlx::Connection as _;
                    let _ = conn.close().await;
                    Ok(None)
                }
            }
            Db::Sqlite(p) => {
                type Locks = std::sync::Mutex<
                    std::collections::HashMap<
                        (std::path::PathBuf, i64),
                        std::sync::Arc<tokio::sync::Mutex<()>>,
                    >,
                >;
                static LOCKS: std::sync::OnceLock<Locks> = std::sync::OnceLock::new();
                let file = p.connect_options().get_filename().to_path_buf();
                let lock = LOCKS
                    .get_or_init(Default::default)
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .entry((file, key))
                    .or_default()
                    .clone();
                Ok(lock
                    .try_lock_owned()
                    .ok()
                    .map(|g| Lease(LeaseInner::Local(g))))
            }
        }
    }
}

impl Lease {
    /// Whether the lease is still held (PostgreSQL: whether its session is alive).
    pub async fn is_held(&mut self) -> bool {
        match &mut self.0 {
            LeaseInner::Postgres { conn, .. } => {
                sqlx::query("SELECT 1").execute(&mut *conn).await.is_ok()
            }
            LeaseInner::Local(_) => true,
        }
    }

    pub async fn release(self) {
        if let LeaseInner::Postgres { mut conn, key } = self.0 {
            use sqlx::Connection as _;
            let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(key)
                .execute(&mut conn)
                .await;
            let _ = conn.close().await;
        }
    }
}

/// A transaction on either dialect; dropped without [`Tx::commit`] it rolls back.
pub enum Tx {
    Postgres(Transaction<'static, Postgres>),
    Sqlite(Transaction<'static, Sqlite>),
}

impl Tx {
    pub async fn commit(self) -> Result<(), Error> {
        match self {
            Tx::Postgres(t) => t.commit().await,
            Tx::Sqlite(t) => t.commit().await,
        }
    }

    pub async fn rollback(self) -> Result<(), Error> {
        match self {
            Tx::Postgres(t) => t.rollback().await,
            Tx::Sqlite(t) => t.rollback().await,
        }
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Tx::Postgres(_) => Dialect::Postgres,
            Tx::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// Serialises this transaction with every other one that takes the same `key`,
    /// until it ends: commits under the lock become visible in the order they took it.
    /// PostgreSQL: `pg_advisory_xact_lock`. SQLite: already true, since every
    /// transaction [`Db::begin`] starts holds the database's single write lock.
    pub async fn lock(&mut self, key: i64) -> Result<(), Error> {
        match self {
            Tx::Postgres(t) => {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(key)
                    .execute(&mut **t)
                    .await?;
            }
            Tx::Sqlite(_) => {}
        }
        Ok(())
    }
}

/// Where a statement runs: a pool (`&Db`) or an open transaction (`&mut Tx`).
pub enum Target<'a> {
    PgPool(&'a PgPool),
    PgConn(&'a mut PgConnection),
    SqlitePool(&'a SqlitePool),
    SqliteConn(&'a mut SqliteConnection),
}

pub trait Executor<'a> {
    fn target(self) -> Target<'a>;
}

impl<'a> Executor<'a> for &'a Db {
    fn target(self) -> Target<'a> {
        match self {
            Db::Postgres(p) => Target::PgPool(p),
            Db::Sqlite(p) => Target::SqlitePool(p),
        }
    }
}

impl<'a> Executor<'a> for &'a mut Tx {
    fn target(self) -> Target<'a> {
        match self {
            Tx::Postgres(t) => Target::PgConn(t),
            Tx::Sqlite(t) => Target::SqliteConn(t),
        }
    }
}

/// A bound value, typed the way the spec types it.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Uuid(Option<Uuid>),
    I64(Option<i64>),
    I32(Option<i32>),
    Bool(Option<bool>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
    Time(Option<DateTime<Utc>>),
    Json(Option<serde_json::Value>),
}

macro_rules! arg_from {
    ($t:ty, $variant:ident, $conv:expr) => {
        impl From<$t> for Arg {
            fn from(v: $t) -> Arg {
                #[allow(clippy::redundant_closure_call)]
                Arg::$variant(Some(($conv)(v)))
            }
        }
        impl From<Option<$t>> for Arg {
            fn from(v: Option<$t>) -> Arg {
                #[allow(clippy::redundant_closure_call)]
                Arg::$variant(v.map($conv))
            }
        }
    };
}

arg_from!(Uuid, Uuid, |v| v);
arg_from!(&Uuid, Uuid, |v: &Uuid| *v);
arg_from!(i64, I64, |v| v);
arg_from!(i32, I32, |v| v);
arg_from!(u32, I64, i64::from);
arg_from!(bool, Bool, |v| v);
arg_from!(String, Text, |v| v);
arg_from!(&String, Text, |v: &String| v.clone());
arg_from!(&str, Text, |v: &str| v.to_string());
arg_from!(Vec<u8>, Bytes, |v| v);
arg_from!(&[u8], Bytes, |v: &[u8]| v.to_vec());
arg_from!(DateTime<Utc>, Time, |v| v);
arg_from!(&DateTime<Utc>, Time, |v: &DateTime<Utc>| *v);
arg_from!(serde_json::Value, Json, |v| v);

impl From<&Option<String>> for Arg {
    fn from(v: &Option<String>) -> Arg {
        Arg::Text(v.clone())
    }
}

/// Time as SQLite stores it: RFC 3339 UTC with exactly six fractional digits, so that
/// text order is time order.
pub fn sqlite_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// `$first, $first+1, …` for `count` values: `WHERE id IN (…)` in both dialects.
pub fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A statement and its arguments.
#[must_use = "a query does nothing until executed"]
pub struct Query {
    sql: Cow<'static, str>,
    args: Vec<Arg>,
}

/// A statement written once for both dialects; `$1`, `$2`, … are its parameters.
pub fn query(sql: impl Into<Cow<'static, str>>) -> Query {
    Query {
        sql: sql.into(),
        args: Vec::new(),
    }
}

impl Query {
    pub fn bind(mut self, value: impl Into<Arg>) -> Query {
        self.args.push(value.into());
        self
    }

    pub fn bind_all(mut self, values: impl IntoIterator<Item = Arg>) -> Query {
        self.args.extend(values);
        self
    }

    fn pg(&self) -> sqlx::query::Query<'_, Postgres, sqlx::postgres::PgArguments> {
        let mut q = sqlx::query(AssertSqlSafe(self.sql.as_ref()));
        for a in &self.args {
            q = match a {
                Arg::Uuid(v) => q.bind(*v),
                Arg::I64(v) => q.bind(*v),
                Arg::I32(v) => q.bind(*v),
                Arg::Bool(v) => q.bind(*v),
                Arg::Text(v) => q.bind(v.as_deref()),
                Arg::Bytes(v) => q.bind(v.as_deref()),
                Arg::Time(v) => q.bind(*v),
                Arg::Json(v) => q.bind(v.as_ref().map(sqlx::types::Json)),
            };
        }
        q
    }

    fn sqlite(&self) -> sqlx::query::Query<'_, Sqlite, sqlx::sqlite::SqliteArguments> {
        let mut q = sqlx::query(AssertSqlSafe(self.sql.as_ref()));
        for a in &self.args {
            q = match a {
                Arg::Uuid(v) => q.bind(v.map(|u| u.hyphenated().to_string())),
                Arg::I64(v) => q.bind(*v),
                Arg::I32(v) => q.bind(*v),
                Arg::Bool(v) => q.bind(*v),
                Arg::Text(v) => q.bind(v.clone()),
                Arg::Bytes(v) => q.bind(v.clone()),
                Arg::Time(v) => q.bind(v.as_ref().map(sqlite_time)),
                Arg::Json(v) => q.bind(v.as_ref().map(|j| j.to_string())),
            };
        }
        q
    }

    /// Runs the statement; the number of rows it changed.
    pub async fn execute<'a>(self, on: impl Executor<'a>) -> Result<u64, Error> {
        Ok(match on.target() {
            Target::PgPool(p) => self.pg().execute(p).await?.rows_affected(),
            Target::PgConn(c) => self.pg().execute(c).await?.rows_affected(),
            Target::SqlitePool(p) => self.sqlite().execute(p).await?.rows_affected(),
            Target::SqliteConn(c) => self.sqlite().execute(c).await?.rows_affected(),
        })
    }

    pub async fn fetch_all<'a>(self, on: impl Executor<'a>) -> Result<Vec<Row>, Error> {
        Ok(match on.target() {
            Target::PgPool(p) => wrap_pg(self.pg().fetch_all(p).await?),
            Target::PgConn(c) => wrap_pg(self.pg().fetch_all(c).await?),
            Target::SqlitePool(p) => wrap_sqlite(self.sqlite().fetch_all(p).await?),
            Target::SqliteConn(c) => wrap_sqlite(self.sqlite().fetch_all(c).await?),
        })
    }

    pub async fn fetch_optional<'a>(self, on: impl Executor<'a>) -> Result<Option<Row>, Error> {
        Ok(match on.target() {
            Target::PgPool(p) => self.pg().fetch_optional(p).await?.map(Row::Postgres),
            Target::PgConn(c) => self.pg().fetch_optional(c).await?.map(Row::Postgres),
            Target::SqlitePool(p) => self.sqlite().fetch_optional(p).await?.map(Row::Sqlite),
            Target::SqliteConn(c) => self.sqlite().fetch_optional(c).await?.map(Row::Sqlite),
        })
    }

    pub async fn fetch_one<'a>(self, on: impl Executor<'a>) -> Result<Row, Error> {
        self.fetch_optional(on).await?.ok_or(Error::RowNotFound)
    }
}

fn wrap_pg(rows: Vec<PgRow>) -> Vec<Row> {
    rows.into_iter().map(Row::Postgres).collect()
}

fn wrap_sqlite(rows: Vec<SqliteRow>) -> Vec<Row> {
    rows.into_iter().map(Row::Sqlite).collect()
}

/// A result row; columns are read by name with the spec type's getter.
pub enum Row {
    Postgres(PgRow),
    Sqlite(SqliteRow),
}

fn decode_error(column: &str, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::ColumnDecode {
        index: column.to_string(),
        source: Box::new(e),
    }
}

impl Row {
    pub fn opt_uuid(&self, column: &str) -> Result<Option<Uuid>, Error> {
        match self {
            Row::Postgres(r) => r.try_get(column),
            Row::Sqlite(r) => r
                .try_get::<Option<String>, _>(column)?
                .map(|s| Uuid::parse_str(&s).map_err(|e| decode_error(column, e)))
                .transpose(),
        }
    }

    pub fn uuid(&self, column: &str) -> Result<Uuid, Error> {
        self.opt_uuid(column)?.ok_or_else(|| null(column))
    }

    /// Any integer column (PostgreSQL `smallint`/`integer`/`bigint`, SQLite INTEGER).
    pub fn opt_i64(&self, column: &str) -> Result<Option<i64>, Error> {
        match self {
            Row::Postgres(r) => match r.try_get::<Option<i64>, _>(column) {
                Ok(v) => Ok(v),
                Err(Error::ColumnDecode { .. }) => match r.try_get::<Option<i32>, _>(column) {
                    Ok(v) => Ok(v.map(i64::from)),
                    Err(Error::ColumnDecode { .. }) => {
                        Ok(r.try_get::<Option<i16>, _>(column)?.map(i64::from))
                    }
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            },
            Row::Sqlite(r) => r.try_get(column),
        }
    }

    pub fn i64(&self, column: &str) -> Result<i64, Error> {
        self.opt_i64(column)?.ok_or_else(|| null(column))
    }

    pub fn i32(&self, column: &str) -> Result<i32, Error> {
        let v = self.i64(column)?;
        i32::try_from(v).map_err(|e| decode_error(column, e))
    }

    pub fn opt_i32(&self, column: &str) -> Result<Option<i32>, Error> {
        self.opt_i64(column)?
            .map(|v| i32::try_from(v).map_err(|e| decode_error(column, e)))
            .transpose()
    }

    pub fn bool(&self, column: &str) -> Result<bool, Error> {
        self.opt_bool(column)?.ok_or_else(|| null(column))
    }

    pub fn opt_bool(&self, column: &str) -> Result<Option<bool>, Error> {
        match self {
            Row::Postgres(r) => r.try_get(column),
            Row::Sqlite(r) => r.try_get(column),
        }
    }

    pub fn opt_text(&self, column: &str) -> Result<Option<String>, Error> {
        match self {
            Row::Postgres(r) => r.try_get(column),
            Row::Sqlite(r) => r.try_get(column),
        }
    }

    pub fn text(&self, column: &str) -> Result<String, Error> {
        self.opt_text(column)?.ok_or_else(|| null(column))
    }

    pub fn opt_bytes(&self, column: &str) -> Result<Option<Vec<u8>>, Error> {
        match self {
            Row::Postgres(r) => r.try_get(column),
            Row::Sqlite(r) => r.try_get(column),
        }
    }

    pub fn bytes(&self, column: &str) -> Result<Vec<u8>, Error> {
        self.opt_bytes(column)?.ok_or_else(|| null(column))
    }

    pub fn opt_time(&self, column: &str) -> Result<Option<DateTime<Utc>>, Error> {
        match self {
            Row::Postgres(r) => r.try_get(column),
            Row::Sqlite(r) => r
                .try_get::<Option<String>, _>(column)?
                .map(|s| {
                    DateTime::parse_from_rfc3339(&s)
                        .map(|t| t.with_timezone(&Utc))
                        .map_err(|e| decode_error(column, e))
                })
                .transpose(),
        }
    }

    pub fn time(&self, column: &str) -> Result<DateTime<Utc>, Error> {
        self.opt_time(column)?.ok_or_else(|| null(column))
    }

    pub fn json(&self, column: &str) -> Result<serde_json::Value, Error> {
        match self {
            Row::Postgres(r) => Ok(r
                .try_get::<sqlx::types::Json<serde_json::Value>, _>(column)?
                .0),
            Row::Sqlite(r) => {
                let s: String = r.try_get(column)?;
                serde_json::from_str(&s).map_err(|e| decode_error(column, e))
            }
        }
    }
}

fn null(column: &str) -> Error {
    Error::ColumnDecode {
        index: column.to_string(),
        source: "unexpected NULL".into(),
    }
}

/// What kind of constraint a failed statement broke, and which one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub kind: ViolationKind,
    /// PostgreSQL: the constraint's name. SQLite names the columns instead
    /// (`customers.email`), so callers match with [`Violation::is`].
    pub constraint: Option<String>,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViolationKind {
    Unique,
    ForeignKey,
    NotNull,
    Check,
}

impl Violation {
    /// Whether this is the violation of the generated constraint `name` on `table`
    /// over `columns`: by name on PostgreSQL, by `table.column` list on SQLite (whose
    /// messages read "UNIQUE constraint failed: customers.email").
    pub fn is(&self, name: &str, table: &str, columns: &[&str]) -> bool {
        if self.constraint.as_deref() == Some(name) {
            return true;
        }
        let listed = columns
            .iter()
            .map(|c| format!("{table}.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        self.message.ends_with(&format!("failed: {listed}"))
            || self.message.contains(&format!("CONSTRAINT {name}"))
    }
}

/// The constraint violation behind `e`, if that is what it is.
pub fn violation(e: &Error) -> Option<Violation> {
    let Error::Database(d) = e else { return None };
    let kind = match d.kind() {
        sqlx::error::ErrorKind::UniqueViolation => ViolationKind::Unique,
        sqlx::error::ErrorKind::ForeignKeyViolation => ViolationKind::ForeignKey,
        sqlx::error::ErrorKind::NotNullViolation => ViolationKind::NotNull,
        sqlx::error::ErrorKind::CheckViolation => ViolationKind::Check,
        _ => return None,
    };
    Some(Violation {
        kind,
        constraint: d.constraint().map(str::to_string),
        message: d.message().to_string(),
    })
}

/// Whether `e` says "try again": a serialization failure or deadlock on PostgreSQL,
/// a busy or locked database on SQLite.
pub fn is_transient(e: &Error) -> bool {
    match e {
        Error::Database(d) => matches!(
            d.code().as_deref(),
            Some("40001") | Some("40P01") | Some("5") | Some("6") | Some("517") | Some("262")
        ),
        Error::PoolTimedOut | Error::Io(_) | Error::PoolClosed => true,
        _ => false,
    }
}

/// `url` without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn memory() -> Db {
        Db::connect(
            "sqlite::memory:",
            &ConnectOptions {
                max_connections: 1,
                ..Default::default()
            },
            None,
        )
        .await
        .expect("in-memory sqlite")
    }

    #[test]
    fn dialect_follows_the_scheme() {
        assert_eq!(
            Dialect::of_url("postgres://u@h/db"),
            Some(Dialect::Postgres)
        );
        assert_eq!(
            Dialect::of_url("postgresql://h/db"),
            Some(Dialect::Postgres)
        );
        assert_eq!(Dialect::of_url("sqlite://data/x.db"), Some(Dialect::Sqlite));
        assert_eq!(Dialect::of_url("mysql://h/db"), None);
        assert_eq!(
            redact("postgres://u:secret@h:5/db"),
            "postgres://u:***@h:5/db"
        );
    }

    #[test]
    fn placeholders_number_from_first() {
        assert_eq!(placeholders(2, 3), "$2, $3, $4");
        assert_eq!(placeholders(1, 0), "");
    }

    #[tokio::test]
    async fn sqlite_values_round_trip_in_the_generated_representation() {
        let db = memory().await;
        query("CREATE TABLE t (id TEXT NOT NULL CHECK (length(id) = 36), at TEXT NOT NULL, n INTEGER, j TEXT, b BLOB, f INTEGER) STRICT")
            .execute(&db)
            .await
            .expect("create");
        let id = Uuid::now_v7();
        let at = DateTime::parse_from_rfc3339("2026-11-26T07:00:00.123456Z")
            .expect("time")
            .with_timezone(&Utc);
        query("INSERT INTO t VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(id)
            .bind(at)
            .bind(Option::<i64>::None)
            .bind(serde_json::json!({"a": 1}))
            .bind(&b"\x00\x01"[..])
            .bind(true)
            .execute(&db)
            .await
            .expect("insert");
        let row = query("SELECT id, at, n, j, b, f FROM t WHERE id = $1")
            .bind(id)
            .fetch_one(&db)
            .await
            .expect("select");
        assert_eq!(row.uuid("id").expect("id"), id);
        assert_eq!(row.time("at").expect("at"), at);
        assert_eq!(row.opt_i64("n").expect("n"), None);
        assert_eq!(row.json("j").expect("j"), serde_json::json!({"a": 1}));
        assert_eq!(row.bytes("b").expect("b"), vec![0, 1]);
        assert!(row.bool("f").expect("f"));
        let stored: String = match &row {
            Row::Sqlite(r) => r.try_get("at").expect("raw"),
            Row::Postgres(_) => unreachable!(),
        };
        assert_eq!(stored, "2026-11-26T07:00:00.123456Z");
    }

    #[tokio::test]
    async fn sqlite_violations_are_recognised_by_table_and_columns() {
        let db = memory().await;
        query("CREATE TABLE c (id INTEGER PRIMARY KEY, email TEXT NOT NULL, CONSTRAINT c_email_key UNIQUE (email))")
            .execute(&db)
            .await
            .expect("create");
        query("INSERT INTO c (email) VALUES ($1)")
            .bind("a@b")
            .execute(&db)
            .await
            .expect("first");
        let e = query("INSERT INTO c (email) VALUES ($1)")
            .bind("a@b")
            .execute(&db)
            .await
            .expect_err("duplicate");
        let v = violation(&e).expect("a violation");
        assert_eq!(v.kind, ViolationKind::Unique);
        assert!(v.is("c_email_key", "c", &["email"]), "{v:?}");
        assert!(!v.is("c_pkey", "c", &["id"]), "{v:?}");
    }

    #[tokio::test]
    async fn a_sqlite_lease_has_one_holder_until_released() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}/l.db", dir.path().display());
        let db = Db::connect(&url, &ConnectOptions::default(), None)
            .await
            .expect("db");
        let mut first = db.try_lease(7).await.expect("try").expect("free");
        assert!(first.is_held().await);
        assert!(db.try_lease(7).await.expect("try").is_none());
        assert!(
            db.try_lease(8).await.expect("try").is_some(),
            "other keys are independent"
        );
        first.release().await;
        assert!(db.try_lease(7).await.expect("try").is_some());
    }

    #[tokio::test]
    async fn a_transaction_rolls_back_when_dropped() {
        let db = memory().await;
        query("CREATE TABLE n (v INTEGER NOT NULL)")
            .execute(&db)
            .await
            .expect("create");
        {
            let mut tx = db.begin().await.expect("begin");
            tx.lock(42).await.expect("lock");
            query("INSERT INTO n VALUES ($1)")
                .bind(1_i64)
                .execute(&mut tx)
                .await
                .expect("insert");
        }
        let mut tx = db.begin().await.expect("begin");
        query("INSERT INTO n VALUES ($1)")
            .bind(2_i64)
            .execute(&mut tx)
            .await
            .expect("insert");
        tx.commit().await.expect("commit");
        let rows = query("SELECT v FROM n")
            .fetch_all(&db)
            .await
            .expect("select");
        let values: Vec<i64> = rows.iter().map(|r| r.i64("v").expect("v")).collect();
        assert_eq!(values, vec![2]);
    }
}
