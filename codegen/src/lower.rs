//! Validation and lowering: the raw spec becomes the IR, or every problem is reported.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::diag::Diagnostics;
use crate::ir::*;
use crate::names;
use crate::positions::Positions;
use crate::spec;

mod auth;

const FIELD_TYPES: &str = "uuid, string, text, email, int, money, timestamp, bool";

pub fn lower(raw: &spec::Spec, pos: &Positions, d: &mut Diagnostics) -> System {
    let mut cx = Lowering {
        raw,
        pos,
        d,
        entities: Vec::new(),
    };
    cx.check_system();
    cx.lower_entities();
    let services = cx.lower_services();
    let bff = cx.lower_bff(&services);
    let auth = cx.lower_auth(&services);
    let entities = std::mem::take(&mut cx.entities);
    let mut system = System {
        name: raw.system.clone(),
        money: MoneyDef {
            currency: raw.money.currency.clone(),
            minor_units: raw.money.minor_units,
        },
        entities,
        services,
        bff,
        graphql: GraphqlApi::default(),
        deployables: Vec::new(),
        databases: Vec::new(),
        event_stores: Vec::new(),
        topics: Vec::new(),
        auth,
    };
    crate::layout::derive(&mut system);
    if d.is_empty()
        && let Err(e) = crate::graphql_model::derive(&mut system)
    {
        d.error(pos.key("bff"), e);
    }
    system
}

struct Lowering<'a> {
    raw: &'a spec::Spec,
    pos: &'a Positions,
    d: &'a mut Diagnostics,
    entities: Vec<Entity>,
}

