//! The cart service (CQRS + event sourcing) behind the generated `shop-cart` traits.
//!
//! - [`app`]: the process: [`Config`] (flags and environment) and [`run`] (one role).
//! - [`aggregate`]: the hand-written `Cart` aggregate (state, fold, decisions).
//! - [`store`]: the event store, one record per commit: on the MongoDB wire or in SQL
//!   (PostgreSQL or SQLite), by URL.
//! - [`command`]: the command use cases and the account-deletion subscription.
//! - [`subscriber`]: consumes `user.events`.
//!
//! The read model (its tables, rows from `Cart::view`, ViewCart) is generated
//! (`shop_cart::CartReadModel`, `shop_cart::CartQueryHandlers`) and kept by the runtime
//! ([`shop_kit::es::view`], [`shop_kit::es::rebuild`]); the relay (store to bus) and the
//! store tailer are the runtime's too ([`shop_kit::es::relay`], [`shop_kit::es::tail`]).

pub mod aggregate;
pub mod app;
pub mod command;
pub mod store;
pub mod subscriber;

use std::future::Future;
use std::sync::Arc;

pub use aggregate::Cart;
pub use app::{Config, EventsFrom, Role, Task, run};
pub use command::{CartCommands, Executed, FixedCatalog, GrpcCatalog, ProductCatalog};
pub use shop_kit::es::handler::HandlerConfig;
pub use shop_kit::es::relay::RelayConfig;
pub use shop_kit::es::tail::TailConfig;
pub use store::EventStore;
pub use subscriber::SubscriberConfig;

/// The cart's read model (generated) over the hand-written aggregate.
pub type ReadModel = shop_cart::CartReadModel<Cart>;
/// Projects the cart's events into its read model.
pub type Projector = shop_kit::es::view::Projector<ReadModel>;
/// ViewCart from the read model (generated).
pub type CartQueries = shop_cart::CartQueryHandlers<Cart>;

/// The relay of the cart's event store.
pub type Relay = shop_kit::es::relay::Relay<shop_cart::CartEvent>;
/// The event handler that tails the cart's event store.
pub type StoreTailer = shop_kit::es::tail::StoreTailer<shop_cart::CartEvent, Projector>;

/// The runtime's reader of a contiguous prefix of positions (for tests).
pub mod relay {
    pub use shop_kit::es::relay::*;
}

use shop_kit::server;
use tonic::transport::server::TcpIncoming;

/// Serves `shop.cart.v1.CartCommandService` with health and reflection.
pub async fn serve_command(
    commands: CartCommands,
    incoming: TcpIncoming,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    server::grpc_router(
        &[shop_cart::pb::cart_command_service_server::SERVICE_NAME],
        &[shop_cart::FILE_DESCRIPTOR_SET],
    )
    .await?
    .add_service(shop_cart::cart_command_server(Arc::new(
        commands.handlers(),
    )))
    .serve_with_incoming_shutdown(incoming, shutdown)
    .await?;
    Ok(())
}

/// Serves `shop.cart.v1.CartQueryService` with health and reflection.
pub async fn serve_query(
    queries: CartQueries,
    incoming: TcpIncoming,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    server::grpc_router(
        &[shop_cart::pb::cart_query_service_server::SERVICE_NAME],
        &[shop_cart::FILE_DESCRIPTOR_SET],
    )
    .await?
    .add_service(shop_cart::cart_query_server(Arc::new(queries)))
    .serve_with_incoming_shutdown(incoming, shutdown)
    .await?;
    Ok(())
}

/// Serves only gRPC health (the event handler's app port, for its Envoy's checks).
pub async fn serve_health(
    incoming: TcpIncoming,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    server::grpc_router(&[], &[])
        .await?
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    Ok(())
}
