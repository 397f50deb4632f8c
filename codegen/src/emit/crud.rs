//! A `crud` service, generated whole: the row mapping of its entity and of what the
//! entity owns (`keel::crud::Record`), the use cases over `keel::crud`, the
//! service's settings and `run()`, and, when the spec asks for no hand-written rule, its
//! binary.
//!
//! Hand-written code is needed only where the spec says so, and then it is a method of
//! the generated `<Service>Hooks` trait: a `kind: custom` use case, or a readonly field
//! that is neither the id, a timestamp nor defaulted (its value is a business rule, so
//! `fill_<entity>` computes it on create and update).

use heck::{ToShoutySnakeCase, ToSnakeCase, ToUpperCamelCase};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::EmitError;
use crate::ir::*;
use crate::layout::is_computed;
use crate::names;

/// The entity and the owned entities a crud service stores, with their tables.
pub(super) struct Model<'a> {
    system: &'a System,
    svc: &'a Service,
    pub(super) entity: &'a Entity,
    pub(super) table: &'a Table,
    /// Owned children: relation, entity, table.
    pub(super) owned: Vec<(&'a Relation, &'a Entity, &'a Table)>,
    pub(super) database: &'a Database,
}

impl<'a> Model<'a> {
    /// The entity of `svc` in its database of `kind` (a crud service's tables, or a
    /// CQRS service's read model).
    pub(super) fn new(
        system: &'a System,
        svc: &'a Service,
        kind: DatabaseKind,
    ) -> Result<Model<'a>, EmitError> {
        let other = |m: String| EmitError::Other(format!("service `{}`: {m}", svc.name));
        let root = entity(system, &svc.entity).ok_or_else(|| other("no entity".into()))?;
        let database = system
            .databases
            .iter()
            .find(|d| d.service == svc.name && d.kind == kind)
            .ok_or_else(|| other("no database".into()))?;
        let table_of = |e: &Entity| {
            let name = names::plural(&names::snake(&e.name));
            database
                .tables
                .iter()
                .find(|t| t.name == name)
                .ok_or_else(|| other(format!("no table `{name}`")))
        };
        let mut owned = Vec::new();
        for r in root.relations.iter().filter(|r| r.owned) {
            let child = entity(system, &r.target).ok_or_else(|| other(r.target.clone()))?;
            if child.relations.iter().any(|r| r.owned) {
                return Err(other(format!(
                    "`{}` owns entities itself; a crud service stores one level of owned entities",
                    child.name
                )));
            }
            owned.push((r, child, table_of(child)?));
        }
        Ok(Model {
            system,
            svc,
            entity: root,
            table: table_of(root)?,
            owned,
            database,
        })
    }

    fn hooks_trait(&self) -> proc_macro2::Ident {
        format_ident!("{}Hooks", self.svc.name.to_upper_camel_case())
    }

    fn crud_struct(&self) -> proc_macro2::Ident {
        format_ident!("{}Crud", self.svc.name.to_upper_camel_case())
    }
}

fn entity<'a>(system: &'a System, name: &str) -> Option<&'a Entity> {
    system.entities.iter().find(|e| e.name == name)
}

/// Whether the service needs hand-written code: a custom use case or a computed field.
pub fn needs_hooks(system: &System, svc: &Service) -> bool {
    svc.pattern == Pattern::Crud && crate::layout::needs_rules(svc, &system.entities)
}

/// `src/crud.rs` of the service's crate.
pub fn module(system: &System, svc: &Service) -> Result<TokenStream, EmitError> {
    let m = Model::new(system, svc, DatabaseKind::Crud)?;
    let records = records(&m);
    let hooks = hooks_trait(&m);
    let service = service(&m)?;
    let app = app(&m);
    let child_import = (!m.owned.is_empty()).then(|| {
        quote!(
            use keel::crud::Child;
        )
    });
    let doc = format!(
        " The `{}` service over `keel::crud`: storage, use cases, settings, `run`.",
        svc.name
    );
    Ok(quote! {
        #![doc = #doc]
        use std::future::Future;
        use std::sync::Arc;

        #child_import
        use keel::crud::{self, Record};
        use keel::sql::{self, Arg, Db, Row};
        use keel::{RequestContext, ServiceError};

        use crate::pb;

        #records
        #hooks
        #service
        #app
    })
}

