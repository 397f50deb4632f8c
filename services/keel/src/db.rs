//! Database errors as service errors: constraint violations are the caller's fault,
//! contention and connection trouble are retryable, the rest is internal. The same
//! mapping for PostgreSQL and SQLite (by error kind, not by dialect-specific code).

use crate::ServiceError;

pub fn error(e: sqlx::Error) -> ServiceError {
    match &e {
        sqlx::Error::Database(db) => {
            let constraint = db.constraint().unwrap_or("").to_string();
            match db.kind() {
                sqlx::error::ErrorKind::UniqueViolation => {
                    let what = if constraint.is_empty() {
                        db.message().to_string()
                    } else {
                        constraint
                    };
                    ServiceError::AlreadyExists(format!("already exists ({what})"))
                }
                sqlx::error::ErrorKind::CheckViolation
                | sqlx::error::ErrorKind::NotNullViolation
                | sqlx::error::ErrorKind::ForeignKeyViolation => ServiceError::invalid(
                    constraint.clone(),
                    format!("rejected by the database: {}", db.message()),
                ),
                _ => match db.code().as_deref() {
                    // serialization_failure, deadlock_detected; SQLite busy / locked
                    Some("40001") | Some("40P01") | Some("5") | Some("6") | Some("517")
                    | Some("262") => ServiceError::Conflict(db.message().to_string()),
                    _ => ServiceError::Internal(e.to_string()),
                },
            }
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
            ServiceError::Unavailable("database unreachable".into())
        }
        _ => ServiceError::Internal(e.to_string()),
    }
}
