//! The tasks service (CQS + event sourcing): only its rules, the [`Task`] aggregate, on
//! the runtime the generator wires up (`{{crate}}_tasks::run_with`: settings, the store
//! writing events, state rows and outbox in one transaction, the use cases, the relay).

pub mod aggregate;

pub use aggregate::Task;
pub use {{crate}}_tasks::Config;

/// Serves the tasks service on `incoming` until `stop` turns true (the launcher's entry).
pub async fn run(
    config: Config,
    incoming: tonic::transport::server::TcpIncoming,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    {{crate}}_tasks::run_with::<Task>(config, Some(incoming), stop).await
}
