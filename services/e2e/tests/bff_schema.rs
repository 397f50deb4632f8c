//! Unit tests of the whole schema: equality with the SDL, resolver coverage, limits,
//! input checks before any call, UNAVAILABLE upstreams, HTTP, and (with fake gRPC
//! services, which is fine for unit tests) batching and request-id forwarding.

// Proto messages end in `..Default::default()`: a field added to the spec must not
// break these tests.
#![allow(clippy::needless_update)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_graphql::Value;
use async_graphql::parser::types::TypeKind;
use clap::Parser;
use keel::{RequestContext, ServiceError};
use serde_json::{Value as Json, json};

use keel::graphql as rt;

use keel::bff::sdl::Sdl;
use keel::bff::{Bff, Limits};
use shop_bff::Config;

// ------------------------------------------------------------------- helpers

/// A loopback URL on which nothing listens.
async fn closed_url() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = l.local_addr().expect("addr").port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

/// A BFF whose upstreams are all down.
async fn offline_bff(limits: Limits) -> Bff {
    let url = closed_url().await;
    let config = Config {
        limits,
        upstreams: shop_bff::UpstreamConfig {
            product_url: url.clone(),
            order_url: url.clone(),
            cart_command_url: url.clone(),
            cart_query_url: url.clone(),
            user_url: url,
            timeout_ms: 2_000,
            ..Default::default()
        },
        ..Default::default()
    };
    shop_bff::bff(&config).expect("bff builds")
}

async fn run(bff: &Bff, query: &str) -> Json {
    let response = bff.execute(query, "test-request").await;
    serde_json::to_value(&response).expect("response serializes")
}

/// The customer the tests call as (what a verified access token would make of them).
const ME: &str = "0190a4e4-7d1c-7a51-9d36-5a1e3b0c2f30";

fn customer() -> rt::Caller {
    rt::Caller(Some(rt::Principal {
        subject: ME.parse().expect("a UUID"),
        session: uuid::Uuid::new_v4(),
        roles: vec![keel::auth::CUSTOMER.to_string()],
        expires_at: i64::MAX,
    }))
}

/// [`run`] as [`customer`]: everything but the catalogue and registering needs a login.
async fn run_as_customer(bff: &Bff, request: impl Into<async_graphql::Request>) -> Json {
    let response = bff.execute_as(request, "test-request", customer()).await;
    serde_json::to_value(&response).expect("response serializes")
}

fn codes(r: &Json) -> Vec<String> {
    r["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    e["extensions"]["code"]
                        .as_str()
                        .unwrap_or("<none>")
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default()
}

// ------------------------------------------------------------------- schema = SDL

/// A type as a client sees it, for comparing the SDL with introspection.
#[derive(Debug, PartialEq, Eq)]
struct TypeShape {
    kind: String,
    description: Option<String>,
    fields: Vec<FieldShape>,
    input_fields: Vec<ArgShape>,
    enum_values: Vec<(String, Option<String>)>,
}

#[derive(Debug, PartialEq, Eq)]
struct FieldShape {
    name: String,
    description: Option<String>,
    ty: String,
    args: Vec<ArgShape>,
    deprecated: bool,
}

#[derive(Debug, PartialEq, Eq)]
struct ArgShape {
    name: String,
    description: Option<String>,
    ty: String,
    default: Option<String>,
}

const BUILT_IN_SCALARS: [&str; 5] = ["String", "Int", "Float", "Boolean", "ID"];

fn sdl_shapes(sdl: &Sdl) -> BTreeMap<String, TypeShape> {
    let desc = |d: &Option<async_graphql::Positioned<String>>| d.as_ref().map(|d| d.node.clone());
    let arg = |a: &async_graphql::parser::types::InputValueDefinition| ArgShape {
        name: a.name.node.to_string(),
        description: desc(&a.description),
        ty: a.ty.node.to_string(),
        default: a.default_value.as_ref().map(|v| v.node.to_string()),
    };
    sdl.types
        .iter()
        .map(|t| {
            let mut shape = TypeShape {
                kind: String::new(),
                description: desc(&t.description),
                fields: vec![],
                input_fields: vec![],
                enum_values: vec![],
            };
            match &t.kind {
                TypeKind::Scalar => shape.kind = "SCALAR".into(),
                TypeKind::Object(o) => {
                    shape.kind = "OBJECT".into();
                    shape.fields = o
                        .fields
                        .iter()
                        .map(|f| FieldShape {
                            name: f.node.name.node.to_string(),
                            description: desc(&f.node.description),
                            ty: f.node.ty.node.to_string(),
                            args: f.node.arguments.iter().map(|a| arg(&a.node)).collect(),
                            deprecated: f
                                .node
                                .directives
                                .iter()
                                .any(|d| d.node.name.node == "deprecated"),
                        })
                        .collect();
                }
                TypeKind::InputObject(i) => {
                    shape.kind = "INPUT_OBJECT".into();
                    shape.input_fields = i.fields.iter().map(|a| arg(&a.node)).collect();
                }
                TypeKind::Enum(e) => {
                    shape.kind = "ENUM".into();
                    shape.enum_values = e
                        .values
                        .iter()
                        .map(|v| (v.node.value.node.to_string(), desc(&v.node.description)))
                        .collect();
                }
                TypeKind::Interface(_) => shape.kind = "INTERFACE".into(),
                TypeKind::Union(_) => shape.kind = "UNION".into(),
            }
            (t.name.node.to_string(), shape)
        })
        .collect()
}

/// Also GraphiQL's schema fetch: `TypeRef` nests `ofType` nine levels.
const INTROSPECTION: &str = r#"
query IntrospectionQuery {
  __schema {
    queryType { name }
    mutationType { name }
    subscriptionType { name }
    types {
      kind name description
      fields(includeDeprecated: true) {
        name description isDeprecated deprecationReason
        args { name description defaultValue type { ...TypeRef } }
        type { ...TypeRef }
      }
      inputFields { name description defaultValue type { ...TypeRef } }
      enumValues(includeDeprecated: true) { name description isDeprecated }
    }
  }
}
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name
  ofType { kind name } } } } } } } } }
}
"#;

