use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::FieldViolation;

/// What a use case can answer besides success. Each maps to one gRPC code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// The input breaks the spec's constraints; one entry per bad field.
    #[error("invalid input: {}", describe(.0))]
    InvalidArgument(Vec<FieldViolation>),
    #[error("{kind} {id} not found")]
    NotFound { kind: String, id: String },
    #[error("{0}")]
    AlreadyExists(String),
    /// Optimistic concurrency: somebody else changed it first. Safe to retry after a reread.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The request is valid but the state does not allow it (e.g. checkout of an empty cart).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The caller did not say who it is, or the proof does not hold (a bad token or password).
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller is known but may not do this.
    #[error("{0}")]
    PermissionDenied(String),
    /// A dependency (database, another service) is down; retrying later may work.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A bug or an unexpected failure; details are logged, not sent.
    #[error("internal error: {0}")]
    Internal(String),
}

fn describe(v: &[FieldViolation]) -> String {
    v.iter()
        .map(|f| format!("{}: {}", f.field, f.description))
        .collect::<Vec<_>>()
        .join("; ")
}

impl ServiceError {
    pub fn not_found(kind: impl Into<String>, id: impl ToString) -> Self {
        ServiceError::NotFound {
            kind: kind.into(),
            id: id.to_string(),
        }
    }

    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        ServiceError::InvalidArgument(vec![FieldViolation {
            field: field.into(),
            description: description.into(),
        }])
    }

    pub fn code(&self) -> Code {
        match self {
            ServiceError::InvalidArgument(_) => Code::InvalidArgument,
            ServiceError::NotFound { .. } => Code::NotFound,
            ServiceError::AlreadyExists(_) => Code::AlreadyExists,
            ServiceError::Conflict(_) => Code::Aborted,
            ServiceError::FailedPrecondition(_) => Code::FailedPrecondition,
            ServiceError::Unauthenticated(_) => Code::Unauthenticated,
            ServiceError::PermissionDenied(_) => Code::PermissionDenied,
            ServiceError::Unavailable(_) => Code::Unavailable,
            ServiceError::Internal(_) => Code::Internal,
        }
    }
}

impl From<ServiceError> for Status {
    fn from(e: ServiceError) -> Status {
        match &e {
            ServiceError::InvalidArgument(violations) => {
                let mut details = ErrorDetails::new();
                for v in violations {
                    details.add_bad_request_violation(v.field.clone(), v.description.clone());
                }
                Status::with_error_details(Code::InvalidArgument, e.to_string(), details)
            }
            ServiceError::Conflict(_) => {
                let mut details = ErrorDetails::new();
                details.set_retry_info(Some(std::time::Duration::from_millis(0)));
                Status::with_error_details(Code::Aborted, e.to_string(), details)
            }
            // Internal details stay in the logs.
            ServiceError::Internal(_) => Status::internal("internal error"),
            _ => Status::new(e.code(), e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_carries_each_field() {
        let e = ServiceError::InvalidArgument(vec![
            FieldViolation {
                field: "name".into(),
                description: "must be at most 3 characters".into(),
            },
            FieldViolation {
                field: "price".into(),
                description: "must be at least 0".into(),
            },
        ]);
        let status: Status = e.into();
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let bad = details.bad_request().expect("bad request details");
        let fields: Vec<&str> = bad
            .field_violations
            .iter()
            .map(|v| v.field.as_str())
            .collect();
        assert_eq!(fields, ["name", "price"]);
    }

    #[test]
    fn internal_hides_its_cause() {
        let status: Status = ServiceError::Internal("password=hunter2".into()).into();
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("hunter2"));
    }

    #[test]
    fn conflict_is_retryable_aborted() {
        let status: Status = ServiceError::Conflict("cart at version 3, expected 2".into()).into();
        assert_eq!(status.code(), Code::Aborted);
        assert!(status.get_error_details().retry_info().is_some());
    }
}
