//! Envoy static configs (v3 API), one per deployable and target:
//!
//! - `envoy/local/<deployable>.yaml`: one machine, everything on 127.0.0.1 with the
//!   deployable's `local` ports;
//! - `envoy/compose/<deployable>.yaml`: the Envoy runs in its own container
//!   (`<deployable>-envoy`), the app in the container named after the deployable;
//! - `k8s/base/envoy/<deployable>.yaml`: a sidecar in the app's pod (app on loopback).
//!   It lives inside the kustomize base because `configMapGenerator` may only read
//!   files under the kustomization's folder.
//!
//! Every Envoy fronts exactly one process, with its admin interface on loopback in
//! every target. A gRPC process gets one route per RPC it serves (plus
//! `grpc.health.v1.Health`), retried only when the operation is idempotent, an HTTP/2
//! cluster and active gRPC health checks; any other path is a 404 (no route). The
//! BFF's Envoy is the edge proxy, the only public listener: HTTP/1.1 and HTTP/2
//! downstream, only the BFF's paths (`layout::BFF_PATHS`) routed and 404 for the rest,
//! request bodies buffered up to `bff.limits.max_body_bytes` (413 beyond),
//! `bff.limits.request_timeout_ms` to receive a request and to answer it, a plain
//! HTTP/1.1 cluster checked on `/healthz`, and retries only for GET.
//!
//! Every config has the same hardening (`layout::PROXY`): header and idle timeouts,
//! headers with underscores refused, a header size limit, circuit breakers on the
//! app's cluster, and an overload manager (heap ceiling, open connections).

use serde::Serialize;

use crate::emit::docker::{ALL_INTERFACES, LOOPBACK, container_port, is_grpc};
use crate::emit::{EmitError, GeneratedFile, header, render};
use crate::ir::{Deployable, OperationKind, System, ports};
use crate::layout::{BFF_PATHS, PROXY, ProxyLimits};

/// Where a config runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Local,
    Compose,
    Kubernetes,
}

impl Target {
    pub const ALL: [Target; 3] = [Target::Local, Target::Compose, Target::Kubernetes];

    fn as_str(self) -> &'static str {
        match self {
            Target::Local => "local",
            Target::Compose => "compose",
            Target::Kubernetes => "k8s",
        }
    }
}

/// The path (under `generated/`) of a deployable's Envoy config for `target`.
pub fn config_path(target: Target, deployable: &str) -> String {
    match target {
        Target::Local | Target::Compose => format!("envoy/{}/{deployable}.yaml", target.as_str()),
        Target::Kubernetes => format!("k8s/base/{}", k8s_config_file(deployable)),
    }
}

/// The k8s config's path relative to the kustomize base folder.
pub(crate) fn k8s_config_file(deployable: &str) -> String {
    format!("envoy/{deployable}.yaml")
}

/// The Envoy cluster that holds the app; `<deployable>`.
pub(crate) fn app_cluster(d: &Deployable) -> String {
    d.name.clone()
}

/// gRPC health checking, served by every gRPC process.
const HEALTH_SERVICE: &str = "grpc.health.v1.Health";

/// Route timeouts. A retried RPC gets `RPC_PER_TRY_TIMEOUT` per attempt (3 attempts).
/// The edge's come from the spec (`bff.limits.request_timeout_ms`).
const RPC_TIMEOUT: &str = "10s";
const RPC_PER_TRY_TIMEOUT: &str = "3s";
const HEALTH_TIMEOUT: &str = "2s";
const HEALTH_PER_TRY_TIMEOUT: &str = "1s";

pub fn emit(system: &System) -> Result<Vec<GeneratedFile>, EmitError> {
    let mut files = Vec::new();
    for target in Target::ALL {
        for d in &system.deployables {
            files.push(GeneratedFile {
                path: config_path(target, &d.name),
                contents: render_one(system, d, target)?,
            });
        }
    }
    Ok(files)
}

#[derive(Serialize)]
struct Addr {
    host: String,
    port: u16,
}

fn addr(host: &str, port: u16) -> Addr {
    Addr {
        host: host.to_string(),
        port,
    }
}

#[derive(Serialize)]
struct Route {
    /// The exact `:path` of the RPC.
    path: String,
    comment: String,
    /// `0s` for streams (no timeout).
    timeout: &'static str,
    /// Honour a caller's `grpc-timeout` up to `timeout` (unary RPCs).
    grpc_timeout: bool,
    retry: bool,
    per_try_timeout: &'static str,
}

