//! The deploy artifacts (Envoy, compose, Kubernetes, Dockerfile), checked by the real
//! tools that consume them: `envoy --mode validate` for every Envoy config,
//! kustomize for the base and the overlay, the pinned Kubernetes API's schemas
//! (kubernetes-validate --strict) and typed parsing of every manifest
//! (k8s-openapi) and of the compose file (docker-compose-types), the edge's behaviour on
//! a real Envoy, plus golden snapshots of a tiny system (`UPDATE_EXPECT=1 cargo test -p
//! codegen --test deploy` updates them).
//!
//! Envoy, kustomize and kubernetes-validate come from the project's harness
//! (`xtask/infra/infra.sh install envoy k8s`); the test fails, never skips, when it cannot be installed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use codegen::GeneratedFile;
use codegen::emit::{compose, docker, envoy, k8s};
use codegen::ir::{Audience, Role, System};
use codegen::layout::{self, BFF_PATHS, PROXY};
use docker_compose_types as dc;
use expect_test::expect_file;
use k8s_openapi::api::{
    apps::v1 as apps, batch::v1 as batch, core::v1 as core, networking::v1 as net,
};

#[path = "support/envoy.rs"]
mod envoy_check;
#[path = "support/k8s.rs"]
mod k8s_check;

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
    generate_system(name, load(spec))
}

fn generate_system(name: &str, system: System) -> Generated {
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

fn library() -> &'static Generated {
    static LIBRARY: OnceLock<Generated> = OnceLock::new();
    LIBRARY.get_or_init(|| generate("library", "services/library/spec/library.yaml"))
}

/// A copy of the shop where `GetOrder` is internal (and so no longer a GraphQL query).
fn shop_with_internal_get_order() -> &'static Generated {
    static COPY: OnceLock<Generated> = OnceLock::new();
    COPY.get_or_init(|| {
        let text = std::fs::read_to_string(root().join("spec/shop.yaml")).unwrap();
        let edited = text
            .replace(
                "GetOrder: { kind: get }",
                "GetOrder: { kind: get, audience: internal }",
            )
            .replace(", ViewOrders, GetOrder, ", ", ViewOrders, ");
        assert_ne!(edited, text, "the shop's spec changed: edit this copy too");
        let system =
            codegen::load(Path::new("shop-copy.yaml"), &edited).unwrap_or_else(|e| panic!("{e}"));
        generate_system("shop-copy", system)
    })
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
        "docker/Dockerfile.dockerignore",
        "k8s/base/kafka.yaml",
        "k8s/base/kustomization.yaml",
        "k8s/base/mongodb.yaml",
        "k8s/base/namespace.yaml",
        "k8s/base/network-policies.yaml",
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
    let configs: Vec<PathBuf> = [shop(), mini(), library()]
        .into_iter()
        .flat_map(|g| envoy_configs(g).into_iter().map(|p| g.dir.join(p)))
        .collect();
    assert!(
        configs.len() >= 3 * (7 + 2 + 2),
        "{} configs",
        configs.len()
    );
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
    // The edge retries GET only: each of the BFF's paths has a retried GET route, then
    // a retry-free one for the other methods; the last route answers everything else.
    let bff = envoy_routes(&g.files["envoy/compose/bff.yaml"]);
    let mut expected: Vec<(String, bool)> = BFF_PATHS
        .iter()
        .flat_map(|p| [(p.to_string(), true), (p.to_string(), false)])
        .collect();
    expected.push(("/".to_string(), false));
    assert_eq!(bff, expected);
    let v: serde_yaml::Value = serde_yaml::from_str(&g.files["envoy/compose/bff.yaml"]).unwrap();
    let routes = &hcm(&v)["route_config"]["virtual_hosts"][0]["routes"];
    for (i, r) in routes.as_sequence().unwrap().iter().enumerate() {
        let get = r["match"]["headers"][0]["string_match"]["exact"].as_str();
        assert_eq!(get == Some("GET"), expected[i].1, "route {i}");
    }
}

/// The HTTP connection manager of a config's only listener.
fn hcm(config: &serde_yaml::Value) -> &serde_yaml::Value {
    &config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
}

