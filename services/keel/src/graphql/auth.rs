//! Who calls: the access token's [`Principal`] (verified by [`Authn`] before the
//! request runs), the generated guards' checks ([`allow`], [`caller_id`], [`owned`]),
//! and the session fields (`login`, `refreshSession`, `logout`) over the identity
//! service's `keel.auth.v1.Auth`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use async_graphql::dynamic::{FieldFuture, FieldValue, ResolverContext};
use async_graphql::{Name, Value};
use tonic::transport::Channel;
use uuid::Uuid;

use super::errors::{self, FORBIDDEN, UNAUTHENTICATED};
use super::loader::ByKey;
use super::{Args, Call};
use crate::auth::pb::{self, auth_client::AuthClient};
use crate::auth::{BACK_OFFICE, CUSTOMER, Principal, TokenError, Verifier};

/// How long a key set fetched for an unknown key id is trusted to be complete.
const REFETCH_AFTER: Duration = Duration::from_secs(5);
const IDENTITY: &str = "identity";
/// How often every BFF asks the identity service which sessions ended (logout, account
/// deleted elsewhere): the longest another replica's logout leaves an access token usable.
pub const ENDED_SESSIONS_POLL: Duration = Duration::from_secs(2);

/// Who may call a root field (the spec's `audience`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    Public,
    Customer,
    BackOffice,
}

/// The verified caller of one request (none: anonymous).
#[derive(Debug, Clone, Default)]
pub struct Caller(pub Option<Principal>);

/// Why a request's token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    #[error("the access token is not valid: {0}")]
    Invalid(String),
    #[error("the identity service is unavailable: {0}")]
    Unavailable(String),
}

/// Verifies access tokens with the identity service's published keys.
pub struct Authn {
    client: AuthClient<Channel>,
    issuer: String,
    subject_field: &'static str,
    keys: RwLock<(Option<Verifier>, Option<Instant>)>,
    /// Ended sessions (by this BFF, or learned from the identity service), until their
    /// access tokens expire.
    ended: Mutex<BTreeMap<Uuid, i64>>,
}

impl Authn {
    /// `subject_field`: the `Session` field with the subject's id (`customerId`).
    /// Within a tokio runtime it follows the identity service's ended sessions every
    /// [`ENDED_SESSIONS_POLL`] for as long as it lives.
    pub fn new(channel: Channel, issuer: &str, subject_field: &'static str) -> Arc<Authn> {
        let authn = Arc::new(Authn {
            client: AuthClient::new(channel),
            issuer: issuer.to_string(),
            subject_field,
            keys: RwLock::new((None, None)),
            ended: Mutex::new(BTreeMap::new()),
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(follow_ended_sessions(Arc::downgrade(&authn)));
        }
        authn
    }

    /// Learns the sessions ended since `since_unix_ms`; the next call's `since`.
    async fn learn_ended_sessions(&self, since_unix_ms: i64) -> Result<i64, tonic::Status> {
        let mut request = tonic::Request::new(pb::EndedSessionsRequest { since_unix_ms });
        request.set_timeout(Duration::from_secs(5));
        let answer = self
            .client
            .clone()
            .ended_sessions(request)
            .await?
            .into_inner();
        let mut ended = self.ended.lock().unwrap_or_else(|e| e.into_inner());
        for s in answer.sessions {
            if let Ok(id) = Uuid::parse_str(&s.session_id) {
                ended.insert(id, s.tokens_expire_at);
            }
        }
        Ok(answer.as_of_unix_ms)
    }

    /// The caller an `Authorization` header names: none without one, an error for a
    /// header that is not a valid bearer token.
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
    ) -> Result<Option<Principal>, AuthFailure> {
        let Some(header) = authorization else {
            return Ok(None);
        };
        let token = bearer(header)
            .ok_or_else(|| AuthFailure::Invalid("expected `Bearer <token>`".into()))?;
        let verifier = self.verifier_for(token).await?;
        let now = chrono::Utc::now().timestamp();
        let claims = verifier
            .verify(token, now)
            .map_err(|e| AuthFailure::Invalid(e.to_string()))?;
        if self.is_ended(claims.sid, now) {
            return Err(AuthFailure::Invalid("the session has ended".into()));
        }
        Ok(Some(claims.into()))
    }

