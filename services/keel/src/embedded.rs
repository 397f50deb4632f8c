//! A whole system in one process on embedded storage (`<system> up`): every deployable of
//! its generated table (the same crates, the same generated gRPC contracts, talking gRPC
//! over loopback) plus the GraphQL BFF. Only the adapters differ from production, chosen
//! by URL: each relational store and event store is a SQLite file in the data folder,
//! and events travel through an embedded log (`bus.db`) instead of Kafka.
//!
//! Every deployable is configured for its own loopback port and started through the
//! generated launcher (the same `Config` and `run` as its binary). Settings are given as
//! flags, so a `DATABASE_URL` or `KAFKA_BROKERS` exported in the user's shell cannot leak
//! into what the table lists.

use std::collections::BTreeMap;
use std::fs::File;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::table::{Deployable, Role, SettingKind};

/// A started deployable: resolves when it has stopped.
pub type Running = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// The generated launcher's `start`: deployable `name` on `listener` with `settings`
/// (and `tuning` where it reads them) until `stop` turns true.
pub type Start = fn(
    &str,
    &[(&str, String)],
    &[(&str, &str)],
    TcpListener,
    watch::Receiver<bool>,
) -> anyhow::Result<Running>;

/// What the generated launcher knows of one system.
#[derive(Clone, Copy)]
pub struct System {
    pub name: &'static str,
    pub table: &'static [Deployable],
    pub start: Start,
}

/// One machine, SQLite files and the embedded log: fewer connections (SQLite serialises
/// writers), one partition per topic, relays that poll often. Applied to a deployable
/// only where it reads the setting; `*` matches a prefix.
pub const TUNING: &[(&str, &str)] = &[
    ("DATABASE_MAX_CONNECTIONS", "4"),
    ("STARTUP_TIMEOUT_SECS", "30"),
    ("RELAY_POLL_MS", "20"),
    ("*_TOPIC_PARTITIONS", "1"),
];

/// Where each part of a running system listens.
#[derive(Debug, Clone)]
pub struct Addresses {
    pub graphql: SocketAddr,
    /// Deployable name -> its gRPC address.
    pub grpc: BTreeMap<&'static str, SocketAddr>,
}

/// The data folder, held exclusively while the system runs: two processes writing the
/// same SQLite files would each run a relay and break the one-publisher rule.
struct DataDir {
    path: PathBuf,
    _lock: File,
}

impl DataDir {
    fn open(path: &Path, system: &str) -> anyhow::Result<DataDir> {
        std::fs::create_dir_all(path)
            .with_context(|| format!("creating the data folder {}", path.display()))?;
        let path = path
            .canonicalize()
            .with_context(|| format!("resolving {}", path.display()))?;
        let lock = File::create(path.join(".lock"))
            .with_context(|| format!("creating {}", path.join(".lock").display()))?;
        if lock.try_lock().is_err() {
            bail!(
                "another `{system} up` is using {}; stop it first or pass another --data folder",
                path.display()
            );
        }
        Ok(DataDir { path, _lock: lock })
    }

    fn url(&self, file: &str) -> String {
        format!("sqlite://{}", self.path.join(file).display())
    }
}

/// Runs `system` with its data in `data` and GraphQL on `listen` until `shutdown`
/// resolves (or a part of it fails), then stops every part and waits for it. Once every
/// part serves, `ready` runs (to add demo data, to print where things are); its error
/// stops the system.
pub async fn up(
    system: &System,
    data: &Path,
    listen: SocketAddr,
    shutdown: impl Future<Output = ()>,
    ready: impl AsyncFnOnce(&Addresses, &Path) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let data = DataDir::open(data, system.name)?;
    let graphql = TcpListener::bind(listen).await.with_context(|| {
        format!("binding {listen} for GraphQL (is something else using it? pass --listen)")
    })?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = Tasks::new();
    let (addresses, listeners) = bind(system, graphql).await?;
    let at = Embedded {
        url: &|file| data.url(file),
        addresses: &addresses,
        system: system.name,
    };
    spawn_all(system, &mut tasks, &at, listeners, stop_rx)?;

    let started = async {
        wait_ready(&addresses).await?;
        ready(&addresses, &data.path).await
    };
    let outcome = tokio::select! {
        r = started => r,
        Some(done) = tasks.join_next() => Err(failed(done)),
    };
    let result = match outcome {
        Err(e) => Err(e),
        Ok(()) => tokio::select! {
            () = shutdown => Ok(()),
            Some(done) = tasks.join_next() => Err(failed(done)),
        },
    };
    let _ = stop_tx.send(true);
    drain(&mut tasks).await;
    result
}

