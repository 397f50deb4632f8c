//! Naming rules and the words each target language reserves.

use heck::{ToLowerCamelCase, ToPascalCase, ToSnakeCase};

pub fn is_pascal(s: &str) -> bool {
    !s.is_empty()
        && s.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && s.chars().all(|c| c.is_ascii_alphanumeric())
        && s.to_pascal_case() == s
}

pub fn is_snake(s: &str) -> bool {
    !s.is_empty()
        && s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !s.contains("__")
        && !s.ends_with('_')
}

pub fn snake(s: &str) -> String {
    s.to_snake_case()
}

pub fn pascal(s: &str) -> String {
    s.to_pascal_case()
}

pub fn camel(s: &str) -> String {
    s.to_lower_camel_case()
}

pub fn kebab(s: &str) -> String {
    s.replace('_', "-")
}

/// English plural good enough for table and field names (`order_details`, `categories`).
pub fn plural(s: &str) -> String {
    if let Some(stem) = s.strip_suffix('y')
        && !stem.ends_with(['a', 'e', 'i', 'o', 'u'])
    {
        return format!("{stem}ies");
    }
    if s.ends_with('s') || s.ends_with('x') || s.ends_with("ch") || s.ends_with("sh") {
        return format!("{s}es");
    }
    format!("{s}s")
}

pub const RUST: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern",
    "false", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut",
    "pub", "ref", "return", "self", "static", "struct", "super", "trait", "true", "type", "unsafe",
    "use", "where", "while", "abstract", "become", "box", "do", "final", "macro", "override",
    "priv", "try", "typeof", "unsized", "virtual", "yield",
];

/// `name` as a Rust identifier the way prost-build spells a proto name: a keyword as a
/// raw identifier (`r#type`), the four that cannot be raw with `_` appended (`self_`).
pub fn rust_ident(name: &str) -> String {
    match name {
        "Self" | "self" | "super" | "extern" | "crate" => format!("{name}_"),
        _ if RUST.contains(&name) => format!("r#{name}"),
        _ => name.to_string(),
    }
}

const RUST_TYPES: &[&str] = &[
    "Self", "String", "Vec", "Option", "Result", "Box", "Some", "None", "Ok", "Err", "Uuid",
    "Money",
];

const PROTO: &[&str] = &[
    "syntax",
    "import",
    "package",
    "option",
    "message",
    "enum",
    "service",
    "rpc",
    "returns",
    "stream",
    "oneof",
    "map",
    "reserved",
    "repeated",
    "optional",
    "required",
    "extend",
    "extensions",
    "weak",
    "public",
    "to",
    "max",
];

const GRAPHQL_TYPES: &[&str] = &[
    "Query",
    "Mutation",
    "Subscription",
    "String",
    "Int",
    "Float",
    "Boolean",
    "ID",
    "DateTime",
    "PageInfo",
    "Node",
    "Error",
];

/// SQLite key words that cannot name a table or column unquoted (each tried in
/// `CREATE TABLE`, `CREATE INDEX`, `INSERT`, `SELECT … ORDER BY`, `UPDATE`, `DELETE`).
pub const SQLITE: &[&str] = &[
    "add",
    "all",
    "alter",
    "and",
    "as",
    "autoincrement",
    "between",
    "case",
    "cast",
    "check",
    "collate",
    "commit",
    "constraint",
    "create",
    "current_date",
    "current_time",
    "current_timestamp",
    "default",
    "deferrable",
    "delete",
    "distinct",
    "drop",
    "else",
    "escape",
    "except",
    "exists",
    "foreign",
    "from",
    "group",
    "having",
    "if",
    "in",
    "index",
    "insert",
    "intersect",
    "into",
    "is",
    "isnull",
    "join",
    "limit",
    "not",
    "nothing",
    "notnull",
    "null",
    "on",
    "or",
    "order",
    "primary",
    "raise",
    "references",
    "returning",
    "select",
    "set",
    "table",
    "then",
    "to",
    "transaction",
    "union",
    "unique",
    "update",
    "using",
    "values",
    "when",
    "where",
];

