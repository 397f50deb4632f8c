//! HTTP: GraphQL over POST (and GET for queries only), the web pages ([`super::web`]),
//! health, request ids,
//! behind the edge's guards: CORS ([`super::cors`]), the request timeout and the body
//! size limit of [`super::Limits`]. What the GraphQL requests and responses look like is
//! [`super::over_http`].

use std::time::{Duration, Instant};

use async_graphql::parser::types::{DocumentOperations, OperationType};
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody, QueryRejection};
use axum::extract::{DefaultBodyLimit, Extension, FromRequest, Query, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tracing::Instrument;

use super::errors::Refused;
use super::over_http::{GetParams, Media, Params, is_json, respond};
use super::{Bff, Limits, cors, web};
use crate::graphql::Caller;
use crate::graphql::auth::AuthFailure;

/// The request id of one HTTP request: Envoy's `x-request-id`, or a new UUID.
#[derive(Clone, Debug)]
struct RequestId(String);

pub fn router(bff: Bff) -> Router {
    let limits = bff.limits.clone();
    let origins = limits.cors_allowed_origins.clone();
    Router::new()
        .route("/", get(web::index))
        .route("/graphiql", get(web::console))
        .route("/back-office", get(web::back_office_slash))
        .route("/back-office/", get(web::back_office))
        .route("/back-office/{*screen}", get(web::back_office))
        .route("/assets/{*path}", get(web::asset))
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route("/healthz", get(healthz))
        .route("/.well-known/jwks.json", get(jwks))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(from_fn_with_state(
            limits.clone(),
            refuse_declared_too_large,
        ))
        .layer(from_fn_with_state(limits, time_out))
        .layer(cors::layer(&origins))
        .layer(from_fn_with_state(origins, cors::refuse_unlisted_preflight))
        .layer(from_fn(request_id))
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

/// A body declared larger than the limit is refused unread; one that turns out larger
/// while it is read is refused by the extractors' limit ([`DefaultBodyLimit`]).
async fn refuse_declared_too_large(
    State(limits): State<Limits>,
    req: Request,
    next: Next,
) -> Response {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
        return Refused::TooLarge(limits.max_body_bytes).into_response();
    }
    next.run(req).await
}

async fn time_out(State(limits): State<Limits>, req: Request, next: Next) -> Response {
    let limit = Duration::from_millis(limits.request_timeout_ms);
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(res) => res,
        Err(_) => Refused::Timeout(limits.request_timeout_ms).into_response(),
    }
}

async fn graphql_post(
    State(bff): State<Bff>,
    Extension(RequestId(id)): Extension<RequestId>,
    req: Request,
) -> Result<Response, Refused> {
    if !is_json(req.headers()) {
        return Err(Refused::MediaType);
    }
    let caller = caller(&bff, req.headers()).await?;
    let media = Media::negotiate(req.headers())?;
    let body = Bytes::from_request(req, &()).await.map_err(|e| match e {
        BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
            Refused::TooLarge(bff.limits.max_body_bytes)
        }
        other => Refused::NotJson(other.body_text()),
    })?;
    let request = Params::from_body(&body)?.into_request();
    Ok(respond(media, bff.execute_as(request, id, caller).await))
}

/// The caller the request's `Authorization` header names; a bad token is refused
/// before anything runs.
async fn caller(bff: &Bff, headers: &HeaderMap) -> Result<Caller, Refused> {
    let Some(auth) = bff.auth() else {
        return Ok(Caller::default());
    };
    let header = match headers.get(AUTHORIZATION) {
        None => None,
        Some(v) => Some(v.to_str().map_err(|_| {
            Refused::Unauthenticated("the Authorization header is not text".into())
        })?),
    };
    match auth.authenticate(header).await {
        Ok(p) => Ok(Caller(p)),
        Err(AuthFailure::Invalid(why)) => Err(Refused::Unauthenticated(why)),
        Err(AuthFailure::Unavailable(why)) => Err(Refused::AuthUnavailable(why)),
    }
}

/// The keys access tokens are signed with (for Envoy's `jwt_authn` and clients).
async fn jwks(State(bff): State<Bff>) -> Result<Response, Refused> {
    let Some(auth) = bff.auth() else {
        return Ok(axum::http::StatusCode::NOT_FOUND.into_response());
    };
    let keys = auth
        .jwks()
        .await
        .map_err(|e| Refused::AuthUnavailable(e.to_string()))?;
    Ok(([(CONTENT_TYPE, "application/json")], keys).into_response())
}

/// GET runs queries only: a mutation must not be triggered by a link or a prefetch.
async fn graphql_get(
    State(bff): State<Bff>,
    Extension(RequestId(id)): Extension<RequestId>,
    headers: HeaderMap,
    params: Result<Query<GetParams>, QueryRejection>,
) -> Result<Response, Refused> {
    let media = Media::negotiate(&headers)?;
    let Query(params) = params.map_err(|e| Refused::BadParameters(e.body_text()))?;
    let mut request = Params::from_get(params)?.into_request();
    if is_mutation(&mut request) {
        return Err(Refused::MutationOverGet);
    }
    let caller = caller(&bff, &headers).await?;
    Ok(respond(media, bff.execute_as(request, id, caller).await))
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
