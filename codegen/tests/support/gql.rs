//! The GraphQL SDL the generator writes, parsed and built into a schema with
//! async-graphql's dynamic API (shared by the tests that check generated SDL).

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use async_graphql::dynamic;
use async_graphql_parser::types::{
    BaseType, ServiceDocument, Type, TypeKind, TypeSystemDefinition,
};

pub const BUILT_IN: [&str; 5] = ["ID", "String", "Int", "Float", "Boolean"];

pub fn parse(sdl: &str) -> ServiceDocument {
    async_graphql_parser::parse_schema(sdl)
        .unwrap_or_else(|e| panic!("SDL does not parse: {e}\n{sdl}"))
}

pub fn named(t: &Type) -> &str {
    match &t.base {
        BaseType::Named(n) => n.as_str(),
        BaseType::List(inner) => named(inner),
    }
}

fn type_ref(t: &Type) -> dynamic::TypeRef {
    let base = match &t.base {
        BaseType::Named(n) => dynamic::TypeRef::named(n.to_string()),
        BaseType::List(inner) => dynamic::TypeRef::List(Box::new(type_ref(inner))),
    };
    if t.nullable {
        base
    } else {
        dynamic::TypeRef::NonNull(Box::new(base))
    }
}

/// Kind of every defined type: `scalar`, `object` or `input`.
pub fn kinds(doc: &ServiceDocument) -> BTreeMap<String, &'static str> {
    let mut out: BTreeMap<String, &'static str> =
        BUILT_IN.iter().map(|n| (n.to_string(), "scalar")).collect();
    for def in &doc.definitions {
        let TypeSystemDefinition::Type(t) = def else {
            panic!("unexpected definition")
        };
        let kind = match &t.node.kind {
            TypeKind::Scalar => "scalar",
            TypeKind::Object(_) => "object",
            TypeKind::InputObject(_) => "input",
            _ => panic!(
                "{}: only scalars, objects and inputs are expected",
                t.node.name.node
            ),
        };
        let prev = out.insert(t.node.name.node.to_string(), kind);
        assert!(prev.is_none(), "type {} defined twice", t.node.name.node);
    }
    out
}

/// Every referenced type is defined, and of the right kind for where it is used.
pub fn check_references(doc: &ServiceDocument) -> Vec<String> {
    let kinds = kinds(doc);
    let mut errors = Vec::new();
    let mut want = |place: String, t: &Type, ok: &[&str]| match kinds.get(named(t)) {
        None => errors.push(format!("{place}: type {} is not defined", named(t))),
        Some(k) if !ok.contains(k) => {
            errors.push(format!("{place}: {} is {k}, expected {ok:?}", named(t)))
        }
        _ => {}
    };
    for def in &doc.definitions {
        let TypeSystemDefinition::Type(t) = def else {
            continue;
        };
        let ty = t.node.name.node.as_str();
        match &t.node.kind {
            TypeKind::Object(o) => {
                for f in &o.fields {
                    let f = &f.node;
                    want(
                        format!("{ty}.{}", f.name.node),
                        &f.ty.node,
                        &["scalar", "object"],
                    );
                    for a in &f.arguments {
                        want(
                            format!("{ty}.{}({})", f.name.node, a.node.name.node),
                            &a.node.ty.node,
                            &["scalar", "input"],
                        );
                    }
                }
            }
            TypeKind::InputObject(o) => {
                for f in &o.fields {
                    want(
                        format!("{ty}.{}", f.node.name.node),
                        &f.node.ty.node,
                        &["scalar", "input"],
                    );
                }
            }
            _ => {}
        }
    }
    errors
}

/// Fields of object and input types: type -> field -> (type, args).
pub fn fields(
    doc: &ServiceDocument,
) -> BTreeMap<String, BTreeMap<String, (String, BTreeSet<String>)>> {
    let mut out = BTreeMap::new();
    for def in &doc.definitions {
        let TypeSystemDefinition::Type(t) = def else {
            continue;
        };
        let mut fs = BTreeMap::new();
        match &t.node.kind {
            TypeKind::Object(o) => {
                for f in &o.fields {
                    let args = f
                        .node
                        .arguments
                        .iter()
                        .map(|a| format!("{}: {}", a.node.name.node, a.node.ty.node))
                        .collect();
                    fs.insert(
                        f.node.name.node.to_string(),
                        (f.node.ty.node.to_string(), args),
                    );
                }
            }
            TypeKind::InputObject(o) => {
                for f in &o.fields {
                    fs.insert(
                        f.node.name.node.to_string(),
                        (f.node.ty.node.to_string(), BTreeSet::new()),
                    );
                }
            }
            _ => {}
        }
        out.insert(t.node.name.node.to_string(), fs);
    }
    out
}

/// Builds the schema with async-graphql's dynamic API (resolvers return null): the
/// same checks the BFF's schema goes through at start-up.
pub fn build(doc: &ServiceDocument) -> dynamic::Schema {
    let kinds = kinds(doc);
    let mutation = kinds.contains_key("Mutation").then_some("Mutation");
    let mut schema = dynamic::Schema::build("Query", mutation, None);
    for def in &doc.definitions {
        let TypeSystemDefinition::Type(t) = def else {
            continue;
        };
        let name = t.node.name.node.to_string();
        let desc = t.node.description.as_ref().map(|d| d.node.clone());
        match &t.node.kind {
            TypeKind::Scalar => {
                let mut s = dynamic::Scalar::new(name);
                if let Some(d) = desc {
                    s = s.description(d);
                }
                schema = schema.register(s);
            }
            TypeKind::Object(o) => {
                let mut obj = dynamic::Object::new(name);
                if let Some(d) = desc {
                    obj = obj.description(d);
                }
                for f in &o.fields {
                    let mut field = dynamic::Field::new(
                        f.node.name.node.to_string(),
                        type_ref(&f.node.ty.node),
                        |_| dynamic::FieldFuture::new(async { Ok(None::<dynamic::FieldValue>) }),
                    );
                    for a in &f.node.arguments {
                        field = field.argument(dynamic::InputValue::new(
                            a.node.name.node.to_string(),
                            type_ref(&a.node.ty.node),
                        ));
                    }
                    obj = obj.field(field);
                }
                schema = schema.register(obj);
            }
            TypeKind::InputObject(o) => {
                let mut obj = dynamic::InputObject::new(name);
                for f in &o.fields {
                    obj = obj.field(dynamic::InputValue::new(
                        f.node.name.node.to_string(),
                        type_ref(&f.node.ty.node),
                    ));
                }
                schema = schema.register(obj);
            }
            _ => unreachable!("checked by kinds()"),
        }
    }
    schema
        .finish()
        .unwrap_or_else(|e| panic!("async-graphql rejects the schema: {e:?}"))
}
