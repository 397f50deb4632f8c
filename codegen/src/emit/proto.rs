//! `.proto` files: one per service, rendered from the proto package the IR computed.
//!
//! Nothing is decided here: messages, their order, field numbers, labels, imports and
//! services all come from `Service.proto`. This module only spells them in proto3, in
//! buf's style (lower_snake fields, PascalCase messages, `<Rpc>Request`/`<Rpc>Response`).

use serde::Serialize;

use crate::emit::{EmitError, GeneratedFile, header, render};
use crate::ir::{Label, Message, MessageField, ProtoPackage, Service, System};

const TEMPLATE: &str = include_str!("../../../templates/proto/package.proto.tera");

/// One `proto/<package path>.proto` per service, in service order.
pub fn emit(system: &System) -> Result<Vec<GeneratedFile>, EmitError> {
    system
        .services
        .iter()
        .map(|svc| {
            let view = FileView::new(svc);
            let ctx = tera::Context::from_serialize(&view)
                .map_err(|e| EmitError::Other(format!("proto context for `{}`: {e}", svc.name)))?;
            let contents = render("proto/package.proto.tera", TEMPLATE, &ctx)?;
            let contents = format!("{}\n", contents.trim_end());
            Ok(GeneratedFile {
                path: format!("proto/{}", svc.proto.file),
                contents,
            })
        })
        .collect()
}

#[derive(Serialize)]
struct FileView {
    header: String,
    package: String,
    imports: Vec<String>,
    messages: Vec<MessageView>,
    services: Vec<ServiceView>,
}

#[derive(Serialize)]
struct MessageView {
    name: String,
    doc: Vec<String>,
    /// No fields, no oneof, nothing reserved: rendered as `message X {}`.
    empty: bool,
    fields: Vec<FieldView>,
    oneof: Option<OneofView>,
    /// `4, 6 to 8`, or empty.
    reserved_numbers: String,
    /// `"a", "b"`, or empty.
    reserved_names: String,
}

#[derive(Serialize)]
struct OneofView {
    name: String,
    fields: Vec<FieldView>,
}

#[derive(Serialize)]
struct FieldView {
    doc: Vec<String>,
    /// `optional `, `repeated ` or nothing (proto3's implicit presence).
    label: &'static str,
    ty: String,
    name: String,
    number: u32,
}

#[derive(Serialize)]
struct ServiceView {
    name: String,
    doc: Vec<String>,
    rpcs: Vec<RpcView>,
}

#[derive(Serialize)]
struct RpcView {
    doc: Vec<String>,
    method: String,
    request: String,
    response: String,
}

impl FileView {
    fn new(svc: &Service) -> FileView {
        let p: &ProtoPackage = &svc.proto;
        FileView {
            header: header("//"),
            package: p.package.clone(),
            imports: p.imports.clone(),
            messages: p.messages.iter().map(MessageView::new).collect(),
            services: p
                .services
                .iter()
                .map(|s| ServiceView {
                    name: s.name.clone(),
                    doc: comment(s.doc.as_deref()),
                    rpcs: s
                        .methods
                        .iter()
                        .map(|r| RpcView {
                            // The RPC carries no doc of its own: it is the operation's.
                            doc: comment(svc.operation(&r.method).and_then(|o| o.doc.as_deref())),
                            method: r.method.clone(),
                            request: r.request.clone(),
                            response: r.response.clone(),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

impl MessageView {
    fn new(m: &Message) -> MessageView {
        let oneof = m.oneof.as_ref().map(|(name, fields)| OneofView {
            name: name.clone(),
            // A oneof member never carries a label.
            fields: fields
                .iter()
                .map(|f| FieldView {
                    label: "",
                    ..FieldView::new(f)
                })
                .collect(),
        });
        MessageView {
            name: m.name.clone(),
            doc: comment(m.doc.as_deref()),
            empty: m.fields.is_empty()
                && oneof.is_none()
                && m.reserved_numbers.is_empty()
                && m.reserved_names.is_empty(),
            fields: m.fields.iter().map(FieldView::new).collect(),
            oneof,
            reserved_numbers: number_ranges(&m.reserved_numbers),
            reserved_names: m
                .reserved_names
                .iter()
                .map(|n| format!("\"{n}\""))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

impl FieldView {
    fn new(f: &MessageField) -> FieldView {
        FieldView {
            doc: comment(f.doc.as_deref()),
            label: match f.label {
                Label::Required => "",
                Label::Optional => "optional ",
                Label::Repeated => "repeated ",
            },
            ty: f.ty.proto_name(),
            name: f.name.clone(),
            number: f.number,
        }
    }
}

/// `// ` lines for a doc (one per line of it); none without a doc.
fn comment(doc: Option<&str>) -> Vec<String> {
    let Some(doc) = doc else { return Vec::new() };
    doc.trim()
        .lines()
        .map(|l| {
            let l = l.trim_end();
            if l.is_empty() {
                "//".to_string()
            } else {
                format!("// {l}")
            }
        })
        .collect()
}

/// `1, 3 to 5, 9` from any list of numbers (sorted, duplicates dropped).
fn number_ranges(numbers: &[u32]) -> String {
    let mut n = numbers.to_vec();
    n.sort_unstable();
    n.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < n.len() {
        let mut j = i;
        while j + 1 < n.len() && n[j + 1] == n[j] + 1 {
            j += 1;
        }
        parts.push(if j > i {
            format!("{} to {}", n[i], n[j])
        } else {
            n[i].to_string()
        });
        i = j + 1;
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_ranges() {
        assert_eq!(number_ranges(&[]), "");
        assert_eq!(number_ranges(&[9, 3, 4, 5, 1, 4]), "1, 3 to 5, 9");
    }

    #[test]
    fn comments() {
        assert_eq!(comment(None), Vec::<String>::new());
        assert_eq!(comment(Some("a\n\nb ")), vec!["// a", "//", "// b"]);
    }
}
