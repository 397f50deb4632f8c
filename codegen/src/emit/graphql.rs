//! The BFF's GraphQL schema (SDL): `graphql/schema.graphql`.
//!
//! Shapes, decided once here so the BFF and its clients can rely on them:
//! - One object type per entity the exposed operations return, plus the entities those
//!   own. Abstract entities get no type: IR fields are flattened into their subtypes.
//! - Scalars: `ID` (uuid, ref), `String`, `Int`, `Boolean`, and two custom ones:
//!   `DateTime` (RFC 3339, UTC) and `Money` (integer minor units, 64-bit).
//! - A ref field `x_id` whose target some exposed query fetches by that id alone (a get,
//!   or an ES query whose single input is that ref) also gets `x: Target` (nullable: the
//!   target may be gone). A non-owned relation becomes a field when an exposed list
//!   filters the target by its foreign key (`orders(first, after): OrderConnection!`) or
//!   an exposed query fetches it by that key alone; otherwise a `#` comment in the type
//!   says why it is missing. Owned relations are lists (`items: [CartItem!]!`).
//! - Lists take `first: Int` and `after: String` and return `<Entity>Connection`; gets and
//!   ES queries return the nullable entity.
//! - Event-sourced aggregates carry `version: Int!`, the version of the state returned;
//!   commands take it back as `expectedVersion`.
//! - Every mutation takes one `input: <Op>Input!` and returns the entity (create, update,
//!   custom), `DeletePayload` (delete) or `<Op>Payload { <aggregate>Id, version }`.
//! - Versions are `Int`: they are int64 in proto, but one aggregate never gets near
//!   2^31 - 1 events, and JavaScript clients read an `Int` exactly; the BFF reports an
//!   error instead of wrapping if one ever did. Money needs 64 bits, hence its scalar.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::emit::{EmitError, GeneratedFile, header, render};
use crate::ir::{
    BffOperation, Entity, Field, FieldType, Operation, OperationKind, Relation, Service, System,
};
use crate::names;

const TEMPLATE: &str = include_str!("../../../templates/graphql/schema.graphql.tera");

/// `graphql/schema.graphql`, or nothing when the BFF exposes no operation.
pub fn emit(system: &System) -> Result<Vec<GeneratedFile>, EmitError> {
    if system.bff.queries.is_empty() && system.bff.mutations.is_empty() {
        return Ok(Vec::new());
    }
    let schema = Builder::new(system)?.build()?;
    let ctx = tera::Context::from_serialize(&schema)
        .map_err(|e| EmitError::Other(format!("graphql context: {e}")))?;
    let contents = render("graphql/schema.graphql.tera", TEMPLATE, &ctx)?;
    let contents = format!("{}\n", contents.trim_end());
    Ok(vec![GeneratedFile {
        path: "graphql/schema.graphql".into(),
        contents,
    }])
}

#[derive(Serialize)]
struct SchemaView {
    header: String,
    notes: Vec<String>,
    types: Vec<TypeView>,
}

#[derive(Serialize, Clone)]
struct TypeView {
    /// `scalar`, `type` or `input`.
    kind: &'static str,
    name: String,
    /// The rendered description (with its trailing newline), or empty.
    desc: String,
    /// `# ...` lines at the top of the body.
    comments: Vec<String>,
    fields: Vec<FieldView>,
}

#[derive(Serialize, Clone)]
struct FieldView {
    desc: String,
    name: String,
    args: Vec<ArgView>,
    /// Arguments on the field's line (none has a description) or one per line.
    args_inline: bool,
    ty: String,
}

impl FieldView {
    fn new(desc: String, name: String, args: Vec<ArgView>, ty: String) -> FieldView {
        let args_inline = args.iter().all(|a| a.desc.is_empty());
        FieldView {
            desc,
            name,
            args,
            args_inline,
            ty,
        }
    }
}

#[derive(Serialize, Clone)]
struct ArgView {
    desc: String,
    name: String,
    ty: String,
}

#[derive(Clone, Copy)]
struct Exposed<'a> {
    bff: &'a BffOperation,
    svc: &'a Service,
    op: &'a Operation,
}

