//! The served schema is built from the generated SDL itself: every type, field,
//! argument, input field, description and default value comes from
//! `generated/graphql/schema.graphql` (compiled into the system's `<system>-bff` crate).
//! Only behaviour is added here: the generated resolvers keyed by `"Type.field"`,
//! the scalars' validators, and a default resolver that reads a plain field from its
//! parent's value.

use std::collections::{BTreeMap, BTreeSet};

use async_graphql::Value;
use async_graphql::dynamic::{
    Enum, EnumItem, Field, FieldFuture, FieldValue, InputObject, InputValue, Object, Scalar,
    SchemaBuilder, TypeRef,
};
use async_graphql::parser::types::{
    BaseType, ConstDirective, FieldDefinition, InputValueDefinition, ServiceDocument,
    TypeDefinition, TypeKind, TypeSystemDefinition,
};
use async_graphql::parser::{Positioned, parse_schema};

use super::BuildError;
use super::cost::{FALLBACK_PAGE_SIZE, FieldShape, Shape};
use crate::graphql::Resolve;

/// The parsed SDL with its root type names.
pub struct Sdl {
    pub query: String,
    pub mutation: Option<String>,
    pub types: Vec<TypeDefinition>,
}

impl Sdl {
    pub fn parse(text: &str) -> Result<Sdl, BuildError> {
        let doc: ServiceDocument =
            parse_schema(text).map_err(|e| BuildError::Sdl(e.to_string()))?;
        let mut query = None;
        let mut mutation = None;
        let mut subscription = None;
        let mut types = Vec::new();
        for def in doc.definitions {
            match def {
                TypeSystemDefinition::Schema(s) => {
                    query = s.node.query.map(|n| n.node.to_string());
                    mutation = s.node.mutation.map(|n| n.node.to_string());
                    subscription = s.node.subscription.map(|n| n.node.to_string());
                }
                TypeSystemDefinition::Type(t) => types.push(t.node),
                TypeSystemDefinition::Directive(d) => {
                    return Err(BuildError::Unsupported(format!(
                        "directive definition @{}",
                        d.node.name.node
                    )));
                }
            }
        }
        let has = |name: &str| types.iter().any(|t| t.name.node == name);
        let query = query.unwrap_or_else(|| "Query".to_string());
        if !has(&query) {
            return Err(BuildError::Sdl(format!("no query root type `{query}`")));
        }
        let mutation = mutation.or_else(|| has("Mutation").then(|| "Mutation".to_string()));
        if subscription.is_some() || has("Subscription") {
            return Err(BuildError::Unsupported("subscriptions".into()));
        }
        Ok(Sdl {
            query,
            mutation,
            types,
        })
    }

    pub fn is_root(&self, type_name: &str) -> bool {
        type_name == self.query || Some(type_name) == self.mutation.as_deref()
    }

    /// The `"Type.field"` keys that must have a resolver: every root field and every
    /// relation field (`relations`, generated with the SDL).
    pub fn resolver_keys(&self, relations: &[&str]) -> BTreeSet<String> {
        let mut keys: BTreeSet<String> = relations.iter().map(|k| (*k).to_string()).collect();
        for t in &self.types {
            if let TypeKind::Object(o) = &t.kind
                && self.is_root(&t.name.node)
            {
                for f in &o.fields {
                    keys.insert(format!("{}.{}", t.name.node, f.node.name.node));
                }
            }
        }
        keys
    }

    /// What operation costs need: each object field's type, and the page size of each
    /// field with a `first` argument when `first` is omitted.
    pub fn shape(&self) -> Shape {
        let fields = self.types.iter().filter_map(|t| match &t.kind {
            TypeKind::Object(o) => {
                let fields = o.fields.iter().map(|f| {
                    let f = &f.node;
                    let first = f.arguments.iter().find(|a| a.node.name.node == "first");
                    let shape = FieldShape {
                        ty: named(&f.ty.node).to_string(),
                        default_first: first.map(|a| default_page_size(&a.node)),
                    };
                    (f.name.node.to_string(), shape)
                });
                Some((t.name.node.to_string(), fields.collect()))
            }
            _ => None,
        });
        Shape {
            query: self.query.clone(),
            mutation: self.mutation.clone(),
            fields: fields.collect(),
        }
    }

