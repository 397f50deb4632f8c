//! Proto values as GraphQL values: camelCase keys, Money and Int as integers, DateTime
//! as RFC 3339 UTC, connections and payloads.

use async_graphql::dynamic::FieldValue;
use async_graphql::indexmap::IndexMap;
use async_graphql::{Error, Name, Value};
use chrono::SecondsFormat;

use super::errors;

pub type Result<T> = std::result::Result<T, Error>;

pub fn object<const N: usize>(fields: [(&str, Value); N]) -> Value {
    let mut o = IndexMap::with_capacity(N);
    for (k, v) in fields {
        o.insert(Name::new(k), v);
    }
    Value::Object(o)
}

/// An optional proto field: null when unset.
pub fn opt<T: Into<Value>>(v: Option<T>) -> Value {
    v.map_or(Value::Null, Into::into)
}

/// A proto timestamp as `2024-05-01T09:30:00Z` (fractional seconds when present).
pub fn datetime(t: Option<&prost_types::Timestamp>, what: &str) -> Result<Value> {
    let t = t.ok_or_else(|| errors::internal(format!("upstream sent no `{what}`")))?;
    let utc = crate::timestamp_to_utc(t)
        .ok_or_else(|| errors::internal(format!("`{what}` is out of range: {t:?}")))?;
    Ok(Value::from(
        utc.to_rfc3339_opts(SecondsFormat::AutoSi, true),
    ))
}

pub fn opt_datetime(t: Option<&prost_types::Timestamp>, what: &str) -> Result<Value> {
    match t {
        Some(t) => datetime(Some(t), what),
        None => Ok(Value::Null),
    }
}

/// An int64 version or count as GraphQL `Int` (32-bit, see the schema's header).
pub fn int(v: i64, what: &str) -> Result<Value> {
    i32::try_from(v)
        .map(Value::from)
        .map_err(|_| errors::internal(format!("`{what}` = {v} does not fit an Int")))
}

/// Repeated messages, each mapped by `f`.
pub fn list<T>(items: &[T], f: impl Fn(&T) -> Result<Value>) -> Result<Vec<Value>> {
    items.iter().map(f).collect()
}

/// An optional message, mapped by `f`; null when unset.
pub fn child<T>(item: Option<&T>, f: impl Fn(&T) -> Result<Value>) -> Result<Value> {
    item.map_or(Ok(Value::Null), f)
}

/// One page of a list.
pub fn connection(nodes: Vec<Value>, next_page_token: String) -> Value {
    // The proto only hands out a token when another page follows, so `endCursor` is
    // null on the last page as well as on an empty one.
    let has_next = !next_page_token.is_empty();
    let end_cursor = if has_next {
        Value::from(next_page_token)
    } else {
        Value::Null
    };
    object([
        ("nodes", Value::List(nodes)),
        (
            "pageInfo",
            object([
                ("endCursor", end_cursor),
                ("hasNextPage", Value::from(has_next)),
            ]),
        ),
    ])
}

/// What a command returns: the aggregate it applied to and its version after.
pub fn command_payload(id_field: &str, id: &str, version: i64) -> Result<Value> {
    Ok(object([
        (id_field, Value::from(id)),
        ("version", int(version, "version")?),
    ]))
}

pub fn delete_payload(id: &str) -> Value {
    object([("id", Value::from(id))])
}

/// A string field of the parent object (`productId` of a `CartItem`).
pub fn parent_str(parent: &FieldValue<'_>, key: &str) -> Option<String> {
    match parent.as_value() {
        Some(Value::Object(o)) => match o.get(key) {
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    }
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
        assert_eq!(opt_datetime(None, "x").ok(), Some(Value::Null));
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
            object([
                ("nodes", Value::List(vec![])),
                (
                    "pageInfo",
                    object([
                        ("endCursor", Value::Null),
                        ("hasNextPage", Value::from(false))
                    ])
                )
            ])
        );
    }
}