struct Builder<'a> {
    sys: &'a System,
    queries: Vec<Exposed<'a>>,
    mutations: Vec<Exposed<'a>>,
    /// Entities with an object type, in spec order.
    entities: Vec<&'a Entity>,
    /// Entities that need a `<Entity>Connection`.
    connections: Vec<String>,
    /// Entities that need a `<Entity>Input` (owned children of create/update inputs).
    child_inputs: Vec<String>,
    payloads: Vec<TypeView>,
    inputs: Vec<TypeView>,
    delete_payload: bool,
}

impl<'a> Builder<'a> {
    fn new(sys: &'a System) -> Result<Builder<'a>, EmitError> {
        let expose = |ops: &'a [BffOperation]| -> Result<Vec<Exposed<'a>>, EmitError> {
            ops.iter()
                .map(|b| {
                    let svc = sys.services.iter().find(|s| s.name == b.service);
                    let op = svc.and_then(|s| s.operation(&b.operation));
                    match (svc, op) {
                        (Some(svc), Some(op)) => Ok(Exposed { bff: b, svc, op }),
                        _ => Err(EmitError::Other(format!(
                            "bff exposes unknown operation `{}` of service `{}`",
                            b.operation, b.service
                        ))),
                    }
                })
                .collect()
        };
        let queries = expose(&sys.bff.queries)?;
        let mutations = expose(&sys.bff.mutations)?;
        // Entities returned by an exposed operation, and what they own.
        let mut wanted: Vec<String> = Vec::new();
        for e in queries.iter().chain(&mutations) {
            if let Some(out) = &e.op.output
                && !wanted.contains(out)
            {
                wanted.push(out.clone());
            }
        }
        let mut i = 0;
        while i < wanted.len() {
            if let Some(e) = sys.entities.iter().find(|e| e.name == wanted[i]) {
                for r in e.relations.iter().filter(|r| r.owned) {
                    if !wanted.contains(&r.target) {
                        wanted.push(r.target.clone());
                    }
                }
            }
            i += 1;
        }
        let entities = sys
            .entities
            .iter()
            .filter(|e| wanted.contains(&e.name))
            .collect();
        Ok(Builder {
            sys,
            queries,
            mutations,
            entities,
            connections: Vec::new(),
            child_inputs: Vec::new(),
            payloads: Vec::new(),
            inputs: Vec::new(),
            delete_payload: false,
        })
    }

    fn entity(&self, name: &str) -> Result<&'a Entity, EmitError> {
        self.sys
            .entities
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| EmitError::Other(format!("unknown entity `{name}`")))
    }

    fn has_type(&self, entity: &str) -> bool {
        self.entities.iter().any(|e| e.name == entity)
    }

    fn build(mut self) -> Result<SchemaView, EmitError> {
        let query = self.query_type()?;
        let mutation = self.mutation_type()?;
        let mut objects = Vec::new();
        for e in self.entities.clone() {
            objects.push(self.object_type(e)?);
        }

        let mut types = vec![self.date_time(), self.money()];
        types.push(query);
        types.extend(mutation);
        types.extend(objects);
        let order = |name: &String| self.sys.entities.iter().position(|e| &e.name == name);
        let mut connections = self.connections.clone();
        connections.sort_by_key(order);
        for c in &connections {
            types.push(TypeView {
                kind: "type",
                name: format!("{c}Connection"),
                desc: description(&format!("One page of {c} items."), ""),
                comments: Vec::new(),
                fields: vec![
                    field(
                        "nodes",
                        &format!("[{c}!]!"),
                        "The items of this page, in the list's order.",
                    ),
                    field(
                        "pageInfo",
                        "PageInfo!",
                        "Where this page ends and whether another follows.",
                    ),
                ],
            });
        }
        if !connections.is_empty() {
            types.push(TypeView {
                kind: "type",
                name: "PageInfo".into(),
                desc: description(
                    "Cursor pagination: pass `endCursor` as `after` to get the next page.",
                    "",
                ),
                comments: Vec::new(),
                fields: vec![
                    field(
                        "endCursor",
                        "String",
                        "The cursor after the last item of this page; null when the page is empty.",
                    ),
                    field("hasNextPage", "Boolean!", "Whether a next page exists."),
                ],
            });
        }
        if self.delete_payload {
            types.push(TypeView {
                kind: "type",
                name: "DeletePayload".into(),
                desc: description("What a delete returns.", ""),
                comments: Vec::new(),
                fields: vec![field("id", "ID!", "The id of the deleted item.")],
            });
        }
        types.append(&mut self.payloads);
        types.append(&mut self.inputs);
        let mut children = self.child_inputs.clone();
        children.sort_by_key(order);
        for c in &children {
            let e = self.entity(c)?;
            types.push(self.child_input(e)?);
        }

        let mut seen: BTreeSet<&str> = BTreeSet::new();
        for t in &types {
            if !seen.insert(&t.name) {
                return Err(EmitError::Other(format!(
                    "two GraphQL types would be called `{}`: rename the operation or entity",
                    t.name
                )));
            }
        }
        let c = &self.sys.money;
        Ok(SchemaView {
            header: header("#"),
            notes: vec![
                format!(
                    "# The GraphQL API of the `{}` BFF. Money is integer minor units of {}; times are UTC.",
                    self.sys.name, c.currency
                ),
                "# Versions (`version`, `expectedVersion`) are Int although int64 in proto: one aggregate".into(),
                "# never gets near 2^31 - 1 events, and Int stays exact in JavaScript clients.".into(),
            ],
            types,
        })
    }

    // ------------------------------------------------------------------ scalars

    fn date_time(&self) -> TypeView {
        scalar(
            "DateTime",
            "An instant in UTC as an RFC 3339 string with a `Z` offset, e.g. `2024-05-01T09:30:00Z`.",
        )
    }

    fn money(&self) -> TypeView {
        let m = &self.sys.money;
        let (example, shown) = if m.minor_units == 0 {
            ("1500".to_string(), format!("1500 {}", m.currency))
        } else {
            let units = 10u64.pow(u32::from(m.minor_units));
            (
                format!("{}", 15 * units + units / 2),
                format!(
                    "15.{:0>w$} {}",
                    units / 2,
                    m.currency,
                    w = usize::from(m.minor_units)
                ),
            )
        };
        scalar(
            "Money",
            &format!(
                "An amount of money in {cur}, as an integer number of minor units ({cur} has {mu}: \
                 `{example}` is {shown}). 64-bit; serialized as a JSON integer. Never a float.",
                cur = m.currency,
                mu = m.minor_units,
            ),
        )
    }

    // ------------------------------------------------------------------ Query

    fn query_type(&mut self) -> Result<TypeView, EmitError> {
        let mut fields = Vec::new();
        for e in self.queries.clone() {
            let out = e.op.output.clone().ok_or_else(|| {
                EmitError::Other(format!("query `{}` returns nothing", e.op.name))
            })?;
            let (args, ty) = match e.op.kind {
                OperationKind::List => {
                    let entity = self.entity(&out)?;
                    let mut args = Vec::new();
                    for name in &e.op.filter {
                        let f = entity.field(name).ok_or_else(|| {
                            EmitError::Other(format!(
                                "`{}` filters on unknown field `{name}`",
                                e.op.name
                            ))
                        })?;
                        args.push(ArgView {
                            desc: description(
                                &format!("Only items whose `{}` is this.", names::camel(name)),
                                "    ",
                            ),
                            name: names::camel(name),
                            ty: scalar_of(&f.ty).to_string(),
                        });
                    }
                    args.extend(page_args(e.op));
                    self.connection(&out);
                    (args, format!("{out}Connection!"))
                }
                OperationKind::Get => (
                    vec![ArgView {
                        desc: String::new(),
                        name: "id".into(),
                        ty: "ID!".into(),
                    }],
                    out.clone(),
                ),
                _ => (
                    e.op.input.iter().map(|f| arg(f, "    ")).collect(),
                    out.clone(),
                ),
            };
            let mut doc = op_doc(e);
            if matches!(e.op.kind, OperationKind::Get | OperationKind::Query) {
                doc.push_str(&format!("\n\nNull when there is no such {out}."));
            }
            fields.push(FieldView::new(
                description(&doc, "  "),
                e.bff.field.clone(),
                args,
                ty,
            ));
        }
        if fields.is_empty() {
            // GraphQL needs a Query type with a field even when only mutations exist.
            fields.push(field(
                "ok",
                "Boolean!",
                "Always true: the spec exposes no query yet.",
            ));
        }
        Ok(TypeView {
            kind: "type",
            name: "Query".into(),
            desc: description("What clients can read.", ""),
            comments: Vec::new(),
            fields,
        })
    }

    // ------------------------------------------------------------------ Mutation

    fn mutation_type(&mut self) -> Result<Option<TypeView>, EmitError> {
        if self.mutations.is_empty() {
            return Ok(None);
        }
        let mut fields = Vec::new();
        for e in self.mutations.clone() {
            let op = e.op;
            let input_name = format!("{}Input", op.name);
            let mut input: Vec<FieldView> = Vec::new();
            let ty = match op.kind {
                OperationKind::Create | OperationKind::Update => {
                    let entity = self.entity(&e.svc.entity)?;
                    if op.kind == OperationKind::Update {
                        input.push(field(
                            "id",
                            "ID!",
                            &format!("The {} to change.", entity.name),
                        ));
                    }
                    input.extend(self.writable_fields(entity, &|f| f.name != "id")?);
                    format!("{}!", op.output.as_deref().unwrap_or(&entity.name))
                }
                OperationKind::Delete => {
                    self.delete_payload = true;
                    input.push(field(
                        "id",
                        "ID!",
                        &format!("The {} to delete.", e.svc.entity),
                    ));
                    "DeletePayload!".into()
                }
                OperationKind::Custom => {
                    input.extend(op.input.iter().map(|f| field_of(f, "  ")));
                    match &op.output {
                        Some(out) => format!("{out}!"),
                        None => "Boolean!".into(),
                    }
                }
                OperationKind::Command => {
                    input.extend(op.input.iter().map(|f| field_of(f, "  ")));
                    input.push(field(
                        "expectedVersion",
                        "Int",
                        &format!(
                            "Fail with a conflict unless the {} is at this version (0: it does not exist yet). \
                             Omit to apply to whatever version is current.",
                            e.svc.entity
                        ),
                    ));
                    let payload = format!("{}Payload", op.name);
                    let id = names::camel(&format!("{}_id", names::snake(&e.svc.entity)));
                    self.payloads.push(TypeView {
                        kind: "type",
                        name: payload.clone(),
                        desc: description(&format!("What `{}` returns.", e.bff.field), ""),
                        comments: Vec::new(),
                        fields: vec![
                            field(
                                &id,
                                "ID!",
                                &format!("The {} the command applied to.", e.svc.entity),
                            ),
                            field(
                                "version",
                                "Int!",
                                &format!("The {}'s version after this command.", e.svc.entity),
                            ),
                        ],
                    });
                    format!("{payload}!")
                }
                OperationKind::List | OperationKind::Get | OperationKind::Query => {
                    return Err(EmitError::Other(format!(
                        "`{}` reads: it cannot be a mutation",
                        op.name
                    )));
                }
            };
            let args = if input.is_empty() {
                // An input object needs a field: an operation without input takes no argument.
                Vec::new()
            } else {
                self.inputs.push(TypeView {
                    kind: "input",
                    name: input_name.clone(),
                    desc: description(&format!("The input of `{}`.", e.bff.field), ""),
                    comments: Vec::new(),
                    fields: input,
                });
                vec![ArgView {
                    desc: String::new(),
                    name: "input".into(),
                    ty: format!("{input_name}!"),
                }]
            };
            fields.push(FieldView::new(
                description(&op_doc(e), "  "),
                e.bff.field.clone(),
                args,
                ty,
            ));
        }
        Ok(Some(TypeView {
            kind: "type",
            name: "Mutation".into(),
            desc: description("What clients can change.", ""),
            comments: Vec::new(),
            fields,
        }))
    }

    /// The input fields of an entity that a client may set, owned children as inputs.
    fn writable_fields(
        &mut self,
        e: &Entity,
        keep: &dyn Fn(&Field) -> bool,
    ) -> Result<Vec<FieldView>, EmitError> {
        let mut out: Vec<FieldView> = e
            .fields
            .iter()
            .filter(|f| !f.readonly && keep(f))
            .map(|f| field_of(f, "  "))
            .collect();
        for r in e.relations.iter().filter(|r| r.owned) {
            let target = self.entity(&r.target)?;
            if !self.child_inputs.contains(&target.name) {
                self.child_inputs.push(target.name.clone());
                // Its own children too.
                self.writable_fields(target, &|_| true)?;
            }
            out.push(FieldView::new(
                description(&relation_input_doc(r), "  "),
                names::camel(&r.name),
                Vec::new(),
                owned_type(r, &format!("{}Input", r.target)),
            ));
        }
        Ok(out)
    }

    fn child_input(&mut self, e: &Entity) -> Result<TypeView, EmitError> {
        let fields = self.writable_fields(e, &|_| true)?;
        Ok(TypeView {
            kind: "input",
            name: format!("{}Input", e.name),
            desc: description(e.doc.as_deref().unwrap_or(&e.name), ""),
            comments: Vec::new(),
            fields,
        })
    }

    // ------------------------------------------------------------------ objects

    fn object_type(&mut self, e: &'a Entity) -> Result<TypeView, EmitError> {
        let mut fields: Vec<FieldView> = Vec::new();
        let mut comments = Vec::new();
        let taken = |fields: &[FieldView], name: &str| {
            fields.iter().any(|f| f.name == name)
                || e.fields.iter().any(|f| names::camel(&f.name) == name)
        };
        for f in &e.fields {
            fields.push(field_of(f, "  "));
            let FieldType::Ref(target) = &f.ty else {
                continue;
            };
            let Some(base) = f.name.strip_suffix("_id") else {
                continue;
            };
            let Some((getter, arg)) = self.getter(target) else {
                continue;
            };
            let name = names::camel(base);
            if taken(&fields, &name) || e.relations.iter().any(|r| names::camel(&r.name) == name) {
                continue;
            }
            fields.push(FieldView::new(
                description(
                    &format!(
                        "The {target} that `{}` names, resolved with `{}({}: {})`; null when it no longer exists.",
                        names::camel(&f.name),
                        getter.bff.field,
                        arg,
                        names::camel(&f.name),
                    ),
                    "  ",
                ),
                name,
                Vec::new(),
                target.clone(),
            ));
        }
        if self.is_aggregate(&e.name) {
            fields.push(field(
                "version",
                "Int!",
                &format!(
                    "The version of this {} state (the number of its events applied); pass it as \
                     `expectedVersion` so that a command fails instead of overwriting a change made since.",
                    e.name
                ),
            ));
        }
        for r in &e.relations {
            let name = names::camel(&r.name);
            if taken(&fields, &name) {
                comments.push(format!(
                    "# `{name}` is not exposed: a field of that name exists."
                ));
                continue;
            }
            if r.owned {
                fields.push(FieldView::new(
                    description(&relation_doc(r), "  "),
                    name,
                    Vec::new(),
                    owned_type(r, &r.target),
                ));
                continue;
            }
            match self.relation_field(e, r)? {
                Ok(f) => fields.push(f),
                Err(why) => comments.push(format!(
                    "# `{name}` ({} {}) is not exposed: {why}",
                    r.cardinality, r.target
                )),
            }
        }
        Ok(TypeView {
            kind: "type",
            name: e.name.clone(),
            desc: e
                .doc
                .as_deref()
                .map(|d| description(d, ""))
                .unwrap_or_default(),
            comments,
            fields,
        })
    }

    /// A non-owned relation as a field, or why it cannot be one.
    fn relation_field(
        &mut self,
        e: &Entity,
        r: &Relation,
    ) -> Result<Result<FieldView, String>, EmitError> {
        let target = self.entity(&r.target)?;
        let mut refs_me = vec![e.name.clone()];
        let mut base = e.extends.clone();
        while let Some(b) = base {
            base = self.entity(&b)?.extends.clone();
            refs_me.push(b);
        }
        let Some(fk) = target
            .fields
            .iter()
            .find(|f| matches!(&f.ty, FieldType::Ref(t) if refs_me.contains(t)))
        else {
            return Ok(Err(format!(
                "{} has no field that refers to {}.",
                target.name, e.name
            )));
        };
        let name = names::camel(&r.name);
        let fk_arg = names::camel(&fk.name);
        if r.cardinality.is_many() {
            let lister = self.queries.iter().copied().find(|q| {
                q.op.kind == OperationKind::List
                    && q.op.output.as_deref() == Some(&target.name)
                    && q.op.filter.contains(&fk.name)
            });
            let Some(q) = lister else {
                return Ok(Err(format!(
                    "no exposed list of {} filters by `{}`.",
                    target.name, fk.name
                )));
            };
            let mut args = Vec::new();
            for other in q.op.filter.iter().filter(|f| **f != fk.name) {
                let f = target.field(other).ok_or_else(|| {
                    EmitError::Other(format!(
                        "`{}` filters on unknown field `{other}`",
                        q.op.name
                    ))
                })?;
                args.push(ArgView {
                    desc: description(
                        &format!("Only items whose `{}` is this.", names::camel(other)),
                        "    ",
                    ),
                    name: names::camel(other),
                    ty: scalar_of(&f.ty).to_string(),
                });
            }
            args.extend(page_args(q.op));
            self.connection(&target.name);
            Ok(Ok(FieldView::new(
                description(
                    &format!(
                        "Its {} ({} {}), resolved with `{}({fk_arg}: <this id>)`.",
                        r.name, r.cardinality, target.name, q.bff.field
                    ),
                    "  ",
                ),
                name,
                args,
                format!("{}Connection!", target.name),
            )))
        } else {
            let single = self.queries.iter().copied().find(|q| {
                q.op.kind == OperationKind::Query
                    && q.op.output.as_deref() == Some(&target.name)
                    && q.op.input.len() == 1
                    && q.op.input[0].name == fk.name
            });
            let Some(q) = single else {
                return Ok(Err(format!(
                    "no exposed query fetches a {} by `{}` alone.",
                    target.name, fk.name
                )));
            };
            Ok(Ok(FieldView::new(
                description(
                    &format!(
                        "Its {} ({} {}), resolved with `{}({fk_arg}: <this id>)`; null when there is none.",
                        r.name, r.cardinality, target.name, q.bff.field
                    ),
                    "  ",
                ),
                name,
                Vec::new(),
                target.name.clone(),
            )))
        }
    }

    /// An exposed query that fetches `target` by its id alone, and that argument's name.
    fn getter(&self, target: &str) -> Option<(Exposed<'a>, String)> {
        if !self.has_type(target) {
            return None;
        }
        self.queries.iter().find_map(|q| {
            if q.op.output.as_deref() != Some(target) {
                return None;
            }
            match q.op.kind {
                OperationKind::Get => Some((*q, "id".to_string())),
                OperationKind::Query
                    if q.op.input.len() == 1
                        && q.op.input[0].ty == FieldType::Ref(target.to_string()) =>
                {
                    Some((*q, names::camel(&q.op.input[0].name)))
                }
                _ => None,
            }
        })
    }

    fn is_aggregate(&self, entity: &str) -> bool {
        self.sys
            .services
            .iter()
            .any(|s| s.is_event_sourced() && s.entity == entity)
    }

    fn connection(&mut self, entity: &str) {
        if !self.connections.iter().any(|c| c == entity) {
            self.connections.push(entity.to_string());
        }
    }
}