impl Lowering<'_> {
    fn check_system(&mut self) {
        if !names::is_snake(&self.raw.system) {
            self.d.error(
                self.pos.value("system"),
                format!(
                    "system name `{}` must be snake_case (lowercase letters, digits, `_`)",
                    self.raw.system
                ),
            );
        }
        if self.raw.system.len() > names::MAX_DERIVED_NAME {
            self.d.error(
                self.pos.value("system"),
                format!(
                    "system name `{}` is too long for Kubernetes (a namespace): at most {} characters",
                    self.raw.system,
                    names::MAX_DERIVED_NAME
                ),
            );
        }
        let c = &self.raw.money.currency;
        if c.len() != 3 || !c.chars().all(|c| c.is_ascii_uppercase()) {
            self.d.error(
                self.pos.value("money.currency"),
                format!("currency `{c}` must be a three-letter ISO 4217 code such as JPY or EUR"),
            );
        }
        if self.raw.money.minor_units > 4 {
            self.d.error(
                self.pos.value("money.minor_units"),
                format!(
                    "minor_units {} is out of range: expected 0 to 4 (JPY has 0, EUR has 2)",
                    self.raw.money.minor_units
                ),
            );
        }
    }

    fn entity(&self, name: &str) -> Option<&Entity> {
        self.entities.iter().find(|e| e.name == name)
    }

    // ---------------------------------------------------------------- entities

    fn lower_entities(&mut self) {
        let raw = self.raw;
        // Names and own fields first, inheritance and relations once all are known.
        let mut own_fields: Vec<Vec<Field>> = Vec::new();
        for (name, e) in &raw.entities {
            let path = format!("entities.{name}");
            if !names::is_pascal(name) {
                self.d.error(
                    self.pos.key(&path),
                    format!("entity name `{name}` must be PascalCase, e.g. `CartItem`"),
                );
            }
            let collide = names::type_collisions(name);
            if !collide.is_empty() {
                self.d.error(
                    self.pos.key(&path),
                    format!(
                        "entity name `{name}` is reserved in {}: choose another name",
                        collide.join(", ")
                    ),
                );
            }
            let table = names::plural(&names::snake(name));
            if names::sql_reserved(&table) {
                self.d.error(
                    self.pos.key(&path),
                    format!("entity `{name}` becomes the table `{table}`, a reserved word in SQL: choose another name"),
                );
            }
            let longest = format!("{}_deletions", names::snake(name));
            if longest.len().max(table.len()) > names::MAX_DERIVED_NAME {
                self.d.error(
                    self.pos.key(&path),
                    format!(
                        "entity name `{name}` is too long for PostgreSQL: its tables (`{longest}`) may have at most {} characters: choose a shorter name",
                        names::MAX_DERIVED_NAME
                    ),
                );
            }
            let mut fields = Vec::new();
            for (fname, f) in &e.fields {
                if let Some(f) = self.lower_field(&format!("{path}.fields.{fname}"), fname, f) {
                    fields.push(f);
                }
            }
            own_fields.push(fields);
        }
        for ((name, e), _) in raw.entities.iter().zip(&own_fields) {
            self.entities.push(Entity {
                name: name.clone(),
                doc: e.doc.clone(),
                is_abstract: e.is_abstract,
                extends: e.extends.clone(),
                fields: Vec::new(),
                relations: Vec::new(),
                owner: None,
                key: e.key.clone(),
                unique: Vec::new(),
                indexes: Vec::new(),
                owned_by: e.owned_by.clone(),
                span: self.pos.key(&format!("entities.{name}")),
            });
        }
        // Flatten inheritance.
        for (i, (name, e)) in raw.entities.iter().enumerate() {
            let mut chain = Vec::new();
            let mut cur = e.extends.clone();
            let mut ok = true;
            while let Some(base) = cur {
                if base == *name || chain.contains(&base) {
                    self.d.error(
                        self.pos.value(&format!("entities.{name}.extends")),
                        format!("entity `{name}` extends itself through `{base}`: inheritance must not loop"),
                    );
                    ok = false;
                    break;
                }
                let Some(idx) = raw.entities.get_index_of(&base) else {
                    self.d.error(
                        self.pos.value(&format!("entities.{name}.extends")),
                        format!(
                            "unknown entity `{base}` in `extends`: expected one of {}",
                            list(raw.entities.keys())
                        ),
                    );
                    ok = false;
                    break;
                };
                chain.push(base.clone());
                cur = raw.entities[idx].extends.clone();
            }
            let mut fields: Vec<Field> = Vec::new();
            if ok {
                for base in chain.iter().rev() {
                    let idx = raw.entities.get_index_of(base).unwrap_or_default();
                    fields.extend(own_fields[idx].iter().cloned());
                }
            }
            for f in &own_fields[i] {
                if let Some(prev) = fields.iter().find(|g| g.name == f.name) {
                    let _ = prev;
                    self.d.error(
                        f.span,
                        format!(
                            "field `{}` of `{name}` is already inherited from `{}`",
                            f.name,
                            chain.first().cloned().unwrap_or_default()
                        ),
                    );
                } else {
                    fields.push(f.clone());
                }
            }
            for f in &own_fields[i] {
                if let Some(old) = &f.renamed_from
                    && fields.iter().any(|g| &g.name == old)
                {
                    self.d.error(
                        f.span,
                        format!(
                            "`{}` is `renamed_from: {old}`, but `{name}` still has a field `{old}`: remove one of them",
                            f.name
                        ),
                    );
                }
            }
            for (n, f) in fields.iter_mut().enumerate() {
                f.number = n as u32 + 1;
            }
            self.entities[i].fields = fields;
        }
        // Relations, keys, indexes.
        for (i, (name, e)) in raw.entities.iter().enumerate() {
            let path = format!("entities.{name}");
            let mut relations = Vec::new();
            for (rname, r) in &e.relations {
                let rpath = format!("{path}.relations.{rname}");
                if names::GENERATED_COLUMNS.contains(&rname.as_str()) {
                    self.d.error(
                        self.pos.key(&rpath),
                        format!("relation name `{rname}` is one the generator gives its own fields (paging, versions, idempotency): choose another name"),
                    );
                    continue;
                }
                if self.entities[i]
                    .fields
                    .iter()
                    .any(|f| names::camel(&f.name) == names::camel(rname))
                {
                    self.d.error(
                        self.pos.key(&rpath),
                        format!("relation `{rname}` of `{name}` has the name of one of its fields: the proto message and the GraphQL type would hold both; choose another name"),
                    );
                    continue;
                }
                if let Some(rel) = self.lower_relation(&rpath, rname, r) {
                    relations.push(rel);
                }
            }
            self.entities[i].relations = relations;
            let fields: Vec<String> = self.entities[i]
                .fields
                .iter()
                .map(|f| f.name.clone())
                .collect();
            let check_names = |this: &mut Self, what: &str, p: &str, names: &[String]| -> bool {
                let mut ok = true;
                for (j, n) in names.iter().enumerate() {
                    let field = n.split_whitespace().next().unwrap_or_default();
                    if !fields.iter().any(|f| f == field) {
                        this.d.error(
                            this.pos.value(&format!("{p}.{j}")),
                            format!(
                                "{what} of `{name}` names unknown field `{field}`: expected one of {}",
                                list(&fields)
                            ),
                        );
                        ok = false;
                    }
                }
                ok
            };
            if check_names(self, "`key`", &format!("{path}.key"), &e.key) {
                for (j, k) in e.key.iter().enumerate() {
                    if self.entities[i].field(k).is_some_and(|f| f.optional) {
                        self.d.error(
                            self.pos.value(&format!("{path}.key.{j}")),
                            format!("key field `{k}` of `{name}` is optional: a key tells the items apart, it must always be there"),
                        );
                    }
                }
            }
            let mut unique = Vec::new();
            for (j, u) in e.unique.iter().enumerate() {
                if check_names(self, "`unique`", &format!("{path}.unique.{j}"), u) {
                    unique.push(u.clone());
                }
            }
            let mut indexes = Vec::new();
            for (j, ix) in e.indexes.iter().enumerate() {
                let p = format!("{path}.indexes.{j}");
                if check_names(self, "`indexes`", &p, ix) {
                    indexes.push(self.index_columns(&p, ix));
                }
            }
            self.entities[i].unique = unique;
            self.entities[i].indexes = indexes;
            if let Some(id) = self.entities[i].field("id")
                && id.ty != FieldType::Uuid
            {
                self.d.error(
                    id.span,
                    format!(
                        "`id` of `{name}` must be of type uuid, not {}",
                        id.ty.spec_name()
                    ),
                );
            }
        }
        // Ownership.
        let mut owners: HashMap<String, (String, Span)> = HashMap::new();
        for e in &self.entities {
            for r in e.relations.iter().filter(|r| r.owned) {
                if let Some((other, _)) = owners.get(&r.target) {
                    self.d.error(
                        r.span,
                        format!(
                            "`{}` is already owned by `{other}`: an entity has at most one owner",
                            r.target
                        ),
                    );
                } else {
                    owners.insert(r.target.clone(), (e.name.clone(), r.span));
                }
            }
        }
        for i in 0..self.entities.len() {
            let name = self.entities[i].name.clone();
            self.entities[i].owner = owners.get(&name).map(|(o, _)| o.clone());
            let e = &self.entities[i];
            if !e.is_abstract && e.owner.is_none() && !e.has_id() && e.extends.is_none() {
                self.d.error(
                    e.span,
                    format!(
                        "entity `{name}` has no `id: uuid` field and no owner: give it an id, or make another entity own it with `owned: true`"
                    ),
                );
            }
        }
        // Owned collections need a way to tell items apart.
        for e in &self.entities {
            for r in e
                .relations
                .iter()
                .filter(|r| r.owned && r.cardinality.is_many())
            {
                if let Some(t) = self.entity(&r.target)
                    && t.key.is_empty()
                    && !t.has_id()
                {
                    self.d.error(
                        r.span,
                        format!(
                            "cardinality {} of owned `{}` needs `key: [...]` on `{}` (or an `id`) to tell its items apart",
                            r.cardinality, r.target, r.target
                        ),
                    );
                }
            }
        }
    }

    fn index_columns(&mut self, path: &str, cols: &[String]) -> Vec<IndexColumn> {
        let mut out = Vec::new();
        for (j, c) in cols.iter().enumerate() {
            let mut parts = c.split_whitespace();
            let field = parts.next().unwrap_or_default().to_string();
            let descending = match parts.next() {
                None | Some("asc") => false,
                Some("desc") => true,
                Some(other) => {
                    self.d.error(
                        self.pos.value(&format!("{path}.{j}")),
                        format!("unknown sort direction `{other}` after `{field}`: expected `asc` or `desc`"),
                    );
                    false
                }
            };
            out.push(IndexColumn { field, descending });
        }
        out
    }

    fn lower_field(&mut self, path: &str, name: &str, f: &spec::Field) -> Option<Field> {
        let span = self.pos.key(path);
        // A refused name is reported here; the field stays, so that what refers to it
        // is not reported as unknown as well.
        let mut ok = true;
        if !names::is_snake(name) {
            self.d.error(
                span,
                format!("field name `{name}` must be snake_case, e.g. `unit_price`"),
            );
        }
        let collide = names::field_collisions(name);
        if !collide.is_empty() {
            self.d.error(
                span,
                format!(
                    "field name `{name}` is a reserved word in {}: choose another name",
                    collide.join(", ")
                ),
            );
        }
        if name.len() > names::MAX_DERIVED_NAME {
            self.d.error(
                span,
                format!(
                    "field name `{name}` is too long for PostgreSQL (a column name): at most {} characters",
                    names::MAX_DERIVED_NAME
                ),
            );
        }
        if names::GENERATED_COLUMNS.contains(&name) {
            self.d.error(
                span,
                format!("field name `{name}` is used by the generator itself: choose another name"),
            );
        }
        let type_span = self.pos.value(&format!("{path}.type"));
        let ty = match (&f.ty, &f.reference) {
            (Some(_), Some(_)) => {
                self.d.error(
                    span,
                    format!("field `{name}` has both `type` and `ref`: give one"),
                );
                return None;
            }
            (None, None) => {
                self.d.error(
                    span,
                    format!("field `{name}` has no type: expected `type: <{FIELD_TYPES}>` or `ref: <Entity>`"),
                );
                return None;
            }
            (None, Some(r)) => {
                if !self.raw.entities.contains_key(r) {
                    self.d.error(
                        self.pos.value(&format!("{path}.ref")),
                        format!(
                            "unknown entity `{r}` in `ref`: expected one of {}",
                            list(self.raw.entities.keys())
                        ),
                    );
                    ok = false;
                }
                FieldType::Ref(r.clone())
            }
            (Some(t), None) => match t.as_str() {
                "uuid" => FieldType::Uuid,
                "string" => FieldType::String,
                "text" => FieldType::Text,
                "email" => FieldType::Email,
                "int" => FieldType::Int,
                "money" => FieldType::Money,
                "timestamp" => FieldType::Timestamp,
                "bool" => FieldType::Bool,
                other => {
                    let hint = if matches!(other, "float" | "double" | "decimal" | "number") {
                        " (money is `money`, integer minor units; floats are not supported)"
                    } else {
                        ""
                    };
                    self.d.error(
                        type_span,
                        format!("unknown type `{other}` for field `{name}`: expected one of {FIELD_TYPES}, or `ref: <Entity>`{hint}"),
                    );
                    return None;
                }
            },
        };
        let mut c = Constraints::default();
        let bad = |this: &mut Self, key: &str, msg: String| {
            this.d.error(this.pos.key(&format!("{path}.{key}")), msg);
        };
        for (key, v) in [("min_len", f.min_len), ("max_len", f.max_len)] {
            let Some(v) = v else { continue };
            if !ty.is_stringy() {
                bad(
                    self,
                    key,
                    format!(
                        "`{key}` does not apply to {} field `{name}`: it is for string, text and email",
                        ty.spec_name()
                    ),
                );
                ok = false;
            } else if v < 0 || v > u32::MAX as i64 {
                bad(
                    self,
                    key,
                    format!("`{key}` of `{name}` must be a non-negative length, got {v}"),
                );
                ok = false;
            } else if key == "min_len" {
                c.min_len = Some(v as u32);
            } else {
                c.max_len = Some(v as u32);
            }
        }
        if let (Some(lo), Some(hi)) = (c.min_len, c.max_len)
            && lo > hi
        {
            bad(
                self,
                "min_len",
                format!(
                    "`min_len` {lo} of `{name}` is greater than `max_len` {hi}: no value could pass"
                ),
            );
            ok = false;
        }
        if c.max_len == Some(0) {
            bad(
                self,
                "max_len",
                format!("`max_len` of `{name}` is 0: only the empty string could pass"),
            );
            ok = false;
        }
        for (key, v) in [("min", f.min), ("max", f.max)] {
            let Some(v) = v else { continue };
            if !ty.is_numeric() {
                bad(
                    self,
                    key,
                    format!(
                        "`{key}` does not apply to {} field `{name}`: it is for int and money",
                        ty.spec_name()
                    ),
                );
                ok = false;
            } else if ty == FieldType::Int && (v < i32::MIN as i64 || v > i32::MAX as i64) {
                bad(
                    self,
                    key,
                    format!("`{key}` {v} of int field `{name}` is outside the 32-bit range"),
                );
                ok = false;
            } else if key == "min" {
                c.min = Some(v);
            } else {
                c.max = Some(v);
            }
        }
        if let (Some(lo), Some(hi)) = (c.min, c.max)
            && lo > hi
        {
            bad(
                self,
                "min",
                format!("`min` {lo} of `{name}` is greater than `max` {hi}: no value could pass"),
            );
            ok = false;
        }
        if ty == FieldType::Email && c.max_len.is_none() {
            c.max_len = Some(254);
        }
        if let Some(values) = &f.one_of {
            let mut problem = None;
            if !ty.is_stringy() {
                problem = Some(format!(
                    "`one_of` does not apply to {} field `{name}`: it is for string, text and email",
                    ty.spec_name()
                ));
            } else if values.is_empty() {
                problem = Some(format!(
                    "`one_of` of `{name}` is empty: no value could pass"
                ));
            }
            for (i, v) in values.iter().enumerate() {
                let len = v.chars().count() as u32;
                if problem.is_none() && values[..i].contains(v) {
                    problem = Some(format!("`one_of` of `{name}` lists `{v}` twice"));
                }
                if problem.is_none()
                    && (c.min_len.is_some_and(|m| len < m)
                        || c.max_len.is_some_and(|m| len > m)
                        || v.is_empty())
                {
                    problem = Some(format!(
                        "`one_of` value `{v}` of `{name}` fails the field's own length bounds"
                    ));
                }
            }
            match problem {
                Some(p) => {
                    bad(self, "one_of", p);
                    ok = false;
                }
                None => c.one_of = values.clone(),
            }
        }
        let default = match &f.default {
            Some(v) if ok => {
                let d = self.default_value(&format!("{path}.default"), name, &ty, &c, v);
                ok &= d.is_some();
                d
            }
            _ => None,
        };
        if let Some(old) = &f.renamed_from
            && (!names::is_snake(old) || old == name)
        {
            bad(
                self,
                "renamed_from",
                format!(
                    "`renamed_from` of `{name}` must be the field's previous snake_case name, not `{old}`"
                ),
            );
            ok = false;
        }
        ok.then(|| Field {
            name: name.to_string(),
            ty,
            optional: f.optional,
            unique: f.unique,
            readonly: f.readonly,
            constraints: c,
            doc: f.doc.clone(),
            default,
            renamed_from: f.renamed_from.clone(),
            number: 0,
            span,
        })
    }

    /// A `default:` that the field itself would accept.
    fn default_value(
        &mut self,
        path: &str,
        name: &str,
        ty: &FieldType,
        c: &Constraints,
        v: &serde_yaml::Value,
    ) -> Option<DefaultValue> {
        use serde_yaml::Value;
        let span = self.pos.value(path);
        let expected = match ty {
            FieldType::Uuid | FieldType::Ref(_) => {
                "a UUID such as \"00000000-0000-0000-0000-000000000000\""
            }
            FieldType::String | FieldType::Text => "a string",
            FieldType::Email => "an email address",
            FieldType::Int | FieldType::Money => "an integer",
            FieldType::Timestamp => "an RFC 3339 UTC time such as \"2024-01-01T00:00:00Z\"",
            FieldType::Bool => "true or false",
        };
        let value = match (ty, v) {
            (FieldType::Bool, Value::Bool(b)) => Some(DefaultValue::Bool(*b)),
            (FieldType::Int | FieldType::Money, Value::Number(n)) => {
                n.as_i64().map(DefaultValue::Int)
            }
            (FieldType::Uuid | FieldType::Ref(_), Value::String(s)) if is_uuid(s) => {
                Some(DefaultValue::Str(s.to_ascii_lowercase()))
            }
            (FieldType::Timestamp, Value::String(s)) if is_utc_timestamp(s) => {
                Some(DefaultValue::Str(s.clone()))
            }
            (FieldType::String | FieldType::Text, Value::String(s)) => {
                Some(DefaultValue::Str(s.clone()))
            }
            (FieldType::Email, Value::String(s)) if is_email(s) => {
                Some(DefaultValue::Str(s.clone()))
            }
            _ => None,
        };
        let Some(value) = value else {
            self.d.error(
                span,
                format!(
                    "`default` of {} field `{name}` must be {expected}",
                    ty.spec_name()
                ),
            );
            return None;
        };
        let problem = match &value {
            DefaultValue::Int(n) => {
                let n = *n;
                if *ty == FieldType::Int && i32::try_from(n).is_err() {
                    Some(format!("{n} is outside the 32-bit range"))
                } else if c.min.is_some_and(|m| n < m) || c.max.is_some_and(|m| n > m) {
                    Some(format!("{n} is outside `min`..`max`"))
                } else {
                    None
                }
            }
            DefaultValue::Str(s) if ty.is_stringy() => {
                let len = s.chars().count() as u32;
                if c.min_len.is_some_and(|m| len < m) || c.max_len.is_some_and(|m| len > m) {
                    Some(format!("its length {len} is outside `min_len`..`max_len`"))
                } else if !c.one_of.is_empty() && !c.one_of.contains(s) {
                    Some(format!("`{s}` is not in `one_of`"))
                } else {
                    None
                }
            }
            _ => None,
        };
        if let Some(p) = problem {
            self.d.error(
                span,
                format!("`default` of `{name}` would fail the field's own constraints: {p}"),
            );
            return None;
        }
        Some(value)
    }

    fn lower_relation(&mut self, path: &str, name: &str, r: &spec::Relation) -> Option<Relation> {
        let span = self.pos.key(path);
        let mut ok = true;
        if !names::is_snake(name) {
            self.d
                .error(span, format!("relation name `{name}` must be snake_case"));
            ok = false;
        }
        if !self.raw.entities.contains_key(&r.to) {
            self.d.error(
                self.pos.value(&format!("{path}.to")),
                format!(
                    "unknown entity `{}` in relation `{name}`: expected one of {}",
                    r.to,
                    list(self.raw.entities.keys())
                ),
            );
            ok = false;
        }
        let cardinality = parse_cardinality(&r.cardinality);
        if cardinality.is_none() {
            self.d.error(
                self.pos.value(&format!("{path}.cardinality")),
                format!(
                    "bad cardinality `{}`: expected `MIN..MAX` or `MIN..*`, such as \"0..1\", \"1..*\" or \"0..*\"",
                    r.cardinality
                ),
            );
            ok = false;
        }
        let on_delete = match r.on_delete.as_deref() {
            None | Some("keep") => OnDelete::Keep,
            Some("cascade") => OnDelete::Cascade,
            Some(other) => {
                self.d.error(
                    self.pos.value(&format!("{path}.on_delete")),
                    format!("unknown on_delete `{other}`: expected `cascade` or `keep`"),
                );
                ok = false;
                OnDelete::Keep
            }
        };
        let on_delete = if r.owned {
            OnDelete::Cascade
        } else {
            on_delete
        };
        let order_by = self.index_columns(&format!("{path}.order_by"), &r.order_by);
        if !r.order_by.is_empty() && !r.owned {
            self.d.error(
                self.pos.key(&format!("{path}.order_by")),
                format!("`order_by` of relation `{name}`: only an owned relation lists its items in an order; add `owned: true` or remove `order_by`"),
            );
            ok = false;
        }
        if let Some(target) = self.raw.entities.get(&r.to) {
            for (j, c) in order_by.iter().enumerate() {
                if !target.fields.contains_key(&c.field) {
                    self.d.error(
                        self.pos.value(&format!("{path}.order_by.{j}")),
                        format!(
                            "`order_by` of relation `{name}` names `{}`, which is not a field of {}: expected one of {}",
                            c.field,
                            r.to,
                            list(target.fields.keys())
                        ),
                    );
                    ok = false;
                }
            }
        }
        ok.then(|| Relation {
            name: name.to_string(),
            target: r.to.clone(),
            cardinality: cardinality.unwrap_or(Cardinality { min: 0, max: None }),
            owned: r.owned,
            on_delete,
            order_by,
            span,
        })
    }

    // ---------------------------------------------------------------- services

    fn lower_services(&mut self) -> Vec<Service> {
        let raw = self.raw;
        let mut out = Vec::new();
        let mut op_names: HashMap<String, String> = HashMap::new();
        for (name, s) in &raw.services {
            let path = format!("services.{name}");
            if let Some(svc) = self.lower_service(&path, name, s, &mut op_names) {
                out.push(svc);
            }
        }
        // Calls and subscriptions need every service.
        for (name, s) in &raw.services {
            let path = format!("services.{name}");
            for (j, c) in s.calls.iter().enumerate() {
                if c == name {
                    self.d.error(
                        self.pos.value(&format!("{path}.calls.{j}")),
                        format!("service `{name}` calls itself"),
                    );
                } else if !raw.services.contains_key(c) {
                    self.d.error(
                        self.pos.value(&format!("{path}.calls.{j}")),
                        format!(
                            "unknown service `{c}` in `calls`: expected one of {}",
                            list(raw.services.keys())
                        ),
                    );
                }
            }
            for (key, cmd) in &s.subscribes {
                let kpath = format!("{path}.subscribes.{key}");
                let Some((svc, ev)) = key.split_once('.') else {
                    self.d.error(self.pos.key(&kpath), format!("subscription `{key}` must be `service.Event`, e.g. `user.AccountDeleted`"));
                    continue;
                };
                match out.iter().find(|o: &&Service| o.name == svc) {
                    None => self.d.error(
                        self.pos.key(&kpath),
                        format!(
                            "unknown service `{svc}` in subscription `{key}`: expected one of {}",
                            list(raw.services.keys())
                        ),
                    ),
                    Some(o) if !o.events.iter().any(|e| e.name == ev) => self.d.error(
                        self.pos.key(&kpath),
                        format!(
                            "service `{svc}` has no event `{ev}`: expected one of {}",
                            list(o.events.iter().map(|e| &e.name))
                        ),
                    ),
                    _ => {}
                }
                let own = out.iter().find(|o| &o.name == name);
                if let Some(own) = own
                    && !own
                        .operations
                        .iter()
                        .any(|o| o.kind == OperationKind::Command && &o.name == cmd)
                {
                    self.d.error(
                        self.pos.value(&kpath),
                        format!(
                            "subscription `{key}` triggers unknown command `{cmd}`: expected one of {}",
                            list(own.operations.iter().filter(|o| o.kind == OperationKind::Command).map(|o| &o.name))
                        ),
                    );
                }
            }
        }
        self.resolve_exists(&mut out);
        for svc in &mut out {
            let s = &raw.services[&svc.name];
            let path = format!("services.{}", svc.name);
            svc.subscriptions = s
                .subscribes
                .iter()
                .filter_map(|(key, cmd)| {
                    let (service, event) = key.split_once('.')?;
                    Some(Subscription {
                        service: service.to_string(),
                        event: event.to_string(),
                        command: cmd.clone(),
                        span: self.pos.key(&format!("{path}.subscribes.{key}")),
                    })
                })
                .collect();
        }
        out
    }

    fn lower_service(
        &mut self,
        path: &str,
        name: &str,
        s: &spec::Service,
        op_names: &mut HashMap<String, String>,
    ) -> Option<Service> {
        let span = self.pos.key(path);
        // A refused name is reported; the service is still lowered so that what refers
        // to it and its operations is not reported as unknown as well.
        let mut ok = true;
        if !names::is_snake(name) {
            self.d.error(
                span,
                format!("service name `{name}` must be snake_case, e.g. `product`"),
            );
        }
        let collide = names::service_collisions(name);
        if !collide.is_empty() {
            self.d.error(
                span,
                format!(
                    "service name `{name}` is reserved in {}: choose another name",
                    collide.join(", ")
                ),
            );
        }
        let pattern = match s.pattern.as_str() {
            "crud" => Pattern::Crud,
            "cqs-es" => Pattern::CqsEs,
            "cqrs-es" => Pattern::CqrsEs,
            other => {
                self.d.error(
                    self.pos.value(&format!("{path}.pattern")),
                    format!("unknown pattern `{other}`: expected one of crud, cqs-es, cqrs-es"),
                );
                return None;
            }
        };
        for (target, derived) in
            names::service_bounded_names(&self.raw.system, name, pattern == Pattern::CqrsEs)
        {
            if derived.len() > names::MAX_DERIVED_NAME {
                self.d.error(
                    span,
                    format!(
                        "service name `{name}` is too long for {target}: `{derived}` has {} characters, at most {} are allowed: choose a shorter name",
                        derived.len(),
                        names::MAX_DERIVED_NAME
                    ),
                );
            }
        }
        let not_for = |this: &mut Self, key: &str, present: bool, why: &str| {
            if present {
                this.d.error(
                    this.pos.key(&format!("{path}.{key}")),
                    format!(
                        "`{key}` does not apply to a {} service: {why}",
                        pattern.as_str()
                    ),
                );
            }
        };
        let entity_key = if pattern == Pattern::Crud {
            "entity"
        } else {
            "aggregate"
        };
        let entity_name = match pattern {
            Pattern::Crud => {
                not_for(
                    self,
                    "aggregate",
                    s.aggregate.is_some(),
                    "name its entity with `entity`",
                );
                not_for(self, "commands", !s.commands.is_empty(), "use `use_cases`");
                not_for(
                    self,
                    "events",
                    !s.events.is_empty(),
                    "only event-sourced services have events",
                );
                not_for(
                    self,
                    "queries",
                    !s.queries.is_empty(),
                    "use `use_cases` with kind list or get",
                );
                not_for(
                    self,
                    "subscribes",
                    !s.subscribes.is_empty(),
                    "only event-sourced services subscribe",
                );
                not_for(
                    self,
                    "event_store",
                    s.event_store.is_some(),
                    "it keeps rows in `store`",
                );
                not_for(
                    self,
                    "read_model",
                    s.read_model.is_some(),
                    "it keeps rows in `store`",
                );
                s.entity.clone()
            }
            Pattern::CqsEs | Pattern::CqrsEs => {
                not_for(
                    self,
                    "entity",
                    s.entity.is_some(),
                    "name its aggregate with `aggregate`",
                );
                not_for(
                    self,
                    "use_cases",
                    !s.use_cases.is_empty(),
                    "use `commands` and `queries`",
                );
                s.aggregate.clone()
            }
        };
        let Some(entity_name) = entity_name else {
            self.d.error(
                span,
                format!("service `{name}` has no `{entity_key}`: name the entity it owns"),
            );
            return None;
        };
        let Some(entity) = self.entity(&entity_name).cloned() else {
            self.d.error(
                self.pos.value(&format!("{path}.{entity_key}")),
                format!(
                    "unknown entity `{entity_name}` in `{entity_key}`: expected one of {}",
                    list(self.raw.entities.keys())
                ),
            );
            return None;
        };
        if pattern != Pattern::Crud && names::snake(&entity_name) == "version" {
            self.d.error(
                self.pos.value(&format!("{path}.{entity_key}")),
                format!("an aggregate named `{entity_name}` would be the field `version` of its query answers, beside the stream's version: choose another name, e.g. `{entity_name}Record`"),
            );
            ok = false;
        }
        if entity.is_abstract || entity.owner.is_some() {
            let why = if entity.is_abstract {
                "it is abstract"
            } else {
                "it is owned by another entity"
            };
            self.d.error(
                self.pos.value(&format!("{path}.{entity_key}")),
                format!("`{entity_name}` cannot be the {entity_key} of service `{name}`: {why}"),
            );
            ok = false;
        }
        let store_of =
            |this: &mut Self, key: &str, v: &Option<String>, want: Store| -> Option<Store> {
                match v.as_deref() {
                    None => {
                        this.d.error(
                            span,
                            format!(
                                "a {} service needs `{key}: {}`",
                                pattern.as_str(),
                                want.as_str()
                            ),
                        );
                        None
                    }
                    Some(x) if x == want.as_str() => Some(want),
                    Some(x) => {
                        this.d.error(
                            this.pos.value(&format!("{path}.{key}")),
                            format!(
                                "unsupported {key} `{x}` for a {} service: expected `{}`",
                                pattern.as_str(),
                                want.as_str()
                            ),
                        );
                        None
                    }
                }
            };
        let (store, event_store) = match pattern {
            Pattern::Crud | Pattern::CqsEs => {
                if pattern == Pattern::CqsEs {
                    not_for(
                        self,
                        "event_store",
                        s.event_store.is_some(),
                        "events and state share `store`",
                    );
                    not_for(
                        self,
                        "read_model",
                        s.read_model.is_some(),
                        "queries read the state table in `store`",
                    );
                }
                (store_of(self, "store", &s.store, Store::Postgres), None)
            }
            Pattern::CqrsEs => {
                not_for(
                    self,
                    "store",
                    s.store.is_some(),
                    "it has `event_store` and `read_model`",
                );
                (
                    store_of(self, "read_model", &s.read_model, Store::Postgres),
                    store_of(self, "event_store", &s.event_store, Store::MongoDb),
                )
            }
        };
        let messaging = match &s.messaging {
            None if pattern == Pattern::CqrsEs => {
                self.d.error(span, "a cqrs-es service needs `messaging: { broker: kafka, topic: ... }`: its event handler reads from it");
                None
            }
            None => None,
            Some(m) => {
                if pattern == Pattern::Crud {
                    not_for(
                        self,
                        "messaging",
                        true,
                        "only event-sourced services publish events",
                    );
                }
                if m.broker != "kafka" {
                    self.d.error(
                        self.pos.value(&format!("{path}.messaging.broker")),
                        format!("unsupported broker `{}`: expected `kafka`", m.broker),
                    );
                }
                if m.topic.is_empty()
                    || !m
                        .topic
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
                {
                    self.d.error(
                        self.pos.value(&format!("{path}.messaging.topic")),
                        format!(
                            "bad topic name `{}`: use letters, digits, `.`, `_` and `-`",
                            m.topic
                        ),
                    );
                }
                Some(Messaging {
                    topic: m.topic.clone(),
                })
            }
        };
        if pattern != Pattern::Crud {
            for r in entity
                .relations
                .iter()
                .filter(|r| r.owned && r.cardinality.min > 0)
            {
                self.d.error(
                    r.span,
                    format!(
                        "cardinality {} of `{}.{}` cannot be served by the {} aggregate of service `{name}`: a new aggregate starts empty, so use \"0..{}\"",
                        r.cardinality,
                        entity.name,
                        r.name,
                        pattern.as_str(),
                        r.cardinality.max.map_or("*".to_string(), |m| m.to_string())
                    ),
                );
                ok = false;
            }
        }

        let mut scope = Scope::new(&entity, self);
        let mut operations = Vec::new();
        let mut events = Vec::new();
        let pascal_service = names::pascal(name);
        let main_service = format!("{pascal_service}Service");
        let mut register_op = |this: &mut Self, op: &str, span: Span| {
            if !names::is_pascal(op) {
                this.d.error(
                    span,
                    format!("operation name `{op}` must be PascalCase, e.g. `ViewCart`"),
                );
            }
            let reserved = names::operation_collisions(op);
            if !reserved.is_empty() {
                this.d.error(
                    span,
                    format!(
                        "operation `{op}` becomes the method `{}` in {}, a reserved word there: choose another name, e.g. `{op}{}`",
                        names::snake(op),
                        reserved.join(", "),
                        names::pascal(&s.entity.clone().or(s.aggregate.clone()).unwrap_or_else(|| name.to_string()))
                    ),
                );
            }
            if let Some(other) = op_names.get(op) {
                this.d.error(
                    span,
                    format!("duplicate operation `{op}`: service `{other}` already has one (names are unique across the system)"),
                );
            } else {
                op_names.insert(op.to_string(), name.to_string());
            }
        };
        if pattern == Pattern::Crud {
            if s.use_cases.is_empty() {
                self.d
                    .error(span, format!("crud service `{name}` has no `use_cases`"));
            }
            for (op, u) in &s.use_cases {
                let upath = format!("{path}.use_cases.{op}");
                let uspan = self.pos.key(&upath);
                register_op(self, op, uspan);
                if let Some(o) =
                    self.lower_use_case(&upath, op, u, &entity, &mut scope, name, &main_service)
                {
                    operations.push(o);
                }
            }
            if let Some(batch) = batch_get(&operations, &entity.name, &main_service) {
                register_op(self, &batch.name, batch.span);
                operations.push(batch);
            }
        } else {
            let deploy_cmd = if pattern == Pattern::CqrsEs {
                format!("{}-command", names::kebab(name))
            } else {
                names::kebab(name)
            };
            let deploy_query = if pattern == Pattern::CqrsEs {
                format!("{}-query", names::kebab(name))
            } else {
                names::kebab(name)
            };
            let (cmd_service, query_service) = if pattern == Pattern::CqrsEs {
                (
                    format!("{pascal_service}CommandService"),
                    format!("{pascal_service}QueryService"),
                )
            } else {
                (main_service.clone(), main_service.clone())
            };
            for (ev, fields) in &s.events {
                let epath = format!("{path}.events.{ev}");
                let espan = self.pos.key(&epath);
                if !names::is_pascal(ev) {
                    self.d.error(
                        espan,
                        format!("event name `{ev}` must be PascalCase, e.g. `ProductAdded`"),
                    );
                }
                if self.raw.entities.contains_key(ev) {
                    self.d.error(espan, format!("event `{ev}` has the name of an entity: the proto messages would collide"));
                }
                let envelope = [
                    "event_id",
                    "version",
                    "occurred_at",
                    "correlation_id",
                    "causation_id",
                    "schema_version",
                    "payload",
                ];
                let id_field = format!("{}_id", names::snake(&entity.name));
                if envelope.contains(&names::snake(ev).as_str()) || names::snake(ev) == id_field {
                    self.d.error(espan, format!(
                        "event `{ev}` would be the field `{}` of the event envelope, which already has one: choose another name, e.g. `{}{ev}`",
                        names::snake(ev),
                        names::pascal(&entity.name)
                    ));
                }
                let mut efields = Vec::new();
                for (j, fname) in fields.iter().enumerate() {
                    let fspan = self.pos.value(&format!("{epath}.{j}"));
                    match scope.resolve(fname) {
                        Some(f) => efields.push(f),
                        None => {
                            self.d.error(fspan, format!("event `{ev}` names unknown field `{fname}`: expected one of {}", scope.names()));
                        }
                    }
                }
                renumber(&mut efields);
                events.push(Event {
                    name: ev.clone(),
                    doc: None,
                    fields: efields,
                    version: 1,
                    history: Vec::new(),
                    span: espan,
                });
            }
            if s.commands.is_empty() {
                self.d.error(
                    span,
                    format!("{} service `{name}` has no `commands`", pattern.as_str()),
                );
            }
            for (op, c) in &s.commands {
                let cpath = format!("{path}.commands.{op}");
                let cspan = self.pos.key(&cpath);
                register_op(self, op, cspan);
                let mut local = scope.with_params(self, &format!("{cpath}.params"), &c.params);
                let input = self.resolve_inputs(&cpath, op, &c.input, &mut local);
                if c.emits.is_empty() {
                    self.d.error(
                        cspan,
                        format!("command `{op}` emits no event: an event-sourced command must list the events it appends in `emits: [...]`"),
                    );
                }
                for (j, ev) in c.emits.iter().enumerate() {
                    if !s.events.contains_key(ev) {
                        self.d.error(
                            self.pos.value(&format!("{cpath}.emits.{j}")),
                            format!(
                                "command `{op}` emits unknown event `{ev}`: expected one of {}",
                                list(s.events.keys())
                            ),
                        );
                    }
                }
                let audience = self.audience(&cpath, &c.audience);
                let exists = self.exists_checks(&cpath, op, &c.exists, &input);
                operations.push(Operation {
                    name: op.clone(),
                    doc: c.doc.clone(),
                    kind: OperationKind::Command,
                    audience,
                    idempotent: c.idempotent.unwrap_or(false),
                    input,
                    output: None,
                    emits: c.emits.clone(),
                    exists,
                    page_size: None,
                    filter: Vec::new(),
                    order_by: Vec::new(),
                    deployable: deploy_cmd.clone(),
                    rpc: rpc(&cmd_service, op),
                    span: cspan,
                });
            }
            for (op, q) in &s.queries {
                let qpath = format!("{path}.queries.{op}");
                let qspan = self.pos.key(&qpath);
                register_op(self, op, qspan);
                let mut local = scope.with_params(self, &format!("{qpath}.params"), &q.params);
                let input = self.resolve_inputs(&qpath, op, &q.input, &mut local);
                let output = q.output.clone().unwrap_or_else(|| entity.name.clone());
                self.check_output(&qpath, op, &output);
                let id = format!("{}_id", names::snake(&entity.name));
                if pattern == Pattern::CqsEs
                    && !(input.len() == 1 && input[0].name == id && output == entity.name)
                {
                    self.d.error(
                        qspan,
                        format!(
                            "query `{op}`: a cqs-es query answers the aggregate by its id, `{{ input: [{id}], output: {} }}`; the runtime serves no other form",
                            entity.name
                        ),
                    );
                }
                let audience = self.audience(&qpath, &q.audience);
                let strong = match q.consistency.as_deref() {
                    None | Some("eventual") => false,
                    Some("strong") if pattern == Pattern::CqrsEs => true,
                    Some("strong") => {
                        self.d.error(
                            self.pos.key(&format!("{qpath}.consistency")),
                            format!("`consistency` applies to cqrs-es queries; a {} service's queries already read its state", pattern.as_str()),
                        );
                        false
                    }
                    Some(other) => {
                        self.d.error(
                            self.pos.value(&format!("{qpath}.consistency")),
                            format!("unknown consistency `{other}`: expected `eventual` (read model) or `strong` (command side)"),
                        );
                        false
                    }
                };
                let (deployable, service) = if strong {
                    (deploy_cmd.clone(), cmd_service.as_str())
                } else {
                    (deploy_query.clone(), query_service.as_str())
                };
                operations.push(Operation {
                    name: op.clone(),
                    doc: q.doc.clone(),
                    kind: OperationKind::Query,
                    audience,
                    idempotent: true,
                    input,
                    output: Some(output),
                    emits: Vec::new(),
                    exists: Vec::new(),
                    page_size: None,
                    filter: Vec::new(),
                    order_by: Vec::new(),
                    deployable,
                    rpc: rpc(service, op),
                    span: qspan,
                });
            }
        }
        drop(scope);
        if !ok {
            return None;
        }
        let mut svc = Service {
            name: name.to_string(),
            doc: s.doc.clone(),
            pattern,
            entity: entity.name.clone(),
            calls: s.calls.clone(),
            store,
            event_store,
            messaging,
            operations,
            events,
            subscriptions: Vec::new(),
            proto: ProtoPackage {
                package: String::new(),
                file: String::new(),
                imports: Vec::new(),
                services: Vec::new(),
                messages: Vec::new(),
            },
            claim: s.claim.clone(),
            span,
        };
        match crate::proto_model::build(&self.raw.system, &svc, &self.entities) {
            Ok(p) => svc.proto = p,
            Err(msg) => self.d.error(span, msg),
        }
        Some(svc)
    }

    /// A command's `exists: [field, …]`: each must be a reference in its input.
    fn exists_checks(
        &mut self,
        cpath: &str,
        op: &str,
        names: &[String],
        input: &[Field],
    ) -> Vec<ExistsCheck> {
        let mut out = Vec::new();
        for (j, name) in names.iter().enumerate() {
            let span = self.pos.value(&format!("{cpath}.exists.{j}"));
            match input.iter().find(|f| &f.name == name) {
                Some(Field { ty: FieldType::Ref(entity), optional, .. }) => out.push(ExistsCheck {
                    field: name.clone(),
                    entity: entity.clone(),
                    optional: *optional,
                    service: String::new(),
                    get: None,
                    span,
                }),
                Some(_) => self.d.error(span, format!(
                    "`exists` of command `{op}` names `{name}`, which is not a reference: only a `{{ ref: Entity }}` field can be checked"
                )),
                None => self.d.error(span, format!(
                    "`exists` of command `{op}` names `{name}`, which is not in its input: expected one of {}",
                    list(input.iter().map(|f| &f.name))
                )),
            }
        }
        out
    }

    /// Finds, for every `exists` check, the service that owns the entity and its get use
    /// case; the service must be one this service calls and must not call back into it
    /// through its generated crate (the crates would depend on each other).
    fn resolve_exists(&mut self, services: &mut [Service]) {
        let owners: Vec<(String, String, Option<Rpc>)> = services
            .iter()
            .map(|s| {
                let get = s
                    .operations
                    .iter()
                    .find(|o| o.kind == OperationKind::Get)
                    .map(|o| o.rpc.clone());
                (s.entity.clone(), s.name.clone(), get)
            })
            .collect();
        for svc in services.iter_mut() {
            let (name, pattern, calls) = (svc.name.clone(), svc.pattern, svc.calls.clone());
            for o in svc.operations.iter_mut() {
                for check in &mut o.exists {
                    let Some((_, owner, get)) = owners.iter().find(|(e, _, _)| *e == check.entity)
                    else {
                        self.d.error(check.span, format!(
                            "`exists`: no service owns `{}`, so nothing can say whether one exists",
                            check.entity
                        ));
                        continue;
                    };
                    if pattern != Pattern::CqrsEs {
                        self.d.error(check.span, format!(
                            "`exists` runs on the command executor of a cqrs-es service; service `{name}` is {}",
                            pattern.as_str()
                        ));
                    } else if !calls.contains(owner) {
                        self.d.error(check.span, format!(
                            "`exists` of `{}` asks service `{owner}`: add it to the `calls` of service `{name}`",
                            check.field
                        ));
                    } else if self.raw.services[owner]
                        .subscribes
                        .keys()
                        .any(|k| k.split_once('.').is_some_and(|(s, _)| s == name))
                    {
                        self.d.error(check.span, format!(
                            "`exists` of `{}` would make the generated crates of `{name}` and `{owner}` depend on each other (`{owner}` subscribes to `{name}`)",
                            check.field
                        ));
                    } else if get.is_none() {
                        self.d.error(check.span, format!(
                            "`exists` of `{}` needs a `kind: get` use case in service `{owner}`",
                            check.field
                        ));
                    }
                    check.service = owner.clone();
                    check.get = get.clone();
                }
            }
        }
    }

    /// With `auth:`, what is not said to be public is for a logged-in customer.
    fn audience(&mut self, path: &str, a: &Option<String>) -> Audience {
        let with_auth = self.raw.auth.is_some();
        match a.as_deref() {
            None if with_auth => Audience::Customer,
            None | Some("public") => Audience::Public,
            Some("customer") if with_auth => Audience::Customer,
            Some("back-office") => Audience::BackOffice,
            Some("internal") => Audience::Internal,
            Some(other) => {
                let expected = if with_auth {
                    "public, customer, back-office or internal"
                } else {
                    "public, back-office or internal (customer needs `auth:`)"
                };
                self.d.error(
                    self.pos.value(&format!("{path}.audience")),
                    format!("unknown audience `{other}`: expected {expected}"),
                );
                Audience::Public
            }
        }
    }

    fn check_output(&mut self, path: &str, op: &str, output: &str) {
        if self.entity(output).is_none() {
            self.d.error(
                self.pos.value(&format!("{path}.output")),
                format!(
                    "`{op}` returns unknown entity `{output}`: expected one of {}",
                    list(self.raw.entities.keys())
                ),
            );
        }
    }

    fn resolve_inputs(
        &mut self,
        path: &str,
        op: &str,
        input: &[String],
        scope: &mut Scope,
    ) -> Vec<Field> {
        let mut out: Vec<Field> = Vec::new();
        for (j, n) in input.iter().enumerate() {
            let span = self.pos.value(&format!("{path}.input.{j}"));
            if out.iter().any(|f| &f.name == n) {
                self.d
                    .error(span, format!("`{op}` names input `{n}` twice"));
                continue;
            }
            match scope.resolve(n) {
                Some(mut f) => {
                    f.span = span;
                    out.push(f);
                }
                None => self.d.error(
                    span,
                    format!(
                        "`{op}` names unknown field `{n}` in `input`: expected one of {}",
                        scope.names()
                    ),
                ),
            }
        }
        renumber(&mut out);
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn lower_use_case(
        &mut self,
        path: &str,
        op: &str,
        u: &spec::UseCase,
        entity: &Entity,
        scope: &mut Scope,
        service: &str,
        proto_service: &str,
    ) -> Option<Operation> {
        let span = self.pos.key(path);
        let kind = match u.kind.as_str() {
            "list" => OperationKind::List,
            "get" => OperationKind::Get,
            "create" => OperationKind::Create,
            "update" => OperationKind::Update,
            "delete" => OperationKind::Delete,
            "custom" => OperationKind::Custom,
            other => {
                self.d.error(
                    self.pos.value(&format!("{path}.kind")),
                    format!("unknown use case kind `{other}`: expected one of list, get, create, update, delete, custom"),
                );
                return None;
            }
        };
        let only = |this: &mut Self, key: &str, present: bool, kinds: &str| {
            if present {
                this.d.error(
                    this.pos.key(&format!("{path}.{key}")),
                    format!(
                        "`{key}` does not apply to a `{}` use case: it is for {kinds}",
                        u.kind
                    ),
                );
            }
        };
        let is_list = kind == OperationKind::List;
        only(self, "page_size", !is_list && u.page_size.is_some(), "list");
        only(self, "filter", !is_list && !u.filter.is_empty(), "list");
        only(self, "order_by", !is_list && !u.order_by.is_empty(), "list");
        let is_custom = kind == OperationKind::Custom;
        only(
            self,
            "input",
            !is_custom && !u.input.is_empty(),
            "custom (the others take the entity's fields)",
        );
        only(self, "params", !is_custom && !u.params.is_empty(), "custom");
        only(self, "output", !is_custom && u.output.is_some(), "custom");
        let mut local = scope.with_params(self, &format!("{path}.params"), &u.params);
        let input = match kind {
            OperationKind::Custom => self.resolve_inputs(path, op, &u.input, &mut local),
            _ => Vec::new(),
        };
        let output = match kind {
            OperationKind::Delete => None,
            OperationKind::Custom => {
                let o = u.output.clone().unwrap_or_else(|| entity.name.clone());
                self.check_output(path, op, &o);
                Some(o)
            }
            _ => Some(entity.name.clone()),
        };
        let mut page_size = None;
        let mut filter = Vec::new();
        let mut order_by = Vec::new();
        if is_list {
            let ps = u
                .page_size
                .as_ref()
                .map_or((20, 100), |p| (p.default, p.max));
            if ps.0 < 1 || ps.1 < ps.0 || ps.1 > 1000 {
                self.d.error(
                    self.pos.value(&format!("{path}.page_size")),
                    format!(
                        "bad page_size default {} max {}: expected 1 <= default <= max <= 1000",
                        ps.0, ps.1
                    ),
                );
            }
            page_size = Some(PageSize {
                default: ps.0.clamp(1, 1000) as u32,
                max: ps.1.clamp(1, 1000) as u32,
            });
            for (j, f) in u.filter.iter().enumerate() {
                if entity.field(f).is_none() {
                    self.d.error(
                        self.pos.value(&format!("{path}.filter.{j}")),
                        format!(
                            "`{op}` filters on unknown field `{f}` of `{}`: expected one of {}",
                            entity.name,
                            list(entity.fields.iter().map(|f| &f.name))
                        ),
                    );
                } else {
                    filter.push(f.clone());
                }
            }
            let cols = self.index_columns(&format!("{path}.order_by"), &u.order_by);
            for (j, c) in cols.into_iter().enumerate() {
                if entity.field(&c.field).is_none() {
                    self.d.error(
                        self.pos.value(&format!("{path}.order_by.{j}")),
                        format!(
                            "`{op}` orders by unknown field `{}` of `{}`: expected one of {}",
                            c.field,
                            entity.name,
                            list(entity.fields.iter().map(|f| &f.name))
                        ),
                    );
                } else if entity.field(&c.field).is_some_and(|f| f.optional) {
                    // Keyset pages compare the last row's values; NULL compares as
                    // unknown, so rows after a NULL would never be reached.
                    self.d.error(
                        self.pos.value(&format!("{path}.order_by.{j}")),
                        format!(
                            "`{op}` orders by `{}`, which is optional: a list's order needs a value in every row (make `{}` required or order by another field)",
                            c.field, c.field
                        ),
                    );
                } else {
                    order_by.push(c);
                }
            }
            // A page boundary is only stable when the order is total: end on the id.
            if !order_by.iter().any(|c| c.field == "id") {
                order_by.push(IndexColumn {
                    field: "id".into(),
                    descending: false,
                });
            }
        }
        let idempotent = match kind {
            OperationKind::List
            | OperationKind::Get
            | OperationKind::Update
            | OperationKind::Delete => true,
            OperationKind::Create | OperationKind::Custom => u.idempotent.unwrap_or(false),
            _ => false,
        };
        if matches!(
            kind,
            OperationKind::List
                | OperationKind::Get
                | OperationKind::Update
                | OperationKind::Delete
        ) && u.idempotent == Some(false)
        {
            self.d.error(
                self.pos.value(&format!("{path}.idempotent")),
                format!("a `{}` use case is always idempotent", u.kind),
            );
        }
        let audience = self.audience(path, &u.audience);
        Some(Operation {
            name: op.to_string(),
            doc: u.doc.clone(),
            kind,
            audience,
            idempotent,
            input,
            output,
            emits: Vec::new(),
            exists: Vec::new(),
            page_size,
            filter,
            order_by,
            deployable: names::kebab(service),
            rpc: rpc(proto_service, op),
            span,
        })
    }

    // ---------------------------------------------------------------- bff

    fn lower_bff(&mut self, services: &[Service]) -> Bff {
        let g = &self.raw.bff.graphql;
        let mut seen = HashSet::new();
        let mut lower = |this: &mut Self,
                         ops: &[String],
                         key: &str,
                         want_read: bool|
         -> Vec<BffOperation> {
            let mut out = Vec::new();
            for (j, op) in ops.iter().enumerate() {
                let span = this.pos.value(&format!("bff.graphql.{key}.{j}"));
                if !seen.insert(op.clone()) {
                    this.d
                        .error(span, format!("`{op}` is exposed twice in the GraphQL API"));
                    continue;
                }
                let found = services
                    .iter()
                    .find_map(|s| s.operation(op).map(|o| (s, o)));
                let declared = this.raw.services.values().any(|s| {
                    s.use_cases.contains_key(op)
                        || s.commands.contains_key(op)
                        || s.queries.contains_key(op)
                });
                if found.is_none() && declared {
                    // Its service failed to lower and said why; one error is enough.
                    continue;
                }
                let Some((svc, o)) = found else {
                    let all: Vec<&String> = services
                        .iter()
                        .flat_map(|s| s.operations.iter().map(|o| &o.name))
                        .collect();
                    this.d.error(
                        span,
                        format!(
                            "unknown operation `{op}` in bff.graphql.{key}: expected one of {}",
                            list(all)
                        ),
                    );
                    continue;
                };
                if o.kind.is_read() != want_read {
                    let (is, goes) = if o.kind.is_read() {
                        ("reads", "queries")
                    } else {
                        ("changes state", "mutations")
                    };
                    this.d.error(
                        span,
                        format!("`{op}` {is}, so it belongs in bff.graphql.{goes}, not {key}"),
                    );
                    continue;
                }
                if o.audience == Audience::Internal {
                    this.d.error(span, format!("`{op}` has audience internal: only services may call it, the BFF must not expose it"));
                    continue;
                }
                out.push(BffOperation {
                    operation: op.clone(),
                    service: svc.name.clone(),
                    field: names::camel(op),
                    span,
                });
            }
            out
        };
        let queries = lower(self, &g.queries, "queries", true);
        let mutations = lower(self, &g.mutations, "mutations", false);
        let limits = self.lower_edge_limits();
        let storefront = self.lower_storefront();
        Bff {
            queries,
            mutations,
            limits,
            storefront,
        }
    }

    /// `bff.storefront`: a relative folder inside the project, plain names only.
    fn lower_storefront(&mut self) -> Option<String> {
        let raw = self.raw.bff.storefront.as_deref()?;
        let path = raw.trim_end_matches('/');
        let plain = |c: &str| {
            !c.is_empty()
                && c != "."
                && c != ".."
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        };
        if path.is_empty() || !path.split('/').all(plain) {
            self.d.error(
                self.pos.value("bff.storefront"),
                format!(
                    "bff.storefront is {raw:?}: expected a folder relative to the project root, \
                     names of letters, digits, `-`, `_` and `.` separated by `/` (e.g. `services/shop/web`)"
                ),
            );
            return None;
        }
        Some(path.to_string())
    }

    /// `bff.limits`: each key positive and at most `EdgeLimits::MAX`, else its default.
    fn lower_edge_limits(&mut self) -> EdgeLimits {
        let raw = &self.raw.bff.limits;
        let (default, max) = (EdgeLimits::DEFAULT, EdgeLimits::MAX);
        let mut check = |key: &str, value: Option<i64>, default: u64, max: u64| -> u64 {
            let Some(v) = value else { return default };
            if v < 1 || v as u64 > max {
                self.d.error(
                    self.pos.value(&format!("bff.limits.{key}")),
                    format!("bff.limits.{key} is {v}: expected 1 to {max}"),
                );
                return default;
            }
            v as u64
        };
        EdgeLimits {
            max_body_bytes: check(
                "max_body_bytes",
                raw.max_body_bytes,
                default.max_body_bytes,
                max.max_body_bytes,
            ),
            request_timeout_ms: check(
                "request_timeout_ms",
                raw.request_timeout_ms,
                default.request_timeout_ms,
                max.request_timeout_ms,
            ),
        }
    }
}