    /// Registers every type on `builder`, with resolvers from `registry`.
    pub fn register(
        &self,
        mut builder: SchemaBuilder,
        registry: &BTreeMap<&'static str, Resolve>,
        relations: &[&str],
    ) -> Result<SchemaBuilder, BuildError> {
        let needed = self.resolver_keys(relations);
        let mut used = BTreeSet::new();
        for t in &self.types {
            if t.extend {
                return Err(BuildError::Unsupported(format!(
                    "type extension `extend type {}`",
                    t.name.node
                )));
            }
            no_directives(&t.directives, &t.name.node)?;
            let name = t.name.node.to_string();
            let description = t.description.as_ref().map(|d| d.node.clone());
            match &t.kind {
                TypeKind::Scalar => {
                    let mut s = scalar(&name)?;
                    if let Some(d) = description {
                        s = s.description(d);
                    }
                    builder = builder.register(s);
                }
                TypeKind::Object(o) => {
                    if !o.implements.is_empty() {
                        return Err(BuildError::Unsupported(format!("interfaces on `{name}`")));
                    }
                    let mut obj = Object::new(&name);
                    if let Some(d) = description {
                        obj = obj.description(d);
                    }
                    for f in &o.fields {
                        let key = format!("{name}.{}", f.node.name.node);
                        let resolver = registry.get(key.as_str()).copied();
                        if resolver.is_some() {
                            used.insert(key.clone());
                        } else if needed.contains(&key) {
                            return Err(BuildError::MissingResolver(key));
                        }
                        obj = obj.field(field(&key, &f.node, resolver)?);
                    }
                    builder = builder.register(obj);
                }
                TypeKind::InputObject(i) => {
                    let mut obj = InputObject::new(&name);
                    if let Some(d) = description {
                        obj = obj.description(d);
                    }
                    for f in &i.fields {
                        obj = obj.field(input_value(&f.node, &name)?);
                    }
                    builder = builder.register(obj);
                }
                TypeKind::Enum(e) => {
                    let mut en = Enum::new(&name);
                    if let Some(d) = description {
                        en = en.description(d);
                    }
                    for v in &e.values {
                        let mut item = EnumItem::new(v.node.value.node.to_string());
                        if let Some(d) = &v.node.description {
                            item = item.description(d.node.clone());
                        }
                        if let Some(reason) = deprecation(&v.node.directives, &name)? {
                            item = item.deprecation(reason.as_deref());
                        }
                        en = en.item(item);
                    }
                    builder = builder.register(en);
                }
                TypeKind::Interface(_) | TypeKind::Union(_) => {
                    return Err(BuildError::Unsupported(format!(
                        "interface or union `{name}`"
                    )));
                }
            }
        }
        if let Some(stale) = registry.keys().find(|k| !used.contains(**k)) {
            return Err(BuildError::UnknownResolver((*stale).to_string()));
        }
        Ok(builder)
    }
}

pub fn type_ref(t: &async_graphql::parser::types::Type) -> TypeRef {
    let base = match &t.base {
        BaseType::Named(n) => TypeRef::Named(n.to_string().into()),
        BaseType::List(inner) => TypeRef::List(Box::new(type_ref(inner))),
    };
    if t.nullable {
        base
    } else {
        TypeRef::NonNull(Box::new(base))
    }
}

fn named(t: &async_graphql::parser::types::Type) -> &str {
    match &t.base {
        BaseType::Named(n) => n.as_str(),
        BaseType::List(inner) => named(inner),
    }
}

