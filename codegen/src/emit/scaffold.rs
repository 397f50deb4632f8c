//! First versions of the hand-written crates a spec asks for: `services/<service>/` of a
//! CRUD service with rules (`kind: custom`, computed fields) or an event-sourced service.
//! The caller writes them only where the folder does not exist and never again: they are
//! the user's from then on. Each implements the generated traits with nothing, so the
//! build names every method the rules must supply, and the launcher, which names the
//! crate, finds it from the first generation on.

use heck::ToUpperCamelCase;

use super::GeneratedFile;
use crate::ir::{Pattern, Service, System};
use crate::layout;

/// The hand-written crate of each service that needs one, keyed by its folder relative
/// to the project root (`services/<service>`); `generated` is the output folder's name
/// (the generated crates are `../../<generated>/rust/<service>` from there).
pub fn rules_crates(system: &System, generated: &str) -> Vec<(String, Vec<GeneratedFile>)> {
    system
        .services
        .iter()
        .filter(|s| !layout::generated_whole(s, &system.entities))
        .map(|s| {
            let dir = format!("services/{}", s.name);
            let krate = Crate::of(system, s);
            let files = vec![
                file(&dir, "Cargo.toml", krate.manifest(generated)),
                file(&dir, "src/main.rs", krate.main()),
                file(&dir, "src/lib.rs", krate.lib()),
            ];
            (dir, files)
        })
        .collect()
}

fn file(dir: &str, name: &str, contents: String) -> GeneratedFile {
    GeneratedFile {
        path: format!("{dir}/{name}"),
        contents,
    }
}

const HEADER: &str = "Scaffolded by `cargo xtask generate` because the spec asks for rules; yours to edit (it is never rewritten).";

struct Crate<'a> {
    svc: &'a Service,
    /// `library_books`: the generated crate, as Rust names it.
    generated: String,
    /// `books-service`.
    package: String,
    /// `books_service`.
    lib: String,
}

impl<'a> Crate<'a> {
    fn of(system: &System, svc: &'a Service) -> Self {
        let (package, _) = layout::program(&system.name, Some(svc), &system.entities);
        Crate {
            svc,
            generated: super::rust::crate_name(system, svc).replace('-', "_"),
            lib: package.replace('-', "_"),
            package,
        }
    }

    fn manifest(&self, generated: &str) -> String {
        // The state of a CQRS aggregate is kept as a snapshot: serde.
        let (features, runtime, extra) = match self.svc.pattern {
            Pattern::Crud => (
                "\"server\", \"sql\", \"crud\"",
                "",
                "clap.workspace = true\n",
            ),
            Pattern::CqsEs => ("\"server\", \"es\"", ", features = [\"runtime\"]", ""),
            Pattern::CqrsEs => (
                "\"server\", \"es\"",
                ", features = [\"runtime\"]",
                "serde.workspace = true\n",
            ),
        };
        format!(
            "# {HEADER}\n[package]\nname = \"{package}\"\nversion = \"0.1.0\"\nedition.workspace = true\n\
             license.workspace = true\npublish.workspace = true\n\
             description = \"The {svc} service's rules, behind the traits of the generated `{dep}`.\"\n\n\
             [dependencies]\nanyhow.workspace = true\n{extra}keel = {{ workspace = true, features = [{features}] }}\n\
             {dep} = {{ path = \"../../{generated}/rust/{svc}\"{runtime} }}\n\
             tokio.workspace = true\ntonic.workspace = true\n",
            package = self.package,
            svc = self.svc.name,
            dep = self.generated.replace('_', "-"),
        )
    }

    fn main(&self) -> String {
        let (generated, lib) = (&self.generated, &self.lib);
        let body = match self.svc.pattern {
            Pattern::Crud => format!(
                "use clap::Parser;\nuse keel::server;\n\n#[tokio::main]\nasync fn main() -> anyhow::Result<()> {{\n    \
                 server::init_tracing();\n    let config = {lib}::Config::parse();\n    \
                 let incoming = server::bind(config.listen)?;\n    \
                 {lib}::run(config, incoming, server::stop_on_signal()).await\n}}\n"
            ),
            Pattern::CqsEs => format!(
                "#[tokio::main]\nasync fn main() -> anyhow::Result<()> {{\n    \
                 {generated}::main_with::<{lib}::{agg}>().await\n}}\n",
                agg = self.svc.entity
            ),
            Pattern::CqrsEs => {
                let agg = &self.svc.entity;
                let call = if self.svc.subscriptions.is_empty() {
                    format!("{generated}::main_with::<{lib}::{agg}, _>(|_| Ok(NoChecks)).await")
                } else {
                    format!(
                        "{generated}::main_with::<{lib}::{agg}, _, _>(\n        |_| Ok(NoChecks),\n        \
                         {lib}::Subscriptions::new,\n    )\n    .await"
                    )
                };
                format!(
                    "use keel::es::command::NoChecks;\n\n#[tokio::main]\nasync fn main() -> anyhow::Result<()> {{\n    \
                     {call}\n}}\n"
                )
            }
        };
        format!(
            "//! `{}`: see `--help` (settings generated from the spec).\n//! {HEADER}\n\n{body}",
            self.package
        )
    }