/// `BatchGetProducts` beside a crud service's `get`: its entities by id, in one call.
fn batch_get(operations: &[Operation], entity: &str, proto_service: &str) -> Option<Operation> {
    let get = operations.iter().find(|o| o.kind == OperationKind::Get)?;
    let name = format!(
        "BatchGet{}",
        names::pascal(&names::plural(&names::snake(entity)))
    );
    Some(Operation {
        name: name.clone(),
        doc: Some(format!(
            "Generated beside `{}`: the {entity} items of the given ids that exist, in one call.",
            get.name
        )),
        kind: OperationKind::BatchGet,
        audience: Audience::Internal,
        idempotent: true,
        input: Vec::new(),
        output: Some(entity.to_string()),
        emits: Vec::new(),
        exists: Vec::new(),
        page_size: None,
        filter: Vec::new(),
        order_by: Vec::new(),
        deployable: get.deployable.clone(),
        rpc: rpc(proto_service, &name),
        span: get.span,
    })
}

fn rpc(service: &str, op: &str) -> Rpc {
    Rpc {
        service: service.to_string(),
        method: op.to_string(),
        request: format!("{op}Request"),
        response: format!("{op}Response"),
    }
}

fn renumber(fields: &mut [Field]) {
    for (i, f) in fields.iter_mut().enumerate() {
        f.number = i as u32 + 1;
    }
}

