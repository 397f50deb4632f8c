//! The BFF's GraphQL API, decided once: which entities get object types, connections,
//! payloads and inputs, which relation fields exist and which call resolves each, and
//! how arguments fill each proto request. `emit::graphql` renders the SDL from it and
//! `emit::bff` the resolvers, so the two cannot disagree.
//!
//! - One object type per entity the exposed operations return, plus the entities those
//!   own. Abstract entities get no type: IR fields are flattened into their subtypes.
//! - Scalars: `ID` (uuid, ref), `String`, `Int`, `Boolean`, and two custom ones:
//!   `DateTime` (RFC 3339, UTC) and `Money` (integer minor units, 64-bit).
//! - A ref field `x_id` whose target some exposed query fetches by that id alone (a get,
//!   or an ES query whose single input is that ref) also gets `x: Target` (nullable: the
//!   target may be gone), resolved through that target's lookup. A non-owned relation
//!   becomes a field when an exposed list filters the target by its foreign key
//!   (`orders(first, after): OrderConnection!`) or an exposed query fetches it by that
//!   key alone; otherwise a note in the type says why it is missing. Owned relations are
//!   lists (`items: [CartItem!]!`).
//! - Lists take `first: Int` and `after: String` and return `<Entity>Connection`; gets and
//!   ES queries return the nullable entity.
//! - Event-sourced aggregates carry `version: Int!`, the version of the state returned;
//!   commands take it back as `expectedVersion`.
//! - Every mutation takes one `input: <Op>Input!` and returns the entity (create, update,
//!   custom), `DeletePayload` (delete) or `<Op>Payload { <aggregate>Id, version }`.
//! - Versions are `Int`: they are int64 in proto, but one aggregate never gets near
//!   2^31 - 1 events, and JavaScript clients read an `Int` exactly; the BFF reports an
//!   error instead of wrapping if one ever did. Money needs 64 bits, hence its scalar.

use heck::ToShoutySnakeCase;

use crate::ir::*;
use crate::names;

/// Decides `system.graphql` from the rest of the IR.
mod auth;

pub fn derive(system: &mut System) -> Result<(), String> {
    system.graphql = build(system)?;
    Ok(())
}

pub fn build(sys: &System) -> Result<GraphqlApi, String> {
    let b = Builder::new(sys)?;
    if b.queries.is_empty() && b.mutations.is_empty() {
        return Ok(GraphqlApi::default());
    }
    b.build()
}

/// A field's arguments, its type and what its call's response becomes.
type Shape = (Vec<GraphqlArg>, GraphqlTypeRef, CallOutput);

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
    payloads: Vec<ObjectType>,
    inputs: Vec<InputType>,
    delete_payload: bool,
}

