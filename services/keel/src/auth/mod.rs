//! Identity for every system whose spec has `auth:`: passwords ([`password`]), signed
//! access tokens and their public keys ([`token`]), and the `keel.auth.v1.Auth` gRPC
//! service ([`AuthService`]) the identity service serves from its own database
//! (the generated `auth_credentials`, `auth_sessions` and `auth_keys` tables).
//!
//! The BFF verifies access tokens with the published keys ([`token::Verifier`]) and
//! decides who may call what from the spec; services behind it are reachable only
//! from their callers (the generated network policies), so a token is checked once,
//! at the edge, and again by the BFF.

#[cfg(feature = "auth-server")]
pub mod password;
#[cfg(feature = "auth-server")]
mod service;
#[cfg(feature = "auth-server")]
mod store;
pub mod token;

#[cfg(feature = "auth-server")]
pub use service::{AuthService, Settings};
pub use token::{Claims, KeyPair, Principal, TokenError, Verifier};

/// The generated gRPC code of `proto/keel/auth/v1/auth.proto`.
#[allow(clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("keel.auth.v1");
}

/// The role every subject the identity service registers gets.
pub const CUSTOMER: &str = "customer";
/// The role of the people who run the system.
pub const BACK_OFFICE: &str = "back-office";