fn render_type(t: &Json) -> String {
    match t["kind"].as_str() {
        Some("NON_NULL") => format!("{}!", render_type(&t["ofType"])),
        Some("LIST") => format!("[{}]", render_type(&t["ofType"])),
        _ => t["name"].as_str().unwrap_or("?").to_string(),
    }
}

fn opt(j: &Json) -> Option<String> {
    j.as_str().map(str::to_string)
}

fn introspected_shapes(schema: &Json) -> BTreeMap<String, TypeShape> {
    let arg = |a: &Json| ArgShape {
        name: a["name"].as_str().unwrap_or("?").to_string(),
        description: opt(&a["description"]),
        ty: render_type(&a["type"]),
        default: opt(&a["defaultValue"]),
    };
    let list = |j: &Json| j.as_array().cloned().unwrap_or_default();
    list(&schema["types"])
        .iter()
        .filter_map(|t| {
            let name = t["name"].as_str()?.to_string();
            if name.starts_with("__") || BUILT_IN_SCALARS.contains(&name.as_str()) {
                return None;
            }
            let shape = TypeShape {
                kind: t["kind"].as_str().unwrap_or("?").to_string(),
                description: opt(&t["description"]),
                fields: list(&t["fields"])
                    .iter()
                    .map(|f| FieldShape {
                        name: f["name"].as_str().unwrap_or("?").to_string(),
                        description: opt(&f["description"]),
                        ty: render_type(&f["type"]),
                        args: list(&f["args"]).iter().map(arg).collect(),
                        deprecated: f["isDeprecated"].as_bool().unwrap_or(false),
                    })
                    .collect(),
                input_fields: list(&t["inputFields"]).iter().map(arg).collect(),
                enum_values: list(&t["enumValues"])
                    .iter()
                    .map(|v| {
                        (
                            v["name"].as_str().unwrap_or("?").to_string(),
                            opt(&v["description"]),
                        )
                    })
                    .collect(),
            };
            Some((name, shape))
        })
        .collect()
}

#[tokio::test]
async fn served_schema_equals_the_generated_sdl() {
    let sdl = Sdl::parse(shop_bff::SDL).expect("the generated SDL parses");
    let bff = offline_bff(Limits::default()).await;
    // With the default limits: GraphiQL's introspection must not be rejected.
    let r = run(&bff, INTROSPECTION).await;
    assert_eq!(r["errors"], Json::Null, "{r:#}");
    let schema = &r["data"]["__schema"];
    assert_eq!(schema["queryType"]["name"], json!(sdl.query));
    assert_eq!(opt(&schema["mutationType"]["name"]), sdl.mutation.clone());
    assert_eq!(schema["subscriptionType"], Json::Null);

    let want = sdl_shapes(&sdl);
    let got = introspected_shapes(schema);
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>(),
        "type names"
    );
    for (name, shape) in &want {
        assert_eq!(Some(shape), got.get(name), "type {name}");
    }
    // The SDL is not trivially small, and the comparison sees descriptions and types.
    assert!(want.len() > 20, "{} types", want.len());
    for (from, to) in [
        ("\"Something the shop sells.\"", "\"Something else.\""),
        ("price: Money!\n  createdAt", "price: Int!\n  createdAt"),
    ] {
        assert!(shop_bff::SDL.contains(from), "{from}");
        let edited = Sdl::parse(&shop_bff::SDL.replace(from, to)).expect("parses");
        assert_ne!(sdl_shapes(&edited), got, "an edit ({to}) went unnoticed");
    }
}

