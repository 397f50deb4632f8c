//! Configuration by flags and environment. The defaults are the local ports of
//! `generated/envoy/local/*.yaml`: the BFF's app port behind its Envoy, and the ingress
//! port of each upstream's Envoy (a test checks them against those files).

use std::net::SocketAddr;
use std::time::Duration;

/// Where the BFF listens (the `bff` cluster of `generated/envoy/local/bff.yaml`).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:20100";
/// The Envoy of each upstream deployable (`generated/envoy/local/<name>.yaml`).
pub const DEFAULT_PRODUCT_URL: &str = "http://127.0.0.1:20201";
pub const DEFAULT_ORDER_URL: &str = "http://127.0.0.1:20202";
pub const DEFAULT_CART_COMMAND_URL: &str = "http://127.0.0.1:20203";
pub const DEFAULT_CART_QUERY_URL: &str = "http://127.0.0.1:20204";
pub const DEFAULT_USER_URL: &str = "http://127.0.0.1:20206";

pub const DEFAULT_MAX_DEPTH: usize = 10;
pub const DEFAULT_MAX_COMPLEXITY: usize = 500;
/// Envoy's route timeout for every upstream RPC is 10 s; the BFF gives up at the same time.
pub const DEFAULT_UPSTREAM_TIMEOUT_MS: u64 = 10_000;
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 1_000;

#[derive(clap::Parser, Debug, Clone, PartialEq, Eq)]
#[command(name = "bff", about = "The shop's GraphQL gateway (BFF)")]
pub struct Config {
    /// Address to serve HTTP on: POST/GET /graphql, GraphiQL at /, /healthz.
    #[arg(long, env = "LISTEN_ADDR", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub upstreams: UpstreamConfig,
    #[command(flatten)]
    pub limits: Limits,
}

/// The gRPC endpoints (normally each service's Envoy) and how long to wait for them.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    /// The product service (`shop.product.v1.ProductService`).
    #[arg(long, env = "PRODUCT_URL", default_value = DEFAULT_PRODUCT_URL)]
    pub product_url: String,
    /// The order service (`shop.order.v1.OrderService`).
    #[arg(long, env = "ORDER_URL", default_value = DEFAULT_ORDER_URL)]
    pub order_url: String,
    /// The cart's command side (`shop.cart.v1.CartCommandService`).
    #[arg(long, env = "CART_COMMAND_URL", default_value = DEFAULT_CART_COMMAND_URL)]
    pub cart_command_url: String,
    /// The cart's query side (`shop.cart.v1.CartQueryService`).
    #[arg(long, env = "CART_QUERY_URL", default_value = DEFAULT_CART_QUERY_URL)]
    pub cart_query_url: String,
    /// The user service (`shop.user.v1.UserService`).
    #[arg(long, env = "USER_URL", default_value = DEFAULT_USER_URL)]
    pub user_url: String,
    /// Deadline of one upstream call, sent as `grpc-timeout` too.
    #[arg(long, env = "UPSTREAM_TIMEOUT_MS", default_value_t = DEFAULT_UPSTREAM_TIMEOUT_MS)]
    pub timeout_ms: u64,
    /// How long to wait for a TCP connection to an upstream.
    #[arg(long, env = "UPSTREAM_CONNECT_TIMEOUT_MS", default_value_t = DEFAULT_CONNECT_TIMEOUT_MS)]
    pub connect_timeout_ms: u64,
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

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            product_url: DEFAULT_PRODUCT_URL.into(),
            order_url: DEFAULT_ORDER_URL.into(),
            cart_command_url: DEFAULT_CART_COMMAND_URL.into(),
            cart_query_url: DEFAULT_CART_QUERY_URL.into(),
            user_url: DEFAULT_USER_URL.into(),
            timeout_ms: DEFAULT_UPSTREAM_TIMEOUT_MS,
            connect_timeout_ms: DEFAULT_CONNECT_TIMEOUT_MS,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 20100)),
            upstreams: UpstreamConfig::default(),
            limits: Limits::default(),
        }
    }
}

impl UpstreamConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// The port a `socket_address` line of an Envoy config names, after `marker`.
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
        assert_eq!(DEFAULT_LISTEN.parse::<SocketAddr>().ok(), Some(c.listen));
        let u = &c.upstreams;
        assert_eq!(port_of(&u.product_url), envoy_port("product", "listener"));
        assert_eq!(port_of(&u.order_url), envoy_port("order", "listener"));
        assert_eq!(
            port_of(&u.cart_command_url),
            envoy_port("cart-command", "listener")
        );
        assert_eq!(
            port_of(&u.cart_query_url),
            envoy_port("cart-query", "listener")
        );
        assert_eq!(port_of(&u.user_url), envoy_port("user", "listener"));
    }

    #[test]
    fn flags_override_defaults() {
        let c = Config::try_parse_from([
            "bff",
            "--listen",
            "127.0.0.1:1",
            "--product-url",
            "http://127.0.0.1:2",
            "--max-depth",
            "3",
        ])
        .expect("parses");
        assert_eq!(c.listen.port(), 1);
        assert_eq!(c.upstreams.product_url, "http://127.0.0.1:2");
        assert_eq!(c.limits.max_depth, 3);
    }
}