/// The BFF on `graphql`, every other deployable on a loopback port of its own.
async fn bind(
    system: &System,
    graphql: TcpListener,
) -> anyhow::Result<(Addresses, BTreeMap<&'static str, TcpListener>)> {
    let mut listeners = BTreeMap::new();
    let mut grpc = BTreeMap::new();
    let graphql_addr = graphql.local_addr()?;
    for d in system.table {
        if d.role == Role::Bff {
            continue;
        }
        let l = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .context("binding a loopback port")?;
        grpc.insert(d.name, l.local_addr()?);
        listeners.insert(d.name, l);
    }
    if let Some(bff) = system.table.iter().find(|d| d.role == Role::Bff) {
        listeners.insert(bff.name, graphql);
    }
    let addresses = Addresses {
        graphql: graphql_addr,
        grpc,
    };
    Ok((addresses, listeners))
}

type Tasks = JoinSet<(&'static str, anyhow::Result<()>)>;

/// Where the embedded system keeps things and where its parts listen.
struct Embedded<'a> {
    /// `sqlite://…` URL of a file in the data folder.
    url: &'a (dyn Fn(&str) -> String + Sync),
    addresses: &'a Addresses,
    system: &'a str,
}

impl Embedded<'_> {
    fn address(&self, deployable: &str) -> anyhow::Result<SocketAddr> {
        match self.addresses.grpc.get(deployable) {
            Some(a) => Ok(*a),
            None => Ok(self.addresses.graphql),
        }
    }

    /// The value of each setting `d` lists, but the names whose defaults serve.
    fn settings(&self, d: &Deployable) -> anyhow::Result<Vec<(&'static str, String)>> {
        let mut out = Vec::new();
        for s in d.settings {
            let value = match s.kind {
                SettingKind::Listen => self.address(d.name)?.to_string(),
                SettingKind::Database(db) | SettingKind::EventStore(db) => {
                    (self.url)(&data_file(self.system, db))
                }
                SettingKind::Bus => (self.url)("bus.db"),
                SettingKind::Upstream(up) => format!("http://{}", self.address(up)?),
                SettingKind::EventStoreDatabase(_)
                | SettingKind::Topic(_)
                | SettingKind::ConsumerGroup(_) => continue,
            };
            out.push((s.env, value));
        }
        Ok(out)
    }
}

/// The data folder's file of a database: `shop_cart_read` of `shop` is `cart-read.db`.
fn data_file(system: &str, database: &str) -> String {
    let bare = database
        .strip_prefix(system)
        .and_then(|d| d.strip_prefix('_'))
        .unwrap_or(database);
    format!("{}.db", bare.replace('_', "-"))
}

fn spawn_all(
    system: &System,
    tasks: &mut Tasks,
    at: &Embedded<'_>,
    mut listeners: BTreeMap<&'static str, TcpListener>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    for d in system.table {
        let listener = listeners
            .remove(d.name)
            .with_context(|| format!("no port bound for {}", d.name))?;
        let settings = at.settings(d)?;
        let running = (system.start)(d.name, &settings, TUNING, listener, stop.clone())
            .with_context(|| format!("configuring {}", d.name))?;
        let name = d.name;
        tasks.spawn(async move { (name, running.await) });
    }
    Ok(())
}

fn failed(
    done: Result<(&'static str, anyhow::Result<()>), tokio::task::JoinError>,
) -> anyhow::Error {
    match done {
        Ok((name, Ok(()))) => anyhow::anyhow!("{name} stopped by itself"),
        Ok((name, Err(e))) => e.context(format!("{name} failed")),
        Err(e) => anyhow::anyhow!("a service task panicked: {e}"),
    }
}

/// Waits for every part to stop; reports the ones that fail or hang.
async fn drain(tasks: &mut Tasks) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match tokio::time::timeout_at(deadline, tasks.join_next()).await {
            Ok(None) => return,
            Ok(Some(Ok((_, Ok(()))))) => {}
            Ok(Some(Ok((name, Err(e))))) => {
                tracing::error!(error = %format!("{e:#}"), "{name} failed while stopping")
            }
            Ok(Some(Err(e))) => tracing::error!(error = %e, "a service task panicked"),
            Err(_) => {
                tracing::warn!(
                    left = tasks.len(),
                    "services did not stop in 20 s: aborting them"
                );
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
                return;
            }
        }
    }
}

