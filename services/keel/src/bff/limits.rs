//! Depth and cost limits, and error codes on every response.
//!
//! An operation deeper than [`Limits::max_depth`] or costing more than
//! [`Limits::max_complexity`] ([`cost`]) is rejected before anything runs, with
//! `QUERY_TOO_DEEP` or `QUERY_TOO_COMPLEX`. Introspection-only operations (GraphiQL's
//! schema fetch nests `ofType` seven to nine levels deep) get [`INTROSPECTION_MAX_DEPTH`]
//! and [`INTROSPECTION_MAX_COMPLEXITY`] instead; they touch no upstream.
//!
//! Every error gets `extensions.code` ([`errors::classify`]) and, when a resolver of a
//! non-null field failed, the `path` the dynamic schema leaves out.

use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextPrepareRequest, NextRequest,
    NextResolve, NextValidation, ResolveInfo,
};
use async_graphql::parser::types::{
    ExecutableDocument, OperationDefinition, Selection, SelectionSet,
};
use async_graphql::{
    PathSegment, QueryPathNode, Request, Response, ServerError, ServerResult, ValidationResult,
    Value, Variables,
};

use super::Limits;
use super::cost::{self, Shape};
use super::errors::{self, QUERY_TOO_COMPLEX, QUERY_TOO_DEEP};

pub const INTROSPECTION_MAX_DEPTH: usize = 16;
pub const INTROSPECTION_MAX_COMPLEXITY: usize = 1_000;

/// The schema extension: limits per operation, codes on every error. `shape` is the
/// schema's, for costs ([`super::sdl::Sdl::shape`]).
pub struct Policy {
    pub limits: Limits,
    pub shape: Arc<Shape>,
}

impl ExtensionFactory for Policy {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(PolicyExtension {
            limits: self.limits.clone(),
            shape: self.shape.clone(),
            operation_name: Mutex::new(None),
            parsed: Mutex::new(None),
        })
    }
}

/// One per request: what validation needs from the earlier steps.
struct PolicyExtension {
    limits: Limits,
    shape: Arc<Shape>,
    operation_name: Mutex<Option<String>>,
    parsed: Mutex<Option<(ExecutableDocument, Variables)>>,
}

#[async_trait::async_trait]
impl Extension for PolicyExtension {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = next.run(ctx).await;
        for e in &mut response.errors {
            errors::classify(e, &self.limits);
        }
        response
    }

    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        let node = info.path_node;
        match next.run(ctx, info).await {
            Err(mut e) if e.path.is_empty() => {
                e.path = path_of(node);
                Err(e)
            }
            other => other,
        }
    }

    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let request = next.run(ctx, request).await?;
        *lock(&self.operation_name) = request.operation_name.clone();
        Ok(request)
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = next.run(ctx, query, variables).await?;
        *lock(&self.parsed) = Some((doc.clone(), variables.clone()));
        Ok(doc)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await?;
        let Some((doc, variables)) = lock(&self.parsed).take() else {
            return Ok(result);
        };
        let (max_depth, max_complexity) = if introspection_only(&doc) {
            (
                INTROSPECTION_MAX_DEPTH.max(self.limits.max_depth),
                INTROSPECTION_MAX_COMPLEXITY.max(self.limits.max_complexity),
            )
        } else {
            (self.limits.max_depth, self.limits.max_complexity)
        };
        if result.depth > max_depth {
            return Err(vec![rejected(
                QUERY_TOO_DEEP,
                format!(
                    "Query is nested too deep: {} levels, at most {max_depth} are allowed.",
                    result.depth
                ),
            )]);
        }
        let name = lock(&self.operation_name).clone();
        let cost = selected(&doc, name.as_deref())
            .map_or(0, |op| cost::operation(&self.shape, &doc, op, &variables));
        if cost > max_complexity as u64 {
            return Err(vec![rejected(
                QUERY_TOO_COMPLEX,
                format!(
                    "Query is too complex: it costs {cost}, at most {max_complexity} is allowed (each field costs 1, times the page size of a list)."
                ),
            )]);
        }
        Ok(result)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The operation a request runs; none when its name matches none (execution says so).
fn selected<'d>(
    doc: &'d ExecutableDocument,
    name: Option<&str>,
) -> Option<&'d OperationDefinition> {
    let mut ops = doc.operations.iter();
    let op = match name {
        Some(name) => ops.find(|(n, _)| n.is_some_and(|n| n.as_str() == name)),
        None => ops.next().filter(|_| doc.operations.iter().count() == 1),
    };
    op.map(|(_, op)| &op.node)
}

fn path_of(node: &QueryPathNode<'_>) -> Vec<PathSegment> {
    match serde_json::to_value(node) {
        Ok(serde_json::Value::Array(segments)) => segments
            .into_iter()
            .filter_map(|s| match s {
                serde_json::Value::String(name) => Some(PathSegment::Field(name)),
                serde_json::Value::Number(n) => n
                    .as_u64()
                    .and_then(|i| usize::try_from(i).ok())
                    .map(PathSegment::Index),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn rejected(code: &'static str, message: String) -> ServerError {
    let mut e = ServerError::new(message, None);
    e.extensions
        .get_or_insert_with(Default::default)
        .set("code", code);
    e
}

/// Whether every operation selects only `__schema`, `__type` and `__typename` at its root.
fn introspection_only(doc: &ExecutableDocument) -> bool {
    doc.operations
        .iter()
        .all(|(_, op)| only_meta_fields(doc, &op.node.selection_set.node, 0))
}

fn only_meta_fields(doc: &ExecutableDocument, set: &SelectionSet, depth: usize) -> bool {
    if depth > 8 {
        return false;
    }
    set.items.iter().all(|s| match &s.node {
        Selection::Field(f) => f.node.name.node.starts_with("__"),
        Selection::InlineFragment(i) => {
            only_meta_fields(doc, &i.node.selection_set.node, depth + 1)
        }
        Selection::FragmentSpread(spread) => doc
            .fragments
            .get(&spread.node.fragment_name.node)
            .is_some_and(|f| only_meta_fields(doc, &f.node.selection_set.node, depth + 1)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(q: &str) -> ExecutableDocument {
        async_graphql::parser::parse_query(q).expect("parses")
    }

    #[test]
    fn recognises_introspection() {
        assert!(introspection_only(&doc("{ __schema { types { name } } }")));
        assert!(introspection_only(&doc(
            "query Q { ...F } fragment F on Query { __type(name: \"Product\") { name } }"
        )));
        assert!(!introspection_only(&doc(
            "{ __typename getProduct(id: \"x\") { id } }"
        )));
        assert!(!introspection_only(&doc(
            "query A { __schema { description } } query B { viewProducts { nodes { id } } }"
        )));
    }
}
