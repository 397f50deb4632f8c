//! The contract emitters (proto, GraphQL, SQL, MongoDB), checked two ways:
//!
//! - golden files: what they write for `tests/fixtures/mini.yaml`, kept in
//!   `tests/snapshots/`. After an intended change, rewrite them and review the diff:
//!
//!       UPDATE_EXPECT=1 cargo test -p codegen
//!
//! - the real consumers, on the real `spec/shop.yaml` (and the fixture): protox compiles
//!   every `.proto`, async-graphql parses and builds the SDL, and every migration is
//!   applied to a real PostgreSQL, started with `xtask/infra/infra.sh up postgres`. That
//!   test fails (it does not skip) when PostgreSQL cannot be started.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use codegen::GeneratedFile;
use codegen::emit::{graphql, mongo, proto, sql};
use codegen::ir::{Label, ProtoType, System};
use expect_test::expect_file;

// ---------------------------------------------------------------------- helpers

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn load(rel: &str) -> System {
    let text = std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    codegen::load(Path::new(rel), &text).unwrap_or_else(|e| panic!("{e}"))
}

fn mini() -> System {
    load("codegen/tests/fixtures/mini.yaml")
}

fn shop() -> System {
    load("spec/shop.yaml")
}

type Emitter = fn(&System) -> Result<Vec<GeneratedFile>, codegen::emit::EmitError>;

const EMITTERS: [(&str, Emitter); 4] = [
    ("proto", proto::emit),
    ("graphql", graphql::emit),
    ("sql", sql::emit),
    ("mongo", mongo::emit),
];

fn run(emitter: Emitter, system: &System) -> Vec<GeneratedFile> {
    emitter(system).unwrap_or_else(|e| panic!("{e}"))
}

/// Every file of one emitter as one text, each under a `==> path <==` line.
fn bundle(files: &[GeneratedFile]) -> String {
    files
        .iter()
        .map(|f| format!("==> {} <==\n{}", f.path, f.contents))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Writes `files` under `target/tmp/contracts/<dir>` (what a test hands to a tool).
fn write_out(dir: &str, files: &[GeneratedFile]) -> PathBuf {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("contracts")
        .join(dir);
    let _ = std::fs::remove_dir_all(&out);
    for f in files {
        let p = out.join(&f.path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, &f.contents).expect("write");
    }
    out
}

// ---------------------------------------------------------------------- golden

#[test]
fn golden_proto() {
    expect_file!["snapshots/proto.txt"].assert_eq(&bundle(&run(proto::emit, &mini())));
}

#[test]
fn golden_graphql() {
    expect_file!["snapshots/schema.graphql"].assert_eq(&bundle(&run(graphql::emit, &mini())));
}

#[test]
fn golden_sql() {
    expect_file!["snapshots/sql.txt"].assert_eq(&bundle(&run(sql::emit, &mini())));
}

/// The SQL form of the event store, both dialects (the event store's database only).
#[test]
fn golden_event_store_sql() {
    let system = mini();
    let stores: Vec<String> = system
        .event_stores
        .iter()
        .map(|s| s.database.clone())
        .collect();
    assert!(!stores.is_empty(), "the mini spec has an event store");
    let mut files = run(sql::emit, &system);
    files.extend(run(codegen::emit::sqlite::emit, &system));
    files.retain(|f| stores.iter().any(|db| f.path.contains(&format!("/{db}/"))));
    assert_eq!(files.len(), 2 * stores.len(), "one init per dialect");
    expect_file!["snapshots/event_store_sql.txt"].assert_eq(&bundle(&files));
}

#[test]
fn golden_mongo() {
    expect_file!["snapshots/mongo.txt"].assert_eq(&bundle(&run(mongo::emit, &mini())));
}

// ---------------------------------------------------------------------- all emitters

#[test]
fn outputs_are_deterministic_marked_and_where_the_ir_says() {
    for system in [mini(), shop()] {
        for (name, emitter) in EMITTERS {
            let a = run(emitter, &system);
            let b = run(emitter, &system);
            assert_eq!(a, b, "{name} output differs between two runs");
            for f in &a {
                let mark = match name {
                    "sql" => "-- @generated",
                    "graphql" => "# @generated",
                    "mongo" => "{\n  \"_generated\": \"@generated",
                    _ => "// @generated",
                };
                assert!(
                    f.contents.starts_with(mark),
                    "{} does not start with {mark:?}",
                    f.path
                );
                assert!(
                    f.contents.ends_with('\n') && !f.contents.ends_with("\n\n"),
                    "{}: trailing newlines",
                    f.path
                );
            }
        }
        let paths =
            |e: Emitter| -> Vec<String> { run(e, &system).into_iter().map(|f| f.path).collect() };
        let want: Vec<String> = system
            .services
            .iter()
            .map(|s| format!("proto/{}", s.proto.file))
            .collect();
        assert_eq!(paths(proto::emit), want);
        let want: Vec<String> = system
            .databases
            .iter()
            .map(|d| format!("sql/{}/0001_init.sql", d.name))
            .collect();
        assert_eq!(paths(sql::emit), want);
        let want: Vec<String> = system
            .event_stores
            .iter()
            .map(|s| format!("mongo/{}.json", s.database))
            .collect();
        assert_eq!(paths(mongo::emit), want);
        assert_eq!(paths(graphql::emit), ["graphql/schema.graphql"]);
    }
}

#[test]
fn emit_all_includes_the_contracts() {
    let system = mini();
    let all = codegen::emit::all(&system).unwrap_or_else(|e| panic!("{e}"));
    for (_, emitter) in EMITTERS {
        for f in run(emitter, &system) {
            assert!(all.contains(&f), "emit::all lacks {}", f.path);
        }
    }
}

// ---------------------------------------------------------------------- proto

struct MemoryResolver(BTreeMap<String, String>);

impl protox::file::FileResolver for MemoryResolver {
    fn open_file(&self, name: &str) -> Result<protox::file::File, protox::Error> {
        match self.0.get(name) {
            Some(src) => protox::file::File::from_source(name, src),
            None => Err(protox::Error::file_not_found(name)),
        }
    }
}

fn is_pascal(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_uppercase()) && s.chars().all(|c| c.is_ascii_alphanumeric())
}

