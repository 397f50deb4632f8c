//! The BFF's generated crate `<system>-bff` under `generated/rust/bff/`, rendered from
//! the API `graphql_model` decided (`System::graphql`), so it always fits the SDL: a
//! resolver per Query, Mutation and relation field (`registry`), the proto → GraphQL
//! converter of each entity, the upstream clients and their configuration (defaults:
//! each deployable's local Envoy), and one per-request loader per entity that relation
//! fields fetch by id. The glue they share is `keel::graphql` (`rt` below).
//!
//! Rust is built with `quote` and printed by `prettyplease`; `lib.rs` and `Cargo.toml`
//! come from templates.

mod guard;

use std::collections::BTreeSet;

use heck::ToSnakeCase;
use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote};

use super::{EmitError, GeneratedFile};
use crate::ir::*;

const DIR: &str = "rust/bff";

pub fn emit(system: &System) -> Result<Vec<GeneratedFile>, EmitError> {
    if system.graphql.is_empty() {
        return Ok(Vec::new());
    }
    let mut ctx = tera::Context::new();
    ctx.insert("name", &crate_name(system));
    ctx.insert("system", &system.name);
    let deps: Vec<serde_json::Value> = services(system)
        .iter()
        .map(|s| serde_json::json!({ "name": super::rust::crate_name(system, s), "dir": s.name }))
        .collect();
    ctx.insert("deps", &deps);
    ctx.insert("storefront", &system.bff.storefront.is_some());
    let templates = super::CrateTemplates {
        dir: DIR,
        cargo_toml: include_str!("../../../templates/rust/bff/Cargo.toml.tera"),
        lib_rs: include_str!("../../../templates/rust/bff/lib.rs.tera"),
        module: "api",
    };
    let mut files = super::crate_files(&templates, &mut ctx, api(system)?)?;
    files.push(GeneratedFile {
        path: format!("{DIR}/src/main.rs"),
        contents: super::rust::print(main_rs(system))?,
    });
    if let Some(dir) = &system.bff.storefront {
        files.push(GeneratedFile {
            path: format!("{DIR}/build.rs"),
            contents: super::rust::print(build_rs(dir))?,
        });
    }
    Ok(files)
}

/// `shop-bff`.
pub fn crate_name(system: &System) -> String {
    format!("{}-bff", system.name)
}

/// The services the BFF calls, in spec order.
fn services(system: &System) -> Vec<&Service> {
    let used: BTreeSet<&str> = system
        .graphql
        .upstreams
        .iter()
        .map(|u| u.service.as_str())
        .collect();
    system
        .services
        .iter()
        .filter(|s| used.contains(s.name.as_str()))
        .collect()
}

/// `shop_cart`: the generated crate of a service.
fn crate_ident(system: &System, service: &str) -> Ident {
    let name = match system.services.iter().find(|s| s.name == service) {
        Some(svc) => super::rust::crate_name(system, svc),
        None => format!("{}-{service}", system.name),
    };
    super::ident(name.replace('-', "_"))
}

fn ident(name: &str) -> Ident {
    super::ident(name.to_snake_case())
}

fn api(system: &System) -> Result<TokenStream, EmitError> {
    let api = &system.graphql;
    let doc = format!(
        " The resolvers of the `{}` BFF's GraphQL API, and what they call.",
        system.name
    );
    let config = config(system)?;
    let server = server(system);
    let upstreams = upstreams(system);
    let loaders = loaders(system)?;
    let registry = registry(api);
    let by_id = by_id_resolvers(api);
    let ownership = guard::helpers(system)?;
    let modules = services(system)
        .into_iter()
        .map(|s| service_module(system, s))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(quote! {
        #![doc = #doc]
        use std::collections::BTreeMap;

        use keel::graphql as rt;

        /// The schema these resolvers implement (`generated/graphql/schema.graphql`).
        pub const SDL: &str = include_str!("../../../graphql/schema.graphql");

        #config
        #server
        #upstreams
        #loaders
        #registry
        #by_id
        #ownership
        #(#modules)*
    })
}

