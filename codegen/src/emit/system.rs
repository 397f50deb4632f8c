//! The crate `<system>-system` under `generated/rust/system/`: the table of every
//! deployable (`DEPLOYABLES`), with what a launcher, a test harness or a deploy file
//! needs to run it. Dependency-free, so that any crate can read it.
//!
//! The table is built with `quote` and printed by `prettyplease`; `lib.rs` and
//! `Cargo.toml` come from templates.

use proc_macro2::{Literal, TokenStream};
use quote::quote;

use super::{EmitError, GeneratedFile};
use crate::ir::{Deployable, Role, SettingKind, System};

/// The folder of the crate under the output folder; no service may be called `system`.
const DIR: &str = "rust/system";

pub fn emit(system: &System) -> Result<Vec<GeneratedFile>, EmitError> {
    let mut ctx = tera::Context::new();
    ctx.insert("system", &system.name);
    ctx.insert("name", &crate_name(system));
    let templates = super::CrateTemplates {
        dir: DIR,
        cargo_toml: include_str!("../../../templates/rust/system/Cargo.toml.tera"),
        lib_rs: include_str!("../../../templates/rust/system/lib.rs.tera"),
        module: "table",
    };
    super::crate_files(&templates, &mut ctx, table(system))
}

/// `shop-system`.
pub fn crate_name(system: &System) -> String {
    format!("{}-system", system.name)
}

fn table(system: &System) -> TokenStream {
    let name = &system.name;
    let rows = system.deployables.iter().map(row);
    quote! {
        pub use keel::table::*;

        /// The system's name.
        pub const SYSTEM: &str = #name;

        /// Every deployable: the BFF, then each service's in spec order.
        pub static DEPLOYABLES: &[Deployable] = &[#(#rows),*];

        /// The deployable called `name` (`product`, `cart-query`).
        pub fn deployable(name: &str) -> Option<&'static Deployable> {
            DEPLOYABLES.iter().find(|d| d.name == name)
        }
    }
}

fn row(d: &Deployable) -> TokenStream {
    let (name, service, package, binary) = (&d.name, &d.service, &d.package, &d.binary);
    let role = match d.role {
        Role::Bff => quote!(Role::Bff),
        Role::Grpc => quote!(Role::Grpc),
        Role::Command => quote!(Role::Command),
        Role::Query => quote!(Role::Query),
        Role::EventHandler => quote!(Role::EventHandler),
    };
    let args = &d.args;
    let settings = d.settings.iter().map(|s| {
        let env = &s.env;
        let kind = match &s.kind {
            SettingKind::Listen => quote!(SettingKind::Listen),
            SettingKind::Database(db) => quote!(SettingKind::Database(#db)),
            SettingKind::EventStore(store) => quote!(SettingKind::EventStore(#store)),
            SettingKind::Bus => quote!(SettingKind::Bus),
            SettingKind::Upstream(up) => quote!(SettingKind::Upstream(#up)),
            SettingKind::EventStoreDatabase(db) => quote!(SettingKind::EventStoreDatabase(#db)),
            SettingKind::Topic(topic) => quote!(SettingKind::Topic(#topic)),
            SettingKind::ConsumerGroup(group) => quote!(SettingKind::ConsumerGroup(#group)),
        };
        quote!(Setting { env: #env, kind: #kind })
    });
    let (upstreams, databases) = (&d.upstreams, &d.databases);
    let event_store = match &d.event_store {
        Some(store) => quote!(Some(#store)),
        None => quote!(None),
    };
    let port = Literal::u16_unsuffixed;
    let (app, envoy, envoy_admin) = (
        port(d.local.app),
        port(d.local.envoy),
        port(d.local.envoy_admin),
    );
    quote! {
        Deployable {
            name: #name,
            service: #service,
            role: #role,
            package: #package,
            binary: #binary,
            args: &[#(#args),*],
            settings: &[#(#settings),*],
            upstreams: &[#(#upstreams),*],
            databases: &[#(#databases),*],
            event_store: #event_store,
            local: LocalPorts { app: #app, envoy: #envoy, envoy_admin: #envoy_admin },
        }
    }
}