/// What only the edge (the BFF's Envoy) has.
#[derive(Serialize)]
struct Edge {
    /// The only paths routed; anything else is answered 404.
    paths: Vec<EdgePath>,
    max_body_bytes: u64,
    /// `bff.limits.request_timeout_ms` as an Envoy duration.
    request_timeout: String,
    /// With `auth:`: the tokens' issuer, which `jwt_authn` checks.
    issuer: Option<String>,
    local_replies: [LocalReply; 4],
}

/// One of [`BFF_PATHS`]: matched exactly, or as a prefix.
#[derive(Serialize)]
struct EdgePath {
    path: &'static str,
    prefix: bool,
}

/// A status Envoy answers itself, and the GraphQL error code its body carries.
#[derive(Serialize)]
struct LocalReply {
    status: u16,
    code: &'static str,
}

const LOCAL_REPLIES: [LocalReply; 4] = [
    LocalReply {
        status: 401,
        code: "UNAUTHENTICATED",
    },
    LocalReply {
        status: 404,
        code: "NOT_FOUND",
    },
    LocalReply {
        status: 413,
        code: "PAYLOAD_TOO_LARGE",
    },
    LocalReply {
        status: 503,
        code: "UNAVAILABLE",
    },
];

#[derive(Serialize)]
struct Proxy<'a> {
    header: String,
    name: &'a str,
    target: &'static str,
    description: String,
    /// The BFF's Envoy, the system's only entry point.
    edge: Option<Edge>,
    grpc: bool,
    listen: Addr,
    admin: Addr,
    app: Addr,
    cluster: String,
    cluster_type: &'static str,
    stat_prefix: String,
    routes: Vec<Route>,
    proxy: ProxyLimits,
}

/// Where the listener, the admin interface and the app are, and how the cluster finds
/// the app. Admin is on loopback everywhere: only the container or pod reaches it.
fn addresses(d: &Deployable, target: Target) -> (Addr, Addr, Addr, &'static str) {
    match target {
        Target::Local => (
            addr(LOOPBACK, d.local.envoy),
            addr(LOOPBACK, d.local.envoy_admin),
            addr(LOOPBACK, d.local.app),
            "STATIC",
        ),
        Target::Compose => (
            addr(ALL_INTERFACES, ports::ENVOY),
            addr(LOOPBACK, ports::ENVOY_ADMIN),
            addr(&d.name, container_port(d)),
            "STRICT_DNS",
        ),
        Target::Kubernetes => (
            addr(ALL_INTERFACES, ports::ENVOY),
            addr(LOOPBACK, ports::ENVOY_ADMIN),
            addr(LOOPBACK, container_port(d)),
            "STATIC",
        ),
    }
}

fn description(d: &Deployable, target: Target) -> String {
    let place = match target {
        Target::Local => "on this machine",
        Target::Compose => "in its own compose container",
        Target::Kubernetes => "as a sidecar in the pod",
    };
    if is_grpc(d) {
        format!("fronts the gRPC process `{}` {place}", d.name)
    } else {
        format!("the edge proxy of the GraphQL gateway `{}` {place}", d.name)
    }
}

/// `15s`, `1.500s`: milliseconds as an Envoy duration.
fn duration(ms: u64) -> String {
    match ms % 1000 {
        0 => format!("{}s", ms / 1000),
        rest => format!("{}.{rest:03}s", ms / 1000),
    }
}

fn render_one(system: &System, d: &Deployable, target: Target) -> Result<String, EmitError> {
    let (listen, admin, app, cluster_type) = addresses(d, target);
    let grpc = is_grpc(d);
    let limits = &system.bff.limits;
    let proxy = Proxy {
        header: header("#"),
        name: &d.name,
        target: target.as_str(),
        description: description(d, target),
        edge: (!grpc).then(|| Edge {
            paths: BFF_PATHS
                .iter()
                .map(|&path| EdgePath {
                    path,
                    prefix: crate::layout::is_prefix(path),
                })
                .collect(),
            max_body_bytes: limits.max_body_bytes,
            request_timeout: duration(limits.request_timeout_ms),
            issuer: system.auth.as_ref().map(|_| system.name.clone()),
            local_replies: LOCAL_REPLIES,
        }),
        grpc,
        listen,
        admin,
        app,
        cluster: app_cluster(d),
        cluster_type,
        stat_prefix: format!("ingress_{}", d.name.replace('-', "_")),
        routes: if grpc {
            grpc_routes(system, d)
        } else {
            Vec::new()
        },
        proxy: PROXY,
    };
    let ctx = tera::Context::from_serialize(&proxy).map_err(|e| EmitError::Template {
        template: "envoy/envoy.yaml.tera".into(),
        message: e.to_string(),
    })?;
    render(
        "envoy/envoy.yaml.tera",
        include_str!("../../../templates/envoy/envoy.yaml.tera"),
        &ctx,
    )
}

