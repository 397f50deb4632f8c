//! PostgreSQL errors as service errors: constraint violations are the caller's fault,
//! connection trouble is retryable, the rest is internal.

use crate::ServiceError;

pub fn error(e: sqlx::Error) -> ServiceError {
    match &e {
        sqlx::Error::Database(db) => {
            let constraint = db.constraint().unwrap_or("").to_string();
            match db.code().as_deref() {
                // unique_violation
                Some("23505") => {
                    ServiceError::AlreadyExists(format!("already exists ({constraint})"))
                }
                // check_violation, not_null_violation, foreign_key_violation
                Some("23514") | Some("23502") | Some("23503") => ServiceError::invalid(
                    constraint.clone(),
                    format!("rejected by the database: {}", db.message()),
                ),
                // serialization_failure, deadlock_detected
                Some("40001") | Some("40P01") => ServiceError::Conflict(db.message().to_string()),
                _ => ServiceError::Internal(e.to_string()),
            }
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
            ServiceError::Unavailable("database unreachable".into())
        }
        _ => ServiceError::Internal(e.to_string()),
    }
}