fn is_lower_snake(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !s.contains("__")
        && !s.ends_with('_')
}

#[test]
fn protos_compile_with_protox_and_match_the_ir() {
    use prost_types::field_descriptor_proto::Label as PLabel;
    for system in [mini(), shop()] {
        let files = run(proto::emit, &system);
        let sources: BTreeMap<String, String> = files
            .iter()
            .map(|f| {
                (
                    f.path
                        .strip_prefix("proto/")
                        .expect("under proto/")
                        .to_string(),
                    f.contents.clone(),
                )
            })
            .collect();
        let mut chain = protox::file::ChainFileResolver::new();
        chain.add(MemoryResolver(sources.clone()));
        chain.add(protox::file::GoogleFileResolver::new());
        let mut compiler = protox::Compiler::with_file_resolver(chain);
        compiler.include_imports(false);
        for name in sources.keys() {
            compiler
                .open_file(name)
                .unwrap_or_else(|e| panic!("{name}: {e:?}\n{}", sources[name]));
        }
        let set = compiler.file_descriptor_set();
        for svc in &system.services {
            let p = &svc.proto;
            let fd = set
                .file
                .iter()
                .find(|f| f.name() == p.file)
                .expect("compiled file");
            assert_eq!(fd.package(), p.package);
            assert_eq!(fd.syntax(), "proto3");
            assert_eq!(fd.dependency, p.imports);
            // buf's PACKAGE_VERSION_SUFFIX, PACKAGE_DIRECTORY_MATCH, FILE_LOWER_SNAKE_CASE.
            assert!(p.package.ends_with(".v1"), "{}", p.package);
            let (dir, file) = p.file.rsplit_once('/').expect("a file in a folder");
            assert_eq!(dir, p.package.replace('.', "/"), "{}", p.file);
            assert!(
                is_lower_snake(file.trim_end_matches(".proto")),
                "{}",
                p.file
            );
            // RPC_REQUEST_RESPONSE_UNIQUE: no message is the request or response of two RPCs.
            let mut io = BTreeSet::new();
            for r in p.services.iter().flat_map(|s| &s.methods) {
                assert!(
                    io.insert(&r.request) && io.insert(&r.response),
                    "{} reused",
                    r.method
                );
            }
            let names: Vec<&str> = fd.message_type.iter().map(|m| m.name()).collect();
            let want: Vec<&str> = p.messages.iter().map(|m| m.name.as_str()).collect();
            assert_eq!(names, want, "{}: messages in IR order", p.file);
            for (m, d) in p.messages.iter().zip(&fd.message_type) {
                assert!(is_pascal(&m.name), "message {}", m.name);
                let plain: Vec<_> = d
                    .field
                    .iter()
                    .filter(|f| f.oneof_index.is_none() || f.proto3_optional())
                    .collect();
                assert_eq!(plain.len(), m.fields.len(), "{}", m.name);
                for (f, df) in m.fields.iter().zip(&plain) {
                    assert!(is_lower_snake(&f.name), "field {}.{}", m.name, f.name);
                    assert_eq!(
                        (df.name(), df.number()),
                        (f.name.as_str(), f.number as i32),
                        "{}",
                        m.name
                    );
                    assert_eq!(
                        df.proto3_optional(),
                        f.label == Label::Optional,
                        "{}.{}",
                        m.name,
                        f.name
                    );
                    assert_eq!(
                        df.label() == PLabel::Repeated,
                        f.label == Label::Repeated,
                        "{}.{}",
                        m.name,
                        f.name
                    );
                    if let ProtoType::Message(t) = &f.ty {
                        assert_eq!(df.type_name(), format!(".{}.{t}", p.package));
                    }
                }
                if let Some((oneof, members)) = &m.oneof {
                    assert!(is_lower_snake(oneof), "oneof {oneof}");
                    let idx = d
                        .oneof_decl
                        .iter()
                        .position(|o| o.name() == oneof)
                        .expect("oneof") as i32;
                    let got: Vec<(&str, i32)> = d
                        .field
                        .iter()
                        .filter(|f| f.oneof_index == Some(idx))
                        .map(|f| (f.name(), f.number()))
                        .collect();
                    let want: Vec<(&str, i32)> = members
                        .iter()
                        .map(|f| (f.name.as_str(), f.number as i32))
                        .collect();
                    assert_eq!(got, want, "{}.{oneof}", m.name);
                }
                let reserved: Vec<u32> = d
                    .reserved_range
                    .iter()
                    .flat_map(|r| r.start() as u32..r.end() as u32)
                    .collect();
                let mut want = m.reserved_numbers.clone();
                want.sort_unstable();
                assert_eq!(reserved, want, "{} reserved numbers", m.name);
                assert_eq!(
                    d.reserved_name, m.reserved_names,
                    "{} reserved names",
                    m.name
                );
            }
            let services: Vec<&str> = fd.service.iter().map(|s| s.name()).collect();
            let want: Vec<&str> = p.services.iter().map(|s| s.name.as_str()).collect();
            assert_eq!(services, want);
            for (s, ds) in p.services.iter().zip(&fd.service) {
                assert!(
                    s.name.ends_with("Service") && is_pascal(&s.name),
                    "buf SERVICE_SUFFIX: {}",
                    s.name
                );
                assert_eq!(ds.method.len(), s.methods.len());
                for (r, dm) in s.methods.iter().zip(&ds.method) {
                    assert_eq!(dm.name(), r.method);
                    assert!(is_pascal(&r.method), "buf RPC_PASCAL_CASE: {}", r.method);
                    assert_eq!(dm.input_type(), format!(".{}.{}", p.package, r.request));
                    assert_eq!(dm.output_type(), format!(".{}.{}", p.package, r.response));
                    assert_eq!(
                        r.request,
                        format!("{}Request", r.method),
                        "buf RPC_REQUEST_STANDARD_NAME"
                    );
                    assert_eq!(
                        r.response,
                        format!("{}Response", r.method),
                        "buf RPC_RESPONSE_STANDARD_NAME"
                    );
                }
            }
        }
    }
}

