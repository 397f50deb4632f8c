//! The outbox relay of a CQS + ES service: publishes the outbox rows that commands
//! wrote in their transactions to the bus (Kafka, or the embedded log; see
//! [`crate::bus`]), in position order, then marks them published.
//!
//! - At least once: a row is marked only after the bus acknowledged it (Kafka: `acks=all`,
//!   idempotent producer; the log: its append committed). A crash between the
//!   acknowledgement and the mark re-sends the row on the next run: a duplicate on the
//!   wire, which consumers drop by (stream, version); never a loss.
//! - Order: rows are read `WHERE published_at IS NULL ORDER BY position` (no checkpoint
//!   that a late commit could fall behind), and commands append to the outbox under
//!   the service's append lock, so positions also become visible in order. A batch is
//!   published in order and only its acknowledged prefix is marked
//!   ([`crate::bus::Published::acknowledged`]).
//! - One publisher: the relay holds a [`Lease`] ([`Db::try_lease`]: on PostgreSQL a session
//!   advisory lock on a dedicated connection, on SQLite a lock in this process). A relay
//!   without it stands by and tries again each poll; on PostgreSQL the lease ends with its
//!   connection, so a crashed relay's lease passes to the next one.

use std::time::Duration;

use tokio::sync::watch;

use crate::ServiceError;
use crate::bus::{Bus, Outgoing, Publisher};
use crate::server::stopped;
use crate::sql::{self, Db};

pub use crate::sql::Lease;

fn failed(what: &str) -> impl Fn(sql::Error) -> ServiceError + '_ {
    move |e| ServiceError::Unavailable(format!("{what}: {e}"))
}

/// Positions marked per UPDATE (well under both dialects' limit on bound parameters).
const MARK_CHUNK: usize = 500;

/// How the relay runs.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// The topic the events go to (created at start on Kafka).
    pub topic: String,
    /// The relay's lease key in its database (one relay publishes at a time).
    pub lease_key: i64,
    /// Wait between polls when the outbox is drained (or while standing by).
    pub poll_interval: Duration,
    /// Rows published per round.
    pub batch_size: i64,
    /// How long the bus may take to acknowledge one record before it counts as failed.
    pub delivery_timeout: Duration,
    /// Partitions of the topic when the relay creates it (Kafka; the log has one).
    pub topic_partitions: i32,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            topic: String::new(),
            lease_key: 0x6f75_7462_6f78_5f72, // "outbox_r"
            poll_interval: Duration::from_millis(200),
            batch_size: 100,
            delivery_timeout: Duration::from_secs(30),
            topic_partitions: 3,
        }
    }
}

/// One outbox row waiting for the bus.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub position: i64,
    pub topic: String,
    pub message_key: String,
    pub payload: Vec<u8>,
}

/// Tries to take the relay lease `key` of `db`; `None` while another relay holds it.
pub async fn try_lease(db: &Db, key: i64) -> Result<Option<Lease>, ServiceError> {
    db.try_lease(key)
        .await
        .map_err(failed("taking the relay lease"))
}

/// Publishes the outbox of one database.
pub struct Relay {
    db: Db,
    bus: Bus,
    publisher: Publisher,
    config: RelayConfig,
}

impl Relay {
    pub fn new(db: Db, bus: &Bus, config: RelayConfig) -> Result<Relay, ServiceError> {
        if config.topic.is_empty() {
            return Err(ServiceError::Internal(
                "outbox relay without a topic".into(),
            ));
        }
        let publisher = bus
            .publisher(config.delivery_timeout)
            .map_err(|e| ServiceError::Internal(format!("creating the bus publisher: {e}")))?;
        Ok(Relay {
            db,
            bus: bus.clone(),
            publisher,
            config,
        })
    }

    pub fn config(&self) -> &RelayConfig {
        &self.config
    }

    /// Creates the events topic unless it exists (Kafka), so consumers can subscribe
    /// before the first event.
    pub async fn ensure_topic(&self) -> Result<(), ServiceError> {
        self.bus
            .ensure_topic(&self.config.topic, self.config.topic_partitions)
            .await
            .map_err(|e| {
                ServiceError::Unavailable(format!("creating topic {}: {e}", self.config.topic))
            })
    }

    /// The oldest unpublished rows, in position order.
    pub async fn pending(&self) -> Result<Vec<OutboxRow>, ServiceError> {
        let rows = sql::query(
            "SELECT position, topic, message_key, payload FROM outbox \
             WHERE published_at IS NULL ORDER BY position LIMIT $1",
        )
        .bind(self.config.batch_size)
        .fetch_all(&self.db)
        .await
        .map_err(failed("reading the outbox"))?;
        rows.iter()
            .map(|r| {
                Ok(OutboxRow {
                    position: r.i64("position")?,
                    topic: r.text("topic")?,
                    message_key: r.text("message_key")?,
                    payload: r.bytes("payload")?,
                })
            })
            .collect::<Result<_, sql::Error>>()
            .map_err(failed("decoding outbox rows"))
    }

