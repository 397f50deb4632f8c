//! Channels to the upstream deployables, and the metadata of every call.

use std::time::Duration;

use tonic::metadata::MetadataValue;

/// Envoy's route timeout for every upstream RPC is 10 s; the BFF gives up at the same time.
pub const DEFAULT_UPSTREAM_TIMEOUT_MS: u64 = 10_000;
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 1_000;

pub use crate::upstream::{Timeouts, UpstreamError, channel};

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
