//! One bad spec per class of error: each must be reported with its line and column
//! and say what was expected. Specs are inline so the positions can be read off.

use std::path::Path;

/// Loads `spec` and returns its rendered errors, one per line.
fn errors(spec: &str) -> Vec<String> {
    match codegen::load(Path::new("shop.yaml"), spec) {
        Ok(_) => panic!("spec was accepted:\n{spec}"),
        Err(e) => e
            .to_string()
            .lines()
            .filter(|l| l.starts_with("shop.yaml:"))
            .map(str::to_string)
            .collect(),
    }
}

/// Asserts that one of the errors is at `line`, at the column where `token` starts on
/// that line of `spec`, and contains every fragment.
#[track_caller]
fn assert_error(found: &[String], spec: &str, line: usize, token: &str, fragments: &[&str]) {
    let text = spec.lines().nth(line - 1).expect("line exists");
    let col = text
        .find(token)
        .unwrap_or_else(|| panic!("`{token}` not on line {line}: {text}"))
        + 1;
    let at = format!("shop.yaml:{line}:{col}: error: ");
    let hit = found
        .iter()
        .any(|e| e.starts_with(&at) && fragments.iter().all(|f| e.contains(f)));
    assert!(
        hit,
        "no error at {line}:{col} containing {fragments:?}; got:\n{}",
        found.join("\n")
    );
}

const VALID: &str = r#"system: mini
money: { currency: EUR, minor_units: 2 }
entities:
  Product:
    fields:
      id: uuid
      name: { type: string, min_len: 1, max_len: 50 }
      price: { type: money, min: 0 }
services:
  product:
    pattern: crud
    entity: Product
    store: postgres
    use_cases:
      ViewProducts: { kind: list }
      GetProduct: { kind: get }
bff:
  graphql:
    queries: [ViewProducts, GetProduct]
"#;

#[test]
fn the_valid_base_is_accepted() {
    let system = codegen::load(Path::new("shop.yaml"), VALID).expect("valid spec");
    assert_eq!(system.services.len(), 1);
}

#[test]
fn edge_limits_default_and_are_bounded() {
    let limits = |spec: &str| {
        codegen::load(Path::new("shop.yaml"), spec)
            .unwrap()
            .bff
            .limits
    };
    assert_eq!(limits(VALID), codegen::ir::EdgeLimits::DEFAULT);
    assert_eq!(
        limits(&format!(
            "{VALID}  limits: {{ request_timeout_ms: 2500 }}\n"
        )),
        codegen::ir::EdgeLimits {
            max_body_bytes: 102_400,
            request_timeout_ms: 2_500
        }
    );
    let spec = format!("{VALID}  limits: {{ max_body_bytes: 0, request_timeout_ms: 300001 }}\n");
    let found = errors(&spec);
    assert_eq!(found.len(), 2, "{found:?}");
    let (body, timeout) = (
        ["is 0", "expected 1 to 67108864"],
        ["is 300001", "1 to 300000"],
    );
    assert_error(&found, &spec, 20, "0,", &body);
    assert_error(&found, &spec, 20, "300001", &timeout);
    let spec = format!("{VALID}  limits: {{ max_body_bytes: 67108865, request_timeout_ms: -5 }}\n");
    let found = errors(&spec);
    assert_error(
        &found,
        &spec,
        20,
        "67108865",
        &["bff.limits.max_body_bytes is 67108865"],
    );
    assert_error(
        &found,
        &spec,
        20,
        "-5",
        &["bff.limits.request_timeout_ms is -5"],
    );
    let spec = format!("{VALID}  limits: {{ max_body_kb: 1 }}\n");
    assert_error(
        &errors(&spec),
        &spec,
        20,
        "max_body_kb",
        &["unknown field `max_body_kb`"],
    );
}

#[test]
fn a_storefront_is_a_plain_folder_inside_the_project() {
    let storefront = |spec: &str| {
        codegen::load(Path::new("shop.yaml"), spec)
            .unwrap()
            .bff
            .storefront
    };
    assert_eq!(storefront(VALID), None);
    assert_eq!(
        storefront(&format!("{VALID}  storefront: services/shop/web/\n")).as_deref(),
        Some("services/shop/web")
    );
    for bad in ["../outside", "/etc", "web/./x", "a b", "\"\""] {
        let spec = format!("{VALID}  storefront: {bad}\n");
        let found = errors(&spec);
        assert_eq!(found.len(), 1, "{bad}: {found:?}");
        assert!(
            found[0].contains("bff.storefront is") && found[0].contains("services/shop/web"),
            "{bad}: {found:?}"
        );
        assert!(found[0].starts_with("shop.yaml:20:"), "{bad}: {found:?}");
    }
}