    fn lib(&self) -> String {
        let (generated, svc) = (&self.generated, &self.svc.name);
        let rules = match self.svc.pattern {
            Pattern::Crud => self.crud_rules(),
            _ => self.aggregate(),
        };
        format!(
            "//! The {svc} service's rules, behind the traits of the generated `{generated}`.\n\
             //! {HEADER}\n\n{rules}"
        )
    }

    fn crud_rules(&self) -> String {
        let generated = &self.generated;
        let hooks = format!("{}Hooks", self.svc.name.to_upper_camel_case());
        format!(
            "use {generated}::{hooks};\nuse tokio::sync::watch;\nuse tonic::transport::server::TcpIncoming;\n\n\
             pub use {generated}::Config;\n\n\
             /// The {svc} service's rules.\n#[derive(Debug, Clone, Copy, Default)]\npub struct Rules;\n\n\
             // The compiler names each method the spec asks for.\nimpl {hooks} for Rules {{}}\n\n\
             /// Serves the {svc} service with these rules until `stop` turns true.\n\
             pub async fn run(\n    config: Config,\n    incoming: TcpIncoming,\n    stop: watch::Receiver<bool>,\n\
             ) -> anyhow::Result<()> {{\n    {generated}::run_with(config, incoming, stop, |_, _| Ok(Rules)).await\n}}\n",
            svc = self.svc.name
        )
    }

    fn aggregate(&self) -> String {
        let (generated, agg) = (&self.generated, &self.svc.entity);
        let cqrs = self.svc.pattern == Pattern::CqrsEs;
        let subscribes = cqrs && !self.svc.subscriptions.is_empty();
        let subscriptions_trait = format!("{}Subscriptions", self.svc.name.to_upper_camel_case());
        let mut uses = Vec::new();
        if cqrs {
            uses.push("use keel::es::command::NoChecks;".to_string());
        }
        if subscribes {
            uses.push("use keel::es::store::EventStore;".to_string());
            uses.push(format!(
                "use {generated}::{{{agg}Aggregate, {subscriptions_trait}}};"
            ));
        } else {
            uses.push(format!("use {generated}::{agg}Aggregate;"));
        }
        let derive = if cqrs {
            "Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize"
        } else {
            "Debug, Clone, Default, PartialEq"
        };
        let mut out = format!(
            "{}\n\npub use {generated}::Config;\n\n\
             /// What the events of one {agg} stream add up to.\n\
             #[derive({derive})]\npub struct {agg} {{}}\n\n\
             // The compiler names each method the spec asks for: `apply`, a decision per\n\
             // command, `view`.\nimpl {agg}Aggregate for {agg} {{}}\n",
            uses.join("\n")
        );
        if subscribes {
            out.push_str(&format!(
                "\n/// The {svc} service's reactions to other services' events.\n#[derive(Clone)]\n\
                 pub struct Subscriptions(pub EventStore);\n\nimpl Subscriptions {{\n    \
                 pub fn new(store: &EventStore) -> Subscriptions {{\n        Subscriptions(store.clone())\n    }}\n}}\n\n\
                 impl {subscriptions_trait} for Subscriptions {{}}\n",
                svc = self.svc.name
            ));
        }
        let call = match self.svc.pattern {
            Pattern::CqsEs => {
                format!("{generated}::run_with::<{agg}>(config, Some(incoming), stop).await")
            }
            _ if subscribes => format!(
                "{generated}::run_with::<{agg}, _, _>(\n        config,\n        incoming,\n        stop,\n        \
                 |_| Ok(NoChecks),\n        Subscriptions::new,\n    )\n    .await"
            ),
            _ => format!(
                "{generated}::run_with::<{agg}, _>(config, incoming, stop, |_| Ok(NoChecks)).await"
            ),
        };
        out.push_str(&format!(
            "\n/// Serves the {svc} service with these rules until `stop` turns true.\n\
             pub async fn run(\n    config: Config,\n    incoming: tonic::transport::server::TcpIncoming,\n    \
             stop: tokio::sync::watch::Receiver<bool>,\n) -> anyhow::Result<()> {{\n    {call}\n}}\n",
            svc = self.svc.name
        ));
        out
    }
}