/// Names an operation's input or an event's payload may use: its params, the entity's
/// id as `<entity>_id`, the entity's fields and those of the entities it owns.
struct Scope {
    fields: BTreeMap<String, Field>,
    order: Vec<String>,
}

impl Scope {
    fn new(entity: &Entity, cx: &Lowering) -> Scope {
        let mut s = Scope {
            fields: BTreeMap::new(),
            order: Vec::new(),
        };
        if let Some(id) = entity.field("id") {
            let alias = format!("{}_id", names::snake(&entity.name));
            let mut f = id.clone();
            f.name = alias.clone();
            f.ty = FieldType::Ref(entity.name.clone());
            f.readonly = false;
            s.add(f);
        }
        for f in &entity.fields {
            s.add(f.clone());
        }
        let mut stack: Vec<String> = entity
            .relations
            .iter()
            .filter(|r| r.owned)
            .map(|r| r.target.clone())
            .collect();
        while let Some(t) = stack.pop() {
            if let Some(child) = cx.entity(&t) {
                for f in &child.fields {
                    s.add(f.clone());
                }
                stack.extend(
                    child
                        .relations
                        .iter()
                        .filter(|r| r.owned)
                        .map(|r| r.target.clone()),
                );
            }
        }
        s
    }

    fn add(&mut self, f: Field) {
        if !self.fields.contains_key(&f.name) {
            self.order.push(f.name.clone());
            self.fields.insert(f.name.clone(), f);
        }
    }

