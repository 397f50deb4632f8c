//! The browser's side of the BFF, from the same GraphQL model as the SDL and the
//! resolvers (`System::graphql`), so none of them can disagree:
//!
//! - `web/client.js`: a typed GraphQL client (plain ES module, JSDoc types that
//!   `tsc --checkJs` checks): one async function per root field, with `@typedef`s of
//!   every object and input type; the session (`login`, `refreshSession`, `logout`; the
//!   access token in memory, the refresh token in `localStorage`, one refresh and retry
//!   on `UNAUTHENTICATED`) and coded errors (`ApiError`: `extensions.code`,
//!   `fieldViolations`).
//! - `web/backoffice.js`: what the framework's generic back-office screens
//!   (`services/keel/web/back-office`) need per entity that has back-office use cases:
//!   its fields with type and the spec's constraints, and the client functions of its
//!   list, get, create, update and delete.
//!
//! Both are served by the BFF under `/assets/gen/` (the generated BFF crate compiles them
//! in). Text from tera templates under `templates/web/`.

use serde::Serialize;

use crate::emit::{EmitError, GeneratedFile, header, render};
use crate::ir::*;
use crate::names;

const CLIENT: &str = include_str!("../../../templates/web/client.js.tera");
const BACKOFFICE: &str = include_str!("../../../templates/web/backoffice.js.tera");

/// `web/client.js` and `web/backoffice.js`, or nothing when the BFF exposes nothing.
pub fn emit(system: &System) -> Result<Vec<GeneratedFile>, EmitError> {
    if system.graphql.is_empty() {
        return Ok(Vec::new());
    }
    let api = &system.graphql;
    let client = ClientView {
        header: header("//"),
        system: system.name.clone(),
        currency: system.money.currency.clone(),
        minor_units: system.money.minor_units,
        objects: api.objects.iter().map(|o| object_typedef(api, o)).collect(),
        inputs: api.inputs.iter().map(input_typedef).collect(),
        operations: api
            .queries
            .iter()
            .filter(|f| f.call.is_some())
            .map(|f| operation(api, f, "query"))
            .chain(api.mutations.iter().map(|f| operation(api, f, "mutation")))
            .collect(),
    };
    let backoffice = BackOfficeView {
        header: header("//"),
        system: system.name.clone(),
        currency: system.money.currency.clone(),
        minor_units: system.money.minor_units,
        entities: back_office(system)?,
    };
    let render_js = |name: &str, source: &str, view: &dyn erased::View| {
        let ctx = view.context()?;
        let text = render(name, source, &ctx)?;
        Ok::<_, EmitError>(format!("{}\n", text.trim_end()))
    };
    Ok(vec![
        GeneratedFile {
            path: "web/backoffice.js".into(),
            contents: render_js("web/backoffice.js.tera", BACKOFFICE, &backoffice)?,
        },
        GeneratedFile {
            path: "web/client.js".into(),
            contents: render_js("web/client.js.tera", CLIENT, &client)?,
        },
    ])
}

mod erased {
    use super::EmitError;

    /// A view a template renders.
    pub trait View {
        fn context(&self) -> Result<tera::Context, EmitError>;
    }

    impl<T: serde::Serialize> View for T {
        fn context(&self) -> Result<tera::Context, EmitError> {
            tera::Context::from_serialize(self)
                .map_err(|e| EmitError::Other(format!("web context: {e}")))
        }
    }
}

#[derive(Serialize)]
struct ClientView {
    header: String,
    system: String,
    currency: String,
    minor_units: u8,
    objects: Vec<TypedefView>,
    inputs: Vec<TypedefView>,
    operations: Vec<OperationView>,
}

#[derive(Serialize)]
struct TypedefView {
    name: String,
    /// One comment line (no `*/`).
    doc: String,
    props: Vec<PropView>,
}

#[derive(Serialize)]
struct PropView {
    name: String,
    /// The JSDoc type (`string | null`).
    ty: String,
    /// `[name]`: may be left out.
    optional: bool,
    doc: String,
}

