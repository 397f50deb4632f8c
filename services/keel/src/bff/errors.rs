//! Error codes: those of the resolvers' calls come from `keel::graphql::errors`
//! (re-exported here, with the table of codes); this adds a code to what async-graphql
//! rejects or fails on by itself, and to what the HTTP edge refuses ([`Refused`]).

use async_graphql::ServerError;
use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

pub use crate::graphql::errors::*;

/// 400: the body is not JSON, or not the parameters of a GraphQL request.
pub const BAD_REQUEST: &str = "BAD_REQUEST";
/// 405: a mutation sent with GET.
pub const METHOD_NOT_ALLOWED: &str = "METHOD_NOT_ALLOWED";
/// 406: the `Accept` header allows no JSON type GraphQL answers with.
pub const NOT_ACCEPTABLE: &str = "NOT_ACCEPTABLE";
/// 413: the body is larger than `GRAPHQL_MAX_BODY_BYTES`.
pub const PAYLOAD_TOO_LARGE: &str = "PAYLOAD_TOO_LARGE";
/// 415: a POST body that is not `application/json`.
pub const UNSUPPORTED_MEDIA_TYPE: &str = "UNSUPPORTED_MEDIA_TYPE";
/// 504: the request took longer than `GRAPHQL_REQUEST_TIMEOUT_MS`.
pub const TIMEOUT: &str = "TIMEOUT";

/// What the HTTP edge refuses before (or instead of) running an operation; answered
/// as a GraphQL error with a code and the matching status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("not a GraphQL request: {0}")]
    BadParameters(String),
    #[error("cross-origin requests from this origin are not allowed")]
    Origin,
    #[error("mutations are only accepted with POST")]
    MutationOverGet,
    #[error(
        "the Accept header allows neither application/graphql-response+json nor application/json"
    )]
    NotAcceptable,
    #[error("the body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("POST /graphql takes an application/json body (UTF-8)")]
    MediaType,
    #[error("the request took longer than {0} ms")]
    Timeout(u64),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("access tokens cannot be checked now: {0}")]
    AuthUnavailable(String),
}

impl Refused {
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Refused::NotJson(_) | Refused::BadParameters(_) => {
                (StatusCode::BAD_REQUEST, BAD_REQUEST)
            }
            // The caller may not do this: the code authorization uses too.
            Refused::Origin => (StatusCode::FORBIDDEN, FORBIDDEN),
            Refused::MutationOverGet => (StatusCode::METHOD_NOT_ALLOWED, METHOD_NOT_ALLOWED),
            Refused::NotAcceptable => (StatusCode::NOT_ACCEPTABLE, NOT_ACCEPTABLE),
            Refused::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, PAYLOAD_TOO_LARGE),
            Refused::MediaType => (StatusCode::UNSUPPORTED_MEDIA_TYPE, UNSUPPORTED_MEDIA_TYPE),
            Refused::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, TIMEOUT),
            Refused::Unauthenticated(_) => (
                StatusCode::UNAUTHORIZED,
                crate::graphql::errors::UNAUTHENTICATED,
            ),
            Refused::AuthUnavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                crate::graphql::errors::UNAVAILABLE,
            ),
        }
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let body = serde_json::json!({
            "errors": [{"message": self.to_string(), "extensions": {"code": code}}]
        });
        let mut res = (status, Json(body)).into_response();
        if self == Refused::MutationOverGet {
            let post = header::HeaderValue::from_static("POST");
            res.headers_mut().insert(header::ALLOW, post);
        }
        if matches!(self, Refused::Unauthenticated(_)) {
            let challenge = header::HeaderValue::from_static("Bearer error=\"invalid_token\"");
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        res
    }
}

/// Gives every error of a response a code. Resolver errors carry theirs already; what
/// is left comes from async-graphql itself: a rejected operation (parse, validation,
/// limits) or an internal fault while executing (whose message is replaced).
pub fn classify(error: &mut ServerError, limits: &super::Limits) {
    if error
        .extensions
        .as_ref()
        .is_some_and(|x| x.get("code").is_some())
    {
        return;
    }
    let message = error.message.clone();
    let (code, new_message) = if message.contains("nested too deep") {
        (
            QUERY_TOO_DEEP,
            Some(format!(
                "Query is nested too deep: at most {} levels are allowed.",
                limits.max_depth
            )),
        )
    } else if message.contains("too complex") {
        (
            QUERY_TOO_COMPLEX,
            Some(format!(
                "Query is too complex: a cost of at most {} is allowed.",
                limits.max_complexity
            )),
        )
    } else if !error.path.is_empty() {
        tracing::error!(%message, path = ?error.path, "internal error while resolving");
        (INTERNAL, Some("internal error".to_string()))
    } else if message.starts_with("Invalid value for argument")
        || message.starts_with("Invalid value for variable")
    {
        (BAD_USER_INPUT, None)
    } else if message.trim_start().starts_with("-->") {
        (GRAPHQL_PARSE_FAILED, None)
    } else {
        (GRAPHQL_VALIDATION_FAILED, None)
    };
    if let Some(m) = new_message {
        error.message = m;
    }
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", code);
}

#[cfg(test)]
mod tests {
    use async_graphql::{Pos, Value};

    use super::*;

    #[test]
    fn classify_fills_missing_codes() {
        let limits = crate::bff::Limits::default();
        let mut deep = ServerError::new("Query is nested too deep.", None);
        classify(&mut deep, &limits);
        assert!(deep.message.contains("at most 10 levels"));
        assert_eq!(
            deep.extensions.as_ref().and_then(|x| x.get("code")),
            Some(&Value::from(QUERY_TOO_DEEP))
        );

        let mut odd = ServerError::new("internal: non-null types require a return value", None);
        odd.path = vec![async_graphql::PathSegment::Field("x".into())];
        classify(&mut odd, &limits);
        assert_eq!(odd.message, "internal error");

        let mut kept = coded(NOT_FOUND, "no such product").into_server_error(Pos::default());
        classify(&mut kept, &limits);
        assert_eq!(
            kept.extensions.as_ref().and_then(|x| x.get("code")),
            Some(&Value::from(NOT_FOUND))
        );
    }
}
