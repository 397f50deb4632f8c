//! How generation time grows with spec size: `cargo bench -p codegen --bench generate`.
//!
//! Builds synthetic specs (services of every pattern, each aggregate owning three
//! child entities), then times `load` (parse, validate, lower) and `emit::all` (every
//! artifact, protos compiled in memory) and prints the median of several runs.

use std::fmt::Write;
use std::path::Path;
use std::time::{Duration, Instant};

fn synthetic_spec(services: usize) -> String {
    let mut s =
        String::from("system: bench\nmoney: { currency: EUR, minor_units: 2 }\nentities:\n");
    for i in 0..services {
        let _ = write!(
            s,
            "  Thing{i}:\n    fields:\n      id: uuid\n      name: {{ type: string, min_len: 1, max_len: 100 }}\n      \
             note: {{ type: text, optional: true, max_len: 2000 }}\n      price: {{ type: money, min: 0 }}\n      \
             created_at: {{ type: timestamp, readonly: true }}\n    relations:\n"
        );
        for c in 0..3 {
            let _ = writeln!(
                s,
                "      part{c}: {{ to: Thing{i}Part{c}, cardinality: \"0..*\", owned: true }}"
            );
        }
        for c in 0..3 {
            let _ = write!(
                s,
                "  Thing{i}Part{c}:\n    key: [code]\n    fields:\n      code: {{ type: string, max_len: 20 }}\n      \
                 quantity: {{ type: int, min: 1, max: 99 }}\n"
            );
        }
    }
    s.push_str("services:\n");
    let mut queries = Vec::new();
    let mut mutations = Vec::new();
    for i in 0..services {
        match i % 10 {
            0 => {
                let _ = write!(
                    s,
                    "  svc{i}:\n    pattern: cqrs-es\n    aggregate: Thing{i}\n    event_store: mongodb\n    read_model: postgres\n    \
                     messaging: {{ broker: kafka, topic: svc{i}.events }}\n    commands:\n      \
                     Add{i}: {{ input: [thing{i}_id, code, quantity], emits: [Added{i}] }}\n      \
                     Reset{i}: {{ input: [thing{i}_id], emits: [Reset{i}] }}\n    events:\n      \
                     Added{i}: [code, quantity]\n      Reset{i}: []\n    queries:\n      View{i}: {{ input: [thing{i}_id] }}\n"
                );
                queries.push(format!("View{i}"));
                mutations.extend([format!("Add{i}"), format!("Reset{i}")]);
            }
            5 => {
                let _ = write!(
                    s,
                    "  svc{i}:\n    pattern: cqs-es\n    aggregate: Thing{i}\n    store: postgres\n    \
                     messaging: {{ broker: kafka, topic: svc{i}.events }}\n    commands:\n      \
                     Rename{i}: {{ input: [thing{i}_id, name], emits: [Renamed{i}] }}\n    events:\n      \
                     Renamed{i}: [name]\n    queries:\n      View{i}: {{ input: [thing{i}_id] }}\n"
                );
                queries.push(format!("View{i}"));
                mutations.push(format!("Rename{i}"));
            }
            _ => {
                let _ = write!(
                    s,
                    "  svc{i}:\n    pattern: crud\n    entity: Thing{i}\n    store: postgres\n    use_cases:\n      \
                     List{i}: {{ kind: list, order_by: [name] }}\n      Get{i}: {{ kind: get }}\n      \
                     Create{i}: {{ kind: create }}\n      Update{i}: {{ kind: update }}\n      Delete{i}: {{ kind: delete }}\n"
                );
                queries.extend([format!("List{i}"), format!("Get{i}")]);
                mutations.extend([
                    format!("Create{i}"),
                    format!("Update{i}"),
                    format!("Delete{i}"),
                ]);
            }
        }
    }
    let _ = write!(
        s,
        "bff:\n  graphql:\n    queries: [{}]\n    mutations: [{}]\n",
        queries.join(", "),
        mutations.join(", ")
    );
    s
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

struct Times {
    load: Duration,
    /// A fresh thread: nothing memoized, what one `cargo xtask generate` pays.
    cold: Duration,
    /// The same system again on the same thread: what a repeat pays (tests, the fuzzer).
    warm: Duration,
    files: usize,
}

/// Median times of `spec` over `runs` runs, each on a thread of its own.
fn measure(spec: &str, runs: usize) -> Times {
    let samples: Vec<Times> = (0..runs)
        .map(|_| std::thread::scope(|s| s.spawn(|| measure_once(spec)).join().unwrap()))
        .collect();
    Times {
        load: median(samples.iter().map(|t| t.load).collect()),
        cold: median(samples.iter().map(|t| t.cold).collect()),
        warm: median(samples.iter().map(|t| t.warm).collect()),
        files: samples[0].files,
    }
}

fn measure_once(spec: &str) -> Times {
    let t = Instant::now();
    let system = codegen::load(Path::new("bench.yaml"), spec).unwrap_or_else(|e| {
        eprintln!("spec rejected:\n{e}");
        std::process::exit(1);
    });
    let load = t.elapsed();
    let emit = || {
        let t = Instant::now();
        let out = codegen::emit::all(&system).unwrap_or_else(|e| {
            eprintln!("emit failed: {e}");
            std::process::exit(1);
        });
        (t.elapsed(), out.len())
    };
    let (cold, files) = emit();
    let (warm, _) = emit();
    Times {
        load,
        cold,
        warm,
        files,
    }
}

fn main() {
    let runs = 5;
    println!(
        "{:<16} {:>9} {:>9} {:>7} {:>10} {:>10} {:>10} {:>6}",
        "spec", "entities", "services", "lines", "load", "emit", "emit again", "files"
    );
    let shop =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../spec/shop.yaml"))
            .unwrap_or_else(|e| {
                eprintln!("spec/shop.yaml: {e}");
                std::process::exit(1);
            });
    let row = |name: &str, entities: usize, services: usize, spec: &str| {
        let t = measure(spec, runs);
        println!(
            "{name:<16} {entities:>9} {services:>9} {:>7} {:>10.2?} {:>10.2?} {:>10.2?} {:>6}",
            spec.lines().count(),
            t.load,
            t.cold,
            t.warm,
            t.files
        );
    };
    row("spec/shop.yaml", 7, 4, &shop);
    for services in [5, 12, 25, 50] {
        row(
            "synthetic",
            services * 4,
            services,
            &synthetic_spec(services),
        );
    }
    per_emitter(&shop, runs);
}

type Emitter =
    fn(&codegen::ir::System) -> Result<Vec<codegen::emit::GeneratedFile>, codegen::emit::EmitError>;

/// Where the shop's emit time goes: the median of each emitter alone, nothing memoized.
fn per_emitter(spec: &str, runs: usize) {
    use codegen::emit::*;
    let emitters: [(&str, Emitter); 13] = [
        ("proto", proto::emit),
        ("graphql", graphql::emit),
        ("bff", bff::emit),
        ("sql", sql::emit),
        ("sqlite", sqlite::emit),
        ("mongo", mongo::emit),
        ("rust", rust::emit),
        ("envoy", envoy::emit),
        ("compose", compose::emit),
        ("k8s", k8s::emit),
        ("docker", docker::emit),
        ("system", system::emit),
        ("launcher", launcher::emit),
    ];
    let system = codegen::load(Path::new("shop.yaml"), spec).unwrap_or_else(|e| {
        eprintln!("spec rejected:\n{e}");
        std::process::exit(1);
    });
    println!("\nspec/shop.yaml by emitter (fresh thread)");
    for (name, emit) in emitters {
        let times = (0..runs)
            .map(|_| {
                std::thread::scope(|s| {
                    s.spawn(|| {
                        let t = Instant::now();
                        let _ = emit(&system);
                        t.elapsed()
                    })
                    .join()
                    .unwrap()
                })
            })
            .collect();
        println!("{name:<16} {:>10.2?}", median(times));
    }
}
