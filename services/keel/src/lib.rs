//! The runtime the generated crates build on.
//!
//! Generated code validates every request against the spec's constraints with
//! [`Violations`] before hand-written code sees it, and turns every [`ServiceError`]
//! into a gRPC status with machine-readable details.

#[cfg(feature = "auth")]
pub mod auth;
#[cfg(feature = "bff")]
pub mod bff;
#[cfg(feature = "bus")]
pub mod bus;
mod context;
#[cfg(feature = "crud")]
pub mod crud;
#[cfg(feature = "postgres")]
pub mod db;
#[cfg(feature = "embedded")]
pub mod embedded;
mod error;
pub mod es;
#[cfg(feature = "graphql")]
pub mod graphql;
pub mod idempotency;
#[cfg(feature = "launch")]
pub mod launch;
#[cfg(any(feature = "server", feature = "sql"))]
mod retry;
pub mod rpc;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "sql")]
pub mod sql;
pub mod table;
#[cfg(feature = "testing")]
pub mod testing;
mod time;
pub mod upstream;
mod validate;

pub use context::RequestContext;
pub use error::ServiceError;
pub use time::{timestamp_to_utc, utc_to_timestamp};
pub use validate::{FieldViolation, Validate, Violations, path as validate_path};
