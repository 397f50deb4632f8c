//! The GraphQL gateway (BFF) every system gets: the generated SDL built into an
//! `async_graphql::dynamic::Schema` with the generated resolvers ([`sdl`]), depth and
//! cost limits and error codes ([`limits`], [`cost`], [`errors`]), and HTTP ([`http`]:
//! GraphQL over HTTP with POST and GET, health, request ids, and the edge's guards: body
//! size, media types, CORS ([`cors`]), request timeout), and the web pages ([`web`]: the
//! storefront, the back-office, the GraphQL console).
//!
//! What is the system's comes from its generated `<system>-bff` crate as an [`Api`]: the
//! SDL, the resolvers keyed by `"Type.field"`, and what each request carries (the
//! upstream call and the loaders). That crate also generates the configuration and the
//! binary; nothing here knows a type of any one system.

pub mod cors;
pub mod cost;
pub mod errors;
mod http;
pub mod limits;
mod over_http;
pub mod sdl;
#[cfg(test)]
mod tests;
pub mod web;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use async_graphql::dynamic::Schema;

pub use axum::Router;

use crate::graphql::{Call, Resolve, UpstreamError};

pub use cors::Origins;
pub use web::Web;

pub const DEFAULT_MAX_DEPTH: usize = 10;
/// A page of 100 items with a few fields each and its `pageInfo` (the load generator's
/// product listing costs 700) passes; a page of pages does not.
pub const DEFAULT_MAX_COMPLEXITY: usize = 1_000;
pub const DEFAULT_MAX_BODY_BYTES: usize = 102_400;
/// Above the upstream calls' default timeout (10 s), so that those time out first.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 15_000;

/// What one GraphQL operation and one HTTP request may ask for, and who may ask from a
/// browser.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Deepest allowed selection nesting.
    #[arg(long, env = "GRAPHQL_MAX_DEPTH", default_value_t = DEFAULT_MAX_DEPTH)]
    pub max_depth: usize,
    /// Highest cost of one operation: each field (`__typename` too) costs 1 plus the cost
    /// of its selection, times its page size if it has a `first` argument.
    #[arg(long, env = "GRAPHQL_MAX_COMPLEXITY", default_value_t = DEFAULT_MAX_COMPLEXITY)]
    pub max_complexity: usize,
    /// Largest request body, in bytes (413 `PAYLOAD_TOO_LARGE` above).
    #[arg(long, env = "GRAPHQL_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// Longest an HTTP request may take, in milliseconds (504 `TIMEOUT` after).
    #[arg(long, env = "GRAPHQL_REQUEST_TIMEOUT_MS", default_value_t = DEFAULT_REQUEST_TIMEOUT_MS)]
    pub request_timeout_ms: u64,
    /// Browser origins allowed to call from another origin (CORS), comma-separated, e.g.
    /// `https://shop.example,http://localhost:5173`; none when empty.
    #[arg(long, env = "CORS_ALLOWED_ORIGINS", default_value = "", value_parser = Origins::parse)]
    pub cors_allowed_origins: Origins,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: DEFAULT_MAX_DEPTH,
            max_complexity: DEFAULT_MAX_COMPLEXITY,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            request_timeout_ms: DEFAULT_REQUEST_TIMEOUT_MS,
            cors_allowed_origins: Origins::default(),
        }
    }
}

/// The generated part of one system's BFF.
pub struct Api {
    /// The schema served, as generated (`generated/graphql/schema.graphql`).
    pub sdl: &'static str,
    /// The `"Type.field"` keys of relation fields, which need a resolver like root fields.
    pub relations: &'static [&'static str],
    pub registry: BTreeMap<&'static str, Resolve>,
    /// The web files of the system: the generated client and back-office metadata, and
    /// the storefront if the spec names one ([`web`]).
    pub web: Web,
}

/// Why the BFF cannot start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("the generated SDL does not parse: {0}")]
    Sdl(String),
    #[error("the generated SDL uses something this BFF does not support: {0}")]
    Unsupported(String),
    #[error("no resolver for `{0}` in the generated registry: regenerate")]
    MissingResolver(String),
    #[error("the generated registry has `{0}`, which is not a field of the SDL: regenerate")]
    UnknownResolver(String),
    #[error("building the schema failed: {0}")]
    Schema(String),
    #[error("bad URL for upstream {name} ({url}): {error}")]
    Upstream {
        name: String,
        url: String,
        error: String,
    },
}

