//! The cart service (CQRS + event sourcing): only the rules the spec cannot state, on
//! the runtime the generator wires up (`shop_cart::run_with`: settings, roles, event
//! store, relay, the spec's checks, subscriptions, read model, queries, rebuild, repair).
//!
//! - [`aggregate`]: the `Cart` aggregate (state, fold, decisions, view).
//! - [`command`]: the account-deletion decision.

pub mod aggregate;
pub mod command;

pub use aggregate::Cart;
pub use command::Subscriptions;
use keel::es::command::NoChecks;
pub use shop_cart::Config;

/// Serves `config.role` on `incoming` until `stop` turns true (the launcher's entry).
pub async fn run(
    config: Config,
    incoming: tonic::transport::server::TcpIncoming,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    shop_cart::run_with::<Cart, _, _>(config, incoming, stop, |_| Ok(NoChecks), Subscriptions::new)
        .await
}
