//! The runtime of the BFF's generated GraphQL resolvers (`generated/rust/bff`): what
//! every resolver needs and no spec decides. Arguments read with every violation
//! collected ([`Args`]), proto values as GraphQL values ([`values`]), calls with the
//! request's id and deadline, status to error mapping ([`errors`]), and per-request
//! loaders that batch fetches by id ([`loader`]).

mod args;
pub mod auth;
pub mod errors;
pub mod loader;
mod resolve;
mod upstream;
pub mod values;

pub use crate::auth::Principal;
pub use args::Args;
pub use async_graphql::Value;
pub use async_graphql::dynamic::{FieldFuture, FieldValue, ResolverContext};
pub use auth::{Audience, Authn, Caller, allow, caller_id, claimed, owned, subject};
pub use errors::Violation;
pub use loader::{
    BoxFuture, ByKey, Fetch, FetchMany, Fetched, FetchedMany, KeyLoader, batch_loader, loader,
    related,
};
pub use resolve::{Out, Resolve, data, found, grpc, maybe, ok, ok_or_gone, sent, value};
pub use upstream::{
    Call, DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_UPSTREAM_TIMEOUT_MS, Timeouts, UpstreamError, channel,
};
pub use values::{
    Result, child, command_payload, connection, datetime, delete_payload, int, list, object, opt,
    opt_datetime, parent_str,
};