fn op_doc(e: Exposed) -> String {
    let rpc = format!(
        "{}.{}/{}",
        e.svc.proto.package, e.op.rpc.service, e.op.rpc.method
    );
    match &e.op.doc {
        Some(d) => format!("{}\n\ngRPC: `{rpc}`.", d.trim()),
        None => format!("gRPC: `{rpc}`."),
    }
}

fn page_args(op: &Operation) -> Vec<ArgView> {
    let size = match op.page_size {
        Some(p) => format!(
            "At most this many items; {} when omitted, at most {}.",
            p.default, p.max
        ),
        None => "At most this many items.".into(),
    };
    vec![
        ArgView {
            desc: description(&size, "    "),
            name: "first".into(),
            ty: "Int".into(),
        },
        ArgView {
            desc: description(
                "The `endCursor` of the previous page; omit for the first page.",
                "    ",
            ),
            name: "after".into(),
            ty: "String".into(),
        },
    ]
}

fn relation_doc(r: &Relation) -> String {
    format!(
        "Its {} ({} {}), deleted with it.",
        r.name, r.cardinality, r.target
    )
}

fn relation_input_doc(r: &Relation) -> String {
    format!(
        "All of its {} ({} {}): what is given replaces what was stored.",
        r.name, r.cardinality, r.target
    )
}

