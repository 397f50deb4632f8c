//! A stack of deployables for the journeys: each service binary behind its generated
//! local Envoy, on real PostgreSQL, Kafka and FerretDB, started and stopped in one place.
//!
//! ```no_run
//! # async fn journey() {
//! let stack = e2e::Stack::start(&["product", "user", "bff"]).await;
//! let query = "query { viewProducts(first: 1) { nodes { id } } }";
//! stack.graphql().ok(query, serde_json::json!({})).await;
//! stack.stop();
//! # }
//! ```
//!
//! The ports come from the generated Envoy configs (`generated/envoy/local/<name>.yaml`:
//! the admin port, the ingress listener, the app cluster's endpoint); the environment of
//! each deployable from [`DEPLOYABLES`] and [`Stack::env_of`]. Kafka topics, consumer
//! groups and the Mongo database carry a suffix unique to the run; every PostgreSQL
//! database is fresh and dropped with the stack.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::{
    Graphql, PortsLock, Process, TestDatabase, bin_dir, build_binaries, envoy, infra_up, infra_var,
    lock_ports, repo_root, spawn, wait_envoy_healthy, wait_http_ok,
};

/// How long the BFF's edge has to answer `/healthz` once everything is spawned.
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// How long each Envoy has to see its app cluster healthy after that.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(60);
/// How long [`Stack::stop`] gives each process to exit on SIGTERM.
pub const STOP_GRACE: Duration = Duration::from_secs(15);

/// One deployable the stack can run.
pub struct Deployable {
    /// As in `generated/envoy/local/<name>.yaml` (and the process's log name).
    pub name: &'static str,
    /// The cargo package that builds `binary`.
    pub package: &'static str,
    pub binary: &'static str,
    /// The PostgreSQL database (prefix) it uses; deployables of one service share it.
    pub database: Option<&'static str>,
    /// The harness components it needs besides Envoy (`infra.sh up …`).
    pub infra: &'static [&'static str],
}

/// Every deployable, in start order; they stop in reverse (the BFF first, then the
/// callers before what they call).
pub const DEPLOYABLES: &[Deployable] = &[
    Deployable {
        name: "product",
        package: "product-service",
        binary: "product-service",
        database: Some("e2e_product"),
        infra: &["postgres"],
    },
    Deployable {
        name: "user",
        package: "user-service",
        binary: "user-service",
        database: Some("e2e_user"),
        infra: &["postgres", "kafka"],
    },
    Deployable {
        name: "cart-event-handler",
        package: "cart-service",
        binary: "cart-service",
        database: Some("e2e_cart_read"),
        infra: &["postgres", "kafka", "mongo"],
    },
    Deployable {
        name: "cart-query",
        package: "cart-service",
        binary: "cart-service",
        database: Some("e2e_cart_read"),
        infra: &["postgres", "kafka", "mongo"],
    },
    Deployable {
        name: "cart-command",
        package: "cart-service",
        binary: "cart-service",
        database: Some("e2e_cart_read"),
        infra: &["postgres", "kafka", "mongo"],
    },
    Deployable {
        name: "order",
        package: "order-service",
        binary: "order-service",
        database: Some("e2e_order"),
        infra: &["postgres"],
    },
    Deployable {
        name: "bff",
        package: "bff",
        binary: "bff",
        database: None,
        infra: &[],
    },
];

/// The deployable called `name`, or a panic listing the known ones.
pub fn deployable(name: &str) -> &'static Deployable {
    DEPLOYABLES
        .iter()
        .find(|d| d.name == name)
        .unwrap_or_else(|| {
            let known: Vec<&str> = DEPLOYABLES.iter().map(|d| d.name).collect();
            panic!("unknown deployable {name:?}; known: {known:?}")
        })
}

/// The local ports of one deployable, as its generated Envoy config assigns them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalPorts {
    /// Where the process listens (the endpoint of the Envoy's app cluster).
    pub app: u16,
    /// The Envoy's ingress listener.
    pub edge: u16,
    /// The Envoy's admin interface.
    pub admin: u16,
    /// The name of the Envoy's app cluster.
    pub cluster: String,
}

