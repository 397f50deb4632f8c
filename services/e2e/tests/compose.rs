//! The generated compose file, run for real: `xtask/infra/compose.sh` builds every image
//! it names without a registry (the servers from the sources the real-server harness
//! installs, the shop's processes from `generated/docker/Dockerfile` packaging the
//! binaries cargo built for the other journeys), brings it up with podman on the
//! project's own internal network, health checks gating the start order as the file
//! says; then the customer journey with checkout and a short load go through the BFF's
//! Envoy, the only published port, from the host; then everything goes down. On a
//! failure each container's log is printed.
//!
//! One compose project per machine: the test holds a machine-wide lock on it.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::ops::*;
use e2e::*;
use serde_json::json;

fn script() -> PathBuf {
    repo_root().join("xtask/infra/compose.sh")
}

/// Runs `compose.sh ARGS` with `env`, panicking with its output on failure.
fn compose(args: &[&str], env: &[(&str, String)]) {
    let started = Instant::now();
    let mut cmd = Command::new("bash");
    cmd.arg(script()).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let status = cmd.status().expect("compose.sh runs");
    assert!(status.success(), "compose.sh {args:?} failed: {status}");
    println!("compose.sh {args:?}: {:.0?}", started.elapsed());
}

/// Takes the stack down when dropped; first, if the test is failing, prints every
/// container's log.
struct Down;

impl Drop for Down {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = Command::new("bash").arg(script()).arg("logs").status();
            if std::env::var_os("COMPOSE_KEEP").is_some() {
                eprintln!("COMPOSE_KEEP: the stack stays up (`xtask/infra/compose.sh down`)");
                return;
            }
        }
        let _ = Command::new("bash").arg(script()).arg("down").status();
    }
}

/// A port nothing listens on now, for the BFF's Envoy on the host.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "opt-in (`-- --ignored`, needs `xtask/infra/compose.sh install`): on a fresh stack the first AddProduct sometimes hangs for its 10 s deadline (3 runs in 7), not yet understood (issue 15)"]
async fn the_generated_compose_file_runs_the_journey_with_podman() {
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(format!("/tmp/keel-compose-{}.lock", shop_system::SYSTEM))
        .expect("lock file");
    lock.lock().expect("the compose project's lock");

    // The shop's processes as cargo built them for the other journeys.
    let mut packages: Vec<&str> = shop_system::DEPLOYABLES.iter().map(|d| d.package).collect();
    packages.dedup();
    build_binaries(&packages);
    let bins = bin_dir();

    let port = free_port();
    let env = [
        (
            format!("{}_HTTP_PORT", shop_system::SYSTEM.to_uppercase()),
            port.to_string(),
        ),
        (
            "AUTH_BACK_OFFICE_EMAILS".to_string(),
            BACK_OFFICE_EMAIL.to_string(),
        ),
    ];
    let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    // What an earlier run may have left.
    compose(&["down"], &[]);
    compose(
        &["images", "--prebuilt", bins.to_str().expect("utf-8 path")],
        &[],
    );
    the_k8s_manifests_name_the_images_built();
    let down = Down;
    compose(&["up"], &env);

    let url = format!("http://127.0.0.1:{port}/graphql");
    let anonymous = &Graphql::new(url.clone());
    journey(anonymous).await;
    // A short load of the whole journey with checkout: zero errors tolerated.
    let report = smoke_load(env!("CARGO_BIN_EXE_loadgen"), url).await;
    println!("{report}");

    drop(down);
    // Nothing of the project is left: containers, network, volumes.
    let left = podman()
        .args([
            "ps",
            "-a",
            "--filter",
            &format!("label=io.podman.compose.project={}", shop_system::SYSTEM),
            "--format",
            "{{.Names}}",
        ])
        .output()
        .expect("podman ps");
    assert!(left.status.success(), "{left:?}");
    assert_eq!(
        String::from_utf8_lossy(&left.stdout).trim(),
        "",
        "left running"
    );
}

/// Every image the Kubernetes manifests name is one `compose.sh images` just built (the
/// shop's own and the local stand-ins under the public names).
fn the_k8s_manifests_name_the_images_built() {
    let base = repo_root().join("generated/k8s/base");
    let mut images = std::collections::BTreeSet::new();
    for entry in walk(&base) {
        let text = std::fs::read_to_string(&entry).expect("manifest");
        for line in text.lines() {
            if let Some(image) = line.trim().trim_start_matches("- ").strip_prefix("image:") {
                images.insert(image.trim().trim_matches(['"', '\'']).to_string());
            }
        }
    }
    assert!(!images.is_empty(), "no image in {}", base.display());
    for image in &images {
        let exists = podman()
            .args(["image", "exists", image])
            .status()
            .expect("podman image exists");
        assert!(
            exists.success(),
            "the k8s manifests name {image}, which was not built"
        );
    }
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("a directory").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else if path.extension().is_some_and(|e| e == "yaml") {
            files.push(path);
        }
    }
    files
}

