//! The user service (CQS + event sourcing): only its rules, the [`Customer`] aggregate,
//! on the runtime the generator wires up (`shop_user::run_with`: settings, the store
//! writing events, state rows and outbox in one transaction, the use cases, the outbox
//! relay).

pub mod aggregate;

pub use aggregate::Customer;
pub use shop_user::Config;

/// Serves the user service on `incoming` until `stop` turns true (the launcher's entry).
pub async fn run(
    config: Config,
    incoming: tonic::transport::server::TcpIncoming,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    shop_user::run_with::<Customer>(config, Some(incoming), stop).await
}