impl<'a> Builder<'a> {
    fn new(sys: &'a System) -> Result<Builder<'a>, String> {
        let expose = |ops: &'a [BffOperation]| -> Result<Vec<Exposed<'a>>, String> {
            ops.iter()
                .map(|b| {
                    let svc = sys.services.iter().find(|s| s.name == b.service);
                    match svc.and_then(|s| s.operation(&b.operation).map(|op| (s, op))) {
                        Some((svc, op)) => Ok(Exposed { bff: b, svc, op }),
                        None => Err(format!(
                            "bff exposes unknown operation `{}` of service `{}`",
                            b.operation, b.service
                        )),
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

    fn entity(&self, name: &str) -> Result<&'a Entity, String> {
        self.sys
            .entities
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| format!("unknown entity `{name}`"))
    }

    fn has_type(&self, entity: &str) -> bool {
        self.entities.iter().any(|e| e.name == entity)
    }

    fn build(mut self) -> Result<GraphqlApi, String> {
        let queries = self.query_fields()?;
        let mutations = self.mutation_fields()?;
        let mut objects = Vec::new();
        for e in self.entities.clone() {
            objects.push(self.object_type(e)?);
        }
        let order = |name: &String| self.sys.entities.iter().position(|e| &e.name == name);
        let mut connections = self.connections.clone();
        connections.sort_by_key(order);
        objects.extend(connections.iter().map(|c| connection_type(c)));
        if !connections.is_empty() {
            objects.push(page_info());
        }
        if self.delete_payload {
            objects.push(delete_payload());
        }
        objects.append(&mut self.payloads);
        let mut inputs = std::mem::take(&mut self.inputs);
        let mut children = self.child_inputs.clone();
        children.sort_by_key(order);
        for c in &children {
            let e = self.entity(c)?;
            inputs.push(self.child_input(e)?);
        }
        let lookups = self.lookups()?;
        owned_lookups(queries.iter().chain(&mutations), &lookups)?;
        let api = GraphqlApi {
            upstreams: upstreams(self.sys, queries.iter().chain(&mutations))?,
            identity: self.sys.auth.as_ref().map(|a| a.deployable.clone()),
            lookups,
            queries,
            mutations,
            objects,
            inputs,
        };
        unique_type_names(&api)?;
        Ok(api)
    }

    // ------------------------------------------------------------------ Query

    fn query_fields(&mut self) -> Result<Vec<RootField>, String> {
        let mut fields = Vec::new();
        for e in self.queries.clone() {
            let out =
                e.op.output
                    .clone()
                    .ok_or_else(|| format!("query `{}` returns nothing", e.op.name))?;
            let (mut args, ty, output) = self.query_shape(e, &out)?;
            let mut doc = op_doc(e);
            if matches!(e.op.kind, OperationKind::Get | OperationKind::Query) {
                doc.push_str(&format!("\n\nNull when there is no such {out}."));
            }
            let callers = self.caller_fields(e);
            auth::optional_callers(&mut args, &callers);
            let mut call = self.call(e, false, &args, output, &|_| None)?;
            self.guard(e, &mut call, &callers)?;
            fields.push(RootField {
                name: e.bff.field.clone(),
                doc: Some(doc),
                args,
                ty,
                call: Some(call),
                session: None,
            });
        }
        if fields.is_empty() {
            // GraphQL needs a Query type with a field even when only mutations exist.
            fields.push(RootField {
                name: "ok".into(),
                doc: Some("Always true: the spec exposes no query yet.".into()),
                args: Vec::new(),
                ty: named("Boolean", true),
                call: None,
                session: None,
            });
        }
        Ok(fields)
    }

    /// A query's arguments, its type and what its response becomes.
    fn query_shape(&mut self, e: Exposed<'a>, out: &str) -> Result<Shape, String> {
        if e.op.kind == OperationKind::List {
            let mut args = filter_args(e.op, self.entity(out)?, None)?;
            args.extend(page_args(e.op));
            self.connection(out);
            let output = self.connection_output(e, out)?;
            return Ok((args, named(&format!("{out}Connection"), true), output));
        }
        let (args, key) = match (e.op.kind, e.op.input.as_slice()) {
            (OperationKind::Get, _) => (vec![arg("id", None, named("ID", true))], Some("id")),
            (_, [one]) => (vec![field_arg(one)], Some(one.name.as_str())),
            (_, inputs) => (inputs.iter().map(field_arg).collect(), None),
        };
        let absent = Absent::NotFound {
            key: key.map(str::to_string),
        };
        let output = self.entity_output(e, out, absent)?;
        Ok((args, named(out, false), output))
    }

    // ------------------------------------------------------------------ Mutation

    fn mutation_fields(&mut self) -> Result<Vec<RootField>, String> {
        let mut fields = Vec::new();
        for e in self.mutations.clone() {
            let (mut input, ty, output) = self.mutation_shape(e)?;
            let callers = self.caller_fields(e);
            auth::optional_callers(&mut input, &callers);
            if self
                .sys
                .auth
                .as_ref()
                .is_some_and(|a| a.service == e.svc.name && a.register == e.op.name)
            {
                input.push(auth::password_arg());
            }
            if e.op.takes_idempotency_key() {
                let doc = "Retrying with the same key returns the first attempt's answer instead of \
                           applying the mutation again. Omit it and every request is a new attempt.";
                input.push(arg(
                    "idempotencyKey",
                    Some(doc.into()),
                    named("String", false),
                ));
            }
            let args = if input.is_empty() {
                // An input object needs a field: an operation without input takes no argument.
                Vec::new()
            } else {
                let input_name = format!("{}Input", e.op.name);
                self.inputs.push(InputType {
                    name: input_name.clone(),
                    doc: Some(format!("The input of `{}`.", e.bff.field)),
                    fields: input.clone(),
                });
                vec![arg("input", None, named(&input_name, true))]
            };
            let mut call = self.call(e, true, &input, output, &|_| None)?;
            self.guard(e, &mut call, &callers)?;
            fields.push(RootField {
                name: e.bff.field.clone(),
                doc: Some(op_doc(e)),
                args,
                ty,
                call: Some(call),
                session: None,
            });
        }
        if let Some(auth) = &self.sys.auth {
            fields.extend(self.session_fields(auth));
        }
        Ok(fields)
    }

    /// A mutation's input fields, its type and what its response becomes.
    fn mutation_shape(&mut self, e: Exposed<'a>) -> Result<Shape, String> {
        let op = e.op;
        let mut input = Vec::new();
        Ok(match op.kind {
            OperationKind::Create | OperationKind::Update => {
                let entity = self.entity(&e.svc.entity)?;
                if op.kind == OperationKind::Update {
                    let doc = format!("The {} to change.", entity.name);
                    input.push(arg("id", Some(doc), named("ID", true)));
                }
                input.extend(self.writable_fields(entity, &|f| f.name != "id")?);
                if op.kind == OperationKind::Create {
                    // What a create may leave out: the spec's default stands in. An
                    // update replaces every field, so it keeps them all required.
                    for a in &mut input {
                        a.default = entity
                            .fields
                            .iter()
                            .find(|f| names::camel(&f.name) == a.name)
                            .filter(|f| f.ty != FieldType::Timestamp && !f.optional)
                            .and_then(|f| f.default.clone());
                    }
                }
                let out = op.output.as_deref().unwrap_or(&entity.name);
                let output = self.entity_output(e, out, Absent::Error)?;
                (input, named(out, true), output)
            }
            OperationKind::Delete => {
                self.delete_payload = true;
                let doc = format!("The {} to delete.", e.svc.entity);
                input.push(arg("id", Some(doc), named("ID", true)));
                let output = CallOutput::Deleted { key: "id".into() };
                (input, named("DeletePayload", true), output)
            }
            OperationKind::Custom => {
                input.extend(op.input.iter().map(field_arg));
                match &op.output {
                    Some(out) => {
                        let output = self.entity_output(e, out, Absent::Error)?;
                        (input, named(out, true), output)
                    }
                    None => (input, named("Boolean", true), CallOutput::Done),
                }
            }
            OperationKind::Command => {
                input.extend(op.input.iter().map(field_arg));
                let doc = format!(
                    "Fail with a conflict unless the {} is at this version (0: it does not exist yet). \
                     Omit to apply to whatever version is current.",
                    e.svc.entity
                );
                input.push(arg("expectedVersion", Some(doc), named("Int", false)));
                let payload = format!("{}Payload", op.name);
                let id = format!("{}_id", names::snake(&e.svc.entity));
                let id_name = names::camel(&id);
                self.payloads.push(command_payload(e, &payload, &id_name));
                let output = CallOutput::CommandPayload { id, id_name };
                (input, named(&payload, true), output)
            }
            OperationKind::List
            | OperationKind::Get
            | OperationKind::BatchGet
            | OperationKind::Query => {
                return Err(format!("`{}` reads: it cannot be a mutation", op.name));
            }
        })
    }

    /// The input fields of an entity that a client may set, owned children as inputs.
    fn writable_fields(
        &mut self,
        e: &Entity,
        keep: &dyn Fn(&Field) -> bool,
    ) -> Result<Vec<GraphqlArg>, String> {
        let mut out: Vec<GraphqlArg> = e
            .fields
            .iter()
            .filter(|f| !f.readonly && keep(f))
            .map(field_arg)
            .collect();
        for r in e.relations.iter().filter(|r| r.owned) {
            let target = self.entity(&r.target)?;
            if !self.child_inputs.contains(&target.name) {
                self.child_inputs.push(target.name.clone());
                // Its own children too.
                self.writable_fields(target, &|_| true)?;
            }
            out.push(arg(
                &names::camel(&r.name),
                Some(format!(
                    "All of its {} ({} {}): what is given replaces what was stored.",
                    r.name, r.cardinality, r.target
                )),
                owned_type(r, &format!("{}Input", r.target)),
            ));
        }
        Ok(out)
    }

    fn child_input(&mut self, e: &Entity) -> Result<InputType, String> {
        Ok(InputType {
            name: format!("{}Input", e.name),
            doc: Some(e.doc.clone().unwrap_or_else(|| e.name.clone())),
            fields: self.writable_fields(e, &|_| true)?,
        })
    }

    // ------------------------------------------------------------------ objects

    fn object_type(&mut self, e: &'a Entity) -> Result<ObjectType, String> {
        let mut fields: Vec<ObjectField> = Vec::new();
        let mut notes = Vec::new();
        let taken = |fields: &[ObjectField], name: &str| {
            fields.iter().any(|f| f.name == name)
                || e.fields.iter().any(|f| names::camel(&f.name) == name)
        };
        for f in &e.fields {
            fields.push(message_field(f));
            if let Some(r) = self.ref_field(e, f, &fields, &taken) {
                fields.push(r);
            }
        }
        if self.is_aggregate(&e.name) {
            fields.push(version_field(e));
        }
        for r in &e.relations {
            let name = names::camel(&r.name);
            if taken(&fields, &name) {
                notes.push(format!(
                    "`{name}` is not exposed: a field of that name exists."
                ));
                continue;
            }
            if r.owned {
                fields.push(owned_field(r));
                continue;
            }
            match self.relation_field(e, r)? {
                Ok(f) => fields.push(f),
                Err(why) => notes.push(format!(
                    "`{name}` ({} {}) is not exposed: {why}",
                    r.cardinality, r.target
                )),
            }
        }
        Ok(ObjectType {
            name: e.name.clone(),
            doc: e.doc.clone(),
            notes,
            source: ObjectSource::Entity(e.name.clone()),
            fields,
        })
    }

    /// `x: Target` beside a ref field `x_id` whose target an exposed query fetches by id.
    fn ref_field(
        &self,
        e: &Entity,
        f: &Field,
        fields: &[ObjectField],
        taken: &dyn Fn(&[ObjectField], &str) -> bool,
    ) -> Option<ObjectField> {
        let FieldType::Ref(target) = &f.ty else {
            return None;
        };
        let base = f.name.strip_suffix("_id")?;
        let (getter, arg) = self.getter(target)?;
        let name = names::camel(base);
        if taken(fields, &name) || e.relations.iter().any(|r| names::camel(&r.name) == name) {
            return None;
        }
        let key = names::camel(&f.name);
        Some(ObjectField {
            name,
            doc: Some(format!(
                "The {target} that `{key}` names, resolved with `{}({}: {key})`; null when it no longer exists.",
                getter.bff.field,
                names::camel(&arg),
            )),
            args: Vec::new(),
            ty: named(target, false),
            resolve: FieldSource::Relation(RelationCall::ById {
                key,
                entity: target.clone(),
            }),
        })
    }

    /// A non-owned relation as a field, or why it cannot be one.
    fn relation_field(
        &mut self,
        e: &Entity,
        r: &Relation,
    ) -> Result<Result<ObjectField, String>, String> {
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
        let found = if r.cardinality.is_many() {
            self.many_relation(r, target, fk)?
        } else {
            self.one_relation(r, target, fk)?
        };
        let (q, doc, (args, ty, output)) = match found {
            Ok(found) => found,
            Err(why) => return Ok(Err(why)),
        };
        let by_parent = |f: &MessageField| {
            (f.name == fk.name).then(|| ValueSource::Parent { field: "id".into() })
        };
        let call = self.call(q, false, &args, output, &by_parent)?;
        Ok(Ok(ObjectField {
            name: names::camel(&r.name),
            doc: Some(doc),
            args,
            ty,
            resolve: FieldSource::Relation(RelationCall::Call(Box::new(call))),
        }))
    }

    /// `orders(first, after)`: an exposed list of the target filtered by `fk`.
    fn many_relation(
        &mut self,
        r: &Relation,
        target: &Entity,
        fk: &Field,
    ) -> Result<Result<(Exposed<'a>, String, Shape), String>, String> {
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
        let mut args = filter_args(q.op, target, Some(&fk.name))?;
        args.extend(page_args(q.op));
        self.connection(&target.name);
        let doc = format!(
            "Its {} ({} {}), resolved with `{}({}: <this id>)`.",
            r.name,
            r.cardinality,
            target.name,
            q.bff.field,
            names::camel(&fk.name)
        );
        let output = self.connection_output(q, &target.name)?;
        let ty = named(&format!("{}Connection", target.name), true);
        Ok(Ok((q, doc, (args, ty, output))))
    }

    /// One target: an exposed query that fetches it by `fk` alone.
    fn one_relation(
        &self,
        r: &Relation,
        target: &Entity,
        fk: &Field,
    ) -> Result<Result<(Exposed<'a>, String, Shape), String>, String> {
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
        let doc = format!(
            "Its {} ({} {}), resolved with `{}({}: <this id>)`; null when there is none.",
            r.name,
            r.cardinality,
            target.name,
            q.bff.field,
            names::camel(&fk.name)
        );
        let output = self.entity_output(q, &target.name, Absent::Null)?;
        Ok(Ok((
            q,
            doc,
            (Vec::new(), named(&target.name, false), output),
        )))
    }

    /// An exposed query that fetches `target` by its id alone, and that input's name.
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
                    Some((*q, q.op.input[0].name.clone()))
                }
                _ => None,
            }
        })
    }

    /// One lookup per entity that has a getter.
    fn lookups(&self) -> Result<Vec<Lookup>, String> {
        let mut out = Vec::new();
        for e in &self.entities {
            let Some((q, key)) = self.getter(&e.name) else {
                continue;
            };
            let output = self.entity_output(q, &e.name, Absent::Null)?;
            let by_key = |f: &MessageField| (f.name == key).then_some(ValueSource::Key);
            let batch = q
                .svc
                .operations
                .iter()
                .find(|o| o.kind == OperationKind::BatchGet && o.output.as_deref() == Some(&e.name))
                .map(|o| BatchCall {
                    rpc: o.rpc.clone(),
                    items: names::plural(&names::snake(&e.name)),
                });
            out.push(Lookup {
                entity: e.name.clone(),
                field: q.bff.field.clone(),
                call: self.call(q, false, &[], output, &by_key)?,
                batch,
            });
        }
        Ok(out)
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

    // ------------------------------------------------------------------ calls

    fn message(&self, e: Exposed<'a>, name: &str) -> Result<&'a Message, String> {
        e.svc
            .proto
            .messages
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| format!("no proto message `{name}` in {}", e.svc.proto.package))
    }

    /// The call of `e`, each request field from `special`, else from `args` by name.
    fn call(
        &self,
        e: Exposed<'a>,
        input: bool,
        args: &[GraphqlArg],
        output: CallOutput,
        special: &dyn Fn(&MessageField) -> Option<ValueSource>,
    ) -> Result<OperationCall, String> {
        let request = self
            .message(e, &e.op.rpc.request)?
            .fields
            .iter()
            .map(|f| {
                let source = match special(f) {
                    Some(s) => s,
                    None => self.arg_source(e, f, args)?,
                };
                Ok(request_field(f, source))
            })
            .collect::<Result<_, String>>()?;
        Ok(OperationCall {
            operation: e.op.name.clone(),
            service: e.svc.name.clone(),
            deployable: e.op.deployable.clone(),
            rpc: e.op.rpc.clone(),
            input,
            request,
            output,
            guard: None,
        })
    }

    /// The argument (or input field) a request field is read from.
    fn arg_source(
        &self,
        e: Exposed<'a>,
        f: &MessageField,
        args: &[GraphqlArg],
    ) -> Result<ValueSource, String> {
        match f.name.as_str() {
            "page_size" => {
                return Ok(ValueSource::PageSize {
                    arg: "first".into(),
                });
            }
            "page_token" => {
                return Ok(ValueSource::PageToken {
                    arg: "after".into(),
                });
            }
            _ => {}
        }
        let name = names::camel(&f.name);
        let a = args.iter().find(|a| a.name == name).ok_or_else(|| {
            format!(
                "`{}`: no GraphQL argument gives the request field `{}`",
                e.op.name, f.name
            )
        })?;
        match &f.ty {
            ProtoType::Message(entity) => self.children(e, &name, entity, &a.ty),
            _ => Ok(ValueSource::Arg {
                name,
                ty: a.ty.clone(),
                default: a.default.clone(),
            }),
        }
    }

    /// Owned children from `<Entity>Input` objects: the writable fields of `entity`.
    fn children(
        &self,
        e: Exposed<'a>,
        arg: &str,
        entity: &str,
        ty: &GraphqlTypeRef,
    ) -> Result<ValueSource, String> {
        let target = self.entity(entity)?;
        let mut fields = Vec::new();
        let mut defaults = false;
        for f in &self.message(e, entity)?.fields {
            let source = match &f.ty {
                ProtoType::Message(child) => {
                    let r = target.relations.iter().find(|r| r.name == f.name);
                    let ty = owned_type_of(r, &format!("{child}Input"));
                    self.children(e, &names::camel(&f.name), child, &ty)?
                }
                _ => match target.field(&f.name) {
                    Some(tf) if !tf.readonly => ValueSource::Arg {
                        name: names::camel(&f.name),
                        ty: field_arg(tf).ty,
                        default: None,
                    },
                    _ => {
                        defaults = true;
                        continue;
                    }
                },
            };
            fields.push(request_field(f, source));
        }
        Ok(ValueSource::Children {
            arg: arg.to_string(),
            entity: entity.to_string(),
            ty: ty.clone(),
            fields,
            defaults,
        })
    }

    fn response(&self, e: Exposed<'a>) -> Result<&'a Message, String> {
        self.message(e, &e.op.rpc.response)
    }

    fn entity_output(
        &self,
        e: Exposed<'a>,
        entity: &str,
        absent: Absent,
    ) -> Result<CallOutput, String> {
        let resp = self.response(e)?;
        let field = entity_field(resp, entity, e)?;
        let has_version = resp.fields.iter().any(|f| f.name == "version");
        if self.is_aggregate(entity) && !has_version {
            return Err(format!(
                "`{}` returns {entity}, whose `version` only an event-sourced query or command can give",
                e.op.name
            ));
        }
        Ok(CallOutput::Entity {
            entity: entity.to_string(),
            field,
            version: self.is_aggregate(entity),
            absent,
        })
    }

    fn connection_output(&self, e: Exposed<'a>, entity: &str) -> Result<CallOutput, String> {
        if self.is_aggregate(entity) {
            return Err(format!(
                "`{}` lists {entity}, whose `version` a list cannot give",
                e.op.name
            ));
        }
        Ok(CallOutput::Connection {
            entity: entity.to_string(),
            field: entity_field(self.response(e)?, entity, e)?,
        })
    }
}

fn entity_field(resp: &Message, entity: &str, e: Exposed) -> Result<String, String> {
    resp.fields
        .iter()
        .find(|f| f.ty == ProtoType::Message(entity.to_string()))
        .map(|f| f.name.clone())
        .ok_or_else(|| format!("`{}` responds without a {entity}", e.op.name))
}

fn request_field(f: &MessageField, source: ValueSource) -> RequestField {
    RequestField {
        field: f.name.clone(),
        ty: f.ty.clone(),
        label: f.label,
        source,
    }
}

/// Each deployable the calls go to, with the proto service called there.
fn upstreams<'r>(
    sys: &System,
    roots: impl Iterator<Item = &'r RootField>,
) -> Result<Vec<GraphqlUpstream>, String> {
    let mut used: Vec<(&str, &str, &str)> = Vec::new();
    for c in roots.filter_map(|r| r.call.as_ref()) {
        used.push((&c.deployable, &c.service, &c.rpc.service));
        for claim in c
            .guard
            .iter()
            .flat_map(|g| &g.owned)
            .filter_map(|o| o.claim.as_ref())
        {
            used.push((&claim.deployable, &claim.service, &claim.rpc.service));
        }
    }
    let identity = sys.auth.as_ref().and_then(|a| {
        let svc = sys.services.iter().find(|s| s.name == a.service)?;
        let op = svc
            .operations
            .iter()
            .find(|o| o.deployable == a.deployable)?;
        Some((
            a.deployable.as_str(),
            a.service.as_str(),
            op.rpc.service.as_str(),
        ))
    });
    used.extend(identity);
    let mut out: Vec<GraphqlUpstream> = Vec::new();
    for (deployable, service, proto_service) in used {
        if let Some(u) = out.iter().find(|u| u.deployable == deployable) {
            if u.proto_service != proto_service {
                return Err(format!(
                    "the BFF would call two proto services on `{deployable}` ({} and {proto_service}): one client per deployable",
                    u.proto_service
                ));
            }
            continue;
        }
        let svc = sys
            .services
            .iter()
            .find(|s| s.name == service)
            .ok_or_else(|| format!("unknown service `{service}`"))?;
        out.push(GraphqlUpstream {
            deployable: deployable.to_string(),
            service: service.to_string(),
            proto_service: proto_service.to_string(),
            package: svc.proto.package.clone(),
            env: format!("{}_URL", deployable.to_shouty_snake_case()),
        });
    }
    Ok(out)
}

