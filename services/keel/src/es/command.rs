//! The command side, written once: load a stream and fold it, decide, append one commit
//! with optimistic concurrency, answer retries from their first commit.
//!
//! - The commit id derives from the caller's idempotency key (and the command's name
//!   and stream); without a key every call is an attempt of its own. A commit id found
//!   in the stream is a retry: its first result, never a second effect or a conflict.
//! - A command without an expected version that loses a race to another writer is
//!   decided again on the newer state (up to `conflict_retries` times, with a jittered
//!   pause); with an expected version, the conflict is the caller's (ABORTED).
//! - [`Checks`] run after the decision and before the append, for what the aggregate
//!   cannot know by itself (another service's data); they see the state decided on.

use std::marker::PhantomData;
use std::time::Duration;

use chrono::{SubsecRound, Utc};
use uuid::Uuid;

use super::store::{Appended, Commit, EventStore, NewCommit};
use super::{Decider, EventMeta, RawEvent};
use crate::{RequestContext, ServiceError};

/// What a command did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Executed {
    pub stream_id: Uuid,
    /// The stream's version after the command.
    pub version: i64,
    /// Where its commit was stored; `None` when it emitted nothing.
    pub position: Option<i64>,
    /// The commit id was stored before: this is the first attempt's result.
    pub duplicate: bool,
}

/// What must hold before a decided command is appended, beyond the aggregate's own
/// rules (e.g. that a referenced product exists).
pub trait Checks<D: Decider>: Send + Sync + 'static {
    fn check(
        &self,
        ctx: &RequestContext,
        state: &D::State,
        command: &D::Command,
    ) -> impl std::future::Future<Output = Result<(), ServiceError>> + Send;
}

/// No checks beyond the aggregate's.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoChecks;

impl<D: Decider> Checks<D> for NoChecks {
    async fn check(
        &self,
        _ctx: &RequestContext,
        _state: &D::State,
        _command: &D::Command,
    ) -> Result<(), ServiceError> {
        Ok(())
    }
}

/// Both checks, `A` first.
impl<D: Decider, A: Checks<D>, B: Checks<D>> Checks<D> for (A, B) {
    async fn check(
        &self,
        ctx: &RequestContext,
        state: &D::State,
        command: &D::Command,
    ) -> Result<(), ServiceError> {
        self.0.check(ctx, state, command).await?;
        self.1.check(ctx, state, command).await
    }
}

/// How long to wait before deciding again after losing a race: growing with the
/// attempt, jittered so that the writers that collided spread out.
pub fn conflict_backoff(attempt: u32) -> Duration {
    let cap_us = 200u64 << attempt.min(8);
    let jitter = (Uuid::new_v4().as_u128() % u128::from(cap_us.max(1))) as u64;
    Duration::from_micros(jitter)
}

/// The commit id of `command` on `stream_id`: derived from the caller's idempotency key
/// (scoped by service, command and stream), or new when there is none.
pub fn commit_id<D: Decider>(stream_id: Uuid, command: &D::Command, key: Option<&str>) -> Uuid {
    let scope = format!("{}.{}/{stream_id}", D::SERVICE, D::command_name(command));
    crate::idempotency::attempt_id(&scope, key)
}

/// The stream `command` addresses: the one its input names, else a new one, its id
/// derived from the caller's idempotency key (so that a retry meets its first attempt).
pub fn stream_of<D: Decider>(command: &D::Command, key: Option<&str>) -> Uuid {
    D::stream_id(command).unwrap_or_else(|| {
        let scope = format!("{}.{}", D::SERVICE, D::command_name(command));
        crate::idempotency::attempt_id(&scope, key)
    })
}

/// Runs `attempt` again after a conflict, up to `retries` times with
/// [`conflict_backoff`], unless the caller named an expected version (then the conflict
/// is the caller's).
pub async fn decide_again<T, F, Fut>(
    expected_version: Option<i64>,
    retries: u32,
    mut attempt: F,
) -> Result<T, ServiceError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ServiceError>>,
{
    let retries = if expected_version.is_some() {
        0
    } else {
        retries
    };
    let mut tried = 0;
    loop {
        match attempt().await {
            Err(ServiceError::Conflict(_)) if tried < retries => {
                tried += 1;
                tokio::time::sleep(conflict_backoff(tried)).await;
            }
            other => return other,
        }
    }
}

