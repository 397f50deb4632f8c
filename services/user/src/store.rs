//! Commands and queries on PostgreSQL. A command runs in ONE transaction: load the
//! stream's events, check the expected version, decide, append the new events, update
//! the state row, write one outbox row per event, commit. A query reads the state row.

use chrono::{DateTime, SubsecRound, Utc};
use prost::Message;
use shop_kit::{RequestContext, ServiceError, db};
use shop_user::{
    CustomerCommand, CustomerEvent, DeleteAccount, EventMeta, RegisterCustomer, UserUseCases,
    decide, pb,
};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::aggregate::Customer;

/// Advisory lock (transaction scoped) taken by every command just before it writes its
/// outbox rows, and held until it commits. Outbox positions come from a sequence at
/// INSERT time, so without it two transactions could commit out of position order (11
/// visible before 10). With it, positions are drawn and committed in one order: the
/// outbox only ever grows at its end, and a reader that has seen position N will never
/// later see a smaller one appear.
pub const OUTBOX_APPEND_LOCK: i64 = 0x7573_6572_5f6f_7574; // "user_out"

/// The use cases of `shop.user.v1.UserService` on one PostgreSQL database.
#[derive(Clone)]
pub struct Users {
    pool: PgPool,
}

/// What a successful command left behind.
#[derive(Debug, Clone, PartialEq)]
pub struct Committed {
    pub stream_id: Uuid,
    /// The stream's version after the command (unchanged when it emitted nothing).
    pub version: i64,
    pub events: Vec<(EventMeta, CustomerEvent)>,
}