    fn with_params(
        &self,
        cx: &mut Lowering,
        path: &str,
        params: &indexmap::IndexMap<String, spec::Field>,
    ) -> Scope {
        let mut s = Scope {
            fields: BTreeMap::new(),
            order: Vec::new(),
        };
        for (n, p) in params {
            if let Some(f) = cx.lower_field(&format!("{path}.{n}"), n, p) {
                s.add(f);
            }
        }
        for n in &self.order {
            s.add(self.fields[n].clone());
        }
        s
    }

    fn resolve(&self, name: &str) -> Option<Field> {
        self.fields.get(name).cloned().map(|mut f| {
            f.readonly = false;
            f
        })
    }

    fn names(&self) -> String {
        list(&self.order)
    }
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z`: UTC, as every time in the system is.
fn is_utc_timestamp(s: &str) -> bool {
    let Some(rest) = s.strip_suffix('Z') else {
        return false;
    };
    let (main, fraction) = rest.split_once('.').unwrap_or((rest, "0"));
    let b = main.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    let num = |r: std::ops::Range<usize>| main[r].parse::<u32>().unwrap_or(99);
    b.len() == 19
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && (1..=12).contains(&num(5..7))
        && (1..=31).contains(&num(8..10))
        && num(11..13) < 24
        && num(14..16) < 60
        && num(17..19) < 60
        && !fraction.is_empty()
        && fraction.chars().all(|c| c.is_ascii_digit())
}

/// The rule the generated validation applies (keel's `Violations::email`).
fn is_email(s: &str) -> bool {
    s.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && !domain.is_empty()
            && !domain.contains('@')
            && !s.chars().any(char::is_whitespace)
    })
}

fn parse_cardinality(s: &str) -> Option<Cardinality> {
    let (lo, hi) = match s.split_once("..") {
        Some((lo, hi)) => (lo.trim(), hi.trim()),
        None => (s.trim(), s.trim()),
    };
    let min: u32 = lo.parse().ok()?;
    let max = if hi == "*" {
        None
    } else {
        Some(hi.parse::<u32>().ok()?)
    };
    if max.is_some_and(|m| m < min || m == 0) {
        return None;
    }
    Some(Cardinality { min, max })
}

fn list<I, S>(items: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let v: Vec<String> = items
        .into_iter()
        .map(|s| format!("`{}`", s.as_ref()))
        .collect();
    if v.is_empty() {
        "(none)".to_string()
    } else {
        v.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cardinalities() {
        assert_eq!(
            parse_cardinality("0..*"),
            Some(Cardinality { min: 0, max: None })
        );
        assert_eq!(
            parse_cardinality("1"),
            Some(Cardinality {
                min: 1,
                max: Some(1)
            })
        );
        assert_eq!(parse_cardinality("2..1"), None);
        assert_eq!(parse_cardinality("x..1"), None);
    }
}
