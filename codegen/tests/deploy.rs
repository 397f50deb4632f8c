//! The deploy artifacts (Envoy, compose, Kubernetes, Dockerfile), checked by the real
//! tools that consume them: `envoy --mode validate` for every Envoy config,
//! `kubectl kustomize` for the base and the overlay, typed parsing of every manifest
//! (k8s-openapi) and of the compose file (docker-compose-types), plus golden snapshots
//! of a tiny system (`UPDATE_EXPECT=1 cargo test -p codegen --test deploy` updates them).
//!
//! Envoy comes from the project's harness (`xtask/infra/infra.sh install envoy`); the
//! test fails, never skips, when it cannot be installed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use codegen::GeneratedFile;
use codegen::emit::{compose, docker, envoy, k8s};
use codegen::ir::{Role, System};
use docker_compose_types as dc;
use expect_test::expect_file;
use k8s_openapi::api::{apps::v1 as apps, batch::v1 as batch, core::v1 as core};

#[path = "support/envoy.rs"]
mod envoy_check;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn load(rel: &str) -> System {
    let path = root().join(rel);
    let text = std::fs::read_to_string(&path).unwrap();
    codegen::load(Path::new(rel), &text).unwrap_or_else(|e| panic!("{e}"))
}

fn deploy_files(system: &System) -> Vec<GeneratedFile> {
    let mut files = Vec::new();
    files.extend(envoy::emit(system).unwrap());
    files.extend(compose::emit(system).unwrap());
    files.extend(k8s::emit(system).unwrap());
    files.extend(docker::emit(system).unwrap());
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

/// The real spec and its deploy files, written once to a temp dir.
struct Generated {
    system: System,
    files: BTreeMap<String, String>,
    dir: PathBuf,
}

fn generate(name: &str, spec: &str) -> Generated {
    let system = load(spec);
    let list = deploy_files(&system);
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    // Leftovers of earlier runs whose process is gone.
    for entry in std::fs::read_dir(tmp).into_iter().flatten().flatten() {
        let file_name = entry.file_name();
        let pid = file_name
            .to_str()
            .and_then(|n| n.strip_prefix(&format!("deploy-{name}-")));
        if pid.is_some_and(|pid| !Path::new("/proc").join(pid).exists()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let dir = tmp.join(format!("deploy-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut files = BTreeMap::new();
    for f in list {
        let path = dir.join(&f.path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &f.contents).unwrap();
        assert!(
            files.insert(f.path, f.contents).is_none(),
            "a path is emitted twice"
        );
    }
    Generated { system, files, dir }
}

fn shop() -> &'static Generated {
    static SHOP: OnceLock<Generated> = OnceLock::new();
    SHOP.get_or_init(|| generate("shop", "spec/shop.yaml"))
}

fn mini() -> &'static Generated {
    static MINI: OnceLock<Generated> = OnceLock::new();
    MINI.get_or_init(|| generate("mini", "codegen/tests/fixtures/deploy-mini.yaml"))
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn envoy_configs(g: &Generated) -> Vec<&String> {
    g.files
        .keys()
        .filter(|p| p.starts_with("envoy/") || p.starts_with("k8s/base/envoy/"))
        .collect()
}

#[test]
fn every_file_starts_with_the_generated_header_and_is_deterministic() {
    for g in [shop(), mini()] {
        for (path, contents) in &g.files {
            assert!(
                contents.starts_with("# @generated") || contents.starts_with("-- @generated"),
                "{path}"
            );
            assert!(
                contents.ends_with('\n') && !contents.ends_with("\n\n"),
                "{path}: trailing newlines"
            );
        }
        let again: BTreeMap<_, _> = deploy_files(&g.system)
            .into_iter()
            .map(|f| (f.path, f.contents))
            .collect();
        assert_eq!(again, g.files, "the same IR gives the same files");
    }
}

#[test]
fn the_real_spec_gets_every_expected_file() {
    let g = shop();
    let mut expected: BTreeSet<String> = [
        "compose/docker-compose.yaml",
        "compose/postgres-init.sql",
        "docker/Dockerfile",
        "docker/dockerignore",
        "k8s/base/kafka.yaml",
        "k8s/base/kustomization.yaml",
        "k8s/base/mongodb.yaml",
        "k8s/base/namespace.yaml",
        "k8s/base/postgres-init.sql",
        "k8s/base/postgres.yaml",
        "k8s/overlays/minikube/kustomization.yaml",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    for d in &g.system.deployables {
        expected.insert(format!("envoy/local/{}.yaml", d.name));
        expected.insert(format!("envoy/compose/{}.yaml", d.name));
        expected.insert(format!("k8s/base/envoy/{}.yaml", d.name));
        expected.insert(format!("k8s/base/{}.yaml", d.name));
    }
    let actual: BTreeSet<String> = g.files.keys().cloned().collect();
    assert_eq!(actual, expected);
    let sql = &g.files["compose/postgres-init.sql"];
    for db in &g.system.databases {
        // The SQL form of the event store is for the embedded run; the deploy targets
        // run the document store.
        let created = sql.contains(&format!("CREATE DATABASE \"{}\";", db.name));
        assert_eq!(
            created,
            db.kind != codegen::ir::DatabaseKind::EventStore,
            "{}",
            db.name
        );
    }
    assert!(
        g.system
            .databases
            .iter()
            .any(|d| d.kind == codegen::ir::DatabaseKind::EventStore),
        "the cart's event store has its SQL form"
    );
}

#[test]
fn envoy_validates_every_config() {
    let configs: Vec<PathBuf> = [shop(), mini()]
        .into_iter()
        .flat_map(|g| envoy_configs(g).into_iter().map(|p| g.dir.join(p)))
        .collect();
    assert!(configs.len() >= 3 * 7, "{} configs", configs.len());
    let failures = envoy_check::validate(&configs);
    assert!(
        failures.is_empty(),
        "envoy rejected:\n{}",
        failures.join("\n")
    );
}

/// The routes of one Envoy config: (path, retried), from its YAML.
fn envoy_routes(config: &str) -> Vec<(String, bool)> {
    let v: serde_yaml::Value = serde_yaml::from_str(config).unwrap();
    let hcm =
        &v["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    hcm["route_config"]["virtual_hosts"][0]["routes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| {
            let m = &r["match"];
            let path = m["path"]
                .as_str()
                .or(m["prefix"].as_str())
                .unwrap()
                .to_string();
            (path, !r["route"]["retry_policy"].is_null())
        })
        .collect()
}

#[test]
fn envoy_retries_only_idempotent_rpcs() {
    let g = shop();
    for s in &g.system.services {
        for op in &s.operations {
            let path = format!("/{}.{}/{}", s.proto.package, op.rpc.service, op.rpc.method);
            for target in envoy::Target::ALL {
                let config = &g.files[&envoy::config_path(target, &op.deployable)];
                let routes = envoy_routes(config);
                let found: Vec<_> = routes.iter().filter(|(p, _)| *p == path).collect();
                assert_eq!(found.len(), 1, "{path} in {target:?} {}", op.deployable);
                assert_eq!(found[0].1, op.idempotent, "{path}: retried iff idempotent");
            }
        }
    }
    // Not every operation is idempotent, or the test above proves nothing.
    assert!(
        g.system
            .services
            .iter()
            .flat_map(|s| &s.operations)
            .any(|o| !o.idempotent)
    );
    // The edge retries GET only; POST goes to the last, retry-free route.
    let bff = envoy_routes(&g.files["envoy/compose/bff.yaml"]);
    assert_eq!(bff, vec![("/".to_string(), true), ("/".to_string(), false)]);
    let v: serde_yaml::Value = serde_yaml::from_str(&g.files["envoy/compose/bff.yaml"]).unwrap();
    let first = &v["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        ["route_config"]["virtual_hosts"][0]["routes"][0];
    assert_eq!(
        first["match"]["headers"][0]["string_match"]["exact"].as_str(),
        Some("GET")
    );
}

#[test]
fn envoy_addresses_follow_the_target() {
    let g = shop();
    for d in &g.system.deployables {
        let local: serde_yaml::Value =
            serde_yaml::from_str(&g.files[&format!("envoy/local/{}.yaml", d.name)]).unwrap();
        let sock = |v: &serde_yaml::Value, at: &[&str]| {
            let mut x = v;
            for k in at {
                x = match k.parse::<usize>() {
                    Ok(i) => &x[i],
                    Err(_) => &x[*k],
                };
            }
            (
                x["socket_address"]["address"].as_str().unwrap().to_string(),
                x["socket_address"]["port_value"].as_u64().unwrap(),
            )
        };
        let admin = ["admin", "address"];
        let listener = ["static_resources", "listeners", "0", "address"];
        let endpoint = [
            "static_resources",
            "clusters",
            "0",
            "load_assignment",
            "endpoints",
            "0",
            "lb_endpoints",
            "0",
            "endpoint",
            "address",
        ];
        assert_eq!(
            sock(&local, &admin),
            ("127.0.0.1".into(), d.local.envoy_admin as u64)
        );
        assert_eq!(
            sock(&local, &listener),
            ("127.0.0.1".into(), d.local.envoy as u64)
        );
        assert_eq!(
            sock(&local, &endpoint),
            ("127.0.0.1".into(), d.local.app as u64)
        );
        let app_port = if d.role == Role::Bff { 8081 } else { 50051 };
        let composed: serde_yaml::Value =
            serde_yaml::from_str(&g.files[&format!("envoy/compose/{}.yaml", d.name)]).unwrap();
        assert_eq!(sock(&composed, &admin), ("0.0.0.0".into(), 9901));
        assert_eq!(sock(&composed, &listener), ("0.0.0.0".into(), 8080));
        assert_eq!(sock(&composed, &endpoint), (d.name.clone(), app_port));
        assert_eq!(
            composed["static_resources"]["clusters"][0]["type"].as_str(),
            Some("STRICT_DNS")
        );
        let pod: serde_yaml::Value =
            serde_yaml::from_str(&g.files[&format!("k8s/base/envoy/{}.yaml", d.name)]).unwrap();
        assert_eq!(sock(&pod, &admin), ("0.0.0.0".into(), 9901));
        assert_eq!(sock(&pod, &endpoint), ("127.0.0.1".into(), app_port));
        assert_eq!(
            pod["static_resources"]["clusters"][0]["type"].as_str(),
            Some("STATIC")
        );
    }
}

// ---- Kubernetes ---------------------------------------------------------------------

/// Parses one document into its typed struct and checks that nothing was dropped on the
/// way (k8s-openapi ignores unknown fields: a misspelt or misplaced key would vanish).
fn typed<T: serde::de::DeserializeOwned + serde::Serialize>(doc: &serde_yaml::Value) -> T {
    let t: T = serde_yaml::from_value(doc.clone()).unwrap_or_else(|e| panic!("{e}\n{doc:?}"));
    let original = serde_json::to_value(doc).unwrap();
    let back = serde_json::to_value(&t).unwrap();
    if let Err(e) = kept(&original, &back, "") {
        panic!("typed parsing of {:?} lost {e}", doc["metadata"]["name"]);
    }
    t
}

/// Whether everything in `original` survived into `back` (which may add defaults, such
/// as `apiVersion` and `kind` of embedded resources); the path of the first loss.
fn kept(original: &serde_json::Value, back: &serde_json::Value, at: &str) -> Result<(), String> {
    use serde_json::Value;
    match (original, back) {
        (Value::Object(o), Value::Object(b)) => o.iter().try_for_each(|(k, v)| match b.get(k) {
            Some(bv) => kept(v, bv, &format!("{at}.{k}")),
            None => Err(format!("{at}.{k}")),
        }),
        (Value::Array(o), Value::Array(b)) if o.len() == b.len() => o
            .iter()
            .zip(b)
            .enumerate()
            .try_for_each(|(i, (o, b))| kept(o, b, &format!("{at}[{i}]"))),
        (Value::Null, Value::Object(b)) if b.is_empty() => Ok(()),
        (o, b) if o == b => Ok(()),
        (o, b) => Err(format!("{at}: {o} became {b}")),
    }
}

#[derive(Default)]
struct Manifests {
    namespaces: Vec<core::Namespace>,
    deployments: BTreeMap<String, apps::Deployment>,
    stateful_sets: BTreeMap<String, apps::StatefulSet>,
    services: BTreeMap<String, core::Service>,
    config_maps: BTreeMap<String, core::ConfigMap>,
    secrets: BTreeMap<String, core::Secret>,
    jobs: BTreeMap<String, batch::Job>,
}

fn parse_manifests(yaml: &str, namespace: &str) -> Manifests {
    let mut m = Manifests::default();
    for de in serde_yaml::Deserializer::from_str(yaml) {
        let doc = <serde_yaml::Value as serde::Deserialize>::deserialize(de).unwrap();
        let name = doc["metadata"]["name"].as_str().unwrap().to_string();
        let kind = doc["kind"].as_str().unwrap().to_string();
        if kind != "Namespace" {
            assert_eq!(
                doc["metadata"]["namespace"].as_str(),
                Some(namespace),
                "{kind} {name}"
            );
        }
        match kind.as_str() {
            "Namespace" => m.namespaces.push(typed(&doc)),
            "Deployment" => drop(m.deployments.insert(name, typed(&doc))),
            "StatefulSet" => drop(m.stateful_sets.insert(name, typed(&doc))),
            "Service" => drop(m.services.insert(name, typed(&doc))),
            "ConfigMap" => drop(m.config_maps.insert(name, typed(&doc))),
            "Secret" => drop(m.secrets.insert(name, typed(&doc))),
            "Job" => drop(m.jobs.insert(name, typed(&doc))),
            other => panic!("unexpected kind {other}"),
        }
    }
    m
}

fn kustomize(dir: &Path) -> String {
    run(Command::new("kubectl").arg("kustomize").arg(dir))
}

#[test]
fn kustomize_builds_base_and_overlay_into_typed_manifests() {
    let g = shop();
    let base = parse_manifests(&kustomize(&g.dir.join("k8s/base")), &g.system.name);
    let ns = &g.system.name;
    assert_eq!(base.namespaces.len(), 1);
    assert_eq!(
        base.namespaces[0].metadata.name.as_deref(),
        Some(ns.as_str())
    );
    for name in ["postgres", "mongodb", "kafka"] {
        assert!(base.stateful_sets.contains_key(name), "{name}");
        assert!(base.services.contains_key(name), "{name}");
    }
    assert!(base.jobs.contains_key("kafka-topics"));
    assert!(base.secrets.contains_key("postgres"));
    for d in &g.system.deployables {
        let dep = &base.deployments[&d.name];
        assert_eq!(dep.metadata.namespace.as_deref(), Some(ns.as_str()));
        let pod = dep.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        let names: Vec<&str> = pod.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["app", "envoy"], "{}", d.name);
        let app = &pod.containers[0];
        let envoy = &pod.containers[1];
        if d.role == Role::Bff {
            assert!(app.readiness_probe.as_ref().unwrap().http_get.is_some());
        } else {
            assert_eq!(
                app.readiness_probe
                    .as_ref()
                    .unwrap()
                    .grpc
                    .as_ref()
                    .unwrap()
                    .port,
                50051,
                "{}",
                d.name
            );
        }
        let args = app.args.clone().unwrap_or_default();
        match d.role {
            Role::Command => assert_eq!(args, ["--role", "command"]),
            Role::Query => assert_eq!(args, ["--role", "query"]),
            Role::EventHandler => assert_eq!(args, ["--role", "event-handler"]),
            Role::Bff | Role::Grpc => assert!(args.is_empty()),
        }
        assert!(app.resources.as_ref().unwrap().limits.is_some());
        assert_eq!(
            envoy
                .readiness_probe
                .as_ref()
                .unwrap()
                .http_get
                .as_ref()
                .unwrap()
                .path
                .as_deref(),
            Some("/ready")
        );
        // The envoy config map: generated with a hash suffix, holding the config file.
        let volume = pod
            .volumes
            .as_ref()
            .unwrap()
            .iter()
            .find(|v| v.name == "envoy-config")
            .unwrap();
        let cm_name = volume.config_map.as_ref().unwrap().name.clone();
        assert!(
            cm_name.starts_with(&format!("{}-envoy-", d.name)),
            "{cm_name}"
        );
        let cm = &base.config_maps[&cm_name];
        assert_eq!(
            cm.data.as_ref().unwrap()["envoy.yaml"],
            g.files[&format!("k8s/base/envoy/{}.yaml", d.name)]
        );
        // Environment: one ConfigMap, plus DATABASE_URL built from the Secret.
        let env_cm = &base.config_maps[&format!("{}-env", d.name)];
        let data = env_cm.data.as_ref().unwrap();
        assert!(data.contains_key("LISTEN_ADDR") && data.contains_key("RUST_LOG"));
        for up in &d.upstreams {
            let var = format!("{}_URL", up.to_uppercase().replace('-', "_"));
            assert_eq!(data[&var], format!("http://{up}:8080"));
        }
        assert_eq!(
            data.contains_key("EVENT_STORE_URL"),
            d.event_store.is_some()
        );
        let env = app.env.clone().unwrap_or_default();
        assert_eq!(
            env.iter().any(|e| e.name == "DATABASE_URL"),
            !d.databases.is_empty(),
            "{}",
            d.name
        );
        // The Service goes to the Envoy.
        let svc = &base.services[&d.name];
        let port = &svc.spec.as_ref().unwrap().ports.as_ref().unwrap()[0];
        assert_eq!(port.port, 8080);
        assert!(svc.spec.as_ref().unwrap().type_.is_none());
    }
    // The overlay: the same, with the BFF's Envoy on a NodePort.
    let overlay = parse_manifests(
        &kustomize(&g.dir.join("k8s/overlays/minikube")),
        &g.system.name,
    );
    assert_eq!(overlay.deployments.len(), base.deployments.len());
    let bff = overlay.services["bff"].spec.as_ref().unwrap();
    assert_eq!(bff.type_.as_deref(), Some("NodePort"));
    assert_eq!(
        bff.ports.as_ref().unwrap()[0].node_port,
        Some(k8s::BFF_NODE_PORT as i32)
    );
    // The tiny system builds as well (no MongoDB, no Kafka).
    let m = mini();
    let mini_base = parse_manifests(&kustomize(&m.dir.join("k8s/base")), &m.system.name);
    assert_eq!(
        mini_base.stateful_sets.keys().collect::<Vec<_>>(),
        ["postgres"]
    );
    parse_manifests(
        &kustomize(&m.dir.join("k8s/overlays/minikube")),
        &m.system.name,
    );
}

// ---- compose ------------------------------------------------------------------------

fn resolve(base: &str, rel: &str) -> String {
    let mut parts: Vec<&str> = base.split('/').filter(|p| !p.is_empty()).collect();
    for p in rel.split('/') {
        match p {
            "." | "" => {}
            ".." => {
                parts.pop().expect("stays inside generated/");
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

fn check_compose(g: &Generated) {
    let text = &g.files["compose/docker-compose.yaml"];
    let c: dc::Compose = serde_yaml::from_str(text).unwrap();
    // Nothing lost in typed parsing.
    let original: serde_json::Value = serde_yaml::from_str(text).unwrap();
    if let Err(e) = kept(&original, &serde_json::to_value(&c).unwrap(), "") {
        panic!("typed parsing of the compose file lost {e}");
    }
    assert_eq!(c.name.as_deref(), Some(g.system.name.as_str()));
    let services: BTreeMap<&str, &dc::Service> = c
        .services
        .0
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_ref().unwrap()))
        .collect();
    let volumes: BTreeSet<&str> = c.volumes.0.keys().map(String::as_str).collect();
    for d in &g.system.deployables {
        let app = services
            .get(d.name.as_str())
            .unwrap_or_else(|| panic!("service {}", d.name));
        let envoy = services[format!("{}-envoy", d.name).as_str()];
        let dc::BuildStep::Advanced(build) = app.build_.as_ref().unwrap() else {
            panic!()
        };
        let dockerfile = resolve(
            &resolve("generated/compose", &build.context),
            build.dockerfile.as_ref().unwrap(),
        );
        assert_eq!(dockerfile, "generated/docker/Dockerfile");
        assert_eq!(
            app.image(),
            format!("{}/{}:latest", g.system.name, d.binary)
        );
        let Some(dc::BuildArgs::KvPair(args)) = &build.args else {
            panic!("{}: build args as a map", d.name)
        };
        assert_eq!(args["CRATE"], d.package, "{}", d.name);
        assert_eq!(args["BIN"], d.binary, "{}", d.name);
        assert!(envoy.image().starts_with("envoyproxy/envoy:"));
        let published = !envoy.ports.is_empty();
        assert_eq!(
            published,
            d.role == Role::Bff,
            "only the BFF's Envoy publishes a port"
        );
        assert!(app.ports.is_empty());
        let dc::Environment::KvPair(env) = &app.environment else {
            panic!("env as a map")
        };
        let env: BTreeMap<&str, String> = env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_ref().unwrap().to_string()))
            .collect();
        for up in &d.upstreams {
            let var = format!("{}_URL", up.to_uppercase().replace('-', "_"));
            assert_eq!(env[var.as_str()], format!("http://{up}-envoy:8080"));
        }
        assert_eq!(env.contains_key("DATABASE_URL"), !d.databases.is_empty());
        if let Some(db) = d.databases.first() {
            assert!(env["DATABASE_URL"].ends_with(&format!("@postgres:5432/{db}")));
        }
        if let Some(store) = &d.event_store {
            assert_eq!(
                env["EVENT_STORE_URL"],
                format!("mongodb://mongodb:27017/{store}")
            );
        }
    }
    for (name, s) in &services {
        // Every long-running service has a healthcheck; one-shots (restart "no") exit.
        if s.restart.as_deref() != Some("no") {
            let hc = s
                .healthcheck
                .as_ref()
                .unwrap_or_else(|| panic!("{name} has no healthcheck"));
            assert!(hc.test.is_some(), "{name}");
        }
        match &s.depends_on {
            dc::DependsOnOptions::Simple(v) => assert!(v.is_empty(), "{name}: conditions, please"),
            dc::DependsOnOptions::Conditional(deps) => {
                for (dep, cond) in deps {
                    let target = services
                        .get(dep.as_str())
                        .unwrap_or_else(|| panic!("{name} -> {dep}"));
                    if target.restart.as_deref() == Some("no") {
                        assert_eq!(cond.condition, "service_completed_successfully");
                    } else {
                        assert_eq!(cond.condition, "service_healthy", "{name} -> {dep}");
                    }
                }
            }
        }
        for v in &s.volumes {
            let dc::Volumes::Simple(spec) = v else {
                panic!("{name}: short volume syntax")
            };
            let source = spec.split(':').next().unwrap();
            if source.starts_with('.') {
                let file = resolve("generated/compose", source);
                let generated = file
                    .strip_prefix("generated/")
                    .is_some_and(|f| g.files.contains_key(f));
                assert!(generated, "{name} mounts {source}, not generated ({file})");
            } else {
                assert!(
                    volumes.contains(source),
                    "{name}: volume {source} not declared"
                );
            }
        }
    }
    // Every Envoy config mounted is the compose one of its deployable.
    for d in &g.system.deployables {
        let envoy = services[format!("{}-envoy", d.name).as_str()];
        let dc::Volumes::Simple(spec) = &envoy.volumes[0] else {
            panic!()
        };
        assert_eq!(
            spec,
            &format!("../envoy/compose/{}.yaml:/etc/envoy/envoy.yaml:ro", d.name)
        );
    }
}

#[test]
fn compose_parses_and_every_reference_resolves() {
    let g = shop();
    check_compose(g);
    let text = &g.files["compose/docker-compose.yaml"];
    let c: dc::Compose = serde_yaml::from_str(text).unwrap();
    for name in ["postgres", "mongodb", "kafka", "kafka-init"] {
        assert!(c.services.0.contains_key(name), "{name}");
    }
    let init = c.services.0["kafka-init"].as_ref().unwrap();
    let Some(dc::Command::Args(cmd)) = &init.command else {
        panic!("kafka-init command")
    };
    for t in &g.system.topics {
        assert!(cmd[2].contains(&format!("--topic {} --partitions {}", t.name, t.partitions)));
    }
    check_compose(mini());
}

// ---- snapshots (tiny system) --------------------------------------------------------

#[test]
fn snapshots() {
    let m = mini();
    expect_file!["snapshots/deploy/envoy-local-catalog.yaml"]
        .assert_eq(&m.files["envoy/local/catalog.yaml"]);
    expect_file!["snapshots/deploy/docker-compose.yaml"]
        .assert_eq(&m.files["compose/docker-compose.yaml"]);
    expect_file!["snapshots/deploy/k8s-catalog.yaml"].assert_eq(&m.files["k8s/base/catalog.yaml"]);
}
