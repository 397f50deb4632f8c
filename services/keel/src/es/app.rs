//! The process of an event-sourced service, written once: the runtime's flags (flattened
//! into each generated `Config`), connecting to the event store, the read database and
//! the bus (waiting for them at start), the background tasks of a role (relay,
//! subscribers, event handler or store tailer) and their bounded shutdown. The generated
//! `run_with` of each service wires its own types through these.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::server::{Router, TcpIncoming};

use super::handler::{HandlerConfig, run_event_handler};
use super::relay::{Relay, RelayConfig};
use super::store::{EventStore, StoreLayout};
use super::tail::{StoreTailer, TailConfig};
use super::view::{Projector, StateView};
use super::{Event, rebuild};
use crate::bus::Bus;
use crate::sql::{ConnectOptions, Db, Migrations};
use crate::{ServiceError, server};

/// Why a process could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct AppError {
    what: String,
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl AppError {
    pub fn new(
        what: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> AppError {
        AppError {
            what: what.into(),
            source: source.into(),
        }
    }
}

/// Which process of a CQRS service to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    Command,
    Query,
    EventHandler,
}

/// Where the event handler takes the events from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EventsFrom {
    /// The service's topic on the bus (published by the relay): Kafka or the embedded
    /// log. `kafka`, its name before the bus had two adapters, still works.
    #[value(alias = "kafka")]
    Bus,
    /// The event store itself, from the handler's own checkpoint (no bus).
    Store,
}

/// What a CQS service's process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// The gRPC server (and the outbox relay unless disabled).
    Serve,
    /// Only the outbox relay.
    Relay,
}

/// One-off tasks of a CQRS service's binary.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum Task {
    /// Rebuild the read model from the event store and exit.
    Rebuild,
    /// Apply the parked events that can be applied now (gaps filled from the event
    /// store), print what is left, and exit.
    Repair,
}

/// The runtime's flags, the same for every event-sourced service.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct RuntimeArgs {
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    pub max_connections: u32,
    /// How long to wait for the stores and the bus at start.
    #[arg(long, env = "STARTUP_TIMEOUT_SECS", default_value_t = 30)]
    pub startup_timeout_secs: u64,
    /// How long background tasks may take to stop after the server stopped.
    #[arg(long, env = "SHUTDOWN_TIMEOUT_SECS", default_value_t = 10)]
    pub shutdown_timeout_secs: u64,
    /// Run the relay (store or outbox to bus) in the command process.
    #[arg(long, env = "RELAY", default_value_t = true, action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub relay: bool,
    /// Lease and checkpoint name of the relay.
    #[arg(long, env = "RELAY_NAME", default_value = "relay")]
    pub relay_name: String,
    #[arg(long, env = "RELAY_POLL_MS", default_value_t = 50)]
    pub relay_poll_ms: u64,
    #[arg(long, env = "RELAY_BATCH", default_value_t = 500)]
    pub relay_batch: i64,
    #[arg(long, env = "RELAY_LEASE_TTL_MS", default_value_t = 5000)]
    pub relay_lease_ttl_ms: u64,
    /// How long a hole in the store's positions may last before the relay passes it.
    #[arg(long, env = "RELAY_GAP_TIMEOUT_MS", default_value_t = 10000)]
    pub relay_gap_timeout_ms: u64,
    /// Run the subscriptions to other services' events in the command process.
    #[arg(long, env = "SUBSCRIBER", default_value_t = true, action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub subscriber: bool,
    /// Static membership of the event handler in its group (e.g. the pod name).
    #[arg(long, env = "CONSUMER_INSTANCE_ID")]
    pub consumer_instance_id: Option<String>,
    /// Event handler: `bus` (the service's topic) or `store` (tail the event store).
    #[arg(long, env = "EVENTS_FROM", value_enum, default_value_t = EventsFrom::Bus)]
    pub events_from: EventsFrom,
    /// Checkpoint name of the store-tailing event handler.
    #[arg(long, env = "PROJECTION_CHECKPOINT", default_value = "projection")]
    pub projection_checkpoint: String,
    /// Deadline of a call to another service, in milliseconds: the Envoy route's timeout,
    /// so that its per-try timeout (3 s) leaves room to retry a stalled idempotent call.
    #[arg(long, env = "CALL_TIMEOUT_MS", default_value_t = 10_000)]
    pub call_timeout_ms: u64,
    /// How often the query and event-handler roles count the read model's parked events
    /// for their health status, in milliseconds.
    #[arg(long, env = "PARKED_CHECK_MS", default_value_t = 5000)]
    pub parked_check_ms: u64,
}

