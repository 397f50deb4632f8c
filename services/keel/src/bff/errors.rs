//! Error codes: those of the resolvers' calls come from `keel::graphql::errors`
//! (re-exported here, with the table of codes); this adds a code to what async-graphql
//! rejects or fails on by itself.

use async_graphql::ServerError;

pub use crate::graphql::errors::*;

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
                "Query is too complex: at most {} fields are allowed.",
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
