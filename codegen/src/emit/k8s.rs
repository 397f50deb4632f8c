//! Kubernetes (minikube) as a kustomize base, `k8s/base/`, and an overlay,
//! `k8s/overlays/minikube/`.
//!
//! The base: the namespace (the system's name); PostgreSQL, MongoDB and a KRaft Kafka
//! as StatefulSets with Services (and a Job that creates the topics); per deployable
//! `<deployable>.yaml` with a ConfigMap `<deployable>-env` (its environment), a
//! Deployment of the app and its Envoy sidecar, and a Service `<deployable>` on the
//! Envoy's port. The Envoy configs (`k8s/base/envoy/<deployable>.yaml`, written by the
//! envoy emitter) become ConfigMaps through `configMapGenerator`, whose files must be
//! inside the base. The overlay exposes the BFF's Envoy on a NodePort.

use serde::Serialize;

use crate::emit::docker::{
    EnvVar, container_env, container_port, database_env, image, is_grpc, postgres_user,
};
use crate::emit::envoy::k8s_config_file;
use crate::emit::{EmitError, GeneratedFile, compose, header, render};
use crate::ir::{Deployable, Role, System, ports};

pub const BASE: &str = "k8s/base";
pub const OVERLAY: &str = "k8s/overlays/minikube";
/// The NodePort of the BFF's Envoy in the minikube overlay.
pub const BFF_NODE_PORT: u16 = 30080;

pub fn emit(system: &System) -> Result<Vec<GeneratedFile>, EmitError> {
    let ctx = context(system)?;
    let mut files = Vec::new();
    let mut file = |path: String, name: &str, source: &str| -> Result<(), EmitError> {
        files.push(GeneratedFile {
            path,
            contents: render(name, source, &ctx)?,
        });
        Ok(())
    };
    file(
        format!("{BASE}/kustomization.yaml"),
        "k8s/kustomization.yaml.tera",
        include_str!("../../../templates/k8s/kustomization.yaml.tera"),
    )?;
    file(
        format!("{BASE}/namespace.yaml"),
        "k8s/namespace.yaml.tera",
        include_str!("../../../templates/k8s/namespace.yaml.tera"),
    )?;
    if !compose::postgres_databases(system).is_empty() {
        file(
            format!("{BASE}/postgres.yaml"),
            "k8s/postgres.yaml.tera",
            include_str!("../../../templates/k8s/postgres.yaml.tera"),
        )?;
    }
    if !system.event_stores.is_empty() {
        file(
            format!("{BASE}/mongodb.yaml"),
            "k8s/mongodb.yaml.tera",
            include_str!("../../../templates/k8s/mongodb.yaml.tera"),
        )?;
    }
    if !system.topics.is_empty() {
        file(
            format!("{BASE}/kafka.yaml"),
            "k8s/kafka.yaml.tera",
            include_str!("../../../templates/k8s/kafka.yaml.tera"),
        )?;
    }
    file(
        format!("{OVERLAY}/kustomization.yaml"),
        "k8s/overlay-minikube.yaml.tera",
        include_str!("../../../templates/k8s/overlay-minikube.yaml.tera"),
    )?;
    for d in &system.deployables {
        let mut ctx = ctx.clone();
        ctx.insert("d", &workload(system, d));
        files.push(GeneratedFile {
            path: format!("{BASE}/{}.yaml", d.name),
            contents: render(
                "k8s/deployable.yaml.tera",
                include_str!("../../../templates/k8s/deployable.yaml.tera"),
                &ctx,
            )?,
        });
    }
    if !compose::postgres_databases(system).is_empty() {
        files.push(GeneratedFile {
            path: format!("{BASE}/postgres-init.sql"),
            contents: compose::postgres_init(system)?,
        });
    }
    Ok(files)
}

#[derive(Serialize)]
struct Topic<'a> {
    name: &'a str,
    partitions: u32,
}