impl Default for RuntimeArgs {
    /// The flags' defaults, without reading the environment.
    fn default() -> RuntimeArgs {
        RuntimeArgs {
            max_connections: 10,
            startup_timeout_secs: 30,
            shutdown_timeout_secs: 10,
            relay: true,
            relay_name: "relay".into(),
            relay_poll_ms: 50,
            relay_batch: 500,
            relay_lease_ttl_ms: 5000,
            relay_gap_timeout_ms: 10000,
            subscriber: true,
            consumer_instance_id: None,
            events_from: EventsFrom::Bus,
            projection_checkpoint: "projection".into(),
            call_timeout_ms: 10_000,
            parked_check_ms: 5000,
        }
    }
}

impl RuntimeArgs {
    pub fn startup_timeout(&self) -> Duration {
        Duration::from_secs(self.startup_timeout_secs)
    }

    pub fn call_timeout(&self) -> Duration {
        Duration::from_millis(self.call_timeout_ms)
    }

    pub fn connect_options(&self) -> ConnectOptions {
        ConnectOptions {
            max_connections: self.max_connections,
            startup_timeout: self.startup_timeout(),
        }
    }

    pub fn relay_config(&self, topic: &str) -> RelayConfig {
        RelayConfig {
            topic: topic.to_string(),
            name: self.relay_name.clone(),
            poll_interval: Duration::from_millis(self.relay_poll_ms.max(1)),
            batch_size: self.relay_batch.max(1),
            lease_ttl: Duration::from_millis(self.relay_lease_ttl_ms.max(100)),
            gap_timeout: Duration::from_millis(self.relay_gap_timeout_ms),
            ..RelayConfig::default()
        }
    }

    /// The outbox relay of a CQS service: its lease `lease_key` in the service's database.
    pub fn outbox_config(
        &self,
        topic: &str,
        lease_key: i64,
        topic_partitions: i32,
    ) -> super::outbox::RelayConfig {
        super::outbox::RelayConfig {
            topic: topic.to_string(),
            lease_key,
            poll_interval: Duration::from_millis(self.relay_poll_ms.max(1)),
            batch_size: self.relay_batch.max(1),
            topic_partitions: topic_partitions.max(1),
            ..super::outbox::RelayConfig::default()
        }
    }

    pub fn tail_config(&self) -> TailConfig {
        TailConfig {
            name: self.projection_checkpoint.clone(),
            poll_interval: Duration::from_millis(self.relay_poll_ms.max(1)),
            batch_size: self.relay_batch.max(1),
            gap_timeout: Duration::from_millis(self.relay_gap_timeout_ms),
            ..TailConfig::default()
        }
    }

    pub fn handler_config(&self, topic: &str, group: &str) -> HandlerConfig {
        HandlerConfig {
            topic: topic.to_string(),
            group: group.to_string(),
            instance_id: self.consumer_instance_id.clone(),
            ..HandlerConfig::default()
        }
    }
}

/// The event store at `url` (`mongodb://…`, `postgres://…` or `sqlite://path`), ready:
/// indexes or migrations applied; waits up to the startup timeout for it.
pub async fn event_store(
    url: &str,
    database: &str,
    layout: StoreLayout,
    args: &RuntimeArgs,
) -> Result<EventStore, AppError> {
    let options = args.connect_options();
    let store = server::retry_until("event store", args.startup_timeout(), || {
        EventStore::connect_with(url, database, layout, &options)
    })
    .await
    .map_err(|e| AppError::new("connecting to the event store", e))?;
    server::retry_until("event store", args.startup_timeout(), || {
        store.ensure_indexes()
    })
    .await
    .map_err(|e| AppError::new("preparing the event store", e))?;
    Ok(store)
}

