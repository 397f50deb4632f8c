//! What a resolver returns, and its calls: metadata, status mapping.

use std::any::Any;

use async_graphql::dynamic::{FieldFuture, FieldValue, ResolverContext};
use async_graphql::{Context, Value};
use tonic::Code;

use super::errors::{self, NOT_FOUND};
use super::upstream::Call;

/// A field resolver, as the generated registry holds them by `"Type.field"`.
pub type Resolve = for<'a> fn(ResolverContext<'a>) -> FieldFuture<'a>;

/// What a resolver's future yields.
pub type Out<'a> = async_graphql::Result<Option<FieldValue<'a>>>;

pub fn value<'a>(v: Value) -> Out<'a> {
    Ok(Some(FieldValue::value(v)))
}

/// Null for `None`, without an error.
pub fn maybe<'a>(v: Option<Value>) -> Out<'a> {
    Ok(v.map(FieldValue::value))
}

/// A read's result: `None` is null with a `NOT_FOUND` error naming `kind` and `key`.
pub fn found<'a>(kind: &str, key: &str, v: Option<Value>) -> Out<'a> {
    match v {
        Some(v) => value(v),
        None if key.is_empty() => Err(errors::coded(NOT_FOUND, format!("{kind} not found"))),
        None => Err(errors::coded(NOT_FOUND, format!("{kind} {key} not found"))),
    }
}

/// A write's result, which the service must send.
pub fn sent<'a>(kind: &str, v: Option<Value>) -> Out<'a> {
    match v {
        Some(v) => value(v),
        None => Err(errors::internal(format!("upstream sent no {kind}"))),
    }
}

/// Schema or request data the BFF put there (the upstream clients, the loaders).
pub fn data<'a, T: Any + Send + Sync>(ctx: &ResolverContext<'a>) -> async_graphql::Result<&'a T> {
    ctx.ctx.data::<T>().map_err(|e| errors::internal(e.message))
}

/// The response, or the GraphQL error for a failed call to `service`.
pub fn ok<T>(
    service: &str,
    r: Result<tonic::Response<T>, tonic::Status>,
) -> async_graphql::Result<T> {
    r.map(tonic::Response::into_inner)
        .map_err(|s| errors::from_status(service, &s))
}

/// NOT_FOUND as `None`, for relations whose target may be gone.
pub fn ok_or_gone<T>(
    service: &str,
    r: Result<tonic::Response<T>, tonic::Status>,
) -> async_graphql::Result<Option<T>> {
    match r {
        Err(s) if s.code() == Code::NotFound => Ok(None),
        r => ok(service, r).map(Some),
    }
}

/// A gRPC request carrying the caller's `x-request-id` and the call deadline (a new id
/// and the channel's deadline outside a request the BFF prepared).
pub fn grpc<T>(ctx: &Context<'_>, message: T) -> tonic::Request<T> {
    match ctx.data_opt::<Call>() {
        Some(call) => call.request(message),
        None => Call::new(uuid::Uuid::new_v4().to_string(), None).request(message),
    }
}