/// PostgreSQL's reserved key words: `pg_get_keywords()` with `catcode = 'R'` on
/// PostgreSQL 15 (`codegen/tests/reserved_words.rs` compares them).
pub const SQL: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "both",
    "case",
    "cast",
    "check",
    "collate",
    "column",
    "constraint",
    "create",
    "current_catalog",
    "current_date",
    "current_role",
    "current_time",
    "current_timestamp",
    "current_user",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "false",
    "fetch",
    "for",
    "foreign",
    "from",
    "grant",
    "group",
    "having",
    "in",
    "initially",
    "intersect",
    "into",
    "lateral",
    "leading",
    "limit",
    "localtime",
    "localtimestamp",
    "not",
    "null",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "placing",
    "primary",
    "references",
    "returning",
    "select",
    "session_user",
    "some",
    "symmetric",
    "table",
    "then",
    "to",
    "trailing",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "variadic",
    "when",
    "where",
    "window",
    "with",
];

/// Names the generator adds itself; a spec field with one of them would collide.
pub const GENERATED_COLUMNS: &[&str] = &[
    "version",
    "page_size",
    "page_token",
    "expected_version",
    "idempotency_key",
];

/// Whether PostgreSQL or SQLite reserves `name` (a table or column name would need
/// quoting).
pub fn sql_reserved(name: &str) -> bool {
    SQL.contains(&name) || SQLITE.contains(&name)
}

/// Which languages reserve `name` as a field/column identifier.
pub fn field_collisions(name: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    if RUST.contains(&name) {
        out.push("Rust");
    }
    if PROTO.contains(&name) {
        out.push("protobuf");
    }
    if SQL.contains(&name) {
        out.push("SQL");
    } else if SQLITE.contains(&name) {
        out.push("SQLite");
    }
    out
}

/// Which languages reserve `name` as a type name.
pub fn type_collisions(name: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    if RUST_TYPES.contains(&name) || RUST.contains(&name.to_lowercase().as_str()) && name == "Self"
    {
        out.push("Rust");
    }
    if PROTO.contains(&name.to_lowercase().as_str()) {
        out.push("protobuf");
    }
    if GRAPHQL_TYPES.contains(&name) {
        out.push("GraphQL");
    }
    out
}

/// Which languages reserve a derived form of the operation name `op` (its snake_case
/// method name in Rust: `Return` would be `fn return`).
pub fn operation_collisions(op: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    if RUST.contains(&snake(op).as_str()) {
        out.push("Rust");
    }
    out
}

/// Which languages reserve `name` as a service (module, package) name.
pub fn service_collisions(name: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    if RUST.contains(&name) {
        out.push("Rust");
    }
    if PROTO.contains(&name) {
        out.push("protobuf");
    }
    if name == "bff" {
        out.push("the generator (the gateway is called `bff`)");
    }
    if name == "system" {
        out.push("the generator (its crate `generated/rust/system` holds the deployables)");
    }
    if name == "launcher" {
        out.push("the generator (its crate `generated/rust/launcher` starts the deployables)");
    }
    out
}

/// Kubernetes object names (a Service's is a DNS-1035 label) and PostgreSQL and MongoDB
/// database names keep at most 63 bytes; PostgreSQL silently cuts longer ones.
pub const MAX_DERIVED_NAME: usize = 63;

/// The longest name derived from a service's in each target that bounds names: (the
/// target, the derived name). `cqrs`: the service runs as three deployables
/// (`<name>-event-handler` is the longest) with an event store database.
pub fn service_bounded_names(
    system: &str,
    service: &str,
    cqrs: bool,
) -> [(&'static str, String); 2] {
    if cqrs {
        [
            (
                "Kubernetes (a Service name)",
                format!("{}-event-handler", kebab(service)),
            ),
            (
                "MongoDB and PostgreSQL (a database name)",
                format!("{system}_{service}_events"),
            ),
        ]
    } else {
        [
            ("Kubernetes (a Service name)", kebab(service)),
            (
                "PostgreSQL (a database name)",
                format!("{system}_{service}"),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals() {
        assert_eq!(plural("order_detail"), "order_details");
        assert_eq!(plural("category"), "categories");
        assert_eq!(plural("day"), "days");
        assert_eq!(plural("box"), "boxes");
    }

    #[test]
    fn operations_whose_method_name_is_a_keyword() {
        for op in ["Return", "Type", "Match", "Loop", "Async", "Self", "Move"] {
            assert_eq!(operation_collisions(op), ["Rust"], "{op}");
        }
        assert!(operation_collisions("ReturnBook").is_empty());
    }

    #[test]
    fn cases() {
        assert!(is_pascal("CartItem"));
        assert!(!is_pascal("cartItem"));
        assert!(!is_pascal("Cart_Item"));
        assert!(is_snake("cart_id"));
        assert!(!is_snake("cartId"));
        assert!(!is_snake("_x"));
    }
}