/// Every route of the edge that a request for `path` (any method) may take: those
/// whose path or prefix matches, up to the first that matches whatever the method.
fn edge_routes_for<'a>(config: &'a serde_yaml::Value, path: &str) -> Vec<&'a serde_yaml::Value> {
    let mut out = Vec::new();
    for r in hcm(config)["route_config"]["virtual_hosts"][0]["routes"]
        .as_sequence()
        .unwrap()
    {
        let m = &r["match"];
        let hit = m["path"].as_str() == Some(path)
            || m["prefix"].as_str().is_some_and(|p| path.starts_with(p));
        if hit {
            out.push(r);
            if m["headers"].is_null() {
                break;
            }
        }
    }
    out
}

/// The BFF's Envoy routes its paths to the BFF and answers 404 to any other, in
/// particular to every RPC of every service: no internal operation is reachable from
/// outside, whatever the spec (the shop, the library, a shop with one more internal
/// operation). Each service's own Envoy does route its RPCs, internal ones included.
#[test]
fn the_edge_routes_only_the_bffs_paths_never_an_rpc() {
    let mut internal = 0;
    for g in [shop(), library(), shop_with_internal_get_order()] {
        let bff = g
            .system
            .deployables
            .iter()
            .find(|d| d.role == Role::Bff)
            .unwrap();
        for target in envoy::Target::ALL {
            let config: serde_yaml::Value =
                serde_yaml::from_str(&g.files[&envoy::config_path(target, &bff.name)]).unwrap();
            for path in BFF_PATHS {
                for r in edge_routes_for(&config, path) {
                    assert_eq!(
                        r["route"]["cluster"].as_str(),
                        Some(bff.name.as_str()),
                        "{path}"
                    );
                }
            }
            for s in &g.system.services {
                for op in &s.operations {
                    let path = format!("/{}.{}/{}", s.proto.package, op.rpc.service, op.rpc.method);
                    let routes = edge_routes_for(&config, &path);
                    assert_eq!(routes.len(), 1, "{path}");
                    assert!(routes[0]["route"].is_null(), "{path} is routed by the edge");
                    assert_eq!(routes[0]["direct_response"]["status"].as_u64(), Some(404));
                    let own = envoy_routes(&g.files[&envoy::config_path(target, &op.deployable)]);
                    assert!(
                        own.iter().any(|(p, _)| *p == path),
                        "{path} not routed by {}",
                        op.deployable
                    );
                    internal += usize::from(op.audience == Audience::Internal);
                }
            }
        }
    }
    assert!(internal > 0, "no internal operation was checked");
    let copy = &shop_with_internal_get_order().system;
    let get_order = copy
        .services
        .iter()
        .flat_map(|s| &s.operations)
        .find(|o| o.name == "GetOrder");
    assert_eq!(get_order.unwrap().audience, Audience::Internal);
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
        // Admin on loopback everywhere; the listener on the container's or pod's network.
        assert_eq!(sock(&composed, &admin), ("127.0.0.1".into(), 9901));
        assert_eq!(sock(&composed, &listener), ("0.0.0.0".into(), 8080));
        assert_eq!(sock(&composed, &endpoint), (d.name.clone(), app_port));
        assert_eq!(
            composed["static_resources"]["clusters"][0]["type"].as_str(),
            Some("STRICT_DNS")
        );
        let pod: serde_yaml::Value =
            serde_yaml::from_str(&g.files[&format!("k8s/base/envoy/{}.yaml", d.name)]).unwrap();
        assert_eq!(sock(&pod, &admin), ("127.0.0.1".into(), 9901));
        assert_eq!(sock(&pod, &listener), ("0.0.0.0".into(), 8080));
        assert_eq!(sock(&pod, &endpoint), ("127.0.0.1".into(), app_port));
        assert_eq!(
            pod["static_resources"]["clusters"][0]["type"].as_str(),
            Some("STATIC")
        );
    }
}