#[derive(Serialize)]
struct OperationView {
    /// The function and the root field: `viewProducts`.
    name: String,
    doc: String,
    /// `query` or `mutation`.
    kind: &'static str,
    /// The operation's variable declarations: `($first: Int, $after: String)` or empty.
    variables: String,
    /// The field's arguments: `(first: $first, after: $after)` or empty.
    arguments: String,
    /// The function takes the `input` argument's value itself (mutations).
    takes_input: bool,
    /// The JSDoc type of the function's first parameter; empty without one.
    param_ty: String,
    /// The first parameter may be left out (every argument is optional).
    param_optional: bool,
    /// The JSDoc type of what it resolves to.
    result_ty: String,
    /// The default selection set (`{ id name … }`); empty for scalars.
    selection: String,
    /// The root field may be null (a get that found nothing: null, not an error).
    nullable: bool,
    /// `login`, `refreshSession`, `logout`, or empty.
    session: &'static str,
}

fn js_doc(doc: Option<&str>) -> String {
    doc.unwrap_or("")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace("*/", "*\\/")
}

/// The JSDoc type of a GraphQL type reference.
fn js_type(api: &GraphqlApi, ty: &GraphqlTypeRef) -> String {
    let base = match ty.name.as_str() {
        "ID" | "String" | "DateTime" => "string".to_string(),
        "Int" | "Money" => "number".to_string(),
        "Boolean" => "boolean".to_string(),
        other if api.objects.iter().any(|o| o.name == other) => other.to_string(),
        other if api.inputs.iter().any(|i| i.name == other) => other.to_string(),
        other => format!("unknown /* {other} */"),
    };
    let t = if ty.list { format!("{base}[]") } else { base };
    if ty.non_null {
        t
    } else {
        format!("{t} | null")
    }
}

fn object_typedef(api: &GraphqlApi, o: &ObjectType) -> TypedefView {
    TypedefView {
        name: o.name.clone(),
        doc: js_doc(o.doc.as_deref()),
        props: o
            .fields
            .iter()
            .map(|f| {
                let relation = matches!(f.resolve, FieldSource::Relation(_));
                let mut doc = js_doc(f.doc.as_deref());
                if relation {
                    doc = format!("Only when the selection asks for it. {doc}");
                }
                PropView {
                    name: f.name.clone(),
                    ty: js_type(api, &f.ty),
                    optional: relation,
                    doc,
                }
            })
            .collect(),
    }
}

fn input_typedef(i: &InputType) -> TypedefView {
    TypedefView {
        name: i.name.clone(),
        doc: js_doc(i.doc.as_deref()),
        props: i.fields.iter().map(arg_prop).collect(),
    }
}

fn arg_prop(a: &GraphqlArg) -> PropView {
    // Inputs never name object types; `js_type` needs the API only for the names.
    let api = GraphqlApi::default();
    let mut ty = js_type(&api, &a.ty);
    if ty.starts_with("unknown") {
        ty = a.ty.name.clone();
        if a.ty.list {
            ty.push_str("[]");
        }
        if !a.ty.non_null {
            ty.push_str(" | null");
        }
    }
    PropView {
        name: a.name.clone(),
        ty,
        optional: !a.ty.non_null || a.default.is_some(),
        doc: js_doc(a.doc.as_deref()),
    }
}

/// The selection set that fetches every field of `type_name` but those resolved by
/// another call (relations), children and pages included.
fn selection(api: &GraphqlApi, type_name: &str, depth: usize) -> String {
    let Some(o) = api.objects.iter().find(|o| o.name == type_name) else {
        return String::new();
    };
    if depth > 8 {
        return String::new();
    }
    let mut parts = Vec::new();
    for f in &o.fields {
        if matches!(f.resolve, FieldSource::Relation(_)) || f.args.iter().any(|a| a.ty.non_null) {
            continue;
        }
        if api.objects.iter().any(|x| x.name == f.ty.name) {
            let inner = selection(api, &f.ty.name, depth + 1);
            if !inner.is_empty() {
                parts.push(format!("{} {inner}", f.name));
            }
        } else {
            parts.push(f.name.clone());
        }
    }
    if parts.is_empty() {
        return String::new();
    }
    format!("{{ {} }}", parts.join(" "))
}

