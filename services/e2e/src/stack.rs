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
//! Everything comes from the spec's generated table (`shop_system::DEPLOYABLES`):
//! packages, binaries, arguments, local ports, settings, and from those the databases,
//! the infrastructure each needs and the start order ([`deployables`]); a service added
//! to the spec runs here with no change. Kafka topics, consumer groups and the Mongo
//! database carry a suffix unique to the run where a service reads them
//! ([`Stack::env_of`]); every PostgreSQL database is fresh and dropped with the stack.

use std::collections::BTreeMap;
use std::time::Duration;

use shop_system::SettingKind;

use crate::{
    Graphql, PortsLock, Process, TestDatabase, bin_dir, build_binaries, envoy, infra_up, infra_var,
    lock_ports, spawn, wait_envoy_healthy, wait_http_ok,
};

/// How long the BFF's edge has to answer `/healthz` once everything is spawned.
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// How long each Envoy has to see its app cluster healthy after that.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(60);
/// How long [`Stack::stop`] gives each process to exit on SIGTERM.
pub const STOP_GRACE: Duration = Duration::from_secs(15);

/// One deployable the stack can run: its row of the spec's table and what the harness
/// derives from it.
pub struct Deployable {
    /// As in the spec's table (and the process's log name).
    pub name: &'static str,
    /// The PostgreSQL database (prefix) it uses: `e2e_<database>` for the database its
    /// table row names; deployables of one service share it.
    pub database: Option<String>,
    /// The harness components it needs besides Envoy (`infra.sh up …`).
    pub infra: Vec<&'static str>,
}

/// Every deployable of the spec's table, in start order: what a deployable calls starts
/// before it (the BFF last), otherwise the table's order. They stop in reverse.
pub fn deployables() -> &'static [Deployable] {
    static ALL: std::sync::OnceLock<Vec<Deployable>> = std::sync::OnceLock::new();
    ALL.get_or_init(|| {
        start_order()
            .into_iter()
            .map(|d| {
                let mut database = None;
                let mut infra = Vec::new();
                for s in d.settings {
                    let (component, db) = match s.kind {
                        SettingKind::Database(db) => ("postgres", Some(db)),
                        SettingKind::EventStore(_) => ("mongo", None),
                        SettingKind::Bus => ("kafka", None),
                        SettingKind::Listen | SettingKind::Upstream(_) => continue,
                    };
                    if !infra.contains(&component) {
                        infra.push(component);
                    }
                    if let Some(db) = db {
                        let bare = db
                            .strip_prefix(shop_system::SYSTEM)
                            .and_then(|b| b.strip_prefix('_'))
                            .unwrap_or(db);
                        database = Some(format!("e2e_{bare}"));
                    }
                }
                Deployable {
                    name: d.name,
                    database,
                    infra,
                }
            })
            .collect()
    })
}

/// The table's rows, each after every upstream it calls.
fn start_order() -> Vec<&'static shop_system::Deployable> {
    let mut left: Vec<&'static shop_system::Deployable> = shop_system::DEPLOYABLES.iter().collect();
    let mut order = Vec::new();
    while !left.is_empty() {
        let ready = left
            .iter()
            .position(|d| {
                d.upstreams.iter().all(|u| {
                    order
                        .iter()
                        .any(|o: &&shop_system::Deployable| o.name == *u)
                })
            })
            // A cycle of calls: start the rest in the table's order.
            .unwrap_or(0);
        order.push(left.remove(ready));
    }
    order
}

impl Deployable {
    /// Its row of the spec's table: package, binary, arguments, settings, local ports.
    pub fn spec(&self) -> &'static shop_system::Deployable {
        spec(self.name)
    }
}

/// The deployable called `name`, or a panic listing the known ones.
pub fn deployable(name: &str) -> &'static Deployable {
    deployables()
        .iter()
        .find(|d| d.name == name)
        .unwrap_or_else(|| {
            let known: Vec<&str> = deployables().iter().map(|d| d.name).collect();
            panic!("unknown deployable {name:?}; known: {known:?}")
        })
}

/// The row of the spec's table called `name`.
pub fn spec(name: &str) -> &'static shop_system::Deployable {
    shop_system::deployable(name).unwrap_or_else(|| panic!("no deployable {name:?} in the spec"))
}

/// The URL of `deployable`'s local Envoy.
pub fn edge_url(deployable: &str) -> String {
    spec(deployable).local_envoy_url()
}

/// A running stack; see the module docs. Dropping it stops every process (without
/// asserting anything) and drops the databases; [`Stack::stop`] asserts a clean stop.
pub struct Stack {
    /// The app processes, in start order.
    apps: Vec<Process>,
    envoys: Vec<Process>,
    /// Per database prefix (see [`Deployable::database`]).
    databases: BTreeMap<String, TestDatabase>,
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
        let chosen: Vec<&'static Deployable> = self::deployables()
            .iter()
            .filter(|d| deployables.contains(&d.name))
            .collect();
        for name in deployables {
            deployable(name);
        }
        let ports = lock_ports();