/// The database at `url` (`postgres://…` or `sqlite://path`), migrated; waits up to the
/// startup timeout for it. `None`: the role needs one and none was configured.
pub async fn database(
    url: Option<&str>,
    migrations: &Migrations,
    args: &RuntimeArgs,
) -> Result<Db, AppError> {
    let url = url
        .filter(|u| !u.is_empty())
        .ok_or_else(|| AppError::new("DATABASE_URL", "required for this role"))?;
    let options = args.connect_options();
    server::retry_until("database", args.startup_timeout(), || {
        Db::open(url, &options, migrations)
    })
    .await
    .map_err(|e| AppError::new("preparing the database", e))
}

/// The bus at `url` (`kafka://h:p`, a bare broker list, or `sqlite://path`), with
/// `topic` created when given (Kafka).
pub async fn bus(url: &str, topic: Option<(&str, i32)>) -> Result<Bus, AppError> {
    let bus = Bus::connect(url)
        .await
        .map_err(|e| AppError::new("connecting to the bus", e))?;
    if let Some((topic, partitions)) = topic {
        bus.ensure_topic(topic, partitions)
            .await
            .map_err(|e| AppError::new(format!("creating topic {topic}"), e))?;
    }
    Ok(bus)
}

/// Serves `router` on `incoming` until `stop` turns true; in-flight calls finish first.
pub async fn serve(
    router: Router,
    incoming: TcpIncoming,
    stop: &watch::Receiver<bool>,
) -> Result<(), AppError> {
    let mut stop = stop.clone();
    router
        .serve_with_incoming_shutdown(incoming, async move { server::stopped(&mut stop).await })
        .await
        .map_err(|e| AppError::new("serving gRPC", e))
}

