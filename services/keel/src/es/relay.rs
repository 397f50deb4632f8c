//! The relay: tails the event store by position and publishes every event to the bus
//! (`crate::bus`: Kafka, or the embedded log; the service's topic, key = stream id,
//! value = protobuf `pb::CartEvent`), then stores its checkpoint. Nothing is published
//! from the command path.
//!
//! - **At least once, in order.** A round reads the commits after the checkpoint in
//!   position order, publishes all their events (Kafka: an idempotent `acks=all`
//!   producer), awaits every acknowledgement, and only then moves the checkpoint (`$max`) to the last
//!   commit whose events were all acknowledged. A crash in between re-sends: duplicates
//!   on the wire, which the event handler skips by (stream, version); never a loss.
//!   Positions grow with each stream's versions, so each stream's events reach its
//!   partition in version order.
//! - **Never skip a late commit.** The checkpoint only moves over a CONTIGUOUS prefix
//!   of positions (`checkpoint + 1, + 2, …`). A read that shows `N + 1` without `N`
//!   stops the round at `N - 1`. The store's writers keep the stored positions exactly
//!   `1..=max` (a position exists only once its insert succeeded, `N + 1` is only tried
//!   after `N` was seen, nothing is deleted; see `store`), so such a hole is a read that
//!   raced an insert: the relay looks `N` up by id at once and, if it is still absent,
//!   re-reads on the next poll. Only a hole that outlives `gap_timeout` (which the write
//!   protocol cannot produce: it means a document was removed by hand or a replica
//!   rolled back) is given up: an ERROR alert, the position recorded under `skipped` in
//!   the checkpoint document, and the relay moves on rather than stall forever.
//! - **One active relay.** A lease document in `leases` (`_id` = relay name, `owner`,
//!   `expires_at`) is taken or renewed before every round; a relay that does not hold
//!   it stands by and retries each poll. A relay that dies stops renewing and its lease
//!   expires after `lease_ttl`. Two relays overlapping (a paused one resuming) only
//!   duplicate messages: the checkpoint cannot move back.

use std::time::{Duration, Instant};

use std::marker::PhantomData;

use super::Event;
use crate::ServiceError;
use crate::bus::{Bus, Outgoing, Publisher};
use crate::server::stopped;
use tokio::sync::watch;

use super::store::{Commit, EventStore};

#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub topic: String,
    /// Lease and checkpoint name.
    pub name: String,
    pub poll_interval: Duration,
    /// Commits per round.
    pub batch_size: i64,
    pub lease_ttl: Duration,
    /// How long a hole in the positions may last before it is given up (see above).
    pub gap_timeout: Duration,
    pub delivery_timeout: Duration,
}

impl Default for RelayConfig {
    fn default() -> RelayConfig {
        RelayConfig {
            topic: String::new(),
            name: "relay".into(),
            poll_interval: Duration::from_millis(100),
            batch_size: 500,
            lease_ttl: Duration::from_secs(5),
            gap_timeout: Duration::from_secs(10),
            delivery_timeout: Duration::from_secs(30),
        }
    }
}

/// How long a stopping relay lets a round under way finish.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// What a round did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Round {
    /// Commits whose events were all delivered.
    pub commits: usize,
    pub events: usize,
    /// The checkpoint after the round.
    pub checkpoint: i64,
    /// A hole stopped the round at this position.
    pub waiting_for: Option<i64>,
}

/// Publishes the store of one service, whose events are `E`.
pub struct Relay<E> {
    store: EventStore,
    publisher: Publisher,
    config: RelayConfig,
    owner: String,
    reader: PrefixReader,
    events: PhantomData<fn() -> E>,
}

/// Reads the event store after a named checkpoint over a CONTIGUOUS prefix of positions
/// and handles holes (see the module docs). Shared by the relay and the store-tailing
/// event handler (`tail`): each has its own checkpoint document.
pub struct PrefixReader {
    store: EventStore,
    name: String,
    batch_size: i64,
    gap_timeout: Duration,
    /// `alert` field of the ERROR line when a hole is given up.
    alert: &'static str,
    /// The hole the reader is waiting on, and since when.
    gap: Option<(i64, Instant)>,
    /// Positions given up earlier (loaded once, then kept here): re-checked every round
    /// so that a commit that appears late is still handled.
    given_up: Option<Vec<i64>>,
}

/// The contiguous prefix after a checkpoint.
#[derive(Debug, Clone)]
pub struct Prefix {
    pub checkpoint: i64,
    /// `checkpoint + 1, + 2, …` without holes.
    pub commits: Vec<Commit>,
    /// The first missing position, when a later commit was read.
    pub hole: Option<i64>,
}

impl PrefixReader {
    pub fn new(
        store: EventStore,
        name: impl Into<String>,
        batch_size: i64,
        gap_timeout: Duration,
        alert: &'static str,
    ) -> PrefixReader {
        PrefixReader {
            store,
            name: name.into(),
            batch_size,
            gap_timeout,
            alert,
            gap: None,
            given_up: None,
        }
    }

