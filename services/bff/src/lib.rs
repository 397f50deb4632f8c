//! The shop's GraphQL gateway (BFF).
//!
//! The schema served is the generated SDL (`generated/graphql/schema.graphql`), built at
//! start into an `async_graphql::dynamic::Schema` (see [`sdl`]) with the generated
//! resolvers of `shop_bff` (one per root and relation field, from the same IR as the
//! SDL); they call the services over gRPC through their Envoy proxies and map statuses to
//! GraphQL errors with `extensions.code` (`keel::graphql`). This crate adds what no
//! spec decides: HTTP, limits, error codes of rejected operations, configuration.
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! let router = bff::app(&bff::Config::default())?; // inside a tokio runtime
//! # Ok(()) }
//! ```

pub mod config;
pub mod errors;
mod http;
pub mod limits;
pub mod sdl;

use std::future::Future;

use async_graphql::dynamic::Schema;

pub use config::{Config, Limits, UpstreamConfig};
pub use sdl::SDL;
pub use shop_bff::Upstreams;

/// Why the BFF cannot start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("the generated SDL does not parse: {0}")]
    Sdl(String),
    #[error("the generated SDL uses something this BFF does not support: {0}")]
    Unsupported(String),
    #[error("no resolver for `{0}` in the generated shop_bff::registry: regenerate")]
    MissingResolver(String),
    #[error("shop_bff::registry has `{0}`, which is not a field of the SDL: regenerate")]
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

impl From<keel::graphql::UpstreamError> for BuildError {
    fn from(e: keel::graphql::UpstreamError) -> BuildError {
        BuildError::Upstream {
            name: e.name,
            url: e.url,
            error: e.error,
        }
    }
}

/// The executable schema: the generated SDL with the generated resolvers, the upstream
/// clients as schema data, depth and complexity limits, and error codes.
pub fn schema(upstreams: Upstreams, limits: Limits) -> Result<Schema, BuildError> {
    let sdl = sdl::Sdl::generated()?;
    let builder = Schema::build(&sdl.query, sdl.mutation.as_deref(), None);
    sdl.register(builder, &shop_bff::registry())?
        .data(upstreams)
        .extension(limits::Policy(limits))
        .finish()
        .map_err(|e| BuildError::Schema(e.0))
}

/// The schema and its upstreams: what a GraphQL request runs against.
#[derive(Clone)]
pub struct Bff {
    schema: Schema,
    upstreams: Upstreams,
}

impl Bff {
    /// Builds the schema and the (lazily connecting) upstream channels. Needs a tokio
    /// runtime; does not contact any upstream.
    pub fn new(config: &Config) -> Result<Bff, BuildError> {
        let upstreams = Upstreams::connect_lazy(&config.upstreams)?;
        let schema = schema(upstreams.clone(), config.limits)?;
        Ok(Bff { schema, upstreams })
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
        let (call, loaders) = self.upstreams.request(request_id);
        let request = request.into().data(call).data(loaders);
        self.schema.execute(request).await
    }
}

/// The HTTP app: `POST /graphql` (and `GET` for queries), GraphiQL at `/`, `/healthz`.
/// Needs a tokio runtime (the channels are created in it); starts without upstreams.
pub fn app(config: &Config) -> Result<axum::Router, BuildError> {
    Ok(http::router(Bff::new(config)?))
}

/// Serves [`app`] on `config.listen` until `shutdown` resolves, then drains.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    serve_on(config, listener, shutdown).await
}

/// Serves [`app`] on an already bound `listener` (`config.listen` is not used), until
/// `shutdown` resolves, then drains.
pub async fn serve_on(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = app(&config)?;
    tracing::info!(
        listen = %listener.local_addr()?,
        upstreams = ?config.upstreams.urls(),
        "bff serving"
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    tracing::info!("bff stopped");
    Ok(())
}

#[cfg(test)]
mod tests;