/// Whose an instance is, the BFF asks through the entity's lookup.
fn owned_lookups<'r>(
    roots: impl Iterator<Item = &'r RootField>,
    lookups: &[Lookup],
) -> Result<(), String> {
    for (root, check) in roots.flat_map(|r| {
        r.call
            .iter()
            .flat_map(|c| c.guard.iter().flat_map(|g| &g.owned))
            .map(move |o| (r, o))
    }) {
        if !lookups.iter().any(|l| l.entity == check.entity) {
            return Err(format!(
                "`{}` takes a {} that belongs to somebody (owned_by): the BFF asks whose it is through a get of {} exposed in bff.graphql.queries; expose one",
                root.name, check.entity, check.entity
            ));
        }
    }
    Ok(())
}

fn unique_type_names(api: &GraphqlApi) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    let fixed = ["DateTime", "Money", "Query", "Mutation"];
    let names = fixed
        .into_iter()
        .chain(api.objects.iter().map(|o| o.name.as_str()))
        .chain(api.inputs.iter().map(|i| i.name.as_str()));
    for n in names {
        if !seen.insert(n) {
            return Err(format!(
                "two GraphQL types would be called `{n}`: rename the operation or entity"
            ));
        }
    }
    Ok(())
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

/// A list's equality filters as nullable arguments, but `skip` (the parent's key).
fn filter_args(
    op: &Operation,
    entity: &Entity,
    skip: Option<&str>,
) -> Result<Vec<GraphqlArg>, String> {
    let mut args = Vec::new();
    for name in op.filter.iter().filter(|f| Some(f.as_str()) != skip) {
        let f = entity
            .field(name)
            .ok_or_else(|| format!("`{}` filters on unknown field `{name}`", op.name))?;
        let camel = names::camel(name);
        let doc = format!("Only items whose `{camel}` is this.");
        args.push(arg(
            &camel,
            Some(doc),
            named(GraphqlScalar::of(&f.ty).name(), false),
        ));
    }
    Ok(args)
}