#[test]
fn proto_docs_become_comments() {
    let system = mini();
    let files = run(proto::emit, &system);
    let catalog = files
        .iter()
        .find(|f| f.path.contains("/catalog/"))
        .expect("catalog proto");
    // A multi-line entity doc keeps its lines; an operation's doc sits on its rpc.
    assert!(
        catalog
            .contents
            .contains("// Something for sale.\n// Its price is what a buyer pays"),
        "{}",
        catalog.contents
    );
    assert!(
        catalog
            .contents
            .contains("  // Lowers the price of an item by a percentage.\n  rpc Discount(")
    );
    assert!(
        catalog
            .contents
            .contains("  // The member selling it.\n  string seller_id = 2;")
    );
}

// ---------------------------------------------------------------------- GraphQL

#[path = "support/gql.rs"]
mod gql;

fn sdl(system: &System) -> String {
    run(graphql::emit, system)
        .pop()
        .expect("schema.graphql")
        .contents
}

#[test]
fn graphql_sdl_of_the_shop_parses_and_every_type_is_defined() {
    for system in [shop(), mini()] {
        let text = sdl(&system);
        let doc = gql::parse(&text);
        let errors = gql::check_references(&doc);
        assert!(errors.is_empty(), "{}\n{text}", errors.join("\n"));
        let schema = gql::build(&doc);
        // The built schema answers introspection about every query and mutation field.
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let resp = rt.block_on(schema.execute(
            "{ __schema { queryType { fields { name } } mutationType { fields { name } } } }",
        ));
        assert!(resp.errors.is_empty(), "{:?}", resp.errors);
        let json = resp.data.into_json().expect("json");
        let names = |root: &str| -> Vec<String> {
            json["__schema"][root]["fields"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|f| f["name"].as_str().expect("name").to_string())
                        .collect()
                })
                .unwrap_or_default()
        };
        let want: Vec<String> = system.bff.queries.iter().map(|q| q.field.clone()).collect();
        assert_eq!(names("queryType"), want);
        let mut want: Vec<String> = system
            .bff
            .mutations
            .iter()
            .map(|q| q.field.clone())
            .collect();
        if system.auth.is_some() {
            want.extend(["login", "refreshSession", "logout"].map(String::from));
        }
        assert_eq!(names("mutationType"), want);
    }
}

