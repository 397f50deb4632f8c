//! docker compose: `compose/docker-compose.yaml` (project = the system's name) and
//! `compose/postgres-init.sql` (creates every database on first start).
//!
//! Servers: one PostgreSQL 15 for every database, MongoDB 7 for the event stores, one
//! Kafka broker in KRaft mode and a one-shot `kafka-init` that creates the topics. Each
//! deployable runs as the service named after it, built from `docker/Dockerfile`, next
//! to its Envoy `<deployable>-envoy` (config `envoy/compose/<deployable>.yaml`).
//! Callers reach a deployable through its Envoy (`http://<deployable>-envoy:8080`);
//! only the BFF's Envoy publishes a host port, on the host's loopback, its number taken
//! from `<SYSTEM>_HTTP_PORT` when set (compose interpolation). The identity service's
//! back-office emails come from the host's `AUTH_BACK_OFFICE_EMAILS` the same way.
//! Every long-running service has a healthcheck, and every dependency waits for
//! `service_healthy`.

use serde::Serialize;

use crate::emit::docker::{
    ALL_INTERFACES, EnvVar, KAFKA_HOST, MONGODB_HOST, POSTGRES_HOST, app_check, container_env,
    envoy_check, image, is_grpc, postgres_url, postgres_user,
};
use crate::emit::envoy::{Target, config_path};
use crate::emit::{EmitError, GeneratedFile, header, render};
use crate::ir::{Deployable, System, ports};

pub const COMPOSE_FILE: &str = "compose/docker-compose.yaml";
pub const POSTGRES_INIT: &str = "compose/postgres-init.sql";

pub const POSTGRES_IMAGE: &str = "postgres:15";
pub const MONGODB_IMAGE: &str = "mongo:7";
pub const KAFKA_IMAGE: &str = "apache/kafka:4.1.1";
/// The Envoy release the generated configs are checked with (`xtask/infra`: 1.40).
pub const ENVOY_IMAGE: &str = "envoyproxy/envoy:v1.40-latest";
/// A fixed KRaft cluster id (base64 of 16 bytes): the broker formats its log dir once.
pub const KAFKA_CLUSTER_ID: &str = "4L6g3nShT-eMCtK--X86sw";

pub fn emit(system: &System) -> Result<Vec<GeneratedFile>, EmitError> {
    let view = ComposeView::new(system);
    let ctx = tera::Context::from_serialize(&view).map_err(|e| EmitError::Template {
        template: "compose/docker-compose.yaml.tera".into(),
        message: e.to_string(),
    })?;
    let compose = render(
        "compose/docker-compose.yaml.tera",
        include_str!("../../../templates/compose/docker-compose.yaml.tera"),
        &ctx,
    )?;
    let mut files = vec![GeneratedFile {
        path: COMPOSE_FILE.into(),
        contents: compose,
    }];
    if !postgres_databases(system).is_empty() {
        files.push(GeneratedFile {
            path: POSTGRES_INIT.into(),
            contents: postgres_init(system)?,
        });
    }
    Ok(files)
}

/// The databases the deploy targets create in PostgreSQL: all but the SQL form of an
/// event store (compose and Kubernetes run the document event store).
pub(crate) fn postgres_databases(system: &System) -> Vec<&crate::ir::Database> {
    system
        .databases
        .iter()
        .filter(|d| d.kind != crate::ir::DatabaseKind::EventStore)
        .collect()
}

/// `CREATE DATABASE` for every database; shared by compose and Kubernetes.
pub(crate) fn postgres_init(system: &System) -> Result<String, EmitError> {
    let mut ctx = tera::Context::new();
    ctx.insert("header", &header("--"));
    ctx.insert("system", &system.name);
    let names: Vec<&str> = postgres_databases(system)
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    ctx.insert("databases", &names);
    render(
        "compose/postgres-init.sql.tera",
        include_str!("../../../templates/compose/postgres-init.sql.tera"),
        &ctx,
    )
}

/// Host name of a deployable's Envoy in the compose network.
pub fn envoy_service(deployable: &str) -> String {
    format!("{deployable}-envoy")
}

#[derive(Serialize)]
struct Dep {
    service: String,
    condition: &'static str,
}

fn healthy(service: &str) -> Dep {
    Dep {
        service: service.to_string(),
        condition: "service_healthy",
    }
}

#[derive(Serialize)]
struct App {
    name: String,
    package: String,
    binary: String,
    image: String,
    command: Vec<String>,
    env: Vec<EnvVar>,
    depends_on: Vec<Dep>,
    healthcheck: Vec<String>,
    envoy: Envoy,
}

#[derive(Serialize)]
struct Envoy {
    name: String,
    /// The config, relative to the compose file.
    config: String,
    publish: Option<String>,
    healthcheck: Vec<String>,
}

#[derive(Serialize)]
struct Topic {
    name: String,
    partitions: u32,
}

#[derive(Serialize)]
struct ComposeView {
    header: String,
    project: String,
    /// The variable that moves the published port: `<SYSTEM>_HTTP_PORT`.
    port_var: String,
    auth_env: Option<&'static str>,
    postgres: bool,
    postgres_user: String,
    mongodb: bool,
    kafka: bool,
    topics: Vec<Topic>,
    kafka_init: Vec<String>,
    kafka_cluster_id: &'static str,
    images: Images,
    ports: Ports,
    apps: Vec<App>,
    volumes: Vec<&'static str>,
}

