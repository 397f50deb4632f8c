//! Configuration by flags and environment. The listen address and the upstream URLs
//! are generated (`shop_bff`) from the spec's local ports: the BFF's app port behind its
//! Envoy, and the ingress port of each upstream's Envoy (a test checks them against
//! `generated/envoy/local/*.yaml`).

use std::net::SocketAddr;

pub use shop_bff::UpstreamConfig;

/// Where the BFF listens (the `bff` cluster of `generated/envoy/local/bff.yaml`).
pub const DEFAULT_LISTEN: SocketAddr = shop_bff::LISTEN;
pub const DEFAULT_MAX_DEPTH: usize = 10;
pub const DEFAULT_MAX_COMPLEXITY: usize = 500;

#[derive(clap::Parser, Debug, Clone, PartialEq, Eq)]
#[command(name = "bff", about = "The shop's GraphQL gateway (BFF)")]
pub struct Config {
    /// Address to serve HTTP on: POST/GET /graphql, GraphiQL at /, /healthz.
    #[arg(long, env = "LISTEN_ADDR", default_value_t = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub upstreams: UpstreamConfig,
    #[command(flatten)]
    pub limits: Limits,
}

/// What one GraphQL operation may ask for.
#[derive(clap::Args, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deepest allowed selection nesting.
    #[arg(long, env = "GRAPHQL_MAX_DEPTH", default_value_t = DEFAULT_MAX_DEPTH)]
    pub max_depth: usize,
    /// Most fields one operation may select (each field counts 1).
    #[arg(long, env = "GRAPHQL_MAX_COMPLEXITY", default_value_t = DEFAULT_MAX_COMPLEXITY)]
    pub max_complexity: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: DEFAULT_MAX_DEPTH,
            max_complexity: DEFAULT_MAX_COMPLEXITY,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: DEFAULT_LISTEN,
            upstreams: UpstreamConfig::default(),
            limits: Limits::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// The port of the listener or of the first cluster of a local Envoy config.
    fn envoy_port(deployable: &str, section: &str) -> u16 {
        let path = format!(
            "{}/../../generated/envoy/local/{deployable}.yaml",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("envoy yaml parses");
        let addr = match section {
            "listener" => &doc["static_resources"]["listeners"][0]["address"]["socket_address"],
            _ => {
                &doc["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]["lb_endpoints"]
                    [0]["endpoint"]["address"]["socket_address"]
            }
        };
        let port = addr["port_value"].as_u64().expect("port_value");
        u16::try_from(port).expect("a port")
    }

    fn port_of(url: &str) -> u16 {
        url.rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("url with a port")
    }

    #[test]
    fn defaults_are_the_local_envoy_ports() {
        let c = Config::default();
        assert_eq!(c.listen.port(), envoy_port("bff", "cluster"));
        let urls = c.upstreams.urls();
        assert!(urls.len() >= 5, "{urls:?}");
        for (deployable, url) in urls {
            assert_eq!(
                port_of(url),
                envoy_port(deployable, "listener"),
                "{deployable}"
            );
        }
    }

    #[test]
    fn flags_override_defaults() {
        let c = Config::try_parse_from([
            "bff",
            "--listen",
            "127.0.0.1:1",
            "--product-url",
            "http://127.0.0.1:2",
            "--cart-query-url",
            "http://127.0.0.1:3",
            "--max-depth",
            "3",
        ])
        .expect("parses");
        assert_eq!(c.listen.port(), 1);
        assert_eq!(c.upstreams.product_url, "http://127.0.0.1:2");
        assert_eq!(c.upstreams.cart_query_url, "http://127.0.0.1:3");
        assert_eq!(c.limits.max_depth, 3);
        let d = Config::try_parse_from(["bff"]).expect("parses");
        assert_eq!(d, Config::default());
    }
}
