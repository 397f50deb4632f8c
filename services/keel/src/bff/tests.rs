//! The HTTP edge and the cost limit over a tiny schema: body size, media types, GraphQL
//! over HTTP statuses, CORS, timeout.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_graphql::dynamic::{FieldFuture, FieldValue, ResolverContext};
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use futures_util::StreamExt;
use serde_json::{Value as Json, json};
use tonic::codegen::Service;

use super::{Api, Bff, Limits, Origins};
use crate::graphql::{Call, Resolve};

const SDL: &str = r#"
type Query {
  slow(ms: Int!): Int!
  items(
    "At most this many items; 10 when omitted, at most 50."
    first: Int
  ): ItemPage!
}
type Mutation {
  bump: Int!
}
type ItemPage {
  nodes: [Item!]!
}
type Item {
  id: ID!
  children(first: Int): ItemPage!
}
"#;

static BUMPS: AtomicUsize = AtomicUsize::new(0);

fn slow(ctx: ResolverContext<'_>) -> FieldFuture<'_> {
    FieldFuture::new(async move {
        let ms = ctx.args.try_get("ms")?.i64()?;
        tokio::time::sleep(Duration::from_millis(ms.unsigned_abs())).await;
        Ok(Some(FieldValue::value(ms)))
    })
}

fn items(_: ResolverContext<'_>) -> FieldFuture<'_> {
    let page = json!({"nodes": [{"id": "1", "children": {"nodes": []}}]});
    FieldFuture::Value(
        async_graphql::Value::from_json(page)
            .ok()
            .map(FieldValue::value),
    )
}

fn bump(_: ResolverContext<'_>) -> FieldFuture<'_> {
    let n = BUMPS.fetch_add(1, Ordering::SeqCst) + 1;
    FieldFuture::Value(Some(FieldValue::value(n as i64)))
}

fn bff(limits: Limits) -> Bff {
    let registry: BTreeMap<&'static str, Resolve> = BTreeMap::from([
        ("Query.slow", slow as Resolve),
        ("Query.items", items as Resolve),
        ("Mutation.bump", bump as Resolve),
    ]);
    let api = Api {
        sdl: SDL,
        relations: &[],
        registry,
        web: Default::default(),
    };
    Bff::new(&api, (), limits, |_, id| (Call::new(id, None), ())).expect("builds")
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Json,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or("<none>")
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

async fn send(bff: &Bff, req: Request<Body>) -> Answer {
    let mut app = bff.clone().router().into_service::<Body>();
    std::future::poll_fn(|cx| app.poll_ready(cx))
        .await
        .expect("ready");
    let res = app.call(req).await.expect("infallible");
    let (parts, body) = res.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.expect("body");
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Json::Null),
    }
}

fn post() -> axum::http::request::Builder {
    Request::post("/graphql").header("content-type", "application/json")
}

fn json_post(query: &str) -> Request<Body> {
    post()
        .body(Body::from(json!({ "query": query }).to_string()))
        .expect("request")
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_declared_or_streamed() {
    let bff = bff(Limits {
        max_body_bytes: 1_000,
        ..Limits::default()
    });
    let big = format!("{{ __typename }} # {}", "x".repeat(2_000));
    let a = send(&bff, json_post(&big)).await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE")
    );

    // Without a length: read up to the limit, not further.
    static PULLED: AtomicUsize = AtomicUsize::new(0);
    let chunks = futures_util::stream::iter(0..1_000).map(|_| {
        PULLED.fetch_add(1, Ordering::SeqCst);
        Ok::<_, std::io::Error>(Bytes::from(vec![b' '; 100]))
    });
    let req = post().body(Body::from_stream(chunks)).expect("request");
    let a = send(&bff, req).await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE")
    );
    assert!(
        PULLED.load(Ordering::SeqCst) <= 11,
        "{PULLED:?} chunks read"
    );

    // Every route.
    let req = Request::get("/healthz")
        .header("content-length", "5000")
        .body(Body::from(vec![0; 5_000]))
        .expect("request");
    assert_eq!(send(&bff, req).await.status, StatusCode::PAYLOAD_TOO_LARGE);

    let a = send(&bff, json_post("{ __typename }")).await;
    assert_eq!(a.body, json!({"data": {"__typename": "Query"}}));
}

