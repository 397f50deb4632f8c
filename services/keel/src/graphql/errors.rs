//! gRPC statuses and GraphQL-level problems as GraphQL errors with `extensions.code`.
//!
//! | gRPC code | `extensions.code` | extra |
//! |---|---|---|
//! | INVALID_ARGUMENT | `BAD_USER_INPUT` | `fieldViolations: [{field, description}]` from `BadRequest` |
//! | NOT_FOUND | `NOT_FOUND` | |
//! | ALREADY_EXISTS | `CONFLICT` | `retryable: false` |
//! | ABORTED | `CONFLICT` | `retryable: true` (optimistic concurrency: reread, retry) |
//! | FAILED_PRECONDITION | `FAILED_PRECONDITION` | |
//! | UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED (client timeout), RESOURCE_EXHAUSTED, connection errors | `UNAVAILABLE` | `retryable: true` |
//! | anything else | `INTERNAL` | message is generic; the cause is logged only |
//!
//! Before any call: `BAD_USER_INPUT` for argument values that do not fit their type or
//! are not UUIDs where an `ID` is expected (with `fieldViolations`),
//! `GRAPHQL_PARSE_FAILED`, `GRAPHQL_VALIDATION_FAILED`, and `QUERY_TOO_DEEP` /
//! `QUERY_TOO_COMPLEX` (see the BFF's `limits`).
//!
//! Field paths in violations are the GraphQL names: `unit_price` becomes `unitPrice`,
//! `page_size` becomes `first` and `page_token` becomes `after`.

use async_graphql::{Error, ErrorExtensions, Name, Value};
use heck::ToLowerCamelCase;
use tonic::Code;
use tonic_types::StatusExt;

pub const BAD_USER_INPUT: &str = "BAD_USER_INPUT";
pub const NOT_FOUND: &str = "NOT_FOUND";
pub const CONFLICT: &str = "CONFLICT";
pub const FAILED_PRECONDITION: &str = "FAILED_PRECONDITION";
pub const UNAVAILABLE: &str = "UNAVAILABLE";
pub const INTERNAL: &str = "INTERNAL";
/// No valid access token where the operation needs one.
pub const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
/// The caller is known but may not do this (another customer's data, a missing role).
pub const FORBIDDEN: &str = "FORBIDDEN";
/// The operation does not parse.
pub const GRAPHQL_PARSE_FAILED: &str = "GRAPHQL_PARSE_FAILED";
/// The operation was rejected before execution: it does not fit the schema.
pub const GRAPHQL_VALIDATION_FAILED: &str = "GRAPHQL_VALIDATION_FAILED";
pub const QUERY_TOO_DEEP: &str = "QUERY_TOO_DEEP";
pub const QUERY_TOO_COMPLEX: &str = "QUERY_TOO_COMPLEX";

/// One bad input field, as sent in `extensions.fieldViolations`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub field: String,
    pub description: String,
}