fn kind_name(kind: OperationKind) -> &'static str {
    match kind {
        OperationKind::List => "list",
        OperationKind::Get => "get",
        OperationKind::Create => "create",
        OperationKind::Update => "update",
        OperationKind::Delete => "delete",
        OperationKind::Custom => "custom",
        OperationKind::BatchGet => "batch get",
        OperationKind::Command => "command",
        OperationKind::Query => "query",
    }
}

/// Every RPC of `keel.auth.v1.Auth` (services/keel/proto/keel/auth/v1/auth.proto) and
/// whether Envoy may retry it: only the reads.
const AUTH_RPCS: [(&str, bool); 8] = [
    ("Login", false),
    ("Refresh", false),
    ("Logout", false),
    ("Jwks", true),
    ("SetCredentials", false),
    ("GrantRole", false),
    ("Forget", false),
    ("EndedSessions", true),
];

/// The identity deployable's `keel.auth.v1.Auth` routes.
fn auth_routes(system: &System, d: &Deployable) -> Vec<Route> {
    if system.auth.as_ref().is_none_or(|a| a.deployable != d.name) {
        return Vec::new();
    }
    AUTH_RPCS
        .into_iter()
        .map(|(m, retry)| Route {
            path: format!("/keel.auth.v1.Auth/{m}"),
            comment: format!("{m}: sessions (keel::auth)"),
            timeout: RPC_TIMEOUT,
            grpc_timeout: true,
            retry,
            per_try_timeout: RPC_PER_TRY_TIMEOUT,
        })
        .collect()
}

/// One route per RPC the deployable serves, in spec order, then the health service.
fn grpc_routes(system: &System, d: &Deployable) -> Vec<Route> {
    let mut routes = Vec::new();
    for service in &system.services {
        for op in service.operations.iter().filter(|o| o.deployable == d.name) {
            let retry = op.idempotent;
            routes.push(Route {
                path: format!(
                    "/{}.{}/{}",
                    service.proto.package, op.rpc.service, op.rpc.method
                ),
                comment: format!(
                    "{}: {}, {}",
                    op.name,
                    kind_name(op.kind),
                    if retry {
                        "idempotent: retried"
                    } else {
                        "not idempotent: never retried"
                    }
                ),
                timeout: RPC_TIMEOUT,
                grpc_timeout: true,
                retry,
                per_try_timeout: RPC_PER_TRY_TIMEOUT,
            });
        }
    }
    routes.extend(auth_routes(system, d));
    routes.push(Route {
        path: format!("/{HEALTH_SERVICE}/Check"),
        comment: "health check: idempotent, retried".into(),
        timeout: HEALTH_TIMEOUT,
        grpc_timeout: true,
        retry: true,
        per_try_timeout: HEALTH_PER_TRY_TIMEOUT,
    });
    routes.push(Route {
        path: format!("/{HEALTH_SERVICE}/Watch"),
        comment: "health watch: a server stream, no timeout, never retried".into(),
        timeout: "0s",
        grpc_timeout: false,
        retry: false,
        per_try_timeout: "0s",
    });
    if !d.grpc_services.is_empty() {
        // So that grpcurl and other reflection clients work through the proxy too.
        routes.push(Route {
            path: "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo".into(),
            comment: "server reflection: a bidirectional stream, no timeout, never retried".into(),
            timeout: "0s",
            grpc_timeout: false,
            retry: false,
            per_try_timeout: "0s",
        });
    }
    routes
}

#[cfg(test)]
mod tests {
    /// A route missing from Envoy answers `NR` (no route), silently for a background poll.
    #[test]
    fn every_auth_rpc_has_a_route() {
        let proto = include_str!("../../../services/keel/proto/keel/auth/v1/auth.proto");
        let served: Vec<&str> = proto
            .lines()
            .filter_map(|l| l.trim().strip_prefix("rpc "))
            .filter_map(|l| l.split('(').next())
            .map(str::trim)
            .collect();
        let routed: Vec<&str> = super::AUTH_RPCS.iter().map(|(m, _)| *m).collect();
        assert!(!served.is_empty());
        assert_eq!(routed, served, "AUTH_RPCS lists auth.proto's RPCs in order");
    }
}
