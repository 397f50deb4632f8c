//! The BFF against the GraphQL-over-HTTP spec: `graphql-http`'s server audit (the npm
//! package, pinned in `services/e2e/audit/`, installed there by its `run.sh` when
//! missing) against `/graphql` of `shop up`. Every audit must pass or be a notice (an
//! optional MAY the BFF does not do): no error, no warning. Needs node and npm. The same
//! audit through the BFF's Envoy on the real servers: `tests/edge.rs`.

use e2e::authz::graphql_over_http_audit;
use e2e::embedded::start;
use e2e::*;

#[test]
fn the_bff_passes_the_graphql_over_http_audit() {
    build_binaries(&["shop"]);
    let data = tempfile::tempdir().expect("data folder");
    let (mut shop, banner) = start(data.path(), "graphql-over-http-shop");
    graphql_over_http_audit(&banner.graphql);
    let status = shop.interrupt(std::time::Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "{}", shop.log_tail());
}
