//! Proto messages as GraphQL values (camelCase keys, Money and Int as integers,
//! DateTime as RFC 3339 UTC) and GraphQL arguments as proto fields.

use async_graphql::dynamic::ObjectAccessor;
use async_graphql::indexmap::IndexMap;
use async_graphql::{Error, Name, Value};
use chrono::SecondsFormat;
use uuid::Uuid;

use crate::errors::{self, Violation};

pub type Result<T> = std::result::Result<T, Error>;

fn obj<const N: usize>(fields: [(&str, Value); N]) -> Value {
    let mut o = IndexMap::with_capacity(N);
    for (k, v) in fields {
        o.insert(Name::new(k), v);
    }
    Value::Object(o)
}

fn opt_str(s: &Option<String>) -> Value {
    s.as_deref().map_or(Value::Null, Value::from)
}

/// A proto timestamp as `2024-05-01T09:30:00Z` (fractional seconds when present).
pub fn datetime(t: Option<&prost_types::Timestamp>, what: &str) -> Result<Value> {
    let t = t.ok_or_else(|| errors::internal(format!("upstream sent no `{what}`")))?;
    let utc = shop_kit::timestamp_to_utc(t)
        .ok_or_else(|| errors::internal(format!("`{what}` is out of range: {t:?}")))?;
    Ok(Value::from(
        utc.to_rfc3339_opts(SecondsFormat::AutoSi, true),
    ))
}

/// An int64 version or count as GraphQL `Int` (32-bit, see the schema's header).
pub fn int(v: i64, what: &str) -> Result<Value> {
    i32::try_from(v)
        .map(Value::from)
        .map_err(|_| errors::internal(format!("`{what}` = {v} does not fit an Int")))
}

fn connection(nodes: Vec<Value>, next_page_token: String) -> Value {
    // The proto only hands out a token when another page follows, so `endCursor` is
    // null on the last page as well as on an empty one.
    let has_next = !next_page_token.is_empty();
    let end_cursor = if has_next {
        Value::from(next_page_token)
    } else {
        Value::Null
    };
    obj([
        ("nodes", Value::List(nodes)),
        (
            "pageInfo",
            obj([
                ("endCursor", end_cursor),
                ("hasNextPage", Value::from(has_next)),
            ]),
        ),
    ])
}

// ------------------------------------------------------------------- product

pub fn product(p: &shop_product::pb::Product) -> Result<Value> {
    Ok(obj([
        ("id", Value::from(p.id.as_str())),
        ("name", Value::from(p.name.as_str())),
        ("description", opt_str(&p.description)),
        ("price", Value::from(p.price)),
        (
            "createdAt",
            datetime(p.created_at.as_ref(), "Product.createdAt")?,
        ),
    ]))
}

/// A product from a response whose `product` must be set.
pub fn some_product(p: Option<shop_product::pb::Product>) -> Result<Value> {
    match p {
        Some(p) => product(&p),
        None => Err(errors::internal("upstream sent no product")),
    }
}

pub fn product_connection(r: shop_product::pb::ViewProductsResponse) -> Result<Value> {
    let nodes = r.products.iter().map(product).collect::<Result<Vec<_>>>()?;
    Ok(connection(nodes, r.next_page_token))
}

// ------------------------------------------------------------------- cart

pub fn cart(c: &shop_cart::pb::Cart, version: i64) -> Result<Value> {
    let items = c
        .items
        .iter()
        .map(|i| {
            obj([
                ("productId", Value::from(i.product_id.as_str())),
                ("quantity", Value::from(i.quantity)),
            ])
        })
        .collect();
    Ok(obj([
        ("id", Value::from(c.id.as_str())),
        ("customerId", opt_str(&c.customer_id)),
        ("version", int(version, "Cart.version")?),
        ("items", Value::List(items)),
    ]))
}

/// What a command returns: the aggregate it applied to and its version after.
pub fn command_payload(id_field: &str, id: &str, version: i64) -> Result<Value> {
    Ok(obj([
        (id_field, Value::from(id)),
        ("version", int(version, "version")?),
    ]))
}