    /// The cached key set if it knows the token's key (or was fetched moments ago),
    /// else a fresh one from the identity service.
    async fn verifier_for(&self, token: &str) -> Result<Verifier, AuthFailure> {
        let kid = Verifier::kid_of(token).unwrap_or_default();
        if let (Some(v), fetched) = &*self.keys.read().unwrap_or_else(|e| e.into_inner()) {
            let recent = fetched.is_some_and(|t| t.elapsed() < REFETCH_AFTER);
            if v.knows(&kid) || recent {
                return Ok(v.clone());
            }
        }
        let jwks = self.jwks().await?;
        let verifier = Verifier::from_jwks(&self.issuer, &jwks)
            .map_err(|e: TokenError| AuthFailure::Unavailable(e.to_string()))?;
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) =
            (Some(verifier.clone()), Some(Instant::now()));
        Ok(verifier)
    }

    /// The identity service's JWK Set, as published at `/.well-known/jwks.json`.
    pub async fn jwks(&self) -> Result<String, AuthFailure> {
        let mut request = tonic::Request::new(pb::JwksRequest {});
        request.set_timeout(Duration::from_secs(5));
        self.client
            .clone()
            .jwks(request)
            .await
            .map(|r| r.into_inner().jwks)
            .map_err(|s| AuthFailure::Unavailable(s.message().to_string()))
    }

    fn is_ended(&self, session: Uuid, now: i64) -> bool {
        let mut ended = self.ended.lock().unwrap_or_else(|e| e.into_inner());
        ended.retain(|_, exp| *exp + crate::auth::token::LEEWAY_SECS > now);
        ended.contains_key(&session)
    }

    fn end(&self, p: &Principal) {
        let mut ended = self.ended.lock().unwrap_or_else(|e| e.into_inner());
        ended.insert(p.session, p.expires_at);
    }
}

/// Polls the identity service for ended sessions until the [`Authn`] is dropped. The
/// window overlaps the last answer by a second, for sessions ended while it was read.
async fn follow_ended_sessions(authn: Weak<Authn>) {
    let mut since = 0;
    let mut failing = false;
    loop {
        let Some(a) = authn.upgrade() else {
            return;
        };
        match a.learn_ended_sessions(since).await {
            Ok(as_of) => {
                if std::mem::take(&mut failing) {
                    tracing::info!("ended sessions fetched again");
                }
                since = as_of.saturating_sub(1_000);
            }
            // Once per outage: the identity service may just be starting.
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(code = ?e.code(), error = %e.message(), "ended sessions not fetched: a logout elsewhere is not refused here until they are");
            }
            Err(e) => tracing::debug!(error = %e.message(), "ended sessions not fetched"),
        }
        drop(a);
        tokio::time::sleep(ENDED_SESSIONS_POLL).await;
    }
}

impl std::fmt::Debug for Authn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authn")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn caller_of(ctx: &ResolverContext<'_>) -> Option<Principal> {
    ctx.ctx.data_opt::<Caller>().and_then(|c| c.0.clone())
}

fn unauthenticated() -> async_graphql::Error {
    errors::coded(UNAUTHENTICATED, "log in first: this needs an access token")
}

/// The caller, if `audience` admits them.
pub fn allow(
    ctx: &ResolverContext<'_>,
    audience: Audience,
) -> async_graphql::Result<Option<Principal>> {
    let caller = caller_of(ctx);
    let role = match audience {
        Audience::Public => return Ok(caller),
        Audience::Customer => CUSTOMER,
        Audience::BackOffice => BACK_OFFICE,
    };
    match caller {
        None => Err(unauthenticated()),
        Some(p) if !p.has_role(role) => Err(errors::coded(
            FORBIDDEN,
            format!("only the {role} role may do this"),
        )),
        Some(p) => Ok(Some(p)),
    }
}

