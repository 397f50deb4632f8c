//! `src/runtime.rs` of a CQS + event sourcing service (feature `runtime`): the state
//! rows' mapping (`Record` of the entity in the service's database, `ViewMapping` and
//! `CqsModel` over the aggregate), the use cases on `keel::es::cqs::Store`, and the
//! process (`Config`, `run_with`, `run`, `main`): the server and the outbox relay.

use heck::{ToSnakeCase, ToUpperCamelCase};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::EmitError;
use super::crud::{self, Model};
use super::es_runtime::{key_of, migrations, server_ctor, upstream_fields, view_mapping};
use crate::ir::*;
use crate::names;

pub fn module(system: &System, svc: &Service) -> Result<TokenStream, EmitError> {
    let m = Model::new(system, svc, DatabaseKind::EventsAndState)?;
    let records = crud::records(&m);
    let attach = crud::attach_owned(&m);
    let state = format_ident!("{}State", svc.entity);
    let mapping = view_mapping(svc, &m, &state, &format_ident!("DB_MIGRATIONS"));
    let migrations = migrations(&m.database.name, "DB", "The database's");
    let aggregate_trait = format_ident!("{}Aggregate", svc.entity);
    let lock = key_of(&format!("{}/commands", svc.name));
    let lease = key_of(&format!("{}/relay", svc.name));
    let Some(handlers) = use_cases(svc, &state) else {
        return Err(EmitError::Other(format!(
            "service `{}` (cqs-es): every query must take only the stream id and answer the aggregate",
            svc.name
        )));
    };
    let process = process(system, svc, &m);
    let doc = format!(
        " The `{}` service on the event-sourcing runtime: state rows, use cases, process.",
        svc.name
    );
    let state_doc = format!(
        " The state rows of `{}`: the `{}` table from the spec, rows from [`crate::{aggregate_trait}::view`].",
        svc.name, m.table.name
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
        use keel::sql::{self, Arg, Db, Row};
        use keel::{RequestContext, ServiceError};

        use crate::pb;

        #records
        #attach
        #migrations

        /// The lease key of the outbox relay in the service's database.
        pub const RELAY_LEASE_LOCK: i64 = #lease;

        #[doc = #state_doc]
        pub struct #state<A>(std::marker::PhantomData<fn() -> A>);

        #mapping

        impl<A: crate::#aggregate_trait> keel::es::cqs::CqsModel for #state<A> {
            const LOCK: i64 = #lock;
        }

        #handlers
        #process
    })
}