#[test]
fn yaml_syntax_error() {
    let spec = VALID.replace("      name: { type: string", "     name: { type: string");
    let found = errors(&spec);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("shop.yaml:7:"), "{found:?}");
}

#[test]
fn unknown_key() {
    let spec = VALID.replace("{ type: money, min: 0 }", "{ tpye: money, min: 0 }");
    let found = errors(&spec);
    assert_error(
        &found,
        &spec,
        8,
        "tpye",
        &["unknown field `tpye`", "expected one of `type`, `ref`"],
    );
}

#[test]
fn unknown_type() {
    let spec = VALID.replace("{ type: money, min: 0 }", "{ type: float, min: 0 }");
    let found = errors(&spec);
    assert_error(
        &found,
        &spec,
        8,
        "float",
        &[
            "unknown type `float`",
            "expected one of uuid, string",
            "money is `money`",
        ],
    );
}

#[test]
fn unknown_references() {
    let spec = VALID
        .replace(
            "      price: { type: money, min: 0 }\n",
            "      price: { type: money, min: 0 }\n      maker: { ref: Maker }\n",
        )
        .replace("entity: Product", "entity: Prodcut")
        .replace(
            "queries: [ViewProducts, GetProduct]",
            "queries: [ViewProducts, GetProducts]",
        );
    let found = errors(&spec);
    assert_error(
        &found,
        &spec,
        9,
        "Maker",
        &[
            "unknown entity `Maker` in `ref`",
            "expected one of `Product`",
        ],
    );
    assert_error(
        &found,
        &spec,
        13,
        "Prodcut",
        &["unknown entity `Prodcut`", "expected one of `Product`"],
    );
    assert_error(
        &found,
        &spec,
        20,
        "GetProducts",
        &["unknown operation `GetProducts`"],
    );
}

#[test]
fn duplicate_names() {
    let spec = VALID.replace(
        "      price: { type: money, min: 0 }\n",
        "      price: { type: money, min: 0 }\n      name: text\n",
    );
    let found = errors(&spec);
    assert_error(
        &found,
        &spec,
        9,
        "name",
        &["duplicate name `name`", "`entities.Product.fields`"],
    );

    let spec = format!(
        "{VALID}{}",
        ""
    )
    .replace(
        "bff:",
        "  stock:\n    pattern: crud\n    entity: Product\n    store: postgres\n    use_cases:\n      GetProduct: { kind: get }\nbff:",
    );
    let found = errors(&spec);
    assert_error(
        &found,
        &spec,
        22,
        "GetProduct",
        &[
            "duplicate operation `GetProduct`",
            "service `product` already has one",
        ],
    );
}

#[test]
fn command_without_event() {
    let spec = r#"system: mini
money: { currency: EUR, minor_units: 2 }
entities:
  Account:
    fields:
      id: uuid
      owner: { type: string, max_len: 10 }
services:
  account:
    pattern: cqs-es
    aggregate: Account
    store: postgres
    commands:
      Open: { input: [owner], emits: [] }
      Close: { input: [account_id], emits: [Closed] }
    events:
      Opened: [owner]
"#;
    let found = errors(spec);
    assert_error(
        &found,
        spec,
        14,
        "Open",
        &["command `Open` emits no event", "emits: [...]"],
    );
    assert_error(
        &found,
        spec,
        15,
        "Closed",
        &["unknown event `Closed`", "expected one of `Opened`"],
    );
}

#[test]
fn use_case_naming_a_missing_field() {
    let spec = VALID.replace(
        "ViewProducts: { kind: list }",
        "ViewProducts: { kind: list, filter: [colour], order_by: [name desc, size] }",
    );
    let found = errors(&spec);
    assert_error(
        &found,
        &spec,
        15,
        "colour",
        &[
            "filters on unknown field `colour`",
            "expected one of `id`, `name`, `price`",
        ],
    );
    assert_error(
        &found,
        &spec,
        15,
        "size",
        &["orders by unknown field `size`"],
    );
}