/// The caller's id for an argument that names the subject: omitted, it is the caller;
/// naming anybody else is FORBIDDEN.
pub fn caller_id(
    caller: &Option<Principal>,
    arg: &str,
    given: Option<String>,
) -> async_graphql::Result<String> {
    let p = caller.as_ref().ok_or_else(unauthenticated)?;
    match given {
        Some(g) if Uuid::parse_str(&g).ok() != Some(p.subject) => Err(errors::coded(
            FORBIDDEN,
            format!("`{arg}` names somebody else: omit it to act as yourself"),
        )),
        _ => Ok(p.subject.to_string()),
    }
}

/// Whether the `kind` instance `id` must be claimed by the caller first: false when it
/// is theirs (or, unclaimable, absent: the call answers NOT_FOUND); FORBIDDEN when it
/// is somebody else's, or nobody's and `claimable` is false.
pub async fn owned<S, C>(
    ctx: &ResolverContext<'_>,
    caller: &Option<Principal>,
    kind: &str,
    id: &str,
    pick: fn(&S) -> &ByKey<C>,
    owner_field: &str,
    claimable: bool,
) -> async_graphql::Result<bool>
where
    S: Send + Sync + 'static,
    C: Clone + Send + Sync + 'static,
{
    let p = caller.as_ref().ok_or_else(unauthenticated)?;
    let loaders = ctx
        .ctx
        .data::<S>()
        .map_err(|e| errors::internal(e.message))?;
    let found = match pick(loaders).load_one(id.to_string()).await {
        Ok(found) => found.transpose()?,
        Err(never) => match never {},
    };
    let owner = match &found {
        None => return Ok(claimable),
        Some(Value::Object(m)) => m.get(owner_field),
        Some(_) => None,
    };
    match owner {
        Some(Value::String(o)) if Uuid::parse_str(o).ok() == Some(p.subject) => Ok(false),
        Some(Value::String(_)) => Err(errors::coded(
            FORBIDDEN,
            format!("{kind} {id} is somebody else's"),
        )),
        _ if claimable => Ok(true),
        _ => Err(errors::coded(FORBIDDEN, format!("{kind} {id} is nobody's"))),
    }
}

/// A claim's answer: the aggregate refusing to give an instance away (it has an owner
/// the read model did not show yet) is FORBIDDEN, like an owner seen before the call.
pub fn claimed<T>(
    service: &str,
    r: Result<tonic::Response<T>, tonic::Status>,
) -> async_graphql::Result<()> {
    match r {
        Ok(_) => Ok(()),
        Err(s) if s.code() == tonic::Code::FailedPrecondition => {
            Err(errors::coded(FORBIDDEN, s.message()))
        }
        Err(s) => Err(errors::from_status(service, &s)),
    }
}

/// The caller's id, for a claim.
pub fn subject(caller: &Option<Principal>) -> async_graphql::Result<String> {
    caller
        .as_ref()
        .map(|p| p.subject.to_string())
        .ok_or_else(unauthenticated)
}

fn authn<'a>(ctx: &ResolverContext<'a>) -> async_graphql::Result<&'a Arc<Authn>> {
    ctx.ctx
        .data::<Arc<Authn>>()
        .map_err(|e| errors::internal(e.message))
}

fn call_of(ctx: &ResolverContext<'_>) -> Call {
    ctx.ctx
        .data_opt::<Call>()
        .cloned()
        .unwrap_or_else(|| Call::new(Uuid::new_v4().to_string(), None))
}

fn failed(s: &tonic::Status) -> async_graphql::Error {
    errors::from_status(IDENTITY, s)
}

/// After the register command: the new subject's login.
pub async fn set_credentials(
    ctx: &ResolverContext<'_>,
    subject: &str,
    email: &str,
    password: String,
) -> async_graphql::Result<()> {
    let req = pb::SetCredentialsRequest {
        subject: subject.to_string(),
        email: email.to_string(),
        password,
    };
    let mut client = authn(ctx)?.client.clone();
    client
        .set_credentials(call_of(ctx).request(req))
        .await
        .map_err(|s| failed(&s))?;
    Ok(())
}