pub fn delete_payload(id: &str) -> Value {
    obj([("id", Value::from(id))])
}

// ------------------------------------------------------------------- order

pub fn order(o: &shop_order::pb::Order) -> Result<Value> {
    let details = o
        .details
        .iter()
        .map(|d| {
            obj([
                ("productId", Value::from(d.product_id.as_str())),
                ("productName", Value::from(d.product_name.as_str())),
                ("unitPrice", Value::from(d.unit_price)),
                ("quantity", Value::from(d.quantity)),
            ])
        })
        .collect();
    Ok(obj([
        ("id", Value::from(o.id.as_str())),
        ("customerId", Value::from(o.customer_id.as_str())),
        ("cartId", Value::from(o.cart_id.as_str())),
        ("cartVersion", Value::from(o.cart_version)),
        ("total", Value::from(o.total)),
        (
            "placedAt",
            datetime(o.placed_at.as_ref(), "Order.placedAt")?,
        ),
        ("status", Value::from(o.status.as_str())),
        ("details", Value::List(details)),
    ]))
}

pub fn some_order(o: Option<shop_order::pb::Order>) -> Result<Value> {
    match o {
        Some(o) => order(&o),
        None => Err(errors::internal("upstream sent no order")),
    }
}

pub fn order_connection(r: shop_order::pb::ViewOrdersResponse) -> Result<Value> {
    let nodes = r.orders.iter().map(order).collect::<Result<Vec<_>>>()?;
    Ok(connection(nodes, r.next_page_token))
}

// ------------------------------------------------------------------- user

pub fn customer(c: &shop_user::pb::Customer, version: i64) -> Result<Value> {
    Ok(obj([
        ("id", Value::from(c.id.as_str())),
        ("email", Value::from(c.email.as_str())),
        ("name", Value::from(c.name.as_str())),
        (
            "registeredAt",
            datetime(c.registered_at.as_ref(), "Customer.registeredAt")?,
        ),
        ("version", int(version, "Customer.version")?),
    ]))
}

// ------------------------------------------------------------------- parents