/// `podman` with the project's containers.conf, as `compose.sh` runs it.
fn podman() -> Command {
    let mut cmd = Command::new("podman");
    cmd.env(
        "CONTAINERS_CONF",
        std::env::var("INFRA_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| repo_root().join(".infra"))
            .join("compose/containers.conf"),
    );
    cmd
}

/// The customer journey through GraphQL: the back office's catalogue, a customer's
/// cart (add, change, remove), checkout, the empty cart and the order.
async fn journey(anonymous: &Graphql) {
    let admin = back_office(anonymous).await;
    let names = ["Matcha", "Anpan", "Soba"].map(|n| format!("{n} {}", uuid::Uuid::new_v4()));
    let mut ids = Vec::new();
    for (name, price) in names.iter().zip([1200, 180, 650]) {
        let d = admin
            .ok(CREATE, json!({ "input": { "name": name, "price": price } }))
            .await;
        ids.push(d["createProduct"]["id"].as_str().expect("id").to_string());
    }
    let listed = anonymous.ok(PRODUCTS, json!({})).await;
    for name in &names {
        assert!(
            listed["viewProducts"]["nodes"]
                .as_array()
                .expect("nodes")
                .iter()
                .any(|p| p["name"] == json!(name)),
            "{name} listed: {listed:#}"
        );
    }
    let (matcha, anpan, soba) = (&ids[0], &ids[1], &ids[2]);

    let (taro, customer) = ops::customer(anonymous, "Taro").await;
    let gql = &taro;
    let cart = uuid::Uuid::now_v7().to_string();
    let add = |product: &str, quantity: i64| json!({ "input": { "cartId": cart, "productId": product, "quantity": quantity } });
    // The BFF claims the new cart for Taro (version 1) before his first add.
    assert_eq!(version(&gql.ok(ADD, add(matcha, 1)).await, "addProduct"), 2);
    assert_eq!(version(&gql.ok(ADD, add(anpan, 2)).await, "addProduct"), 3);
    assert_eq!(version(&gql.ok(ADD, add(soba, 1)).await, "addProduct"), 4);
    let d = gql
        .ok(
            CHANGE,
            json!({ "input": { "cartId": cart, "productId": matcha, "quantity": 3 } }),
        )
        .await;
    assert_eq!(version(&d, "changeProductQuantity"), 5);
    let d = gql
        .ok(
            REMOVE,
            json!({ "input": { "cartId": cart, "productId": soba } }),
        )
        .await;
    assert_eq!(version(&d, "removeProduct"), 6);
    // The query side sees it through Kafka and its read model.
    let c = view_at(gql, &cart, 6).await;
    assert_eq!(c["customerId"], json!(customer));
    assert_eq!(
        cart_lines(&c),
        [(names[1].clone(), 2), (names[0].clone(), 3)],
        "{c:#}"
    );

    let checkout = json!({ "input": { "cartId": cart } });
    let placed = gql.ok(CHECKOUT, checkout.clone()).await["checkout"].clone();
    assert_eq!(placed["status"], json!("placed"), "{placed:#}");
    assert_eq!(placed["customerId"], json!(customer));
    assert_eq!(placed["cartVersion"], json!(6));
    assert_eq!(placed["total"], json!(3 * 1200 + 2 * 180));
    let again = gql.ok(CHECKOUT, checkout).await["checkout"].clone();
    assert_eq!(again, placed, "a retried checkout returns the same order");

    let c = view_at(gql, &cart, 7).await;
    assert_eq!(c["items"], json!([]));
    let started = Instant::now();
    loop {
        let d = gql.ok(ORDERS, json!({})).await;
        let nodes = d["viewOrders"]["nodes"].as_array().expect("nodes").clone();
        if nodes.len() == 1 {
            assert_eq!(nodes[0]["id"], placed["id"]);
            assert_eq!(nodes[0]["status"], json!("placed"));
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{d:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    gql.ok(LOGOUT, json!({})).await;
    let (code, err) = gql.error_code(ORDERS, json!({})).await;
    assert_eq!(code, "UNAUTHENTICATED", "logged out: {err}");
}