/// The page size of `first` when omitted: its default value, else the number the
/// generated description gives ("At most this many items; 20 when omitted, at most
/// 100."), else [`FALLBACK_PAGE_SIZE`].
fn default_page_size(first: &InputValueDefinition) -> u64 {
    let default = first.default_value.as_ref().and_then(|v| match &v.node {
        Value::Number(n) => n.as_u64(),
        _ => None,
    });
    let described = || {
        let text = &first.description.as_ref()?.node;
        let before = &text[..text.find(" when omitted")?];
        before
            .rsplit(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    default.or_else(described).unwrap_or(FALLBACK_PAGE_SIZE)
}

fn field(key: &str, f: &FieldDefinition, resolver: Option<Resolve>) -> Result<Field, BuildError> {
    let ty = type_ref(&f.ty.node);
    let name = f.name.node.to_string();
    let mut field = match resolver {
        Some(r) if f.ty.node.nullable => nullable_field(name, ty, r),
        Some(r) => Field::new(name, ty, r),
        None => plain_field(key.to_string(), name, ty),
    };
    if let Some(d) = &f.description {
        field = field.description(d.node.clone());
    }
    if let Some(reason) = deprecation(&f.directives, key)? {
        field = field.deprecation(reason.as_deref());
    }
    for a in &f.arguments {
        field = field.argument(input_value(&a.node, key)?);
    }
    Ok(field)
}

/// A nullable field's error leaves the field null and adds the error, as the GraphQL
/// spec says (the dynamic schema would otherwise drop the field from the response).
fn nullable_field(name: String, ty: TypeRef, r: Resolve) -> Field {
    Field::new(name, ty, move |ctx| {
        let c = ctx.ctx;
        match r(ctx) {
            FieldFuture::Value(v) => FieldFuture::Value(v),
            FieldFuture::Future(fut) => FieldFuture::new(async move {
                match fut.await {
                    Ok(v) => Ok(v),
                    Err(e) => {
                        c.add_error(c.set_error_path(e.into_server_error(c.item.pos)));
                        Ok(None)
                    }
                }
            }),
        }
    })
}

/// A field carried in its parent's value (the mapped proto message).
fn plain_field(key: String, name: String, ty: TypeRef) -> Field {
    let field_name = name.clone();
    Field::new(name, ty, move |ctx| {
        let value = match ctx.parent_value.as_value() {
            Some(Value::Object(o)) => o.get(field_name.as_str()).cloned(),
            _ => None,
        };
        match value {
            Some(Value::Null) => FieldFuture::Value(None),
            Some(v) => FieldFuture::Value(Some(FieldValue::value(v))),
            None => {
                let e = super::errors::internal(format!("no value for `{key}`"));
                FieldFuture::new(async move { Err::<Option<FieldValue>, _>(e) })
            }
        }
    })
}

fn input_value(v: &InputValueDefinition, owner: &str) -> Result<InputValue, BuildError> {
    let mut iv = InputValue::new(v.name.node.to_string(), type_ref(&v.ty.node));
    if let Some(d) = &v.description {
        iv = iv.description(d.node.clone());
    }
    if let Some(default) = &v.default_value {
        iv = iv.default_value(default.node.clone());
    }
    let what = format!("{owner}.{}", v.name.node);
    if let Some(reason) = deprecation(&v.directives, &what)? {
        iv = iv.deprecation(reason.as_deref());
    }
    Ok(iv)
}

fn no_directives(d: &[Positioned<ConstDirective>], what: &str) -> Result<(), BuildError> {
    match d.first() {
        Some(x) => Err(BuildError::Unsupported(format!(
            "directive @{} on `{what}`",
            x.node.name.node
        ))),
        None => Ok(()),
    }
}

/// `@deprecated(reason: …)`: `Some(reason)`; any other directive is unsupported, so
/// that nothing in the SDL is silently left out of the served schema.
fn deprecation(
    d: &[Positioned<ConstDirective>],
    what: &str,
) -> Result<Option<Option<String>>, BuildError> {
    let mut found = None;
    for x in d {
        if x.node.name.node != "deprecated" {
            return no_directives(std::slice::from_ref(x), what).map(|_| None);
        }
        let reason = x.node.get_argument("reason").and_then(|v| match &v.node {
            Value::String(s) => Some(s.clone()),
            _ => None,
        });
        found = Some(reason);
    }
    Ok(found)
}

/// The custom scalars this BFF knows how to check. A new scalar in the SDL needs a
/// line here (and a mapping in `keel::graphql`), so it fails the build instead of
/// passing anything through.
fn scalar(name: &str) -> Result<Scalar, BuildError> {
    match name {
        "Money" => Ok(Scalar::new(name).validator(|v| match v {
            Value::Number(n) => n.as_i64().is_some(),
            _ => false,
        })),
        "DateTime" => Ok(Scalar::new(name).validator(|v| match v {
            Value::String(s) => chrono::DateTime::parse_from_rfc3339(s).is_ok(),
            _ => false,
        })),
        other => Err(BuildError::Unsupported(format!("scalar `{other}`"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_has_field_types_and_page_sizes() {
        let sdl = Sdl::parse(
            r#"type Query {
                 items("At most this many items; 20 when omitted, at most 100." first: Int): Page!
                 seven(first: Int = 7): Page
                 plain(first: Int): [Page!]!
               }
               type Page { id: ID! }"#,
        )
        .expect("parses");
        let shape = sdl.shape();
        let query = &shape.fields["Query"];
        let page_of = |f: &str| query[f].default_first;
        assert_eq!(page_of("items"), Some(20));
        assert_eq!(page_of("seven"), Some(7));
        assert_eq!(page_of("plain"), Some(FALLBACK_PAGE_SIZE));
        assert_eq!(query["plain"].ty, "Page");
        assert_eq!(shape.fields["Page"]["id"].default_first, None);
        assert_eq!((shape.query.as_str(), shape.mutation), ("Query", None));
    }
}