impl From<UpstreamError> for BuildError {
    fn from(e: UpstreamError) -> BuildError {
        BuildError::Upstream {
            name: e.name,
            url: e.url,
            error: e.error,
        }
    }
}

/// The executable schema: `api`'s SDL with its resolvers, `data` (the upstream clients)
/// as schema data, depth and cost limits, and error codes.
pub fn schema<D: Send + Sync + 'static>(
    api: &Api,
    data: D,
    limits: Limits,
) -> Result<Schema, BuildError> {
    let sdl = sdl::Sdl::parse(api.sdl)?;
    let builder = Schema::build(&sdl.query, sdl.mutation.as_deref(), None);
    let shape = Arc::new(sdl.shape());
    sdl.register(builder, &api.registry, api.relations)?
        .data(data)
        .extension(limits::Policy { limits, shape })
        .finish()
        .map_err(|e| BuildError::Schema(e.0))
}

type PerRequest = dyn Fn(async_graphql::Request, String) -> async_graphql::Request + Send + Sync;

/// The schema and what every request gets: what a GraphQL request runs against.
#[derive(Clone)]
pub struct Bff {
    schema: Schema,
    per_request: Arc<PerRequest>,
    limits: Limits,
    /// With `auth:`: verifies each request's access token; the session fields use it.
    auth: Option<Arc<crate::graphql::Authn>>,
    /// What browsers get besides GraphQL.
    web: Web,
}

impl Bff {
    /// The schema of `api` over `upstreams`; `request` makes what one request carries
    /// (the upstream call with its request id, and the request's loaders).
    pub fn new<U, L>(
        api: &Api,
        upstreams: U,
        limits: Limits,
        request: fn(&U, String) -> (Call, L),
    ) -> Result<Bff, BuildError>
    where
        U: Clone + Send + Sync + 'static,
        L: Send + Sync + 'static,
    {
        let schema = schema(api, upstreams.clone(), limits.clone())?;
        let per_request = Arc::new(move |req: async_graphql::Request, id: String| {
            let (call, loaders) = request(&upstreams, id);
            req.data(call).data(loaders)
        });
        Ok(Bff {
            schema,
            per_request,
            limits,
            auth: None,
            web: api.web,
        })
    }

    /// Requests carry the caller their bearer token names (verified by `auth`), and
    /// `/.well-known/jwks.json` publishes the keys.
    pub fn with_auth(mut self, auth: Arc<crate::graphql::Authn>) -> Bff {
        self.auth = Some(auth);
        self
    }

    pub fn auth(&self) -> Option<&Arc<crate::graphql::Authn>> {
        self.auth.as_ref()
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Runs one GraphQL request; `request_id` goes to every gRPC call as `x-request-id`.
    pub async fn execute(
        &self,
        request: impl Into<async_graphql::Request>,
        request_id: impl Into<String>,
    ) -> async_graphql::Response {
        self.execute_as(request, request_id, crate::graphql::Caller::default())
            .await
    }

    /// [`Bff::execute`] for a verified `caller`.
    pub async fn execute_as(
        &self,
        request: impl Into<async_graphql::Request>,
        request_id: impl Into<String>,
        caller: crate::graphql::Caller,
    ) -> async_graphql::Response {
        let mut request = (self.per_request)(request.into(), request_id.into()).data(caller);
        if let Some(auth) = &self.auth {
            request = request.data(auth.clone());
        }
        self.schema.execute(request).await
    }

    /// The HTTP app: `POST /graphql` (and `GET` for queries), the web pages ([`web`]),
    /// `/healthz`, behind the body size limit, the request timeout and the CORS policy of its limits.
    pub fn router(self) -> Router {
        http::router(self)
    }

    /// Serves [`Bff::router`] on `listener` until `shutdown` resolves, then drains.
    pub async fn serve_on(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tracing::info!(listen = %listener.local_addr()?, "bff serving");
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await?;
        tracing::info!("bff stopped");
        Ok(())
    }
}
