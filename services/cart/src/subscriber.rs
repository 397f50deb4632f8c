//! The command side's subscription to other services' events: `user.AccountDeleted`
//! (topic `user.events`, envelopes `shop_user::pb::CustomerEvent`, key = customer id)
//! deletes that customer's carts.
//!
//! Its own consumer group; offsets committed after the commands ran. Each `DeleteCart`
//! runs under the idempotency key of the user event's id, and `DeleteCart` on a deleted
//! cart emits nothing, so a duplicate on the wire (or a redelivery after a crash) never
//! deletes twice.

use std::time::Duration;

use prost::Message as _;
use shop_cart::CartSubscriptions;
use shop_kit::bus::{Backoff, Bus, Handled, Handler, Received};
use shop_kit::{RequestContext, ServiceError};
use shop_user::CustomerEvent;
use tokio::sync::watch;

use crate::command::CartCommands;

#[derive(Debug, Clone)]
pub struct SubscriberConfig {
    pub topic: String,
    pub group: String,
    pub backoff: Duration,
}

impl Default for SubscriberConfig {
    fn default() -> SubscriberConfig {
        SubscriberConfig {
            topic: shop_user::TOPIC.to_string(),
            group: "cart-command-user-events".into(),
            backoff: Duration::from_millis(500),
        }
    }
}

/// Handles one user event; `Err` means "try again later".
pub async fn on_user_event(
    commands: &CartCommands,
    envelope: &shop_user::pb::CustomerEvent,
) -> Result<usize, ServiceError> {
    let (meta, event) = match CustomerEvent::from_envelope(envelope) {
        Ok(x) => x,
        Err(e) => {
            tracing::error!(alert = "user_event_undecodable", error = %e, "ALERT: malformed user event: skipped");
            return Ok(0);
        }
    };
    let CustomerEvent::AccountDeleted(deleted) = event else {
        return Ok(0);
    };
    let ctx = RequestContext {
        request_id: meta.event_id.to_string(),
        correlation_id: meta.correlation_id.clone(),
    };
    let todo = commands
        .on_user_account_deleted(meta.stream_id, &deleted)
        .await?;
    let mut done = 0;
    for command in &todo {
        match commands
            .execute(&ctx, meta.event_id.to_string().as_str(), None, command)
            .await
        {
            Ok(_) => done += 1,
            // Gone meanwhile: nothing left to delete.
            Err(ServiceError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    tracing::info!(customer_id = %meta.stream_id, carts = done, "account deleted: carts deleted");
    Ok(done)
}

/// The subscription's part of the bus loop: decode, run the commands, commit or retry.
struct DeleteCartsOf(CartCommands);

impl Handler for DeleteCartsOf {
    async fn handle(&mut self, m: &Received) -> Handled {
        let result = match shop_user::pb::CustomerEvent::decode(m.payload.as_slice()) {
            Ok(envelope) => on_user_event(&self.0, &envelope).await,
            Err(e) => {
                tracing::error!(alert = "user_event_undecodable", error = %e, "ALERT: undecodable user event: skipped");
                Ok(0)
            }
        };
        match result {
            Ok(_) => Handled::Done,
            Err(e) => {
                tracing::warn!(error = %e, "user event not handled: retrying");
                Handled::Retry
            }
        }
    }
}

/// Consumes the user topic of `bus` until `shutdown`: commits a message after its
/// commands ran, reads it again (seek back) after a backoff when they failed.
pub async fn run_subscriber(
    commands: CartCommands,
    bus: Bus,
    config: SubscriberConfig,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut consumer = bus
        .subscriber(&config.group, None, &[&config.topic])
        .await?;
    tracing::info!(topic = %config.topic, group = %config.group, bus = ?bus, "user-events subscriber consuming");
    let backoff = Backoff {
        initial: config.backoff,
        max: config.backoff,
    };
    consumer
        .consume(&mut shutdown, backoff, &mut DeleteCartsOf(commands))
        .await;
    tracing::info!("user-events subscriber stopped");
    Ok(())
}