#[test]
fn graphql_shapes_follow_the_ir() {
    use codegen::ir::OperationKind as K;
    for system in [shop(), mini()] {
        let doc = gql::parse(&sdl(&system));
        let types = gql::fields(&doc);
        let ty = |n: &str| types.get(n).unwrap_or_else(|| panic!("type {n} missing"));
        for q in system.bff.queries.iter().chain(&system.bff.mutations) {
            let svc = system
                .services
                .iter()
                .find(|s| s.name == q.service)
                .expect("service");
            let op = svc.operation(&q.operation).expect("operation");
            let root = if op.kind.is_read() {
                "Query"
            } else {
                "Mutation"
            };
            let (out, args) = &ty(root)[&q.field];
            match op.kind {
                K::List => {
                    let e = op.output.as_deref().expect("output");
                    assert_eq!(out, &format!("{e}Connection!"));
                    assert!(
                        args.contains("first: Int") && args.contains("after: String"),
                        "{args:?}"
                    );
                    assert_eq!(ty(&format!("{e}Connection"))["nodes"].0, format!("[{e}!]!"));
                }
                K::Get | K::Query => {
                    assert_eq!(
                        Some(out.as_str()),
                        op.output.as_deref(),
                        "{}: nullable entity",
                        q.field
                    );
                }
                _ => {
                    assert_eq!(
                        args.iter().collect::<Vec<_>>(),
                        [&format!("input: {}Input!", op.name)]
                    );
                    let input = ty(&format!("{}Input", op.name));
                    match op.kind {
                        K::Delete => assert_eq!(out, "DeletePayload!"),
                        K::Command => {
                            assert_eq!(out, &format!("{}Payload!", op.name));
                            assert_eq!(input["expectedVersion"].0, "Int");
                            assert_eq!(ty(&format!("{}Payload", op.name))["version"].0, "Int!");
                        }
                        _ => assert_eq!(Some(out.trim_end_matches('!')), op.output.as_deref()),
                    }
                    for f in &op.input {
                        let camel = codegen::names::camel(&f.name);
                        let (t, _) = &input[&camel];
                        // The subject's id is the caller's: omitted, it is filled in.
                        let caller = system.auth.as_ref().is_some_and(|a| {
                            op.audience == codegen::ir::Audience::Customer
                                && f.ty == codegen::ir::FieldType::Ref(a.entity.clone())
                        });
                        assert_eq!(
                            t.ends_with('!'),
                            !f.optional && !caller,
                            "{}Input.{camel}",
                            op.name
                        );
                    }
                }
            }
        }
        // Abstract entities have no type of their own; entity fields are all there.
        for e in &system.entities {
            if e.is_abstract {
                assert!(
                    !types.contains_key(&e.name),
                    "abstract {} has a type",
                    e.name
                );
            } else if let Some(t) = types.get(&e.name) {
                for f in &e.fields {
                    let camel = codegen::names::camel(&f.name);
                    assert!(t.contains_key(&camel), "{}.{camel}", e.name);
                    assert_eq!(
                        t[&camel].0.ends_with('!'),
                        !f.optional,
                        "{}.{camel}",
                        e.name
                    );
                }
            }
        }
    }
}