fn page_args(op: &Operation) -> Vec<GraphqlArg> {
    let size = match op.page_size {
        Some(p) => format!(
            "At most this many items; {} when omitted, at most {}.",
            p.default, p.max
        ),
        None => "At most this many items.".into(),
    };
    vec![
        arg("first", Some(size), named("Int", false)),
        arg(
            "after",
            Some("The `endCursor` of the previous page; omit for the first page.".into()),
            named("String", false),
        ),
    ]
}

fn named(name: &str, non_null: bool) -> GraphqlTypeRef {
    GraphqlTypeRef {
        name: name.to_string(),
        list: false,
        non_null,
    }
}

fn arg(name: &str, doc: Option<String>, ty: GraphqlTypeRef) -> GraphqlArg {
    GraphqlArg {
        name: name.to_string(),
        doc,
        ty,
        default: None,
    }
}

fn owned_type(r: &Relation, item: &str) -> GraphqlTypeRef {
    owned_type_of(Some(r), item)
}

fn owned_type_of(r: Option<&Relation>, item: &str) -> GraphqlTypeRef {
    let many = r.is_none_or(|r| r.cardinality.is_many());
    GraphqlTypeRef {
        name: item.to_string(),
        list: many,
        non_null: many || r.is_some_and(|r| r.cardinality.min >= 1),
    }
}