#[test]
fn a_list_cannot_order_by_an_optional_field() {
    let spec = VALID
        .replace(
            "      price: { type: money, min: 0 }\n",
            "      price: { type: money, min: 0 }\n      note: { type: string, optional: true }\n",
        )
        .replace(
            "ViewProducts: { kind: list }",
            "ViewProducts: { kind: list, order_by: [note, name] }",
        );
    let found = errors(&spec);
    assert_error(
        &found,
        &spec,
        16,
        "note,",
        &[
            "orders by `note`, which is optional",
            "make `note` required",
        ],
    );
}

#[test]
fn bad_constraints() {
    let spec = VALID
        .replace(
            "{ type: string, min_len: 1, max_len: 50 }",
            "{ type: string, min_len: 60, max_len: 50 }",
        )
        .replace("{ type: money, min: 0 }", "{ type: money, max_len: 3 }");
    let found = errors(&spec);
    assert_error(
        &found,
        &spec,
        7,
        "min_len",
        &["`min_len` 60 of `name` is greater than `max_len` 50"],
    );
    assert_error(
        &found,
        &spec,
        8,
        "max_len",
        &["`max_len` does not apply to money field `price`"],
    );
}

#[test]
fn bad_defaults_and_renames() {
    let spec = VALID
        .replace(
            "{ type: string, min_len: 1, max_len: 50 }",
            "{ type: string, min_len: 1, max_len: 50, default: \"\", renamed_from: Title }",
        )
        .replace(
            "{ type: money, min: 0 }",
            "{ type: money, min: 0, default: cheap }\n      stock: { type: int, min: 0, default: -1 }\n      seen: { type: timestamp, default: yesterday }",
        );
    let found = errors(&spec);
    assert_error(
        &found,
        &spec,
        7,
        "\"\"",
        &[
            "`default` of `name` would fail the field's own constraints",
            "outside `min_len`",
        ],
    );
    assert_error(
        &found,
        &spec,
        7,
        "renamed_from",
        &["`renamed_from` of `name` must be the field's previous snake_case name"],
    );
    assert_error(
        &found,
        &spec,
        8,
        "cheap",
        &["`default` of money field `price` must be an integer"],
    );
    assert_error(
        &found,
        &spec,
        9,
        "-1",
        &["`default` of `stock`", "outside `min`..`max`"],
    );
    assert_error(
        &found,
        &spec,
        10,
        "yesterday",
        &["`default` of timestamp field `seen` must be an RFC 3339 UTC time"],
    );
}

#[test]
fn bad_one_of() {
    let spec = VALID
        .replace(
            "{ type: string, min_len: 1, max_len: 50 }",
            "{ type: string, max_len: 10, one_of: [tea, coffee, tea] }",
        )
        .replace("{ type: money, min: 0 }", "{ type: money, one_of: [a] }");
    let found = errors(&spec);
    assert_error(
        &found,
        &spec,
        7,
        "one_of",
        &["`one_of` of `name` lists `tea` twice"],
    );
    assert_error(
        &found,
        &spec,
        8,
        "one_of",
        &["`one_of` does not apply to money field `price`"],
    );
    let spec = VALID.replace(
        "{ type: string, min_len: 1, max_len: 50 }",
        "{ type: string, one_of: [tea], default: milk }",
    );
    let found = errors(&spec);
    assert_error(&found, &spec, 7, "milk", &["`milk` is not in `one_of`"]);
}

#[test]
fn cardinality_the_pattern_cannot_serve() {
    let spec = r#"system: mini
money: { currency: EUR, minor_units: 2 }
entities:
  Basket:
    fields:
      id: uuid
    relations:
      lines: { to: Line, cardinality: "1..*", owned: true }
  Line:
    key: [sku]
    fields:
      sku: { type: string, max_len: 20 }
services:
  basket:
    pattern: cqs-es
    aggregate: Basket
    store: postgres
    commands:
      AddLine: { input: [basket_id, sku], emits: [LineAdded] }
    events:
      LineAdded: [sku]
"#;
    let found = errors(spec);
    assert_error(
        &found,
        spec,
        8,
        "lines",
        &[
            "cardinality 1..* of `Basket.lines` cannot be served by the cqs-es aggregate",
            "\"0..*\"",
        ],
    );
}

