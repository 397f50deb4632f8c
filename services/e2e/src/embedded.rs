//! `shop up`, the one-process embedded mode the README starts first, as the tests start
//! it: on a data folder, listening on an ephemeral port, ready once its banner is out.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use keel::testing::process::{Process, bin_dir, spawn};

/// What `shop up` printed once it served.
pub struct Banner {
    pub graphql: String,
    pub grpc: BTreeMap<String, String>,
}

/// Starts the `shop` binary (built by `build_binaries(&["shop"])`) on `data`; `name`
/// names its log.
pub fn start(data: &Path, name: &str) -> (Process, Banner) {
    let mut shop = spawn(
        name,
        &bin_dir().join("shop"),
        &[
            "up",
            "--data",
            data.to_str().expect("utf-8 path"),
            "--listen",
            "127.0.0.1:0",
        ],
        &[
            ("RUST_LOG", "warn".to_string()),
            (
                "AUTH_BACK_OFFICE_EMAILS",
                crate::ops::BACK_OFFICE_EMAIL.to_string(),
            ),
        ],
    );
    let started = Instant::now();
    loop {
        let out = shop.output();
        if out.contains("Ctrl-C stops it.") {
            return (shop, banner(&out));
        }
        assert!(
            shop.is_running(),
            "shop up exited before serving:\n{}",
            shop.log_tail()
        );
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "shop up did not serve in 120 s:\n{}",
            shop.log_tail()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn banner(out: &str) -> Banner {
    let mut graphql = None;
    let mut grpc = BTreeMap::new();
    for line in out.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["GraphQL", url] => graphql = Some(url.to_string()),
            ["gRPC", name, url] => {
                grpc.insert(name.to_string(), url.to_string());
            }
            _ => {}
        }
    }
    let graphql = graphql.expect("the banner names the GraphQL URL");
    Banner { graphql, grpc }
}
