//! The user service (CQS + event sourcing) behind the generated `UserUseCases` trait.
//!
//! - [`aggregate`]: the hand-written `Customer` aggregate (state, fold, decisions).
//! - [`store`]: commands in one PostgreSQL transaction (events + state row + outbox),
//!   queries on the state table.
//! - [`relay`]: the outbox relay that publishes events to Kafka, at least once, in order.

pub mod aggregate;
pub mod relay;
pub mod store;

use std::future::Future;
use std::sync::Arc;

pub use aggregate::Customer;
pub use relay::{Lease, Relay, RelayConfig};
pub use store::Users;

use shop_kit::server;
use tonic::transport::server::TcpIncoming;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../generated/sql/shop_user");

/// Serves `shop.user.v1.UserService` with health (serving for it and for "") and
/// reflection on `incoming` until `shutdown` resolves; in-flight calls finish first.
pub async fn serve(
    users: Users,
    incoming: TcpIncoming,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    server::grpc_router(
        &[shop_user::pb::user_service_server::SERVICE_NAME],
        &[shop_user::FILE_DESCRIPTOR_SET],
    )
    .await?
    .add_service(shop_user::user_server(Arc::new(users)))
    .serve_with_incoming_shutdown(incoming, shutdown)
    .await?;
    Ok(())
}