/// A string field of the parent object (`productId` of a `CartItem`).
pub fn parent_str(parent: &async_graphql::dynamic::FieldValue<'_>, key: &str) -> Option<String> {
    match parent.as_value() {
        Some(Value::Object(o)) => match o.get(key) {
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    }
}

// ------------------------------------------------------------------- arguments

/// Reads arguments or input fields, collecting every violation before failing, so a
/// malformed id is rejected before any call, together with the other bad fields.
pub struct Args {
    fields: IndexMap<Name, Value>,
    violations: Vec<Violation>,
}

impl Args {
    /// A field's arguments.
    pub fn of(args: &ObjectAccessor<'_>) -> Args {
        Args {
            fields: args
                .iter()
                .map(|(k, v)| (k.clone(), v.as_value().clone()))
                .collect(),
            violations: Vec::new(),
        }
    }

    /// The fields of a mutation's `input` argument.
    pub fn input(args: &ObjectAccessor<'_>) -> Result<Args> {
        match args.get("input").map(|v| v.as_value().clone()) {
            Some(Value::Object(fields)) => Ok(Args {
                fields,
                violations: Vec::new(),
            }),
            _ => Err(missing("input")),
        }
    }

    fn bad(&mut self, field: &str, description: impl Into<String>) {
        self.violations.push(Violation::new(field, description));
    }

    fn raw(&self, name: &str) -> Option<&Value> {
        self.fields.get(name).filter(|v| !matches!(v, Value::Null))
    }

    /// An `ID` that must be a UUID; returned in canonical form.
    pub fn id(&mut self, name: &str) -> String {
        self.opt_id(name).unwrap_or_else(|| {
            if !self.violations.iter().any(|v| v.field == name) {
                self.bad(name, "is required");
            }
            String::new()
        })
    }

    pub fn opt_id(&mut self, name: &str) -> Option<String> {
        let raw = match self.raw(name)? {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => String::new(),
        };
        match Uuid::parse_str(&raw) {
            Ok(u) => Some(u.to_string()),
            Err(_) => {
                let shown: String = raw.chars().take(40).collect();
                self.bad(name, format!("must be a UUID, got {shown:?}"));
                None
            }
        }
    }

    pub fn string(&mut self, name: &str) -> String {
        self.opt_string(name).unwrap_or_else(|| {
            self.bad(name, "is required");
            String::new()
        })
    }

    pub fn opt_string(&mut self, name: &str) -> Option<String> {
        match self.raw(name)? {
            Value::String(s) => Some(s.clone()),
            _ => {
                self.bad(name, "must be a string");
                None
            }
        }
    }

    pub fn opt_i64(&mut self, name: &str) -> Option<i64> {
        match self.raw(name)? {
            Value::Number(n) => match n.as_i64() {
                Some(i) => Some(i),
                None => {
                    self.bad(name, "must be an integer");
                    None
                }
            },
            _ => {
                self.bad(name, "must be an integer");
                None
            }
        }
    }

    /// A `Money` amount: integer minor units.
    pub fn money(&mut self, name: &str) -> i64 {
        self.opt_i64(name).unwrap_or_else(|| {
            if !self.violations.iter().any(|v| v.field == name) {
                self.bad(name, "is required");
            }
            0
        })
    }

    pub fn opt_int(&mut self, name: &str) -> Option<i32> {
        let v = self.opt_i64(name)?;
        match i32::try_from(v) {
            Ok(i) => Some(i),
            Err(_) => {
                self.bad(name, format!("must fit a 32-bit integer, got {v}"));
                None
            }
        }
    }

    pub fn int(&mut self, name: &str) -> i32 {
        self.opt_int(name).unwrap_or_else(|| {
            if !self.violations.iter().any(|v| v.field == name) {
                self.bad(name, "is required");
            }
            0
        })
    }

    /// `first` / `after` as `page_size` / `page_token` (0 and "" when omitted).
    pub fn page(&mut self) -> (i32, String) {
        let size = match self.opt_int("first") {
            Some(n) if n < 1 => {
                self.bad("first", format!("must be at least 1, got {n}"));
                0
            }
            Some(n) => n,
            None => 0,
        };
        (size, self.opt_string("after").unwrap_or_default())
    }

    /// Fails with every violation found, or passes.
    pub fn finish(self) -> Result<()> {
        if self.violations.is_empty() {
            return Ok(());
        }
        let parts: Vec<String> = self
            .violations
            .iter()
            .map(|v| format!("{}: {}", v.field, v.description))
            .collect();
        Err(errors::bad_user_input(
            format!("invalid input: {}", parts.join("; ")),
            &self.violations,
        ))
    }
}

fn missing(name: &str) -> Error {
    errors::bad_user_input(
        format!("invalid input: {name}: is required"),
        &[Violation::new(name, "is required")],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let t = prost_types::Timestamp {
            seconds: 1_714_555_800,
            nanos: 0,
        };
        assert_eq!(
            datetime(Some(&t), "x").ok(),
            Some(Value::from("2024-05-01T09:30:00Z"))
        );
        let t = prost_types::Timestamp {
            seconds: 1_714_555_800,
            nanos: 123_456_000,
        };
        assert_eq!(
            datetime(Some(&t), "x").ok(),
            Some(Value::from("2024-05-01T09:30:00.123456Z"))
        );
        assert!(datetime(None, "x").is_err());
    }

    #[test]
    fn versions_beyond_int_are_an_error() {
        assert_eq!(int(7, "v").ok(), Some(Value::from(7)));
        assert!(int(i64::from(i32::MAX) + 1, "v").is_err());
    }

    #[test]
    fn pages_end_where_the_token_does() {
        let c = connection(vec![], String::new());
        assert_eq!(
            c,
            obj([
                ("nodes", Value::List(vec![])),
                (
                    "pageInfo",
                    obj([
                        ("endCursor", Value::Null),
                        ("hasNextPage", Value::from(false))
                    ])
                )
            ])
        );
    }
}