#[test]
fn graphql_relations_of_the_shop() {
    let doc = gql::parse(&sdl(&shop()));
    let types = gql::fields(&doc);
    // Refs resolved by a get or an ES query taking just that id: nullable objects.
    assert_eq!(types["CartItem"]["product"].0, "Product");
    assert_eq!(types["OrderDetail"]["product"].0, "Product");
    assert_eq!(types["Order"]["customer"].0, "Customer");
    assert_eq!(types["Order"]["cart"].0, "Cart");
    // Owned: lists. Non-owned, listed by the foreign key: a connection.
    assert_eq!(types["Cart"]["items"].0, "[CartItem!]!");
    assert_eq!(types["Order"]["details"].0, "[OrderDetail!]!");
    let (t, args) = &types["Customer"]["orders"];
    assert_eq!(t, "OrderConnection!");
    assert_eq!(
        args.iter().map(String::as_str).collect::<Vec<_>>(),
        ["after: String", "first: Int"]
    );
    // No exposed query fetches a cart by customer: no field, but a comment says so.
    assert!(!types["Customer"].contains_key("cart"));
    assert!(sdl(&shop()).contains("# `cart` (0..1 Cart) is not exposed"));
    // Aggregates carry their version; CRUD entities do not.
    assert_eq!(types["Cart"]["version"].0, "Int!");
    assert_eq!(types["Customer"]["version"].0, "Int!");
    assert!(!types["Product"].contains_key("version"));
    // Customer has User's fields (flattened), and the spec's docs are descriptions.
    assert!(types["Customer"].contains_key("email"));
    assert!(sdl(&shop()).contains("\"Something the shop sells.\"\ntype Product {"));
}

// ---------------------------------------------------------------------- MongoDB

#[test]
fn mongo_documents_match_the_ir() {
    let system = shop();
    for (f, store) in run(mongo::emit, &system).iter().zip(&system.event_stores) {
        let v: serde_json::Value = serde_json::from_str(&f.contents).expect("valid JSON");
        assert_eq!(v["database"], store.database.as_str());
        let cols = v["collections"].as_array().expect("collections");
        assert_eq!(cols.len(), store.collections.len());
        for (c, want) in cols.iter().zip(&store.collections) {
            assert_eq!(c["name"], want.name.as_str());
            assert_eq!(c["doc"], want.doc.as_str());
            let ix = c["indexes"].as_array().expect("indexes");
            assert_eq!(ix.len(), want.indexes.len());
            for (i, w) in ix.iter().zip(&want.indexes) {
                assert_eq!(i["name"], w.name.as_str());
                assert_eq!(i["unique"], w.unique);
                let key = i["key"].as_object().expect("key");
                for (k, d) in &w.keys {
                    assert_eq!(key[k], *d);
                }
                // Key order matters to MongoDB: check it in the text.
                let text: Vec<String> = w
                    .keys
                    .iter()
                    .map(|(k, d)| format!("\"{k}\": {d}"))
                    .collect();
                assert!(
                    f.contents.contains(&text.join(",\n            ")),
                    "key order of {}",
                    w.name
                );
            }
        }
    }
}