/// Every config, whatever its deployable and target, has the same hardening
/// (`layout::PROXY`), and the edge has the spec's limits.
#[test]
fn every_envoy_is_hardened() {
    for g in [shop(), mini(), library()] {
        let limits = g.system.bff.limits;
        for path in envoy_configs(g) {
            let v: serde_yaml::Value = serde_yaml::from_str(&g.files[path]).unwrap();
            let h = hcm(&v);
            let s = |v: &serde_yaml::Value| v.as_str().map(str::to_string);
            let n = |v: &serde_yaml::Value| v.as_u64();
            assert_eq!(
                s(&v["admin"]["address"]["socket_address"]["address"]).as_deref(),
                Some("127.0.0.1"),
                "{path}"
            );
            assert_eq!(
                s(&h["request_headers_timeout"]).as_deref(),
                Some(PROXY.request_headers_timeout),
                "{path}"
            );
            assert_eq!(
                s(&h["stream_idle_timeout"]).as_deref(),
                Some(PROXY.stream_idle_timeout),
                "{path}"
            );
            assert_eq!(
                n(&h["max_request_headers_kb"]),
                Some(PROXY.max_request_headers_kb.into()),
                "{path}"
            );
            let common = &h["common_http_protocol_options"];
            assert_eq!(
                s(&common["idle_timeout"]).as_deref(),
                Some(PROXY.connection_idle_timeout),
                "{path}"
            );
            assert_eq!(
                s(&common["headers_with_underscores_action"]).as_deref(),
                Some("REJECT_REQUEST"),
                "{path}"
            );
            let clusters = v["static_resources"]["clusters"].as_sequence().unwrap();
            for c in clusters {
                let t = &c["circuit_breakers"]["thresholds"][0];
                let got = [
                    "max_connections",
                    "max_pending_requests",
                    "max_requests",
                    "max_retries",
                ]
                .map(|k| n(&t[k]));
                let want = [
                    PROXY.max_connections,
                    PROXY.max_pending_requests,
                    PROXY.max_requests,
                    PROXY.max_retries,
                ]
                .map(|x| Some(u64::from(x)));
                assert_eq!(got, want, "{path}");
            }
            let om = &v["overload_manager"];
            let monitors: Vec<_> = om["resource_monitors"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|m| s(&m["name"]).unwrap())
                .collect();
            assert_eq!(
                monitors,
                [
                    "envoy.resource_monitors.fixed_heap",
                    "envoy.resource_monitors.global_downstream_max_connections"
                ],
                "{path}"
            );
            assert_eq!(
                n(&om["resource_monitors"][0]["typed_config"]["max_heap_size_bytes"]),
                Some(PROXY.max_heap_bytes)
            );
            let actions: Vec<_> = om["actions"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|a| s(&a["name"]).unwrap())
                .collect();
            assert_eq!(
                actions,
                [
                    "envoy.overload_actions.shrink_heap",
                    "envoy.overload_actions.stop_accepting_requests"
                ],
                "{path}"
            );
            let filters: Vec<_> = h["http_filters"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|f| s(&f["name"]).unwrap())
                .collect();
            let edge = path.ends_with("/bff.yaml");
            if edge {
                let mut want = vec!["envoy.filters.http.buffer", "envoy.filters.http.router"];
                if g.system.auth.is_some() {
                    want.insert(0, "envoy.filters.http.jwt_authn");
                    let jwt = &h["http_filters"][0]["typed_config"]["providers"]["identity"];
                    assert_eq!(s(&jwt["issuer"]).as_deref(), Some(g.system.name.as_str()));
                    assert!(
                        s(&jwt["remote_jwks"]["http_uri"]["uri"])
                            .is_some_and(|u| u.ends_with("/.well-known/jwks.json")),
                        "{path}"
                    );
                }
                assert_eq!(filters, want, "{path}");
                assert_eq!(
                    n(&h["http_filters"][want.len() - 2]["typed_config"]["max_request_bytes"]),
                    Some(limits.max_body_bytes)
                );
                let timeout = format!("{}s", limits.request_timeout_ms / 1000);
                assert_eq!(s(&h["request_timeout"]), Some(timeout.clone()), "{path}");
                for r in h["route_config"]["virtual_hosts"][0]["routes"]
                    .as_sequence()
                    .unwrap()
                {
                    if !r["route"].is_null() {
                        assert_eq!(s(&r["route"]["timeout"]), Some(timeout.clone()), "{path}");
                    }
                }
            } else {
                assert_eq!(filters, ["envoy.filters.http.router"], "{path}");
            }
        }
    }
    // The library sets its own limits; the shop and the mini system take the defaults.
    assert_eq!(shop().system.bff.limits, codegen::ir::EdgeLimits::DEFAULT);
    assert_ne!(
        library().system.bff.limits,
        codegen::ir::EdgeLimits::DEFAULT
    );
}

