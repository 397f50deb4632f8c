//! The whole shop in one process on embedded storage: every deployable of the spec (the
//! same service crates, the same generated gRPC contracts, talking gRPC over loopback)
//! plus the GraphQL BFF. Only the adapters differ from production, chosen by URL:
//! each relational store and the cart's event store are SQLite files under the data
//! folder, and events travel through an embedded log (`bus.db`) instead of Kafka.
//!
//! Files under the data folder (kept across restarts):
//! `product.db`, `order.db`, `user.db`, `cart-events.db`, `cart-read.db`, `bus.db`,
//! `demo-seeded` (the demo products were added once), `.lock` (held while running).

mod demo;
mod wiring;

use std::collections::BTreeMap;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use wiring::DEPLOYABLES;

/// What `shop up` is told.
#[derive(Debug, Clone)]
pub struct UpOptions {
    pub data: PathBuf,
    pub listen: SocketAddr,
    pub demo: bool,
}

/// Where each part of a running shop listens.
#[derive(Debug, Clone)]
pub struct Addresses {
    pub graphql: SocketAddr,
    /// Deployable name -> its gRPC address.
    pub grpc: BTreeMap<&'static str, SocketAddr>,
}

/// The data folder, held exclusively while the shop runs: two shops writing the same
/// SQLite files would each run a relay and break the one-publisher rule.
struct DataDir {
    path: PathBuf,
    _lock: File,
}

impl DataDir {
    fn open(path: &Path) -> anyhow::Result<DataDir> {
        std::fs::create_dir_all(path)
            .with_context(|| format!("creating the data folder {}", path.display()))?;
        let path = path
            .canonicalize()
            .with_context(|| format!("resolving {}", path.display()))?;
        let lock = File::create(path.join(".lock"))
            .with_context(|| format!("creating {}", path.join(".lock").display()))?;
        if lock.try_lock().is_err() {
            bail!(
                "another `shop up` is using {}; stop it first or pass another --data folder",
                path.display()
            );
        }
        Ok(DataDir { path, _lock: lock })
    }

    fn url(&self, file: &str) -> String {
        format!("sqlite://{}", self.path.join(file).display())
    }
}

async fn loopback() -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .context("binding a loopback port")
}

/// Runs the shop until `shutdown` resolves (or a part of it fails), then stops every
/// part and waits for it. `ready` receives the addresses once every part serves.
pub async fn up(
    options: UpOptions,
    shutdown: impl std::future::Future<Output = ()>,
    ready: impl FnOnce(&Addresses, &Path),
) -> anyhow::Result<()> {
    let data = DataDir::open(&options.data)?;
    let graphql = tokio::net::TcpListener::bind(options.listen)
        .await
        .with_context(|| {
            format!(
                "binding {} for GraphQL (is something else using it? pass --listen)",
                options.listen
            )
        })?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks: JoinSet<(&'static str, anyhow::Result<()>)> = JoinSet::new();

    let mut listeners = BTreeMap::new();
    let mut grpc = BTreeMap::new();
    let graphql_addr = graphql.local_addr()?;
    listeners.insert("bff", graphql);
    for name in DEPLOYABLES.iter().copied().filter(|d| *d != "bff") {
        let l = loopback().await?;
        grpc.insert(name, l.local_addr()?);
        listeners.insert(name, l);
    }
    let addresses = Addresses {
        graphql: graphql_addr,
        grpc,
    };
    wiring::spawn(
        &mut tasks,
        &wiring::Embedded {
            url: &|file| data.url(file),
            addresses: &addresses,
        },
        listeners,
        stop_rx.clone(),
    )?;

    let outcome = tokio::select! {
        r = wait_ready(&addresses) => match r {
            Ok(()) => Ok(()),
            Err(e) => Err(e),
        },
        Some(done) = tasks.join_next() => Err(failed(done)),
    };
    if let Err(e) = outcome {
        let _ = stop_tx.send(true);
        drain(&mut tasks).await;
        return Err(e);
    }
    if options.demo {
        let product = format!("http://{}", addresses.grpc["product"]);
        if let Err(e) = demo::seed_once(&data.path, &product).await {
            let _ = stop_tx.send(true);
            drain(&mut tasks).await;
            return Err(e.context("adding the demo products"));
        }
    }
    ready(&addresses, &data.path);

    let result = tokio::select! {
        () = shutdown => Ok(()),
        Some(done) = tasks.join_next() => Err(failed(done)),
    };
    let _ = stop_tx.send(true);
    drain(&mut tasks).await;
    result
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
async fn drain(tasks: &mut JoinSet<(&'static str, anyhow::Result<()>)>) {
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

/// Every gRPC part answers its health check with SERVING, and the BFF its /healthz.
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
