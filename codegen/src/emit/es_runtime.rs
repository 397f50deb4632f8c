//! `src/runtime.rs` of an event-sourced service's crate (feature `runtime`): what runs
//! it on `keel::es`. For a CQRS service: the read model's row mapping
//! (`keel::crud::Record`/`Child` of the entity and what it owns, in the read
//! database), its `keel::es::view::StateView` (table names, lock, migrations, the
//! aggregate's `view()` as the one mapping from state to rows) and the query use cases
//! answered from it.

use heck::{ToShoutySnakeCase, ToSnakeCase, ToUpperCamelCase};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::EmitError;
use super::crud::{self, Model};
use crate::ir::*;
use crate::{layout, names};

/// Whether the service's crate has a `runtime` module.
pub fn has_module(svc: &Service) -> bool {
    svc.is_event_sourced()
}

pub fn module(system: &System, svc: &Service) -> Result<TokenStream, EmitError> {
    match svc.pattern {
        Pattern::CqsEs => super::es_cqs::module(system, svc),
        _ => cqrs_module(system, svc),
    }
}

fn cqrs_module(system: &System, svc: &Service) -> Result<TokenStream, EmitError> {
    let m = Model::new(system, svc, DatabaseKind::ReadModel)?;
    let records = crud::records(&m);
    let attach = crud::attach_owned(&m);
    let view = state_view(svc, &m);
    let queries = query_handlers(svc);
    let process = if queries.is_empty() {
        TokenStream::new()
    } else {
        cqrs_process(system, svc, &m)?
    };
    let doc = format!(
        " The `{}` service on the event-sourcing runtime: its read model and queries.",
        svc.name
    );
    let child_import = (!m.owned.is_empty()).then(|| {
        quote!(
            use keel::crud::Child;
        )
    });
    Ok(quote! {
        #![doc = #doc]
        #child_import
        use keel::crud::{self, Record};
        use keel::es::view::{self, StateView};
        use keel::sql::{self, Arg, Db, Row};
        use keel::{RequestContext, ServiceError};

        use crate::pb;

        #records
        #attach
        #view
        #queries
        #process
    })
}

/// The advisory-lock key of a read model: `<service>proj` as 8 bytes (the only key of
/// its database, so a prefix suffices; kept so a running projector and its successor
/// still exclude each other).
fn lock_key(service: &str) -> i64 {
    let mut bytes = [b'_'; 8];
    for (b, c) in bytes.iter_mut().zip(format!("{service}proj").bytes()) {
        *b = c;
    }
    i64::from_be_bytes(bytes)
}

/// An advisory-lock key: FNV-1a of the whole `name`. Keys of one database must differ,
/// so no prefix of the name may decide it (the first 8 bytes once did: a service named
/// `members` got one key for its commands' lock and its relay's lease, and every
/// command waited for the relay).
pub(super) fn key_of(name: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_be_bytes(hash.to_be_bytes())
}

