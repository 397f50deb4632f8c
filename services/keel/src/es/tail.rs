//! Event delivery without a bus: the event handler tails the event store itself
//! (e.g. `cart-service --role event-handler --events-from store`).
//!
//! - **Same reading as the relay.** A [`PrefixReader`] reads the commits after the
//!   tailer's OWN checkpoint document (`checkpoints`, `_id` = `name`, default
//!   `projection`; the relay's is untouched) over a contiguous prefix of positions, with
//!   the relay's hole handling (wait for a raced insert, give a hole up after
//!   `gap_timeout` with the ERROR alert `projection_gap_skipped`).
//! - **At least once, applied once.** Each event goes through the idempotent
//!   [`Projection`] (one read-model transaction, applied only if it is the stream's next
//!   version). The checkpoint moves (`$max`) only after the read DB committed every
//!   event up to it, so a crash re-reads at most events the projection skips as
//!   covered; nothing is lost.
//! - **Order.** Positions grow with each stream's versions, so events reach the
//!   projection in version order. An event ahead of the read model (after a hole was
//!   given up, or the read database lost a commit) has its gap filled from the store,
//!   or is parked ([`Projection::project`]); it never stops the round.
//! - **Replicas.** No lease: several tailers with the same name are safe (the version
//!   check makes each event take effect once, the checkpoint cannot move back), only
//!   redundant.

use std::time::Duration;

use tokio::sync::watch;

use std::marker::PhantomData;

use super::relay::{Prefix, PrefixReader, Round};
use super::store::EventStore;
use super::{Event, Projected, Projection};
use crate::ServiceError;
use crate::server::stopped;

#[derive(Debug, Clone)]
pub struct TailConfig {
    /// Checkpoint name.
    pub name: String,
    pub poll_interval: Duration,
    /// Commits per round.
    pub batch_size: i64,
    pub gap_timeout: Duration,
    /// First wait after a failed round (doubles up to `max_backoff`).
    pub backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for TailConfig {
    fn default() -> TailConfig {
        TailConfig {
            name: "projection".into(),
            poll_interval: Duration::from_millis(100),
            batch_size: 500,
            gap_timeout: Duration::from_secs(10),
            backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// Projects the event store into the read model from its own checkpoint.
pub struct StoreTailer<E, P> {
    reader: PrefixReader,
    projector: P,
    config: TailConfig,
    events: PhantomData<fn() -> E>,
}

impl<E: Event, P: Projection<E>> StoreTailer<E, P> {
    pub fn new(store: EventStore, projector: P, config: TailConfig) -> StoreTailer<E, P> {
        StoreTailer {
            reader: PrefixReader::new(
                store,
                config.name.clone(),
                config.batch_size,
                config.gap_timeout,
                "projection_gap_skipped",
            ),
            projector,
            config,
            events: PhantomData,
        }
    }

    /// Projects one stored event (parked when it does not decode here).
    async fn project(&self, e: &super::RawEvent, source: &str) -> Result<Projected, ServiceError> {
        match e.decode::<E>() {
            Ok(event) => self.projector.project(&e.meta, &event, source).await,
            Err(reason) => {
                let reason = reason.to_string();
                self.projector
                    .park(Some(&e.meta), source, &reason, &[])
                    .await?;
                Ok(Projected::Parked)
            }
        }
    }

    /// One round: apply the contiguous prefix after the checkpoint, then move the
    /// checkpoint over the commits whose events all committed in the read DB.
    pub async fn run_once(&mut self) -> Result<Round, ServiceError> {
        let Prefix {
            checkpoint,
            commits,
            hole,
        } = self.reader.read().await?;
        let mut round = Round {
            checkpoint,
            ..Round::default()
        };
        let mut done = None;
        let mut failure = None;
        'commits: for c in &commits {
            let source = format!("event store position {}", c.position);
            for e in &c.events {
                if let Err(err) = self.project(e, &source).await {
                    failure = Some(format!(
                        "applying stream {} version {}: {err}",
                        e.meta.stream_id, e.meta.version
                    ));
                    break 'commits;
                }
            }
            done = Some(c.position);
            round.commits += 1;
            round.events += c.events.len();
        }
        if let Some(position) = done {
            self.reader.save(position).await?;
            round.checkpoint = position;
        }
        if let Some(e) = failure {
            return Err(ServiceError::Unavailable(format!(
                "{e} ({} of {} commits projected)",
                round.commits,
                commits.len()
            )));
        }
        let (waiting_for, skipped_to) = self.reader.settle_hole(hole).await?;
        round.waiting_for = waiting_for;
        if let Some(p) = skipped_to {
            round.checkpoint = p;
        }
        for late in self.reader.late_commits().await? {
            let source = format!("event store position {} (late)", late.position);
            for e in &late.events {
                self.project(e, &source).await?;
            }
            self.reader.late_done(late.position).await?;
            round.commits += 1;
            round.events += late.events.len();
        }
        Ok(round)
    }

    /// Runs until `shutdown` turns true: round, sleep when idle, back off on failures.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(
            checkpoint = self.reader.name(),
            "event handler tailing the event store"
        );
        let batch = usize::try_from(self.config.batch_size).unwrap_or(usize::MAX);
        let mut backoff = self.config.backoff;
        while !*shutdown.borrow() {
            let r = tokio::select! {
                r = self.run_once() => r,
                () = stopped(&mut shutdown) => break,
            };
            let wait = match r {
                Ok(round) if round.commits >= batch => None,
                Ok(_) => {
                    backoff = self.config.backoff;
                    Some(self.config.poll_interval)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "projection round failed: retrying");
                    let wait = backoff;
                    backoff = (backoff * 2).min(self.config.max_backoff);
                    Some(wait)
                }
            };
            if let Some(wait) = wait {
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = stopped(&mut shutdown) => break,
                }
            }
        }
        tracing::info!("event handler stopped");
    }
}