#[test]
fn every_root_and_relation_field_has_a_resolver_and_no_other() {
    let sdl = Sdl::parse(shop_bff::SDL).expect("parses");
    let needed = sdl.resolver_keys(shop_bff::RELATIONS);
    let registry: BTreeSet<String> = shop_bff::registry()
        .keys()
        .map(|k| (*k).to_string())
        .collect();
    assert_eq!(needed, registry);
    // The relation fields the spec declares today are among them.
    for key in [
        "CartItem.product",
        "OrderDetail.product",
        "Customer.orders",
        "Cart.customer",
        "Order.customer",
        "Order.cart",
    ] {
        assert!(needed.contains(key), "{key}");
    }
    // Every Query and Mutation field.
    for t in &sdl.types {
        if let TypeKind::Object(o) = &t.kind
            && sdl.is_root(&t.name.node)
        {
            for f in &o.fields {
                let key = format!("{}.{}", t.name.node, f.node.name.node);
                assert!(registry.contains(&key), "{key}");
            }
        }
    }
}

#[test]
fn a_missing_or_stale_resolver_fails_the_build() {
    let sdl = Sdl::parse(shop_bff::SDL).expect("parses");
    let builder = || async_graphql::dynamic::Schema::build("Query", Some("Mutation"), None);
    let mut registry = shop_bff::registry();
    registry.remove("CartItem.product");
    assert!(matches!(
        sdl.register(builder(), &registry, shop_bff::RELATIONS),
        Err(keel::bff::BuildError::MissingResolver(k)) if k == "CartItem.product"
    ));
    let mut registry = shop_bff::registry();
    let any = registry.get("Query.getProduct").copied().expect("exists");
    registry.insert("Product.noSuchField", any);
    assert!(matches!(
        sdl.register(builder(), &registry, shop_bff::RELATIONS),
        Err(keel::bff::BuildError::UnknownResolver(k)) if k == "Product.noSuchField"
    ));
}

/// One value per object type, made by the real mapping functions from proto messages.
fn mapped_samples() -> BTreeMap<&'static str, Value> {
    let ts = Some(prost_types::Timestamp {
        seconds: 1_714_555_800,
        nanos: 0,
    });
    let id = "0190a4e4-7d1c-7a51-9d36-5a1e3b0c2f10".to_string();
    let p = shop_product::pb::Product {
        id: id.clone(),
        name: "Tea".into(),
        description: Some("Green".into()),
        price: 1500,
        created_at: ts,
        ..Default::default()
    };
    let products = rt::connection(
        vec![shop_bff::product::product(&p).expect("maps")],
        "t".into(),
    );
    let c = shop_cart::pb::Cart {
        id: id.clone(),
        customer_id: Some(id.clone()),
        items: vec![shop_cart::pb::CartItem {
            product_id: id.clone(),
            quantity: 2,
            ..Default::default()
        }],
        ..Default::default()
    };
    let cart = shop_bff::cart::cart(&c, 3).expect("maps");
    let o = shop_order::pb::Order {
        id: id.clone(),
        customer_id: id.clone(),
        cart_id: id.clone(),
        cart_version: 3,
        total: 3000,
        placed_at: ts,
        status: "placed".into(),
        details: vec![shop_order::pb::OrderDetail {
            product_id: id.clone(),
            product_name: "Tea".into(),
            unit_price: 1500,
            quantity: 2,
            ..Default::default()
        }],
        ..Default::default()
    };
    let orders = rt::connection(
        vec![shop_bff::order::order(&o).expect("maps")],
        String::new(),
    );
    let customer = shop_user::pb::Customer {
        id: id.clone(),
        email: "a@example.com".into(),
        name: "A".into(),
        registered_at: ts,
        ..Default::default()
    };
    let first = |v: &Value, key: &str| match v {
        Value::Object(o) => match o.get(key) {
            Some(Value::List(l)) => l.first().cloned().unwrap_or(Value::Null),
            Some(other) => other.clone(),
            None => Value::Null,
        },
        _ => Value::Null,
    };
    let cart_payload = rt::command_payload("cartId", &id, 1).expect("maps");
    let customer_payload = rt::command_payload("customerId", &id, 1).expect("maps");
    BTreeMap::from([
        ("Product", shop_bff::product::product(&p).expect("maps")),
        ("PageInfo", first(&products, "pageInfo")),
        ("ProductConnection", products),
        ("CartItem", first(&cart, "items")),
        ("Cart", cart),
        (
            "OrderDetail",
            first(&shop_bff::order::order(&o).expect("maps"), "details"),
        ),
        ("Order", shop_bff::order::order(&o).expect("maps")),
        ("OrderConnection", orders),
        (
            "Customer",
            shop_bff::user::customer(&customer, 1).expect("maps"),
        ),
        ("DeletePayload", rt::delete_payload(&id)),
        ("AddProductPayload", cart_payload.clone()),
        ("RemoveProductPayload", cart_payload.clone()),
        ("ChangeProductQuantityPayload", cart_payload.clone()),
        ("ResetCartPayload", cart_payload),
        ("RegisterCustomerPayload", customer_payload.clone()),
        ("DeleteAccountPayload", customer_payload),
    ])
}

/// The identity service's session answers (only `login` is used).
struct FakeAuth;

