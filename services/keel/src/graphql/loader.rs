//! Fetches by id for relation fields: per request, the ids asked for while a batch
//! gathers are fetched each once, in one call where the service has a batch get
//! (chunks of at most [`BATCH_MAX`] ids), else with concurrent calls; an unknown id is
//! absent.

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

/// The items of a batch of ids that exist, by id.
pub type FetchedMany = async_graphql::Result<HashMap<String, Value>>;

/// Fetches many items by id in one call.
pub type FetchMany<C> = fn(C, Vec<String>, Call) -> BoxFuture<FetchedMany>;

/// The most ids one batch call carries (the generated batch gets take 500).
pub const BATCH_MAX: usize = 500;

enum Fetcher<C> {
    One(Fetch<C>),
    Many(FetchMany<C>),
}

pub struct KeyLoader<C> {
    client: C,
    call: Call,
    fetch: Fetcher<C>,
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
        fetch: Fetcher::One(fetch),
    };
    DataLoader::with_cache(l, tokio::spawn, HashMapCache::default())
}

/// A loader for one request that fetches each batch of ids in one call.
pub fn batch_loader<C: Clone + Send + Sync + 'static>(
    client: C,
    call: &Call,
    fetch: FetchMany<C>,
) -> ByKey<C> {
    let l = KeyLoader {
        client,
        call: call.clone(),
        fetch: Fetcher::Many(fetch),
    };
    DataLoader::with_cache(l, tokio::spawn, HashMapCache::default())
}

impl<C: Clone + Send + Sync + 'static> Loader<String> for KeyLoader<C> {
    type Value = async_graphql::Result<Value>;
    type Error = Infallible;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Self::Value>, Infallible> {
        let fetch = match self.fetch {
            Fetcher::One(fetch) => fetch,
            Fetcher::Many(fetch) => return Ok(self.load_many(fetch, keys).await),
        };
        let calls = keys.iter().cloned().map(|id| {
            let fetched = fetch(self.client.clone(), id.clone(), self.call.clone());
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

impl<C: Clone + Send + Sync + 'static> KeyLoader<C> {
    /// One call per chunk of ids; a failed call fails each of its ids.
    async fn load_many(
        &self,
        fetch: FetchMany<C>,
        keys: &[String],
    ) -> HashMap<String, async_graphql::Result<Value>> {
        let mut out = HashMap::new();
        for chunk in keys.chunks(BATCH_MAX) {
            match fetch(self.client.clone(), chunk.to_vec(), self.call.clone()).await {
                Ok(found) => out.extend(found.into_iter().map(|(id, v)| (id, Ok(v)))),
                Err(e) => out.extend(chunk.iter().map(|id| (id.clone(), Err(e.clone())))),
            }
        }
        out
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