#[derive(Serialize)]
struct Base<'a> {
    header: String,
    system: &'a str,
    /// The system's name as a DNS label (`my_shop` is `my-shop`).
    namespace: String,
    postgres: bool,
    postgres_user: &'a str,
    mongodb: bool,
    kafka: bool,
    topics: Vec<Topic<'a>>,
    kafka_cluster_id: &'static str,
    images: Images,
    ports: Ports,
    deployables: Vec<Ref<'a>>,
    bff: Option<&'a str>,
    bff_node_port: u16,
}

#[derive(Serialize)]
struct Ref<'a> {
    name: &'a str,
    envoy_config: String,
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
    app: u16,
    bff_http: u16,
    postgres: u16,
    mongodb: u16,
    kafka: u16,
    envoy: u16,
    envoy_admin: u16,
}

fn context(system: &System) -> Result<tera::Context, EmitError> {
    let base = Base {
        header: header("#"),
        system: &system.name,
        namespace: crate::names::kebab(&system.name),
        postgres: !compose::postgres_databases(system).is_empty(),
        postgres_user: postgres_user(system),
        mongodb: !system.event_stores.is_empty(),
        kafka: !system.topics.is_empty(),
        topics: system
            .topics
            .iter()
            .map(|t| Topic {
                name: &t.name,
                partitions: t.partitions,
            })
            .collect(),
        kafka_cluster_id: compose::KAFKA_CLUSTER_ID,
        images: Images {
            postgres: compose::POSTGRES_IMAGE,
            mongodb: compose::MONGODB_IMAGE,
            kafka: compose::KAFKA_IMAGE,
            envoy: compose::ENVOY_IMAGE,
        },
        ports: Ports {
            app: ports::APP,
            bff_http: ports::BFF_HTTP,
            postgres: ports::POSTGRES,
            mongodb: ports::MONGODB,
            kafka: ports::KAFKA,
            envoy: ports::ENVOY,
            envoy_admin: ports::ENVOY_ADMIN,
        },
        deployables: system
            .deployables
            .iter()
            .map(|d| Ref {
                name: &d.name,
                envoy_config: k8s_config_file(&d.name),
            })
            .collect(),
        bff: system
            .deployables
            .iter()
            .find(|d| d.role == Role::Bff)
            .map(|d| d.name.as_str()),
        bff_node_port: BFF_NODE_PORT,
    };
    tera::Context::from_serialize(&base).map_err(|e| EmitError::Template {
        template: "k8s/*".into(),
        message: e.to_string(),
    })
}

#[derive(Serialize)]
struct Workload {
    name: String,
    /// `bff`, `grpc`, `command`, `query`, `event-handler`.
    component: &'static str,
    description: String,
    image: String,
    args: Vec<String>,
    grpc: bool,
    port: u16,
    env: Vec<EnvVar>,
    /// `DATABASE_URL`, with `$(POSTGRES_PASSWORD)` for the password from the Secret.
    database: Option<EnvVar>,
}

fn workload(system: &System, d: &Deployable) -> Workload {
    let service = &d.service;
    let (component, description) = match d.role {
        Role::Bff => ("bff", "the GraphQL gateway".to_string()),
        Role::Grpc => ("grpc", format!("the `{service}` service (gRPC)")),
        Role::Command => ("command", format!("the command side of `{service}` (gRPC)")),
        Role::Query => ("query", format!("the query side of `{service}` (gRPC)")),
        Role::EventHandler => (
            "event-handler",
            format!("the event handler of `{service}` (serves gRPC health only)"),
        ),
    };
    Workload {
        name: d.name.clone(),
        component,
        description,
        image: image(system, d),
        args: d.args.clone(),
        grpc: is_grpc(d),
        port: container_port(d),
        // A Service per deployable, named after it, on its Envoy's port.
        env: container_env(d, |up| up.to_string(), |_| None),
        database: database_env(system, d, "$(POSTGRES_PASSWORD)"),
    }
}