#[test]
fn bad_cardinality_and_owned_collection_without_key() {
    let spec = r#"system: mini
money: { currency: EUR, minor_units: 2 }
entities:
  Basket:
    fields:
      id: uuid
    relations:
      lines: { to: Line, cardinality: "0..*", owned: true }
      notes: { to: Line, cardinality: "3..1" }
  Line:
    fields:
      sku: { type: string, max_len: 20 }
"#;
    let found = errors(spec);
    assert_error(&found, spec, 8, "lines", &["needs `key: [...]` on `Line`"]);
    assert_error(&found, spec, 9, "\"3..1", &["bad cardinality `3..1`"]);
}

#[test]
fn an_optional_key_field() {
    let spec = r#"system: mini
money: { currency: EUR, minor_units: 2 }
entities:
  Basket:
    fields:
      id: uuid
    relations:
      lines: { to: Line, cardinality: "0..*", owned: true }
  Line:
    key: [sku]
    fields:
      sku: { type: string, max_len: 20, optional: true }
"#;
    let found = errors(spec);
    assert_error(
        &found,
        spec,
        10,
        "sku",
        &["key field `sku` of `Line` is optional"],
    );
}

#[test]
fn names_that_collide_with_keywords() {
    let spec = VALID
        .replace(
            "      id: uuid\n",
            "      id: uuid\n      type: string\n      order: int\n",
        )
        .replace("  Product:\n", "  Query:\n")
        .replace("entity: Product", "entity: Query");
    let found = errors(&spec);
    assert_error(
        &found,
        &spec,
        4,
        "Query",
        &["entity name `Query` is reserved in GraphQL"],
    );
    assert_error(
        &found,
        &spec,
        7,
        "type",
        &["field name `type` is a reserved word in Rust"],
    );
    assert_error(
        &found,
        &spec,
        8,
        "order",
        &["field name `order` is a reserved word in SQL"],
    );
}

#[test]
fn a_service_called_system_is_refused() {
    // Its crate would take the folder of the generated deployables table.
    let spec = VALID.replace("  product:\n    pattern", "  system:\n    pattern");
    let found = errors(&spec);
    assert_error(
        &found,
        &spec,
        10,
        "system",
        &[
            "service name `system` is reserved in the generator",
            "generated/rust/system",
        ],
    );
}

#[test]
fn names_too_long_for_kubernetes_or_postgresql() {
    let long_service = "s".repeat(59);
    let long_field = format!("f{}", "x".repeat(63));
    let long_entity = format!("P{}", "r".repeat(55));
    let spec = VALID
        .replace(
            "  product:\n    pattern",
            &format!("  {long_service}:\n    pattern"),
        )
        .replace(
            "      id: uuid\n",
            &format!("      id: uuid\n      {long_field}: int\n"),
        )
        .replace("  Product:\n", &format!("  {long_entity}:\n"))
        .replace("entity: Product", &format!("entity: {long_entity}"));
    let found = errors(&spec);
    assert_error(
        &found,
        &spec,
        4,
        &long_entity,
        &["too long for PostgreSQL", "at most 63 characters"],
    );
    assert_error(
        &found,
        &spec,
        7,
        &long_field,
        &["too long for PostgreSQL (a column name)"],
    );
    // The database `mini_<service>` is the longest of its derived names.
    assert_error(
        &found,
        &spec,
        11,
        &long_service,
        &[
            "too long for PostgreSQL (a database name)",
            &format!("`mini_{long_service}` has 64"),
        ],
    );
}

#[test]
fn a_refused_field_name_is_reported_once_not_again_where_it_is_used() {
    let spec = VALID
        .replace("      id: uuid\n", "      id: uuid\n      version: int\n")
        .replace("{ kind: list }", "{ kind: list, order_by: [version] }");
    let found = errors(&spec);
    assert_error(
        &found,
        &spec,
        7,
        "version",
        &["used by the generator itself"],
    );
    assert_eq!(found.len(), 1, "{}", found.join("\n"));
}

