//! `src/runtime.rs` of an event-sourced service's crate (feature `runtime`): what runs
//! it on `shop_kit::es`. For a CQRS service: the read model's row mapping
//! (`shop_kit::crud::Record`/`Child` of the entity and what it owns, in the read
//! database), its `shop_kit::es::view::StateView` (table names, lock, migrations, the
//! aggregate's `view()` as the one mapping from state to rows) and the query use cases
//! answered from it.

use heck::{ToSnakeCase, ToUpperCamelCase};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::EmitError;
use super::crud::{self, Model};
use crate::ir::*;
use crate::names;

/// Whether the service's crate has a `runtime` module.
pub fn has_module(svc: &Service) -> bool {
    svc.pattern == Pattern::CqrsEs
}

pub fn module(system: &System, svc: &Service) -> Result<TokenStream, EmitError> {
    let m = Model::new(system, svc, DatabaseKind::ReadModel)?;
    let records = crud::records(&m);
    let attach = crud::attach_owned(&m);
    let view = state_view(svc, &m);
    let queries = query_handlers(svc);
    let doc = format!(
        " The `{}` service on the event-sourcing runtime: its read model and queries.",
        svc.name
    );
    let child_import = (!m.owned.is_empty()).then(|| {
        quote!(
            use shop_kit::crud::Child;
        )
    });
    Ok(quote! {
        #![doc = #doc]
        #child_import
        use shop_kit::crud::{self, Record};
        use shop_kit::es::view::{self, Rows, StateView};
        use shop_kit::sql::{self, Arg, Db, Row};
        use shop_kit::{RequestContext, ServiceError};

        use crate::pb;

        #records
        #attach
        #view
        #queries
    })
}

/// The advisory-lock key of a read model: `<service>proj` as 8 bytes.
fn lock_key(service: &str) -> i64 {
    let mut bytes = [b'_'; 8];
    for (b, c) in bytes.iter_mut().zip(format!("{service}proj").bytes()) {
        *b = c;
    }
    i64::from_be_bytes(bytes)
}

fn state_view(svc: &Service, m: &Model<'_>) -> TokenStream {
    let agg = &svc.entity;
    let snake = names::snake(agg);
    let read_model = format_ident!("{}ReadModel", agg);
    let aggregate_trait = format_ident!("{}Aggregate", agg);
    let decider = format_ident!("{}Decider", agg);
    let ty = format_ident!("{}", m.entity.name);
    let (_, attach, _) = crud::support_names(m);
    let states = format!("{snake}_states");
    let deletions = format!("{snake}_deletions");
    let mut tables: Vec<String> = m.owned.iter().map(|(_, _, t)| t.name.clone()).collect();
    tables.extend([m.table.name.clone(), deletions.clone(), states.clone()]);
    let lock = lock_key(&svc.name);
    let owned = m.owned.iter().map(|(r, _, _)| {
        let field = format_ident!("{}", r.name);
        if r.cardinality.is_many() {
            quote!(rows.children(id, &view.#field)?;)
        } else {
            quote!(rows.children(id, view.#field.as_slice())?;)
        }
    });
    let db = &m.database.name;
    let pg = format!("../../sql/{db}");
    let lite = format!("../../sqlite/{db}");
    let doc = format!(
        " The read model of `{}`: tables from the spec, rows from [`crate::{aggregate_trait}::view`].",
        svc.name
    );
    quote! {
        /// The read database's PostgreSQL migrations.
        pub static READ_PG: sqlx::migrate::Migrator = sqlx::migrate!(#pg);
        /// The read database's SQLite migrations.
        pub static READ_SQLITE: sqlx::migrate::Migrator = sqlx::migrate!(#lite);
        /// Both; the read database URL's dialect picks one.
        pub static READ_MIGRATIONS: sql::Migrations = sql::Migrations { postgres: &READ_PG, sqlite: &READ_SQLITE };

        #[doc = #doc]
        pub struct #read_model<A>(std::marker::PhantomData<fn() -> A>);

        impl<A: crate::#aggregate_trait> StateView for #read_model<A> {
            type Decider = crate::#decider<A>;
            type View = pb::#ty;
            const STATES: &'static str = #states;
            const DELETIONS: &'static str = #deletions;
            const TABLES: &'static [&'static str] = &[#(#tables),*];
            const LOCK: i64 = #lock;
            fn migrations() -> &'static sql::Migrations {
                &READ_MIGRATIONS
            }
            fn view(state: &A, id: uuid::Uuid) -> Option<pb::#ty> {
                state.view(id)
            }
            #[allow(unused_variables)]
            fn owned_rows(view: &pb::#ty, id: uuid::Uuid, rows: &mut Rows) -> Result<(), ServiceError> {
                #(#owned)*
                Ok(())
            }
            async fn attach(db: &Db, views: &mut [pb::#ty]) -> Result<(), ServiceError> {
                #attach(db, views).await
            }
        }
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
    let id_ident = format_ident!("{}", id_field);
    let out_ident = format_ident!("{}", agg.to_snake_case());
    let read_model = format_ident!("{}ReadModel", agg);
    let aggregate_trait = format_ident!("{}Aggregate", agg);
    let kind = names::snake(agg);
    let methods = ps.methods.iter().map(|m| {
        let method = format_ident!("{}", m.method.to_snake_case());
        let req = format_ident!("{}", m.request);
        let resp = format_ident!("{}", m.response);
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_cart_lock_key_is_the_one_it_always_had() {
        assert_eq!(super::lock_key("cart"), 0x6361_7274_7072_6f6a);
        assert_eq!(super::lock_key("ab"), i64::from_be_bytes(*b"abproj__"));
    }
}
