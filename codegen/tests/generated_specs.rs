//! Random specs (tests/support/random_spec.rs: entities with fields of every type,
//! references, owned children, indexes; crud, cqs-es and cqrs-es services; `auth:` with
//! the cqs-es service as identity, an aggregate `owned_by` its subject and claimed; a BFF) and
//! their whole output, checked by its consumers: protox compiles the protos,
//! async-graphql builds the SDL into a schema, every migration applies to SQLite and to a
//! real PostgreSQL, and Envoy validates the configs of a sample. The Rust of a sample is
//! compiled by `xtask/tests/spec_edit.rs`.
//!
//! Seeds are fixed so CI is repeatable; `GENERATED_SPECS_SEED=<n>` explores others.

use std::path::Path;

use codegen::GenerateError;

#[path = "support/consumers.rs"]
mod consumers;
#[path = "support/random_spec.rs"]
mod random_spec;

fn base_seed() -> u64 {
    std::env::var("GENERATED_SPECS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_261_129)
}

/// Specs whose names no target reserves are all generated, and all their outputs are
/// accepted.
#[test]
fn random_specs_generate_outputs_their_consumers_accept() {
    let base = base_seed();
    let specs: Vec<String> = (0..24).map(|i| random_spec::spec(base + i, 0)).collect();
    // Every feature the builder can draw is drawn at least once.
    for feature in [
        "abstract: true",
        "extends: ",
        "unique: true",
        "owned: true",
        "cardinality: \"0..*\" }",
        "on_delete: cascade",
        "desc] }",
        "indexes:",
        "filter: [",
        "kind: update",
        "kind: delete",
        "kind: custom",
        "idempotent: true",
        "audience: back-office",
        "pattern: cqs-es",
        "pattern: cqrs-es",
        "exists: [",
        "subscribes:",
        "consistency: strong",
        random_spec::HAND_WRITTEN_QUERY,
        "optional: true",
        "readonly: true",
        "one_of: ",
        "type: money",
        "\nauth:\n",
        "owned_by: ",
        "claim: ",
    ] {
        assert!(
            specs.iter().any(|s| s.contains(feature)),
            "no random spec has `{feature}`"
        );
    }
    for (i, text) in (0..).zip(specs) {
        match codegen::generate(Path::new("random.yaml"), &text, None, false) {
            Ok(g) => consumers::accept(
                &g,
                &text,
                consumers::Checks {
                    postgres: true,
                    envoy: i < 4,
                },
            ),
            Err(e) => panic!("seed {}: {e}\n{text}", base + i),
        }
    }
}

/// With reserved words among the names, a spec is generated (and its outputs accepted)
/// or refused with every error at a spec position.
#[test]
fn random_specs_with_reserved_names_are_generated_or_explained() {
    let base = base_seed().wrapping_mul(31);
    let (mut generated, mut refused) = (0, 0);
    for i in 0..24 {
        let text = random_spec::spec(base + i, 15);
        match codegen::generate(Path::new("random.yaml"), &text, None, false) {
            Ok(g) => {
                consumers::accept(
                    &g,
                    &text,
                    consumers::Checks {
                        postgres: true,
                        envoy: false,
                    },
                );
                generated += 1;
            }
            Err(GenerateError::Spec(errors)) => {
                let shown = errors.to_string();
                let unplaced: Vec<&str> = shown
                    .lines()
                    .filter(|l| l.contains("error:") && !l.starts_with("random.yaml:"))
                    .collect();
                assert!(
                    unplaced.is_empty(),
                    "errors without a position: {unplaced:?}\n{text}"
                );
                refused += 1;
            }
            Err(other) => panic!("seed {}: internal error: {other}\n{text}", base + i),
        }
    }
    assert!(
        generated > 0 && refused > 0,
        "generated {generated}, refused {refused}"
    );
}