#[tonic::async_trait]
impl keel::auth::pb::auth_server::Auth for FakeAuth {
    async fn login(
        &self,
        r: tonic::Request<keel::auth::pb::LoginRequest>,
    ) -> Result<tonic::Response<keel::auth::pb::Session>, tonic::Status> {
        assert_eq!(r.into_inner().email, "me@example.com");
        Ok(tonic::Response::new(keel::auth::pb::Session {
            access_token: "access".into(),
            expires_in: 300,
            refresh_token: "refresh".into(),
            refresh_expires_in: 3600,
            subject: ME.into(),
            roles: vec![keel::auth::CUSTOMER.into()],
        }))
    }

    async fn refresh(
        &self,
        _: tonic::Request<keel::auth::pb::RefreshRequest>,
    ) -> Result<tonic::Response<keel::auth::pb::Session>, tonic::Status> {
        Err(tonic::Status::unimplemented("not used by this test"))
    }

    async fn logout(
        &self,
        _: tonic::Request<keel::auth::pb::LogoutRequest>,
    ) -> Result<tonic::Response<keel::auth::pb::LogoutResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("not used by this test"))
    }

    async fn jwks(
        &self,
        _: tonic::Request<keel::auth::pb::JwksRequest>,
    ) -> Result<tonic::Response<keel::auth::pb::JwksResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("not used by this test"))
    }

    async fn set_credentials(
        &self,
        _: tonic::Request<keel::auth::pb::SetCredentialsRequest>,
    ) -> Result<tonic::Response<keel::auth::pb::SetCredentialsResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("not used by this test"))
    }

    async fn grant_role(
        &self,
        _: tonic::Request<keel::auth::pb::GrantRoleRequest>,
    ) -> Result<tonic::Response<keel::auth::pb::GrantRoleResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("not used by this test"))
    }

    async fn forget(
        &self,
        _: tonic::Request<keel::auth::pb::ForgetRequest>,
    ) -> Result<tonic::Response<keel::auth::pb::ForgetResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("not used by this test"))
    }

    async fn ended_sessions(
        &self,
        _: tonic::Request<keel::auth::pb::EndedSessionsRequest>,
    ) -> Result<tonic::Response<keel::auth::pb::EndedSessionsResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("not used by this test"))
    }
}

/// A `Session` as `login` maps it (keel's mapping, not a generated one), every field
/// of the SDL's `Session` asked for: one the mapping lacks would be an error.
async fn session_sample() -> Value {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let server = tonic::transport::Server::builder()
        .add_service(keel::auth::pb::auth_server::AuthServer::new(FakeAuth))
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
    let server = tokio::spawn(server);
    let mut config = Config::default();
    config.upstreams.user_url = url;
    let bff = shop_bff::bff(&config).expect("builds");
    let response = bff
        .execute(
            r#"mutation { login(input: {email: "me@example.com", password: "secret secret"}) {
                accessToken expiresIn refreshToken refreshExpiresIn customerId roles } }"#,
            "t",
        )
        .await;
    server.abort();
    assert!(response.errors.is_empty(), "{:?}", response.errors);
    let Value::Object(mut data) = response.data else {
        panic!("no data: {:?}", response.data);
    };
    let session = data.shift_remove("login").expect("the login field");
    let Value::Object(fields) = &session else {
        panic!("login is not an object: {session:?}");
    };
    assert_eq!(fields.get("customerId"), Some(&Value::from(ME)));
    assert!(fields.values().all(|v| *v != Value::Null), "{session:?}");
    session
}

#[tokio::test]
async fn every_plain_field_is_produced_by_the_mapping() {
    let sdl = Sdl::parse(shop_bff::SDL).expect("parses");
    let needed = sdl.resolver_keys(shop_bff::RELATIONS);
    let mut samples = mapped_samples();
    samples.insert("Session", session_sample().await);
    for t in &sdl.types {
        let TypeKind::Object(o) = &t.kind else {
            continue;
        };
        let name = t.name.node.as_str();
        if sdl.is_root(name) {
            continue;
        }
        let sample = samples
            .get(name)
            .unwrap_or_else(|| panic!("no mapping sample for object type {name}"));
        let Value::Object(map) = sample else {
            panic!("{name}: not an object: {sample:?}");
        };
        let plain: BTreeSet<&str> = o
            .fields
            .iter()
            .map(|f| f.node.name.node.as_str())
            .filter(|f| !needed.contains(&format!("{name}.{f}")))
            .collect();
        let mapped: BTreeSet<&str> = map.keys().map(|k| k.as_str()).collect();
        assert_eq!(plain, mapped, "fields of {name}");
    }
}

// ------------------------------------------------------------------- limits

const DEEP: &str = r#"{ viewProfile(customerId: "0190a4e4-7d1c-7a51-9d36-5a1e3b0c2f10") {
  orders { nodes { cart { customer { orders { nodes { cart { customer { orders { nodes { id } } } } } } } } } } } }"#;

#[tokio::test]
async fn an_over_deep_query_is_rejected_before_anything_runs() {
    let bff = offline_bff(Limits::default()).await;
    let r = run(&bff, DEEP).await;
    assert_eq!(codes(&r), ["QUERY_TOO_DEEP"], "{r:#}");
    let message = r["errors"][0]["message"].as_str().unwrap_or("");
    assert!(message.contains("at most 10"), "{message}");
    assert_eq!(r["data"], Json::Null);
}

