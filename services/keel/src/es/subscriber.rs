//! Subscriptions to other services' events: consumes their topic in a group of its own
//! and runs the commands a [`Reaction`] decides, each under the idempotency key of the
//! event that caused it, so a redelivered event (at least once) never acts twice. The
//! offset is committed after the commands ran; a failure retries the same message.

use std::marker::PhantomData;
use std::time::Duration;

use prost::Message as _;
use tokio::sync::watch;

use super::command::{Checks, Executor};
use super::{Decider, Event, EventMeta, Reaction};
use crate::bus::{Backoff, Bus, BusError, Handled, Handler, Received};
use crate::{RequestContext, ServiceError};

#[derive(Debug, Clone)]
pub struct SubscriberConfig {
    pub topic: String,
    pub group: String,
    pub backoff: Duration,
}

impl Default for SubscriberConfig {
    fn default() -> SubscriberConfig {
        SubscriberConfig {
            topic: String::new(),
            group: String::new(),
            backoff: Duration::from_millis(500),
        }
    }
}

/// Runs the reaction's commands for one event; `Ok` with how many took effect.
pub async fn react<E, D, C, R>(
    executor: &Executor<D, C>,
    reaction: &R,
    meta: &EventMeta,
    event: &E,
) -> Result<usize, ServiceError>
where
    E: Event,
    D: Decider,
    C: Checks<D>,
    R: Reaction<E, Command = D::Command>,
{
    let ctx = RequestContext {
        request_id: meta.event_id.to_string(),
        correlation_id: meta.correlation_id.clone(),
    };
    let key = meta.event_id.to_string();
    let mut done = 0;
    for command in reaction.commands(meta, event).await? {
        match executor.execute(&ctx, Some(&key), None, &command).await {
            Ok(_) => done += 1,
            // Gone meanwhile: nothing left to act on.
            Err(ServiceError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

struct React<E, D, C, R> {
    executor: Executor<D, C>,
    reaction: R,
    events: PhantomData<fn() -> E>,
}

impl<E, D, C, R> Handler for React<E, D, C, R>
where
    E: Event,
    D: Decider,
    C: Checks<D>,
    R: Reaction<E, Command = D::Command>,
{
    async fn handle(&mut self, m: &Received) -> Handled {
        let decoded = E::Envelope::decode(m.payload.as_slice())
            .map_err(|e| e.to_string())
            .and_then(|e| E::from_envelope(&e).map_err(|e| e.to_string()));
        let (meta, event) = match decoded {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(alert = "subscription_event_undecodable", topic = %m.topic,
                    partition = m.partition, offset = m.offset, error = %e,
                    "ALERT: undecodable event from another service: skipped");
                return Handled::Done;
            }
        };
        match react(&self.executor, &self.reaction, &meta, &event).await {
            Ok(done) => {
                tracing::info!(topic = %m.topic, stream_id = %meta.stream_id, commands = done, "event reacted to");
                Handled::Done
            }
            Err(e) => {
                tracing::warn!(topic = %m.topic, error = %e, "reaction failed: retrying");
                Handled::Retry
            }
        }
    }
}

/// Consumes `config.topic` of `bus` until `shutdown`, running `reaction`'s commands
/// with `executor`.
pub async fn run_subscriber<E, D, C, R>(
    executor: Executor<D, C>,
    reaction: R,
    bus: Bus,
    config: SubscriberConfig,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), BusError>
where
    E: Event,
    D: Decider,
    C: Checks<D>,
    R: Reaction<E, Command = D::Command>,
{
    let mut consumer = bus
        .subscriber(&config.group, None, &[&config.topic])
        .await?;
    tracing::info!(topic = %config.topic, group = %config.group, bus = ?bus, "subscriber consuming");
    let backoff = Backoff {
        initial: config.backoff,
        max: config.backoff,
    };
    let mut handler = React {
        executor,
        reaction,
        events: PhantomData::<fn() -> E>,
    };
    consumer.consume(&mut shutdown, backoff, &mut handler).await;
    tracing::info!(topic = %config.topic, "subscriber stopped");
    Ok(())
}