fn owned_type(r: &Relation, item: &str) -> String {
    if r.cardinality.is_many() {
        format!("[{item}!]!")
    } else if r.cardinality.min >= 1 {
        format!("{item}!")
    } else {
        item.to_string()
    }
}

fn scalar_of(ty: &FieldType) -> &'static str {
    match ty {
        FieldType::Uuid | FieldType::Ref(_) => "ID",
        FieldType::String | FieldType::Text | FieldType::Email => "String",
        FieldType::Int => "Int",
        FieldType::Money => "Money",
        FieldType::Timestamp => "DateTime",
        FieldType::Bool => "Boolean",
    }
}

fn type_of(f: &Field) -> String {
    let s = scalar_of(&f.ty);
    if f.optional {
        s.to_string()
    } else {
        format!("{s}!")
    }
}

/// The spec's doc of a field, followed by what its constraints allow.
fn field_doc(f: &Field) -> String {
    let c = &f.constraints;
    let note = if f.ty.is_stringy() {
        let what = if f.ty == FieldType::Email {
            "An email address of "
        } else {
            ""
        };
        match (c.min_len, c.max_len) {
            (Some(lo), Some(hi)) => format!("{what}{lo} to {hi} characters."),
            (Some(lo), None) => format!("{what}at least {lo} characters."),
            (None, Some(hi)) => format!("{what}at most {hi} characters."),
            (None, None) if f.ty == FieldType::Email => "An email address.".into(),
            (None, None) => String::new(),
        }
    } else {
        match (c.min, c.max) {
            (Some(lo), Some(hi)) => format!("From {lo} to {hi}."),
            (Some(lo), None) => format!("At least {lo}."),
            (None, Some(hi)) => format!("At most {hi}."),
            (None, None) => String::new(),
        }
    };
    let note = if c.one_of.is_empty() {
        note
    } else {
        let values: Vec<String> = c.one_of.iter().map(|v| format!("`{v}`")).collect();
        format!("{note} One of {}.", values.join(", "))
            .trim_start()
            .to_string()
    };
    let note = match note.char_indices().next() {
        Some((_, c)) if c.is_lowercase() => {
            format!("{}{}", c.to_uppercase(), &note[c.len_utf8()..])
        }
        _ => note,
    };
    match f.doc.as_deref().map(str::trim) {
        Some(d) if !note.is_empty() && d.contains('\n') => format!("{d}\n\n{note}"),
        Some(d) if !note.is_empty() => format!("{d} {note}"),
        Some(d) => d.to_string(),
        None => note,
    }
}

