//! The BFF's GraphQL schema (SDL): `graphql/schema.graphql`, rendered from the API
//! `graphql_model` decided (`System::graphql`): the shapes are documented there.

use serde::Serialize;

use crate::emit::{EmitError, GeneratedFile, header, render};
use crate::ir::{DefaultValue, GraphqlApi, GraphqlArg, InputType, ObjectType, RootField, System};

const TEMPLATE: &str = include_str!("../../../templates/graphql/schema.graphql.tera");

/// `graphql/schema.graphql`, or nothing when the BFF exposes no operation.
pub fn emit(system: &System) -> Result<Vec<GeneratedFile>, EmitError> {
    if system.graphql.is_empty() {
        return Ok(Vec::new());
    }
    let schema = schema(system, &system.graphql);
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

#[derive(Serialize, Clone)]
struct ArgView {
    desc: String,
    name: String,
    ty: String,
}

fn schema(sys: &System, api: &GraphqlApi) -> SchemaView {
    let mut types = vec![date_time(), money(sys)];
    types.push(root("Query", "What clients can read.", &api.queries));
    if !api.mutations.is_empty() {
        types.push(root("Mutation", "What clients can change.", &api.mutations));
    }
    types.extend(api.objects.iter().map(object));
    types.extend(api.inputs.iter().map(input));
    SchemaView {
        header: header("#"),
        notes: vec![
            format!(
                "# The GraphQL API of the `{}` BFF. Money is integer minor units of {}; times are UTC.",
                sys.name, sys.money.currency
            ),
            "# Versions (`version`, `expectedVersion`) are Int although int64 in proto: one aggregate".into(),
            "# never gets near 2^31 - 1 events, and Int stays exact in JavaScript clients.".into(),
        ],
        types,
    }
}

fn date_time() -> TypeView {
    scalar(
        "DateTime",
        "An instant in UTC as an RFC 3339 string with a `Z` offset, e.g. `2024-05-01T09:30:00Z`.",
    )
}

fn money(sys: &System) -> TypeView {
    let m = &sys.money;
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

fn root(name: &str, doc: &str, fields: &[RootField]) -> TypeView {
    TypeView {
        kind: "type",
        name: name.into(),
        desc: description(doc, ""),
        comments: Vec::new(),
        fields: fields
            .iter()
            .map(|f| field(f.doc.as_deref(), &f.name, &f.args, f.ty.to_string()))
            .collect(),
    }
}

fn object(o: &ObjectType) -> TypeView {
    TypeView {
        kind: "type",
        name: o.name.clone(),
        desc: description(o.doc.as_deref().unwrap_or(""), ""),
        comments: o.notes.iter().map(|n| format!("# {n}")).collect(),
        fields: o
            .fields
            .iter()
            .map(|f| field(f.doc.as_deref(), &f.name, &f.args, f.ty.to_string()))
            .collect(),
    }
}

fn input(i: &InputType) -> TypeView {
    TypeView {
        kind: "input",
        name: i.name.clone(),
        desc: description(i.doc.as_deref().unwrap_or(""), ""),
        comments: Vec::new(),
        fields: i
            .fields
            .iter()
            .map(|f| {
                let ty = match &f.default {
                    Some(DefaultValue::Bool(b)) => format!("{} = {b}", f.ty),
                    Some(DefaultValue::Int(i)) => format!("{} = {i}", f.ty),
                    Some(DefaultValue::Str(s)) => {
                        format!("{} = {}", f.ty, serde_json::Value::String(s.clone()))
                    }
                    None => f.ty.to_string(),
                };
                field(f.doc.as_deref(), &f.name, &[], ty)
            })
            .collect(),
    }
}

fn field(doc: Option<&str>, name: &str, args: &[GraphqlArg], ty: String) -> FieldView {
    let args: Vec<ArgView> = args
        .iter()
        .map(|a| ArgView {
            desc: description(a.doc.as_deref().unwrap_or(""), "    "),
            name: a.name.clone(),
            ty: a.ty.to_string(),
        })
        .collect();
    FieldView {
        desc: description(doc.unwrap_or(""), "  "),
        name: name.to_string(),
        args_inline: args.iter().all(|a| a.desc.is_empty()),
        args,
        ty,
    }
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
