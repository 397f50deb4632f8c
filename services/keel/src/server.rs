//! What every service process shares: logs, health, reflection, shutdown.

#[cfg(feature = "postgres")]
use std::time::Duration;

use tonic_health::server::HealthReporter;

/// JSON logs to stdout (12-factor), filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .try_init();
}

/// Resolves on SIGTERM or Ctrl-C, so servers can drain and stop cleanly.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received");
}

/// The standard health service; callers mark each of their services serving.
pub fn health() -> (
    HealthReporter,
    tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>,
) {
    tonic_health::server::health_reporter()
}

/// Server reflection (v1) over the given encoded descriptor sets.
pub fn reflection(
    descriptor_sets: &[&'static [u8]],
) -> Result<
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
    tonic_reflection::server::Error,
> {
    let mut b = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
    for d in descriptor_sets {
        b = b.register_encoded_file_descriptor_set(d);
    }
    b.build_v1()
}

pub use crate::retry::retry_until;

/// Resolves once `stop` turns true, or once its sender is gone (nobody can ask any more).
pub async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// A stop flag that turns true on SIGTERM or Ctrl-C: what a service binary hands to its
/// library's `run`.
pub fn stop_on_signal() -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = tx.send(true);
    });
    rx
}

/// Binds the gRPC listener; the error names the address.
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<tonic::transport::server::TcpIncoming> {
    tonic::transport::server::TcpIncoming::bind(addr).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            format!("binding {addr}: {e}"),
        )
    })
}

/// Connects to PostgreSQL, waiting up to `startup_timeout` for it (a service started with
/// its database must not crash), then applies the service's generated migrations.
#[cfg(feature = "postgres")]
pub async fn postgres(
    url: &str,
    max_connections: u32,
    startup_timeout: Duration,
    migrator: &sqlx::migrate::Migrator,
) -> Result<sqlx::PgPool, sqlx::Error> {
    let pool = retry_until("database", startup_timeout, || {
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
    })
    .await?;
    migrator
        .run(&pool)
        .await
        .map_err(|e| sqlx::Error::Migrate(Box::new(e)))?;
    Ok(pool)
}

/// A gRPC server that already serves health (SERVING for each of `services` and for
/// "") and reflection over `descriptor_sets`; callers add their own services to it.
pub async fn grpc_router(
    services: &[&str],
    descriptor_sets: &[&'static [u8]],
) -> Result<tonic::transport::server::Router, tonic_reflection::server::Error> {
    Ok(grpc_router_with_health(services, descriptor_sets).await?.0)
}

/// [`grpc_router`], and the reporter of its health service (to report more statuses).
pub async fn grpc_router_with_health(
    services: &[&str],
    descriptor_sets: &[&'static [u8]],
) -> Result<
    (
        tonic::transport::server::Router,
        tonic_health::server::HealthReporter,
    ),
    tonic_reflection::server::Error,
> {
    let (health, health_service) = health();
    for name in services.iter().copied().chain([""]) {
        health
            .set_service_status(name, tonic_health::ServingStatus::Serving)
            .await;
    }
    let mut router = tonic::transport::Server::builder().add_service(health_service);
    if !descriptor_sets.is_empty() {
        router = router.add_service(reflection(descriptor_sets)?);
    }
    Ok((router, health))
}
