//! A system's deployables on real servers for end-to-end tests: each service binary
//! behind its generated local Envoy, on real PostgreSQL, Kafka and FerretDB, started
//! and stopped in one place.
//!
//! ```no_run
//! # async fn journey(system: keel::testing::stack::System) {
//! let stack = keel::testing::stack::Stack::start(system, &["product", "bff"]).await;
//! let query = "query { viewProducts(first: 1) { nodes { id } } }";
//! stack.graphql().ok(query, serde_json::json!({})).await;
//! stack.stop();
//! # }
//! ```
//!
//! Everything comes from the system's generated deployables table: packages, binaries,
//! arguments, local ports, settings, and from those the databases, the infrastructure
//! each needs and the start order; a service added to the spec runs here with no change.
//! Topics, consumer groups and event store databases carry a suffix unique to the run
//! (see [`Stack::run`]); every PostgreSQL database is fresh and dropped with the stack.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::process::{
    Graphql, PortsLock, Process, bin_dir, build_binaries_in, envoy, lock_ports, spawn,
    wait_envoy_healthy, wait_http_ok,
};
use super::{TestDatabase, infra_up, infra_var};
use crate::table::{Deployable, Role, SettingKind};

/// How long the BFF's edge has to answer `/healthz` once everything is spawned.
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// How long each Envoy has to see its app cluster healthy after that.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(60);
/// How long [`Stack::stop`] gives each process to exit on SIGTERM.
pub const STOP_GRACE: Duration = Duration::from_secs(15);

/// The system a stack runs.
#[derive(Debug, Clone)]
pub struct System {
    /// The spec's `system` (the prefix of its database names).
    pub name: &'static str,
    /// Its generated deployables table (`<system>_system::DEPLOYABLES`).
    pub table: &'static [Deployable],
    /// The folder holding its `generated/` tree; cargo builds in its workspace.
    pub root: PathBuf,
    /// Settings of hand-written services that tests change: (service, variable, value).
    pub env: Vec<(&'static str, &'static str, String)>,
}

impl System {
    /// The row called `name`, or a panic listing the known ones.
    pub fn deployable(&self, name: &str) -> &'static Deployable {
        self.table
            .iter()
            .find(|d| d.name == name)
            .unwrap_or_else(|| {
                let known: Vec<&str> = self.table.iter().map(|d| d.name).collect();
                panic!(
                    "unknown deployable {name:?} of {}; known: {known:?}",
                    self.name
                )
            })
    }

    /// Every deployable's name, in the table's order.
    pub fn names(&self) -> Vec<&'static str> {
        self.table.iter().map(|d| d.name).collect()
    }

    /// The rows called `names`, each after every upstream it calls (the BFF last),
    /// otherwise in the table's order; stacks stop in reverse.
    pub fn start_order(&self, names: &[&str]) -> Vec<&'static Deployable> {
        let mut left: Vec<&'static Deployable> = names.iter().map(|n| self.deployable(n)).collect();
        left.sort_by_key(|d| self.table.iter().position(|t| t.name == d.name));
        let mut order: Vec<&'static Deployable> = Vec::new();
        while !left.is_empty() {
            let ready = left
                .iter()
                .position(|d| {
                    d.upstreams
                        .iter()
                        .all(|u| order.iter().any(|o| o.name == *u) || !names.contains(u))
                })
                // A cycle of calls: start the rest in the table's order.
                .unwrap_or(0);
            order.push(left.remove(ready));
        }
        order
    }

    /// The test database (prefix) of `d`: `e2e_<database>` without the system's prefix;
    /// deployables of one service share it.
    pub fn database_prefix(&self, d: &Deployable) -> Option<String> {
        let db = d.settings.iter().find_map(|s| match s.kind {
            SettingKind::Database(db) => Some(db),
            _ => None,
        })?;
        let bare = db
            .strip_prefix(self.name)
            .and_then(|b| b.strip_prefix('_'))
            .unwrap_or(db);
        Some(format!("e2e_{bare}"))
    }

    /// The harness components `d` needs besides Envoy (`infra.sh up …`).
    pub fn infra(d: &Deployable) -> Vec<&'static str> {
        let mut infra = Vec::new();
        for s in d.settings {
            let component = match s.kind {
                SettingKind::Database(_) => "postgres",
                SettingKind::EventStore(_) => "mongo",
                SettingKind::Bus => "kafka",
                _ => continue,
            };
            if !infra.contains(&component) {
                infra.push(component);
            }
        }
        infra
    }

    fn envoy_configs(&self) -> PathBuf {
        self.root.join("generated/envoy/local")
    }
}