/// A child process killed when dropped.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A stand-in for the BFF: answers 200 to every HTTP/1.1 request and records its path.
fn stand_in() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut writer = conn;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split(' ').nth(1).unwrap_or_default().to_string();
                    let mut length = 0;
                    loop {
                        let mut header = String::new();
                        reader.read_line(&mut header).unwrap();
                        if header.trim().is_empty() {
                            break;
                        }
                        if let Some((k, v)) = header.split_once(':')
                            && k.eq_ignore_ascii_case("content-length")
                        {
                            length = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    log.lock().unwrap().push(path);
                    let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if writer.write_all(ok).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, seen)
}

/// One HTTP/1.1 request; the response's status and head. The body is written while the
/// response is read, so that a proxy answering early (413) is heard.
fn request(port: u16, method: &str, path: &str, headers: &str, body: Vec<u8>) -> (u16, String) {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: localhost\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).unwrap();
    let mut sender = conn.try_clone().unwrap();
    let writing = std::thread::spawn(move || drop(sender.write_all(&body)));
    let mut response = Vec::new();
    let mut buf = [0; 1024];
    while !response.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => response.extend_from_slice(&buf[..n]),
        }
    }
    writing.join().unwrap();
    let text = String::from_utf8_lossy(&response).to_lowercase();
    let code = text.split(' ').nth(1).and_then(|c| c.parse().ok());
    let code = code.unwrap_or_else(|| panic!("{method} {path}: no status in {text:?}"));
    (code, text)
}

fn status(port: u16, method: &str, path: &str, headers: &str, body: Vec<u8>) -> u16 {
    request(port, method, path, headers, body).0
}

/// A GET on Envoy's admin interface; the body (chunked: look for whole lines in it).
fn admin_get(admin: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(admin).ok()?;
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    conn.read_to_string(&mut text).ok()?;
    Some(text.split_once("\r\n\r\n")?.1.to_string())
}

