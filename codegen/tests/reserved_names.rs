//! Specs whose names are drawn to include the reserved words of every target (Rust,
//! protobuf, GraphQL, SQL) and the generator's own names: the generator either generates
//! every artifact (the protos compile, the SDL builds a schema, the SQLite migrations
//! apply) or refuses the spec with errors at spec positions. It never panics and
//! never fails inside an emitter (an internal error such as "generated tokens do not
//! parse" is a bug: a valid spec it cannot generate, or an invalid one it did not explain).

use std::path::Path;

use codegen::{GenerateError, Generation};
use heck::{ToSnakeCase, ToUpperCamelCase};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;

#[path = "support/consumers.rs"]
mod consumers;

/// A fixed seed keeps CI repeatable; `RESERVED_NAMES_SEED=<n>` explores other specs.
fn seed() -> RngSeed {
    let given = std::env::var("RESERVED_NAMES_SEED").ok();
    RngSeed::Fixed(given.and_then(|s| s.parse().ok()).unwrap_or(20_261_129))
}

/// Words some target reserves, and words the generator itself derives names from.
const WORDS: &[&str] = &[
    "return",
    "type",
    "match",
    "loop",
    "async",
    "self",
    "move",
    "crate",
    "super",
    "fn",
    "impl",
    "where",
    "mod",
    "enum",
    "struct",
    "true",
    "false",
    "select",
    "order",
    "user",
    "table",
    "group",
    "check",
    "default",
    "limit",
    "offset",
    "from",
    "to",
    "max",
    "map",
    "option",
    "message",
    "package",
    "service",
    "rpc",
    "stream",
    "query",
    "mutation",
    "string",
    "int",
    "id",
    "node",
    "error",
    "key",
    "value",
    "version",
    "page_size",
    "idempotency_key",
    "expected_version",
    "items",
    "item",
    "data",
    "events",
    "outbox",
    "state",
    "states",
    "deletions",
    "parked_events",
    "commits",
    "system",
    "launcher",
    "bff",
    "book",
    "loan",
    "title",
    "member",
    "shelf",
    "note",
    "name",
];

/// Names no target reserves.
const PLAIN: &[&str] = &[
    "book",
    "copy",
    "loan",
    "title",
    "pages",
    "barcode",
    "price",
    "shelf",
    "catalog",
    "lending",
    "borrower",
    "branch",
    "lent",
    "returned_book",
    "view_loan",
    "add_book",
];

/// A reserved word about half the time, else a plain name.
fn word() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        proptest::sample::select(WORDS),
        proptest::sample::select(PLAIN)
    ]
}

fn pascal(w: &str) -> String {
    w.to_upper_camel_case()
}

/// What a generated spec's outputs must be to their consumers: the protos compile, the
/// SDL builds a schema, every SQLite migration applies (PostgreSQL and Envoy:
/// tests/generated_specs.rs, on fewer specs).
fn outputs_are_accepted(g: &Generation, text: &str) {
    let checks = consumers::Checks {
        postgres: false,
        envoy: false,
    };
    consumers::accept(g, text, checks);
}