fn operation(api: &GraphqlApi, f: &RootField, kind: &'static str) -> OperationView {
    let variables = if f.args.is_empty() {
        String::new()
    } else {
        let vars: Vec<String> = f
            .args
            .iter()
            .map(|a| format!("${}: {}", a.name, a.ty))
            .collect();
        format!("({})", vars.join(", "))
    };
    let arguments = if f.args.is_empty() {
        String::new()
    } else {
        let args: Vec<String> = f
            .args
            .iter()
            .map(|a| format!("{0}: ${0}", a.name))
            .collect();
        format!("({})", args.join(", "))
    };
    let takes_input = f.args.len() == 1 && f.args[0].name == "input";
    let (param_ty, param_optional) = if f.args.is_empty() {
        (String::new(), true)
    } else if takes_input {
        (js_type(api, &f.args[0].ty), false)
    } else {
        let props: Vec<String> = f
            .args
            .iter()
            .map(|a| {
                let optional = !a.ty.non_null || a.default.is_some();
                let q = if optional { "?" } else { "" };
                let ty = js_type(api, &a.ty);
                format!("{}{q}: {ty}", a.name)
            })
            .collect();
        let optional = f.args.iter().all(|a| !a.ty.non_null || a.default.is_some());
        (format!("{{{}}}", props.join(", ")), optional)
    };
    let (param_ty, param_optional) = if f.session == Some(SessionField::Refresh) {
        // The stored refresh token when none is given.
        (param_ty.replace("refreshToken:", "refreshToken?:"), true)
    } else {
        (param_ty, param_optional)
    };
    let session = match f.session {
        Some(SessionField::Login) => "login",
        Some(SessionField::Refresh) => "refreshSession",
        Some(SessionField::Logout) => "logout",
        None => "",
    };
    OperationView {
        name: f.name.clone(),
        doc: js_doc(f.doc.as_deref()),
        kind,
        variables,
        arguments,
        takes_input,
        param_ty,
        param_optional,
        result_ty: js_type(api, &f.ty),
        selection: selection(api, &f.ty.name, 0),
        nullable: !f.ty.non_null,
        session,
    }
}

// ------------------------------------------------------------------ back-office

#[derive(Serialize)]
struct BackOfficeView {
    header: String,
    system: String,
    currency: String,
    minor_units: u8,
    entities: Vec<EntityView>,
}

#[derive(Serialize)]
struct EntityView {
    name: String,
    /// The JSON of its metadata (`Entity` in the template's typedefs).
    json: String,
}

#[derive(Serialize)]
struct EntityMeta {
    name: String,
    label: String,
    plural: String,
    doc: Option<String>,
    fields: Vec<FieldMeta>,
    operations: Operations,
}

#[derive(Serialize, Default)]
struct Operations {
    #[serde(skip_serializing_if = "Option::is_none")]
    list: Option<ListMeta>,
    #[serde(skip_serializing_if = "Option::is_none")]
    get: Option<OpMeta>,
    #[serde(skip_serializing_if = "Option::is_none")]
    create: Option<OpMeta>,
    #[serde(skip_serializing_if = "Option::is_none")]
    update: Option<OpMeta>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delete: Option<OpMeta>,
}

#[derive(Serialize)]
struct OpMeta {
    /// The client function (and GraphQL root field).
    field: String,
    audience: &'static str,
}

#[derive(Serialize)]
struct ListMeta {
    field: String,
    audience: &'static str,
    #[serde(rename = "pageSize")]
    page_size: Option<PageSizeMeta>,
    /// The equality filters it takes (GraphQL argument names).
    filters: Vec<String>,
}

#[derive(Serialize)]
struct PageSizeMeta {
    default: u32,
    max: u32,
}

#[derive(Serialize)]
struct FieldMeta {
    /// The GraphQL name (what field violations name).
    name: String,
    label: String,
    /// The spec's type: `uuid`, `string`, `text`, `email`, `int`, `money`, `timestamp`,
    /// `bool`, `ref`.
    #[serde(rename = "type")]
    ty: &'static str,
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    reference: Option<String>,
    optional: bool,
    readonly: bool,
    #[serde(rename = "minLen", skip_serializing_if = "Option::is_none")]
    min_len: Option<u32>,
    #[serde(rename = "maxLen", skip_serializing_if = "Option::is_none")]
    max_len: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    min: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max: Option<i64>,
    #[serde(rename = "oneOf", skip_serializing_if = "Vec::is_empty")]
    one_of: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    default: Option<DefaultValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    doc: Option<String>,
}

fn audience(a: Audience) -> &'static str {
    match a {
        Audience::Public => "public",
        Audience::Customer => "customer",
        Audience::BackOffice => "back-office",
        Audience::Internal => "internal",
    }
}

fn spec_type(ty: &FieldType) -> &'static str {
    match ty {
        FieldType::Uuid => "uuid",
        FieldType::String => "string",
        FieldType::Text => "text",
        FieldType::Email => "email",
        FieldType::Int => "int",
        FieldType::Money => "money",
        FieldType::Timestamp => "timestamp",
        FieldType::Bool => "bool",
        FieldType::Ref(_) => "ref",
    }
}