#[tokio::test]
async fn post_runs_json_bodies_only() {
    let bff = bff(Limits::default());
    let body = json!({"query": "mutation { bump }"}).to_string();
    let before = BUMPS.load(Ordering::SeqCst);
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/graphql-response+json"),
    ] {
        let mut req = Request::post("/graphql");
        if let Some(t) = content_type {
            req = req.header("content-type", t);
        }
        let a = send(&bff, req.body(Body::from(body.clone())).expect("request")).await;
        assert_eq!(
            (a.status, a.code()),
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE"),
            "{content_type:?}"
        );
    }
    assert_eq!(BUMPS.load(Ordering::SeqCst), before, "nothing ran");

    let req = Request::post("/graphql")
        .header("content-type", "application/json; charset=utf-8")
        .body(Body::from(body))
        .expect("request");
    let a = send(&bff, req).await;
    assert_eq!(a.status, StatusCode::OK, "{:#}", a.body);
    assert_eq!(BUMPS.load(Ordering::SeqCst), before + 1);

    for bad in ["{ \"not a JSON", r#"{"qeury": "{ __typename }"}"#, ""] {
        let a = send(&bff, post().body(Body::from(bad)).expect("request")).await;
        assert_eq!(
            (a.status, a.code()),
            (StatusCode::BAD_REQUEST, "BAD_REQUEST"),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn the_response_type_follows_accept() {
    let bff = bff(Limits::default());
    let ask = |accept: Option<&'static str>, query: &str| {
        let mut req = post();
        if let Some(a) = accept {
            req = req.header("accept", a);
        }
        req.body(Body::from(json!({ "query": query }).to_string()))
            .expect("request")
    };
    const GRAPHQL: &str = "application/graphql-response+json";
    for (accept, want) in [
        (None, "application/json"),
        (Some("application/json"), "application/json"),
        (Some(GRAPHQL), GRAPHQL),
    ] {
        let a = send(&bff, ask(accept, "{ __typename }")).await;
        assert_eq!(
            (a.status, a.header("content-type")),
            (StatusCode::OK, Some(want))
        );
    }

    for broken in ["{", "{ nope }", "query($x: Int!) { __typename }"] {
        let a = send(&bff, ask(Some(GRAPHQL), broken)).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{broken}");
        assert!(
            a.body.get("data").is_none() && a.body["errors"].is_array(),
            "{:#}",
            a.body
        );
        let a = send(&bff, ask(Some("application/json"), broken)).await;
        assert_eq!(a.status, StatusCode::OK, "{broken}");
    }

    let a = send(&bff, ask(Some("text/html"), "{ __typename }")).await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::NOT_ACCEPTABLE, "NOT_ACCEPTABLE")
    );

    let get = Request::get("/graphql?query=mutation%7Bbump%7D")
        .body(Body::empty())
        .expect("request");
    let a = send(&bff, get).await;
    assert_eq!(
        (a.status, a.header("allow")),
        (StatusCode::METHOD_NOT_ALLOWED, Some("POST"))
    );
}

fn preflight(origin: &str) -> Request<Body> {
    Request::builder()
        .method(Method::OPTIONS)
        .uri("/graphql")
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,authorization",
        )
        .body(Body::empty())
        .expect("request")
}

fn from_origin(origin: &str) -> Request<Body> {
    post()
        .header("origin", origin)
        .body(Body::from(r#"{"query":"{ __typename }"}"#))
        .expect("request")
}

#[tokio::test]
async fn no_cross_origin_access_by_default() {
    let bff = bff(Limits::default());
    let a = send(&bff, preflight("https://evil.example")).await;
    assert_eq!((a.status, a.code()), (StatusCode::FORBIDDEN, "FORBIDDEN"));
    assert_eq!(a.header("access-control-allow-origin"), None);
    assert_eq!(a.header("access-control-allow-methods"), None);
    let a = send(&bff, from_origin("https://evil.example")).await;
    assert_eq!(a.header("access-control-allow-origin"), None);
}

#[tokio::test]
async fn listed_origins_get_cors_answers() {
    let bff = bff(Limits {
        cors_allowed_origins: Origins::parse("https://shop.example").expect("origins"),
        ..Limits::default()
    });
    let a = send(&bff, preflight("https://shop.example")).await;
    assert!(a.status.is_success(), "{}", a.status);
    assert_eq!(
        a.header("access-control-allow-origin"),
        Some("https://shop.example")
    );
    let methods = a.header("access-control-allow-methods").unwrap_or_default();
    assert!(
        methods.contains("GET") && methods.contains("POST"),
        "{methods}"
    );
    let headers = a.header("access-control-allow-headers").unwrap_or_default();
    for h in ["authorization", "content-type", "x-request-id"] {
        assert!(headers.contains(h), "{headers}");
    }
    assert_eq!(a.header("access-control-max-age"), Some("600"));
    assert_eq!(a.header("access-control-allow-credentials"), None);

    let a = send(&bff, from_origin("https://shop.example")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        a.header("access-control-allow-origin"),
        Some("https://shop.example")
    );
    assert!(a.header("vary").unwrap_or_default().contains("origin"));

    let a = send(&bff, preflight("https://evil.example")).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = send(&bff, from_origin("https://evil.example")).await;
    assert_eq!(a.header("access-control-allow-origin"), None);
}

#[tokio::test]
async fn a_slow_request_is_504() {
    let bff = bff(Limits {
        request_timeout_ms: 50,
        ..Limits::default()
    });
    let a = send(&bff, json_post("{ slow(ms: 5000) }")).await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::GATEWAY_TIMEOUT, "TIMEOUT")
    );
    let a = send(&bff, json_post("{ slow(ms: 1) }")).await;
    assert_eq!(a.body, json!({"data": {"slow": 1}}));
}

#[tokio::test]
async fn typename_and_pages_count_in_the_cost() {
    let bff = bff(Limits::default());
    let code = |r: &async_graphql::Response| {
        r.errors
            .first()
            .and_then(|e| e.extensions.as_ref()?.get("code").cloned())
    };
    let aliases: String = (0..10_000).map(|i| format!("a{i}: __typename ")).collect();
    let r = bff.execute(format!("{{ {aliases} }}"), "t").await;
    assert_eq!(code(&r), Some("QUERY_TOO_COMPLEX".into()));

    let nested = "{ items(first: 50) { nodes { children(first: 50) { nodes { id } } } } }";
    let r = bff.execute(nested, "t").await;
    assert_eq!(code(&r), Some("QUERY_TOO_COMPLEX".into()));
    let message = &r.errors[0].message;
    assert!(message.contains("costs 7600"), "{message}");

    // 10 items by default: (1 + nodes (1 + id)) × 10.
    let r = bff.execute("{ items { nodes { id } } }", "t").await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let r = bff
        .execute(
            async_graphql::Request::new("query($n: Int) { items(first: $n) { nodes { id } } }")
                .variables(async_graphql::Variables::from_json(json!({"n": 400}))),
            "t",
        )
        .await;
    assert_eq!(code(&r), Some("QUERY_TOO_COMPLEX".into()));
}