#[test]
fn all_errors_are_reported_at_once_in_order() {
    let spec = VALID
        .replace("{ type: money, min: 0 }", "{ type: decimal }")
        .replace("pattern: crud", "pattern: crudd")
        .replace("currency: EUR", "currency: euro");
    let found = errors(&spec);
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(found[0].starts_with("shop.yaml:2:"), "{found:?}");
    assert!(found[1].starts_with("shop.yaml:8:"), "{found:?}");
    assert!(
        found[2].starts_with("shop.yaml:11:")
            && found[2].contains("expected one of crud, cqs-es, cqrs-es"),
        "{found:?}"
    );
}

#[test]
fn bff_must_expose_reads_as_queries_and_not_internal_operations() {
    let spec = VALID
        .replace("      GetProduct: { kind: get }\n", "      GetProduct: { kind: get }\n      CreateProduct: { kind: create, audience: internal }\n")
        .replace("queries: [ViewProducts, GetProduct]", "queries: [ViewProducts]\n    mutations: [GetProduct, CreateProduct]");
    let found = errors(&spec);
    assert_error(
        &found,
        &spec,
        21,
        "GetProduct",
        &["`GetProduct` reads, so it belongs in bff.graphql.queries"],
    );
    assert_error(
        &found,
        &spec,
        21,
        "CreateProduct",
        &["`CreateProduct` has audience internal"],
    );
}

#[test]
fn the_real_spec_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../spec/shop.yaml");
    let text = std::fs::read_to_string(&path).expect("spec/shop.yaml");
    if let Err(e) = codegen::load(Path::new("spec/shop.yaml"), &text) {
        panic!("{e}");
    }
}

#[test]
fn exists_checks_name_a_called_service_s_reference() {
    let spec = r#"system: mini
money: { currency: EUR, minor_units: 2 }
entities:
  Product:
    fields:
      id: uuid
  Cart:
    fields:
      id: uuid
      product_id: { ref: Product }
      note: { type: string, max_len: 10 }
services:
  product:
    pattern: crud
    entity: Product
    store: postgres
    use_cases:
      GetProduct: { kind: get }
  cart:
    pattern: cqrs-es
    aggregate: Cart
    event_store: mongodb
    read_model: postgres
    messaging: { broker: kafka, topic: cart.events }
    commands:
      Add: { input: [cart_id, product_id, note], emits: [Added], exists: [product_id, note, colour] }
    events:
      Added: [product_id]
    queries:
      ViewCart: { input: [cart_id], output: Cart }
"#;
    let found = errors(spec);
    assert_error(
        &found,
        spec,
        26,
        "product_id, note, colour",
        &[
            "asks service `product`",
            "add it to the `calls` of service `cart`",
        ],
    );
    assert_error(
        &found,
        spec,
        26,
        "note, colour",
        &["names `note`, which is not a reference"],
    );
    assert_error(
        &found,
        spec,
        26,
        "colour",
        &[
            "names `colour`, which is not in its input",
            "expected one of `cart_id`",
        ],
    );
}

#[test]
fn an_operation_whose_method_name_is_a_rust_keyword() {
    let spec = r#"system: library
money: { currency: EUR, minor_units: 2 }
entities:
  Loan:
    fields:
      id: uuid
      book: { type: string, max_len: 10 }
services:
  loan:
    pattern: cqs-es
    aggregate: Loan
    store: postgres
    commands:
      Borrow: { input: [book], emits: [Borrowed] }
      Return: { input: [loan_id], emits: [Returned] }
    events:
      Borrowed: [book]
      Returned: []
"#;
    let found = errors(spec);
    assert_error(
        &found,
        spec,
        15,
        "Return",
        &[
            "operation `Return` becomes the method `return` in Rust",
            "e.g. `ReturnLoan`",
        ],
    );
}

/// A shop-like spec with `auth:`; `{AUTH}`, `{OWNED}` and `{CLAIM}` are the keys under test.
const AUTHED: &str = r#"system: mini
money: { currency: EUR, minor_units: 2 }
entities:
  Customer:
    fields:
      id: uuid
      email: { type: email, unique: true }
  Cart:
    {OWNED}
    fields:
      id: uuid
      customer_id: { ref: Customer, optional: true }
      note: { type: string, max_len: 10, optional: true }
