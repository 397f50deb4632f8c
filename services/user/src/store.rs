//! Commands and queries on the service's relational store: PostgreSQL or SQLite, by the
//! URL the service was started with, through one set of statements (see
//! [`shop_kit::sql`]). A command runs in ONE transaction: load the stream's events, check
//! the expected version, decide, append the new events, update the state row, write one
//! outbox row per event, commit. A query reads the state row.

use chrono::{DateTime, SubsecRound, Utc};
use prost::Message;
use shop_kit::es::command::{commit_id, decide_again};
use shop_kit::sql::{self, Db, Tx, ViolationKind};
use shop_kit::{RequestContext, ServiceError, db};
use shop_user::{
    CustomerCommand, CustomerDecider, CustomerEvent, DeleteAccount, EventMeta, RegisterCustomer,
    UserUseCases, decide, pb,
};
use uuid::Uuid;

use crate::aggregate::Customer;

/// Lock (transaction scoped) taken by every command just before it appends, and held
/// until it commits. Both `events.position` and `outbox.position` are drawn as
/// `MAX(position) + 1` inside the transaction (SQLite has no sequences; on PostgreSQL the
/// generated `bigserial` default is simply not used), so without the lock two
/// transactions could draw the same position, or commit out of position order (11
/// visible before 10). With it, positions are drawn and committed in one order: the
/// event table and the outbox only ever grow at their end, gap-free, and a reader that
/// has seen position N will never later see a smaller one appear.
///
/// PostgreSQL: `pg_advisory_xact_lock`. SQLite: every write transaction already holds
/// the database's single write lock from its start (`BEGIN IMMEDIATE`), which gives the
/// same guarantee ([`Tx::lock`] is a no-op there).
pub const OUTBOX_APPEND_LOCK: i64 = 0x7573_6572_5f6f_7574; // "user_out"

/// The use cases of `shop.user.v1.UserService` on one database.
#[derive(Clone)]
pub struct Users {
    db: Db,
}

/// What a successful command left behind.
#[derive(Debug, Clone, PartialEq)]
pub struct Committed {
    pub stream_id: Uuid,
    /// The stream's version after the command (unchanged when it emitted nothing).
    pub version: i64,
    pub events: Vec<(EventMeta, CustomerEvent)>,
}