#[tokio::test]
async fn limits_are_configurable() {
    let bff = offline_bff(Limits {
        max_depth: 2,
        ..Limits::default()
    })
    .await;
    let r = run(&bff, "{ viewProducts { nodes { id } } }").await;
    assert_eq!(codes(&r), ["QUERY_TOO_DEEP"], "{r:#}");

    let bff = offline_bff(Limits {
        max_complexity: 3,
        ..Limits::default()
    })
    .await;
    let r = run(&bff, "{ viewProducts { nodes { id name price } } }").await;
    assert_eq!(codes(&r), ["QUERY_TOO_COMPLEX"], "{r:#}");
}

#[tokio::test]
async fn pages_of_pages_are_too_complex() {
    let bff = offline_bff(Limits::default()).await;
    let r = run(
        &bff,
        "{ viewOrders(first: 100) { nodes { customer { orders(first: 100) { nodes { id } } } } } }",
    )
    .await;
    assert_eq!(codes(&r), ["QUERY_TOO_COMPLEX"], "{r:#}");
    let aliases: String = (0..10_000).map(|i| format!("a{i}: __typename ")).collect();
    let r = run(&bff, &format!("{{ {aliases} }}")).await;
    assert_eq!(codes(&r), ["QUERY_TOO_COMPLEX"], "{r:#}");
}

/// The journeys' queries (as the logged-in customer the cart and order ones need) reach
/// the (absent) upstreams under the default limits; the load generator's page of 100
/// products costs 700.
#[tokio::test]
async fn the_journeys_queries_are_within_the_limits() {
    use e2e::ops::{ORDERS, PRODUCT_PAGE, PRODUCTS, VIEW};
    let bff = offline_bff(Limits::default()).await;
    let id = json!({"id": "0190a4e4-7d1c-7a51-9d36-5a1e3b0c2f10", "first": 100});
    for query in [PRODUCTS, PRODUCT_PAGE, VIEW, ORDERS] {
        let request = async_graphql::Request::new(query)
            .variables(async_graphql::Variables::from_json(id.clone()));
        let r = run_as_customer(&bff, request).await;
        assert_eq!(codes(&r), ["UNAVAILABLE"], "{query}: {r:#}");
    }
}

// ------------------------------------------------------------------- input and errors