/// The generated local config of the shop's BFF Envoy, started for real in front of a
/// stand-in BFF: its paths reach the BFF, a body over `bff.limits.max_body_bytes` is
/// 413, a gRPC path of an internal operation and any other path are 404, a header with
/// an underscore is 400, and none of the refused requests reaches the BFF.
#[test]
fn the_edge_refuses_large_bodies_and_other_paths_on_a_real_envoy() {
    let g = shop();
    let (app_port, seen) = stand_in();
    let mut config = envoy_check::on_free_ports(&g.files["envoy/local/bff.yaml"]);
    config["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]["lb_endpoints"]
        [0]["endpoint"]["address"]["socket_address"]["port_value"] = app_port.into();
    let dir = g.dir.join("real-edge");
    std::fs::create_dir_all(&dir).unwrap();
    let (file, admin_file) = (dir.join("bff.yaml"), dir.join("admin"));
    let _ = std::fs::remove_file(&admin_file);
    std::fs::write(&file, serde_yaml::to_string(&config).unwrap()).unwrap();
    let _envoy = Killed(
        Command::new(envoy_check::bin())
            .args(["--disable-hot-restart", "--log-level", "warn", "-c"])
            .arg(&file)
            .arg("--admin-address-path")
            .arg(&admin_file)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The listener's port, once Envoy is ready.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let port: u16 = loop {
        assert!(std::time::Instant::now() < deadline, "Envoy did not start");
        std::thread::sleep(std::time::Duration::from_millis(100));
        let Ok(admin) = std::fs::read_to_string(&admin_file) else {
            continue;
        };
        let admin = admin.trim();
        if admin_get(admin, "/ready").is_none_or(|r| !r.lines().any(|l| l == "LIVE")) {
            continue;
        }
        let listeners = admin_get(admin, "/listeners").unwrap_or_default();
        if let Some(port) = listeners.lines().find_map(|l| {
            l.strip_prefix("ingress::")?
                .rsplit(':')
                .next()?
                .parse()
                .ok()
        }) {
            break port;
        }
    };
    let max = g.system.bff.limits.max_body_bytes as usize;
    let json = "content-type: application/json\r\n";
    assert_eq!(status(port, "GET", "/healthz", "", Vec::new()), 200);
    assert_eq!(
        status(port, "GET", "/graphql?query=%7Bok%7D", "", Vec::new()),
        200
    );
    assert_eq!(status(port, "POST", "/graphql", json, vec![b' '; max]), 200);
    assert_eq!(
        status(port, "POST", "/graphql", json, vec![b' '; 200 * 1024]),
        413
    );
    assert_eq!(
        status(port, "POST", "/graphql", json, vec![b' '; max + 1]),
        413
    );
    let delete_cart = "/shop.cart.v1.CartCommandService/DeleteCart";
    assert_eq!(status(port, "POST", delete_cart, json, Vec::new()), 404);
    // A gRPC client hears the 404 as UNIMPLEMENTED.
    let grpc = "content-type: application/grpc\r\nte: trailers\r\n";
    let (code, head) = request(port, "POST", delete_cart, grpc, Vec::new());
    assert!(code == 404 || head.contains("grpc-status: 12"), "{head}");
    assert_eq!(status(port, "GET", "/stats", "", Vec::new()), 404);
    assert_eq!(
        status(port, "GET", "/healthz", "x_user: a\r\n", Vec::new()),
        400
    );
    // A token that is not a JWT never reaches the BFF: 401, a (coded) JSON error.
    let bearer = "content-type: application/json\r\nauthorization: Bearer not-a-jwt\r\n";
    let (code, refused) = request(port, "POST", "/graphql", bearer, b"{}".to_vec());
    assert_eq!(code, 401, "{refused}");
    assert!(
        refused.contains("content-type: application/json"),
        "{refused}"
    );
    let seen = seen.lock().unwrap();
    // Envoy itself fetches the keys (jwt_authn's remote JWKS) from the BFF.
    assert!(
        seen.iter()
            .all(|p| p == "/healthz" || p == "/.well-known/jwks.json" || p.starts_with("/graphql")),
        "{seen:?}"
    );
    assert_eq!(
        seen.iter().filter(|p| p.starts_with("/graphql")).count(),
        2,
        "{seen:?}"
    );
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
    network_policies: BTreeMap<String, net::NetworkPolicy>,
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
            "NetworkPolicy" => drop(m.network_policies.insert(name, typed(&doc))),
            other => panic!("unexpected kind {other}"),
        }
    }
    m
}

fn kustomize(dir: &Path) -> String {
    k8s_check::build(dir)
}

/// Every manifest of the base and the overlay, of the shop and of the tiny system, is
/// what the pinned Kubernetes API accepts (no unknown field, every type and required
/// field right); a broken one is refused, so the check can fail.
#[test]
fn manifests_are_valid_for_the_pinned_kubernetes_api() {
    for g in [shop(), mini()] {
        for (i, dir) in ["k8s/base", "k8s/overlays/minikube"].iter().enumerate() {
            let rendered = kustomize(&g.dir.join(dir));
            let file = g.dir.join(format!("rendered-{i}.yaml"));
            if let Err(e) = k8s_check::validate(&rendered, &file) {
                panic!(
                    "{} {dir} against Kubernetes {}:\n{e}",
                    g.system.name,
                    k8s_check::KUBERNETES_VERSION
                );
            }
        }
    }
    let g = shop();
    let rendered = kustomize(&g.dir.join("k8s/base"));
    let broken = rendered.replacen("containerPort:", "containerPorts:", 1);
    let e = k8s_check::validate(&broken, &g.dir.join("rendered-broken.yaml"))
        .expect_err("a misspelt field is refused");
    assert!(e.contains("containerPort"), "{e}");
}

/// The images the manifests name are the ones the compose file names, which
/// `xtask/infra/compose.sh images` builds (checked there against what it built).
#[test]
fn manifests_name_the_images_compose_builds() {
    for g in [shop(), mini()] {
        let rendered = kustomize(&g.dir.join("k8s/overlays/minikube"));
        let k8s_images: BTreeSet<String> = images_named(&rendered);
        let compose = g
            .files
            .iter()
            .find(|(p, _)| p.ends_with("docker-compose.yaml"))
            .map(|(_, c)| c.as_str())
            .expect("a compose file");
        let compose_images = images_named(compose);
        assert!(!k8s_images.is_empty());
        assert_eq!(k8s_images, compose_images, "{}", g.system.name);
    }
}