/// The BFF's settings and entry points, over `keel::bff`.
fn server(system: &System) -> TokenStream {
    let about = format!("The {} system's GraphQL gateway (BFF)", system.name);
    let (with_auth, auth_layer) = if system.graphql.identity.is_some() {
        (
            quote!(let auth = upstreams.auth.clone();),
            quote!(.map(|b| b.with_auth(auth))),
        )
    } else {
        (TokenStream::new(), TokenStream::new())
    };
    let web = web(system);
    let limits = &system.bff.limits;
    let (body, timeout) = (limits.max_body_bytes, limits.request_timeout_ms);
    let (body_text, timeout_text) = (body.to_string(), timeout.to_string());
    let body = proc_macro2::Literal::usize_unsuffixed(body as usize);
    let timeout = proc_macro2::Literal::u64_unsuffixed(timeout);
    quote! {
        /// The BFF's settings, by flag or environment variable. The edge limits default
        /// to the spec's `bff.limits`, wherever the BFF runs.
        #[derive(clap::Parser, Debug, Clone, PartialEq, Eq)]
        #[command(name = "bff", about = #about)]
        #[command(mut_arg("max_body_bytes", |a| a.default_value(#body_text)))]
        #[command(mut_arg("request_timeout_ms", |a| a.default_value(#timeout_text)))]
        pub struct Config {
            /// Address to serve HTTP on: POST/GET /graphql, the web pages, /healthz.
            #[arg(long, env = "LISTEN_ADDR", default_value_t = LISTEN)]
            pub listen: std::net::SocketAddr,
            #[command(flatten)]
            pub upstreams: UpstreamConfig,
            #[command(flatten)]
            pub limits: keel::bff::Limits,
        }

        impl Default for Config {
            fn default() -> Self {
                Config {
                    listen: LISTEN,
                    upstreams: UpstreamConfig::default(),
                    limits: keel::bff::Limits {
                        max_body_bytes: #body,
                        request_timeout_ms: #timeout,
                        ..keel::bff::Limits::default()
                    },
                }
            }
        }

        #web

        /// The generated half of the BFF: the SDL, its resolvers and the web pages.
        pub fn api() -> keel::bff::Api {
            keel::bff::Api { sdl: SDL, relations: RELATIONS, registry: registry(), web: web() }
        }

        /// The schema over (lazily connecting) upstream channels. Needs a tokio runtime;
        /// contacts no upstream.
        pub fn bff(config: &Config) -> Result<keel::bff::Bff, keel::bff::BuildError> {
            let upstreams = Upstreams::connect_lazy(&config.upstreams)?;
            #with_auth
            keel::bff::Bff::new(&api(), upstreams, config.limits.clone(), |u, id| u.request(id))#auth_layer
        }

        /// The HTTP app: `POST /graphql` (and `GET` for queries), the web pages, `/healthz`.
        pub fn app(config: &Config) -> Result<keel::bff::Router, keel::bff::BuildError> {
            Ok(bff(config)?.router())
        }

        /// Serves the BFF on an already bound `listener` (`config.listen` is not used)
        /// until `shutdown` resolves, then drains.
        pub async fn serve_on(
            config: Config,
            listener: tokio::net::TcpListener,
            shutdown: impl std::future::Future<Output = ()> + Send + 'static,
        ) -> anyhow::Result<()> {
            let bff = bff(&config)?;
            tracing::info!(upstreams = ?config.upstreams.urls(), "bff upstreams");
            Ok(bff.serve_on(listener, shutdown).await?)
        }

        /// Serves the BFF on `config.listen` until `shutdown` resolves, then drains.
        pub async fn serve(
            config: Config,
            shutdown: impl std::future::Future<Output = ()> + Send + 'static,
        ) -> anyhow::Result<()> {
            let listener = tokio::net::TcpListener::bind(config.listen).await?;
            serve_on(config, listener, shutdown).await
        }
    }
}

/// The web files the BFF serves besides keel's own: the generated client and back-office
/// metadata (`generated/web/`, under `/assets/gen/`), and the spec's storefront
/// (`bff.storefront`: its `index.html` at `/`, its files under `/assets/app/`).
fn web(system: &System) -> TokenStream {
    let storefront = match &system.bff.storefront {
        Some(dir) => {
            let path = format!("$CARGO_MANIFEST_DIR/../../../{dir}");
            let doc = format!(" The storefront (`bff.storefront`: `{dir}`), compiled in.");
            quote! {
                #[doc = #doc]
                pub static STOREFRONT: include_dir::Dir<'static> = include_dir::include_dir!(#path);
            }
        }
        None => TokenStream::new(),
    };
    let storefront_ref = if system.bff.storefront.is_some() {
        quote!(Some(&STOREFRONT))
    } else {
        quote!(None)
    };
    quote! {
        /// The client and back-office metadata generated from the spec (`generated/web/`).
        pub const WEB_GENERATED: &[(&str, &str)] = &[
            ("backoffice.js", include_str!("../../../web/backoffice.js")),
            ("client.js", include_str!("../../../web/client.js")),
        ];

        #storefront

        /// What the BFF serves to browsers besides keel's back-office and console.
        pub fn web() -> keel::bff::Web {
            keel::bff::Web { generated: WEB_GENERATED, storefront: #storefront_ref }
        }
    }
}

/// With a storefront: cargo builds the BFF again when a file of it is added or removed
/// (`include_dir!` tracks the files it found, not the folder).
fn build_rs(dir: &str) -> TokenStream {
    let line = format!("cargo:rerun-if-changed=../../../{dir}");
    quote! {
        //! Rebuild when the storefront's folder changes.
        fn main() {
            println!(#line);
        }
    }
}

/// The BFF binary: `bff --help` lists every setting.
fn main_rs(system: &System) -> TokenStream {
    let krate = super::ident(crate_name(system).replace('-', "_"));
    quote! {
        //! The BFF binary: `bff --listen <addr> --<upstream>-url <url> …` (defaults: the
        //! spec's local ports; every flag also reads its environment variable).

        use clap::Parser;

        #[tokio::main]
        async fn main() -> anyhow::Result<()> {
            keel::server::init_tracing();
            let config = #krate::Config::parse();
            #krate::serve(config, keel::server::shutdown_signal()).await
        }
    }
}

// ------------------------------------------------------------------ config, clients

fn deployable<'a>(system: &'a System, name: &str) -> Result<&'a Deployable, EmitError> {
    system
        .deployables
        .iter()
        .find(|d| d.name == name)
        .ok_or_else(|| EmitError::Other(format!("no deployable `{name}`")))
}

