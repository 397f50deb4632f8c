//! `keel.auth.v1.Auth`, served by the identity service's process over its database.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::Utc;
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::pb::{self, auth_server};
use super::token::{self, Claims, KeyPair};
use super::{password, store};
use crate::ServiceError;
use crate::sql::Db;

/// The most ended sessions one [`pb::EndedSessionsRequest`] answers.
const ENDED_SESSIONS_PAGE: i64 = 5_000;

/// What the spec and the deployment decide about sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The `iss` of every token: the system's name.
    pub issuer: String,
    pub access_ttl_secs: i64,
    pub refresh_ttl_secs: i64,
    /// The roles the spec declares; [`pb::GrantRoleRequest`] gives only these.
    pub roles: Vec<String>,
    /// The role a registered subject gets.
    pub default_role: String,
    /// Emails that get the back-office role when they register (or at start, if they
    /// already have): how the first back-office user comes to be.
    pub back_office_emails: Vec<String>,
}

impl Settings {
    /// The settings of a generated identity service: the roles are the framework's
    /// (customer, back-office), `back_office_emails` comma-separated.
    pub fn new(
        issuer: &str,
        access_ttl_secs: i64,
        refresh_ttl_secs: i64,
        back_office_emails: &str,
    ) -> Settings {
        Settings {
            issuer: issuer.to_string(),
            access_ttl_secs,
            refresh_ttl_secs,
            roles: vec![super::CUSTOMER.into(), super::BACK_OFFICE.into()],
            default_role: super::CUSTOMER.into(),
            back_office_emails: back_office_emails
                .split(',')
                .map(normalize_email)
                .filter(|e| !e.is_empty())
                .collect(),
        }
    }
}

/// The service; cheap to clone.
#[derive(Clone)]
pub struct AuthService {
    db: Db,
    settings: Arc<Settings>,
    key: Arc<KeyPair>,
}

pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

fn refresh_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn new_refresh_token() -> Result<String, ServiceError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| ServiceError::Internal(e.to_string()))?;
    Ok(B64.encode(bytes))
}

fn unauthenticated(message: &str) -> Status {
    Status::unauthenticated(message)
}

fn uuid_arg(field: &str, value: &str) -> Result<Uuid, ServiceError> {
    Uuid::parse_str(value).map_err(|_| ServiceError::invalid(field, "must be a UUID"))
}

impl AuthService {
    /// The service over `db`, with the oldest signing key (made on first start), and
    /// the back-office emails of `settings` granted.
    pub async fn start(db: Db, settings: Settings) -> Result<AuthService, ServiceError> {
        let mut keys = store::keys(&db).await?;
        if keys.is_empty() {
            let key = KeyPair::generate().map_err(|e| ServiceError::Internal(e.to_string()))?;
            store::insert_key(&db, &key).await?;
            keys = store::keys(&db).await?;
        }
        let key = keys
            .into_iter()
            .next()
            .ok_or_else(|| ServiceError::Internal("no signing key stored".into()))?;
        let service = AuthService {
            db,
            settings: Arc::new(settings),
            key: Arc::new(key),
        };
        for email in service.settings.back_office_emails.clone() {
            service.grant(&email, super::BACK_OFFICE, false).await?;
        }
        Ok(service)
    }

    pub fn server(self) -> auth_server::AuthServer<AuthService> {
        auth_server::AuthServer::new(self)
    }

    fn session(
        &self,
        subject: Uuid,
        roles: Vec<String>,
        id: Uuid,
    ) -> Result<pb::Session, ServiceError> {
        let now = Utc::now().timestamp();
        let claims = Claims {
            iss: self.settings.issuer.clone(),
            sub: subject,
            sid: id,
            roles: roles.clone(),
            iat: now,
            exp: now + self.settings.access_ttl_secs,
        };
        Ok(pb::Session {
            access_token: self.key.sign(&claims),
            expires_in: self.settings.access_ttl_secs,
            refresh_token: String::new(),
            refresh_expires_in: self.settings.refresh_ttl_secs,
            subject: subject.to_string(),
            roles,
        })
    }

