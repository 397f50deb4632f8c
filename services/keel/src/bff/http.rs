//! HTTP: GraphQL over POST (and GET for queries only), GraphiQL, health, request ids.

use std::time::Instant;

use async_graphql::http::GraphiQLSource;
use async_graphql::parser::types::{DocumentOperations, OperationType};
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::extract::{Extension, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tracing::Instrument;

use super::Bff;

/// The request id of one HTTP request: Envoy's `x-request-id`, or a new UUID.
#[derive(Clone, Debug)]
struct RequestId(String);

pub fn router(bff: Bff) -> Router {
    Router::new()
        .route("/", get(graphiql))
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route("/healthz", get(healthz))
        .layer(axum::middleware::from_fn(request_id))
        .with_state(bff)
}

fn valid_request_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic())
}

async fn request_id(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|s| valid_request_id(s))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let path = req.uri().path().to_string();
    let span = tracing::info_span!("http", request_id = %id, method = %req.method(), path = %path);
    let start = Instant::now();
    let mut res = next.run(req).instrument(span.clone()).await;
    let status = res.status().as_u16();
    let duration_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    span.in_scope(|| {
        if path == "/healthz" {
            tracing::debug!(status, duration_ms, "request");
        } else {
            tracing::info!(status, duration_ms, "request");
        }
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().entry("x-request-id").or_insert(v);
    }
    res
}

async fn healthz() -> &'static str {
    "ok"
}

async fn graphiql() -> Html<String> {
    Html(GraphiQLSource::build().endpoint("/graphql").finish())
}

async fn graphql_post(
    State(bff): State<Bff>,
    Extension(RequestId(id)): Extension<RequestId>,
    req: GraphQLRequest,
) -> GraphQLResponse {
    bff.execute(req.into_inner(), id).await.into()
}

/// GET runs queries only: a mutation must not be triggered by a link or a prefetch.
async fn graphql_get(
    State(bff): State<Bff>,
    Extension(RequestId(id)): Extension<RequestId>,
    req: GraphQLRequest,
) -> Response {
    let mut req = req.into_inner();
    if is_mutation(&mut req) {
        let body = serde_json::json!({
            "errors": [{
                "message": "mutations are only accepted with POST",
                "extensions": {"code": "METHOD_NOT_ALLOWED"},
            }]
        });
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(axum::http::header::ALLOW, "POST")],
            Json(body),
        )
            .into_response();
    }
    GraphQLResponse::from(bff.execute(req, id).await).into_response()
}

fn is_mutation(req: &mut async_graphql::Request) -> bool {
    let name = req.operation_name.clone();
    let Ok(doc) = req.parsed_query() else {
        // Execution reports the parse error.
        return false;
    };
    let mutation =
        |op: &async_graphql::parser::types::OperationDefinition| op.ty == OperationType::Mutation;
    match &doc.operations {
        DocumentOperations::Single(op) => mutation(&op.node),
        DocumentOperations::Multiple(ops) => match name {
            Some(n) => ops.get(n.as_str()).is_some_and(|op| mutation(&op.node)),
            None => ops.values().any(|op| mutation(&op.node)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::valid_request_id;

    #[test]
    fn request_ids_are_short_visible_ascii() {
        assert!(valid_request_id("0b7c7d1e-6f9c-4f5e-8a8e-9c7f1a2b3c4d"));
        assert!(!valid_request_id(""));
        assert!(!valid_request_id("has space"));
        assert!(!valid_request_id(&"x".repeat(129)));
    }
}
