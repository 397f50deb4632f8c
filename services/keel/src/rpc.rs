//! What every generated gRPC method does around the hand-written (or generated) use
//! case, written once: the request context from Envoy's headers, validation against
//! the spec, a tracing span with the request id, errors logged and turned into statuses.

use std::future::Future;

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
    match tracing::Instrument::instrument(result, span.clone()).await {
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