/// The values of every `image:` key in a YAML stream.
fn images_named(yaml: &str) -> BTreeSet<String> {
    yaml.lines()
        .filter_map(|l| l.trim().trim_start_matches("- ").strip_prefix("image:"))
        .map(|v| v.trim().trim_matches(['"', '\'']).to_string())
        .collect()
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
        // The app listens on loopback: no port of the pod, probed from inside.
        assert!(app.ports.is_none(), "{}", d.name);
        let exec = |p: &Option<core::Probe>| -> String {
            let command = p.as_ref().unwrap().exec.as_ref().unwrap().command.clone();
            command.unwrap().join(" ")
        };
        let app_port = if d.role == Role::Bff { 8081 } else { 50051 };
        for probe in [&app.startup_probe, &app.liveness_probe] {
            assert!(
                exec(probe).contains(&format!("/dev/tcp/127.0.0.1/{app_port}")),
                "{}",
                d.name
            );
        }
        assert!(
            app.readiness_probe.is_none(),
            "the Envoy's readiness says the app is healthy"
        );
        let args = app.args.clone().unwrap_or_default();
        match d.role {
            Role::Command => assert_eq!(args, ["--role", "command"]),
            Role::Query => assert_eq!(args, ["--role", "query"]),
            Role::EventHandler => assert_eq!(args, ["--role", "event-handler"]),
            Role::Bff | Role::Grpc => assert!(args.is_empty()),
        }
        assert!(app.resources.as_ref().unwrap().limits.is_some());
        // Envoy's admin is on loopback too: its probes run inside its container. The
        // pod is ready once Envoy's active health checks find the app healthy.
        let ready = exec(&envoy.readiness_probe);
        assert!(ready.contains("/dev/tcp/127.0.0.1/9901") && ready.contains("/clusters"));
        assert!(ready.contains(&format!("^{}::.*::health_flags::healthy", d.name)));
        assert!(exec(&envoy.liveness_probe).contains("/dev/tcp/127.0.0.1/9901"));
        let envoy_ports = envoy.ports.as_ref().unwrap();
        assert_eq!(
            envoy_ports.len(),
            1,
            "only the listener is a port of the pod"
        );
        assert_eq!(
            (
                envoy_ports[0].name.as_deref(),
                envoy_ports[0].container_port
            ),
            (Some("http"), 8080)
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
        assert_eq!(
            data["LISTEN_ADDR"],
            format!("127.0.0.1:{app_port}"),
            "{}",
            d.name
        );
        assert!(data.contains_key("RUST_LOG"));
        let limits = g.system.bff.limits;
        let edge_env = [
            ("GRAPHQL_MAX_BODY_BYTES", limits.max_body_bytes.to_string()),
            (
                "GRAPHQL_REQUEST_TIMEOUT_MS",
                limits.request_timeout_ms.to_string(),
            ),
        ];
        for (var, value) in &edge_env {
            assert_eq!(
                data.get(*var),
                (d.role == Role::Bff).then_some(value),
                "{}",
                d.name
            );
        }
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
        assert_eq!(
            port.target_port,
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("http".into()))
        );
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

/// The pods a policy admits on its one port: `None` for any source, else the names.
fn admitted(p: &net::NetworkPolicy) -> (Option<i32>, Option<BTreeSet<String>>) {
    let spec = p.spec.as_ref().unwrap();
    assert_eq!(
        spec.policy_types.as_deref(),
        Some(&["Ingress".to_string()][..])
    );
    let rules = spec.ingress.as_ref().unwrap();
    let Some(rule) = rules.first() else {
        return (None, Some(BTreeSet::new()));
    };
    assert_eq!(rules.len(), 1);
    let ports = rule.ports.as_ref().unwrap();
    let port = match ports[0].port.as_ref().unwrap() {
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n) => *n,
        other => panic!("port {other:?}"),
    };
    let from = rule.from.as_ref().map(|peers| {
        peers
            .iter()
            .map(|peer| {
                assert!(peer.namespace_selector.is_none() && peer.ip_block.is_none());
                let labels = peer
                    .pod_selector
                    .as_ref()
                    .unwrap()
                    .match_labels
                    .as_ref()
                    .unwrap();
                labels["app.kubernetes.io/name"].clone()
            })
            .collect()
    });
    (Some(port), from)
}