/// An entity field as an object field, argument or input field.
fn field_arg(f: &Field) -> GraphqlArg {
    let doc = field_doc(f);
    arg(
        &names::camel(&f.name),
        (!doc.is_empty()).then_some(doc),
        named(GraphqlScalar::of(&f.ty).name(), !f.optional),
    )
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

fn message_field(f: &Field) -> ObjectField {
    let a = field_arg(f);
    ObjectField {
        name: a.name,
        doc: a.doc,
        args: Vec::new(),
        ty: a.ty,
        resolve: FieldSource::Message {
            field: f.name.clone(),
            scalar: GraphqlScalar::of(&f.ty),
        },
    }
}

fn version_field(e: &Entity) -> ObjectField {
    ObjectField {
        name: "version".into(),
        doc: Some(format!(
            "The version of this {} state (the number of its events applied); pass it as \
             `expectedVersion` so that a command fails instead of overwriting a change made since.",
            e.name
        )),
        args: Vec::new(),
        ty: named("Int", true),
        resolve: FieldSource::Version,
    }
}

fn owned_field(r: &Relation) -> ObjectField {
    ObjectField {
        name: names::camel(&r.name),
        doc: Some(format!(
            "Its {} ({} {}), deleted with it.",
            r.name, r.cardinality, r.target
        )),
        args: Vec::new(),
        ty: owned_type(r, &r.target),
        resolve: FieldSource::Owned {
            field: r.name.clone(),
            entity: r.target.clone(),
        },
    }
}

fn built(name: &str, ty: GraphqlTypeRef, doc: &str) -> ObjectField {
    ObjectField {
        name: name.to_string(),
        doc: Some(doc.to_string()),
        args: Vec::new(),
        ty,
        resolve: FieldSource::Built,
    }
}

fn connection_type(entity: &str) -> ObjectType {
    ObjectType {
        name: format!("{entity}Connection"),
        doc: Some(format!("One page of {entity} items.")),
        notes: Vec::new(),
        source: ObjectSource::Connection(entity.to_string()),
        fields: vec![
            built(
                "nodes",
                GraphqlTypeRef {
                    name: entity.to_string(),
                    list: true,
                    non_null: true,
                },
                "The items of this page, in the list's order.",
            ),
            built(
                "pageInfo",
                named("PageInfo", true),
                "Where this page ends and whether another follows.",
            ),
        ],
    }
}

fn page_info() -> ObjectType {
    ObjectType {
        name: "PageInfo".into(),
        doc: Some("Cursor pagination: pass `endCursor` as `after` to get the next page.".into()),
        notes: Vec::new(),
        source: ObjectSource::PageInfo,
        fields: vec![
            built(
                "endCursor",
                named("String", false),
                "The cursor after the last item of this page; null when the page is empty.",
            ),
            built(
                "hasNextPage",
                named("Boolean", true),
                "Whether a next page exists.",
            ),
        ],
    }
}

fn delete_payload() -> ObjectType {
    ObjectType {
        name: "DeletePayload".into(),
        doc: Some("What a delete returns.".into()),
        notes: Vec::new(),
        source: ObjectSource::DeletePayload,
        fields: vec![built(
            "id",
            named("ID", true),
            "The id of the deleted item.",
        )],
    }
}

fn command_payload(e: Exposed, name: &str, id_name: &str) -> ObjectType {
    let entity = &e.svc.entity;
    ObjectType {
        name: name.to_string(),
        doc: Some(format!("What `{}` returns.", e.bff.field)),
        notes: Vec::new(),
        source: ObjectSource::CommandPayload(e.op.name.clone()),
        fields: vec![
            built(
                id_name,
                named("ID", true),
                &format!("The {entity} the command applied to."),
            ),
            built(
                "version",
                named("Int", true),
                &format!("The {entity}'s version after this command."),
            ),
        ],
    }
}