// ---------------------------------------------------------------------- PostgreSQL

#[path = "support/postgres.rs"]
mod postgres;
use postgres::{db_url, postgres_url};

/// The constraint a failed statement violated.
fn violated(r: Result<sqlx::postgres::PgQueryResult, sqlx::Error>) -> String {
    match r {
        Ok(_) => "nothing: the row was accepted".into(),
        Err(e) => e
            .as_database_error()
            .and_then(|d| d.constraint().map(str::to_string))
            .unwrap_or_else(|| format!("no constraint: {e}")),
    }
}

async fn exec(
    pool: &sqlx::PgPool,
    sql: &str,
) -> Result<sqlx::postgres::PgQueryResult, sqlx::Error> {
    // Test-only SQL built from constants of this file.
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(pool)
        .await
}

/// The catalog agrees with the IR: tables, columns, constraints, indexes, comments.
async fn check_catalog(pool: &sqlx::PgPool, db: &codegen::ir::Database, system: &System) {
    let tables: BTreeSet<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_all(pool)
    .await
    .expect("tables")
    .into_iter()
    .collect();
    for t in &db.tables {
        assert!(
            tables.contains(&t.name),
            "{}: table {} missing",
            db.name,
            t.name
        );
        let cols: Vec<(String, String)> = sqlx::query_as(
            "SELECT column_name::text, is_nullable::text FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
        )
        .bind(&t.name)
        .fetch_all(pool)
        .await
        .expect("columns");
        let want: Vec<(String, String)> = t
            .columns
            .iter()
            .map(|c| {
                (
                    c.name.clone(),
                    if c.nullable { "YES" } else { "NO" }.to_string(),
                )
            })
            .collect();
        assert_eq!(cols, want, "{}.{}", db.name, t.name);
        let constraints: BTreeMap<String, String> = sqlx::query_as::<_, (String, String)>(
            "SELECT conname::text, contype::text FROM pg_constraint WHERE conrelid = $1::regclass",
        )
        .bind(&t.name)
        .fetch_all(pool)
        .await
        .expect("constraints")
        .into_iter()
        .collect();
        let mut want: BTreeMap<String, String> = BTreeMap::new();
        want.insert(format!("{}_pkey", t.name), "p".into());
        for u in &t.unique {
            want.insert(format!("{}_{}_key", t.name, u.join("_")), "u".into());
        }
        for c in t.columns.iter().filter(|c| !c.checks.is_empty()) {
            want.insert(format!("{}_{}_check", t.name, c.name), "c".into());
        }
        for fk in &t.foreign_keys {
            want.insert(
                format!("{}_{}_fkey", t.name, fk.columns.join("_")),
                "f".into(),
            );
        }
        // NOT NULL may show up as constraints (contype 'n') on newer servers.
        let got: BTreeMap<String, String> =
            constraints.into_iter().filter(|(_, k)| k != "n").collect();
        assert_eq!(got, want, "{}.{} constraints", db.name, t.name);
        let indexes: BTreeSet<String> = sqlx::query_scalar(
            "SELECT indexname::text FROM pg_indexes WHERE schemaname = 'public' AND tablename = $1",
        )
        .bind(&t.name)
        .fetch_all(pool)
        .await
        .expect("indexes")
        .into_iter()
        .collect();
        for ix in &t.indexes {
            let cols: Vec<&str> = ix.iter().map(|c| c.field.as_str()).collect();
            let name = format!("{}_{}_idx", t.name, cols.join("_"));
            assert!(
                indexes.contains(&name),
                "{}: index {name} missing (have {indexes:?})",
                db.name
            );
        }
        let comment: Option<String> =
            sqlx::query_scalar("SELECT obj_description($1::regclass, 'pg_class')")
                .bind(&t.name)
                .fetch_one(pool)
                .await
                .expect("comment");
        assert_eq!(
            comment.as_deref(),
            t.doc.as_deref().map(str::trim),
            "{}.{} comment",
            db.name,
            t.name
        );
    }
    let _ = system;
}