    /// Commits at positions given up earlier that are readable now: handle them, then
    /// call [`PrefixReader::late_done`].
    pub async fn late_commits(&mut self) -> Result<Vec<Commit>, ServiceError> {
        if self.given_up.is_none() {
            self.given_up = Some(self.store.skipped(&self.name).await?);
        }
        let mut late = Vec::new();
        for &p in self.given_up.iter().flatten() {
            if let Some(c) = self.store.at(p).await? {
                late.push(c);
            }
        }
        Ok(late)
    }

    /// A late commit was handled: it is no longer missing.
    pub async fn late_done(&mut self, position: i64) -> Result<(), ServiceError> {
        self.store.resolve_skipped(&self.name, position).await?;
        tracing::warn!(reader = %self.name, position, "a position given up earlier appeared and was handled");
        if let Some(given_up) = &mut self.given_up {
            given_up.retain(|&p| p != position);
        }
        Ok(())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The stored checkpoint and the contiguous prefix of commits after it.
    pub async fn read(&self) -> Result<Prefix, ServiceError> {
        let checkpoint = self.store.checkpoint(&self.name).await?;
        let mut commits = self.store.read_after(checkpoint, self.batch_size).await?;
        let hole = (checkpoint + 1..)
            .zip(commits.iter())
            .position(|(next, c)| c.position != next);
        let hole = hole.map(|i| {
            commits.truncate(i);
            checkpoint + 1 + i as i64
        });
        Ok(Prefix {
            checkpoint,
            commits,
            hole,
        })
    }

    /// Moves the checkpoint forward (never back) to `position`: call it only once every
    /// commit up to `position` was fully handled.
    pub async fn save(&self, position: i64) -> Result<(), ServiceError> {
        self.store.save_checkpoint(&self.name, position).await
    }

    /// After the whole prefix was handled and its checkpoint saved: the hole that
    /// stopped it, if any. Returns the position still waited for, and the new
    /// checkpoint when a hole outlived `gap_timeout` and was given up.
    pub async fn settle_hole(
        &mut self,
        hole: Option<i64>,
    ) -> Result<(Option<i64>, Option<i64>), ServiceError> {
        let mut waiting_for = None;
        let mut skipped_to = None;
        self.gap = match (hole, self.gap) {
            (None, _) => None,
            (Some(missing), _) if self.store.at(missing).await?.is_some() => {
                // The read raced an insert; the next round picks it up.
                None
            }
            (Some(missing), Some((since_pos, since))) if since_pos == missing => {
                if since.elapsed() >= self.gap_timeout {
                    tracing::error!(
                        alert = self.alert,
                        reader = %self.name,
                        position = missing,
                        waited_ms = since.elapsed().as_millis() as u64,
                        "ALERT: position {missing} is still missing while later commits exist; \
                         skipping it (recorded under `skipped` in the checkpoint)"
                    );
                    self.store.record_skipped(&self.name, missing).await?;
                    self.store.save_checkpoint(&self.name, missing).await?;
                    self.given_up.get_or_insert_with(Vec::new).push(missing);
                    skipped_to = Some(missing);
                    None
                } else {
                    waiting_for = Some(missing);
                    Some((since_pos, since))
                }
            }
            (Some(missing), _) => {
                tracing::warn!(
                    reader = %self.name,
                    position = missing,
                    "hole in the commit positions: waiting for it"
                );
                waiting_for = Some(missing);
                Some((missing, Instant::now()))
            }
        };
        Ok((waiting_for, skipped_to))
    }
}

impl<E: Event> Relay<E> {
    /// A relay from `store` to `config.topic` on `bus` (Kafka: an idempotent `acks=all`
    /// producer; the embedded log: durable appends).
    pub fn new(
        store: EventStore,
        bus: &Bus,
        config: RelayConfig,
    ) -> Result<Relay<E>, ServiceError> {
        Ok(Relay {
            publisher: bus
                .publisher(config.delivery_timeout)
                .map_err(|e| ServiceError::Internal(format!("bus publisher: {e}")))?,
            reader: PrefixReader::new(
                store.clone(),
                config.name.clone(),
                config.batch_size,
                config.gap_timeout,
                "relay_gap_skipped",
            ),
            store,
            owner: format!("{}-{}", std::process::id(), uuid::Uuid::now_v7()),
            config,
            events: PhantomData,
        })
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Takes or renews the lease.
    pub async fn lease(&self) -> Result<bool, ServiceError> {
        self.store
            .try_lease(&self.config.name, &self.owner, self.config.lease_ttl)
            .await
    }

    /// One round (the caller holds the lease): publish the contiguous prefix after the
    /// checkpoint, then move the checkpoint over what Kafka acknowledged.
    pub async fn run_once(&mut self) -> Result<Round, ServiceError> {
        let Prefix {
            checkpoint,
            commits,
            hole,
        } = self.reader.read().await?;
        let prefix: Vec<&Commit> = commits.iter().collect();
        let (delivered, failure) = self.publish(&prefix).await;
        let mut round = Round {
            commits: delivered.len(),
            events: delivered.iter().map(|c| c.events.len()).sum(),
            checkpoint,
            waiting_for: None,
        };
        if let Some(last) = delivered.last() {
            self.reader.save(last.position).await?;
            round.checkpoint = last.position;
        }
        if let Some(e) = failure {
            return Err(ServiceError::Unavailable(format!(
                "{e} ({} of {} commits published)",
                delivered.len(),
                prefix.len()
            )));
        }
        let (waiting_for, skipped_to) = self.reader.settle_hole(hole).await?;
        round.waiting_for = waiting_for;
        if let Some(p) = skipped_to {
            round.checkpoint = p;
        }
        for late in self.reader.late_commits().await? {
            if let (_, Some(e)) = self.publish(&[&late]).await {
                return Err(ServiceError::Unavailable(format!(
                    "publishing a late commit: {e}"
                )));
            }
            self.reader.late_done(late.position).await?;
            round.commits += 1;
            round.events += late.events.len();
        }
        Ok(round)
    }

    /// Publishes every event of `commits` in order and awaits the acknowledgements.
    /// Returns the prefix of commits whose events were all acknowledged, and what
    /// stopped it.
    async fn publish<'a>(&self, commits: &[&'a Commit]) -> (Vec<&'a Commit>, Option<String>) {
        let keys: Vec<String> = commits.iter().map(|c| c.stream_id.to_string()).collect();
        let mut payloads = Vec::new();
        // (commit index) of every message, in order.
        let mut owner = Vec::new();
        let mut commits = commits;
        for (i, c) in commits.iter().enumerate() {
            let wire: Result<Vec<Vec<u8>>, _> = c.events.iter().map(|e| e.to_wire::<E>()).collect();
            match wire {
                Ok(bytes) => {
                    owner.extend(std::iter::repeat_n(i, bytes.len()));
                    payloads.extend(bytes);
                }
                Err(err) => {
                    // Written by a newer build (a schema version this one does not know):
                    // stop before it and alert, rather than publish past it.
                    tracing::error!(alert = "event_undecodable", position = c.position,
                        error = %err, "ALERT: a stored event does not decode here: not published");
                    commits = &commits[..i];
                    break;
                }
            }
        }
        let batch: Vec<Outgoing<'_>> = payloads
            .iter()
            .zip(&owner)
            .map(|(payload, &i)| Outgoing {
                topic: &self.config.topic,
                key: keys[i].as_bytes(),
                payload,
            })
            .collect();
        let published = self.publisher.publish(&batch).await;
        // The first commit not fully acknowledged; all before it were.
        let first_failed = owner
            .get(published.acknowledged)
            .copied()
            .unwrap_or(commits.len());
        let failure = published.error.map(|e| {
            format!(
                "publishing position {}: {e}",
                commits
                    .get(first_failed)
                    .map(|c| c.position)
                    .unwrap_or_default()
            )
        });
        (commits[..first_failed].to_vec(), failure)
    }