    async fn login(&self, email: &str, password: String) -> Result<pb::Session, ServiceError> {
        let email = normalize_email(email);
        let found = store::credentials_by_email(&self.db, &email).await?;
        let stored = found.as_ref().map(|c| c.password_hash.clone());
        let ok = password.chars().count() <= password::MAX_CHARS
            && password::verify_blocking(password, stored).await;
        let Some(creds) = found.filter(|_| ok) else {
            return Err(ServiceError::Unauthenticated(
                "wrong email or password".into(),
            ));
        };
        let id = Uuid::new_v4();
        let refresh = new_refresh_token()?;
        let expires = Utc::now() + chrono::Duration::seconds(self.settings.refresh_ttl_secs);
        store::insert_session(
            &self.db,
            id,
            creds.subject,
            &refresh_hash(&refresh),
            expires,
        )
        .await?;
        let mut session = self.session(creds.subject, creds.roles, id)?;
        session.refresh_token = refresh;
        Ok(session)
    }

    async fn refresh(&self, token: &str) -> Result<pb::Session, ServiceError> {
        let ended = || ServiceError::Unauthenticated("the session has ended: log in again".into());
        let old = refresh_hash(token);
        let stored = store::session_by_refresh(&self.db, &old)
            .await?
            .ok_or_else(ended)?;
        if stored.revoked || stored.expires_at <= Utc::now() {
            return Err(ended());
        }
        let creds = store::credentials_of(&self.db, stored.subject)
            .await?
            .ok_or_else(ended)?;
        let refresh = new_refresh_token()?;
        if !store::rotate_refresh(&self.db, stored.id, &old, &refresh_hash(&refresh)).await? {
            return Err(ended());
        }
        let mut session = self.session(stored.subject, creds.roles, stored.id)?;
        session.refresh_token = refresh;
        session.refresh_expires_in = (stored.expires_at - Utc::now()).num_seconds().max(0);
        Ok(session)
    }

    async fn set_credentials(&self, r: pb::SetCredentialsRequest) -> Result<(), ServiceError> {
        let subject = uuid_arg("subject", &r.subject)?;
        password::check("password", &r.password)?;
        let email = normalize_email(&r.email);
        if email.is_empty() {
            return Err(ServiceError::invalid("email", "must not be empty"));
        }
        if let Some(existing) = store::credentials_of(&self.db, subject).await? {
            // A retried registration: the same password is the same answer.
            return if password::verify_blocking(r.password, Some(existing.password_hash)).await {
                Ok(())
            } else {
                Err(ServiceError::AlreadyExists(format!(
                    "{subject} has credentials already"
                )))
            };
        }
        let hash = password::hash_blocking(r.password).await?;
        let mut roles = vec![self.settings.default_role.clone()];
        if self.settings.back_office_emails.contains(&email) {
            roles.push(super::BACK_OFFICE.into());
        }
        if !store::insert_credentials(&self.db, subject, &email, &hash, &roles).await? {
            return Err(ServiceError::AlreadyExists(format!(
                "email {email} is registered already"
            )));
        }
        Ok(())
    }

    async fn grant(
        &self,
        email: &str,
        role: &str,
        must_exist: bool,
    ) -> Result<Option<Uuid>, ServiceError> {
        if !self.settings.roles.iter().any(|r| r == role) {
            return Err(ServiceError::invalid(
                "role",
                format!("unknown role `{role}`"),
            ));
        }
        let Some(creds) = store::credentials_by_email(&self.db, &normalize_email(email)).await?
        else {
            return if must_exist {
                Err(ServiceError::not_found("credentials", email))
            } else {
                Ok(None)
            };
        };
        let mut roles = creds.roles;
        if !roles.iter().any(|r| r == role) {
            roles.push(role.to_string());
            store::set_roles(&self.db, creds.subject, &roles).await?;
        }
        Ok(Some(creds.subject))
    }

