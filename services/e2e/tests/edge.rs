//! The edge on the real servers: PostgreSQL, Kafka and FerretDB for real, every
//! deployable behind its generated Envoy, driven through the BFF's Envoy, which verifies
//! tokens (`jwt_authn`) before the BFF does. The GraphQL-over-HTTP audit passes through
//! it; for every operation on another customer's things, no token, a bad token (expired,
//! tampered, `alg: none`, garbage: 401 from Envoy, as coded JSON) and another customer's
//! token are refused and change nothing; logout ends the session.
//!
//! The generated local ports are fixed: this test serializes with the other journeys on
//! [`lock_ports`].

use e2e::authz::*;
use e2e::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bffs_envoy_guards_the_shop() {
    let stack = start_whole_shop().await;
    let url = stack.graphql_url();
    tokio::task::spawn_blocking(move || graphql_over_http_audit(&url))
        .await
        .expect("the audit");
    let anon = stack.graphql();
    only_the_owner_reaches_their_things(anon, stack.database_url("user")).await;
    logout_ends_the_session(anon).await;
    ended_sessions_pass_the_identity_envoy(stack.edge("user")).await;
    stack.stop();
}

/// Every BFF replica learns of logouts elsewhere by polling `EndedSessions` through the
/// identity deployable's Envoy (a route missing there would only be logged).
async fn ended_sessions_pass_the_identity_envoy(edge: String) {
    use keel::auth::pb::{EndedSessionsRequest, auth_client::AuthClient};
    let channel = tonic::transport::Endpoint::from_shared(edge)
        .expect("the Envoy's URL")
        .connect()
        .await
        .expect("the identity deployable's Envoy");
    let ended = AuthClient::new(channel)
        .ended_sessions(EndedSessionsRequest { since_unix_ms: 0 })
        .await
        .expect("EndedSessions through Envoy")
        .into_inner();
    assert!(
        !ended.sessions.is_empty(),
        "the session logged out above is listed: {ended:?}"
    );
}
