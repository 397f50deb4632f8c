//! The outbox relay: publishes the outbox rows that commands wrote in their transactions
//! to Kafka, in position order, then marks them published.
//!
//! - At least once: a row is marked only after Kafka acknowledged it (`acks=all`,
//!   idempotent producer). A crash between the acknowledgement and the mark re-sends
//!   the row on the next run: a duplicate on the wire, which consumers drop by
//!   (stream, version); never a loss.
//! - Order: rows are read `WHERE published_at IS NULL ORDER BY position` (no checkpoint
//!   that a late commit could fall behind), and commands append to the outbox under
//!   [`crate::store::OUTBOX_APPEND_LOCK`], so positions also become visible in order.
//!   Within a batch every record is queued before any delivery is awaited; the
//!   idempotent producer keeps them in order per partition, and only the prefix up to
//!   the first failed delivery is marked.
//! - One publisher: [`Lease`] is a session advisory lock on a dedicated connection. A
//!   relay without it stands by and tries again each poll; the lease ends with the
//!   connection, so a crashed relay's lease passes to the next one.

use std::time::Duration;

use anyhow::Context;
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::watch;

/// Session advisory lock key of the relay lease (per database).
pub const RELAY_LEASE_LOCK: i64 = 0x7573_6572_5f72_6c79; // "user_rly"

/// How the relay runs.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Kafka bootstrap servers, `host:port[,host:port]`.
    pub brokers: String,
    /// Wait between polls when the outbox is drained (or while standing by).
    pub poll_interval: Duration,
    /// Rows published per round.
    pub batch_size: i64,
    /// How long Kafka may take to acknowledge one record before it counts as failed.
    pub delivery_timeout: Duration,
}

impl RelayConfig {
    pub fn new(brokers: impl Into<String>) -> Self {
        RelayConfig {
            brokers: brokers.into(),
            poll_interval: Duration::from_millis(200),
            batch_size: 100,
            delivery_timeout: Duration::from_secs(30),
        }
    }
}

/// One outbox row waiting for Kafka.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxRow {
    pub position: i64,
    pub topic: String,
    pub message_key: String,
    pub payload: Vec<u8>,
}

/// Publishes the outbox of one database.
pub struct Relay {
    pool: PgPool,
    producer: FutureProducer,
    config: RelayConfig,
}

impl Relay {
    pub fn new(pool: PgPool, config: RelayConfig) -> anyhow::Result<Relay> {
        let timeout_ms = config.delivery_timeout.as_millis().max(1).to_string();
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &config.brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("message.timeout.ms", &timeout_ms)
            .create()
            .context("creating the Kafka producer")?;
        Ok(Relay {
            pool,
            producer,
            config,
        })
    }

    pub fn config(&self) -> &RelayConfig {
        &self.config
    }

    /// The oldest unpublished rows, in position order.
    pub async fn pending(&self) -> anyhow::Result<Vec<OutboxRow>> {
        sqlx::query_as(
            "SELECT position, topic, message_key, payload FROM outbox \
             WHERE published_at IS NULL ORDER BY position LIMIT $1",
        )
        .bind(self.config.batch_size)
        .fetch_all(&self.pool)
        .await
        .context("reading the outbox")
    }

    /// Produces `rows` in order and waits for Kafka's acknowledgements. Returns the
    /// positions delivered, a prefix of `rows`, and the error that ended it early.
    pub async fn publish(&self, rows: &[OutboxRow]) -> (Vec<i64>, Option<anyhow::Error>) {
        let mut in_flight = Vec::with_capacity(rows.len());
        let mut queue_failure = None;
        for row in rows {
            let record = FutureRecord::to(&row.topic)
                .key(row.message_key.as_bytes())
                .payload(&row.payload);
            match self.producer.send_result(record) {
                Ok(delivery) => in_flight.push((row.position, delivery)),
                Err((e, _)) => {
                    queue_failure = Some(anyhow::anyhow!(
                        "queueing outbox position {}: {e}",
                        row.position
                    ));
                    break;
                }
            }
        }
        let mut delivered = Vec::with_capacity(in_flight.len());
        let mut failure = None;
        for (position, delivery) in in_flight {
            match delivery.await {
                Ok(Ok(_)) if failure.is_none() => delivered.push(position),
                // Delivered, but after a record that was not: re-sent next round.
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => {
                    failure.get_or_insert_with(|| {
                        anyhow::anyhow!("delivering outbox position {position}: {e}")
                    });
                }
                Err(_) => {
                    failure.get_or_insert_with(|| {
                        anyhow::anyhow!("delivering outbox position {position}: producer gone")
                    });
                }
            }
        }
        (delivered, failure.or(queue_failure))
    }

    /// Publishes the pending rows WITHOUT marking them: the first half of a round, and
    /// what a relay that crashes before its mark has done.
    pub async fn publish_pending(&self) -> anyhow::Result<Vec<i64>> {
        let rows = self.pending().await?;
        match self.publish(&rows).await {
            (delivered, None) => Ok(delivered),
            (_, Some(e)) => Err(e),
        }
    }

