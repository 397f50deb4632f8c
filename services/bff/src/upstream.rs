//! The gRPC clients of the services, over lazily connecting channels (the BFF starts
//! without its upstreams; a call to a missing one fails with UNAVAILABLE), the
//! per-request scope (request id, product loader) and the calls' metadata.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use async_graphql::Context;
use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use futures_util::StreamExt;
use shop_cart::pb::cart_command_service_client::CartCommandServiceClient;
use shop_cart::pb::cart_query_service_client::CartQueryServiceClient;
use shop_order::pb::order_service_client::OrderServiceClient;
use shop_product::pb::product_service_client::ProductServiceClient;
use shop_product::pb::{GetProductRequest, Product};
use shop_user::pb::user_service_client::UserServiceClient;
use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};

use crate::BuildError;
use crate::config::UpstreamConfig;
use crate::errors;

/// How many GetProduct calls one batch of the product loader runs at once.
const PRODUCT_FAN_OUT: usize = 16;

/// One client per upstream; cloning is cheap (they share the channel).
#[derive(Clone, Debug)]
pub struct Upstreams {
    pub product: ProductServiceClient<Channel>,
    pub order: OrderServiceClient<Channel>,
    pub cart_command: CartCommandServiceClient<Channel>,
    pub cart_query: CartQueryServiceClient<Channel>,
    pub user: UserServiceClient<Channel>,
    pub timeout: Duration,
}

impl Upstreams {
    /// Creates the channels without connecting. Must run inside a tokio runtime.
    pub fn connect_lazy(c: &UpstreamConfig) -> Result<Upstreams, BuildError> {
        let channel = |name: &str, url: &str| -> Result<Channel, BuildError> {
            let endpoint =
                Endpoint::from_shared(url.to_string()).map_err(|e| BuildError::Upstream {
                    name: name.to_string(),
                    url: url.to_string(),
                    error: e.to_string(),
                })?;
            Ok(endpoint
                .connect_timeout(c.connect_timeout())
                .timeout(c.timeout())
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(30))
                .keep_alive_while_idle(false)
                .connect_lazy())
        };
        Ok(Upstreams {
            product: ProductServiceClient::new(channel("product", &c.product_url)?),
            order: OrderServiceClient::new(channel("order", &c.order_url)?),
            cart_command: CartCommandServiceClient::new(channel(
                "cart-command",
                &c.cart_command_url,
            )?),
            cart_query: CartQueryServiceClient::new(channel("cart-query", &c.cart_query_url)?),
            user: UserServiceClient::new(channel("user", &c.user_url)?),
            timeout: c.timeout(),
        })
    }
}

/// What one GraphQL request carries to its resolvers.
pub struct RequestScope {
    pub request_id: String,
    /// `CartItem.product` / `OrderDetail.product`: one GetProduct per distinct id.
    pub products: DataLoader<ProductLoader, HashMapCache>,
}

impl RequestScope {
    pub fn new(request_id: String, upstreams: &Upstreams) -> RequestScope {
        let loader = ProductLoader {
            client: upstreams.product.clone(),
            request_id: request_id.clone(),
            timeout: upstreams.timeout,
        };
        RequestScope {
            request_id,
            products: DataLoader::with_cache(loader, tokio::spawn, HashMapCache::default()),
        }
    }
}

/// A gRPC request carrying the caller's `x-request-id` and the call deadline.
pub fn grpc<T>(ctx: &Context<'_>, message: T) -> tonic::Request<T> {
    let (request_id, timeout) = match (ctx.data_opt::<RequestScope>(), ctx.data_opt::<Upstreams>())
    {
        (Some(s), u) => (s.request_id.clone(), u.map(|u| u.timeout)),
        (None, u) => (uuid::Uuid::new_v4().to_string(), u.map(|u| u.timeout)),
    };
    request(message, &request_id, timeout)
}

fn request<T>(message: T, request_id: &str, timeout: Option<Duration>) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    if let Ok(v) = MetadataValue::try_from(request_id) {
        r.metadata_mut().insert("x-request-id", v);
    }
    if let Some(t) = timeout {
        r.set_timeout(t);
    }
    r
}

/// Loads products by id for one request: the ids asked for while a batch gathers are
/// fetched with concurrent GetProduct calls, each id once; an unknown id is absent.
pub struct ProductLoader {
    client: ProductServiceClient<Channel>,
    request_id: String,
    timeout: Duration,
}

impl Loader<String> for ProductLoader {
    type Value = Result<Product, async_graphql::Error>;
    type Error = Infallible;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Self::Value>, Infallible> {
        let calls = keys.iter().cloned().map(|id| {
            let mut client = self.client.clone();
            let req = request(
                GetProductRequest { id: id.clone() },
                &self.request_id,
                Some(self.timeout),
            );
            async move { (id, client.get_product(req).await) }
        });
        let results: Vec<_> = futures_util::stream::iter(calls)
            .buffer_unordered(PRODUCT_FAN_OUT)
            .collect()
            .await;
        let mut found = HashMap::new();
        for (id, result) in results {
            match result {
                Ok(r) => {
                    if let Some(p) = r.into_inner().product {
                        found.insert(id, Ok(p));
                    }
                }
                Err(s) if s.code() == Code::NotFound => {}
                Err(s) => {
                    found.insert(id, Err(errors::from_status("product", &s)));
                }
            }
        }
        Ok(found)
    }
}
