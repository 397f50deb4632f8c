//! Random specs, valid by construction but for their names: CRUD entities with fields of
//! every type and constraint, references, owned children and indexes; CRUD services with
//! a random set of use cases; a cqs-es and a cqrs-es service (owned collection, `calls`,
//! `exists`, `subscribes`); a BFF exposing a random part. Names are drawn from plain words
//! and, with the given probability, from words some target reserves; such a spec may be
//! refused, but only with errors at spec positions.
//!
//! Shared by `codegen/tests/generated_specs.rs` and `xtask/tests/spec_edit.rs` (which
//! compiles the Rust of a sample).

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fmt::Write;

use heck::{ToSnakeCase, ToUpperCamelCase};

/// Words some target reserves (Rust, protobuf, GraphQL, SQL, SQLite) or the generator
/// derives names from.
pub const RESERVED: &[&str] = &[
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
    "values",
    "version",
    "page_size",
    "idempotency_key",
    "items",
    "data",
    "events",
    "outbox",
    "state",
    "states",
    "system",
    "bff",
    "index",
    "column",
    "analyze",
    "union",
    "references",
    "transaction",
    "commit",
    "exists",
    "null",
];

const PLAIN: &[&str] = &[
    "book", "copy", "loan", "title", "pages", "barcode", "price", "shelf", "catalog", "lending",
    "borrower", "branch", "rating", "author", "genre", "room", "guest", "stay", "night", "desk",
    "label", "colour", "weight", "note", "opened", "closed", "count", "amount", "place", "ticket",
];

/// The doc of a query that generated code does not serve (a cqrs-es query by more than
/// the id).
pub const HAND_WRITTEN_QUERY: &str = "Served by hand-written code.";

/// SplitMix64: small, seedable, the same specs on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// Unique snake_case names, each reserved with probability `reserved_percent`.
struct Names {
    used: BTreeSet<String>,
    reserved_percent: u64,
}

impl Names {
    fn snake(&mut self, rng: &mut Rng) -> String {
        loop {
            let base = if rng.chance(self.reserved_percent) {
                rng.pick(RESERVED)
            } else {
                rng.pick(PLAIN)
            };
            let name = if self.used.contains(base) {
                format!("{base}_{}", self.used.len())
            } else {
                base.to_string()
            };
            if self.used.insert(name.clone()) {
                return name;
            }
        }
    }

    fn pascal(&mut self, rng: &mut Rng) -> String {
        self.snake(rng).to_upper_camel_case()
    }
}

/// A field declaration of a random type with random constraints.
fn field(rng: &mut Rng) -> String {
    let optional = if rng.chance(25) {
        ", optional: true"
    } else {
        ""
    };
    match rng.below(8) {
        0 => format!(
            "{{ type: string, min_len: 1, max_len: {}{optional} }}",
            5 + rng.below(60)
        ),
        1 => format!("{{ type: text{optional} }}"),
        2 => format!("{{ type: email{optional} }}"),
        3 => format!(
            "{{ type: int, min: 0, max: {}{optional} }}",
            1 + rng.below(1000)
        ),
        4 => format!("{{ type: money, min: 0{optional} }}"),
        5 => "{ type: timestamp, readonly: true }".to_string(),
        6 => format!("{{ type: bool{optional} }}"),
        _ => format!("{{ type: string, one_of: [red, green, blue], default: red{optional} }}"),
    }
}

struct Entity {
    name: String,
    /// The abstract entity whose fields come first.
    extends: Option<String>,
    /// Lines after the fields: indexes, relations.
    extra: String,
    /// Fields that may be listed in an input or an event: (name, declaration).
    fields: Vec<(String, String)>,
    /// A non-optional field a list may order by.
    sortable: Option<String>,
}

impl Entity {
    fn id(&self) -> String {
        format!("{}_id", self.name.to_snake_case())
    }
}