/// Before the forget command: the caller's login and sessions end.
pub async fn forget(
    ctx: &ResolverContext<'_>,
    caller: &Option<Principal>,
) -> async_graphql::Result<()> {
    let subject = subject(caller)?;
    let mut client = authn(ctx)?.client.clone();
    client
        .forget(call_of(ctx).request(pb::ForgetRequest { subject }))
        .await
        .map_err(|s| failed(&s))?;
    if let Some(p) = caller {
        authn(ctx)?.end(p);
    }
    Ok(())
}

fn session_value(subject_field: &str, s: pb::Session) -> Value {
    let roles = s.roles.into_iter().map(Value::from).collect();
    let fields = [
        ("accessToken", Value::from(s.access_token)),
        ("expiresIn", Value::from(s.expires_in)),
        ("refreshToken", Value::from(s.refresh_token)),
        ("refreshExpiresIn", Value::from(s.refresh_expires_in)),
        (subject_field, Value::from(s.subject)),
        ("roles", Value::List(roles)),
    ];
    Value::Object(fields.into_iter().map(|(k, v)| (Name::new(k), v)).collect())
}

/// `Mutation.login`.
pub fn login(ctx: ResolverContext<'_>) -> FieldFuture<'_> {
    FieldFuture::new(async move {
        let mut a = Args::input(&ctx.args)?;
        let req = pb::LoginRequest {
            email: a.string("email"),
            password: a.string("password"),
        };
        a.finish()?;
        let authn = authn(&ctx)?;
        let r = authn.client.clone().login(call_of(&ctx).request(req)).await;
        session_answer(authn, r)
    })
}

/// A `Session` from the identity service's answer to a login or a refresh.
fn session_answer<'a>(
    authn: &Authn,
    r: Result<tonic::Response<pb::Session>, tonic::Status>,
) -> async_graphql::Result<Option<FieldValue<'a>>> {
    let session = r.map_err(|s| failed(&s))?.into_inner();
    Ok(Some(FieldValue::value(session_value(
        authn.subject_field,
        session,
    ))))
}

/// `Mutation.refreshSession`.
pub fn refresh(ctx: ResolverContext<'_>) -> FieldFuture<'_> {
    FieldFuture::new(async move {
        let mut a = Args::of(&ctx.args);
        let req = pb::RefreshRequest {
            refresh_token: a.string("refreshToken"),
        };
        a.finish()?;
        let authn = authn(&ctx)?;
        let r = authn
            .client
            .clone()
            .refresh(call_of(&ctx).request(req))
            .await;
        session_answer(authn, r)
    })
}

/// `Mutation.logout`: the caller's session ends (its refresh token at once, its
/// access token here at once and on every other BFF within [`ENDED_SESSIONS_POLL`]).
pub fn logout(ctx: ResolverContext<'_>) -> FieldFuture<'_> {
    FieldFuture::new(async move {
        let p = caller_of(&ctx).ok_or_else(unauthenticated)?;
        let authn = authn(&ctx)?;
        let req = pb::LogoutRequest {
            session_id: p.session.to_string(),
        };
        authn
            .client
            .clone()
            .logout(call_of(&ctx).request(req))
            .await
            .map_err(|s| failed(&s))?;
        authn.end(&p);
        Ok(Some(FieldValue::value(Value::from(true))))
    })
}

#[cfg(test)]
mod tests {
    use super::{bearer, claimed};

    #[test]
    fn a_refused_claim_is_forbidden() {
        let code = |r: async_graphql::Result<()>| {
            r.err()
                .and_then(|e| e.extensions)
                .and_then(|x| x.get("code").map(|c| c.to_string()))
        };
        let taken = Err::<tonic::Response<()>, _>(tonic::Status::failed_precondition(
            "the cart belongs to another customer",
        ));
        assert_eq!(
            code(claimed("cart", taken)).as_deref(),
            Some("\"FORBIDDEN\"")
        );
        let down = Err::<tonic::Response<()>, _>(tonic::Status::unavailable("down"));
        assert_eq!(
            code(claimed("cart", down)).as_deref(),
            Some("\"UNAVAILABLE\"")
        );
        assert!(claimed("cart", Ok(tonic::Response::new(()))).is_ok());
    }

    #[test]
    fn bearer_tokens() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
    }
}