    /// Runs until `shutdown` turns true: lease, round, sleep when idle. A round under way
    /// when `shutdown` turns true gets up to [`STOP_GRACE`] to finish.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut holding = false;
        let batch = usize::try_from(self.config.batch_size).unwrap_or(usize::MAX);
        while !*shutdown.borrow() {
            let mut busy = false;
            match self.lease().await {
                Ok(true) => {
                    if !holding {
                        tracing::info!(owner = %self.owner, "relay lease acquired: publishing");
                        holding = true;
                    }
                    let round = self.run_once();
                    tokio::pin!(round);
                    let outcome = tokio::select! {
                        r = &mut round => Some(r),
                        () = stopped(&mut shutdown) => {
                            // A round in flight may finish (and save its checkpoint) for a
                            // bounded time: cut short after Kafka acknowledged, it would
                            // publish those events again after a restart.
                            let _ = tokio::time::timeout(STOP_GRACE, &mut round).await;
                            None
                        }
                    };
                    match outcome {
                        Some(Ok(round)) => busy = round.commits >= batch,
                        Some(Err(e)) => tracing::warn!(error = %e, "relay round failed"),
                        None => break,
                    }
                }
                Ok(false) => {
                    if holding {
                        tracing::warn!("relay lease lost: standing by");
                    } else {
                        tracing::debug!("another relay holds the lease: standing by");
                    }
                    holding = false;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "relay lease");
                    holding = false;
                }
            }
            if !busy {
                tokio::select! {
                    () = tokio::time::sleep(self.config.poll_interval) => {}
                    () = stopped(&mut shutdown) => break,
                }
            }
        }
        if holding {
            let _ = self
                .store
                .release_lease(&self.config.name, &self.owner)
                .await;
        }
        tracing::info!("relay stopped");
    }
}