/// The use cases of the service's one proto service on the store: commands executed,
/// queries by stream id answered from the state rows. `None` when a query has another
/// shape.
fn use_cases(svc: &Service, state: &proc_macro2::Ident) -> Option<TokenStream> {
    let ps = svc.proto.services.first()?;
    let agg = svc.entity.as_str();
    let id_field = format!("{}_id", agg.to_snake_case());
    let id_ident = super::ident(&id_field);
    let out_ident = super::ident(agg.to_snake_case());
    let command_enum = format_ident!("{}Command", agg);
    let kind = names::snake(agg);
    let mut methods = Vec::new();
    for m in &ps.methods {
        let o = svc.operation(&m.method)?;
        let method = super::ident(m.method.to_snake_case());
        let req = super::ident(&m.request);
        let resp = super::ident(&m.response);
        let body = match o.kind {
            OperationKind::Command => super::rust::command_use_case(
                o,
                &quote!(crate::),
                &command_enum,
                &quote!(self.store),
                &id_ident,
                &resp,
            ),
            OperationKind::Query
                if o.input.len() == 1
                    && o.input[0].name == id_field
                    && o.output.as_deref().is_none_or(|out| out == agg) =>
            {
                quote! {
                    let _ = ctx;
                    let id = uuid::Uuid::parse_str(&request.#id_ident)
                        .map_err(|_| ServiceError::invalid(#id_field, "must be a UUID"))?;
                    let (found, version) = self.store.view(id).await?
                        .ok_or_else(|| ServiceError::not_found(#kind, id))?;
                    Ok(pb::#resp { #out_ident: Some(found), version })
                }
            }
            _ => return None,
        };
        methods.push(quote! {
            async fn #method(&self, ctx: RequestContext, request: pb::#req) -> Result<pb::#resp, ServiceError> {
                #body
            }
        });
    }
    let base = ps.name.strip_suffix("Service").unwrap_or(&ps.name);
    let handlers = format_ident!("{}Handlers", base);
    let use_cases = format_ident!("{}UseCases", base.to_upper_camel_case());
    let aggregate_trait = format_ident!("{}Aggregate", agg);
    let doc = format!(" `{}` on the CQS store: every use case generated.", ps.name);
    Some(quote! {
        #[doc = #doc]
        pub struct #handlers<A> {
            pub store: keel::es::cqs::Store<#state<A>>,
        }

        impl<A> Clone for #handlers<A> {
            fn clone(&self) -> Self {
                #handlers { store: self.store.clone() }
            }
        }

        impl<A: crate::#aggregate_trait> crate::#use_cases for #handlers<A> {
            #(#methods)*
        }
    })
}

/// `Config`, `run_with` (serve and/or relay until stopped) and `main_with`.
/// The identity service's settings and its `keel.auth.v1.Auth` server.
fn auth_parts(system: &System, svc: &Service) -> (TokenStream, TokenStream) {
    let Some(auth) = system.auth.as_ref().filter(|a| a.service == svc.name) else {
        return (TokenStream::new(), TokenStream::new());
    };
    let access = i64::from(auth.access_ttl_secs);
    let refresh = i64::from(auth.refresh_ttl_secs);
    let issuer = &system.name;
    let fields = quote! {
        /// Seconds an access token is valid for.
        #[arg(long, env = "AUTH_ACCESS_TTL_SECS", default_value_t = #access)]
        pub auth_access_ttl_secs: i64,
        /// Seconds a session (its refresh token) lasts without a login.
        #[arg(long, env = "AUTH_REFRESH_TTL_SECS", default_value_t = #refresh)]
        pub auth_refresh_ttl_secs: i64,
        /// Emails (comma-separated) that get the back-office role when they register,
        /// or at start if they have: how the first back-office user comes to be.
        #[arg(long, env = "AUTH_BACK_OFFICE_EMAILS", default_value = "")]
        pub auth_back_office_emails: String,
    };
    let server = quote! {
        let auth = keel::auth::AuthService::start(db.clone(), keel::auth::Settings::new(
            #issuer,
            config.auth_access_ttl_secs,
            config.auth_refresh_ttl_secs,
            &config.auth_back_office_emails,
        )).await?;
        let router = router.add_service(auth.server());
    };
    (fields, server)
}

fn process(system: &System, svc: &Service, m: &Model<'_>) -> TokenStream {
    let name = svc.name.as_str();
    let agg = &svc.entity;
    let aggregate_trait = format_ident!("{}Aggregate", agg);
    let state = format_ident!("{}State", agg);
    let Some(ps) = svc.proto.services.first() else {
        return TokenStream::new();
    };
    let service_name = format!("{}.{}", svc.proto.package, ps.name);
    let server = server_ctor(ps);
    let handlers = format_ident!(
        "{}Handlers",
        ps.name.strip_suffix("Service").unwrap_or(&ps.name)
    );
    let port = system
        .deployables
        .iter()
        .find(|d| d.service == svc.name)
        .map_or(50051, |d| d.local.app);
    let listen = format!("127.0.0.1:{port}");
    let topic = svc
        .messaging
        .as_ref()
        .map(|t| t.topic.clone())
        .unwrap_or_default();
    let topic_field = format_ident!("{}_topic", name.to_snake_case());
    let partitions_field = format_ident!("{}_topic_partitions", name.to_snake_case());
    let topic_env = crate::layout::topic_var(name);
    let partitions_env = format!("{topic_env}_PARTITIONS");
    let upstreams = upstream_fields(system, svc);
    let about =
        format!("The {name} service (CQS + event sourcing): the gRPC server and its outbox relay");
    let group_id = format!("{name}-generated");
    let db_doc = format!(
        " The service's database: `postgres://…` or `sqlite://path`; the migrations of `{}` run at start.",
        m.database.name
    );
    let stopped = format!("{name} service stopped");
    let (auth_fields, auth_server) = auth_parts(system, svc);
    quote! {
        /// The service's settings: flags and environment of the binary, or a launcher's.
        #[derive(clap::Parser, Debug, Clone, PartialEq, Eq)]
        #[command(about = #about)]
        #[group(id = #group_id)]
        pub struct Config {
            /// What to run.
            #[arg(value_enum, default_value_t = keel::es::app::Mode::Serve)]
            pub mode: keel::es::app::Mode,
            /// Address to serve gRPC on (the binary binds it; `run_with` takes the bound socket).
            #[arg(long, env = "LISTEN_ADDR", default_value = #listen)]
            pub listen: std::net::SocketAddr,
            #[doc = #db_doc]
            #[arg(long, env = "DATABASE_URL")]
            pub database_url: String,
            /// Where the relay publishes: `kafka://h:p`, a bare broker list, or
            /// `sqlite://path` (the embedded log).
            #[arg(long, env = "BUS_URL", default_value = "127.0.0.1:59092")]
            pub bus_url: String,
            /// The topic the relay publishes this service's events to.
            #[arg(long, env = #topic_env, default_value = #topic)]
            pub #topic_field: String,
            /// Partitions of that topic when the relay creates it.
            #[arg(long, env = #partitions_env, default_value_t = 3)]
            pub #partitions_field: i32,
            #(#upstreams)*
            #auth_fields
            #[command(flatten)]
            pub runtime: keel::es::app::RuntimeArgs,
        }

        /// Connects to the database (migrating it), then serves gRPC on `incoming` (unless
        /// `config.mode` is `relay`) and runs the outbox relay (unless `RELAY=false` in
        /// `serve` mode) until `stop` turns true. No tracing set-up and no signal
        /// handling: the caller owns both.
        pub async fn run_with<A: crate::#aggregate_trait>(
            config: Config,
            incoming: Option<tonic::transport::server::TcpIncoming>,
            stop: tokio::sync::watch::Receiver<bool>,
        ) -> anyhow::Result<()> {
            use keel::es::app::{self, Mode};
            let db = app::database(Some(&config.database_url), &DB_MIGRATIONS, &config.runtime).await?;
            let mut background = app::Background::new(&config.runtime, &stop);
            let served = async {
                let serving = incoming.filter(|_| config.mode == Mode::Serve);
                if config.runtime.relay || serving.is_none() {
                    let bus = app::bus(&config.bus_url, None).await?;
                    let relay = config.runtime.outbox_config(&config.#topic_field, RELAY_LEASE_LOCK, config.#partitions_field);
                    background.outbox_relay(db.clone(), &bus, relay)?;
                }
                match serving {
                    Some(incoming) => {
                        let store = keel::es::cqs::Store::<#state<A>>::new(db.clone(), config.#topic_field.clone());
                        let router = app::router(&[#service_name], &[crate::FILE_DESCRIPTOR_SET]).await?
                            .add_service(crate::#server(std::sync::Arc::new(#handlers { store })));
                        #auth_server
                        tracing::info!(listen = %config.listen, dialect = ?db.dialect(), "serving");
                        app::serve(router, incoming, &stop).await?;
                    }
                    None => {
                        let mut stop = stop.clone();
                        keel::server::stopped(&mut stop).await;
                    }
                }
                anyhow::Ok(())
            }
            .await;
            background.finish(served.is_err()).await;
            db.close().await;
            served?;
            tracing::info!(#stopped);
            Ok(())
        }

        /// The binary: logs, settings from flags and environment, then the server and
        /// relay until SIGINT/SIGTERM.
        pub async fn main_with<A: crate::#aggregate_trait>() -> anyhow::Result<()> {
            keel::server::init_tracing();
            let config = <Config as clap::Parser>::parse();
            let incoming = match config.mode {
                keel::es::app::Mode::Serve => Some(keel::server::bind(config.listen)?),
                keel::es::app::Mode::Relay => None,
            };
            run_with::<A>(config, incoming, keel::server::stop_on_signal()).await
        }
    }
}
