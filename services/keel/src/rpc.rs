//! What every generated gRPC method does around the hand-written (or generated) use
//! case, written once: the request context from Envoy's headers, validation against
//! the spec, a tracing span with the request id, errors logged and turned into statuses.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::{RequestContext, ServiceError, Validate};

/// Serves one call of `method`: validates the request, then runs `handle` in a span.
pub async fn serve<Req, Resp, F>(
    method: &'static str,
    request: tonic::Request<Req>,
    handle: impl FnOnce(RequestContext, Req) -> F,
) -> Result<tonic::Response<Resp>, tonic::Status>
where
    Req: Validate,
    F: Future<Output = Result<Resp, ServiceError>>,
{
    let ctx = RequestContext::from_metadata(request.metadata());
    let request = request.into_inner();
    let span = tracing::info_span!("rpc", method, request_id = %ctx.request_id);
    let result = async {
        request.validate()?;
        handle(ctx, request).await
    };
    let timing = Timing::start(span.clone());
    let result = tracing::Instrument::instrument(result, span.clone()).await;
    timing.finish();
    match result {
        Ok(response) => Ok(tonic::Response::new(response)),
        Err(e) => {
            span.in_scope(|| match &e {
                ServiceError::Internal(cause) => tracing::error!(%cause, "internal error"),
                other => tracing::info!(code = ?other.code(), error = %other, "request failed"),
            });
            Err(e.into())
        }
    }
}

/// A call taking longer than this is logged as slow.
pub const SLOW_CALL: Duration = Duration::from_secs(1);

/// How long a call took, logged when it was slow; and a call dropped before it finished
/// (the caller gave up: its deadline or a reset), which would otherwise leave no trace.
struct Timing {
    span: tracing::Span,
    started: Instant,
    finished: bool,
}

impl Timing {
    fn start(span: tracing::Span) -> Timing {
        Timing {
            span,
            started: Instant::now(),
            finished: false,
        }
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn finish(mut self) {
        self.finished = true;
        let elapsed_ms = self.elapsed_ms();
        self.span.in_scope(|| {
            if Duration::from_millis(elapsed_ms) >= SLOW_CALL {
                tracing::warn!(elapsed_ms, "slow call");
            } else {
                tracing::debug!(elapsed_ms, "call served");
            }
        });
    }
}

impl Drop for Timing {
    fn drop(&mut self) {
        if !self.finished {
            let elapsed_ms = self.elapsed_ms();
            self.span.in_scope(|| {
                tracing::warn!(
                    elapsed_ms,
                    "call abandoned by the caller before it finished"
                )
            });
        }
    }
}