/// A running stack; see the module docs. Dropping it stops every process (without
/// asserting anything) and drops the databases; [`Stack::stop`] asserts a clean stop.
pub struct Stack {
    system: System,
    /// The app processes, in start order.
    apps: Vec<Process>,
    envoys: Vec<Process>,
    /// Per database prefix (see [`System::database_prefix`]).
    databases: BTreeMap<String, TestDatabase>,
    run: String,
    graphql: Graphql,
    // Last: released only once everything above is stopped and dropped.
    _ports: PortsLock,
}

impl Stack {
    /// Starts the deployables of `system` called `names`: takes the ports lock, builds
    /// their binaries, starts the infrastructure they need, creates their databases,
    /// spawns each behind its Envoy and waits until the BFF's edge answers `/healthz`
    /// (when the BFF is one of them) and every Envoy sees its app healthy.
    pub async fn start(system: System, names: &[&str]) -> Stack {
        let chosen = system.start_order(names);
        let ports = lock_ports();

        let mut packages: Vec<&str> = chosen.iter().map(|d| d.package).collect();
        packages.sort_unstable();
        packages.dedup();
        build_binaries_in(&system.root, &packages);
        let mut infra: Vec<&str> = Vec::new();
        for component in ["postgres", "kafka", "mongo"] {
            if chosen.iter().any(|d| System::infra(d).contains(&component)) {
                infra.push(component);
            }
        }
        infra.push("envoy");
        infra_up(&infra);

        let mut databases = BTreeMap::new();
        for d in &chosen {
            if let Some(prefix) = system.database_prefix(d)
                && !databases.contains_key(&prefix)
            {
                let db = TestDatabase::create(&prefix).await;
                databases.insert(prefix, db);
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
        let graphql = Graphql::new(match system.table.iter().find(|d| d.role == Role::Bff) {
            Some(bff) => format!("{}/graphql", bff.local_envoy_url()),
            None => String::new(),
        });
        let mut stack = Stack {
            system,
            apps: Vec::new(),
            envoys: Vec::new(),
            databases,
            graphql,
            run,
            _ports: ports,
        };
        let bin = bin_dir();
        for d in &chosen {
            let env = stack.env_of(d);
            stack
                .apps
                .push(spawn(d.name, &bin.join(d.binary), d.args, &env));
        }
        let configs = stack.system.envoy_configs();
        for d in &chosen {
            stack.envoys.push(envoy(&configs, d.name));
        }
        stack.wait_ready(&chosen).await;
        stack
    }

    /// The environment of deployable `d` in this stack: each setting of its row (its
    /// listen address, the Envoys of what it calls, its database, the event store, the
    /// bus), names of topics, groups and stores unique to the run, then the system's
    /// test settings for its service.
    fn env_of(&self, d: &Deployable) -> Vec<(&'static str, String)> {
        let run = &self.run;
        let mut env = Vec::new();
        for s in d.settings {
            let value = match s.kind {
                SettingKind::Listen => d.local_listen().to_string(),
                SettingKind::Upstream(up) => self.system.deployable(up).local_envoy_url(),
                SettingKind::Database(_) => match self.system.database_prefix(d) {
                    Some(prefix) => self.databases[&prefix].url.clone(),
                    None => continue,
                },
                SettingKind::EventStore(_) => infra_var("MONGO_URL"),
                SettingKind::Bus => infra_var("KAFKA_BOOTSTRAP_SERVERS"),
                SettingKind::EventStoreDatabase(db) => format!("e2e_{db}_{run}"),
                SettingKind::Topic(topic) => format!("e2e-{topic}-{run}"),
                SettingKind::ConsumerGroup(group) => format!("e2e-{group}-{run}"),
            };
            env.push((s.env, value));
        }
        for (service, var, value) in &self.system.env {
            if *service == d.service {
                env.push((*var, value.clone()));
            }
        }
        env
    }

    async fn wait_ready(&mut self, chosen: &[&'static Deployable]) {
        if let Some(bff) = chosen.iter().find(|d| d.role == Role::Bff) {
            let url = format!("{}/healthz", bff.local_envoy_url());
            let mut all: Vec<&mut Process> =
                self.apps.iter_mut().chain(self.envoys.iter_mut()).collect();
            wait_http_ok(&url, READY_TIMEOUT, &mut all).await;
        }
        // The BFF answered through its Envoy already; the others' Envoys must route too.
        // Each Envoy's app cluster is named after its deployable.
        for d in chosen.iter().filter(|d| d.role != Role::Bff) {
            wait_envoy_healthy(d.local.envoy_admin, d.name, CLUSTER_TIMEOUT).await;
        }
    }

    /// A GraphQL client for the BFF through its Envoy.
    pub fn graphql(&self) -> &Graphql {
        &self.graphql
    }

    /// The BFF's GraphQL URL through its Envoy.
    pub fn graphql_url(&self) -> String {
        self.graphql.url().to_string()
    }

    /// The URL of `deployable`'s local Envoy.
    pub fn edge(&self, deployable: &str) -> String {
        self.system.deployable(deployable).local_envoy_url()
    }

    /// The suffix of this run's topics, consumer groups and event store databases (also
    /// handy to make test data unique).
    pub fn run(&self) -> &str {
        &self.run
    }

    /// The PostgreSQL URL of `deployable`'s database.
    pub fn database_url(&self, deployable: &str) -> &str {
        let prefix = self
            .system
            .database_prefix(self.system.deployable(deployable))
            .unwrap_or_else(|| panic!("{deployable} has no database"));
        &self
            .databases
            .get(&prefix)
            .unwrap_or_else(|| panic!("{deployable} is not in this stack"))
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
    use crate::table::{LocalPorts, Setting};

    const PORTS: LocalPorts = LocalPorts {
        app: 1,
        envoy: 2,
        envoy_admin: 3,
    };

    const fn row(
        name: &'static str,
        role: Role,
        settings: &'static [Setting],
        upstreams: &'static [&'static str],
    ) -> Deployable {
        Deployable {
            name,
            service: name,
            role,
            package: name,
            binary: name,
            args: &[],
            settings,
            upstreams,
            databases: &[],
            event_store: None,
            local: PORTS,
        }
    }

    static TABLE: &[Deployable] = &[
        row("bff", Role::Bff, &[], &["orders", "stock"]),
        row(
            "orders",
            Role::Grpc,
            &[
                Setting {
                    env: "DATABASE_URL",
                    kind: SettingKind::Database("x_orders"),
                },
                Setting {
                    env: "BUS_URL",
                    kind: SettingKind::Bus,
                },
            ],
            &["stock"],
        ),
        row(
            "stock",
            Role::Command,
            &[Setting {
                env: "EVENT_STORE_URL",
                kind: SettingKind::EventStore("x_stock_events"),
            }],
            &[],
        ),
    ];

    fn system() -> System {
        System {
            name: "x",
            table: TABLE,
            root: PathBuf::new(),
            env: Vec::new(),
        }
    }

    fn names(order: Vec<&'static Deployable>) -> Vec<&'static str> {
        order.into_iter().map(|d| d.name).collect()
    }

    #[test]
    fn what_a_deployable_calls_starts_before_it() {
        let s = system();
        assert_eq!(
            names(s.start_order(&["bff", "orders", "stock"])),
            ["stock", "orders", "bff"]
        );
        // An upstream left out of the stack holds nobody back.
        assert_eq!(names(s.start_order(&["bff", "orders"])), ["orders", "bff"]);
    }

    #[test]
    fn databases_and_infrastructure_follow_the_settings() {
        let s = system();
        let orders = s.deployable("orders");
        assert_eq!(s.database_prefix(orders).as_deref(), Some("e2e_orders"));
        assert_eq!(System::infra(orders), ["postgres", "kafka"]);
        assert_eq!(System::infra(s.deployable("stock")), ["mongo"]);
        assert_eq!(s.database_prefix(s.deployable("bff")), None);
    }
}