/// `impl ViewMapping for <mapping><A>`: the entity's rows from the aggregate's `view()`,
/// in the database `m` describes.
pub(super) fn view_mapping(
    svc: &Service,
    m: &Model<'_>,
    mapping: &proc_macro2::Ident,
    migrations: &proc_macro2::Ident,
) -> TokenStream {
    let aggregate_trait = format_ident!("{}Aggregate", svc.entity);
    let decider = format_ident!("{}Decider", svc.entity);
    let ty = super::ident(&m.entity.name);
    let (_, attach, _) = crud::support_names(m);
    let owned = m.owned.iter().map(|(r, _, _)| {
        let field = super::ident(&r.name);
        if r.cardinality.is_many() {
            quote!(rows.children(id, &view.#field)?;)
        } else {
            quote!(rows.children(id, view.#field.as_slice())?;)
        }
    });
    quote! {
        impl<A: crate::#aggregate_trait> keel::es::view::ViewMapping for #mapping<A> {
            type Decider = crate::#decider<A>;
            type View = pb::#ty;
            fn migrations() -> &'static sql::Migrations {
                &#migrations
            }
            fn view(state: &A, id: uuid::Uuid) -> Option<pb::#ty> {
                state.view(id)
            }
            #[allow(unused_variables)]
            fn owned_rows(view: &pb::#ty, id: uuid::Uuid, rows: &mut keel::es::view::Rows) -> Result<(), ServiceError> {
                #(#owned)*
                Ok(())
            }
            async fn attach(db: &Db, views: &mut [pb::#ty]) -> Result<(), ServiceError> {
                #attach(db, views).await
            }
        }
    }
}

fn state_view(svc: &Service, m: &Model<'_>) -> TokenStream {
    let agg = &svc.entity;
    let snake = names::snake(agg);
    let read_model = format_ident!("{}ReadModel", agg);
    let aggregate_trait = format_ident!("{}Aggregate", agg);
    let states = format!("{snake}_states");
    let deletions = format!("{snake}_deletions");
    let mut tables: Vec<String> = m.owned.iter().map(|(_, _, t)| t.name.clone()).collect();
    tables.extend([m.table.name.clone(), deletions.clone(), states.clone()]);
    let lock = lock_key(&svc.name);
    let mapping = view_mapping(svc, m, &read_model, &format_ident!("READ_MIGRATIONS"));
    let migrations = migrations(&m.database.name, "READ", "The read database's");
    let doc = format!(
        " The read model of `{}`: tables from the spec, rows from [`crate::{aggregate_trait}::view`].",
        svc.name
    );
    quote! {
        #migrations

        #[doc = #doc]
        pub struct #read_model<A>(std::marker::PhantomData<fn() -> A>);

        #mapping

        impl<A: crate::#aggregate_trait> StateView for #read_model<A> {
            const STATES: &'static str = #states;
            const DELETIONS: &'static str = #deletions;
            const TABLES: &'static [&'static str] = &[#(#tables),*];
            const LOCK: i64 = #lock;
        }
    }
}

/// `<PREFIX>_PG`, `<PREFIX>_SQLITE` and `<PREFIX>_MIGRATIONS` of database `db`.
pub(super) fn migrations(db: &str, prefix: &str, what: &str) -> TokenStream {
    let pg = format_ident!("{prefix}_PG");
    let lite = format_ident!("{prefix}_SQLITE");
    let both = format_ident!("{prefix}_MIGRATIONS");
    let pg_path = format!("../../sql/{db}");
    let lite_path = format!("../../sqlite/{db}");
    let pg_doc = format!(" {what} PostgreSQL migrations.");
    let lite_doc = format!(" {what} SQLite migrations.");
    quote! {
        #[doc = #pg_doc]
        pub static #pg: sqlx::migrate::Migrator = sqlx::migrate!(#pg_path);
        #[doc = #lite_doc]
        pub static #lite: sqlx::migrate::Migrator = sqlx::migrate!(#lite_path);
        /// Both; the database URL's dialect picks one.
        pub static #both: sql::Migrations = sql::Migrations { postgres: &#pg, sqlite: &#lite };
    }
}

/// The proto service whose methods are all queries by stream id answered from the read
/// model: its use cases on [`view::load`].
fn query_handlers(svc: &Service) -> TokenStream {
    let agg = svc.entity.as_str();
    let id_field = format!("{}_id", agg.to_snake_case());
    let by_id = |o: &Operation| {
        o.kind == OperationKind::Query
            && o.input.len() == 1
            && o.input[0].name == id_field
            && o.output.as_deref().is_none_or(|out| out == agg)
    };
    let Some(ps) = svc.proto.services.iter().find(|ps| {
        ps.methods
            .iter()
            .all(|m| svc.operation(&m.method).is_some_and(by_id))
    }) else {
        return TokenStream::new();
    };
    let id_ident = super::ident(&id_field);
    let out_ident = super::ident(agg.to_snake_case());
    let read_model = format_ident!("{}ReadModel", agg);
    let aggregate_trait = format_ident!("{}Aggregate", agg);
    let kind = names::snake(agg);
    let methods = ps.methods.iter().map(|m| {
        let method = super::ident(m.method.to_snake_case());
        let req = super::ident(&m.request);
        let resp = super::ident(&m.response);
        quote! {
            async fn #method(&self, _ctx: RequestContext, request: pb::#req) -> Result<pb::#resp, ServiceError> {
                let id = uuid::Uuid::parse_str(&request.#id_ident)
                    .map_err(|_| ServiceError::invalid(#id_field, "must be a UUID"))?;
                let (found, version) = view::load::<#read_model<A>>(&self.db, id)
                    .await?
                    .ok_or_else(|| ServiceError::not_found(#kind, id))?;
                Ok(pb::#resp { #out_ident: Some(found), version })
            }
        }
    });
    let base = ps.name.strip_suffix("Service").unwrap_or(&ps.name);
    let handlers = format_ident!("{}Handlers", base);
    let use_cases = format_ident!("{}UseCases", base.to_upper_camel_case());
    let doc = format!(
        " `{}` from the read model: a stream it does not hold (never created, not yet projected, or deleted) is NOT_FOUND.",
        ps.name
    );
    quote! {
        #[doc = #doc]
        pub struct #handlers<A> {
            db: Db,
            aggregate: std::marker::PhantomData<fn() -> A>,
        }

        impl<A> #handlers<A> {
            pub fn new(db: Db) -> Self {
                #handlers { db, aggregate: std::marker::PhantomData }
            }
        }

        impl<A: crate::#aggregate_trait> crate::#use_cases for #handlers<A> {
            #(#methods)*
        }
    }
}

/// `--flag`/`ENV` settings, one per upstream deployable the service's deployables call:
/// field `<deployable>_url`, env `<DEPLOYABLE>_URL`, default its local Envoy.
pub(super) fn upstream_fields(system: &System, svc: &Service) -> Vec<TokenStream> {
    let mut upstreams: Vec<&str> = Vec::new();
    for d in system.deployables.iter().filter(|d| d.service == svc.name) {
        for u in &d.upstreams {
            if !upstreams.contains(&u.as_str()) {
                upstreams.push(u);
            }
        }
    }
    upstreams
        .into_iter()
        .map(|u| {
            let field = format_ident!("{}_url", u.replace('-', "_"));
            let env = format!("{}_URL", u.to_shouty_snake_case());
            let port = system
                .deployables
                .iter()
                .find(|d| d.name == u)
                .map_or(0, |d| d.local.envoy);
            let default = format!("http://127.0.0.1:{port}");
            let doc = format!(" The `{u}` deployable (its Envoy).");
            quote! {
                #[doc = #doc]
                #[arg(long, env = #env, default_value = #default)]
                pub #field: String,
            }
        })
        .collect()
}

/// The local port of each role's deployable, as `match` arms on `app::Role`.
pub(super) fn listen_arms(system: &System, svc: &Service) -> Vec<TokenStream> {
    system
        .deployables
        .iter()
        .filter(|d| d.service == svc.name)
        .filter_map(|d| {
            let role = match d.role {
                Role::Command => quote!(app::Role::Command),
                Role::Query => quote!(app::Role::Query),
                Role::EventHandler => quote!(app::Role::EventHandler),
                Role::Bff | Role::Grpc => return None,
            };
            let port = d.local.app;
            Some(quote!(#role => #port,))
        })
        .collect()
}

/// The generated migrations and Mongo layout of the service's event store.
fn event_store_layout(system: &System, svc: &Service) -> Result<(TokenStream, String), EmitError> {
    let store = system
        .event_stores
        .iter()
        .find(|e| e.service == svc.name)
        .ok_or_else(|| {
            EmitError::Other(format!(
                "service `{}`: a CQRS service needs a document event store (`event_store: mongodb`)",
                svc.name
            ))
        })?;
    let db = &store.database;
    let pg = format!("../../sql/{db}");
    let lite = format!("../../sqlite/{db}");
    let json = format!("../../../mongo/{db}.json");
    Ok((
        quote! {
            /// The event store's PostgreSQL migrations (its relational form).
            pub static EVENTS_PG: sqlx::migrate::Migrator = sqlx::migrate!(#pg);
            /// The event store's SQLite migrations.
            pub static EVENTS_SQLITE: sqlx::migrate::Migrator = sqlx::migrate!(#lite);
            pub static EVENTS_MIGRATIONS: sql::Migrations = sql::Migrations { postgres: &EVENTS_PG, sqlite: &EVENTS_SQLITE };
            /// What the generator wrote for the event store, per backend.
            pub const EVENT_STORE: keel::es::store::StoreLayout = keel::es::store::StoreLayout {
                migrations: &EVENTS_MIGRATIONS,
                collections_json: include_str!(#json),
            };
        },
        db.clone(),
    ))
}

/// Per other service subscribed to: its topic and consumer group settings, and the
/// subscriber the command role starts.
fn subscribers(system: &System, svc: &Service) -> (Vec<TokenStream>, Vec<TokenStream>) {
    let mut fields = Vec::new();
    let mut starts = Vec::new();
    let mut others: Vec<&str> = svc
        .subscriptions
        .iter()
        .map(|s| s.service.as_str())
        .collect();
    others.dedup();
    for other in others {
        let Some(o) = system.services.iter().find(|o| o.name == other) else {
            continue;
        };
        let topic = o
            .messaging
            .as_ref()
            .map(|m| m.topic.clone())
            .unwrap_or_default();
        let topic_field = format_ident!("{}_topic", other.to_snake_case());
        let group_field = format_ident!("{}_events_group", other.to_snake_case());
        let topic_env = layout::topic_var(other);
        let group_env = layout::events_group_var(other);
        let group = layout::events_group(&svc.name, other);
        let topic_doc = format!(" The topic of service `{other}`'s events (its subscriptions).");
        fields.push(quote! {
            #[doc = #topic_doc]
            #[arg(long, env = #topic_env, default_value = #topic)]
            pub #topic_field: String,
            #[arg(long, env = #group_env, default_value = #group)]
            pub #group_field: String,
        });
        let wrapper = format_ident!(
            "{}On{}Events",
            svc.name.to_upper_camel_case(),
            other.to_upper_camel_case()
        );
        let what = format!("{other} events subscriber");
        starts.push(quote! {
            let bus = app::bus(&config.bus_url, Some((&config.#topic_field, 1))).await?;
            background.spawn(#what, keel::es::subscriber::run_subscriber(
                executor.clone(),
                crate::#wrapper(subscriptions.clone()),
                bus,
                keel::es::subscriber::SubscriberConfig {
                    topic: config.#topic_field.clone(),
                    group: config.#group_field.clone(),
                    ..Default::default()
                },
                background.stop(),
            ));
        });
    }
    (fields, starts)
}

pub(super) fn proto_service(svc: &Service, kind: OperationKind) -> Option<&ProtoService> {
    svc.proto.services.iter().find(|ps| {
        ps.methods
            .iter()
            .any(|m| svc.operation(&m.method).is_some_and(|o| o.kind == kind))
    })
}

pub(super) fn server_ctor(ps: &ProtoService) -> proc_macro2::Ident {
    format_ident!(
        "{}_server",
        ps.name
            .strip_suffix("Service")
            .unwrap_or(&ps.name)
            .to_snake_case()
    )
}

/// The spec's `exists` checks of a CQRS service: `<Agg>References`, one client per
/// service asked, and its `Checks` (each listed reference of a command must exist,
/// asked with that service's get use case). `None` when no command lists any.
fn references(system: &System, svc: &Service) -> Option<(TokenStream, proc_macro2::Ident)> {
    let checks: Vec<(&Operation, &ExistsCheck)> = svc
        .operations
        .iter()
        .flat_map(|o| o.exists.iter().map(move |c| (o, c)))
        .collect();
    if checks.is_empty() {
        return None;
    }
    let agg = &svc.entity;
    let name = format_ident!("{}References", agg);
    let aggregate_trait = format_ident!("{}Aggregate", agg);
    let decider = format_ident!("{}Decider", agg);
    let command_enum = format_ident!("{}Command", agg);
    let mut fields = Vec::new();
    let mut inits = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    let mut arms = Vec::new();
    for (o, c) in &checks {
        let owner = system.services.iter().find(|s| s.name == c.service)?;
        let get = c.get.as_ref()?;
        let krate = format_ident!(
            "{}",
            super::rust::crate_name(system, owner).replace('-', "_")
        );
        let client_field = super::ident(c.service.to_snake_case());
        if !seen.contains(&c.service.as_str()) {
            seen.push(&c.service);
            let client_mod = format_ident!("{}_client", get.service.to_snake_case());
            let client = format_ident!("{}Client", get.service);
            let deployable = system
                .deployables
                .iter()
                .find(|d| d.service == owner.name)?;
            let url = format_ident!("{}_url", deployable.name.replace('-', "_"));
            let label = &deployable.name;
            fields.push(
                quote!(#client_field: #krate::pb::#client_mod::#client<tonic::transport::Channel>,),
            );
            inits.push(quote! {
                #client_field: #krate::pb::#client_mod::#client::new(
                    keel::upstream::channel(#label, &config.#url, timeouts)?
                ),
            });
        }
        let variant = super::ident(&o.name);
        let field = super::ident(&c.field);
        let method = super::ident(get.method.to_snake_case());
        let request = super::ident(&get.request);
        let kind = names::snake(&c.entity);
        let service_label = format!("{} service", c.service);
        let ask = quote! {
            let request = keel::upstream::request(ctx, #krate::pb::#request { id: id.to_string() });
            keel::upstream::found(self.#client_field.clone().#method(request).await, #service_label, #kind, id)?;
        };
        // An absent optional reference has nothing to check.
        arms.push(if c.optional {
            quote!(if let crate::#command_enum::#variant(c) = command && let Some(id) = c.#field { #ask })
        } else {
            quote!(if let crate::#command_enum::#variant(c) = command { let id = c.#field; #ask })
        });
    }
    let doc = format!(
        " The spec's `exists` checks of `{}`: each listed reference must exist in its service, asked before the append.",
        svc.name
    );
    Some((
        quote! {
            #[doc = #doc]
            #[derive(Clone)]
            pub struct #name {
                #(#fields)*
            }

            impl #name {
                /// Clients on lazy channels (the service starts without its upstreams).
                pub fn new(config: &Config) -> anyhow::Result<#name> {
                    let timeouts = keel::upstream::Timeouts {
                        call: config.runtime.call_timeout(),
                        connect: std::time::Duration::from_secs(1),
                    };
                    Ok(#name { #(#inits)* })
                }
            }

            impl<A: crate::#aggregate_trait> keel::es::command::Checks<crate::#decider<A>> for #name {
                async fn check(&self, ctx: &RequestContext, _state: &A, command: &crate::#command_enum) -> Result<(), ServiceError> {
                    #(#arms)*
                    Ok(())
                }
            }
        },
        name,
    ))
}

/// The process of a CQRS service: `Config` (flags and environment), `run_with` (one role
/// until stopped), `run_task` (rebuild, repair) and `main_with` (the binary).
fn cqrs_process(system: &System, svc: &Service, m: &Model<'_>) -> Result<TokenStream, EmitError> {
    let agg = &svc.entity;
    let name = svc.name.as_str();
    let aggregate_trait = format_ident!("{}Aggregate", agg);
    let decider = format_ident!("{}Decider", agg);
    let event_enum = format_ident!("{}Event", agg);
    let read_model = format_ident!("{}ReadModel", agg);
    let (Some(cmd_ps), Some(query_ps)) = (
        proto_service(svc, OperationKind::Command),
        svc.proto.services.iter().find(|ps| {
            !ps.methods.iter().any(|m| {
                svc.operation(&m.method)
                    .is_some_and(|o| o.kind == OperationKind::Command)
            })
        }),
    ) else {
        return Ok(TokenStream::new());
    };
    let cmd_name = format!("{}.{}", svc.proto.package, cmd_ps.name);
    let query_name = format!("{}.{}", svc.proto.package, query_ps.name);
    let cmd_server = server_ctor(cmd_ps);
    let query_server = server_ctor(query_ps);
    let cmd_handlers = format_ident!(
        "{}Handlers",
        cmd_ps.name.strip_suffix("Service").unwrap_or(&cmd_ps.name)
    );
    let query_handlers = format_ident!(
        "{}Handlers",
        query_ps
            .name
            .strip_suffix("Service")
            .unwrap_or(&query_ps.name)
    );
    let (layout, events_db) = event_store_layout(system, svc)?;
    let upstreams = upstream_fields(system, svc);
    let listen = listen_arms(system, svc);
    let (sub_fields, sub_starts) = subscribers(system, svc);
    let topic = svc
        .messaging
        .as_ref()
        .map(|m| m.topic.clone())
        .unwrap_or_default();
    let topic_field = format_ident!("{}_topic", name.to_snake_case());
    let partitions_field = format_ident!("{}_topic_partitions", name.to_snake_case());
    let topic_env = layout::topic_var(name);
    let partitions_env = format!("{topic_env}_PARTITIONS");
    let group = layout::handler_group(name);
    let (group_env, store_db_env) = (layout::HANDLER_GROUP_VAR, layout::EVENT_STORE_DATABASE_VAR);
    let about = format!(
        "The {name} service (CQRS + event sourcing): the command, query or event-handler role, or a task"
    );
    let group_id = format!("{name}-generated");
    let (sub_param, sub_generic, sub_bound) = if sub_starts.is_empty() {
        (TokenStream::new(), TokenStream::new(), TokenStream::new())
    } else {
        let t = format_ident!("{}Subscriptions", name.to_upper_camel_case());
        (
            quote!(subscriptions: impl FnOnce(&EventStore) -> S,),
            quote!(, S),
            quote!(S: crate::#t + Clone,),
        )
    };
    let make_subs = (!sub_starts.is_empty()).then(|| {
        quote! {
            if config.runtime.subscriber {
                let subscriptions = subscriptions(&store);
                #(#sub_starts)*
            }
        }
    });
    let sub_arg = (!sub_starts.is_empty()).then(|| quote!(subscriptions,));
    let (refs, executor) = match references(system, svc) {
        Some((defs, name)) => (
            defs,
            quote! {
                let checks = (#name::new(&config)?, checks(&config)?);
                let executor = keel::es::command::Executor::<crate::#decider<A>, _>::new(store.clone(), checks);
            },
        ),
        None => (
            TokenStream::new(),
            quote! {
                let executor = keel::es::command::Executor::<crate::#decider<A>, C>::new(store.clone(), checks(&config)?);
            },
        ),
    };
    let _ = m;
    let stopped = format!("{name} service stopped");
    Ok(quote! {
        use std::sync::Arc;
        use keel::es::app::{self, Background};
        use keel::es::store::EventStore;

        #layout
        #refs

        /// The service's settings: flags and environment of the binary, or a launcher's.
        #[derive(clap::Parser, Debug, Clone, PartialEq, Eq)]
        #[command(about = #about)]
        #[group(id = #group_id)]
        pub struct Config {
            #[command(subcommand)]
            pub task: Option<app::Task>,
            /// Which process to run.
            #[arg(long, env = "ROLE", value_enum, default_value_t = app::Role::Command)]
            pub role: app::Role,
            /// gRPC address; defaults to the local port of the role's deployable.
            #[arg(long, env = "LISTEN_ADDR")]
            pub listen: Option<std::net::SocketAddr>,
            /// The event store (command and event-handler roles, tasks): `mongodb://…`,
            /// `postgres://…` or `sqlite://path`.
            #[arg(long, env = "EVENT_STORE_URL", default_value = "mongodb://127.0.0.1:57017/")]
            pub event_store_url: String,
            /// The event store's database on the MongoDB wire (a SQL store's is in its URL).
            #[arg(long, env = #store_db_env, default_value = #events_db)]
            pub event_store_database: String,
            /// The read database (query and event-handler roles, tasks): `postgres://…` or
            /// `sqlite://path`; migrations run at start.
            #[arg(long, env = "DATABASE_URL")]
            pub database_url: Option<String>,
            /// Where events travel: `kafka://h:p`, a bare broker list, or `sqlite://path`
            /// (the embedded log).
            #[arg(long, env = "BUS_URL", default_value = "127.0.0.1:59092")]
            pub bus_url: String,
            /// The topic the relay publishes this service's events to.
            #[arg(long, env = #topic_env, default_value = #topic)]
            pub #topic_field: String,
            /// Partitions of that topic when this process creates it.
            #[arg(long, env = #partitions_env, default_value_t = 3)]
            pub #partitions_field: i32,
            /// Consumer group of the event handler.
            #[arg(long, env = #group_env, default_value = #group)]
            pub consumer_group: String,
            #(#sub_fields)*
            #(#upstreams)*
            #[command(flatten)]
            pub runtime: app::RuntimeArgs,
        }

        impl Config {
            /// `--listen`, else the local port of the role's deployable.
            pub fn listen(&self) -> std::net::SocketAddr {
                self.listen.unwrap_or_else(|| {
                    let port: u16 = match self.role { #(#listen)* };
                    std::net::SocketAddr::from(([127, 0, 0, 1], port))
                })
            }

            pub async fn event_store(&self) -> Result<EventStore, app::AppError> {
                app::event_store(&self.event_store_url, &self.event_store_database, EVENT_STORE, &self.runtime).await
            }

            pub async fn read_db(&self) -> Result<Db, app::AppError> {
                app::database(self.database_url.as_deref(), &READ_MIGRATIONS, &self.runtime).await
            }
        }

        /// Serves `config.role` on `incoming` until `stop` turns true, with its
        /// background tasks (command: the relay and the subscriptions; event handler:
        /// the projection from the bus or the store), then waits a bounded time for
        /// them. `checks` builds the checks run before an append from the settings.
        /// No tracing set-up and no signal handling: the caller owns both.
        pub async fn run_with<A, C #sub_generic>(
            config: Config,
            incoming: tonic::transport::server::TcpIncoming,
            stop: tokio::sync::watch::Receiver<bool>,
            checks: impl FnOnce(&Config) -> anyhow::Result<C>,
            #sub_param
        ) -> anyhow::Result<()>
        where
            A: crate::#aggregate_trait,
            C: keel::es::command::Checks<crate::#decider<A>> + Clone,
            #sub_bound
        {
            let mut background = Background::new(&config.runtime, &stop);
            let served = async {
                match config.role {
                    app::Role::Command => {
                        let store = config.event_store().await?;
                        #executor
                        if config.runtime.relay {
                            let bus = app::bus(&config.bus_url, Some((&config.#topic_field, config.#partitions_field))).await?;
                            background.relay::<crate::#event_enum>(store.clone(), &bus, config.runtime.relay_config(&config.#topic_field))?;
                        }
                        #make_subs
                        let router = app::router(&[#cmd_name], &[crate::FILE_DESCRIPTOR_SET]).await?
                            .add_service(crate::#cmd_server(Arc::new(crate::#cmd_handlers { executor })));
                        tracing::info!(listen = %config.listen(), role = ?config.role, "serving");
                        app::serve(router, incoming, &stop).await?;
                    }
                    app::Role::Query => {
                        let db = config.read_db().await?;
                        let router = app::read_model_router(&[#query_name], &[crate::FILE_DESCRIPTOR_SET], #name, &db, &config.runtime, &mut background).await?
                            .add_service(crate::#query_server(Arc::new(#query_handlers::<A>::new(db.clone()))));
                        tracing::info!(listen = %config.listen(), role = ?config.role, "serving");
                        let served = app::serve(router, incoming, &stop).await;
                        db.close().await;
                        served?;
                    }
                    app::Role::EventHandler => {
                        let db = config.read_db().await?;
                        let store = config.event_store().await?;
                        let bus = match config.runtime.events_from {
                            app::EventsFrom::Bus => {
                                let bus = app::bus(&config.bus_url, Some((&config.#topic_field, config.#partitions_field))).await?;
                                Some((bus, config.runtime.handler_config(&config.#topic_field, &config.consumer_group)))
                            }
                            app::EventsFrom::Store => None,
                        };
                        let router = app::read_model_router(&[], &[], #name, &db, &config.runtime, &mut background).await?;
                        background.event_handler::<#read_model<A>>(&config.runtime, store, db, bus);
                        tracing::info!(listen = %config.listen(), role = ?config.role, "serving health");
                        app::serve(router, incoming, &stop).await?;
                    }
                }
                anyhow::Ok(())
            }
            .await;
            background.finish(served.is_err()).await;
            served?;
            tracing::info!(role = ?config.role, #stopped);
            Ok(())
        }

        /// Runs `task` (rebuild or repair the read model) and prints what it did.
        pub async fn run_task<A: crate::#aggregate_trait>(config: &Config, task: &app::Task) -> anyhow::Result<()> {
            let store = config.event_store().await?;
            let db = config.read_db().await?;
            let done = app::run_task::<#read_model<A>>(task, &store, &db).await;
            db.close().await;
            Ok(done?)
        }

        /// The binary: logs, settings from flags and environment, then a task, or the
        /// role until SIGINT/SIGTERM.
        pub async fn main_with<A, C #sub_generic>(
            checks: impl FnOnce(&Config) -> anyhow::Result<C>,
            #sub_param
        ) -> anyhow::Result<()>
        where
            A: crate::#aggregate_trait,
            C: keel::es::command::Checks<crate::#decider<A>> + Clone,
            #sub_bound
        {
            keel::server::init_tracing();
            let config = <Config as clap::Parser>::parse();
            if let Some(task) = &config.task {
                return run_task::<A>(&config, task).await;
            }
            let incoming = keel::server::bind(config.listen())?;
            run_with::<A, C #sub_generic>(config, incoming, keel::server::stop_on_signal(), checks, #sub_arg).await
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cqs_services_command_lock_and_relay_lease_differ_whatever_its_name() {
        for service in [
            "user",
            "members",
            "subscriptions",
            "a_very_long_service_name",
        ] {
            let lock = key_of(&format!("{service}/commands"));
            let lease = key_of(&format!("{service}/relay"));
            assert_ne!(lock, lease, "{service}");
        }
    }

    #[test]
    fn the_cart_lock_key_is_the_one_it_always_had() {
        assert_eq!(super::lock_key("cart"), 0x6361_7274_7072_6f6a);
        assert_eq!(super::lock_key("ab"), i64::from_be_bytes(*b"abproj__"));
    }
}