/// Behaviour of the shop's schemas: bad rows are rejected by the named constraint.
async fn check_shop_rules(pool: &sqlx::PgPool, db: &str) {
    match db {
        "shop_product" => {
            let ok = "INSERT INTO products (id, name, price, created_at) VALUES (gen_random_uuid(), 'Tea', 500, now())";
            exec(pool, ok).await.expect("a valid product is accepted");
            let neg = "INSERT INTO products (id, name, price, created_at) VALUES (gen_random_uuid(), 'Tea', -1, now())";
            assert_eq!(violated(exec(pool, neg).await), "products_price_check");
            let long = format!(
                "INSERT INTO products (id, name, price, created_at) VALUES (gen_random_uuid(), '{}', 1, now())",
                "x".repeat(201)
            );
            assert_eq!(violated(exec(pool, &long).await), "products_name_check");
            let empty = "INSERT INTO products (id, name, price, created_at) VALUES (gen_random_uuid(), '', 1, now())";
            assert_eq!(violated(exec(pool, empty).await), "products_name_check");
            let null = "INSERT INTO products (id, name, created_at) VALUES (gen_random_uuid(), 'Tea', now())";
            assert!(exec(pool, null).await.is_err(), "price is NOT NULL");
        }
        "shop_user" => {
            let add = |email: &str| {
                format!(
                    "INSERT INTO customers (id, email, name, registered_at) VALUES (gen_random_uuid(), '{email}', 'Ann', now())"
                )
            };
            exec(pool, &add("ann@example.com"))
                .await
                .expect("a valid customer is accepted");
            assert_eq!(
                violated(exec(pool, &add("ann@example.com")).await),
                "customers_email_key"
            );
            assert_eq!(
                violated(exec(pool, &add("not-an-email")).await),
                "customers_email_check"
            );
            let ev = "INSERT INTO events (stream_id, version, event_id, event_type, schema_version, payload) \
                      VALUES ('00000000-0000-0000-0000-000000000001', 1, gen_random_uuid(), 'CustomerRegistered', 1, '{}')";
            exec(pool, ev).await.expect("first event");
            // Optimistic concurrency: the same stream version twice is refused.
            assert_eq!(violated(exec(pool, ev).await), "events_pkey");
        }
        "shop_order" => {
            let order = |id: &str, version: i32| {
                format!(
                    "INSERT INTO orders (id, customer_id, cart_id, cart_version, total, placed_at) VALUES \
                     ('{id}', gen_random_uuid(), '00000000-0000-0000-0000-0000000000aa', {version}, 100, now())"
                )
            };
            let o1 = "00000000-0000-0000-0000-000000000001";
            exec(pool, &order(o1, 1))
                .await
                .expect("a valid order is accepted");
            // Checkout is idempotent: one order per cart version.
            assert_eq!(
                violated(exec(pool, &order("00000000-0000-0000-0000-000000000002", 1)).await),
                "orders_cart_id_cart_version_key"
            );
            let detail = |q: i32| {
                format!(
                    "INSERT INTO order_details (order_id, product_id, product_name, unit_price, quantity) VALUES \
                     ('{o1}', gen_random_uuid(), 'Tea', 100, {q})"
                )
            };
            exec(pool, &detail(1)).await.expect("a valid detail");
            assert_eq!(
                violated(exec(pool, &detail(100)).await),
                "order_details_quantity_check"
            );
            exec(pool, &format!("DELETE FROM orders WHERE id = '{o1}'"))
                .await
                .expect("delete");
            let left: i64 = sqlx::query_scalar("SELECT count(*) FROM order_details")
                .fetch_one(pool)
                .await
                .expect("count");
            assert_eq!(left, 0, "details are deleted with their order");
        }
        "shop_cart_read" => {
            let c = "00000000-0000-0000-0000-000000000001";
            exec(pool, &format!("INSERT INTO carts (id) VALUES ('{c}')"))
                .await
                .expect("a cart");
            let item = format!(
                "INSERT INTO cart_items (cart_id, product_id, quantity) VALUES ('{c}', '{c}', 1)"
            );
            exec(pool, &item).await.expect("an item");
            assert_eq!(violated(exec(pool, &item).await), "cart_items_pkey");
            let orphan = "INSERT INTO cart_items (cart_id, product_id, quantity) VALUES (gen_random_uuid(), gen_random_uuid(), 1)";
            assert_eq!(
                violated(exec(pool, orphan).await),
                "cart_items_cart_id_fkey"
            );
            assert_eq!(
                violated(
                    exec(
                        pool,
                        &format!("UPDATE carts SET version = -1 WHERE id = '{c}'")
                    )
                    .await
                ),
                "carts_version_check"
            );
        }
        "shop_cart_events" => {
            let commit = |position: i64, seq: i64, commit_id: &str| {
                format!(
                    "INSERT INTO commits (position, stream_id, commit_seq, commit_id, rev_from, rev_to, events) VALUES \
                     ({position}, '00000000-0000-0000-0000-000000000001', {seq}, '{commit_id}', {seq}, {seq}, '[]')"
                )
            };
            let c1 = "00000000-0000-0000-0000-0000000000c1";
            let c2 = "00000000-0000-0000-0000-0000000000c2";
            exec(pool, &commit(1, 1, c1)).await.expect("a first commit");
            // Optimistic concurrency: one commit per (stream, commit_seq).
            assert_eq!(
                violated(exec(pool, &commit(2, 1, c2)).await),
                "commits_stream_id_commit_seq_key"
            );
            // Idempotency: one commit per (stream, commit_id).
            assert_eq!(
                violated(exec(pool, &commit(2, 2, c1)).await),
                "commits_stream_id_commit_id_key"
            );
            // One commit per position.
            assert_eq!(
                violated(exec(pool, &commit(1, 2, c2)).await),
                "commits_pkey"
            );
            assert_eq!(
                violated(exec(pool, &commit(0, 2, c2)).await),
                "commits_position_check"
            );
            exec(pool, &commit(2, 2, c2))
                .await
                .expect("the next commit");
            exec(
                pool,
                "INSERT INTO checkpoints (reader, position) VALUES ('relay', 2)",
            )
            .await
            .expect("a checkpoint");
            assert_eq!(
                violated(
                    exec(
                        pool,
                        "INSERT INTO checkpoints (reader, position) VALUES ('tail', -1)"
                    )
                    .await
                ),
                "checkpoints_position_check"
            );
        }
        other => panic!("no rules written for database {other}: add them"),
    }
}