/// A router with health and reflection for `services`.
pub async fn router(
    services: &[&str],
    descriptor_sets: &[&'static [u8]],
) -> Result<Router, AppError> {
    server::grpc_router(services, descriptor_sets)
        .await
        .map_err(|e| AppError::new("gRPC reflection", e))
}

/// The health service name under which the read model of `service` reports: SERVING
/// while no event is parked, NOT_SERVING while any is (the process itself stays SERVING:
/// a restart would not repair anything).
pub fn read_model_health(service: &str) -> String {
    format!("{service}.read_model")
}

/// A router with health and reflection for `services` whose health also reports the read
/// model `db` of `service` (see [`read_model_health`]), watched by a task of `background`.
pub async fn read_model_router(
    services: &[&str],
    descriptor_sets: &[&'static [u8]],
    service: &str,
    db: &Db,
    args: &RuntimeArgs,
    background: &mut Background,
) -> Result<Router, AppError> {
    let (router, health) = server::grpc_router_with_health(services, descriptor_sets)
        .await
        .map_err(|e| AppError::new("gRPC reflection", e))?;
    let name = read_model_health(service);
    let every = Duration::from_millis(args.parked_check_ms.max(10));
    let (db, mut stop) = (db.clone(), background.stop());
    background.spawn("parked events watch", async move {
        let mut reported = None;
        while !*stop.borrow() {
            match super::view::parked(&db).await {
                Ok(parked) if reported != Some(parked) => {
                    let status = if parked == 0 {
                        tonic_health::ServingStatus::Serving
                    } else {
                        tracing::error!(alert = "read_model_parked_events", health = %name, parked,
                            "ALERT: events are parked in the read model (`repair` retries them)");
                        tonic_health::ServingStatus::NotServing
                    };
                    health.set_service_status(&name, status).await;
                    reported = Some(parked);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "counting parked events"),
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => {}
            }
        }
        Ok::<(), ServiceError>(())
    });
    Ok(router)
}

type Task_ = JoinHandle<Result<(), AppError>>;

/// The background tasks of a role: awaited after the server stopped, each for at most
/// the shutdown timeout.
pub struct Background {
    tasks: Vec<Task_>,
    shutdown_timeout: Duration,
    stop: watch::Receiver<bool>,
}

impl Background {
    pub fn new(args: &RuntimeArgs, stop: &watch::Receiver<bool>) -> Background {
        Background {
            tasks: Vec::new(),
            shutdown_timeout: Duration::from_secs(args.shutdown_timeout_secs),
            stop: stop.clone(),
        }
    }

    /// The stop signal the tasks get.
    pub fn stop(&self) -> watch::Receiver<bool> {
        self.stop.clone()
    }

    pub fn spawn<E: std::error::Error + Send + Sync + 'static>(
        &mut self,
        what: &'static str,
        task: impl Future<Output = Result<(), E>> + Send + 'static,
    ) {
        self.tasks.push(tokio::spawn(async move {
            task.await.map_err(|e| AppError::new(what, e))
        }));
    }

    /// Publishes the store's commits to `config.topic` of `bus`.
    pub fn relay<E: Event>(
        &mut self,
        store: EventStore,
        bus: &Bus,
        config: RelayConfig,
    ) -> Result<(), AppError> {
        let relay = Relay::<E>::new(store, bus, config.clone())
            .map_err(|e| AppError::new("starting the relay", e))?;
        tracing::info!(topic = %config.topic, owner = relay.owner(), bus = ?bus, "relay starting");
        let stop = self.stop();
        self.spawn("relay", async move {
            relay.run(stop).await;
            Ok::<(), ServiceError>(())
        });
        Ok(())
    }

    /// Publishes the outbox of `db` to `config.topic` of `bus`.
    pub fn outbox_relay(
        &mut self,
        db: Db,
        bus: &Bus,
        config: super::outbox::RelayConfig,
    ) -> Result<(), AppError> {
        let relay = super::outbox::Relay::new(db, bus, config)
            .map_err(|e| AppError::new("starting the outbox relay", e))?;
        tracing::info!(bus = ?bus, "outbox relay starting");
        let stop = self.stop();
        self.spawn("outbox relay", async move {
            relay.run(stop).await;
            Ok::<(), ServiceError>(())
        });
        Ok(())
    }

    /// Projects the service's events into the read model `V`: from `bus` (the service's
    /// topic), or by tailing `store` when `args.events_from` says so; gaps are filled
    /// from `store` either way.
    pub fn event_handler<V: StateView>(
        &mut self,
        args: &RuntimeArgs,
        store: EventStore,
        db: Db,
        bus: Option<(Bus, HandlerConfig)>,
    ) {
        let projector = Projector::<V>::new(db).with_store(store.clone());
        let stop = self.stop();
        match bus {
            Some((bus, config)) if args.events_from == EventsFrom::Bus => {
                self.spawn(
                    "event handler",
                    run_event_handler(projector, bus, config, stop),
                );
            }
            _ => {
                let tailer = StoreTailer::new(store, projector, args.tail_config());
                self.spawn("store tailer", async move {
                    tailer.run(stop).await;
                    Ok::<(), ServiceError>(())
                });
            }
        }
    }

    /// Waits for every task (aborting them first when the server `failed`: nothing
    /// else would stop them), each for at most the shutdown timeout.
    pub async fn finish(self, failed: bool) {
        if failed {
            for task in &self.tasks {
                task.abort();
            }
        }
        for task in self.tasks {
            match tokio::time::timeout(self.shutdown_timeout, task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => tracing::error!(error = %e, "background task failed"),
                Ok(Err(e)) if e.is_cancelled() => {}
                Ok(Err(e)) => tracing::error!(error = %e, "background task panicked"),
                Err(_) => tracing::warn!("background task did not stop in time"),
            }
        }
    }
}

/// Runs `task` against the read model `V` and prints what it did; `Err` when parked
/// events are left after a repair.
pub async fn run_task<V: StateView>(
    task: &Task,
    store: &EventStore,
    db: &Db,
) -> Result<(), AppError> {
    match task {
        Task::Rebuild => {
            let r = rebuild::rebuild::<V>(store, db)
                .await
                .map_err(|e| AppError::new("rebuilding the read model", e))?;
            println!(
                "rebuilt the read model: {} events in {} commits, {} streams, up to position {}, in {:.3} s: {:.0} events/s",
                r.events,
                r.commits,
                r.streams,
                r.position,
                r.elapsed.as_secs_f64(),
                r.events_per_second()
            );
        }
        Task::Repair => {
            let (repaired, left) = Projector::<V>::new(db.clone())
                .with_store(store.clone())
                .repair()
                .await
                .map_err(|e| AppError::new("repairing the read model", e))?;
            println!("parked events: {repaired} applied, {left} still parked");
            if left > 0 {
                return Err(AppError::new(
                    "repair",
                    format!("{left} parked events could not be applied yet"),
                ));
            }
        }
    }
    Ok(())
}
