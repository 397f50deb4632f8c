//! Fetches by id for relation fields: per request, the ids asked for while a batch
//! gathers are fetched with concurrent calls, each id once (there is no batch RPC);
//! an unknown id is absent.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;

use async_graphql::Value;
use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use async_graphql::dynamic::{FieldFuture, FieldValue, ResolverContext};
use futures_util::StreamExt;

use super::errors;
use super::upstream::Call;
use super::values::parent_str;

/// How many fetches one batch runs at once.
const FAN_OUT: usize = 16;

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// One fetched item: `None` when there is none (NOT_FOUND).
pub type Fetched = async_graphql::Result<Option<Value>>;

/// Fetches one item by id with a client and the request's call metadata.
pub type Fetch<C> = fn(C, String, Call) -> BoxFuture<Fetched>;

pub struct KeyLoader<C> {
    client: C,
    call: Call,
    fetch: Fetch<C>,
}

/// A per-request loader.
pub type ByKey<C> = DataLoader<KeyLoader<C>, HashMapCache>;

/// A loader for one request, fetching with `fetch` over `client`.
pub fn loader<C: Clone + Send + Sync + 'static>(
    client: C,
    call: &Call,
    fetch: Fetch<C>,
) -> ByKey<C> {
    let l = KeyLoader {
        client,
        call: call.clone(),
        fetch,
    };
    DataLoader::with_cache(l, tokio::spawn, HashMapCache::default())
}

impl<C: Clone + Send + Sync + 'static> Loader<String> for KeyLoader<C> {
    type Value = async_graphql::Result<Value>;
    type Error = Infallible;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Self::Value>, Infallible> {
        let calls = keys.iter().cloned().map(|id| {
            let fetched = (self.fetch)(self.client.clone(), id.clone(), self.call.clone());
            async move { (id, fetched.await) }
        });
        let results: Vec<_> = futures_util::stream::iter(calls)
            .buffer_unordered(FAN_OUT)
            .collect()
            .await;
        Ok(results
            .into_iter()
            .filter_map(|(id, r)| r.transpose().map(|r| (id, r)))
            .collect())
    }
}

/// A to-one relation: the parent's `key` field holds the id, loaded through the
/// request's loaders `S` (the one `pick` names); null without an error when the parent
/// has none or the item is gone.
pub fn related<'a, S, C>(
    ctx: ResolverContext<'a>,
    key: &str,
    pick: fn(&S) -> &ByKey<C>,
) -> FieldFuture<'a>
where
    S: Send + Sync + 'static,
    C: Clone + Send + Sync + 'static,
{
    let id = parent_str(ctx.parent_value, key).filter(|id| uuid::Uuid::parse_str(id).is_ok());
    let Some(id) = id else {
        return FieldFuture::Value(None);
    };
    FieldFuture::new(async move {
        let loaders = ctx
            .ctx
            .data::<S>()
            .map_err(|e| errors::internal(e.message))?;
        match pick(loaders).load_one(id).await {
            Ok(found) => Ok(found.transpose()?.map(FieldValue::value)),
            Err(never) => match never {},
        }
    })
}
