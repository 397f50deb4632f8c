//! Waiting for a dependency that is still starting.

use std::future::Future;
use std::time::Duration;

/// Retries `connect` with backoff until it succeeds or `timeout` passes, so a service
/// started alongside its database waits for it instead of crashing.
pub async fn retry_until<T, E, F, Fut>(
    what: &str,
    timeout: Duration,
    mut connect: F,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut delay = Duration::from_millis(100);
    loop {
        match connect().await {
            Ok(v) => return Ok(v),
            Err(e) if tokio::time::Instant::now() + delay < deadline => {
                tracing::warn!(error = %e, "{what} not ready, retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(e),
        }
    }
}
