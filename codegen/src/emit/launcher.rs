//! The crate `<system>-launcher` under `generated/rust/launcher/`: `start(name, …)`
//! runs any deployable of the table in the calling process, through the same `Config`
//! and `run` its binary uses, configured by the settings its table row lists. An
//! embedded launcher (`keel::embedded::up`, given `SYSTEM`) is then generic: it binds
//! ports, chooses URLs and calls `start` for every row.

use std::collections::BTreeMap;

use proc_macro2::TokenStream;
use quote::quote;

use super::{EmitError, GeneratedFile};
use crate::ir::{Deployable, Role, System};

/// The folder of the crate under the output folder; no service may be called `launcher`.
const DIR: &str = "rust/launcher";

pub fn emit(system: &System) -> Result<Vec<GeneratedFile>, EmitError> {
    let mut packages: BTreeMap<&str, String> = BTreeMap::new();
    for d in &system.deployables {
        packages.insert(&d.package, package_path(system, d));
    }
    let packages: Vec<serde_json::Value> = packages
        .into_iter()
        .map(|(name, path)| serde_json::json!({ "name": name, "path": path }))
        .collect();
    let mut ctx = tera::Context::new();
    ctx.insert("name", &crate_name(system));
    ctx.insert("system", &system.name);
    ctx.insert("table", &super::system::crate_name(system));
    ctx.insert("packages", &packages);
    let templates = super::CrateTemplates {
        dir: DIR,
        cargo_toml: include_str!("../../../templates/rust/launcher/Cargo.toml.tera"),
        lib_rs: include_str!("../../../templates/rust/launcher/lib.rs.tera"),
        module: "launch",
    };
    super::crate_files(&templates, &mut ctx, launch(system))
}

/// `shop-launcher`.
pub fn crate_name(system: &System) -> String {
    format!("{}-launcher", system.name)
}

/// Where the package of `d` lives, from this crate: a generated crate beside it (the BFF's
/// too), or the hand-written crate of its service under `services/`.
fn package_path(system: &System, d: &Deployable) -> String {
    match system.services.iter().find(|s| s.name == d.service) {
        Some(s) if d.package == super::rust::crate_name(system, s) => format!("../{}", s.name),
        None if d.role == Role::Bff => "../bff".to_string(),
        _ => format!("../../../services/{}", d.service),
    }
}

fn launch(system: &System) -> TokenStream {
    let table = super::ident(super::system::crate_name(system).replace('-', "_"));
    // One arm per package: the roles of a CQRS service share their crate's `run`.
    let mut packages: Vec<(&Deployable, Vec<&str>)> = Vec::new();
    for d in &system.deployables {
        match packages.iter_mut().find(|(p, _)| p.package == d.package) {
            Some((_, names)) => names.push(&d.name),
            None => packages.push((d, vec![&d.name])),
        }
    }
    let arms = packages.iter().map(|(d, names)| {
        let krate = super::ident(d.package.replace('-', "_"));
        let start = match d.role {
            Role::Bff => quote! {
                let mut stop = stop;
                Box::pin(#krate::serve_on(config, listener, async move {
                    keel::server::stopped(&mut stop).await;
                }))
            },
            _ => quote!(Box::pin(#krate::run(config, listener.into(), stop))),
        };
        quote! {
            #(#names)|* => {
                let config: #krate::Config = keel::launch::config(d.binary, d.args, settings, tuning)?;
                #start
            }
        }
    });
    quote! {
        pub use keel::embedded::Running;

        /// The system for `keel::embedded::up`: its name, its table and `start`.
        pub const SYSTEM: keel::embedded::System = keel::embedded::System {
            name: #table::SYSTEM,
            table: #table::DEPLOYABLES,
            start,
        };

        /// Starts deployable `name` on `listener` until `stop` turns true. `settings` gives
        /// a value to every setting its table row lists (environment variable, value);
        /// `tuning` sets further variables where it reads them.
        pub fn start(
            name: &str,
            settings: &[(&str, String)],
            tuning: &[(&str, &str)],
            listener: tokio::net::TcpListener,
            stop: tokio::sync::watch::Receiver<bool>,
        ) -> anyhow::Result<Running> {
            let d = #table::deployable(name)
                .ok_or_else(|| anyhow::anyhow!("no deployable `{name}` in the spec"))?;
            Ok(match name {
                #(#arms)*
                other => anyhow::bail!("no deployable `{other}` in the spec"),
            })
        }
    }
}
