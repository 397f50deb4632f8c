//! The event handler on the bus: consumes a service's topic in a consumer group and
//! hands every event to a [`Projection`]; the offset is committed once the read model
//! committed (or covered, filled or parked the event); a database failure retries the
//! same message in memory.

use std::marker::PhantomData;
use std::time::Duration;

use prost::Message as _;
use tokio::sync::watch;

use super::{Event, Projected, Projection};
use crate::bus::{Backoff, Bus, BusError, Handled, Handler, Received};

#[derive(Debug, Clone)]
pub struct HandlerConfig {
    pub topic: String,
    pub group: String,
    /// Static group membership on Kafka (see [`Bus::subscriber`]).
    pub instance_id: Option<String>,
    /// First wait before a message that could not be applied is tried again (doubles up
    /// to `max_backoff`).
    pub backoff: Duration,
    pub max_backoff: Duration,
}

impl HandlerConfig {
    pub fn new(topic: impl Into<String>, group: impl Into<String>) -> HandlerConfig {
        HandlerConfig {
            topic: topic.into(),
            group: group.into(),
            ..HandlerConfig::default()
        }
    }
}

impl Default for HandlerConfig {
    fn default() -> HandlerConfig {
        HandlerConfig {
            topic: String::new(),
            group: String::new(),
            instance_id: None,
            backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
        }
    }
}

struct ProjectFromBus<E, P> {
    projection: P,
    events: PhantomData<fn() -> E>,
}

impl<E: Event, P: Projection<E>> Handler for ProjectFromBus<E, P> {
    async fn handle(&mut self, m: &Received) -> Handled {
        let source = format!("{} partition {} offset {}", m.topic, m.partition, m.offset);
        let decoded = E::Envelope::decode(m.payload.as_slice())
            .map_err(|e| format!("undecodable message: {e}"))
            .and_then(|e| E::from_envelope(&e).map_err(|e| format!("malformed event: {e}")));
        let result = match &decoded {
            Ok((meta, event)) => self.projection.project(meta, event, &source).await,
            Err(reason) => self
                .projection
                .park(None, &source, reason, &m.payload)
                .await
                .map(|()| Projected::Parked),
        };
        match result {
            Ok(done) => {
                tracing::debug!(source, outcome = ?done, "event handled");
                Handled::Done
            }
            Err(e) => {
                tracing::warn!(source, error = %e, "projecting the event failed: retrying");
                Handled::Retry
            }
        }
    }
}

/// Consumes `config.topic` of `bus` in group `config.group` and projects every event
/// into `projection`, until `shutdown`.
pub async fn run_event_handler<E: Event, P: Projection<E>>(
    projection: P,
    bus: Bus,
    config: HandlerConfig,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), BusError> {
    let mut consumer = bus
        .subscriber(
            &config.group,
            config.instance_id.as_deref(),
            &[&config.topic],
        )
        .await?;
    tracing::info!(topic = %config.topic, group = %config.group, bus = ?bus, "event handler consuming");
    let backoff = Backoff {
        initial: config.backoff,
        max: config.max_backoff,
    };
    let mut handler = ProjectFromBus {
        projection,
        events: PhantomData::<fn() -> E>,
    };
    consumer.consume(&mut shutdown, backoff, &mut handler).await;
    tracing::info!("event handler stopped");
    Ok(())
}