services:
  user:
    pattern: cqs-es
    aggregate: Customer
    store: postgres
    messaging: { broker: kafka, topic: user.events }
    commands:
      Register: { input: [email], emits: [Registered], audience: public }
    events:
      Registered: [email]
    queries:
      ViewProfile: { input: [customer_id], output: Customer }
  cart:
    pattern: cqs-es
    aggregate: Cart
    store: postgres
    messaging: { broker: kafka, topic: cart.events }
    {CLAIM}
    commands:
      Note: { input: [cart_id, note], emits: [Noted] }
      Assign: { input: [cart_id, customer_id], emits: [Assigned], audience: internal }
    events:
      Noted: [note]
      Assigned: [customer_id]
    queries:
      ViewCart: { input: [cart_id], output: Cart }
auth:
  {AUTH}
bff:
  graphql:
    queries: [ViewProfile, ViewCart]
    mutations: [Register, Note]
"#;

fn authed(auth: &str, owned: &str, claim: &str) -> String {
    AUTHED
        .replace("{AUTH}", auth)
        .replace("{OWNED}", owned)
        .replace("{CLAIM}", claim)
}

#[test]
fn auth_is_accepted_and_guards_every_root_field() {
    let spec = authed(
        "{ identity: user, register: Register }",
        "owned_by: customer_id",
        "claim: Assign",
    );
    let g = codegen::load(Path::new("shop.yaml"), &spec).expect("valid");
    let note = g
        .graphql
        .mutations
        .iter()
        .find(|m| m.name == "note")
        .expect("note");
    let guard = note
        .call
        .as_ref()
        .and_then(|c| c.guard.as_ref())
        .expect("a guard");
    assert_eq!(
        guard.audience,
        codegen::ir::Audience::Customer,
        "the default with auth"
    );
    assert_eq!(guard.owned.len(), 1);
    assert!(guard.owned[0].claim.is_some(), "a write claims");
    let view = g
        .graphql
        .queries
        .iter()
        .find(|q| q.name == "viewCart")
        .expect("viewCart");
    let guard = view
        .call
        .as_ref()
        .and_then(|c| c.guard.as_ref())
        .expect("a guard");
    assert!(guard.owned[0].claim.is_none(), "a read never claims");
    let register = g
        .graphql
        .mutations
        .iter()
        .find(|m| m.name == "register")
        .expect("register");
    let guard = register
        .call
        .as_ref()
        .and_then(|c| c.guard.as_ref())
        .expect("a guard");
    assert_eq!(guard.credentials.as_deref(), Some("email"));
    assert!(g.graphql.mutations.iter().any(|m| m.name == "login"));
}

#[test]
fn auth_mistakes_are_named_where_they_are() {
    let spec = authed("{ identity: nobody, register: Register }", "", "");
    let found = errors(&spec);
    let line = spec
        .lines()
        .position(|l| l.contains("identity: nobody"))
        .unwrap()
        + 1;
    assert_error(&found, &spec, line, "nobody", &["unknown service `nobody`"]);

    let spec = authed("{ identity: user, register: ViewProfile }", "", "");
    let found = errors(&spec);
    let line = spec
        .lines()
        .position(|l| l.contains("register: ViewProfile"))
        .unwrap()
        + 1;
    assert_error(
        &found,
        &spec,
        line,
        "ViewProfile",
        &["must be a command of `user`"],
    );

    let spec = authed(
        "{ identity: user, register: Register }",
        "owned_by: note",
        "",
    );
    let found = errors(&spec);
    let line = spec
        .lines()
        .position(|l| l.contains("owned_by: note"))
        .unwrap()
        + 1;
    assert_error(
        &found,
        &spec,
        line,
        "note",
        &["must be a field of Cart that is a `ref: Customer`"],
    );

    let spec = authed(
        "{ identity: user, register: Register }",
        "owned_by: customer_id",
        "claim: Note",
    );
    let found = errors(&spec);
    let line = spec
        .lines()
        .position(|l| l.contains("claim: Note"))
        .unwrap()
        + 1;
    assert_error(
        &found,
        &spec,
        line,
        "Note",
        &["whose input is [cart_id, customer_id]"],
    );

    let spec = authed(
        "{ identity: user, register: Register, access_ttl_secs: 5 }",
        "",
        "",
    );
    let found = errors(&spec);
    let line = spec
        .lines()
        .position(|l| l.contains("access_ttl_secs"))
        .unwrap()
        + 1;
    assert_error(&found, &spec, line, "5", &["out of range"]);
}