/// Every gRPC part answers its health check with SERVING.
async fn wait_ready(addresses: &Addresses) -> anyhow::Result<()> {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    for (name, addr) in &addresses.grpc {
        loop {
            let serving = async {
                let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
                    .connect_timeout(Duration::from_secs(1))
                    .connect()
                    .await?;
                let status = HealthClient::new(channel)
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await?
                    .into_inner()
                    .status;
                anyhow::Ok(status == ServingStatus::Serving as i32)
            }
            .await;
            if matches!(serving, Ok(true)) {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                bail!("{name} did not become ready in 120 s: {serving:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

/// A system [`spawn`]ed in the background: where its GraphQL is, and how to stop it.
pub struct Spawned {
    /// `http://127.0.0.1:<port>/graphql`.
    pub graphql_url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Spawned {
    /// Stops every part and waits for it; the system's own error, if it failed.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await.context("the system's task")?
    }
}

/// Starts `system` with its data in `data` and GraphQL on a free loopback port, and
/// returns once every part serves (for tests and tools that drive a whole system).
pub async fn spawn(system: System, data: PathBuf) -> anyhow::Result<Spawned> {
    let (url_tx, url_rx) = tokio::sync::oneshot::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        up(
            &system,
            &data,
            SocketAddr::from(([127, 0, 0, 1], 0)),
            shutdown,
            async |a, _| {
                let _ = url_tx.send(format!("http://{}/graphql", a.graphql));
                Ok(())
            },
        )
        .await
    });
    match url_rx.await {
        Ok(graphql_url) => Ok(Spawned {
            graphql_url,
            stop,
            task,
        }),
        Err(_) => Err(task
            .await
            .context("the system's task")?
            .err()
            .unwrap_or_else(|| anyhow::anyhow!("the system stopped before it served"))),
    }
}

/// Configures every deployable of `system` as `up` would, starting none: a setting its
/// `Config` does not accept fails here, naming the deployable.
pub async fn configure_all(system: &System) -> anyhow::Result<()> {
    let graphql = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let (addresses, mut listeners) = bind(system, graphql).await?;
    let at = Embedded {
        url: &|file| format!("sqlite:///nowhere/{file}"),
        addresses: &addresses,
        system: system.name,
    };
    let (_stop, stopped) = watch::channel(false);
    for d in system.table {
        let listener = listeners
            .remove(d.name)
            .with_context(|| format!("no port bound for {}", d.name))?;
        let settings = at.settings(d)?;
        let unstarted = (system.start)(d.name, &settings, TUNING, listener, stopped.clone())
            .with_context(|| format!("configuring {}", d.name))?;
        // Dropped unpolled: nothing starts.
        drop(unstarted);
    }
    Ok(())
}

/// `<system> up [--data DIR] [--listen ADDR]`: the whole system on this machine, printing
/// where the storefront, the back-office, the GraphQL console and each gRPC service are;
/// Ctrl-C stops it. For a launcher binary
/// that needs nothing else (the shop's adds demo data).
pub async fn main(system: &System) -> std::process::ExitCode {
    init_logs();
    let shouty = system.name.to_uppercase().replace('-', "_");
    let matches = clap::Command::new(system.name)
        .about(format!("The {} system, generated from its spec", system.name))
        .subcommand_required(true)
        .subcommand(
            clap::Command::new("up")
                .about("Run every service and the GraphQL API in this process, on embedded storage (SQLite files in the data folder, no Kafka). Ctrl-C stops it.")
                .arg(
                    clap::Arg::new("data")
                        .long("data")
                        .env(format!("{shouty}_DATA"))
                        .default_value(format!("{}-data", system.name))
                        .value_parser(clap::value_parser!(PathBuf))
                        .help("Folder for the data; kept across restarts"),
                )
                .arg(
                    clap::Arg::new("listen")
                        .long("listen")
                        .env(format!("{shouty}_LISTEN"))
                        .default_value("127.0.0.1:8080")
                        .value_parser(clap::value_parser!(SocketAddr))
                        .help("Where the web pages (/, /back-office/, /graphiql) and GraphQL (/graphql) are served"),
                ),
        )
        .get_matches();
    let Some(("up", up_args)) = matches.subcommand() else {
        return std::process::ExitCode::FAILURE;
    };
    let data = up_args
        .get_one::<PathBuf>("data")
        .cloned()
        .unwrap_or_default();
    let Some(listen) = up_args.get_one::<SocketAddr>("listen").copied() else {
        return std::process::ExitCode::FAILURE;
    };
    let name = system.name;
    let result = up(
        system,
        &data,
        listen,
        crate::server::shutdown_signal(),
        async |a, data| {
            print_banner(name, a, data);
            Ok(())
        },
    )
    .await;
    match result {
        Ok(()) => {
            println!("The {name} stopped cleanly.");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Where things are, for a person at a terminal.
pub fn print_banner(system: &str, a: &Addresses, data: &Path) {
    println!(
        "The {system} system is up. Embedded storage in {}",
        data.display()
    );
    println!("  Storefront   http://{}/", a.graphql);
    println!("  Back-office  http://{}/back-office/", a.graphql);
    println!("  GraphiQL     http://{}/graphiql", a.graphql);
    println!("  GraphQL      http://{}/graphql", a.graphql);
    for (name, addr) in &a.grpc {
        println!("  gRPC      {name:<19} http://{addr}");
    }
    println!("Ctrl-C stops it.");
}

/// Warnings and errors on stderr unless `RUST_LOG` says otherwise.
pub fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_files_keep_their_names() {
        assert_eq!(data_file("shop", "shop_product"), "product.db");
        assert_eq!(data_file("shop", "shop_cart_read"), "cart-read.db");
        assert_eq!(data_file("shop", "shop_cart_events"), "cart-events.db");
        assert_eq!(data_file("library", "library_loans"), "loans.db");
    }
}