#[derive(Serialize)]
struct Images {
    postgres: &'static str,
    mongodb: &'static str,
    kafka: &'static str,
    envoy: &'static str,
}

#[derive(Serialize)]
struct Ports {
    postgres: u16,
    mongodb: u16,
    kafka: u16,
    envoy: u16,
    envoy_admin: u16,
}

/// A compose healthcheck's `test`: the command, run directly.
fn healthcheck(command: Vec<String>) -> Vec<String> {
    std::iter::once("CMD".to_string()).chain(command).collect()
}

impl ComposeView {
    fn new(system: &System) -> Self {
        let user = postgres_user(system).to_string();
        let postgres = !postgres_databases(system).is_empty();
        let mongodb = !system.event_stores.is_empty();
        let kafka = !system.topics.is_empty();
        let kafka_init = system
            .topics
            .iter()
            .map(|t| {
                format!(
                    "/opt/kafka/bin/kafka-topics.sh --bootstrap-server {KAFKA_HOST}:{} --create --if-not-exists --topic {} --partitions {} --replication-factor 1",
                    ports::KAFKA,
                    t.name,
                    t.partitions
                )
            })
            .collect::<Vec<_>>()
            .join(" && ");
        let apps = system.deployables.iter().map(|d| app(system, d)).collect();
        let mut volumes = Vec::new();
        if postgres {
            volumes.push("postgres-data");
        }
        if mongodb {
            volumes.push("mongodb-data");
        }
        if kafka {
            volumes.push("kafka-data");
        }
        ComposeView {
            header: header("#"),
            project: system.name.clone(),
            port_var: port_var(system),
            auth_env: system.auth.as_ref().map(|_| BACK_OFFICE_ENV),
            postgres,
            postgres_user: user,
            mongodb,
            kafka,
            topics: system
                .topics
                .iter()
                .map(|t| Topic {
                    name: t.name.clone(),
                    partitions: t.partitions,
                })
                .collect(),
            kafka_init: vec!["/bin/sh".into(), "-c".into(), kafka_init],
            kafka_cluster_id: KAFKA_CLUSTER_ID,
            images: Images {
                postgres: POSTGRES_IMAGE,
                mongodb: MONGODB_IMAGE,
                kafka: KAFKA_IMAGE,
                envoy: ENVOY_IMAGE,
            },
            ports: Ports {
                postgres: ports::POSTGRES,
                mongodb: ports::MONGODB,
                kafka: ports::KAFKA,
                envoy: ports::ENVOY,
                envoy_admin: ports::ENVOY_ADMIN,
            },
            apps,
            volumes,
        }
    }
}

/// `<SYSTEM>_HTTP_PORT`: the host port of the BFF's Envoy, when not the default.
pub fn port_var(system: &System) -> String {
    let name: String = system
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("{name}_HTTP_PORT")
}

/// The identity service's setting naming the first back-office users (read by its
/// generated `Config`): passed through from the host's environment.
pub const BACK_OFFICE_ENV: &str = "AUTH_BACK_OFFICE_EMAILS";

fn app(system: &System, d: &Deployable) -> App {
    // The app and its Envoy are two containers: the app listens on the compose network.
    let mut env = container_env(system, d, ALL_INTERFACES, envoy_service, |db| {
        Some(postgres_url(system, db, postgres_user(system)))
    });
    if system.auth.as_ref().is_some_and(|a| a.deployable == d.name) {
        let at = env.len().saturating_sub(1); // before RUST_LOG
        env.insert(
            at,
            EnvVar {
                name: BACK_OFFICE_ENV.into(),
                value: format!("${{{BACK_OFFICE_ENV}:-}}"),
            },
        );
    }
    let mut depends_on = Vec::new();
    if !d.databases.is_empty() {
        depends_on.push(healthy(POSTGRES_HOST));
    }
    if d.event_store.is_some() {
        depends_on.push(healthy(MONGODB_HOST));
    }
    if !d.produces.is_empty() || !d.consumes.is_empty() {
        depends_on.push(healthy(KAFKA_HOST));
        depends_on.push(Dep {
            service: "kafka-init".into(),
            condition: "service_completed_successfully",
        });
    }
    for up in &d.upstreams {
        depends_on.push(healthy(&envoy_service(up)));
    }
    let config = config_path(Target::Compose, &d.name);
    App {
        name: d.name.clone(),
        package: d.package.clone(),
        binary: d.binary.clone(),
        image: image(system, d),
        command: d.args.clone(),
        env,
        depends_on,
        healthcheck: healthcheck(app_check(d)),
        envoy: Envoy {
            name: envoy_service(&d.name),
            config: format!("../{config}"),
            publish: (!is_grpc(d)).then(|| {
                format!(
                    "127.0.0.1:${{{}:-{}}}:{}",
                    port_var(system),
                    ports::ENVOY,
                    ports::ENVOY
                )
            }),
            // Healthy once Envoy's own health checks found the app healthy.
            healthcheck: healthcheck(envoy_check(d)),
        },
    }
}
