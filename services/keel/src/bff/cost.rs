//! The cost of an operation, from its parsed document: every field (`__typename` too)
//! costs 1 plus the cost of its selection, and a field with a `first` argument (a page of
//! a list) costs that times its page size: `first` as sent (a literal or a variable),
//! else the field's page size when `first` is omitted ([`Shape`], from the SDL), else
//! [`FALLBACK_PAGE_SIZE`]. Fragments count wherever they are spread.

use std::collections::{BTreeMap, HashMap};

use async_graphql::Variables;
use async_graphql::parser::types::{
    ExecutableDocument, Field, OperationDefinition, OperationType, Selection, SelectionSet,
};
use async_graphql::{Name, Value as ConstValue};

/// The page size of a `first` argument whose omitted value the SDL does not tell.
pub const FALLBACK_PAGE_SIZE: u64 = 100;
/// Deeper nesting of selections and fragments than any valid operation within the depth
/// limit has: a guard against long fragment chains, and cycles if validation missed one.
const MAX_NESTING: usize = 64;

/// What costs need from the schema: the root types, and each object type's fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shape {
    pub query: String,
    pub mutation: Option<String>,
    /// Type name → field name → field.
    pub fields: BTreeMap<String, BTreeMap<String, FieldShape>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldShape {
    /// The named type of its values (lists and non-null stripped).
    pub ty: String,
    /// For a field with a `first` argument: the page size when `first` is omitted.
    pub default_first: Option<u64>,
}

/// The cost of `op`, an operation of `doc`, with the request's `variables`.
pub fn operation(
    shape: &Shape,
    doc: &ExecutableDocument,
    op: &OperationDefinition,
    variables: &Variables,
) -> u64 {
    let root = match op.ty {
        OperationType::Query => Some(shape.query.as_str()),
        OperationType::Mutation => shape.mutation.as_deref(),
        OperationType::Subscription => None,
    };
    let mut walk = Walk {
        shape,
        doc,
        op,
        variables,
        fragments: HashMap::new(),
    };
    walk.set(&op.selection_set.node, root, 0)
}

struct Walk<'a> {
    shape: &'a Shape,
    doc: &'a ExecutableDocument,
    op: &'a OperationDefinition,
    variables: &'a Variables,
    /// Each fragment's cost once known, so that spreads cost linear time.
    fragments: HashMap<&'a str, u64>,
}

impl<'a> Walk<'a> {
    fn set(&mut self, set: &'a SelectionSet, parent: Option<&'a str>, nesting: usize) -> u64 {
        if nesting > MAX_NESTING {
            return u64::MAX;
        }
        set.items.iter().fold(0, |sum: u64, s| {
            let cost = match &s.node {
                Selection::Field(f) => self.field(&f.node, parent, nesting + 1),
                Selection::InlineFragment(i) => {
                    let on = i.node.type_condition.as_ref();
                    let ty = on.map(|c| c.node.on.node.as_str()).or(parent);
                    self.set(&i.node.selection_set.node, ty, nesting + 1)
                }
                Selection::FragmentSpread(f) => {
                    self.fragment(f.node.fragment_name.node.as_str(), nesting + 1)
                }
            };
            sum.saturating_add(cost)
        })
    }

    fn field(&mut self, f: &'a Field, parent: Option<&'a str>, nesting: usize) -> u64 {
        let shape = parent
            .and_then(|t| self.shape.fields.get(t))
            .and_then(|fields| fields.get(f.name.node.as_str()));
        let ty = shape.map(|s| s.ty.as_str());
        let one = self
            .set(&f.selection_set.node, ty, nesting)
            .saturating_add(1);
        let page = self
            .first(f)
            .or_else(|| shape.and_then(|s| s.default_first));
        one.saturating_mul(page.unwrap_or(1))
    }

    fn fragment(&mut self, name: &'a str, nesting: usize) -> u64 {
        if let Some(cost) = self.fragments.get(name) {
            return *cost;
        }
        let Some(def) = self.doc.fragments.get(name) else {
            return 0;
        };
        // While it is being costed, a spread of itself is a cycle: too costly.
        self.fragments.insert(name, u64::MAX);
        let on = def.node.type_condition.node.on.node.as_str();
        let cost = self.set(&def.node.selection_set.node, Some(on), nesting);
        self.fragments.insert(name, cost);
        cost
    }

    /// The `first` argument as sent: a literal, a variable's value, or its default.
    fn first(&self, f: &Field) -> Option<u64> {
        let value = f.get_argument("first")?.node.clone();
        match value.into_const_with(|name| self.variable(&name).cloned().ok_or(())) {
            Ok(ConstValue::Number(n)) => n.as_u64(),
            _ => None,
        }
    }

