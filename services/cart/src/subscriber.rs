//! The command side's subscription to other services' events: `user.AccountDeleted`
//! (topic `user.events`) deletes that customer's carts. The runtime's subscriber
//! ([`shop_kit::es::subscriber`]) consumes the topic and runs each `DeleteCart` under
//! the key of the user event's id, and `DeleteCart` on a deleted cart emits nothing, so
//! a redelivered event never deletes twice; the decision is [`CartCommands`]'
//! `CartSubscriptions` implementation.

use shop_cart::CartOnUserEvents;
use shop_kit::bus::Bus;
use tokio::sync::watch;

pub use shop_kit::es::subscriber::SubscriberConfig;

use crate::command::CartCommands;

/// Consumes the user topic of `bus` until `shutdown`.
pub async fn run_subscriber(
    commands: CartCommands,
    bus: Bus,
    config: SubscriberConfig,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let executor = commands.executor().clone();
    shop_kit::es::subscriber::run_subscriber(
        executor,
        CartOnUserEvents(commands),
        bus,
        config,
        shutdown,
    )
    .await?;
    Ok(())
}