/// `created_at` → `Created at`.
fn label(snake: &str) -> String {
    let words = snake.replace('_', " ");
    let mut c = words.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// `Product` → `Products`, `Category` → `Categories`, `Box` → `Boxes`.
fn plural(name: &str) -> String {
    let lower = name.to_lowercase();
    if lower.ends_with('y')
        && !lower.ends_with("ay")
        && !lower.ends_with("ey")
        && !lower.ends_with("oy")
    {
        format!("{}ies", &name[..name.len() - 1])
    } else if ["s", "x", "z", "ch", "sh"]
        .iter()
        .any(|s| lower.ends_with(s))
    {
        format!("{name}es")
    } else {
        format!("{name}s")
    }
}

/// Every entity of a CRUD service that exposes a back-office use case, with the
/// exposed list, get, create, update and delete of that service.
fn back_office(system: &System) -> Result<Vec<EntityView>, EmitError> {
    let exposed = |svc: &Service, op: &Operation| -> Option<String> {
        system
            .bff
            .queries
            .iter()
            .chain(&system.bff.mutations)
            .find(|b| b.service == svc.name && b.operation == op.name)
            .map(|b| b.field.clone())
    };
    let mut out = Vec::new();
    for svc in system
        .services
        .iter()
        .filter(|s| s.pattern == Pattern::Crud)
    {
        let has_back_office = svc
            .operations
            .iter()
            .any(|op| op.audience == Audience::BackOffice && exposed(svc, op).is_some());
        if !has_back_office {
            continue;
        }
        let Some(entity) = system.entities.iter().find(|e| e.name == svc.entity) else {
            continue;
        };
        let mut ops = Operations::default();
        for op in &svc.operations {
            if op.output.as_deref().is_some_and(|o| o != entity.name) {
                continue;
            }
            let Some(field) = exposed(svc, op) else {
                continue;
            };
            let meta = || OpMeta {
                field: field.clone(),
                audience: audience(op.audience),
            };
            match op.kind {
                OperationKind::List if ops.list.is_none() => {
                    ops.list = Some(ListMeta {
                        field: field.clone(),
                        audience: audience(op.audience),
                        page_size: op.page_size.map(|p| PageSizeMeta {
                            default: p.default,
                            max: p.max,
                        }),
                        filters: op.filter.iter().map(|f| names::camel(f)).collect(),
                    })
                }
                OperationKind::Get if ops.get.is_none() => ops.get = Some(meta()),
                OperationKind::Create if ops.create.is_none() => ops.create = Some(meta()),
                OperationKind::Update if ops.update.is_none() => ops.update = Some(meta()),
                OperationKind::Delete if ops.delete.is_none() => ops.delete = Some(meta()),
                _ => {}
            }
        }
        let fields = entity
            .fields
            .iter()
            .map(|f| FieldMeta {
                name: names::camel(&f.name),
                label: label(&f.name),
                ty: spec_type(&f.ty),
                reference: match &f.ty {
                    FieldType::Ref(e) => Some(e.clone()),
                    _ => None,
                },
                optional: f.optional,
                readonly: f.readonly || f.name == "id",
                min_len: f.constraints.min_len,
                max_len: f.constraints.max_len,
                min: f.constraints.min,
                max: f.constraints.max,
                one_of: f.constraints.one_of.clone(),
                default: f.default.clone(),
                doc: f.doc.clone(),
            })
            .collect();
        let meta = EntityMeta {
            name: entity.name.clone(),
            label: label(&names::snake(&entity.name)),
            plural: plural(&entity.name),
            doc: entity.doc.clone(),
            fields,
            operations: ops,
        };
        let json = serde_json::to_string_pretty(&meta)
            .map_err(|e| EmitError::Other(format!("back-office metadata: {e}")))?;
        out.push(EntityView {
            name: entity.name.clone(),
            json: json.replace('\n', "\n  "),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::{label, plural};

    #[test]
    fn labels_and_plurals() {
        assert_eq!(label("created_at"), "Created at");
        assert_eq!(plural("Product"), "Products");
        assert_eq!(plural("Category"), "Categories");
        assert_eq!(plural("Day"), "Days");
        assert_eq!(plural("Box"), "Boxes");
    }
}