/// Ingress is denied in the namespace but for what the IR says is used: each
/// deployable's Envoy port admits the deployables that call it (the BFF's anyone, an
/// event handler's nobody), each server the deployables that connect to it.
#[test]
fn network_policies_admit_only_the_callers() {
    let names = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>());
    let g = shop();
    let m = parse_manifests(&kustomize(&g.dir.join("k8s/base")), &g.system.name);
    let p = &m.network_policies;
    let deny = p["default-deny-ingress"].spec.as_ref().unwrap();
    assert_eq!(
        deny.pod_selector,
        Some(Default::default()),
        "selects every pod"
    );
    assert!(deny.ingress.is_none());
    // The shop, spelled out.
    assert_eq!(admitted(&p["bff"]), (Some(8080), None));
    assert_eq!(
        admitted(&p["cart-command"]),
        (Some(8080), names(&["bff", "order"]))
    );
    assert_eq!(
        admitted(&p["cart-query"]),
        (Some(8080), names(&["bff", "order"]))
    );
    assert_eq!(
        admitted(&p["product"]),
        (Some(8080), names(&["bff", "cart-command", "order"]))
    );
    assert_eq!(admitted(&p["order"]), (Some(8080), names(&["bff"])));
    assert_eq!(admitted(&p["user"]), (Some(8080), names(&["bff"])));
    assert_eq!(admitted(&p["cart-event-handler"]), (None, names(&[])));
    assert_eq!(
        admitted(&p["postgres"]),
        (
            Some(5432),
            names(&[
                "cart-event-handler",
                "cart-query",
                "order",
                "product",
                "user"
            ])
        )
    );
    assert_eq!(
        admitted(&p["mongodb"]),
        (Some(27017), names(&["cart-command", "cart-event-handler"]))
    );
    assert_eq!(
        admitted(&p["kafka"]),
        (
            Some(9092),
            names(&[
                "cart-command",
                "cart-event-handler",
                "kafka",
                "kafka-topics",
                "user"
            ])
        )
    );
    // Every pod of the base has a policy of its own.
    let pods = m.deployments.keys().chain(m.stateful_sets.keys());
    for name in pods {
        let selector = p[name]
            .spec
            .as_ref()
            .unwrap()
            .pod_selector
            .as_ref()
            .unwrap();
        assert_eq!(
            selector.match_labels.as_ref().unwrap()["app.kubernetes.io/name"],
            *name
        );
    }
    assert_eq!(p.len(), 1 + m.deployments.len() + m.stateful_sets.len());
    // Any system: a deployable's callers are those whose upstreams name it.
    for g in [shop(), mini(), library()] {
        let m = parse_manifests(&kustomize(&g.dir.join("k8s/base")), &g.system.name);
        for d in &g.system.deployables {
            let callers: BTreeSet<String> = layout::callers(&g.system, &d.name)
                .into_iter()
                .map(String::from)
                .collect();
            let (port, from) = admitted(&m.network_policies[&d.name]);
            match (d.role, callers.is_empty()) {
                (Role::Bff, _) => assert_eq!((port, from), (Some(8080), None)),
                (_, true) => assert_eq!((port, from), (None, Some(callers))),
                (_, false) => assert_eq!((port, from), (Some(8080), Some(callers))),
            }
        }
    }
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
        // Its Envoy is another container: the app listens on the compose network.
        assert!(env["LISTEN_ADDR"].starts_with("0.0.0.0:"), "{}", d.name);
        let limits = g.system.bff.limits;
        assert_eq!(
            env.get("GRAPHQL_MAX_BODY_BYTES"),
            (d.role == Role::Bff)
                .then(|| limits.max_body_bytes.to_string())
                .as_ref()
        );
        assert_eq!(
            env.get("GRAPHQL_REQUEST_TIMEOUT_MS"),
            (d.role == Role::Bff)
                .then(|| limits.request_timeout_ms.to_string())
                .as_ref()
        );
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