/// Reads [`LocalPorts`] from `generated/envoy/local/<deployable>.yaml`: the first
/// `port_value` after `admin:`, after `listeners:` and after `clusters:`, and the first
/// cluster's name.
pub fn local_ports(deployable: &str) -> LocalPorts {
    let path = repo_root().join(format!("generated/envoy/local/{deployable}.yaml"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    parse_local_ports(&text).unwrap_or_else(|| {
        panic!(
            "{} lacks an admin, listener or cluster port",
            path.display()
        )
    })
}

fn parse_local_ports(text: &str) -> Option<LocalPorts> {
    let after = |section: &str| text.find(section).map(|at| &text[at + section.len()..]);
    let port_after = |section: &str| -> Option<u16> {
        let rest = after(section)?;
        let at = rest.find("port_value:")? + "port_value:".len();
        let digits: String = rest[at..]
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    let clusters = after("\n  clusters:")?;
    let name_at = clusters.find("- name:")? + "- name:".len();
    let cluster = clusters[name_at..].lines().next()?.trim();
    Some(LocalPorts {
        app: port_after("\n  clusters:")?,
        edge: port_after("\n  listeners:")?,
        admin: port_after("\nadmin:")?,
        cluster: cluster.trim_matches('"').to_string(),
    })
}

/// The URL of `deployable`'s local Envoy.
pub fn edge_url(deployable: &str) -> String {
    format!("http://127.0.0.1:{}", local_ports(deployable).edge)
}

/// A running stack; see the module docs. Dropping it stops every process (without
/// asserting anything) and drops the databases; [`Stack::stop`] asserts a clean stop.
pub struct Stack {
    /// The app processes, in start order.
    apps: Vec<Process>,
    envoys: Vec<Process>,
    /// Per database prefix (see [`Deployable::database`]).
    databases: BTreeMap<&'static str, TestDatabase>,
    run: String,
    graphql: Graphql,
    // Last: released only once everything above is stopped and dropped.
    _ports: PortsLock,
}

impl Stack {
    /// Starts `deployables` (names as in `generated/envoy/local/`): takes the ports
    /// lock, builds their binaries, starts the infrastructure they need, creates their
    /// databases, spawns each behind its Envoy and waits until the BFF's edge answers
    /// `/healthz` (when the BFF is one of them) and every Envoy sees its app healthy.
    pub async fn start(deployables: &[&str]) -> Stack {
        let chosen: Vec<&'static Deployable> = DEPLOYABLES
            .iter()
            .filter(|d| deployables.contains(&d.name))
            .collect();
        for name in deployables {
            deployable(name);
        }
        let ports = lock_ports();

        let mut packages: Vec<&str> = chosen.iter().map(|d| d.package).collect();
        packages.sort_unstable();
        packages.dedup();
        build_binaries(&packages);
        let mut infra: Vec<&str> = Vec::new();
        for component in ["postgres", "kafka", "mongo"] {
            if chosen.iter().any(|d| d.infra.contains(&component)) {
                infra.push(component);
            }
        }
        infra.push("envoy");
        infra_up(&infra);

        let mut databases = BTreeMap::new();
        for d in &chosen {
            if let Some(prefix) = d.database
                && !databases.contains_key(prefix)
            {
                databases.insert(prefix, TestDatabase::create(prefix).await);
            }
        }
        let run = format!(
            "{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or_default()
        );

        let mut stack = Stack {
            apps: Vec::new(),
            envoys: Vec::new(),
            databases,
            graphql: Graphql::new(format!("{}/graphql", edge_url("bff"))),
            run,
            _ports: ports,
        };
        let bin = bin_dir();
        for d in &chosen {
            let env = stack.env_of(d, deployables);
            stack
                .apps
                .push(spawn(d.name, &bin.join(d.binary), &[], &env));
        }
        for d in &chosen {
            stack.envoys.push(envoy(d.name));
        }
        stack.wait_ready(deployables).await;
        stack
    }

    /// The environment of deployable `d` in this stack: its listen address, database,
    /// event store, Kafka topics and groups (unique to the run), and the Envoys of what
    /// it calls.
    fn env_of(&self, d: &Deployable, deployables: &[&str]) -> Vec<(&'static str, String)> {
        let ports = local_ports(d.name);
        let mut env = vec![("LISTEN_ADDR", format!("127.0.0.1:{}", ports.app))];
        if let Some(prefix) = d.database {
            env.push(("DATABASE_URL", self.databases[prefix].url.clone()));
        }
        if d.infra.contains(&"kafka") {
            env.push(("KAFKA_BROKERS", infra_var("KAFKA_BOOTSTRAP_SERVERS")));
        }
        let run = &self.run;
        match d.name {
            "cart-command" | "cart-query" | "cart-event-handler" => {
                let role = d.name.trim_start_matches("cart-");
                env.extend([
                    ("ROLE", role.to_string()),
                    ("MONGO_URL", infra_var("MONGO_URL")),
                    ("MONGO_DATABASE", format!("e2e_cart_{run}")),
                    ("CART_TOPIC", format!("e2e-cart-events-{run}")),
                    ("USER_EVENTS_GROUP", format!("e2e-cart-users-{run}")),
                    ("CONSUMER_GROUP", format!("e2e-cart-handler-{run}")),
                    ("PRODUCT_URL", edge_url("product")),
                ]);
                // The user service publishes to its fixed topic; with it in the stack
                // the cart listens there (its own group per run), so that deleting an
                // account deletes the cart. Without it, a topic of the run's own.
                if !deployables.contains(&"user") {
                    env.push(("USER_TOPIC", format!("e2e-user-events-{run}")));
                }
            }
            "order" => env.extend([
                ("PRODUCT_URL", edge_url("product")),
                ("CART_COMMAND_URL", edge_url("cart-command")),
                ("RECOVERY_INTERVAL_SECS", "1".to_string()),
            ]),
            "bff" => env.extend([
                ("PRODUCT_URL", edge_url("product")),
                ("USER_URL", edge_url("user")),
                ("ORDER_URL", edge_url("order")),
                ("CART_COMMAND_URL", edge_url("cart-command")),
                ("CART_QUERY_URL", edge_url("cart-query")),
            ]),
            _ => {}
        }
        env
    }

    async fn wait_ready(&mut self, deployables: &[&str]) {
        if deployables.contains(&"bff") {
            let url = format!("{}/healthz", edge_url("bff"));
            let mut all: Vec<&mut Process> =
                self.apps.iter_mut().chain(self.envoys.iter_mut()).collect();
            wait_http_ok(&url, READY_TIMEOUT, &mut all).await;
        }
        // The BFF answered through its Envoy already; the others' Envoys must route too.
        for app in self.apps.iter().filter(|p| p.name != "bff") {
            let ports = local_ports(&app.name);
            wait_envoy_healthy(ports.admin, &ports.cluster, CLUSTER_TIMEOUT).await;
        }
    }

    /// A GraphQL client for the BFF through its Envoy.
    pub fn graphql(&self) -> &Graphql {
        &self.graphql
    }

    /// The BFF's GraphQL URL through its Envoy.
    pub fn graphql_url(&self) -> String {
        format!("{}/graphql", self.edge("bff"))
    }

    /// The URL of `deployable`'s Envoy (`http://127.0.0.1:202xx`).
    pub fn edge(&self, deployable: &str) -> String {
        edge_url(deployable)
    }

    /// The suffix of this run's Kafka topics, consumer groups and Mongo database (also
    /// handy to make test data unique).
    pub fn run(&self) -> &str {
        &self.run
    }

    /// The PostgreSQL URL of `deployable`'s database.
    pub fn database_url(&self, deployable_name: &str) -> &str {
        let prefix = deployable(deployable_name)
            .database
            .unwrap_or_else(|| panic!("{deployable_name} has no database"));
        &self
            .databases
            .get(prefix)
            .unwrap_or_else(|| panic!("{deployable_name} is not in this stack"))
            .url
    }

    /// The process called `name`: a deployable, or its Envoy (`<deployable>-envoy`).
    pub fn process_mut(&mut self, name: &str) -> &mut Process {
        self.apps
            .iter_mut()
            .chain(self.envoys.iter_mut())
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no process {name} in this stack"))
    }

    /// SIGTERMs every deployable (the BFF first) and asserts each exited by itself
    /// within [`STOP_GRACE`]; then the Envoys and the databases go.
    pub fn stop(self) {
        self.stop_within(STOP_GRACE);
    }

    /// [`Stack::stop`] with another grace.
    pub fn stop_within(mut self, grace: Duration) {
        for p in self.apps.iter_mut().rev() {
            assert!(
                p.terminate(grace),
                "{} ignored SIGTERM (still running after {grace:?}); log {}:\n{}",
                p.name,
                p.log.display(),
                p.log_tail()
            );
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for p in self.apps.iter_mut().rev().chain(self.envoys.iter_mut()) {
            if p.is_running() {
                p.terminate(Duration::from_secs(5));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_deployable_has_a_generated_envoy_with_distinct_ports() {
        let mut seen = Vec::new();
        for d in DEPLOYABLES {
            let p = local_ports(d.name);
            assert_eq!(p.cluster, d.name, "{p:?}");
            for port in [p.app, p.edge, p.admin] {
                assert!(!seen.contains(&port), "{} reuses {port}", d.name);
                seen.push(port);
            }
        }
        let generated = std::fs::read_dir(repo_root().join("generated/envoy/local"))
            .expect("generated/envoy/local")
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_suffix(".yaml"))
                    .map(str::to_string)
            })
            .count();
        assert_eq!(generated, DEPLOYABLES.len(), "a deployable without a row");
    }

    #[test]
    fn ports_of_the_bff() {
        let p = local_ports("bff");
        assert_eq!((p.app, p.edge, p.admin), (20100, 20200, 20300));
    }
}