    fn variable(&self, name: &Name) -> Option<&'a ConstValue> {
        let default = || {
            self.op
                .variable_definitions
                .iter()
                .find(|d| d.node.name.node == *name)
                .and_then(|d| d.node.default_value.as_ref())
                .map(|v| &v.node)
        };
        self.variables.get(name).or_else(default)
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::parser::parse_query;

    use super::*;

    fn shape() -> Shape {
        let field = |ty: &str, default_first| FieldShape {
            ty: ty.to_string(),
            default_first,
        };
        let mut fields = BTreeMap::new();
        fields.insert(
            "Query".to_string(),
            BTreeMap::from([
                ("orders".to_string(), field("OrderPage", Some(20))),
                ("order".to_string(), field("Order", None)),
            ]),
        );
        fields.insert(
            "OrderPage".to_string(),
            BTreeMap::from([("nodes".to_string(), field("Order", None))]),
        );
        fields.insert(
            "Order".to_string(),
            BTreeMap::from([
                ("id".to_string(), field("ID", None)),
                (
                    "lines".to_string(),
                    field("OrderPage", Some(FALLBACK_PAGE_SIZE)),
                ),
            ]),
        );
        Shape {
            query: "Query".into(),
            mutation: None,
            fields,
        }
    }

    fn cost(query: &str, variables: serde_json::Value) -> u64 {
        let doc = parse_query(query).expect("parses");
        let (_, op) = doc.operations.iter().next().expect("an operation");
        operation(&shape(), &doc, &op.node, &Variables::from_json(variables))
    }

    #[test]
    fn every_field_counts_one_typename_too() {
        assert_eq!(
            cost("{ order { id __typename } }", serde_json::json!({})),
            3
        );
        let aliased: String = (0..600).map(|i| format!("a{i}: __typename ")).collect();
        assert_eq!(
            cost(&format!("{{ {aliased} }}"), serde_json::json!({})),
            600
        );
    }

    #[test]
    fn pages_multiply() {
        let json = serde_json::json!({});
        // (1 + nodes (1 + id)) × first
        assert_eq!(
            cost("{ orders(first: 10) { nodes { id } } }", json.clone()),
            30
        );
        assert_eq!(cost("{ orders { nodes { id } } }", json.clone()), 60);
        assert_eq!(
            cost("{ order { lines { nodes { id } } } }", json.clone()),
            1 + 300
        );
        let nested = "{ orders(first: 100) { nodes { lines(first: 100) { nodes { id } } } } }";
        assert_eq!(cost(nested, json), (1 + 1 + 300) * 100);
    }

    #[test]
    fn first_may_be_a_variable() {
        let q = "query($n: Int = 5) { orders(first: $n) { nodes { id } } }";
        assert_eq!(cost(q, serde_json::json!({"n": 50})), 150);
        assert_eq!(cost(q, serde_json::json!({})), 15);
        assert_eq!(cost(q, serde_json::json!({"n": null})), 60);
    }

    #[test]
    fn fragments_count_where_spread() {
        let q = "{ orders(first: 2) { nodes { ...F ... on Order { id } } } }
                 fragment F on Order { id lines(first: 3) { nodes { id } } }";
        // nodes: 1 + F (1 + (1 + 2) × 3) + 1 = 12; orders: (1 + 12) × 2
        assert_eq!(cost(q, serde_json::json!({})), 26);
    }

    #[test]
    fn cycles_and_chains_are_too_costly() {
        let cycle =
            "{ order { ...A } } fragment A on Order { id ...B } fragment B on Order { ...A }";
        assert_eq!(cost(cycle, serde_json::json!({})), u64::MAX);
        let mut chain = String::from("{ order { ...F0 } }");
        for i in 0..200 {
            chain.push_str(&format!(" fragment F{i} on Order {{ id ...F{} }}", i + 1));
        }
        chain.push_str(" fragment F200 on Order { id }");
        assert_eq!(cost(&chain, serde_json::json!({})), u64::MAX);
        // Shared fragments are costed once: 2^40 spreads take no time.
        let mut wide = String::from("{ order { ...F0 } }");
        for i in 0..40 {
            wide.push_str(&format!(
                " fragment F{i} on Order {{ ...F{n} ...F{n} }}",
                n = i + 1
            ));
        }
        wide.push_str(" fragment F40 on Order { id }");
        assert_eq!(cost(&wide, serde_json::json!({})), 1 + (1 << 40));
    }
}