fn config(system: &System) -> Result<TokenStream, EmitError> {
    let listen = deployable(system, "bff")?.local.app;
    let mut fields = Vec::new();
    let mut defaults = Vec::new();
    let mut urls = Vec::new();
    for u in &system.graphql.upstreams {
        let field = format_ident!("{}_url", u.deployable.to_snake_case());
        let url = format!(
            "http://127.0.0.1:{}",
            deployable(system, &u.deployable)?.local.envoy
        );
        let doc = format!(
            " The `{}` deployable (`{}.{}`); its local Envoy by default.",
            u.deployable, u.package, u.proto_service
        );
        let env = &u.env;
        fields.push(quote! {
            #[doc = #doc]
            #[arg(long, env = #env, default_value = #url)]
            pub #field: String,
        });
        defaults.push(quote!(#field: #url.to_string(),));
        let name = &u.deployable;
        urls.push(quote!((#name, self.#field.as_str())));
    }
    Ok(quote! {
        /// Where the BFF listens on one machine: its deployable's local app port, behind its Envoy.
        pub const LISTEN: std::net::SocketAddr = std::net::SocketAddr::V4(std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, #listen));

        /// The gRPC endpoints (normally each upstream's Envoy) and how long to wait for them.
        #[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
        pub struct UpstreamConfig {
            #(#fields)*
            /// Deadline of one upstream call, sent as `grpc-timeout` too.
            #[arg(long, env = "UPSTREAM_TIMEOUT_MS", default_value_t = rt::DEFAULT_UPSTREAM_TIMEOUT_MS)]
            pub timeout_ms: u64,
            /// How long to wait for a TCP connection to an upstream.
            #[arg(long, env = "UPSTREAM_CONNECT_TIMEOUT_MS", default_value_t = rt::DEFAULT_CONNECT_TIMEOUT_MS)]
            pub connect_timeout_ms: u64,
        }

        impl Default for UpstreamConfig {
            fn default() -> Self {
                UpstreamConfig {
                    #(#defaults)*
                    timeout_ms: rt::DEFAULT_UPSTREAM_TIMEOUT_MS,
                    connect_timeout_ms: rt::DEFAULT_CONNECT_TIMEOUT_MS,
                }
            }
        }

        impl UpstreamConfig {
            pub fn timeouts(&self) -> rt::Timeouts {
                rt::Timeouts::from_millis(self.timeout_ms, self.connect_timeout_ms)
            }

            /// Each upstream deployable and its URL.
            pub fn urls(&self) -> Vec<(&'static str, &str)> {
                vec![#(#urls),*]
            }
        }
    })
}

/// `shop_cart::pb::cart_query_service_client::CartQueryServiceClient`.
fn client_path(system: &System, u: &GraphqlUpstream) -> TokenStream {
    let krate = crate_ident(system, &u.service);
    let module = format_ident!("{}_client", u.proto_service.to_snake_case());
    let client = format_ident!("{}Client", u.proto_service);
    quote!(#krate::pb::#module::#client)
}

/// The client over a channel.
fn client_type(system: &System, u: &GraphqlUpstream) -> TokenStream {
    let path = client_path(system, u);
    quote!(#path<tonic::transport::Channel>)
}

fn upstreams(system: &System) -> TokenStream {
    let api = &system.graphql;
    let mut fields = Vec::new();
    let mut inits = Vec::new();
    for u in &api.upstreams {
        let field = ident(&u.deployable);
        let url = format_ident!("{}_url", u.deployable.to_snake_case());
        let ty = client_type(system, u);
        let path = client_path(system, u);
        let name = &u.deployable;
        fields.push(quote!(pub #field: #ty,));
        inits.push(quote!(#field: #path::new(rt::channel(#name, &c.#url, t)?),));
        if api.identity.as_ref() == Some(&u.deployable) {
            let issuer = &system.name;
            let subject = system.auth.as_ref().map(|a| {
                use heck::ToLowerCamelCase;
                format!("{}_id", a.entity.to_snake_case()).to_lower_camel_case()
            });
            fields.push(quote! {
                /// Verifies access tokens with the identity's keys; answers the session fields.
                pub auth: std::sync::Arc<rt::Authn>,
            });
            inits.push(
                quote!(auth: rt::Authn::new(rt::channel(#name, &c.#url, t)?, #issuer, #subject),),
            );
        }
    }
    quote! {
        /// One client per upstream deployable; cloning is cheap (they share the channel).
        #[derive(Clone, Debug)]
        pub struct Upstreams {
            #(#fields)*
            /// The deadline of each call.
            pub timeout: std::time::Duration,
        }

        impl Upstreams {
            /// Creates the channels without connecting. Must run inside a tokio runtime.
            pub fn connect_lazy(c: &UpstreamConfig) -> Result<Upstreams, rt::UpstreamError> {
                let t = c.timeouts();
                Ok(Upstreams {
                    #(#inits)*
                    timeout: t.call,
                })
            }

            /// What the resolvers of one GraphQL request share: the metadata of its
            /// calls and its loaders.
            pub fn request(&self, request_id: impl Into<String>) -> (rt::Call, Loaders) {
                let call = rt::Call::new(request_id, Some(self.timeout));
                let loaders = Loaders::new(self, &call);
                (call, loaders)
            }
        }
    }
}

fn loaders(system: &System) -> Result<TokenStream, EmitError> {
    let api = &system.graphql;
    let mut fields = Vec::new();
    let mut inits = Vec::new();
    for l in &api.lookups {
        let up = upstream_of(api, &l.call)?;
        let field = ident(&l.entity);
        let ty = client_type(system, up);
        let client = ident(&up.deployable);
        let module = ident(&l.call.service);
        let fetch = format_ident!("fetch_{}", l.entity.to_snake_case());
        let doc = format!(" {} by id, with `{}`.", l.entity, l.field);
        fields.push(quote!(#[doc = #doc] pub #field: rt::ByKey<#ty>,));
        let make = if l.batch.is_some() {
            quote!(rt::batch_loader)
        } else {
            quote!(rt::loader)
        };
        inits.push(quote!(#field: #make(u.#client.clone(), call, #module::#fetch),));
    }
    let params = if inits.is_empty() {
        quote!(_: &Upstreams, _: &rt::Call)
    } else {
        quote!(u: &Upstreams, call: &rt::Call)
    };
    Ok(quote! {
        /// One GraphQL request's loaders: relation fields fetch by id through them, each
        /// id once, concurrently.
        pub struct Loaders {
            #(#fields)*
        }

        impl Loaders {
            pub fn new(#params) -> Loaders {
                Loaders {
                    #(#inits)*
                }
            }
        }
    })
}

fn upstream_of<'a>(
    api: &'a GraphqlApi,
    call: &OperationCall,
) -> Result<&'a GraphqlUpstream, EmitError> {
    api.upstreams
        .iter()
        .find(|u| u.deployable == call.deployable)
        .ok_or_else(|| EmitError::Other(format!("no upstream `{}`", call.deployable)))
}

// ------------------------------------------------------------------ registry

/// Every resolver: `"Type.field"` and its path.
fn resolvers(api: &GraphqlApi) -> Vec<(String, TokenStream)> {
    let mut out = Vec::new();
    for (root, fields) in [("Query", &api.queries), ("Mutation", &api.mutations)] {
        for f in fields {
            let path = match (&f.call, f.session) {
                (Some(c), _) => {
                    let module = ident(&c.service);
                    let name = ident(&f.name);
                    quote!(#module::#name)
                }
                (None, Some(SessionField::Login)) => quote!(rt::auth::login),
                (None, Some(SessionField::Refresh)) => quote!(rt::auth::refresh),
                (None, Some(SessionField::Logout)) => quote!(rt::auth::logout),
                (None, None) => quote!(query_ok),
            };
            out.push((format!("{root}.{}", f.name), path));
        }
    }
    for o in &api.objects {
        for f in &o.fields {
            let FieldSource::Relation(r) = &f.resolve else {
                continue;
            };
            let name = relation_fn(o, f);
            let path = match r {
                RelationCall::ById { .. } => quote!(#name),
                RelationCall::Call(c) => {
                    let module = ident(&c.service);
                    quote!(#module::#name)
                }
            };
            out.push((format!("{}.{}", o.name, f.name), path));
        }
    }
    out
}

fn relation_fn(o: &ObjectType, f: &ObjectField) -> Ident {
    format_ident!("{}_{}", o.name.to_snake_case(), f.name.to_snake_case())
}

fn registry(api: &GraphqlApi) -> TokenStream {
    let all = resolvers(api);
    let n = all.len();
    let entries = all.iter().map(|(k, p)| quote!((#k, #p)));
    let relations = all
        .iter()
        .map(|(k, _)| k)
        .filter(|k| !k.starts_with("Query.") && !k.starts_with("Mutation."));
    let placeholder = api
        .queries
        .iter()
        .any(|q| q.call.is_none() && q.session.is_none())
        .then(|| {
            quote! {
                /// `Query.ok`: GraphQL needs a query; nothing is exposed as one yet.
                fn query_ok(_: rt::ResolverContext<'_>) -> rt::FieldFuture<'_> {
                    rt::FieldFuture::Value(Some(rt::FieldValue::value(rt::Value::from(true))))
                }
            }
        });
    quote! {
        /// The resolver of every Query and Mutation field and of every relation field,
        /// by `"Type.field"`. Every other field is read from its parent's value.
        pub fn registry() -> BTreeMap<&'static str, rt::Resolve> {
            let entries: [(&'static str, rt::Resolve); #n] = [#(#entries),*];
            entries.into_iter().collect()
        }

        /// The relation fields (`"Type.field"`): resolved by another call.
        pub const RELATIONS: &[&str] = &[#(#relations),*];

        #placeholder
    }
}

/// The relation fields that fetch by id, through the request's loaders.
fn by_id_resolvers(api: &GraphqlApi) -> TokenStream {
    let mut out = TokenStream::new();
    for o in &api.objects {
        for f in &o.fields {
            let FieldSource::Relation(RelationCall::ById { key, entity }) = &f.resolve else {
                continue;
            };
            let name = relation_fn(o, f);
            let loader = ident(entity);
            let doc = format!(" `{}.{}`: the {entity} that `{key}` names.", o.name, f.name);
            out.extend(quote! {
                #[doc = #doc]
                fn #name(ctx: rt::ResolverContext<'_>) -> rt::FieldFuture<'_> {
                    rt::related::<Loaders, _>(ctx, #key, |l| &l.#loader)
                }
            });
        }
    }
    out
}

// ------------------------------------------------------------------ per service

fn service_module(system: &System, svc: &Service) -> Result<TokenStream, EmitError> {
    let api = &system.graphql;
    let module = ident(&svc.name);
    let krate = crate_ident(system, &svc.name);
    let doc = format!(" The `{}` service (`{}`).", svc.name, svc.proto.package);
    let mut items = Vec::new();
    let mut names: BTreeSet<String> = BTreeSet::new();
    let entity_span = |name: &str| {
        system
            .entities
            .iter()
            .find(|e| e.name == name)
            .map(|e| e.span)
            .unwrap_or_default()
    };
    let mut named = |name: &Ident, span: Span, what: &str| -> Result<(), EmitError> {
        if names.insert(name.to_string()) {
            Ok(())
        } else {
            Err(EmitError::At {
                span,
                message: format!(
                    "{what} needs the function `{name}` in the BFF's `{}` module, which another operation or entity already gives that name: rename one of them",
                    svc.name
                ),
            })
        }
    };
    for entity in converted(api, &svc.name) {
        let (name, tokens) = converter(api, &entity)?;
        named(&name, entity_span(&entity), &format!("entity `{entity}`"))?;
        items.push(tokens);
    }
    for l in api.lookups.iter().filter(|l| l.call.service == svc.name) {
        let (name, tokens) = fetch(system, l)?;
        named(
            &name,
            entity_span(&l.entity),
            &format!("entity `{}`", l.entity),
        )?;
        items.push(tokens);
    }
    for (root, fields) in [("Query", &api.queries), ("Mutation", &api.mutations)] {
        for f in fields {
            let Some(c) = f.call.as_ref().filter(|c| c.service == svc.name) else {
                continue;
            };
            let name = ident(&f.name);
            let span = svc
                .operation(&c.operation)
                .map(|o| o.span)
                .unwrap_or_default();
            named(&name, span, &format!("operation `{}`", c.operation))?;
            let doc = format!(" `{root}.{}`: `{}`.", f.name, c.operation);
            items.push(resolver(system, &name, &doc, c)?);
        }
    }
    for o in &api.objects {
        for f in &o.fields {
            let FieldSource::Relation(RelationCall::Call(c)) = &f.resolve else {
                continue;
            };
            if c.service != svc.name {
                continue;
            }
            let name = relation_fn(o, f);
            named(
                &name,
                entity_span(&o.name),
                &format!("`{}.{}`", o.name, f.name),
            )?;
            let doc = format!(
                " `{}.{}`: `{}` with this {}'s id.",
                o.name, f.name, c.operation, o.name
            );
            items.push(resolver(system, &name, &doc, c)?);
        }
    }
    Ok(quote! {
        #[doc = #doc]
        pub mod #module {
            use keel::graphql as rt;
            use #krate::pb;

            #(#items)*
        }
    })
}

/// Every call whose response the module of `service` converts.
fn calls_of<'a>(api: &'a GraphqlApi, service: &str) -> Vec<&'a OperationCall> {
    let roots = api
        .queries
        .iter()
        .chain(&api.mutations)
        .filter_map(|f| f.call.as_ref());
    let relations = api
        .objects
        .iter()
        .flat_map(|o| &o.fields)
        .filter_map(|f| match &f.resolve {
            FieldSource::Relation(RelationCall::Call(c)) => Some(&**c),
            _ => None,
        });
    let lookups = api.lookups.iter().map(|l| &l.call);
    roots
        .chain(relations)
        .chain(lookups)
        .filter(|c| c.service == service)
        .collect()
}

/// The entities whose messages the module of `service` converts, in schema order.
fn converted(api: &GraphqlApi, service: &str) -> Vec<String> {
    let mut wanted: Vec<String> = Vec::new();
    for c in calls_of(api, service) {
        if let CallOutput::Entity { entity, .. } | CallOutput::Connection { entity, .. } = &c.output
            && !wanted.contains(entity)
        {
            wanted.push(entity.clone());
        }
    }
    let mut i = 0;
    while i < wanted.len() {
        if let Some(o) = api.entity(&wanted[i]) {
            for f in &o.fields {
                if let FieldSource::Owned { entity, .. } = &f.resolve
                    && !wanted.contains(entity)
                {
                    wanted.push(entity.clone());
                }
            }
        }
        i += 1;
    }
    api.objects
        .iter()
        .filter_map(|o| match &o.source {
            ObjectSource::Entity(e) if wanted.contains(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

fn has_version(api: &GraphqlApi, entity: &str) -> bool {
    api.entity(entity)
        .is_some_and(|o| o.fields.iter().any(|f| f.resolve == FieldSource::Version))
}

/// `fn cart(m: &pb::Cart, version: i64) -> rt::Result<rt::Value>`.
fn converter(api: &GraphqlApi, entity: &str) -> Result<(Ident, TokenStream), EmitError> {
    let o = api
        .entity(entity)
        .ok_or_else(|| EmitError::Other(format!("no object type for {entity}")))?;
    let name = ident(entity);
    let message = super::ident(entity);
    let mut entries = Vec::new();
    for f in &o.fields {
        let what = format!("{}.{}", o.name, f.name);
        let v = match &f.resolve {
            FieldSource::Message { field, scalar } => {
                message_value(&super::ident(field), *scalar, f.ty.non_null, &what)
            }
            FieldSource::Owned { field, entity } => {
                if has_version(api, entity) {
                    return Err(EmitError::Other(format!(
                        "{what}: an owned {entity} cannot carry its own version"
                    )));
                }
                let field = super::ident(field);
                let conv = ident(entity);
                if f.ty.list {
                    quote!(rt::Value::List(rt::list(&m.#field, #conv)?))
                } else {
                    quote!(rt::child(m.#field.as_ref(), #conv)?)
                }
            }
            FieldSource::Version => quote!(rt::int(version, #what)?),
            FieldSource::Built | FieldSource::Relation(_) => continue,
        };
        let key = &f.name;
        entries.push(quote!((#key, #v)));
    }
    let version = has_version(api, entity).then(|| quote!(, version: i64));
    let doc =
        format!(" The GraphQL object of a `{entity}` message (relation fields resolve later).");
    Ok((
        name.clone(),
        quote! {
            #[doc = #doc]
            pub fn #name(m: &pb::#message #version) -> rt::Result<rt::Value> {
                Ok(rt::object([#(#entries),*]))
            }
        },
    ))
}

fn message_value(field: &Ident, scalar: GraphqlScalar, non_null: bool, what: &str) -> TokenStream {
    match (scalar, non_null) {
        (GraphqlScalar::Id | GraphqlScalar::String, true) => {
            quote!(rt::Value::from(m.#field.as_str()))
        }
        (GraphqlScalar::Id | GraphqlScalar::String, false) => quote!(rt::opt(m.#field.as_deref())),
        (GraphqlScalar::DateTime, true) => quote!(rt::datetime(m.#field.as_ref(), #what)?),
        (GraphqlScalar::DateTime, false) => quote!(rt::opt_datetime(m.#field.as_ref(), #what)?),
        (_, true) => quote!(rt::Value::from(m.#field)),
        (_, false) => quote!(rt::opt(m.#field)),
    }
}

/// A lookup's fetch: with a batch get, every id of a batch in one call; otherwise one
/// item by id, NOT_FOUND as none.
fn fetch(system: &System, l: &Lookup) -> Result<(Ident, TokenStream), EmitError> {
    let api = &system.graphql;
    let up = upstream_of(api, &l.call)?;
    let name = format_ident!("fetch_{}", l.entity.to_snake_case());
    let client = client_type(system, up);
    if let Some(batch) = &l.batch {
        return Ok((name.clone(), fetch_many(&name, &client, l, batch)));
    }
    let request = request(&l.call)?;
    let call = rpc_call(&l.call, quote!(call.request(req)));
    let output = output(api, &l.call)?;
    let doc = format!(" {} by id, with `{}`.", l.entity, l.field);
    Ok((
        name.clone(),
        quote! {
            #[doc = #doc]
            pub(crate) fn #name(mut client: #client, key: String, call: rt::Call) -> rt::BoxFuture<rt::Fetched> {
                Box::pin(async move {
                    #request
                    #call
                    #output
                })
            }
        },
    ))
}

fn fetch_many(name: &Ident, client: &TokenStream, l: &Lookup, batch: &BatchCall) -> TokenStream {
    let method = super::ident(batch.rpc.method.to_snake_case());
    let request = super::ident(&batch.rpc.request);
    let items = super::ident(&batch.items);
    let conv = ident(&l.entity);
    let service = &l.call.service;
    let doc = format!(
        " {} by id, every id of a batch in one `{}`.",
        l.entity, batch.rpc.method
    );
    quote! {
        #[doc = #doc]
        pub(crate) fn #name(mut client: #client, keys: Vec<String>, call: rt::Call) -> rt::BoxFuture<rt::FetchedMany> {
            Box::pin(async move {
                let req = pb::#request { ids: keys };
                let r = rt::ok(#service, client.#method(call.request(req)).await)?;
                r.#items.iter().map(|m| Ok((m.id.clone(), #conv(m)?))).collect()
            })
        }
    }
}

// ------------------------------------------------------------------ resolvers

fn resolver(
    system: &System,
    name: &Ident,
    doc: &str,
    c: &OperationCall,
) -> Result<TokenStream, EmitError> {
    let api = &system.graphql;
    let guard = guard::parts(c)?;
    let (allow, password, checks, keep_email, credentials, forget) = (
        &guard.allow,
        &guard.password,
        &guard.checks,
        &guard.keep_email,
        &guard.credentials,
        &guard.forget,
    );
    let reads = c.request.iter().any(|f| reads_args(&f.source));
    let args = match (reads, c.input) {
        (false, _) => TokenStream::new(),
        (true, true) => quote!(let mut a = rt::Args::input(&ctx.args)?;),
        (true, false) => quote!(let mut a = rt::Args::of(&ctx.args);),
    };
    let finish = reads.then(|| quote!(a.finish()?;));
    let request = request(c)?;
    let key = key_of(c);
    let up = ident(&upstream_of(api, c)?.deployable);
    let call = rpc_call(c, quote!(rt::grpc(&ctx, req)));
    let result = match &c.output {
        CallOutput::Entity { entity, absent, .. } => {
            let v = output(api, c)?;
            let v = quote!(#v?);
            let kind = entity.to_snake_case();
            match absent {
                Absent::NotFound { key: Some(_) } => quote!(rt::found(#kind, &key, #v)),
                Absent::NotFound { key: None } => quote!(rt::found(#kind, "", #v)),
                Absent::Null => quote!(rt::maybe(#v)),
                Absent::Error => quote!(rt::sent(#kind, #v)),
            }
        }
        _ => {
            let v = output(api, c)?;
            quote!(rt::value(#v))
        }
    };
    Ok(quote! {
        #[doc = #doc]
        pub(crate) fn #name(ctx: rt::ResolverContext<'_>) -> rt::FieldFuture<'_> {
            rt::FieldFuture::new(async move {
                #allow
                #args
                #request
                #password
                #finish
                #checks
                #key
                #keep_email
                #forget
                let mut client = rt::data::<super::Upstreams>(&ctx)?.#up.clone();
                #call
                #credentials
                #result
            })
        }
    })
}

fn reads_args(s: &ValueSource) -> bool {
    matches!(
        s,
        ValueSource::Arg { .. }
            | ValueSource::PageSize { .. }
            | ValueSource::PageToken { .. }
            | ValueSource::Children { .. }
            | ValueSource::Caller { .. }
    )
}

/// `let key = req.id.clone();` when the result names the request's key.
fn key_of(c: &OperationCall) -> TokenStream {
    let key = match &c.output {
        CallOutput::Entity {
            absent: Absent::NotFound { key: Some(k) },
            ..
        }
        | CallOutput::Deleted { key: k } => k,
        _ => return TokenStream::new(),
    };
    let field = super::ident(key);
    match c.request.iter().find(|f| &f.field == key).map(|f| f.label) {
        Some(Label::Required) => quote!(let key = req.#field.clone();),
        _ => quote!(let key = req.#field.clone().unwrap_or_default();),
    }
}

/// `let req = pb::GetProductRequest { .. };`
fn request(c: &OperationCall) -> Result<TokenStream, EmitError> {
    let ty = super::ident(&c.rpc.request);
    let fields = c
        .request
        .iter()
        .map(request_field)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(quote!(let req = pb::#ty { #(#fields)* };))
}

fn request_field(f: &RequestField) -> Result<TokenStream, EmitError> {
    let name = super::ident(&f.field);
    let optional = f.label == Label::Optional;
    let v = match &f.source {
        ValueSource::Arg {
            name: arg,
            ty,
            default,
        } => {
            let reader = reader(ty.name.as_str(), &f.ty, optional || default.is_some())
                .ok_or_else(|| EmitError::Other(format!("no reader for `{arg}`: {}", ty)))?;
            match default {
                None => quote!(a.#reader(#arg)),
                Some(DefaultValue::Bool(b)) => quote!(a.#reader(#arg).unwrap_or(#b)),
                Some(DefaultValue::Int(i)) => {
                    let i = proc_macro2::Literal::i64_unsuffixed(*i);
                    quote!(a.#reader(#arg).unwrap_or(#i))
                }
                Some(DefaultValue::Str(s)) => {
                    quote!(a.#reader(#arg).unwrap_or_else(|| #s.to_string()))
                }
            }
        }
        ValueSource::Caller { arg } if optional => {
            quote!(Some(rt::caller_id(&caller, #arg, a.opt_id(#arg))?))
        }
        ValueSource::Caller { arg } => quote!(rt::caller_id(&caller, #arg, a.opt_id(#arg))?),
        ValueSource::PageSize { arg } => quote!(a.page_size(#arg)),
        ValueSource::PageToken { arg } => quote!(a.page_token(#arg)),
        ValueSource::Parent { field } if optional => {
            quote!(rt::parent_str(ctx.parent_value, #field))
        }
        ValueSource::Parent { field } => {
            quote!(rt::parent_str(ctx.parent_value, #field).unwrap_or_default())
        }
        ValueSource::Key if optional => quote!(Some(key)),
        ValueSource::Key => quote!(key),
        ValueSource::Children {
            arg,
            entity,
            ty,
            fields,
            defaults,
        } => {
            let message = super::ident(entity);
            let fields = fields
                .iter()
                .map(request_field)
                .collect::<Result<Vec<_>, _>>()?;
            let read = if ty.list {
                quote!(each)
            } else if ty.non_null {
                quote!(child)
            } else {
                quote!(opt_child)
            };
            let rest = defaults.then(|| quote!(..Default::default()));
            quote!(a.#read(#arg, |a| pb::#message { #(#fields)* #rest }))
        }
    };
    Ok(quote!(#name: #v,))
}

/// The `Args` method that reads a scalar into the proto field's type.
fn reader(scalar: &str, ty: &ProtoType, optional: bool) -> Option<Ident> {
    let base = match (scalar, ty) {
        ("ID", ProtoType::String) => "id",
        ("String", ProtoType::String) => "string",
        ("Int", ProtoType::Int32) => "int",
        ("Int" | "Money", ProtoType::Int64) => "i64",
        ("Boolean", ProtoType::Bool) => "bool",
        ("DateTime", ProtoType::Timestamp) => "datetime",
        _ => return None,
    };
    Some(if optional {
        format_ident!("opt_{base}")
    } else {
        format_ident!("{base}")
    })
}

/// `let r = rt::ok("product", client.get_product(..).await)?;` (or `let Some(r) =` for
/// a target that may be gone; no `r` when the response is not read).
fn rpc_call(c: &OperationCall, request: TokenStream) -> TokenStream {
    let method = super::ident(c.rpc.method.to_snake_case());
    let service = &c.service;
    let sent = quote!(client.#method(#request).await);
    match &c.output {
        CallOutput::Entity {
            absent: Absent::Null,
            ..
        } => quote! {
            let Some(r) = rt::ok_or_gone(#service, #sent)? else {
                return Ok(None);
            };
        },
        CallOutput::Deleted { .. } | CallOutput::Done => quote!(rt::ok(#service, #sent)?;),
        _ => quote!(let r = rt::ok(#service, #sent)?;),
    }
}

/// The response as a value: `Result<Option<Value>>` for an entity, else `Value`.
fn output(api: &GraphqlApi, c: &OperationCall) -> Result<TokenStream, EmitError> {
    Ok(match &c.output {
        CallOutput::Entity {
            entity,
            field,
            version,
            ..
        } => {
            let field = super::ident(field);
            let conv = ident(entity);
            let args = if *version && has_version(api, entity) {
                quote!(&m, r.version)
            } else {
                quote!(&m)
            };
            quote!(r.#field.map(|m| #conv(#args)).transpose())
        }
        CallOutput::Connection { entity, field } => {
            let field = super::ident(field);
            let conv = ident(entity);
            quote!(rt::connection(rt::list(&r.#field, #conv)?, r.next_page_token))
        }
        CallOutput::CommandPayload { id, id_name } => {
            let id = super::ident(id);
            quote!(rt::command_payload(#id_name, &r.#id, r.version)?)
        }
        CallOutput::Deleted { .. } => quote!(rt::delete_payload(&key)),
        CallOutput::Done => quote!(rt::Value::from(true)),
    })
}
