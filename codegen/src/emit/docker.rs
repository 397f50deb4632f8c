//! The container image of every Rust process: `docker/Dockerfile` (one multi-stage
//! Dockerfile, the crate and binary chosen by build args) and `docker/Dockerfile.dockerignore`
//! (the `.dockerignore` to use with it; build context = the repository root).
//!
//! Also the run conventions that compose and Kubernetes share, so that the two can
//! never disagree: which image a deployable runs, its ports and the values of its
//! settings (the IR lists them, with its package, binary and arguments).

use serde::Serialize;

use crate::emit::envoy::app_cluster;
use crate::emit::{EmitError, GeneratedFile, header, render};
use crate::ir::{Deployable, Role, SettingKind, System, ports};
use crate::layout::bff_limit_env;

pub fn emit(system: &System) -> Result<Vec<GeneratedFile>, EmitError> {
    let mut ctx = tera::Context::new();
    ctx.insert("header", &header("#"));
    ctx.insert("system", &system.name);
    ctx.insert("app_port", &ports::APP);
    ctx.insert("bff_port", &ports::BFF_HTTP);
    ctx.insert("images", &images(system));
    let dockerfile = render(
        "docker/Dockerfile.tera",
        include_str!("../../../templates/docker/Dockerfile.tera"),
        &ctx,
    )?;
    let ignore = render(
        "docker/dockerignore.tera",
        include_str!("../../../templates/docker/dockerignore.tera"),
        &ctx,
    )?;
    Ok(vec![
        GeneratedFile {
            path: "docker/Dockerfile".into(),
            contents: dockerfile,
        },
        GeneratedFile {
            path: "docker/Dockerfile.dockerignore".into(),
            contents: ignore,
        },
    ])
}

/// One image to build: the `CRATE` and `BIN` build args and its tag.
#[derive(Serialize, PartialEq)]
struct Image<'a> {
    package: &'a str,
    binary: &'a str,
    tag: String,
}

/// Every image the deployables run, once each, in deployable order.
fn images(system: &System) -> Vec<Image<'_>> {
    let mut out: Vec<Image> = Vec::new();
    for d in &system.deployables {
        let i = Image {
            package: &d.package,
            binary: &d.binary,
            tag: image(system, d),
        };
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

/// The image tag compose builds and Kubernetes runs: `<system>/<binary>:latest`.
pub(crate) fn image(system: &System, d: &Deployable) -> String {
    format!("{}/{}:latest", system.name, d.binary)
}

/// Whether the process speaks gRPC on its port (everything but the BFF, event
/// handlers included: they serve `grpc.health.v1.Health`).
pub(crate) fn is_grpc(d: &Deployable) -> bool {
    d.role != Role::Bff
}

/// The port the process listens on inside a container.
pub(crate) fn container_port(d: &Deployable) -> u16 {
    if is_grpc(d) {
        ports::APP
    } else {
        ports::BFF_HTTP
    }
}

/// Where a process listens: loopback (reached only from its own machine, container or
/// pod) or every interface (a container network, a pod's IP).
pub(crate) const LOOPBACK: &str = "127.0.0.1";
pub(crate) const ALL_INTERFACES: &str = "0.0.0.0";

/// A bash command that connects to a local TCP port (the process accepts connections).
/// The images have bash but not necessarily curl.
pub(crate) fn tcp_check(port: u16) -> Vec<String> {
    bash(format!("exec 3<>/dev/tcp/{LOOPBACK}/{port}"))
}

/// A bash command: GET `path` on a local port, succeeding when the response has a line
/// that matches `pattern`.
pub(crate) fn http_check(port: u16, path: &str, pattern: &str) -> Vec<String> {
    bash(format!(
        "exec 3<>/dev/tcp/{LOOPBACK}/{port} && printf 'GET {path} HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && grep -q '{pattern}' <&3"
    ))
}

fn bash(script: String) -> Vec<String> {
    vec!["bash".into(), "-c".into(), script]
}

/// The app's check from inside its container: a gRPC process accepts connections, the
/// BFF answers `/healthz` with 200.
pub(crate) fn app_check(d: &Deployable) -> Vec<String> {
    if is_grpc(d) {
        tcp_check(container_port(d))
    } else {
        http_check(container_port(d), "/healthz", " 200 ")
    }
}

/// The Envoy's check from inside its container: its admin interface lists the app as
/// healthy, i.e. its active health checks (gRPC health, or the BFF's `/healthz`) pass.
pub(crate) fn envoy_check(d: &Deployable) -> Vec<String> {
    http_check(
        ports::ENVOY_ADMIN,
        "/clusters",
        &format!("^{}::.*::health_flags::healthy", app_cluster(d)),
    )
}

/// The PostgreSQL role and password of the dev deployments (compose, minikube).
pub(crate) fn postgres_user(system: &System) -> &str {
    &system.name
}

/// Host names of the shared servers inside the container network.
pub(crate) const POSTGRES_HOST: &str = "postgres";
pub(crate) const MONGODB_HOST: &str = "mongodb";
pub(crate) const KAFKA_HOST: &str = "kafka";

/// One environment variable of a process.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct EnvVar {
    pub name: String,
    pub value: String,
}

fn var(name: &str, value: String) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value,
    }
}

/// The environment of a process in a container: its settings (`database_url` gives
/// the value of a database's, or `None` to leave it out), the BFF's edge limits, then
/// `RUST_LOG`. The process listens on `listen_host`; `upstream_host` maps an upstream
/// deployable to the host name of its Envoy.
pub(crate) fn container_env(
    system: &System,
    d: &Deployable,
    listen_host: &str,
    upstream_host: impl Fn(&str) -> String,
    database_url: impl Fn(&str) -> Option<String>,
) -> Vec<EnvVar> {
    let mut env = Vec::new();
    for s in &d.settings {
        let value = match &s.kind {
            SettingKind::Listen => format!("{listen_host}:{}", container_port(d)),
            SettingKind::Database(db) => match database_url(db) {
                Some(url) => url,
                None => continue,
            },
            SettingKind::EventStore(store) => {
                format!("mongodb://{MONGODB_HOST}:{}/{store}", ports::MONGODB)
            }
            SettingKind::Bus => format!("kafka://{KAFKA_HOST}:{}", ports::KAFKA),
            SettingKind::Upstream(up) => format!("http://{}:{}", upstream_host(up), ports::ENVOY),
            // Names whose defaults are right in a deployment of their own.
            SettingKind::EventStoreDatabase(_)
            | SettingKind::Topic(_)
            | SettingKind::ConsumerGroup(_) => continue,
        };
        env.push(var(&s.env, value));
    }
    if d.role == Role::Bff {
        for (name, value) in bff_limit_env(&system.bff.limits) {
            env.push(var(name, value.to_string()));
        }
    }
    env.push(var("RUST_LOG", "info".to_string()));
    env
}

/// `postgres://user:password@postgres:5432/<db>`.
pub(crate) fn postgres_url(system: &System, db: &str, password: &str) -> String {
    format!(
        "postgres://{}:{password}@{POSTGRES_HOST}:{}/{db}",
        postgres_user(system),
        ports::POSTGRES
    )
}

/// The deployable's database setting: its variable and the database's URL.
pub(crate) fn database_env(system: &System, d: &Deployable, password: &str) -> Option<EnvVar> {
    d.settings.iter().find_map(|s| match &s.kind {
        SettingKind::Database(db) => Some(var(&s.env, postgres_url(system, db, password))),
        _ => None,
    })
}