impl Violation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Violation {
        Violation {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// An error with a code and nothing else.
pub fn coded(code: &'static str, message: impl Into<String>) -> Error {
    Error::new(message).extend_with(|_, e| e.set("code", code))
}

/// Input rejected by the BFF itself (before any call) or by a service.
pub fn bad_user_input(message: impl Into<String>, violations: &[Violation]) -> Error {
    let list: Vec<Value> = violations
        .iter()
        .map(|v| {
            let mut o = async_graphql::indexmap::IndexMap::new();
            o.insert(Name::new("field"), Value::from(v.field.as_str()));
            o.insert(
                Name::new("description"),
                Value::from(v.description.as_str()),
            );
            Value::Object(o)
        })
        .collect();
    Error::new(message).extend_with(move |_, e| {
        e.set("code", BAD_USER_INPUT);
        e.set("fieldViolations", Value::List(list.clone()));
    })
}

/// An internal failure: the client gets a generic message, the log gets the cause.
pub fn internal(cause: impl std::fmt::Display) -> Error {
    tracing::error!(%cause, "internal error");
    coded(INTERNAL, "internal error")
}

/// The GraphQL error for a failed call to `service` (a name for messages and logs).
pub fn from_status(service: &str, status: &tonic::Status) -> Error {
    match status.code() {
        Code::InvalidArgument => {
            let violations: Vec<Violation> = status
                .get_error_details()
                .bad_request()
                .map(|b| {
                    b.field_violations
                        .iter()
                        .map(|v| Violation::new(graphql_path(&v.field), v.description.clone()))
                        .collect()
                })
                .unwrap_or_default();
            let message = if violations.is_empty() {
                status.message().to_string()
            } else {
                let parts: Vec<String> = violations
                    .iter()
                    .map(|v| format!("{}: {}", v.field, v.description))
                    .collect();
                format!("invalid input: {}", parts.join("; "))
            };
            bad_user_input(message, &violations)
        }
        Code::NotFound => coded(NOT_FOUND, status.message()),
        Code::AlreadyExists => conflict(status.message(), false),
        Code::Aborted => conflict(status.message(), true),
        Code::FailedPrecondition => coded(FAILED_PRECONDITION, status.message()),
        Code::Unauthenticated => coded(UNAUTHENTICATED, status.message()),
        Code::PermissionDenied => coded(FORBIDDEN, status.message()),
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::ResourceExhausted => {
            tracing::warn!(
                service,
                code = ?status.code(),
                message = status.message(),
                "upstream unavailable"
            );
            coded(
                UNAVAILABLE,
                format!("the {service} service is unavailable; retry later"),
            )
            .extend_with(|_, e| e.set("retryable", true))
        }
        _ => {
            tracing::error!(
                service,
                code = ?status.code(),
                message = status.message(),
                "upstream failed"
            );
            coded(INTERNAL, "internal error")
        }
    }
}

fn conflict(message: &str, retryable: bool) -> Error {
    coded(CONFLICT, message).extend_with(move |_, e| e.set("retryable", retryable))
}

/// A proto field path (`details[2].unit_price`) as the GraphQL client named it.
pub fn graphql_path(proto: &str) -> String {
    match proto {
        "page_size" => return "first".into(),
        "page_token" => return "after".into(),
        _ => {}
    }
    proto
        .split('.')
        .map(|segment| match segment.find('[') {
            Some(i) => format!("{}{}", segment[..i].to_lower_camel_case(), &segment[i..]),
            None => segment.to_lower_camel_case(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::{FieldViolation, ServiceError};
    use async_graphql::Pos;
    use serde_json::json;
    use tonic::Status;
    use tonic_types::ErrorDetails;

    use super::*;

    fn ext(e: &Error) -> serde_json::Value {
        let server = e.clone().into_server_error(Pos::default());
        serde_json::to_value(server.extensions).expect("serializes")
    }

    #[test]
    fn invalid_argument_carries_the_field_violations() {
        let status: Status = ServiceError::InvalidArgument(vec![
            FieldViolation {
                field: "price".into(),
                description: "must be at least 0, got -1".into(),
            },
            FieldViolation {
                field: "details[1].unit_price".into(),
                description: "must be at least 0".into(),
            },
        ])
        .into();
        let e = from_status("product", &status);
        assert_eq!(
            ext(&e),
            json!({
                "code": "BAD_USER_INPUT",
                "fieldViolations": [
                    {"field": "price", "description": "must be at least 0, got -1"},
                    {"field": "details[1].unitPrice", "description": "must be at least 0"},
                ],
            })
        );
        assert!(
            e.message.contains("price: must be at least 0"),
            "{}",
            e.message
        );
    }

    #[test]
    fn invalid_argument_without_details_keeps_the_message() {
        let e = from_status("product", &Status::invalid_argument("bad token"));
        assert_eq!(
            ext(&e),
            json!({"code": "BAD_USER_INPUT", "fieldViolations": []})
        );
        assert_eq!(e.message, "bad token");
    }

    #[test]
    fn paging_fields_are_named_as_in_graphql() {
        let mut details = ErrorDetails::new();
        details.add_bad_request_violation("page_size", "must be at most 100, got 101");
        let status = Status::with_error_details(Code::InvalidArgument, "invalid", details);
        assert_eq!(
            ext(&from_status("order", &status))["fieldViolations"][0]["field"],
            "first"
        );
        assert_eq!(graphql_path("page_token"), "after");
        assert_eq!(graphql_path("customer_id"), "customerId");
        assert_eq!(graphql_path("items[0].product_id"), "items[0].productId");
    }

    #[test]
    fn each_code_maps() {
        let cases = [
            (
                Status::not_found("product x not found"),
                json!({"code": "NOT_FOUND"}),
            ),
            (
                Status::already_exists("already exists"),
                json!({"code": "CONFLICT", "retryable": false}),
            ),
            (
                ServiceError::Conflict("cart at version 3".into()).into(),
                json!({"code": "CONFLICT", "retryable": true}),
            ),
            (
                Status::failed_precondition("empty cart"),
                json!({"code": "FAILED_PRECONDITION"}),
            ),
            (
                Status::unavailable("tcp connect error: 10.1.2.3:20201"),
                json!({"code": "UNAVAILABLE", "retryable": true}),
            ),
            (
                Status::deadline_exceeded("slow"),
                json!({"code": "UNAVAILABLE", "retryable": true}),
            ),
            (
                Status::cancelled("Timeout expired"),
                json!({"code": "UNAVAILABLE", "retryable": true}),
            ),
            (
                Status::internal("password=hunter2"),
                json!({"code": "INTERNAL"}),
            ),
            (
                Status::unknown("panic at foo.rs:3"),
                json!({"code": "INTERNAL"}),
            ),
            (
                Status::unimplemented("no such method"),
                json!({"code": "INTERNAL"}),
            ),
        ];
        for (status, want) in cases {
            let e = from_status("product", &status);
            assert_eq!(ext(&e), want, "{status:?}");
        }
    }

    #[test]
    fn internals_are_not_leaked() {
        for status in [
            Status::internal("password=hunter2"),
            Status::unavailable("tcp connect error 10.1.2.3"),
            Status::unknown("stack trace"),
        ] {
            let e = from_status("product", &status);
            assert!(!e.message.contains("hunter2"));
            assert!(!e.message.contains("10.1.2.3"));
            assert!(!e.message.contains("stack"));
        }
    }

    #[test]
    fn retry_info_of_a_conflict_does_not_matter_for_the_code() {
        let mut details = ErrorDetails::new();
        details.set_retry_info(Some(Duration::from_millis(5)));
        let status = Status::with_error_details(Code::Aborted, "conflict", details);
        assert_eq!(ext(&from_status("cart", &status))["retryable"], true);
    }
}
