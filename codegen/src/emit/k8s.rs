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
//!
//! In a pod only the Envoy listens on the pod's IP: the app and Envoy's admin are on
//! loopback, so their probes are exec commands inside the containers.
//! `network-policies.yaml` denies all ingress in the namespace but what the IR says
//! is used: a deployable's Envoy port from the deployables that call it (any source
//! for the BFF's), a server's port from the deployables that connect to it.

use serde::Serialize;

use crate::emit::docker::{
    EnvVar, KAFKA_HOST, LOOPBACK, MONGODB_HOST, POSTGRES_HOST, app_check, container_env,
    container_port, database_env, envoy_check, image, is_grpc, postgres_user, tcp_check,
};
use crate::emit::envoy::k8s_config_file;
use crate::emit::{EmitError, GeneratedFile, compose, header, render};
use crate::ir::{Deployable, Role, System, ports};
use crate::layout::{PROXY, callers};

pub const BASE: &str = "k8s/base";
pub const OVERLAY: &str = "k8s/overlays/minikube";
/// The NodePort of the BFF's Envoy in the minikube overlay.
pub const BFF_NODE_PORT: u16 = 30080;
/// Every NetworkPolicy of the namespace, in the base.
pub const NETWORK_POLICIES: &str = "network-policies.yaml";
/// The Job that creates the Kafka topics (a Kafka client).
const KAFKA_TOPICS_JOB: &str = "kafka-topics";

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
        format!("{BASE}/{NETWORK_POLICIES}"),
        "k8s/network-policies.yaml.tera",
        include_str!("../../../templates/k8s/network-policies.yaml.tera"),
    )?;
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
    envoy_memory_limit_mib: u64,
    kafka_topics_job: &'static str,
    policies: Vec<Policy>,
}

/// One NetworkPolicy: who may connect to the pods named `name`, on `port`.
#[derive(Serialize)]
struct Policy {
    name: String,
    comment: String,
    port: u16,
    /// From anywhere: the BFF's Envoy, the system's entry point.
    public: bool,
    /// The pods (by name) allowed, if not public; none: no ingress at all.
    from: Vec<String>,
}

/// A policy per deployable (its Envoy's port, for the deployables that call it) and per
/// server (for the deployables that use it, and its own clients: the topic Job, itself).
fn policies(system: &System) -> Vec<Policy> {
    let names = |pred: &dyn Fn(&Deployable) -> bool| -> Vec<String> {
        let ds = system.deployables.iter().filter(|d| pred(d));
        ds.map(|d| d.name.clone()).collect()
    };
    let policy = |name: &str, port: u16, public: bool, from: Vec<String>| {
        let comment = match (public, from.is_empty()) {
            (true, _) => format!("`{name}`: from anywhere, the system's entry point"),
            (false, true) => format!("`{name}`: from nowhere, nothing calls it"),
            (false, false) => format!("`{name}`: from {}", from.join(", ")),
        };
        Policy {
            name: name.to_string(),
            comment,
            port,
            public,
            from,
        }
    };
    let mut out: Vec<Policy> = system
        .deployables
        .iter()
        .map(|d| {
            let from = callers(system, &d.name).into_iter().map(String::from);
            policy(&d.name, ports::ENVOY, d.role == Role::Bff, from.collect())
        })
        .collect();
    if !compose::postgres_databases(system).is_empty() {
        let from = names(&|d| !d.databases.is_empty());
        out.push(policy(POSTGRES_HOST, ports::POSTGRES, false, from));
    }
    if !system.event_stores.is_empty() {
        let from = names(&|d| d.event_store.is_some());
        out.push(policy(MONGODB_HOST, ports::MONGODB, false, from));
    }
    if !system.topics.is_empty() {
        let mut from = names(&|d| !d.produces.is_empty() || !d.consumes.is_empty());
        from.extend([KAFKA_TOPICS_JOB, KAFKA_HOST].map(String::from));
        out.push(policy(KAFKA_HOST, ports::KAFKA, false, from));
    }
    out
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
        envoy_memory_limit_mib: PROXY.memory_limit_mib,
        kafka_topics_job: KAFKA_TOPICS_JOB,
        policies: policies(system),
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
    /// Exec probes, run inside the containers (the app and Envoy's admin listen on
    /// loopback, out of the kubelet's reach): the app's own check, Envoy's view of the
    /// app's health, and Envoy's admin accepting connections.
    app_check: Vec<String>,
    envoy_ready: Vec<String>,
    envoy_live: Vec<String>,
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
        app_check: app_check(d),
        envoy_ready: envoy_check(d),
        envoy_live: tcp_check(ports::ENVOY_ADMIN),
        // On loopback: only its Envoy, in the same pod, reaches it. Upstreams are the
        // Services named after them, on their Envoys' port.
        env: container_env(system, d, LOOPBACK, |up| up.to_string(), |_| None),
        database: database_env(system, d, "$(POSTGRES_PASSWORD)"),
    }
}
