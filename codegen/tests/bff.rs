//! The BFF's generated crate (`emit::bff`): a golden snapshot of what it writes for
//! `tests/fixtures/mini.yaml` (after an intended change: `UPDATE_EXPECT=1 cargo test -p
//! codegen`), and what makes a spec edit unable to leave the SDL without its resolvers:
//! both are rendered from one model (`System::graphql`).

use std::path::{Path, PathBuf};

use codegen::GeneratedFile;
use codegen::emit::{bff, graphql};
use codegen::ir::{FieldSource, System};
use expect_test::expect_file;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn load(name: &str, text: &str) -> System {
    codegen::load(Path::new(name), text).unwrap_or_else(|e| panic!("{e}"))
}

fn mini() -> System {
    load("mini.yaml", &read("codegen/tests/fixtures/mini.yaml"))
}

fn shop() -> System {
    load("shop.yaml", &read("spec/shop.yaml"))
}

fn emit(system: &System) -> Vec<GeneratedFile> {
    bff::emit(system).unwrap_or_else(|e| panic!("{e}"))
}

/// The generated `api.rs`.
fn api(system: &System) -> String {
    emit(system)
        .into_iter()
        .find(|f| f.path == "rust/bff/src/api.rs")
        .expect("api.rs")
        .contents
}

#[test]
fn golden_bff() {
    let files = emit(&mini());
    let bundle: Vec<String> = files
        .iter()
        .map(|f| format!("==> {} <==\n{}", f.path, f.contents))
        .collect();
    expect_file!["snapshots/bff.txt"].assert_eq(&bundle.join("\n"));
}

#[test]
fn the_crate_is_where_the_workspace_and_the_sdl_expect_it() {
    let system = shop();
    let paths: Vec<String> = emit(&system).into_iter().map(|f| f.path).collect();
    assert_eq!(
        paths,
        [
            "rust/bff/Cargo.toml",
            "rust/bff/src/lib.rs",
            "rust/bff/src/api.rs",
            "rust/bff/src/main.rs",
            // The shop names a storefront (`bff.storefront`): rebuilt when a file is added.
            "rust/bff/build.rs"
        ]
    );
    let all = codegen::emit::all(&system).expect("emits");
    assert!(all.iter().any(|f| f.path == "graphql/schema.graphql"));
    // The web files it compiles in are where its include_str! expects them.
    for web in ["web/client.js", "web/backoffice.js"] {
        assert!(all.iter().any(|f| f.path == web), "{web}");
        assert!(api(&system).contains(&format!("include_str!(\"../../../{web}\")")));
    }
    assert!(api(&system).contains("\"$CARGO_MANIFEST_DIR/../../../services/shop/web\""));
    assert!(api(&system).contains("include_str!(\"../../../graphql/schema.graphql\")"));
    for f in emit(&system) {
        let mark = if f.path.ends_with(".toml") { "#" } else { "//" };
        assert!(
            f.contents.starts_with(&format!("{mark} @generated")),
            "{}",
            f.path
        );
    }
    assert_eq!(emit(&system), emit(&system), "deterministic");
}

/// Every root field and every relation field of the SDL is in the registry, and the
/// relation fields are listed as such.
#[test]
fn every_field_resolved_by_a_call_has_a_generated_resolver() {
    for system in [shop(), mini()] {
        let api_rs = api(&system);
        let sdl = graphql::emit(&system).expect("sdl").remove(0).contents;
        let g = &system.graphql;
        let roots = [("Query", &g.queries), ("Mutation", &g.mutations)];
        for (root, fields) in roots {
            for f in fields {
                assert!(sdl.contains(&format!("  {}", f.name)), "{root}.{}", f.name);
                assert!(
                    api_rs.contains(&format!("(\"{root}.{}\", ", f.name)),
                    "no resolver for {root}.{}",
                    f.name
                );
            }
        }
        let relations = g.objects.iter().flat_map(|o| {
            o.fields
                .iter()
                .filter(|f| matches!(f.resolve, FieldSource::Relation(_)))
                .map(move |f| format!("{}.{}", o.name, f.name))
        });
        let mut n = 0;
        for key in relations {
            assert!(
                api_rs.contains(&format!("(\"{key}\", ")),
                "no resolver for {key}"
            );
            assert!(
                api_rs.contains(&format!("    \"{key}\",")),
                "{key} not in RELATIONS"
            );
            n += 1;
        }
        assert!(n >= 3, "{n} relation fields");
    }
}

/// Each upstream's URL defaults to its deployable's local Envoy; the BFF listens on its
/// own local app port.
#[test]
fn upstream_defaults_come_from_the_deployables() {
    let system = shop();
    let api_rs = api(&system);
    let bff = &system.deployables[0];
    assert!(api_rs.contains(&format!("Ipv4Addr::LOCALHOST, {}u16", bff.local.app)));
    assert_eq!(bff.upstreams.len(), system.graphql.upstreams.len());
    for u in &system.graphql.upstreams {
        let d = system
            .deployables
            .iter()
            .find(|d| d.name == u.deployable)
            .expect("deployable");
        assert!(bff.upstreams.contains(&d.name), "{}", d.name);
        let line = format!(
            "env = \"{}\", default_value = \"http://127.0.0.1:{}\"",
            u.env, d.local.envoy
        );
        assert!(api_rs.contains(&line), "{line}");
    }
}

/// A field added to an entity and a new service exposed through the BFF reach the
/// generated resolvers with no hand-written change.
#[test]
fn spec_edits_reach_the_resolvers() {
    let text = read("codegen/tests/fixtures/mini.yaml");
    let text = text
        .replace(
            "      active: bool\n",
            "      active: bool\n      sku: { type: string, optional: true, max_len: 20 }\n",
        )
        .replace(
            "services:\n",
            "services:\n  shelf:\n    pattern: crud\n    entity: Shelf\n    store: postgres\n    use_cases:\n      GetShelf: { kind: get }\n      CreateShelf: { kind: create }\n",
        )
        .replace(
            "entities:\n",
            "entities:\n  Shelf:\n    fields:\n      id: uuid\n      label: { type: string, max_len: 30 }\n      item_id: { ref: Item, optional: true }\n",
        )
        .replace("queries: [ListItems,", "queries: [GetShelf, ListItems,")
        .replace("mutations: [CreateItem,", "mutations: [CreateShelf, CreateItem,");
    let system = load("edited.yaml", &text);
    let api_rs = api(&system);
    for want in [
        "(\"sku\", rt::opt(m.sku.as_deref()))",
        "sku: a.opt_string(\"sku\")",
        "pub mod shelf {",
        "(\"Query.getShelf\", shelf::get_shelf)",
        "(\"Mutation.createShelf\", shelf::create_shelf)",
        "(\"Shelf.item\", shelf_item)",
        "env = \"SHELF_URL\"",
        "pub shelf_url: String",
    ] {
        assert!(api_rs.contains(want), "{want}\n{api_rs}");
    }
}

/// What the API model cannot decide is a spec error, reported with every other one.
#[test]
fn a_graphql_type_name_clash_is_a_spec_error() {
    let text = read("codegen/tests/fixtures/mini.yaml").replace("Tag", "JoinInput");
    let err = codegen::load(Path::new("clash.yaml"), &text).expect_err("a clash");
    let shown = err.to_string();
    assert!(
        shown.contains("two GraphQL types would be called `JoinInput`"),
        "{shown}"
    );
}