fn field_of(f: &Field, indent: &str) -> FieldView {
    FieldView::new(
        description(&field_doc(f), indent),
        names::camel(&f.name),
        Vec::new(),
        type_of(f),
    )
}

fn arg(f: &Field, indent: &str) -> ArgView {
    let v = field_of(f, indent);
    ArgView {
        desc: v.desc,
        name: v.name,
        ty: v.ty,
    }
}

fn field(name: &str, ty: &str, doc: &str) -> FieldView {
    FieldView::new(description(doc, "  "), name.into(), Vec::new(), ty.into())
}

fn scalar(name: &str, doc: &str) -> TypeView {
    TypeView {
        kind: "scalar",
        name: name.into(),
        desc: description(doc, ""),
        comments: Vec::new(),
        fields: Vec::new(),
    }
}

/// A GraphQL description: `"one line"` or a `"""` block, indented, with a newline.
fn description(doc: &str, indent: &str) -> String {
    let doc = doc.trim();
    if doc.is_empty() {
        return String::new();
    }
    if !doc.contains('\n') {
        let escaped = doc.replace('\\', "\\\\").replace('"', "\\\"");
        return format!("{indent}\"{escaped}\"\n");
    }
    let mut out = format!("{indent}\"\"\"\n");
    for line in doc.lines() {
        let line = line.trim_end().replace("\"\"\"", "\\\"\"\"");
        if line.is_empty() {
            out.push('\n');
        } else {
            out.push_str(&format!("{indent}{line}\n"));
        }
    }
    out.push_str(&format!("{indent}\"\"\"\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::description;

    #[test]
    fn descriptions() {
        assert_eq!(description("", "  "), "");
        assert_eq!(description("say \"hi\"", "  "), "  \"say \\\"hi\\\"\"\n");
        assert_eq!(
            description("a\n\nb \"\"\"", ""),
            "\"\"\"\na\n\nb \\\"\"\"\n\"\"\"\n"
        );
    }
}
