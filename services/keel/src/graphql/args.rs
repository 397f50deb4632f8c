//! Arguments and input fields as proto values.

use async_graphql::dynamic::ObjectAccessor;
use async_graphql::indexmap::IndexMap;
use async_graphql::{Name, Value};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::errors::{self, Violation};
use super::values::Result;

/// Reads arguments or input fields, collecting every violation before failing, so a
/// malformed id is rejected before any call, together with the other bad fields.
pub struct Args {
    fields: IndexMap<Name, Value>,
    /// Where these fields sit in the input (`tags[1].`), for violations.
    prefix: String,
    violations: Vec<Violation>,
}

impl Args {
    /// A field's arguments.
    pub fn of(args: &ObjectAccessor<'_>) -> Args {
        let fields = args
            .iter()
            .map(|(k, v)| (k.clone(), v.as_value().clone()))
            .collect();
        Args::new(fields, String::new())
    }

    /// The fields of a mutation's `input` argument.
    pub fn input(args: &ObjectAccessor<'_>) -> Result<Args> {
        match args.get("input").map(|v| v.as_value().clone()) {
            Some(Value::Object(fields)) => Ok(Args::new(fields, String::new())),
            _ => Err(errors::bad_user_input(
                "invalid input: input: is required",
                &[Violation::new("input", "is required")],
            )),
        }
    }

    fn new(fields: IndexMap<Name, Value>, prefix: String) -> Args {
        Args {
            fields,
            prefix,
            violations: Vec::new(),
        }
    }

