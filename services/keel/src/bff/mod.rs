//! The GraphQL gateway (BFF) every system gets: the generated SDL built into an
//! `async_graphql::dynamic::Schema` with the generated resolvers ([`sdl`]), depth and
//! complexity limits and error codes ([`limits`], [`errors`]), and HTTP ([`http`]:
//! GraphQL over POST and GET, GraphiQL, health, request ids).
//!
//! What is the system's comes from its generated `<system>-bff` crate as an [`Api`]: the
//! SDL, the resolvers keyed by `"Type.field"`, and what each request carries (the
//! upstream call and the loaders). That crate also generates the configuration and the
//! binary; nothing here knows a type of any one system.

pub mod errors;
mod http;
pub mod limits;
pub mod sdl;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use async_graphql::dynamic::Schema;

pub use axum::Router;

use crate::graphql::{Call, Resolve, UpstreamError};

pub const DEFAULT_MAX_DEPTH: usize = 10;
pub const DEFAULT_MAX_COMPLEXITY: usize = 500;

/// What one GraphQL operation may ask for.
#[derive(clap::Args, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deepest allowed selection nesting.
    #[arg(long, env = "GRAPHQL_MAX_DEPTH", default_value_t = DEFAULT_MAX_DEPTH)]
    pub max_depth: usize,
    /// Most fields one operation may select (each field counts 1).
    #[arg(long, env = "GRAPHQL_MAX_COMPLEXITY", default_value_t = DEFAULT_MAX_COMPLEXITY)]
    pub max_complexity: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: DEFAULT_MAX_DEPTH,
            max_complexity: DEFAULT_MAX_COMPLEXITY,
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
/// as schema data, depth and complexity limits, and error codes.
pub fn schema<D: Send + Sync + 'static>(
    api: &Api,
    data: D,
    limits: Limits,
) -> Result<Schema, BuildError> {
    let sdl = sdl::Sdl::parse(api.sdl)?;
    let builder = Schema::build(&sdl.query, sdl.mutation.as_deref(), None);
    sdl.register(builder, &api.registry, api.relations)?
        .data(data)
        .extension(limits::Policy(limits))
        .finish()
        .map_err(|e| BuildError::Schema(e.0))
}

type PerRequest = dyn Fn(async_graphql::Request, String) -> async_graphql::Request + Send + Sync;

/// The schema and what every request gets: what a GraphQL request runs against.
#[derive(Clone)]
pub struct Bff {
    schema: Schema,
    per_request: Arc<PerRequest>,
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
        let schema = schema(api, upstreams.clone(), limits)?;
        let per_request = Arc::new(move |req: async_graphql::Request, id: String| {
            let (call, loaders) = request(&upstreams, id);
            req.data(call).data(loaders)
        });
        Ok(Bff {
            schema,
            per_request,
        })
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
        let request = (self.per_request)(request.into(), request_id.into());
        self.schema.execute(request).await
    }

    /// The HTTP app: `POST /graphql` (and `GET` for queries), GraphiQL at `/`, `/healthz`.
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