        let mut packages: Vec<&str> = chosen.iter().map(|d| d.spec().package).collect();
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
            if let Some(prefix) = &d.database
                && !databases.contains_key(prefix)
            {
                databases.insert(prefix.clone(), TestDatabase::create(prefix).await);
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
            let spec = d.spec();
            stack
                .apps
                .push(spawn(d.name, &bin.join(spec.binary), spec.args, &env));
        }
        for d in &chosen {
            stack.envoys.push(envoy(d.name));
        }
        stack.wait_ready(deployables).await;
        stack
    }

    /// The environment of deployable `d` in this stack: each setting of its row in the
    /// spec's table (its listen address, the Envoys of what it calls, its database, the
    /// event store, the bus), and what keeps one run apart from the others.
    fn env_of(&self, d: &Deployable, deployables: &[&str]) -> Vec<(&'static str, String)> {
        let spec = d.spec();
        let mut env = Vec::new();
        for s in spec.settings {
            let value = match s.kind {
                SettingKind::Listen => spec.local_listen().to_string(),
                SettingKind::Upstream(up) => edge_url(up),
                SettingKind::Database(_) => match &d.database {
                    Some(prefix) => self.databases[prefix].url.clone(),
                    None => continue,
                },
                SettingKind::EventStore(_) => infra_var("MONGO_URL"),
                SettingKind::Bus => infra_var("KAFKA_BOOTSTRAP_SERVERS"),
            };
            env.push((s.env, value));
        }
        env.extend(self.isolation(spec.service, deployables));
        env
    }

    /// Names unique to this run (topics, consumer groups, the event store's database)
    /// where a service reads them, and quick recovery for the order service.
    fn isolation(&self, service: &str, deployables: &[&str]) -> Vec<(&'static str, String)> {
        let run = &self.run;
        match service {
            "cart" => {
                let mut env = vec![
                    ("EVENT_STORE_DATABASE", format!("e2e_cart_{run}")),
                    ("CART_TOPIC", format!("e2e-cart-events-{run}")),
                    ("USER_EVENTS_GROUP", format!("e2e-cart-users-{run}")),
                    ("CONSUMER_GROUP", format!("e2e-cart-handler-{run}")),
                ];
                // The user service publishes to its fixed topic; with it in the stack
                // the cart listens there (its own group per run), so that deleting an
                // account deletes the cart. Without it, a topic of the run's own.
                if !deployables.contains(&"user") {
                    env.push(("USER_TOPIC", format!("e2e-user-events-{run}")));
                }
                env
            }
            "order" => vec![("RECOVERY_INTERVAL_SECS", "1".to_string())],
            _ => Vec::new(),
        }
    }

    async fn wait_ready(&mut self, deployables: &[&str]) {
        if deployables.contains(&"bff") {
            let url = format!("{}/healthz", edge_url("bff"));
            let mut all: Vec<&mut Process> =
                self.apps.iter_mut().chain(self.envoys.iter_mut()).collect();
            wait_http_ok(&url, READY_TIMEOUT, &mut all).await;
        }
        // The BFF answered through its Envoy already; the others' Envoys must route too.
        // Each Envoy's app cluster is named after its deployable.
        for app in self.apps.iter().filter(|p| p.name != "bff") {
            let admin = spec(&app.name).local.envoy_admin;
            wait_envoy_healthy(admin, &app.name, CLUSTER_TIMEOUT).await;
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

    /// The URL of `deployable`'s local Envoy.
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
            .as_ref()
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
    use crate::repo_root;

    #[test]
    fn the_harness_runs_every_deployable_of_the_spec() {
        let mut harness: Vec<&str> = deployables().iter().map(|d| d.name).collect();
        let mut table: Vec<&str> = shop_system::DEPLOYABLES.iter().map(|d| d.name).collect();
        harness.sort_unstable();
        table.sort_unstable();
        assert_eq!(harness, table);
    }

    /// The generated local Envoy of each deployable listens, administers and routes on
    /// the ports of the table: the first `port_value` after `admin:`, after `listeners:`
    /// and after `clusters:`, whose first cluster is named after the deployable.
    #[test]
    fn every_generated_local_envoy_uses_the_tables_ports() {
        for d in shop_system::DEPLOYABLES {
            let path = repo_root().join(format!("generated/envoy/local/{}.yaml", d.name));
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            let port_after = |section: &str| -> Option<u16> {
                let rest = &text[text.find(section)? + section.len()..];
                let at = rest.find("port_value:")? + "port_value:".len();
                let digits: String = rest[at..]
                    .trim_start()
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                digits.parse().ok()
            };
            let ports = (
                port_after("\nadmin:"),
                port_after("\n  listeners:"),
                port_after("\n  clusters:"),
            );
            let l = d.local;
            assert_eq!(
                ports,
                (Some(l.envoy_admin), Some(l.envoy), Some(l.app)),
                "{}",
                d.name
            );
            let clusters = &text[text.find("\n  clusters:").expect("clusters")..];
            let first = clusters
                .split("- name:")
                .nth(1)
                .and_then(|c| c.lines().next());
            assert_eq!(first.map(|n| n.trim().trim_matches('"')), Some(d.name));
        }
    }
}