    fn path(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn bad(&mut self, name: &str, description: impl Into<String>) {
        let field = self.path(name);
        self.violations.push(Violation::new(field, description));
    }

    fn raw(&self, name: &str) -> Option<&Value> {
        self.fields.get(name).filter(|v| !matches!(v, Value::Null))
    }

    /// `v`, or a default and "is required" (unless `name` was already found bad).
    fn required<T: Default>(&mut self, name: &str, v: Option<T>) -> T {
        v.unwrap_or_else(|| {
            let field = self.path(name);
            if !self.violations.iter().any(|v| v.field == field) {
                self.bad(name, "is required");
            }
            T::default()
        })
    }

    /// An `ID` that must be a UUID; returned in canonical form.
    pub fn id(&mut self, name: &str) -> String {
        let v = self.opt_id(name);
        self.required(name, v)
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
        let v = self.opt_string(name);
        self.required(name, v)
    }

    /// A new password: 8 to 128 characters (never sent to the service it came with).
    pub fn password(&mut self, name: &str) -> String {
        let v = self.string(name);
        let chars = v.chars().count();
        if !v.is_empty() && !(8..=128).contains(&chars) {
            self.bad(name, "must be 8 to 128 characters");
        }
        v
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

    pub fn bool(&mut self, name: &str) -> bool {
        let v = self.opt_bool(name);
        self.required(name, v)
    }

    pub fn opt_bool(&mut self, name: &str) -> Option<bool> {
        match self.raw(name)? {
            Value::Boolean(b) => Some(*b),
            _ => {
                self.bad(name, "must be a boolean");
                None
            }
        }
    }

    /// A 64-bit integer: `Money` (integer minor units), or an `Int` sent as int64.
    pub fn i64(&mut self, name: &str) -> i64 {
        let v = self.opt_i64(name);
        self.required(name, v)
    }

    pub fn opt_i64(&mut self, name: &str) -> Option<i64> {
        let n = match self.raw(name)? {
            Value::Number(n) => n.as_i64(),
            _ => None,
        };
        if n.is_none() {
            self.bad(name, "must be an integer");
        }
        n
    }

    pub fn int(&mut self, name: &str) -> i32 {
        let v = self.opt_int(name);
        self.required(name, v)
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

    /// A `DateTime` (RFC 3339) as a proto timestamp, which must be given.
    pub fn datetime(&mut self, name: &str) -> Option<prost_types::Timestamp> {
        let v = self.opt_datetime(name);
        self.required(name, v.map(Some))
    }

    pub fn opt_datetime(&mut self, name: &str) -> Option<prost_types::Timestamp> {
        let parsed = match self.raw(name)? {
            Value::String(s) => DateTime::parse_from_rfc3339(s).ok(),
            _ => None,
        };
        match parsed {
            Some(t) => Some(crate::utc_to_timestamp(&t.with_timezone(&Utc))),
            None => {
                self.bad(name, "must be an RFC 3339 date and time");
                None
            }
        }
    }

    /// `first`: the page size, 0 (the service's default) when omitted.
    pub fn page_size(&mut self, name: &str) -> i32 {
        match self.opt_int(name) {
            Some(n) if n < 1 => {
                self.bad(name, format!("must be at least 1, got {n}"));
                0
            }
            Some(n) => n,
            None => 0,
        }
    }

    /// `after`: the page token, empty when omitted.
    pub fn page_token(&mut self, name: &str) -> String {
        self.opt_string(name).unwrap_or_default()
    }

    /// A list of input objects, each read by `f`.
    pub fn each<T>(&mut self, name: &str, mut f: impl FnMut(&mut Args) -> T) -> Vec<T> {
        let items = match self.raw(name) {
            None => return Vec::new(),
            Some(Value::List(items)) => items.clone(),
            Some(_) => {
                self.bad(name, "must be a list");
                return Vec::new();
            }
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            out.extend(self.nested(&format!("{name}[{i}]"), item, &mut f));
        }
        out
    }

    /// One input object, read by `f`; it must be given.
    pub fn child<T>(&mut self, name: &str, f: impl FnMut(&mut Args) -> T) -> Option<T> {
        let v = self.opt_child(name, f);
        self.required(name, v.map(Some))
    }

    pub fn opt_child<T>(&mut self, name: &str, mut f: impl FnMut(&mut Args) -> T) -> Option<T> {
        let item = self.raw(name)?.clone();
        self.nested(name, &item, &mut f)
    }

    fn nested<T>(
        &mut self,
        name: &str,
        item: &Value,
        f: &mut impl FnMut(&mut Args) -> T,
    ) -> Option<T> {
        let Value::Object(fields) = item else {
            self.bad(name, "must be an object");
            return None;
        };
        let mut inner = Args::new(fields.clone(), format!("{}.", self.path(name)));
        let v = f(&mut inner);
        self.violations.append(&mut inner.violations);
        Some(v)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(json: serde_json::Value) -> Args {
        match Value::from_json(json) {
            Ok(Value::Object(fields)) => Args::new(fields, String::new()),
            other => panic!("not an object: {other:?}"),
        }
    }

    fn fields(a: Args) -> Vec<(String, String)> {
        a.violations
            .into_iter()
            .map(|v| (v.field, v.description))
            .collect()
    }

    #[test]
    fn every_violation_is_collected_once_with_its_path() {
        let mut a = args(serde_json::json!({
            "id": "nope",
            "first": 0,
            "tags": [{"label": "ok"}, {"label": 3}, 7],
        }));
        assert_eq!(a.id("id"), "");
        assert_eq!(a.string("name"), "");
        assert_eq!(a.page_size("first"), 0);
        let labels = a.each("tags", |t| t.string("label"));
        assert_eq!(labels, ["ok", ""]);
        let got = fields(a);
        let paths: Vec<&str> = got.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(paths, ["id", "name", "first", "tags[1].label", "tags[2]"]);
        assert_eq!(got[0].1, "must be a UUID, got \"nope\"");
        assert_eq!(got[1].1, "is required");
    }

    #[test]
    fn values_become_proto_values() {
        let mut a = args(serde_json::json!({
            "id": "0190A4E4-7D1C-7A51-9D36-5A1E3B0C2F10",
            "price": 1500,
            "when": "2024-05-01T11:30:00+02:00",
            "on": true,
            "expectedVersion": null,
        }));
        assert_eq!(a.id("id"), "0190a4e4-7d1c-7a51-9d36-5a1e3b0c2f10");
        assert_eq!(a.i64("price"), 1500);
        assert_eq!(a.datetime("when").map(|t| t.seconds), Some(1_714_555_800));
        assert!(a.bool("on"));
        assert_eq!(a.opt_i64("expectedVersion"), None);
        assert_eq!(a.page_token("after"), "");
        assert!(a.finish().is_ok());
    }
}