fn entity(rng: &mut Rng, names: &mut Names, refs: &[String]) -> Entity {
    let mut e = Entity {
        name: names.pascal(rng),
        extends: None,
        extra: String::new(),
        fields: Vec::new(),
        sortable: None,
    };
    for _ in 0..1 + rng.below(4) {
        let mut decl = field(rng);
        if rng.chance(10) && !decl.contains("bool") && !decl.contains("readonly") {
            decl = decl.replace(" }", ", unique: true }");
        }
        let name = names.snake(rng);
        if e.sortable.is_none() && !decl.contains("optional") && !decl.contains("readonly") {
            e.sortable = Some(name.clone());
        }
        e.fields.push((name, decl));
    }
    if let Some(target) = refs.first().filter(|_| rng.chance(60)) {
        let optional = if rng.chance(50) {
            ", optional: true"
        } else {
            ""
        };
        e.fields.push((
            format!("{}_id", target.to_snake_case()),
            format!("{{ ref: {target}{optional} }}"),
        ));
    }
    e
}

fn write_entity(out: &mut String, e: &Entity) {
    let _ = writeln!(out, "  {}:", e.name);
    match &e.extends {
        Some(base) => {
            let _ = writeln!(out, "    extends: {base}\n    fields:");
        }
        None => {
            let _ = writeln!(out, "    fields:\n      id: uuid");
        }
    }
    for (name, decl) in &e.fields {
        let _ = writeln!(out, "      {name}: {decl}");
    }
    out.push_str(&e.extra);
}