#[tokio::test]
async fn a_malformed_id_is_rejected_before_calling() {
    let bff = offline_bff(Limits::default()).await;
    // Had it called the (absent) upstream, the code would be UNAVAILABLE.
    let r = run(&bff, r#"{ getProduct(id: "nope") { id } }"#).await;
    assert_eq!(r["data"]["getProduct"], Json::Null, "{r:#}");
    assert_eq!(codes(&r), ["BAD_USER_INPUT"], "{r:#}");
    assert_eq!(
        r["errors"][0]["extensions"]["fieldViolations"],
        json!([{"field": "id", "description": "must be a UUID, got \"nope\""}])
    );

    let r = run_as_customer(
        &bff,
        r#"mutation { addProduct(input: {cartId: "x", productId: "y", quantity: 1}) { version } }"#,
    )
    .await;
    assert_eq!(codes(&r), ["BAD_USER_INPUT"], "{r:#}");
    let fields: Vec<&str> = r["errors"][0]["extensions"]["fieldViolations"]
        .as_array()
        .map(|v| v.iter().filter_map(|f| f["field"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(fields, ["cartId", "productId"]);

    let r = run(&bff, "{ viewProducts(first: 0) { nodes { id } } }").await;
    assert_eq!(codes(&r), ["BAD_USER_INPUT"], "{r:#}");
    assert_eq!(
        r["errors"][0]["extensions"]["fieldViolations"][0]["field"],
        "first"
    );
}

#[tokio::test]
async fn schema_level_bad_input_has_a_code() {
    let bff = offline_bff(Limits::default()).await;
    // Money is an integer, never a float.
    let r = run(
        &bff,
        r#"mutation { createProduct(input: {name: "Tea", price: 1.5}) { id } }"#,
    )
    .await;
    assert_eq!(codes(&r), ["BAD_USER_INPUT"], "{r:#}");
    let r = run(&bff, "{ nope }").await;
    assert_eq!(codes(&r), ["GRAPHQL_VALIDATION_FAILED"], "{r:#}");
    let r = run(&bff, "query($x: Int) { __typename }").await;
    assert_eq!(codes(&r), ["GRAPHQL_VALIDATION_FAILED"], "{r:#}");
    let r = run(&bff, "{ viewProducts { nodes { id } ").await;
    assert_eq!(codes(&r), ["GRAPHQL_PARSE_FAILED"], "{r:#}");
}

#[tokio::test]
async fn a_down_upstream_is_unavailable() {
    let bff = offline_bff(Limits::default()).await;
    let r = run(
        &bff,
        r#"{ getProduct(id: "0190a4e4-7d1c-7a51-9d36-5a1e3b0c2f10") { id } }"#,
    )
    .await;
    assert_eq!(r["data"], json!({"getProduct": null}), "{r:#}");
    assert_eq!(codes(&r), ["UNAVAILABLE"], "{r:#}");
    assert_eq!(r["errors"][0]["path"], json!(["getProduct"]));
    assert_eq!(r["errors"][0]["extensions"]["retryable"], json!(true));

    // The cart does not exist yet: its mutations are UNAVAILABLE too (for a logged-in
    // customer: the cart's owner is looked up first, at the absent cart query side).
    let r = run_as_customer(
        &bff,
        r#"mutation { resetCart(input: {cartId: "0190a4e4-7d1c-7a51-9d36-5a1e3b0c2f10"}) { version } }"#,
    )
    .await;
    assert_eq!(codes(&r), ["UNAVAILABLE"], "{r:#}");
    // A failed non-null field still says where it failed.
    assert_eq!(r["errors"][0]["path"], json!(["resetCart"]), "{r:#}");
    let message = r["errors"][0]["message"].as_str().unwrap_or("");
    assert!(message.contains("cart service"), "{message}");
    assert!(!message.contains("127.0.0.1"), "{message}");
}

// ------------------------------------------------------------------- HTTP

async fn http(
    router: axum::Router,
    req: axum::http::Request<axum::body::Body>,
) -> (axum::http::StatusCode, axum::http::HeaderMap, String) {
    use tower::ServiceExt;
    let res = router.oneshot(req).await.expect("infallible");
    let status = res.status();
    let headers = res.headers().clone();
    let body = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .expect("body");
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn http_routes() {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};

    let bff = offline_bff(Limits::default()).await;
    let router = bff.router();

    let (status, _, body) = http(
        router.clone(),
        Request::get("/healthz")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));

    // The web pages: the storefront at `/`, the GraphQL console, the back-office and
    // the generated client, each under the strict CSP.
    for (path, marker) in [
        ("/", "/assets/app/app.js"),
        ("/graphiql", "console.js"),
        ("/back-office/", "back-office/app.js"),
        (
            "/assets/gen/client.js",
            "export async function viewProducts",
        ),
        ("/assets/gen/backoffice.js", "\"createProduct\""),
    ] {
        let (status, headers, body) = http(
            router.clone(),
            Request::get(path).body(Body::empty()).expect("request"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(body.contains(marker), "{path}: {body}");
        let csp = headers["content-security-policy"].to_str().expect("ascii");
        assert!(csp.contains("default-src 'self'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
    }
    let (status, _, _) = http(
        router.clone(),
        Request::get("/assets/app/../../Cargo.toml")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, headers, body) = http(
        router.clone(),
        Request::get("/graphql?query=%7B__typename%7D")
            .header("x-request-id", "abc-123")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        serde_json::from_str::<Json>(&body).ok(),
        Some(json!({"data": {"__typename": "Query"}}))
    );
    assert_eq!(
        headers.get("x-request-id").and_then(|v| v.to_str().ok()),
        Some("abc-123")
    );

    let (status, _, _) = http(
        router.clone(),
        Request::get(
            "/graphql?query=mutation%7BdeleteProduct(input%3A%7Bid%3A%22x%22%7D)%7Bid%7D%7D",
        )
        .body(Body::empty())
        .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);

    let (status, headers, body) = http(
        router,
        Request::post("/graphql")
            .header("content-type", "application/json")
            .body(Body::from(r#"{"query":"{ __typename }"}"#))
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("Query"));
    // Without an incoming id the BFF makes one up.
    assert!(headers.get("x-request-id").is_some());
}

// ------------------------------------------------------------------- batching (fakes)

const KNOWN: [&str; 3] = [
    "0190a4e4-7d1c-7a51-9d36-5a1e3b0c2f11",
    "0190a4e4-7d1c-7a51-9d36-5a1e3b0c2f12",
    "0190a4e4-7d1c-7a51-9d36-5a1e3b0c2f13",
];
const GONE: &str = "0190a4e4-7d1c-7a51-9d36-5a1e3b0c2fff";
const CART: &str = "0190a4e4-7d1c-7a51-9d36-5a1e3b0c2f20";

#[derive(Default)]
struct FakeProducts {
    /// (product id, request id) of every GetProduct.
    calls: Mutex<Vec<(String, String)>>,
    /// (ids, request id) of every BatchGetProducts.
    batches: Mutex<Vec<(Vec<String>, String)>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

fn fake_product(id: &str) -> shop_product::pb::Product {
    shop_product::pb::Product {
        name: format!("name of {id}"),
        id: id.to_string(),
        description: None,
        price: 100,
        created_at: Some(prost_types::Timestamp {
            seconds: 1_714_555_800,
            nanos: 0,
        }),
        ..Default::default()
    }
}

fn unused<T>() -> Result<T, ServiceError> {
    Err(ServiceError::Internal("not used by this test".into()))
}

impl shop_product::ProductUseCases for FakeProducts {
    async fn view_products(
        &self,
        _: RequestContext,
        _: shop_product::pb::ViewProductsRequest,
    ) -> Result<shop_product::pb::ViewProductsResponse, ServiceError> {
        unused()
    }

    async fn get_product(
        &self,
        ctx: RequestContext,
        request: shop_product::pb::GetProductRequest,
    ) -> Result<shop_product::pb::GetProductResponse, ServiceError> {
        if let Ok(mut calls) = self.calls.lock() {
            calls.push((request.id.clone(), ctx.request_id));
        }
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        if !KNOWN.contains(&request.id.as_str()) {
            return Err(ServiceError::not_found("product", &request.id));
        }
        Ok(shop_product::pb::GetProductResponse {
            product: Some(fake_product(&request.id)),
        })
    }

    async fn batch_get_products(
        &self,
        ctx: RequestContext,
        request: shop_product::pb::BatchGetProductsRequest,
    ) -> Result<shop_product::pb::BatchGetProductsResponse, ServiceError> {
        if let Ok(mut batches) = self.batches.lock() {
            batches.push((request.ids.clone(), ctx.request_id));
        }
        let products = request
            .ids
            .iter()
            .filter(|id| KNOWN.contains(&id.as_str()))
            .map(|id| fake_product(id))
            .collect();
        Ok(shop_product::pb::BatchGetProductsResponse { products })
    }

    async fn create_product(
        &self,
        _: RequestContext,
        _: shop_product::pb::CreateProductRequest,
    ) -> Result<shop_product::pb::CreateProductResponse, ServiceError> {
        unused()
    }

    async fn update_product(
        &self,
        _: RequestContext,
        _: shop_product::pb::UpdateProductRequest,
    ) -> Result<shop_product::pb::UpdateProductResponse, ServiceError> {
        unused()
    }

    async fn delete_product(
        &self,
        _: RequestContext,
        _: shop_product::pb::DeleteProductRequest,
    ) -> Result<shop_product::pb::DeleteProductResponse, ServiceError> {
        unused()
    }
}

#[derive(Default)]
struct FakeCarts {
    request_ids: Mutex<Vec<String>>,
}

impl shop_cart::CartQueryUseCases for FakeCarts {
    async fn view_cart(
        &self,
        ctx: RequestContext,
        request: shop_cart::pb::ViewCartRequest,
    ) -> Result<shop_cart::pb::ViewCartResponse, ServiceError> {
        if let Ok(mut ids) = self.request_ids.lock() {
            ids.push(ctx.request_id);
        }
        if request.cart_id != CART {
            return Err(ServiceError::not_found("cart", &request.cart_id));
        }
        // Two lines of one product, one of a product deleted since.
        let items = [KNOWN[0], KNOWN[1], KNOWN[0], GONE, KNOWN[2]]
            .iter()
            .map(|p| shop_cart::pb::CartItem {
                product_id: (*p).to_string(),
                quantity: 1,
                ..Default::default()
            })
            .collect();
        Ok(shop_cart::pb::ViewCartResponse {
            cart: Some(shop_cart::pb::Cart {
                id: request.cart_id,
                // The caller's: anybody else's cart is FORBIDDEN.
                customer_id: Some(ME.to_string()),
                items,
                ..Default::default()
            }),
            version: 5,
        })
    }
}

#[derive(Default)]
struct FakeUsers {
    request_ids: Mutex<Vec<String>>,
}

impl shop_user::UserUseCases for FakeUsers {
    async fn register_customer(
        &self,
        _: RequestContext,
        _: shop_user::pb::RegisterCustomerRequest,
    ) -> Result<shop_user::pb::RegisterCustomerResponse, ServiceError> {
        unused()
    }

    async fn delete_account(
        &self,
        _: RequestContext,
        _: shop_user::pb::DeleteAccountRequest,
    ) -> Result<shop_user::pb::DeleteAccountResponse, ServiceError> {
        unused()
    }

    async fn view_profile(
        &self,
        ctx: RequestContext,
        request: shop_user::pb::ViewProfileRequest,
    ) -> Result<shop_user::pb::ViewProfileResponse, ServiceError> {
        if let Ok(mut ids) = self.request_ids.lock() {
            ids.push(ctx.request_id);
        }
        if request.customer_id != ME {
            return Err(ServiceError::not_found("customer", &request.customer_id));
        }
        Ok(shop_user::pb::ViewProfileResponse {
            customer: Some(shop_user::pb::Customer {
                id: request.customer_id,
                email: "me@example.com".into(),
                name: "Me".into(),
                registered_at: Some(prost_types::Timestamp {
                    seconds: 1_714_555_800,
                    nanos: 0,
                }),
                ..Default::default()
            }),
            version: 1,
        })
    }
}

#[tokio::test]
async fn cart_items_load_their_products_once_each_concurrently_with_the_request_id() {
    let products = Arc::new(FakeProducts::default());
    let carts = Arc::new(FakeCarts::default());
    let users = Arc::new(FakeUsers::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let server = tonic::transport::Server::builder()
        .add_service(shop_product::product_server(products.clone()))
        .add_service(shop_cart::cart_query_server(carts.clone()))
        .add_service(shop_user::user_server(users.clone()))
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
    let server = tokio::spawn(server);

    let mut config = Config::default();
    config.upstreams.product_url = url.clone();
    config.upstreams.cart_query_url = url.clone();
    config.upstreams.user_url = url;
    let bff = shop_bff::bff(&config).expect("builds");
    let query = format!(
        r#"{{ viewCart(cartId: "{CART}") {{ id version customer {{ id }}
              items {{ productId quantity product {{ id name price createdAt }} }} }}
            missing: viewCart(cartId: "{GONE}") {{ id }} }}"#
    );
    let response = bff.execute_as(query.as_str(), "req-42", customer()).await;
    let r = serde_json::to_value(&response).expect("serializes");
    server.abort();

    // The unknown cart is null with NOT_FOUND; the deleted product is null silently.
    assert_eq!(codes(&r), ["NOT_FOUND"], "{r:#}");
    assert_eq!(r["errors"][0]["path"], json!(["missing"]));
    assert_eq!(r["data"]["missing"], Json::Null);
    let cart = &r["data"]["viewCart"];
    assert_eq!(cart["version"], 5);
    // The cart is the caller's (a viewable cart has to be), resolved through the loader.
    assert_eq!(cart["customer"], json!({"id": ME}));
    let names: Vec<Json> = cart["items"]
        .as_array()
        .map(|items| items.iter().map(|i| i["product"]["name"].clone()).collect())
        .unwrap_or_default();
    assert_eq!(
        names,
        [
            json!(format!("name of {}", KNOWN[0])),
            json!(format!("name of {}", KNOWN[1])),
            json!(format!("name of {}", KNOWN[0])),
            Json::Null,
            json!(format!("name of {}", KNOWN[2])),
        ]
    );
    assert_eq!(
        cart["items"][0]["product"]["createdAt"],
        "2024-05-01T09:30:00Z"
    );

    // Five lines, four distinct products: one BatchGetProducts, no GetProduct.
    let calls = products.calls.lock().map(|c| c.clone()).unwrap_or_default();
    assert!(calls.is_empty(), "{calls:?}");
    let batches = products
        .batches
        .lock()
        .map(|c| c.clone())
        .unwrap_or_default();
    assert_eq!(batches.len(), 1, "one batch call: {batches:?}");
    let ids: BTreeSet<&str> = batches[0].0.iter().map(String::as_str).collect();
    assert_eq!(batches[0].0.len(), 4, "each id once: {batches:?}");
    assert_eq!(
        ids,
        [KNOWN[0], KNOWN[1], KNOWN[2], GONE].into_iter().collect()
    );
    assert_eq!(batches[0].1, "req-42");
    let cart_ids = carts
        .request_ids
        .lock()
        .map(|c| c.clone())
        .unwrap_or_default();
    // Each viewCart looks up the cart's owner first (through the loader), then views it.
    assert_eq!(cart_ids, ["req-42"; 4]);
    let user_ids = users
        .request_ids
        .lock()
        .map(|c| c.clone())
        .unwrap_or_default();
    assert_eq!(user_ids, ["req-42"]);
}

// ------------------------------------------------------------------- settings

/// The port of the listener or of the first cluster of a local Envoy config.
fn envoy_port(deployable: &str, section: &str) -> u16 {
    let path = format!(
        "{}/../../generated/envoy/local/{deployable}.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("envoy yaml parses");
    let addr = match section {
        "listener" => &doc["static_resources"]["listeners"][0]["address"]["socket_address"],
        _ => {
            &doc["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]["lb_endpoints"]
                [0]["endpoint"]["address"]["socket_address"]
        }
    };
    let port = addr["port_value"].as_u64().expect("port_value");
    u16::try_from(port).expect("a port")
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("url with a port")
}

#[test]
fn defaults_are_the_local_envoy_ports() {
    let c = Config::default();
    assert_eq!(c.listen.port(), envoy_port("bff", "cluster"));
    let urls = c.upstreams.urls();
    assert!(urls.len() >= 5, "{urls:?}");
    for (deployable, url) in urls {
        assert_eq!(
            port_of(url),
            envoy_port(deployable, "listener"),
            "{deployable}"
        );
    }
}

#[test]
fn flags_override_defaults() {
    let c = Config::try_parse_from([
        "bff",
        "--listen",
        "127.0.0.1:1",
        "--product-url",
        "http://127.0.0.1:2",
        "--cart-query-url",
        "http://127.0.0.1:3",
        "--max-depth",
        "3",
    ])
    .expect("parses");
    assert_eq!(c.listen.port(), 1);
    assert_eq!(c.upstreams.product_url, "http://127.0.0.1:2");
    assert_eq!(c.upstreams.cart_query_url, "http://127.0.0.1:3");
    assert_eq!(c.limits.max_depth, 3);
    let d = Config::try_parse_from(["bff"]).expect("parses");
    assert_eq!(d, Config::default());
}
