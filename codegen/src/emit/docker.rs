//! The container image of every Rust process: `docker/Dockerfile` (one multi-stage
//! Dockerfile, the crate and binary chosen by build args) and `docker/dockerignore`
//! (the `.dockerignore` to use with it; build context = the repository root).
//!
//! Also the run conventions that compose and Kubernetes share, so that the two can
//! never disagree: which crate and image a deployable runs, its arguments, its ports
//! and its environment.

use heck::ToShoutySnakeCase;
use serde::Serialize;

use crate::emit::{EmitError, GeneratedFile, header, render};
use crate::ir::{Deployable, Role, System, ports};

pub fn emit(system: &System) -> Result<Vec<GeneratedFile>, EmitError> {
    let mut ctx = tera::Context::new();
    ctx.insert("header", &header("#"));
    ctx.insert("system", &system.name);
    ctx.insert("app_port", &ports::APP);
    ctx.insert("bff_port", &ports::BFF_HTTP);
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
            path: "docker/dockerignore".into(),
            contents: ignore,
        },
    ])
}

/// The cargo package (and binary) a deployable runs: `<service>-service`, `bff`.
pub(crate) fn crate_name(d: &Deployable) -> String {
    match d.role {
        Role::Bff => "bff".to_string(),
        _ => format!("{}-service", d.service),
    }
}

/// The image tag compose builds and Kubernetes runs: `<system>/<crate>:latest`.
pub(crate) fn image(system: &System, d: &Deployable) -> String {
    format!("{}/{}:latest", system.name, crate_name(d))
}

/// Command-line arguments: the role of a CQRS process, nothing otherwise.
pub(crate) fn args(d: &Deployable) -> Vec<String> {
    let role = match d.role {
        Role::Command => "command",
        Role::Query => "query",
        Role::EventHandler => "event-handler",
        Role::Bff | Role::Grpc => return Vec::new(),
    };
    vec!["--role".to_string(), role.to_string()]
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

/// `PRODUCT_URL` for the deployable `product`, `CART_QUERY_URL` for `cart-query`.
pub(crate) fn upstream_var(name: &str) -> String {
    format!("{}_URL", name.to_shouty_snake_case())
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

/// The environment of a process in a container, except `DATABASE_URL` (which carries
/// the password and is built by each target). `upstream_host` maps an upstream
/// deployable to the host name of its Envoy.
pub(crate) fn container_env(d: &Deployable, upstream_host: impl Fn(&str) -> String) -> Vec<EnvVar> {
    let mut env = vec![var("LISTEN_ADDR", format!("0.0.0.0:{}", container_port(d)))];
    if let Some(store) = &d.event_store {
        env.push(var(
            "EVENT_STORE_URL",
            format!("mongodb://{MONGODB_HOST}:{}/{store}", ports::MONGODB),
        ));
    }
    if !d.produces.is_empty() || !d.consumes.is_empty() {
        env.push(var(
            "BUS_URL",
            format!("kafka://{KAFKA_HOST}:{}", ports::KAFKA),
        ));
    }
    for up in &d.upstreams {
        env.push(var(
            &upstream_var(up),
            format!("http://{}:{}", upstream_host(up), ports::ENVOY),
        ));
    }
    env.push(var("RUST_LOG", "info".to_string()));
    env
}

/// `postgres://user:password@postgres:5432/<db>` for the deployable's database.
pub(crate) fn database_url(system: &System, d: &Deployable, password: &str) -> Option<String> {
    d.databases.first().map(|db| {
        format!(
            "postgres://{}:{password}@{POSTGRES_HOST}:{}/{db}",
            postgres_user(system),
            ports::POSTGRES
        )
    })
}