    pub async fn mark_published(&self, positions: &[i64]) -> anyhow::Result<()> {
        if positions.is_empty() {
            return Ok(());
        }
        sqlx::query("UPDATE outbox SET published_at = now() WHERE position = ANY($1)")
            .bind(positions)
            .execute(&self.pool)
            .await
            .context("marking outbox rows published")?;
        Ok(())
    }

    /// One round: publish the oldest pending rows, mark what Kafka acknowledged.
    /// Returns how many rows were published.
    pub async fn run_once(&self) -> anyhow::Result<usize> {
        let rows = self.pending().await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let (delivered, failure) = self.publish(&rows).await;
        self.mark_published(&delivered).await?;
        if let Some(e) = failure {
            return Err(e.context(format!(
                "{} of {} rows published",
                delivered.len(),
                rows.len()
            )));
        }
        tracing::debug!(published = delivered.len(), "outbox rows published");
        Ok(delivered.len())
    }

    /// Runs until `shutdown` turns true: takes the lease (or stands by), publishes
    /// rounds while there is work, sleeps `poll_interval` when there is none.
    pub async fn run(self, database_url: String, mut shutdown: watch::Receiver<bool>) {
        let mut lease: Option<Lease> = None;
        // While another relay holds the lease: the connection we retry on.
        let mut standby: Option<PgConnection> = None;
        let mut standing_by = false;
        let batch = usize::try_from(self.config.batch_size).unwrap_or(usize::MAX);
        while !*shutdown.borrow() {
            let mut busy = false;
            let held = match lease.as_mut() {
                Some(l) => Some(l.is_held().await),
                None => None,
            };
            match held {
                None => {
                    let conn = match standby.take() {
                        Some(c) => Ok(c),
                        None => PgConnection::connect(&database_url)
                            .await
                            .context("connecting for the relay lease"),
                    };
                    match conn.map(Lease::try_take) {
                        Ok(attempt) => match attempt.await {
                            Ok(Ok(l)) => {
                                tracing::info!("relay lease acquired: publishing the outbox");
                                lease = Some(l);
                                standing_by = false;
                                busy = true;
                            }
                            Ok(Err(conn)) => {
                                if !standing_by {
                                    tracing::info!("another relay holds the lease: standing by");
                                    standing_by = true;
                                }
                                standby = Some(conn);
                            }
                            Err(e) => tracing::warn!(error = %format!("{e:#}"), "relay lease"),
                        },
                        Err(e) => tracing::warn!(error = %format!("{e:#}"), "relay lease"),
                    }
                }
                Some(true) => {
                    tokio::select! {
                        r = self.run_once() => match r {
                            Ok(n) => busy = n >= batch,
                            Err(e) => tracing::warn!(error = %format!("{e:#}"), "relay round failed"),
                        },
                        // Abandoned mid-round: what was delivered and not marked is sent again.
                        () = stopped(&mut shutdown) => break,
                    }
                }
                Some(false) => {
                    tracing::warn!("relay lease lost (its connection failed)");
                    lease = None;
                }
            }
            if !busy {
                tokio::select! {
                    () = tokio::time::sleep(self.config.poll_interval) => {}
                    () = stopped(&mut shutdown) => break,
                }
            }
        }
        if let Some(l) = lease {
            l.release().await;
        }
        if let Some(c) = standby {
            let _ = c.close().await;
        }
        tracing::info!("relay stopped");
    }
}

/// Resolves once shutdown is asked for, or its sender is gone.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// The right to publish: `pg_try_advisory_lock` held by one session.
pub struct Lease {
    conn: PgConnection,
}

impl Lease {
    /// Connects and tries the lock; `None` when another session holds it.
    pub async fn try_acquire(database_url: &str) -> anyhow::Result<Option<Lease>> {
        let conn = PgConnection::connect(database_url)
            .await
            .context("connecting for the relay lease")?;
        match Lease::try_take(conn).await? {
            Ok(lease) => Ok(Some(lease)),
            Err(conn) => {
                let _ = conn.close().await;
                Ok(None)
            }
        }
    }

    /// Tries the lock on `conn`; gives the connection back when another session holds
    /// it, so a relay standing by polls without reconnecting.
    pub async fn try_take(mut conn: PgConnection) -> anyhow::Result<Result<Lease, PgConnection>> {
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(RELAY_LEASE_LOCK)
            .fetch_one(&mut conn)
            .await
            .context("taking the relay lease")?;
        Ok(if got { Ok(Lease { conn }) } else { Err(conn) })
    }

    /// Whether the session that holds the lock is still there.
    pub async fn is_held(&mut self) -> bool {
        sqlx::query("SELECT 1")
            .execute(&mut self.conn)
            .await
            .is_ok()
    }

    /// Unlocks and disconnects (disconnecting alone would release it too).
    pub async fn release(mut self) {
        let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(RELAY_LEASE_LOCK)
            .execute(&mut self.conn)
            .await;
        let _ = self.conn.close().await;
    }
}
