//! The identity service's auth tables (generated into its database's migrations):
//! `auth_credentials`, `auth_sessions`, `auth_keys`. Statements written once for both
//! dialects.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::token::KeyPair;
use crate::ServiceError;
use crate::sql::{self, Db, query};

pub struct Credentials {
    pub subject: Uuid,
    pub password_hash: String,
    pub roles: Vec<String>,
}

pub struct StoredSession {
    pub id: Uuid,
    pub subject: Uuid,
    pub expires_at: DateTime<Utc>,
    pub revoked: bool,
}

fn storage(e: sql::Error) -> ServiceError {
    if sql::is_transient(&e) {
        ServiceError::Unavailable(format!("auth store: {e}"))
    } else {
        ServiceError::Internal(format!("auth store: {e}"))
    }
}

pub fn roles_text(roles: &[String]) -> String {
    roles.join(",")
}

fn roles_of(text: &str) -> Vec<String> {
    text.split(',')
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .collect()
}

fn credentials(row: Option<sql::Row>) -> Result<Option<Credentials>, ServiceError> {
    row.map(|r| {
        Ok(Credentials {
            subject: r.uuid("subject")?,
            password_hash: r.text("password_hash")?,
            roles: roles_of(&r.text("roles")?),
        })
    })
    .transpose()
    .map_err(storage)
}

pub async fn credentials_by_email(
    db: &Db,
    email: &str,
) -> Result<Option<Credentials>, ServiceError> {
    let row = query("SELECT subject, password_hash, roles FROM auth_credentials WHERE email = $1")
        .bind(email)
        .fetch_optional(db)
        .await
        .map_err(storage)?;
    credentials(row)
}

pub async fn credentials_of(db: &Db, subject: Uuid) -> Result<Option<Credentials>, ServiceError> {
    let row =
        query("SELECT subject, password_hash, roles FROM auth_credentials WHERE subject = $1")
            .bind(subject)
            .fetch_optional(db)
            .await
            .map_err(storage)?;
    credentials(row)
}

/// Inserts the credentials unless the subject or the email has some: whether it did.
pub async fn insert_credentials(
    db: &Db,
    subject: Uuid,
    email: &str,
    password_hash: &str,
    roles: &[String],
) -> Result<bool, ServiceError> {
    let r = query(
        "INSERT INTO auth_credentials (subject, email, password_hash, roles) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(subject)
    .bind(email)
    .bind(password_hash)
    .bind(roles_text(roles))
    .execute(db)
    .await
    .map_err(storage)?;
    Ok(r == 1)
}

pub async fn set_roles(db: &Db, subject: Uuid, roles: &[String]) -> Result<(), ServiceError> {
    query("UPDATE auth_credentials SET roles = $1 WHERE subject = $2")
        .bind(roles_text(roles))
        .bind(subject)
        .execute(db)
        .await
        .map_err(storage)?;
    Ok(())
}

pub async fn delete_credentials(db: &Db, subject: Uuid) -> Result<(), ServiceError> {
    query("DELETE FROM auth_credentials WHERE subject = $1")
        .bind(subject)
        .execute(db)
        .await
        .map_err(storage)?;
    query("UPDATE auth_sessions SET revoked_at = $1 WHERE subject = $2 AND revoked_at IS NULL")
        .bind(Utc::now())
        .bind(subject)
        .execute(db)
        .await
        .map_err(storage)?;
    Ok(())
}

pub async fn insert_session(
    db: &Db,
    id: Uuid,
    subject: Uuid,
    refresh_hash: &str,
    expires_at: DateTime<Utc>,
) -> Result<(), ServiceError> {
    query(
        "INSERT INTO auth_sessions (id, subject, refresh_hash, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(id)
    .bind(subject)
    .bind(refresh_hash)
    .bind(expires_at)
    .execute(db)
    .await
    .map_err(storage)?;
    Ok(())
}

pub async fn session_by_refresh(
    db: &Db,
    refresh_hash: &str,
) -> Result<Option<StoredSession>, ServiceError> {
    let row = query(
        "SELECT id, subject, expires_at, revoked_at FROM auth_sessions WHERE refresh_hash = $1",
    )
    .bind(refresh_hash)
    .fetch_optional(db)
    .await
    .map_err(storage)?;
    row.map(|r| {
        Ok(StoredSession {
            id: r.uuid("id")?,
            subject: r.uuid("subject")?,
            expires_at: r.time("expires_at")?,
            revoked: r.opt_time("revoked_at")?.is_some(),
        })
    })
    .transpose()
    .map_err(storage)
}

/// Swaps a live session's refresh token; false when it was no longer `old` (a
/// concurrent refresh won) or the session ended meanwhile.
pub async fn rotate_refresh(db: &Db, id: Uuid, old: &str, new: &str) -> Result<bool, ServiceError> {
    let r = query(
        "UPDATE auth_sessions SET refresh_hash = $1 WHERE id = $2 AND refresh_hash = $3 AND revoked_at IS NULL",
    )
    .bind(new)
    .bind(id)
    .bind(old)
    .execute(db)
    .await
    .map_err(storage)?;
    Ok(r == 1)
}

pub async fn revoke_session(db: &Db, id: Uuid) -> Result<(), ServiceError> {
    query("UPDATE auth_sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(Utc::now())
        .bind(id)
        .execute(db)
        .await
        .map_err(storage)?;
    Ok(())
}

/// The sessions ended at or after `since`, oldest end first (at most `limit`), with
/// when each ended.
pub async fn sessions_ended_since(
    db: &Db,
    since: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<(Uuid, DateTime<Utc>)>, ServiceError> {
    let rows = query(
        "SELECT id, revoked_at FROM auth_sessions WHERE revoked_at >= $1 ORDER BY revoked_at LIMIT $2",
    )
    .bind(since)
    .bind(limit)
    .fetch_all(db)
    .await
    .map_err(storage)?;
    rows.iter()
        .map(|r| Ok((r.uuid("id")?, r.time("revoked_at")?)))
        .collect::<Result<_, sql::Error>>()
        .map_err(storage)
}

/// Every signing key, oldest first.
pub async fn keys(db: &Db) -> Result<Vec<KeyPair>, ServiceError> {
    let rows = query("SELECT kid, seed FROM auth_keys ORDER BY created_at, kid")
        .fetch_all(db)
        .await
        .map_err(storage)?;
    rows.iter()
        .map(|r| {
            let kid = r.text("kid").map_err(storage)?;
            let seed: [u8; 32] = r.bytes("seed").map_err(storage)?.try_into().map_err(|_| {
                ServiceError::Internal(format!("signing key {kid} is not 32 bytes"))
            })?;
            Ok(KeyPair::from_seed(kid, seed))
        })
        .collect()
}

pub async fn insert_key(db: &Db, key: &KeyPair) -> Result<(), ServiceError> {
    query("INSERT INTO auth_keys (kid, seed) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(key.kid.as_str())
        .bind(key.seed().to_vec())
        .execute(db)
        .await
        .map_err(storage)?;
    Ok(())
}
