//! Channels to the upstream deployables, and the metadata of every call.

use std::time::Duration;

use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};

/// Envoy's route timeout for every upstream RPC is 10 s; the BFF gives up at the same time.
pub const DEFAULT_UPSTREAM_TIMEOUT_MS: u64 = 10_000;
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 1_000;

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

/// What every call of one GraphQL request carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub request_id: String,
    pub timeout: Option<Duration>,
}

impl Call {
    pub fn new(request_id: impl Into<String>, timeout: Option<Duration>) -> Call {
        Call {
            request_id: request_id.into(),
            timeout,
        }
    }

    /// `message` with `x-request-id` and the deadline.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(message);
        if let Ok(v) = MetadataValue::try_from(self.request_id.as_str()) {
            r.metadata_mut().insert("x-request-id", v);
        }
        if let Some(t) = self.timeout {
            r.set_timeout(t);
        }
        r
    }
}