impl Users {
    pub fn new(db: Db) -> Self {
        Users { db }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Runs one command against one stream, atomically, deciding again (a bounded number
    /// of times) when it lost a race and the caller named no version. `expected_version`:
    /// fail with ABORTED unless the stream is at this version (0: it does not exist
    /// yet). `key`: the caller's idempotency key; a retry with it gets the first answer.
    pub async fn execute(
        &self,
        ctx: &RequestContext,
        key: Option<&str>,
        stream_id: Uuid,
        expected_version: Option<i64>,
        command: &CustomerCommand,
    ) -> Result<Committed, ServiceError> {
        decide_again(expected_version, CONFLICT_RETRIES, || {
            self.execute_once(ctx, key, stream_id, expected_version, command)
        })
        .await
    }

    async fn execute_once(
        &self,
        ctx: &RequestContext,
        key: Option<&str>,
        stream_id: Uuid,
        expected_version: Option<i64>,
        command: &CustomerCommand,
    ) -> Result<Committed, ServiceError> {
        let commit_id = commit_id::<CustomerDecider<Customer>>(stream_id, command, key);
        let mut tx = self.db.begin().await.map_err(db::error)?;
        let (state, version, commits) = load(&mut tx, stream_id).await?;
        if let Some(&(_, first)) = commits.iter().find(|(id, _)| *id == commit_id) {
            return Ok(Committed {
                stream_id,
                version: first,
                events: Vec::new(),
            });
        }
        if let Some(expected) = expected_version
            && expected != version
        {
            return Err(ServiceError::Conflict(format!(
                "customer {stream_id} is at version {version}, expected {expected}"
            )));
        }
        let new_events = decide(&state, command)?;
        if new_events.is_empty() {
            return Ok(Committed {
                stream_id,
                version,
                events: Vec::new(),
            });
        }
        // Both dialects keep microseconds; truncate so the envelope equals what is stored.
        let occurred_at = Utc::now().trunc_subsecs(6);
        let mut state = state;
        let mut events = Vec::with_capacity(new_events.len());
        let mut next = version;
        for event in new_events {
            next += 1;
            let meta = EventMeta {
                event_id: Uuid::now_v7(),
                stream_id,
                version: next,
                occurred_at,
                correlation_id: ctx.correlation_id.clone(),
                causation_id: ctx.request_id.clone(),
            };
            state.apply_recorded(&event, occurred_at);
            events.push((meta, event));
        }
        // From here to the commit, appends are serialised (see OUTBOX_APPEND_LOCK). A
        // concurrent writer of this stream that took the lock first has committed by
        // now, so our insert meets its row: events_pkey, ABORTED.
        tx.lock(OUTBOX_APPEND_LOCK).await.map_err(db::error)?;
        for (meta, event) in &events {
            append_event(&mut tx, ctx, commit_id, meta, event).await?;
        }
        save_state(&mut tx, stream_id, &state, next).await?;
        for (meta, event) in &events {
            sql::query(
                "INSERT INTO outbox (position, topic, message_key, payload, created_at) \
                 VALUES ((SELECT COALESCE(MAX(position), 0) + 1 FROM outbox), $1, $2, $3, $4)",
            )
            .bind(shop_user::TOPIC)
            .bind(stream_id.to_string())
            .bind(event.to_envelope(meta).encode_to_vec())
            .bind(occurred_at)
            .execute(&mut tx)
            .await
            .map_err(|e| write_error(e, stream_id))?;
        }
        tx.commit().await.map_err(|e| write_error(e, stream_id))?;
        tracing::info!(
            request_id = %ctx.request_id,
            customer_id = %stream_id,
            version = next,
            events = events.len(),
            "command committed"
        );
        Ok(Committed {
            stream_id,
            version: next,
            events,
        })
    }

    /// The state of one stream folded from the event table, with its version.
    pub async fn load_stream(&self, stream_id: Uuid) -> Result<(Customer, i64), ServiceError> {
        let mut tx = self.db.begin().await.map_err(db::error)?;
        let (state, version, _) = load(&mut tx, stream_id).await?;
        tx.commit().await.map_err(db::error)?;
        Ok((state, version))
    }
}

/// How often a command without an expected version is decided again after a conflict.
const CONFLICT_RETRIES: u32 = 64;

/// The stream's state and version, and each commit id it holds with the version the
/// commit left it at (the answer to a retry).
type Loaded = (Customer, i64, Vec<(Uuid, i64)>);

async fn load(tx: &mut Tx, stream_id: Uuid) -> Result<Loaded, ServiceError> {
    let rows = sql::query(
        "SELECT version, event_type, schema_version, payload, metadata, recorded_at FROM events \
         WHERE stream_id = $1 ORDER BY version",
    )
    .bind(stream_id)
    .fetch_all(&mut *tx)
    .await
    .map_err(db::error)?;
    let mut state = Customer::default();
    let mut version = 0;
    let mut commits: Vec<(Uuid, i64)> = Vec::new();
    for row in rows {
        let row_version = row.i64("version").map_err(db::error)?;
        if row_version != version + 1 {
            return Err(ServiceError::Internal(format!(
                "stream {stream_id}: version {row_version} follows {version}"
            )));
        }
        let json = row.json("payload").map_err(|e| {
            ServiceError::Internal(format!(
                "stream {stream_id} version {row_version}: undecodable event: {e}"
            ))
        })?;
        let schema_version =
            u32::try_from(row.i64("schema_version").map_err(db::error)?).map_err(|_| {
                ServiceError::Internal(format!("stream {stream_id}: bad schema version"))
            })?;
        let event_type = row.text("event_type").map_err(db::error)?;
        let recorded_at: DateTime<Utc> = row.time("recorded_at").map_err(db::error)?;
        // Through the generated decoder: older payload versions are upcast.
        let event = CustomerEvent::decode_stored(&event_type, schema_version, &json)?;
        state.apply_recorded(&event, recorded_at);
        version = row_version;
        let commit = row.json("metadata").ok().and_then(|m| {
            m.get("commit_id")?
                .as_str()
                .and_then(|s| Uuid::parse_str(s).ok())
        });
        match (commit, commits.last_mut()) {
            (Some(id), Some((last, at))) if *last == id => *at = version,
            (Some(id), _) => commits.push((id, version)),
            (None, _) => {}
        }
    }
    Ok((state, version, commits))
}

/// Appends one event at the next position; the caller holds [`OUTBOX_APPEND_LOCK`].
async fn append_event(
    tx: &mut Tx,
    ctx: &RequestContext,
    commit_id: Uuid,
    meta: &EventMeta,
    event: &CustomerEvent,
) -> Result<(), ServiceError> {
    let (event_type, schema_version) = event.type_and_version();
    let payload = serde_json::to_value(event)
        .map_err(|e| ServiceError::Internal(format!("encoding event: {e}")))?;
    let metadata = serde_json::json!({
        "correlation_id": meta.correlation_id,
        "causation_id": meta.causation_id,
        "request_id": ctx.request_id,
        "commit_id": commit_id,
    });
    sql::query(
        "INSERT INTO events (stream_id, version, position, event_id, event_type, schema_version, payload, metadata, recorded_at) \
         VALUES ($1, $2, (SELECT COALESCE(MAX(position), 0) + 1 FROM events), $3, $4, $5, $6, $7, $8)",
    )
    .bind(meta.stream_id)
    .bind(meta.version)
    .bind(meta.event_id)
    .bind(event_type)
    .bind(i32::try_from(schema_version).unwrap_or(i32::MAX))
    .bind(payload)
    .bind(metadata)
    .bind(meta.occurred_at)
    .execute(&mut *tx)
    .await
    .map_err(|e| write_error(e, meta.stream_id))?;
    Ok(())
}

/// The state row follows the stream: upserted while the customer is live, removed once
/// the account is deleted (which frees the email for a new registration).
async fn save_state(
    tx: &mut Tx,
    stream_id: Uuid,
    state: &Customer,
    version: i64,
) -> Result<(), ServiceError> {
    let result = match (state.is_live(), state.registered_at) {
        (true, Some(registered_at)) => {
            sql::query(
                "INSERT INTO customers (id, email, name, registered_at, version) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email, name = EXCLUDED.name, \
                 registered_at = EXCLUDED.registered_at, version = EXCLUDED.version",
            )
            .bind(stream_id)
            .bind(&state.email)
            .bind(&state.name)
            .bind(registered_at)
            .bind(version)
            .execute(&mut *tx)
            .await
        }
        (true, None) => {
            return Err(ServiceError::Internal(format!(
                "stream {stream_id}: live customer without a registration time"
            )));
        }
        (false, _) => {
            sql::query("DELETE FROM customers WHERE id = $1")
                .bind(stream_id)
                .execute(&mut *tx)
                .await
        }
    };
    result.map_err(|e| write_error(e, stream_id))?;
    Ok(())
}

/// A write failed: a concurrent append to the same stream is a retryable conflict, a
/// live customer with the same email is ALREADY_EXISTS, the rest as usual. Recognised on
/// both dialects (PostgreSQL by constraint name, SQLite by its `table.column` list).
fn write_error(e: sql::Error, stream_id: Uuid) -> ServiceError {
    if let Some(v) = sql::violation(&e)
        && v.kind == ViolationKind::Unique
    {
        if v.is("events_pkey", "events", &["stream_id", "version"]) {
            return ServiceError::Conflict(format!(
                "customer {stream_id} was changed concurrently; reread and retry"
            ));
        }
        if v.is("customers_email_key", "customers", &["email"]) {
            return ServiceError::AlreadyExists("a customer with this email already exists".into());
        }
    }
    db::error(e)
}

impl UserUseCases for Users {
    async fn register_customer(
        &self,
        ctx: RequestContext,
        request: pb::RegisterCustomerRequest,
    ) -> Result<pb::RegisterCustomerResponse, ServiceError> {
        let command = CustomerCommand::RegisterCustomer(RegisterCustomer::try_from(&request)?);
        // Registration opens a new stream; its id is the customer's id, derived from the
        // idempotency key when there is one so that a retry meets its first attempt.
        let key = request.idempotency_key.as_deref();
        let stream_id = shop_kit::idempotency::attempt_id("user.RegisterCustomer", key);
        let done = self
            .execute(&ctx, key, stream_id, request.expected_version, &command)
            .await?;
        Ok(pb::RegisterCustomerResponse {
            customer_id: done.stream_id.to_string(),
            version: done.version,
        })
    }

    async fn delete_account(
        &self,
        ctx: RequestContext,
        request: pb::DeleteAccountRequest,
    ) -> Result<pb::DeleteAccountResponse, ServiceError> {
        let command = DeleteAccount::try_from(&request)?;
        let stream_id = command.customer_id;
        let done = self
            .execute(
                &ctx,
                request.idempotency_key.as_deref(),
                stream_id,
                request.expected_version,
                &CustomerCommand::DeleteAccount(command),
            )
            .await?;
        Ok(pb::DeleteAccountResponse {
            customer_id: done.stream_id.to_string(),
            version: done.version,
        })
    }

    async fn view_profile(
        &self,
        _ctx: RequestContext,
        request: pb::ViewProfileRequest,
    ) -> Result<pb::ViewProfileResponse, ServiceError> {
        let id = Uuid::parse_str(&request.customer_id)
            .map_err(|_| ServiceError::invalid("customer_id", "must be a UUID"))?;
        let row = sql::query(
            "SELECT id, email, name, registered_at, version FROM customers WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.db)
        .await
        .map_err(db::error)?
        .ok_or_else(|| ServiceError::not_found("customer", id))?;
        let registered_at = row.time("registered_at").map_err(db::error)?;
        Ok(pb::ViewProfileResponse {
            customer: Some(pb::Customer {
                id: row.uuid("id").map_err(db::error)?.to_string(),
                email: row.text("email").map_err(db::error)?,
                name: row.text("name").map_err(db::error)?,
                registered_at: Some(shop_kit::utc_to_timestamp(&registered_at)),
            }),
            version: row.i64("version").map_err(db::error)?,
        })
    }
}