/// The state and version of one stream of `D`, folded from `store`, with its commits.
pub async fn load<D: Decider>(
    store: &EventStore,
    stream_id: Uuid,
) -> Result<(D::State, i64, Vec<Commit>), ServiceError> {
    let commits = store.load(stream_id).await?;
    let mut state = D::State::default();
    let mut version = 0;
    for c in &commits {
        for e in &c.events {
            if e.meta.version != version + 1 {
                return Err(ServiceError::Internal(format!(
                    "{} {stream_id}: version {} follows {version}",
                    D::SERVICE,
                    e.meta.version
                )));
            }
            D::apply(&mut state, &e.decode()?, &e.meta);
            version = e.meta.version;
        }
    }
    Ok((state, version, commits))
}

/// Runs commands of the decider `D` against an event store.
pub struct Executor<D, C = NoChecks> {
    store: EventStore,
    checks: C,
    conflict_retries: u32,
    decider: PhantomData<fn() -> D>,
}

impl<D, C: Clone> Clone for Executor<D, C> {
    fn clone(&self) -> Self {
        Executor {
            store: self.store.clone(),
            checks: self.checks.clone(),
            conflict_retries: self.conflict_retries,
            decider: PhantomData,
        }
    }
}

impl<D: Decider, C: Checks<D>> Executor<D, C> {
    pub fn new(store: EventStore, checks: C) -> Executor<D, C> {
        Executor {
            store,
            checks,
            conflict_retries: 64,
            decider: PhantomData,
        }
    }

    pub fn with_conflict_retries(mut self, retries: u32) -> Executor<D, C> {
        self.conflict_retries = retries;
        self
    }

    pub fn store(&self) -> &EventStore {
        &self.store
    }

    /// The state and version of one stream, folded from the store, with its commits.
    pub async fn load(
        &self,
        stream_id: Uuid,
    ) -> Result<(D::State, i64, Vec<Commit>), ServiceError> {
        load::<D>(&self.store, stream_id).await
    }

    /// Runs `command` under the idempotency key `key`, if any (see the module docs).
    pub async fn execute(
        &self,
        ctx: &RequestContext,
        key: Option<&str>,
        expected_version: Option<i64>,
        command: &D::Command,
    ) -> Result<Executed, ServiceError> {
        decide_again(expected_version, self.conflict_retries, || {
            self.execute_once(ctx, key, expected_version, command)
        })
        .await
    }

    async fn execute_once(
        &self,
        ctx: &RequestContext,
        key: Option<&str>,
        expected_version: Option<i64>,
        command: &D::Command,
    ) -> Result<Executed, ServiceError> {
        let stream_id = stream_of::<D>(command, key);
        let commit_id = commit_id::<D>(stream_id, command, key);
        let (state, version, commits) = self.load(stream_id).await?;
        if let Some(first) = commits.iter().find(|c| c.commit_id == commit_id) {
            return Ok(Executed {
                stream_id,
                version: first.rev_to,
                position: Some(first.position),
                duplicate: true,
            });
        }
        if let Some(expected) = expected_version
            && expected != version
        {
            return Err(ServiceError::Conflict(format!(
                "{} {stream_id} is at version {version}, expected {expected}",
                D::SERVICE
            )));
        }
        let new_events = D::decide(&state, command)?;
        if new_events.is_empty() {
            return Ok(Executed {
                stream_id,
                version,
                position: None,
                duplicate: false,
            });
        }
        self.checks.check(ctx, &state, command).await?;
        // The stores keep milliseconds; truncate so the envelope equals what is stored.
        let occurred_at = Utc::now().trunc_subsecs(3);
        let events = new_events
            .iter()
            .zip(version + 1..)
            .map(|(event, v)| {
                let meta = EventMeta {
                    event_id: Uuid::now_v7(),
                    stream_id,
                    version: v,
                    occurred_at,
                    correlation_id: ctx.correlation_id.clone(),
                    causation_id: ctx.request_id.clone(),
                };
                RawEvent::encode(meta, event)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let commit = NewCommit {
            stream_id,
            commit_seq: commits.last().map(|c| c.commit_seq).unwrap_or(0) + 1,
            commit_id,
            events,
            correlation_id: ctx.correlation_id.clone(),
            causation_id: ctx.request_id.clone(),
        };
        let (position, rev_to, duplicate) = match self.store.append(&commit).await? {
            Appended::Committed { position, rev_to } => (position, rev_to, false),
            Appended::Duplicate { position, rev_to } => (position, rev_to, true),
        };
        tracing::info!(
            request_id = %ctx.request_id,
            service = D::SERVICE,
            stream_id = %stream_id,
            version = rev_to,
            position,
            duplicate,
            "command committed"
        );
        Ok(Executed {
            stream_id,
            version: rev_to,
            position: Some(position),
            duplicate,
        })
    }
}