#[test]
fn migrations_apply_to_a_real_postgres() {
    let base = postgres_url();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let admin = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(base)
            .await
            .unwrap_or_else(|e| panic!("connect to {base}: {e}"));
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis();
        // Databases a failed run left behind (named `contracts_..._<millis>`), after an hour.
        let old: Vec<String> = sqlx::query_scalar(
            "SELECT datname::text FROM pg_database WHERE datname LIKE 'contracts\\_%'",
        )
        .fetch_all(&admin)
        .await
        .expect("list databases");
        for name in old {
            let made: u128 = name
                .rsplit('_')
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            if made + 3_600_000 < stamp {
                let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                exec(&admin, &drop).await.expect("drop a stale database");
            }
        }
        for (spec, system) in [("shop", shop()), ("mini", mini())] {
            let out = write_out(&format!("migrations-{spec}"), &run(sql::emit, &system));
            for db in &system.databases {
                let name = format!("contracts_{}_{}_{stamp}", db.name, std::process::id());
                exec(&admin, &format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create database");
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(2)
                    .connect(&db_url(base, &name))
                    .await
                    .expect("connect");
                let dir = out.join("sql").join(&db.name);
                let migrator = sqlx::migrate::Migrator::new(dir.as_path())
                    .await
                    .expect("read migrations");
                assert_eq!(migrator.iter().count(), 1, "{}: one migration", db.name);
                migrator
                    .run(&pool)
                    .await
                    .unwrap_or_else(|e| panic!("{}: migration fails: {e}", db.name));
                check_catalog(&pool, db, &system).await;
                if spec == "shop" {
                    check_shop_rules(&pool, &db.name).await;
                }
                // Applying again is a no-op (sqlx records the migration's checksum).
                migrator.run(&pool).await.expect("second run is a no-op");
                pool.close().await;
                exec(&admin, &format!("DROP DATABASE {name} WITH (FORCE)"))
                    .await
                    .expect("drop database");
            }
        }
        admin.close().await;
    });
}