    /// Publishes `rows` in order and waits for the acknowledgements. Returns the
    /// positions delivered, a prefix of `rows`, and the error that ended it early.
    pub async fn publish(&self, rows: &[OutboxRow]) -> (Vec<i64>, Option<ServiceError>) {
        let batch: Vec<Outgoing<'_>> = rows
            .iter()
            .map(|r| Outgoing {
                topic: &r.topic,
                key: r.message_key.as_bytes(),
                payload: &r.payload,
            })
            .collect();
        let published = self.publisher.publish(&batch).await;
        let acknowledged = published.acknowledged.min(rows.len());
        let delivered = rows[..acknowledged].iter().map(|r| r.position).collect();
        let failure = published.error.map(|e| {
            let at = rows
                .get(acknowledged)
                .map_or_else(|| "?".to_string(), |r| r.position.to_string());
            ServiceError::Unavailable(format!("delivering outbox position {at}: {e}"))
        });
        (delivered, failure)
    }

    /// Publishes the pending rows WITHOUT marking them: the first half of a round, and
    /// what a relay that crashes before its mark has done.
    pub async fn publish_pending(&self) -> Result<Vec<i64>, ServiceError> {
        let rows = self.pending().await?;
        match self.publish(&rows).await {
            (delivered, None) => Ok(delivered),
            (_, Some(e)) => Err(e),
        }
    }

    pub async fn mark_published(&self, positions: &[i64]) -> Result<(), ServiceError> {
        let now = chrono::Utc::now();
        for chunk in positions.chunks(MARK_CHUNK) {
            sql::query(format!(
                "UPDATE outbox SET published_at = $1 WHERE position IN ({})",
                sql::placeholders(2, chunk.len())
            ))
            .bind(now)
            .bind_all(chunk.iter().map(|p| sql::Arg::from(*p)))
            .execute(&self.db)
            .await
            .map_err(failed("marking outbox rows published"))?;
        }
        Ok(())
    }

    /// One round: publish the oldest pending rows, mark what the bus acknowledged.
    /// Returns how many rows were published.
    pub async fn run_once(&self) -> Result<usize, ServiceError> {
        let rows = self.pending().await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let (delivered, failure) = self.publish(&rows).await;
        self.mark_published(&delivered).await?;
        if let Some(e) = failure {
            return Err(ServiceError::Unavailable(format!(
                "{e} ({} of {} rows published)",
                delivered.len(),
                rows.len()
            )));
        }
        tracing::debug!(published = delivered.len(), "outbox rows published");
        Ok(delivered.len())
    }

    /// Runs until `shutdown` turns true (or its sender is gone): makes sure the topic
    /// exists, takes the lease (or stands by), publishes rounds while there is work,
    /// sleeps `poll_interval` when there is none.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        tokio::select! {
            r = tokio::time::timeout(self.config.delivery_timeout, self.ensure_topic()) => match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "relay: topic not ensured"),
                Err(_) => tracing::warn!("relay: topic not ensured in time"),
            },
            () = stopped(&mut shutdown) => {
                tracing::info!("relay stopped");
                return;
            }
        }
        let mut lease: Option<Lease> = None;
        let mut standing_by = false;
        let batch = usize::try_from(self.config.batch_size).unwrap_or(usize::MAX);
        while !*shutdown.borrow() {
            let mut busy = false;
            let held = match lease.as_mut() {
                Some(l) => Some(l.is_held().await),
                None => None,
            };
            match held {
                None => match try_lease(&self.db, self.config.lease_key).await {
                    Ok(Some(l)) => {
                        tracing::info!("relay lease acquired: publishing the outbox");
                        lease = Some(l);
                        standing_by = false;
                        busy = true;
                    }
                    Ok(None) => {
                        if !standing_by {
                            tracing::info!("another relay holds the lease: standing by");
                            standing_by = true;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "relay lease"),
                },
                Some(true) => {
                    let round = self.run_once();
                    tokio::pin!(round);
                    let outcome = tokio::select! {
                        r = &mut round => Some(r),
                        () = stopped(&mut shutdown) => {
                            // A round under way may finish for a bounded time; abandoned,
                            // what was delivered and not marked is sent again.
                            let _ = tokio::time::timeout(super::relay::STOP_GRACE, &mut round).await;
                            None
                        }
                    };
                    match outcome {
                        Some(Ok(n)) => busy = n >= batch,
                        Some(Err(e)) => tracing::warn!(error = %e, "relay round failed"),
                        None => break,
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
        tracing::info!("relay stopped");
    }
}