    /// The sessions ended since `since_unix_ms` whose access tokens may still be valid.
    async fn ended_sessions(
        &self,
        since_unix_ms: i64,
    ) -> Result<pb::EndedSessionsResponse, ServiceError> {
        let now = Utc::now();
        let ttl = self.settings.access_ttl_secs;
        let oldest_relevant = now - chrono::Duration::seconds(ttl + token::LEEWAY_SECS);
        let since = chrono::DateTime::from_timestamp_millis(since_unix_ms)
            .unwrap_or(oldest_relevant)
            .max(oldest_relevant);
        let ended = store::sessions_ended_since(&self.db, since, ENDED_SESSIONS_PAGE).await?;
        let as_of = match ended.last() {
            // A full page: the rest from the last one on.
            Some((_, at)) if ended.len() as i64 == ENDED_SESSIONS_PAGE => *at,
            _ => now,
        };
        Ok(pb::EndedSessionsResponse {
            sessions: ended
                .into_iter()
                .map(|(id, at)| pb::EndedSession {
                    session_id: id.to_string(),
                    tokens_expire_at: at.timestamp() + ttl,
                })
                .collect(),
            as_of_unix_ms: as_of.timestamp_millis(),
        })
    }

    /// The JWK Set of every stored key.
    pub async fn jwks(&self) -> Result<String, ServiceError> {
        let keys = store::keys(&self.db).await?;
        Ok(token::jwks(&keys))
    }
}

#[tonic::async_trait]
impl auth_server::Auth for AuthService {
    async fn login(&self, r: Request<pb::LoginRequest>) -> Result<Response<pb::Session>, Status> {
        let r = r.into_inner();
        Ok(Response::new(self.login(&r.email, r.password).await?))
    }

    async fn refresh(
        &self,
        r: Request<pb::RefreshRequest>,
    ) -> Result<Response<pb::Session>, Status> {
        let token = r.into_inner().refresh_token;
        if token.is_empty() || token.len() > 256 {
            return Err(unauthenticated("the session has ended: log in again"));
        }
        Ok(Response::new(self.refresh(&token).await?))
    }

    async fn logout(
        &self,
        r: Request<pb::LogoutRequest>,
    ) -> Result<Response<pb::LogoutResponse>, Status> {
        let id = uuid_arg("session_id", &r.into_inner().session_id)?;
        store::revoke_session(&self.db, id).await?;
        Ok(Response::new(pb::LogoutResponse {}))
    }

    async fn jwks(
        &self,
        _: Request<pb::JwksRequest>,
    ) -> Result<Response<pb::JwksResponse>, Status> {
        Ok(Response::new(pb::JwksResponse {
            jwks: AuthService::jwks(self).await?,
        }))
    }

    async fn set_credentials(
        &self,
        r: Request<pb::SetCredentialsRequest>,
    ) -> Result<Response<pb::SetCredentialsResponse>, Status> {
        self.set_credentials(r.into_inner()).await?;
        Ok(Response::new(pb::SetCredentialsResponse {}))
    }

    async fn grant_role(
        &self,
        r: Request<pb::GrantRoleRequest>,
    ) -> Result<Response<pb::GrantRoleResponse>, Status> {
        let r = r.into_inner();
        let subject = self
            .grant(&r.email, &r.role, true)
            .await?
            .unwrap_or_default();
        Ok(Response::new(pb::GrantRoleResponse {
            subject: subject.to_string(),
        }))
    }

    async fn ended_sessions(
        &self,
        r: Request<pb::EndedSessionsRequest>,
    ) -> Result<Response<pb::EndedSessionsResponse>, Status> {
        let since = r.into_inner().since_unix_ms;
        Ok(Response::new(
            AuthService::ended_sessions(self, since).await?,
        ))
    }

    async fn forget(
        &self,
        r: Request<pb::ForgetRequest>,
    ) -> Result<Response<pb::ForgetResponse>, Status> {
        let subject = uuid_arg("subject", &r.into_inner().subject)?;
        store::delete_credentials(&self.db, subject).await?;
        Ok(Response::new(pb::ForgetResponse {}))
    }
}