// ------------------------------------------------------------------ records

pub(super) fn records(m: &Model<'_>) -> TokenStream {
    let mut out = record(m.entity, m.table, None);
    for (relation, child, table) in &m.owned {
        out.extend(record(child, table, Some((m.entity, relation))));
    }
    out
}

/// An owned relation's order: its `order_by`, then the rest of the key, so that it is total.
fn child_order(relation: &Relation, t: &Table, parent: &str) -> Vec<IndexColumn> {
    let mut order = relation.order_by.clone();
    for k in t.primary_key.iter().filter(|k| *k != parent) {
        if !order.iter().any(|c| &c.field == k) {
            order.push(IndexColumn {
                field: k.clone(),
                descending: false,
            });
        }
    }
    order
}

fn sorts(order: &[IndexColumn]) -> Vec<TokenStream> {
    order
        .iter()
        .map(|c| {
            let column = &c.field;
            let descending = c.descending;
            quote!(crud::Sort { column: #column, descending: #descending })
        })
        .collect()
}

fn record(e: &Entity, t: &Table, owner: Option<(&Entity, &Relation)>) -> TokenStream {
    let ty = super::ident(&e.name);
    let table = &t.name;
    let columns: Vec<&str> = e.fields.iter().map(|f| f.name.as_str()).collect();
    let reads = e.fields.iter().map(|f| {
        let name = super::ident(&f.name);
        let read = read_column(f);
        quote!(#name: #read)
    });
    let owned = e.relations.iter().filter(|r| r.owned).map(|r| {
        let name = super::ident(&r.name);
        quote!(#name: Default::default())
    });
    let args = e.fields.iter().map(|f| arg_of(f, &quote!(self)));
    let unique = t.unique.iter().map(|cols| {
        let name = format!("{}_{}_key", t.name, cols.join("_"));
        quote!(crud::Unique { name: #name, columns: &[#(#cols),*] })
    });
    let child = owner.map(|(o, relation)| {
        let parent = format!("{}_id", names::snake(&o.name));
        let order = sorts(&child_order(relation, t, &parent));
        quote! {
            impl Child for pb::#ty {
                const PARENT: &'static str = #parent;
                const ORDER: &'static [crud::Sort] = &[#(#order),*];
            }
        }
    });
    quote! {
        impl Record for pb::#ty {
            const TABLE: &'static str = #table;
            const COLUMNS: &'static [&'static str] = &[#(#columns),*];
            const UNIQUE: &'static [crud::Unique] = &[#(#unique),*];
            fn from_row(row: &Row) -> Result<Self, sql::Error> {
                Ok(pb::#ty { #(#reads,)* #(#owned,)* })
            }
            fn to_args(&self) -> Result<Vec<Arg>, ServiceError> {
                Ok(vec![#(#args),*])
            }
        }
        #child
    }
}

fn read_column(f: &Field) -> TokenStream {
    let c = &f.name;
    match (&f.ty, f.optional) {
        (FieldType::Uuid | FieldType::Ref(_), false) => quote!(row.uuid(#c)?.to_string()),
        (FieldType::Uuid | FieldType::Ref(_), true) => {
            quote!(row.opt_uuid(#c)?.map(|u| u.to_string()))
        }
        (FieldType::String | FieldType::Text | FieldType::Email, false) => quote!(row.text(#c)?),
        (FieldType::String | FieldType::Text | FieldType::Email, true) => {
            quote!(row.opt_text(#c)?)
        }
        (FieldType::Int, false) => quote!(row.i32(#c)?),
        (FieldType::Int, true) => quote!(row.opt_i32(#c)?),
        (FieldType::Money, false) => quote!(row.i64(#c)?),
        (FieldType::Money, true) => quote!(row.opt_i64(#c)?),
        (FieldType::Bool, false) => quote!(row.bool(#c)?),
        (FieldType::Bool, true) => quote!(row.opt_bool(#c)?),
        (FieldType::Timestamp, false) => quote!(crud::timestamp(&row.time(#c)?)),
        (FieldType::Timestamp, true) => {
            quote!(row.opt_time(#c)?.as_ref().map(keel::utc_to_timestamp))
        }
    }
}

/// The SQL argument of field `f` of the message `src`.
fn arg_of(f: &Field, src: &TokenStream) -> TokenStream {
    let name = super::ident(&f.name);
    let label = &f.name;
    match (&f.ty, f.optional) {
        (FieldType::Uuid | FieldType::Ref(_), false) => {
            quote!(Arg::from(crud::uuid(#label, &#src.#name)?))
        }
        (FieldType::Uuid | FieldType::Ref(_), true) => {
            quote!(Arg::from(crud::opt_uuid(#label, &#src.#name)?))
        }
        (FieldType::Timestamp, false) => {
            quote!(Arg::from(crud::required_time(#label, &#src.#name)?))
        }
        (FieldType::Timestamp, true) => quote!(Arg::from(crud::time(#label, &#src.#name)?)),
        (FieldType::String | FieldType::Text | FieldType::Email, _) => {
            quote!(Arg::from(&#src.#name))
        }
        _ => quote!(Arg::from(#src.#name)),
    }
}

// ------------------------------------------------------------------ hooks

fn hooks_trait(m: &Model<'_>) -> TokenStream {
    let name = m.hooks_trait();
    let mut methods = Vec::new();
    for o in m
        .svc
        .operations
        .iter()
        .filter(|o| o.kind == OperationKind::Custom)
    {
        let method = super::ident(o.name.to_snake_case());
        let req = super::ident(&o.rpc.request);
        let resp = super::ident(&o.rpc.response);
        let doc = format!(
            " `{}` (kind: custom): {} The request is already validated against the spec.",
            o.name,
            o.doc.as_deref().unwrap_or("")
        );
        methods.push(quote! {
            #[doc = #doc]
            fn #method(&self, db: &Db, ctx: RequestContext, request: pb::#req)
                -> impl Future<Output = Result<pb::#resp, ServiceError>> + Send;
        });
    }
    let computed: Vec<&str> = m
        .entity
        .fields
        .iter()
        .filter(|f| is_computed(f))
        .map(|f| f.name.as_str())
        .collect();
    if !computed.is_empty() {
        let method = format_ident!("fill_{}", names::snake(&m.entity.name));
        let ty = super::ident(&m.entity.name);
        let doc = format!(
            " Sets the computed fields of a {} ({}) before it is stored: on create (`created` true, the id and timestamps set) and on update (the stored {} with the request's changes).",
            m.entity.name,
            computed.join(", "),
            m.entity.name
        );
        methods.push(quote! {
            #[doc = #doc]
            fn #method(&self, ctx: &RequestContext, record: &mut pb::#ty, created: bool) -> Result<(), ServiceError>;
        });
    }
    let doc = format!(
        " The rules of the `{}` service the spec cannot state: one method per `kind: custom` use case, and the computed fields of `{}`. A use case or computed field added to the spec is a missing method here.",
        m.svc.name, m.entity.name
    );
    let unit = methods.is_empty().then(|| {
        quote! {
            /// The spec states every rule of this service: nothing to write by hand.
            impl #name for () {}
        }
    });
    quote! {
        #[doc = #doc]
        pub trait #name: Send + Sync + 'static {
            #(#methods)*
            /// A task that runs beside the service until `stop` turns true (none by default).
            fn background(self: Arc<Self>, db: Db, stop: tokio::sync::watch::Receiver<bool>)
                -> impl Future<Output = ()> + Send {
                let _ = (db, stop);
                async {}
            }
        }
        #unit
    }
}

// ------------------------------------------------------------------ use cases

fn service(m: &Model<'_>) -> Result<TokenStream, EmitError> {
    let hooks = m.hooks_trait();
    let name = m.crud_struct();
    let trait_name = format_ident!(
        "{}UseCases",
        m.svc.proto.services[0]
            .name
            .strip_suffix("Service")
            .unwrap_or(&m.svc.proto.services[0].name)
    );
    let mut methods = Vec::new();
    for o in &m.svc.operations {
        methods.push(operation(m, o)?);
    }
    let support = support(m);
    // With no rule to write, the use cases never call a hook.
    let unused = (!needs_hooks(m.system, m.svc)).then(|| quote!(#[allow(dead_code)]));
    let doc = format!(
        " The `{}` use cases on its database; `{}` holds the hand-written rules.",
        m.svc.name, hooks
    );
    Ok(quote! {
        #[doc = #doc]
        pub struct #name<H> {
            db: Db,
            #unused
            hooks: Arc<H>,
        }

        impl<H: #hooks> #name<H> {
            pub fn new(db: Db, hooks: Arc<H>) -> Self {
                #name { db, hooks }
            }
            pub fn db(&self) -> &Db {
                &self.db
            }
        }

        #support

        impl<H: #hooks> crate::#trait_name for #name<H> {
            #(#methods)*
        }
    })
}

/// `load_<entity>` (one by id, with what it owns), `attach_<entity>` (the owned rows of
/// a page) and `store_<entity>_owned` (replace the owned rows of one): public, so that
/// hand-written rules read and write the same way.
fn support(m: &Model<'_>) -> TokenStream {
    let ty = super::ident(&m.entity.name);
    let snake = names::snake(&m.entity.name);
    let (load, attach, store) = support_names(m);
    let attach_fn = attach_owned(m);
    let store_each = m.owned.iter().map(|(r, child, _)| {
        let field = super::ident(&r.name);
        let cty = super::ident(&child.name);
        let rows = if r.cardinality.is_many() {
            quote!(&record.#field)
        } else {
            quote!(record.#field.as_slice())
        };
        quote! {
            crud::delete_children::<pb::#cty>(tx, id).await?;
            crud::insert_children(tx, id, #rows).await?;
        }
    });
    let load_doc = format!(" The {snake} `id` with what it owns, if it exists.");
    let store_doc =
        format!(" Replaces what the stored {snake} `id` owns with what `record` lists.");
    quote! {
        #[doc = #load_doc]
        pub async fn #load(db: &Db, id: uuid::Uuid) -> Result<Option<pb::#ty>, ServiceError> {
            let Some(found) = crud::get::<pb::#ty>(db, id).await? else {
                return Ok(None);
            };
            let mut items = vec![found];
            #attach(db, &mut items).await?;
            Ok(items.pop())
        }

        #attach_fn

        #[doc = #store_doc]
        #[allow(unused_variables)]
        pub async fn #store(tx: &mut sql::Tx, id: uuid::Uuid, record: &pb::#ty) -> Result<(), ServiceError> {
            #(#store_each)*
            Ok(())
        }
    }
}

/// `attach_<entity>`: fills in what each record of a page owns, one query per owned
/// relation.
pub(super) fn attach_owned(m: &Model<'_>) -> TokenStream {
    let ty = super::ident(&m.entity.name);
    let snake = names::snake(&m.entity.name);
    let (_, attach, _) = support_names(m);
    let attach_each = m.owned.iter().map(|(r, child, _)| {
        let field = super::ident(&r.name);
        let cty = super::ident(&child.name);
        let take = if r.cardinality.is_many() {
            quote!(found.remove(&id).unwrap_or_default())
        } else {
            quote!(found.remove(&id).and_then(|v| v.into_iter().next()))
        };
        quote! {
            let mut found = crud::children::<pb::#cty>(db, &ids).await?;
            for item in items.iter_mut() {
                let id = crud::uuid("id", &item.id)?;
                item.#field = #take;
            }
        }
    });
    let attach_doc =
        format!(" Fills in what each {snake} of `items` owns (one query per owned relation).");
    quote! {
        #[doc = #attach_doc]
        #[allow(unused_variables)]
        pub async fn #attach(db: &Db, items: &mut [pb::#ty]) -> Result<(), ServiceError> {
            let ids = items
                .iter()
                .map(|i| crud::uuid("id", &i.id))
                .collect::<Result<Vec<_>, _>>()?;
            #(#attach_each)*
            Ok(())
        }
    }
}

pub(super) fn support_names(
    m: &Model<'_>,
) -> (proc_macro2::Ident, proc_macro2::Ident, proc_macro2::Ident) {
    let snake = names::snake(&m.entity.name);
    (
        format_ident!("load_{snake}"),
        format_ident!("attach_{snake}"),
        format_ident!("store_{snake}_owned"),
    )
}

fn operation(m: &Model<'_>, o: &Operation) -> Result<TokenStream, EmitError> {
    let method = super::ident(o.name.to_snake_case());
    let req = super::ident(&o.rpc.request);
    let resp = super::ident(&o.rpc.response);
    let body = match o.kind {
        OperationKind::Get => get(m, &resp),
        OperationKind::List => list(m, o, &resp),
        OperationKind::Create => create(m, o, &resp),
        OperationKind::Update => update(m, &resp),
        OperationKind::Delete => delete(m, &resp),
        OperationKind::BatchGet => batch_get(m, &resp),
        OperationKind::Custom => quote!(self.hooks.#method(&self.db, ctx, request).await),
        OperationKind::Command | OperationKind::Query => {
            return Err(EmitError::Other(format!(
                "crud service `{}` has an event-sourced operation `{}`",
                m.svc.name, o.name
            )));
        }
    };
    Ok(quote! {
        #[allow(unused_variables, unused_mut)]
        async fn #method(&self, ctx: RequestContext, request: pb::#req) -> Result<pb::#resp, ServiceError> {
            #body
        }
    })
}

fn out_field(m: &Model<'_>) -> proc_macro2::Ident {
    super::ident(names::snake(&m.entity.name))
}

fn not_found(m: &Model<'_>) -> TokenStream {
    let kind = names::snake(&m.entity.name);
    quote!(ServiceError::not_found(#kind, id))
}

fn get(m: &Model<'_>, resp: &proc_macro2::Ident) -> TokenStream {
    let (load, _, _) = support_names(m);
    let out = out_field(m);
    let nf = not_found(m);
    quote! {
        let id = crud::uuid("id", &request.id)?;
        let found = #load(&self.db, id).await?.ok_or_else(|| #nf)?;
        Ok(pb::#resp { #out: Some(found) })
    }
}

fn list(m: &Model<'_>, o: &Operation, resp: &proc_macro2::Ident) -> TokenStream {
    let (_, attach, _) = support_names(m);
    let ty = super::ident(&m.entity.name);
    let items = super::ident(names::plural(&names::snake(&m.entity.name)));
    let filters = o.filter.iter().filter_map(|name| {
        let f = m.entity.field(name)?;
        let field = super::ident(name);
        let arg = filter_arg(f);
        Some(quote! {
            if let Some(value) = &request.#field {
                filters.push((#name, #arg));
            }
        })
    });
    let order = sorts(&o.order_by);
    let default_size = o.page_size.map_or(20, |p| p.default);
    quote! {
        const ORDER: &[crud::Sort] = &[#(#order),*];
        let mut filters: Vec<(&'static str, Arg)> = Vec::new();
        #(#filters)*
        let (mut items, next_page_token) = crud::list::<pb::#ty>(&self.db, crud::ListRequest {
            filters,
            order: ORDER,
            page_size: request.page_size,
            default_size: #default_size,
            page_token: &request.page_token,
        }).await?;
        #attach(&self.db, &mut items).await?;
        Ok(pb::#resp { #items: items, next_page_token })
    }
}

/// The SQL argument of a list filter's `value` (a reference to the request's value).
fn filter_arg(f: &Field) -> TokenStream {
    let label = &f.name;
    match f.ty {
        FieldType::Uuid | FieldType::Ref(_) => quote!(Arg::from(crud::uuid(#label, value)?)),
        FieldType::String | FieldType::Text | FieldType::Email => quote!(Arg::from(value)),
        FieldType::Timestamp => {
            quote!(Arg::from(crud::required_time(#label, &Some(value.clone()))?))
        }
        FieldType::Int | FieldType::Money | FieldType::Bool => quote!(Arg::from(*value)),
    }
}

/// The value a readonly field gets on create.
fn initial(f: &Field) -> TokenStream {
    if f.name == "id" {
        return quote!(uuid::Uuid::now_v7().to_string());
    }
    if f.ty == FieldType::Timestamp {
        return quote!(crud::timestamp(&now));
    }
    let value = match &f.default {
        Some(DefaultValue::Str(s)) => match f.ty {
            FieldType::Timestamp => quote!(crud::timestamp(&now)),
            _ => quote!(#s.to_string()),
        },
        Some(DefaultValue::Int(i)) => match f.ty {
            FieldType::Int => {
                let v = *i as i32;
                quote!(#v)
            }
            _ => quote!(#i),
        },
        Some(DefaultValue::Bool(b)) => quote!(#b),
        None => return quote!(Default::default()),
    };
    if f.optional {
        quote!(Some(#value))
    } else {
        value
    }
}

fn fill_call(m: &Model<'_>, created: bool) -> TokenStream {
    if m.entity.fields.iter().any(is_computed) {
        let method = format_ident!("fill_{}", names::snake(&m.entity.name));
        quote!(self.hooks.#method(&ctx, &mut record, #created)?;)
    } else {
        TokenStream::new()
    }
}

fn create(m: &Model<'_>, o: &Operation, resp: &proc_macro2::Ident) -> TokenStream {
    let (load, _, store) = support_names(m);
    let ty = super::ident(&m.entity.name);
    let out = out_field(m);
    let scope = format!("{}.{}", m.svc.name, o.name);
    let fields = m.entity.fields.iter().map(|f| {
        let name = super::ident(&f.name);
        if f.name == "id" && o.takes_idempotency_key() {
            quote!(#name: crud::new_id(#scope, key.as_deref()).to_string())
        } else if f.readonly || f.name == "id" {
            let v = initial(f);
            quote!(#name: #v)
        } else {
            quote!(#name: request.#name)
        }
    });
    let owned = m.entity.relations.iter().filter(|r| r.owned).map(|r| {
        let name = super::ident(&r.name);
        quote!(#name: request.#name)
    });
    let fill = fill_call(m, true);
    let answer = answer(m);
    let (take_key, first_answer) = if o.takes_idempotency_key() {
        (
            quote!(let key = request.idempotency_key.clone();),
            quote! {
                // A retry: the id derives from the key, the row is the first answer.
                if key.is_some() && let Some(first) = #load(&self.db, id).await? {
                    return Ok(pb::#resp { #out: Some(first) });
                }
            },
        )
    } else {
        (TokenStream::new(), TokenStream::new())
    };
    quote! {
        #take_key
        let now = crud::now();
        let mut record = pb::#ty { #(#fields,)* #(#owned,)* };
        #fill
        let id = crud::uuid("id", &record.id)?;
        #first_answer
        let mut tx = self.db.begin().await.map_err(keel::db::error)?;
        crud::insert(&mut tx, &record).await?;
        #store(&mut tx, id, &record).await?;
        tx.commit().await.map_err(keel::db::error)?;
        #answer
        Ok(pb::#resp { #out: Some(record) })
    }
}

/// With owned rows, the answer is read back so that it lists them as every read does.
fn answer(m: &Model<'_>) -> TokenStream {
    if m.owned.is_empty() {
        return TokenStream::new();
    }
    let nf = not_found(m);
    let (load, _, _) = support_names(m);
    quote!(let record = #load(&self.db, id).await?.ok_or_else(|| #nf)?;)
}

fn update(m: &Model<'_>, resp: &proc_macro2::Ident) -> TokenStream {
    let (_, _, store) = support_names(m);
    let ty = super::ident(&m.entity.name);
    let out = out_field(m);
    let nf = not_found(m);
    let writable: Vec<&Field> = m
        .entity
        .fields
        .iter()
        .filter(|f| !f.readonly && f.name != "id")
        .collect();
    let copy = writable.iter().map(|f| {
        let name = super::ident(&f.name);
        quote!(record.#name = request.#name;)
    });
    let copy_owned = m.entity.relations.iter().filter(|r| r.owned).map(|r| {
        let name = super::ident(&r.name);
        quote!(record.#name = request.#name;)
    });
    let set = m
        .entity
        .fields
        .iter()
        .filter(|f| (!f.readonly && f.name != "id") || is_computed(f))
        .map(|f| {
            let c = &f.name;
            let arg = arg_of(f, &quote!(record));
            quote!((#c, #arg))
        });
    let fill = fill_call(m, false);
    let answer = answer(m);
    quote! {
        let id = crud::uuid("id", &request.id)?;
        let mut tx = self.db.begin().await.map_err(keel::db::error)?;
        let mut record = crud::get::<pb::#ty>(&mut tx, id).await?.ok_or_else(|| #nf)?;
        #(#copy)*
        #(#copy_owned)*
        #fill
        crud::update::<pb::#ty>(&mut tx, id, vec![#(#set),*]).await?;
        #store(&mut tx, id, &record).await?;
        tx.commit().await.map_err(keel::db::error)?;
        #answer
        Ok(pb::#resp { #out: Some(record) })
    }
}

fn batch_get(m: &Model<'_>, resp: &proc_macro2::Ident) -> TokenStream {
    let (_, attach, _) = support_names(m);
    let ty = super::ident(&m.entity.name);
    let items = super::ident(names::plural(&names::snake(&m.entity.name)));
    let max = crate::proto_model::BATCH_GET_MAX;
    quote! {
        let mut items = crud::get_many::<pb::#ty>(&self.db, &request.ids, #max).await?;
        #attach(&self.db, &mut items).await?;
        Ok(pb::#resp { #items: items })
    }
}

fn delete(m: &Model<'_>, resp: &proc_macro2::Ident) -> TokenStream {
    let ty = super::ident(&m.entity.name);
    let nf = not_found(m);
    quote! {
        let id = crud::uuid("id", &request.id)?;
        if !crud::delete::<pb::#ty>(&self.db, id).await? {
            return Err(#nf);
        }
        Ok(pb::#resp {})
    }
}

// ------------------------------------------------------------------ settings and run

fn app(m: &Model<'_>) -> TokenStream {
    let hooks = m.hooks_trait();
    let name = m.crud_struct();
    let db = &m.database.name;
    let pg = format!("../../sql/{db}");
    let lite = format!("../../sqlite/{db}");
    let deployable = m
        .system
        .deployables
        .iter()
        .find(|d| d.service == m.svc.name);
    let listen = deployable.map_or_else(
        || "127.0.0.1:50051".to_string(),
        |d| format!("127.0.0.1:{}", d.local.app),
    );
    let about = format!("The {} service (gRPC, crud)", m.svc.name);
    // A hand-written crate's own `Config` flattens this one: the two need distinct groups.
    let group = format!("{}-generated", m.svc.name);
    let upstream_fields = deployable
        .map(|d| d.upstreams.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|u| {
            let field = format_ident!("{}_url", u.replace('-', "_"));
            let env = format!("{}_URL", u.to_shouty_snake_case());
            let port = m
                .system
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
        });
    let service_name = format!("{}.{}", m.svc.proto.package, m.svc.proto.services[0].name);
    let server_ctor = format_ident!(
        "{}_server",
        m.svc.proto.services[0]
            .name
            .strip_suffix("Service")
            .unwrap_or(&m.svc.proto.services[0].name)
            .to_snake_case()
    );
    let run = (!needs_hooks(m.system, m.svc)).then(|| {
        quote! {
            /// Serves the service until `stop` turns true; every rule comes from the spec.
            pub async fn run(config: Config, incoming: TcpIncoming, stop: tokio::sync::watch::Receiver<bool>) -> anyhow::Result<()> {
                run_with(config, incoming, stop, |_, _| Ok(())).await
            }
        }
    });
    let started = format!("{} service serving", m.svc.name);
    let stopped = format!("{} service stopped", m.svc.name);
    quote! {
        use tonic::transport::server::TcpIncoming;

        /// The PostgreSQL migrations.
        pub static PG: sqlx::migrate::Migrator = sqlx::migrate!(#pg);
        /// The SQLite migrations.
        pub static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!(#lite);
        /// Both; the database URL's dialect picks one.
        pub static MIGRATIONS: sql::Migrations = sql::Migrations { postgres: &PG, sqlite: &SQLITE };

        /// The service's settings: flags and environment of the binary, or a struct
        /// literal in an in-process launcher.
        #[derive(clap::Parser, Debug, Clone)]
        #[command(about = #about)]
        #[group(id = #group)]
        pub struct Config {
            /// Address to serve gRPC on (the binary binds it; `run` takes the bound socket).
            #[arg(long, env = "LISTEN_ADDR", default_value = #listen)]
            pub listen: std::net::SocketAddr,
            /// `postgres://…` or `sqlite://path/to/file.db`; that dialect's migrations run at start.
            #[arg(long, env = "DATABASE_URL")]
            pub database_url: String,
            #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
            pub max_connections: u32,
            /// How long to wait for the database at start.
            #[arg(long, env = "STARTUP_TIMEOUT_SECS", default_value_t = 30)]
            pub startup_timeout_secs: u64,
            #(#upstream_fields)*
        }

        /// Connects (applying migrations), serves gRPC (the service, health, reflection)
        /// and the hooks' background task on `incoming` until `stop` turns true, then
        /// closes the pool. `hooks` builds the hand-written rules from the settings and
        /// the database. Installs no signal handler and no logger.
        pub async fn run_with<H: #hooks>(
            config: Config,
            incoming: TcpIncoming,
            stop: tokio::sync::watch::Receiver<bool>,
            hooks: impl FnOnce(&Config, &Db) -> anyhow::Result<H>,
        ) -> anyhow::Result<()> {
            let db = Db::open(
                &config.database_url,
                &sql::ConnectOptions::new(config.max_connections, config.startup_timeout_secs),
                &MIGRATIONS,
            ).await?;
            let hooks = Arc::new(hooks(&config, &db)?);
            let background = tokio::spawn(hooks.clone().background(db.clone(), stop.clone()));
            let router = keel::server::grpc_router(&[#service_name], &[crate::FILE_DESCRIPTOR_SET]).await?;
            tracing::info!(listen = %config.listen, dialect = ?db.dialect(), #started);
            let mut stop_serving = stop;
            let served = router
                .add_service(crate::#server_ctor(Arc::new(#name::new(db.clone(), hooks))))
                .serve_with_incoming_shutdown(incoming, async move {
                    keel::server::stopped(&mut stop_serving).await;
                })
                .await;
            if let Err(e) = background.await {
                tracing::error!(error = %e, "background task failed");
            }
            db.close().await;
            served?;
            tracing::info!(#stopped);
            Ok(())
        }

        #run
    }
}

/// `src/main.rs` of a service generated whole.
pub fn main_rs(system: &System, svc: &Service) -> TokenStream {
    let krate = super::ident(super::rust::crate_name(system, svc).replace('-', "_"));
    let doc = format!(
        " The {} service (crud, generated whole): `--database-url postgres://…` or `sqlite://…`.",
        svc.name
    );
    quote! {
        #![doc = #doc]
        use clap::Parser;

        #[tokio::main]
        async fn main() -> anyhow::Result<()> {
            keel::server::init_tracing();
            let config = #krate::Config::parse();
            let incoming = keel::server::bind(config.listen)?;
            #krate::run(config, incoming, keel::server::stop_on_signal()).await
        }
    }
}