#[derive(sqlx::FromRow)]
struct EventRow {
    version: i64,
    event_type: String,
    schema_version: i32,
    payload: String,
    recorded_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct CustomerRow {
    id: Uuid,
    email: String,
    name: String,
    registered_at: DateTime<Utc>,
    version: i64,
}

impl Users {
    pub fn new(pool: PgPool) -> Self {
        Users { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Runs one command against one stream, atomically. `expected_version`: fail with
    /// ABORTED unless the stream is at this version (0: it does not exist yet); `None`
    /// checks against the version loaded in this transaction, which the events' primary
    /// key then defends against a concurrent writer.
    pub async fn execute(
        &self,
        ctx: &RequestContext,
        stream_id: Uuid,
        expected_version: Option<i64>,
        command: &CustomerCommand,
    ) -> Result<Committed, ServiceError> {
        let mut tx = self.pool.begin().await.map_err(db::error)?;
        let (state, version) = load(&mut tx, stream_id).await?;
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
        // PostgreSQL keeps microseconds; truncate so the envelope equals what is stored.
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
        for (meta, event) in &events {
            append_event(&mut tx, ctx, meta, event).await?;
        }
        save_state(&mut tx, stream_id, &state, next).await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(OUTBOX_APPEND_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(db::error)?;
        for (meta, event) in &events {
            sqlx::query("INSERT INTO outbox (topic, message_key, payload) VALUES ($1, $2, $3)")
                .bind(shop_user::TOPIC)
                .bind(stream_id.to_string())
                .bind(event.to_envelope(meta).encode_to_vec())
                .execute(&mut *tx)
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
        let mut tx = self.pool.begin().await.map_err(db::error)?;
        let loaded = load(&mut tx, stream_id).await?;
        tx.commit().await.map_err(db::error)?;
        Ok(loaded)
    }
}

async fn load(
    tx: &mut Transaction<'static, Postgres>,
    stream_id: Uuid,
) -> Result<(Customer, i64), ServiceError> {
    let rows: Vec<EventRow> = sqlx::query_as(
        "SELECT version, event_type, schema_version, payload::text AS payload, recorded_at FROM events WHERE stream_id = $1 ORDER BY version",
    )
    .bind(stream_id)
    .fetch_all(&mut **tx)
    .await
    .map_err(db::error)?;
    let mut state = Customer::default();
    let mut version = 0;
    for row in rows {
        if row.version != version + 1 {
            return Err(ServiceError::Internal(format!(
                "stream {stream_id}: version {} follows {version}",
                row.version
            )));
        }
        let json: serde_json::Value = serde_json::from_str(&row.payload).map_err(|e| {
            ServiceError::Internal(format!(
                "stream {stream_id} version {}: undecodable event: {e}",
                row.version
            ))
        })?;
        let schema_version = u32::try_from(row.schema_version).map_err(|_| {
            ServiceError::Internal(format!("stream {stream_id}: bad schema version"))
        })?;
        // Through the generated decoder: older payload versions are upcast.
        let event = CustomerEvent::decode_stored(&row.event_type, schema_version, &json)?;
        state.apply_recorded(&event, row.recorded_at);
        version = row.version;
    }
    Ok((state, version))
}

async fn append_event(
    tx: &mut Transaction<'static, Postgres>,
    ctx: &RequestContext,
    meta: &EventMeta,
    event: &CustomerEvent,
) -> Result<(), ServiceError> {
    let (event_type, schema_version) = event.type_and_version();
    let payload = serde_json::to_string(event)
        .map_err(|e| ServiceError::Internal(format!("encoding event: {e}")))?;
    let metadata = serde_json::json!({
        "correlation_id": meta.correlation_id,
        "causation_id": meta.causation_id,
        "request_id": ctx.request_id,
    })
    .to_string();
    sqlx::query(
        "INSERT INTO events (stream_id, version, event_id, event_type, schema_version, payload, metadata, recorded_at) \
         VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7::text::jsonb, $8)",
    )
    .bind(meta.stream_id)
    .bind(meta.version)
    .bind(meta.event_id)
    .bind(event_type)
    .bind(i32::try_from(schema_version).unwrap_or(i32::MAX))
    .bind(payload)
    .bind(metadata)
    .bind(meta.occurred_at)
    .execute(&mut **tx)
    .await
    .map_err(|e| write_error(e, meta.stream_id))?;
    Ok(())
}

/// The state row follows the stream: upserted while the customer is live, removed once
/// the account is deleted (which frees the email for a new registration).
async fn save_state(
    tx: &mut Transaction<'static, Postgres>,
    stream_id: Uuid,
    state: &Customer,
    version: i64,
) -> Result<(), ServiceError> {
    let result = match (state.is_live(), state.registered_at) {
        (true, Some(registered_at)) => {
            sqlx::query(
                "INSERT INTO customers (id, email, name, registered_at, version) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email, name = EXCLUDED.name, \
                 registered_at = EXCLUDED.registered_at, version = EXCLUDED.version",
            )
            .bind(stream_id)
            .bind(&state.email)
            .bind(&state.name)
            .bind(registered_at)
            .bind(version)
            .execute(&mut **tx)
            .await
        }
        (true, None) => {
            return Err(ServiceError::Internal(format!(
                "stream {stream_id}: live customer without a registration time"
            )));
        }
        (false, _) => {
            sqlx::query("DELETE FROM customers WHERE id = $1")
                .bind(stream_id)
                .execute(&mut **tx)
                .await
        }
    };
    result.map_err(|e| write_error(e, stream_id))?;
    Ok(())
}

/// A write failed: a concurrent append to the same stream is a retryable conflict, a
/// live customer with the same email is ALREADY_EXISTS, the rest as usual.
fn write_error(e: sqlx::Error, stream_id: Uuid) -> ServiceError {
    if let sqlx::Error::Database(d) = &e
        && d.code().as_deref() == Some("23505")
    {
        match d.constraint() {
            Some("events_pkey") => {
                return ServiceError::Conflict(format!(
                    "customer {stream_id} was changed concurrently; reread and retry"
                ));
            }
            Some("customers_email_key") => {
                return ServiceError::AlreadyExists(
                    "a customer with this email already exists".into(),
                );
            }
            _ => {}
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
        // Registration opens a new stream; its id is the customer's id.
        let stream_id = Uuid::now_v7();
        let done = self
            .execute(&ctx, stream_id, request.expected_version, &command)
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
        let row: Option<CustomerRow> = sqlx::query_as(
            "SELECT id, email, name, registered_at, version FROM customers WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db::error)?;
        let row = row.ok_or_else(|| ServiceError::not_found("customer", id))?;
        Ok(pb::ViewProfileResponse {
            customer: Some(pb::Customer {
                id: row.id.to_string(),
                email: row.email,
                name: row.name,
                registered_at: Some(shop_kit::utc_to_timestamp(&row.registered_at)),
            }),
            version: row.version,
        })
    }
}
