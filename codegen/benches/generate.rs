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

/// Median load and emit times of `spec` over `runs` runs, and the number of files.
fn measure(spec: &str, runs: usize) -> (Duration, Duration, usize) {
    let mut load = Vec::new();
    let mut emit = Vec::new();
    let mut files = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let system = match codegen::load(Path::new("bench.yaml"), spec) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("spec rejected:\n{e}");
                std::process::exit(1);
            }
        };
        load.push(t.elapsed());
        let t = Instant::now();
        let out = codegen::emit::all(&system).unwrap_or_else(|e| {
            eprintln!("emit failed: {e}");
            std::process::exit(1);
        });
        emit.push(t.elapsed());
        files = out.len();
    }
    (median(load), median(emit), files)
}

fn main() {
    let runs = 5;
    println!(
        "{:<16} {:>9} {:>9} {:>7} {:>10} {:>10} {:>6}",
        "spec", "entities", "services", "lines", "load", "emit", "files"
    );
    let shop =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../spec/shop.yaml"))
            .unwrap_or_else(|e| {
                eprintln!("spec/shop.yaml: {e}");
                std::process::exit(1);
            });
    let (load, emit, files) = measure(&shop, runs);
    println!(
        "{:<16} {:>9} {:>9} {:>7} {:>10.2?} {:>10.2?} {files:>6}",
        "spec/shop.yaml",
        7,
        4,
        shop.lines().count(),
        load,
        emit
    );
    for services in [5, 12, 25, 50] {
        let spec = synthetic_spec(services);
        let (load, emit, files) = measure(&spec, runs);
        println!(
            "{:<16} {:>9} {services:>9} {:>7} {load:>10.2?} {emit:>10.2?} {files:>6}",
            "synthetic",
            services * 4,
            spec.lines().count(),
        );
    }
}
