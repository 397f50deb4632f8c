//! Channels to other deployables (normally their Envoys), for every service that calls
//! another: generated BFF resolvers and hand-written rules alike.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

/// How long a call may take (also sent as `grpc-timeout`), and a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub call: Duration,
    pub connect: Duration,
}

impl Timeouts {
    pub fn from_millis(call: u64, connect: u64) -> Timeouts {
        Timeouts {
            call: Duration::from_millis(call),
            connect: Duration::from_millis(connect),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad URL for upstream {name} ({url}): {error}")]
pub struct UpstreamError {
    pub name: String,
    pub url: String,
    pub error: String,
}

/// A channel to the deployable `name` that connects on first use (the BFF starts
/// without its upstreams; a call to a missing one fails with UNAVAILABLE). Must be
/// created inside a tokio runtime.
pub fn channel(name: &str, url: &str, t: Timeouts) -> Result<Channel, UpstreamError> {
    let endpoint = Endpoint::from_shared(url.to_string()).map_err(|e| UpstreamError {
        name: name.to_string(),
        url: url.to_string(),
        error: e.to_string(),
    })?;
    Ok(endpoint
        .connect_timeout(t.connect)
        .timeout(t.call)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(false)
        .connect_lazy())
}

/// A request to another service carrying the caller's request and correlation ids.
pub fn request<T>(ctx: &crate::RequestContext, message: T) -> tonic::Request<T> {
    with_ids(message, &ctx.request_id, &ctx.correlation_id)
}

/// A request to another service carrying these request and correlation ids.
pub fn with_ids<T>(message: T, request_id: &str, correlation_id: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    if let Ok(v) = request_id.parse() {
        r.metadata_mut().insert("x-request-id", v);
    }
    if let Ok(v) = correlation_id.parse() {
        r.metadata_mut().insert("x-correlation-id", v);
    }
    r
}

/// A dependency's failure as the caller's: transient trouble stays retryable.
pub fn error(service: &str, s: tonic::Status) -> crate::ServiceError {
    use tonic::Code;
    match s.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted | Code::Cancelled => {
            crate::ServiceError::Unavailable(format!("{service}: {}", s.message()))
        }
        code => {
            crate::ServiceError::Internal(format!("{service} answered {code:?}: {}", s.message()))
        }
    }
}

/// The answer of another service's `get` of `kind` `id` as an existence check: its
/// NOT_FOUND is the caller's NOT_FOUND naming what is missing.
pub fn found<T>(
    answer: Result<tonic::Response<T>, tonic::Status>,
    service: &str,
    kind: &str,
    id: impl std::fmt::Display,
) -> Result<(), crate::ServiceError> {
    match answer {
        Ok(_) => Ok(()),
        Err(s) if s.code() == tonic::Code::NotFound => {
            Err(crate::ServiceError::not_found(kind, id))
        }
        Err(s) => Err(error(service, s)),
    }
}