/// A spec drawn from `seed`; `reserved_percent` of its names are reserved words.
pub fn spec(seed: u64, reserved_percent: u64) -> String {
    let rng = &mut Rng::new(seed);
    let names = &mut Names {
        used: BTreeSet::new(),
        reserved_percent,
    };
    let mut entities = String::new();
    let mut services = String::new();
    let (mut queries, mut mutations) = (Vec::new(), Vec::new());

    // An abstract entity the first CRUD entity may extend.
    let base = rng.chance(30).then(|| {
        let name = names.pascal(rng);
        let (email, since) = (names.snake(rng), names.snake(rng));
        let _ = writeln!(
            entities,
            "  {name}:\n    abstract: true\n    fields:\n      id: uuid\n      {email}: {{ type: email, unique: true }}\n      {since}: {{ type: timestamp, readonly: true }}"
        );
        name
    });

    // CRUD services, the first one referenced by the others and by the aggregates.
    let mut crud: Vec<(String, Entity)> = Vec::new();
    for i in 0..1 + rng.below(3) {
        let refs: Vec<String> = crud.iter().map(|(_, e)| e.name.clone()).collect();
        let mut e = entity(rng, names, &refs);
        if i == 0 {
            e.extends = base.clone();
        }
        if let Some(sortable) = e.sortable.clone().filter(|_| rng.chance(50)) {
            let _ = writeln!(e.extra, "    indexes:\n      - [{sortable} desc]");
        }
        if rng.chance(40) {
            let child = names.pascal(rng);
            let (rel, key) = (names.snake(rng), names.snake(rng));
            let order = if rng.chance(50) {
                format!(", order_by: [{key} desc]")
            } else {
                String::new()
            };
            let _ = writeln!(
                e.extra,
                "    relations:\n      {rel}: {{ to: {child}, cardinality: \"0..*\", owned: true{order} }}"
            );
            let _ = writeln!(
                entities,
                "  {child}:\n    key: [{key}]\n    fields:\n      {key}: {{ type: string, min_len: 1, max_len: 8 }}\n      {}: {}",
                names.snake(rng),
                field(rng)
            );
        }
        let svc = names.snake(rng);
        let _ = writeln!(
            services,
            "  {svc}:\n    pattern: crud\n    entity: {}\n    store: postgres\n    use_cases:",
            e.name
        );
        let list = names.pascal(rng);
        let order = e
            .sortable
            .as_ref()
            .map_or(String::new(), |s| format!(", order_by: [{s}]"));
        let filter = e
            .fields
            .iter()
            .find(|(_, d)| d.contains("ref:") || d.contains("bool"))
            .filter(|_| rng.chance(50))
            .map_or(String::new(), |(f, _)| format!(", filter: [{f}]"));
        let _ = writeln!(
            services,
            "      {list}: {{ kind: list{order}{filter}, page_size: {{ default: 10, max: 50 }} }}"
        );
        queries.push(list);
        for kind in ["get", "create", "update", "delete"] {
            if kind == "get" || kind == "create" || rng.chance(60) {
                let op = names.pascal(rng);
                let audience = if kind == "delete" && rng.chance(50) {
                    ", audience: back-office"
                } else {
                    ""
                };
                let idempotent = if kind == "create" && rng.chance(50) {
                    ", idempotent: true"
                } else {
                    ""
                };
                let _ = writeln!(
                    services,
                    "      {op}: {{ kind: {kind}{audience}{idempotent} }}"
                );
                if kind == "get" {
                    queries.push(op)
                } else {
                    mutations.push(op)
                }
            }
        }
        if rng.chance(40) {
            let (op, param) = (names.pascal(rng), names.snake(rng));
            let idempotent = if rng.chance(50) {
                "\n        idempotent: true"
            } else {
                ""
            };
            let _ = writeln!(
                services,
                "      {op}:\n        kind: custom\n        params:\n          {param}: {{ type: int, min: 1, max: 90 }}\n        input: [{}, {param}]\n        output: {}{idempotent}",
                e.id(),
                e.name
            );
            mutations.push(op);
        }
        crud.push((svc, e));
    }
    // The first entity's relations to the entities that refer to it.
    let first = crud[0].1.name.clone();
    let referring: Vec<String> = crud[1..]
        .iter()
        .filter(|(_, e)| {
            e.fields
                .iter()
                .any(|(_, d)| d.contains(&format!("ref: {first}")))
        })
        .map(|(_, e)| e.name.clone())
        .collect();
    for target in &referring {
        if !rng.chance(60) {
            continue;
        }
        let rel = names.snake(rng);
        let head = if crud[0].1.extra.contains("    relations:\n") {
            ""
        } else {
            "    relations:\n"
        };
        let cardinality = if rng.chance(30) {
            "\"0..1\", on_delete: cascade"
        } else {
            "\"0..*\""
        };
        let _ = writeln!(
            crud[0].1.extra,
            "{head}      {rel}: {{ to: {target}, cardinality: {cardinality} }}"
        );
    }
    for (_, e) in &crud {
        write_entity(&mut entities, e);
    }

    // A cqs-es service whose events another service may subscribe to; maybe the
    // identity of `auth:` (its open command registers with an email, its close forgets).
    let mut subscribable = None;
    let mut identity = None;
    let mut exposed_view = None;
    if rng.chance(70) {
        let refs: Vec<String> = crud.iter().map(|(_, e)| e.name.clone()).collect();
        let mut agg = entity(rng, names, &refs);
        let with_auth = rng.chance(50);
        if with_auth {
            agg.fields
                .push((names.snake(rng), "{ type: email, max_len: 200 }".into()));
        }
        write_entity(&mut entities, &agg);
        let svc = names.snake(rng);
        let (open, close, opened, closed, view) = (
            names.pascal(rng),
            names.pascal(rng),
            names.pascal(rng),
            names.pascal(rng),
            names.pascal(rng),
        );
        let fields: Vec<&str> = agg
            .fields
            .iter()
            .filter(|(_, d)| !d.contains("readonly"))
            .map(|(f, _)| f.as_str())
            .collect();
        let payload = fields.join(", ");
        let _ = writeln!(
            services,
            "  {svc}:\n    pattern: cqs-es\n    aggregate: {a}\n    store: postgres\n    messaging: {{ broker: kafka, topic: {svc}.events }}\n    commands:\n      {open}: {{ input: [{payload}], emits: [{opened}]{public} }}\n      {close}: {{ input: [{id}, {reason}], params: {{ {reason}: {{ type: string, max_len: 40, optional: true }} }}, emits: [{closed}]{idem} }}\n    events:\n      {opened}: [{payload}]\n      {closed}: []\n    queries:\n      {view}: {{ input: [{id}], output: {a} }}",
            a = agg.name,
            id = agg.id(),
            public = if with_auth { ", audience: public" } else { "" },
            reason = names.snake(rng),
            idem = if rng.chance(50) {
                ", idempotent: true"
            } else {
                ""
            },
        );
        if with_auth {
            identity = Some((svc.clone(), agg.name.clone(), open.clone(), close.clone()));
        }
        queries.push(view);
        mutations.extend([open, close.clone()]);
        subscribable = Some(format!("{svc}.{closed}"));
    }

    // A cqrs-es service owning a collection keyed by a reference to the first CRUD entity.
    if rng.chance(70) {
        let (target_svc, target) = &crud[0];
        let mut agg = entity(rng, names, &[]);
        let line = names.pascal(rng);
        let rel = names.snake(rng);
        let qty = names.snake(rng);
        agg.extra = format!(
            "    relations:\n      {rel}: {{ to: {line}, cardinality: \"0..*\", owned: true }}\n"
        );
        // Owned by the identity's subject, who claims an unowned one.
        let owner = identity
            .as_ref()
            .filter(|_| rng.chance(70))
            .map(|(_, subject, _, _)| {
                let field = names.snake(rng);
                agg.fields.push((
                    field.clone(),
                    format!("{{ ref: {subject}, optional: true }}"),
                ));
                let _ = writeln!(agg.extra, "    owned_by: {field}");
                (field, names.pascal(rng), names.pascal(rng))
            });
        write_entity(&mut entities, &agg);
        let item = target.id();
        let _ = writeln!(
            entities,
            "  {line}:\n    key: [{item}]\n    fields:\n      {item}: {{ ref: {} }}\n      {qty}: {{ type: int, min: 1, max: 9 }}",
            target.name
        );
        let svc = names.snake(rng);
        let id = agg.id();
        let (add, clear, drop, added, cleared, dropped, view) = (
            names.pascal(rng),
            names.pascal(rng),
            names.pascal(rng),
            names.pascal(rng),
            names.pascal(rng),
            names.pascal(rng),
            names.pascal(rng),
        );
        let exists = if rng.chance(50) {
            format!(", exists: [{item}]")
        } else {
            String::new()
        };
        let consistency = if rng.chance(30) {
            ", consistency: strong"
        } else {
            ""
        };
        let (claim, claim_command, claim_event) =
            owner.as_ref().map_or(Default::default(), |(field, claim, claimed)| {
                (
                    format!("    claim: {claim}\n"),
                    format!("      {claim}: {{ input: [{id}, {field}], emits: [{claimed}], audience: internal }}\n"),
                    format!("      {claimed}: [{field}]\n"),
                )
            });
        let _ = writeln!(
            services,
            "  {svc}:\n    pattern: cqrs-es\n    aggregate: {a}\n    event_store: mongodb\n    read_model: postgres\n    messaging: {{ broker: kafka, topic: {svc}.events }}\n    calls: [{target_svc}]\n{claim}    commands:\n      {add}: {{ input: [{id}, {item}, {qty}], emits: [{added}]{exists} }}\n      {clear}: {{ input: [{id}], emits: [{cleared}] }}\n      {drop}: {{ input: [{id}], emits: [{dropped}], audience: internal }}\n{claim_command}    events:\n      {added}: [{item}, {qty}]\n      {cleared}: []\n      {dropped}: []\n{claim_event}    queries:\n      {view}: {{ input: [{id}], output: {a}{consistency} }}",
            a = agg.name,
        );
        // A query of another form than by id: served by hand-written code.
        if rng.chance(30) {
            let (find, min) = (names.pascal(rng), names.snake(rng));
            let _ = writeln!(
                services,
                "      {find}:\n        doc: {HAND_WRITTEN_QUERY}\n        params:\n          {min}: {{ type: int, min: 0 }}\n        input: [{id}, {min}]\n        output: {a}",
                a = agg.name
            );
            queries.push(find);
        }
        if let Some(event) = &subscribable {
            let _ = writeln!(services, "    subscribes:\n      {event}: {drop}");
        }
        if owner.is_some() {
            // The BFF checks whose an instance is through its exposed get.
            exposed_view = Some(view);
        } else {
            queries.push(view);
        }
        mutations.extend([add, clear]);
    }

    let keep = |rng: &mut Rng, ops: Vec<String>| -> Vec<String> {
        let kept: Vec<String> = ops.iter().filter(|_| rng.chance(80)).cloned().collect();
        if kept.is_empty() {
            ops.into_iter().take(1).collect()
        } else {
            kept
        }
    };
    let (mut queries, mutations) = (keep(rng, queries), keep(rng, mutations));
    queries.extend(exposed_view);
    let auth = identity.map_or(String::new(), |(svc, _, register, forget)| {
        format!("auth:\n  identity: {svc}\n  register: {register}\n  forget: {forget}\n\n")
    });
    format!(
        "system: {}\nmoney: {{ currency: EUR, minor_units: 2 }}\n\nentities:\n{entities}\nservices:\n{services}\n{auth}bff:\n  graphql:\n    queries: [{}]\n    mutations: [{}]\n",
        names.snake(rng),
        queries.join(", "),
        mutations.join(", ")
    )
}
