//! The cart service (CQRS + event sourcing): only the rules the spec cannot state, on
//! the runtime the generator wires up (`shop_cart::run_with`: settings, roles, event
//! store, relay, subscriptions, read model, queries, rebuild and repair).
//!
//! - [`aggregate`]: the `Cart` aggregate (state, fold, decisions, view).
//! - [`command`]: the product check before an append, the account-deletion decision.

pub mod aggregate;
pub mod command;

pub use aggregate::Cart;
pub use command::{ProductExists, Subscriptions};
pub use shop_cart::Config;

/// Serves `config.role` on `incoming` until `stop` turns true (the launcher's entry).
pub async fn run(
    config: Config,
    incoming: tonic::transport::server::TcpIncoming,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let checks = ProductExists::from_config;
    shop_cart::run_with::<Cart, _, _>(config, incoming, stop, checks, Subscriptions::new).await
}