/// A small spec: a CRUD entity that owns a keyed child, a CQRS aggregate referring to it,
/// with a command, an event, a query and the BFF exposing them.
#[allow(clippy::too_many_arguments)]
fn spec(
    (e1, e2, e3): (&str, &str, &str),
    (f1, f2, k, f3, f4): (&str, &str, &str, &str, &str),
    rel: &str,
    (s1, s2): (&str, &str),
    (op1, op2, op3, op4, op5): (&str, &str, &str, &str, &str),
    ev: &str,
) -> String {
    let (e1, e2, e3) = (pascal(e1), pascal(e2), pascal(e3));
    let (op1, op2, op3, op4, op5) = (
        pascal(op1),
        pascal(op2),
        pascal(op3),
        pascal(op4),
        pascal(op5),
    );
    let ev = pascal(ev);
    let agg_id = format!("{}_id", e3.to_snake_case());
    format!(
        r#"system: lib
money: {{ currency: EUR, minor_units: 2 }}
entities:
  {e1}:
    fields:
      id: uuid
      {f1}: {{ type: string, max_len: 10 }}
      {f2}: {{ type: int, optional: true }}
    relations:
      {rel}: {{ to: {e2}, cardinality: "0..*", owned: true }}
  {e2}:
    key: [{k}]
    fields:
      {k}: {{ type: string, min_len: 1, max_len: 5 }}
      {f3}: {{ type: money, min: 0 }}
  {e3}:
    fields:
      id: uuid
      {f4}: {{ ref: {e1}, optional: true }}
services:
  {s1}:
    pattern: crud
    entity: {e1}
    store: postgres
    use_cases:
      {op1}: {{ kind: list }}
      {op2}: {{ kind: get }}
      {op3}: {{ kind: create }}
  {s2}:
    pattern: cqrs-es
    aggregate: {e3}
    event_store: mongodb
    read_model: postgres
    messaging: {{ broker: kafka, topic: {s2}.events }}
    calls: [{s1}]
    commands:
      {op4}: {{ input: [{agg_id}, {f4}], emits: [{ev}], exists: [{f4}] }}
    events:
      {ev}: [{f4}]
    queries:
      {op5}: {{ input: [{agg_id}], output: {e3} }}
bff:
  graphql:
    queries: [{op1}, {op2}, {op5}]
    mutations: [{op3}, {op4}]
"#
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, rng_seed: seed(), ..ProptestConfig::default() })]

    #[test]
    fn every_spec_is_generated_or_explained(
        entities in (word(), word(), word()),
        fields in (word(), word(), word(), word(), word()),
        rel in word(),
        services in (word(), word()),
        ops in (word(), word(), word(), word(), word()),
        ev in word(),
    ) {
        let text = spec(entities, fields, rel, services, ops, ev);
        match codegen::generate(Path::new("lib.yaml"), &text, None, false) {
            Ok(_) => {}
            Err(GenerateError::Spec(errors)) => {
                let shown = errors.to_string();
                for line in shown.lines().filter(|l| l.contains("error:")) {
                    prop_assert!(
                        line.starts_with("lib.yaml:"),
                        "an error without a spec position: {line}\n{text}"
                    );
                }
            }
            Err(other) => prop_assert!(false, "internal error: {other}\n{text}"),
        }
    }
}

const PLAIN_SPEC: [&str; 17] = [
    "book",
    "copy",
    "loan",
    "title",
    "pages",
    "barcode",
    "price",
    "book_id",
    "copies",
    "catalog",
    "lending",
    "list_books",
    "get_book",
    "add_book",
    "lend",
    "view_loan",
    "lent",
];

fn spec_of(n: &[&str; 17]) -> String {
    spec(
        (n[0], n[1], n[2]),
        (n[3], n[4], n[5], n[6], n[7]),
        n[8],
        (n[9], n[10]),
        (n[11], n[12], n[13], n[14], n[15]),
        n[16],
    )
}

/// Every reserved word in a place of every kind, one at a time, the other names plain: each
/// spec is generated or refused with positioned errors; and the plain spec generates,
/// so the property cannot pass by refusing everything.
#[test]
fn each_reserved_word_in_each_place() {
    let plain = spec_of(&PLAIN_SPEC);
    match codegen::generate(Path::new("lib.yaml"), &plain, None, false) {
        Ok(g) => outputs_are_accepted(&g, &plain),
        Err(e) => panic!("{e}\n{plain}"),
    }
    // The places by kind of name: entity, field, relation, service, operation, event.
    const KINDS: [&[usize]; 6] = [
        &[0, 1, 2],
        &[3, 4, 5, 6, 7],
        &[8],
        &[9, 10],
        &[11, 12, 13, 14, 15],
        &[16],
    ];
    let (mut generated, mut refused) = (0, 0);
    for (i, w) in WORDS.iter().enumerate() {
        // Each word in one place of every kind, the place turning with the word.
        for places in KINDS {
            let slot = places[i % places.len()];
            let mut names = PLAIN_SPEC;
            names[slot] = w;
            let text = spec_of(&names);
            match codegen::generate(Path::new("lib.yaml"), &text, None, false) {
                Ok(g) => {
                    outputs_are_accepted(&g, &text);
                    generated += 1;
                }
                Err(GenerateError::Spec(errors)) => {
                    refused += 1;
                    let shown = errors.to_string();
                    let unplaced: Vec<&str> = shown
                        .lines()
                        .filter(|l| l.contains("error:") && !l.starts_with("lib.yaml:"))
                        .collect();
                    assert!(
                        unplaced.is_empty(),
                        "errors without a position: {unplaced:?}\n{text}"
                    );
                }
                Err(other) => panic!("`{w}` in place {slot}: internal error: {other}\n{text}"),
            }
        }
    }
    assert!(
        generated > 0 && refused > 0,
        "generated {generated}, refused {refused}"
    );
}
