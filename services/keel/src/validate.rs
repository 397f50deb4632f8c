use uuid::Uuid;

use crate::ServiceError;

/// One bad input field: its path (`details[2].quantity`) and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

/// Implemented by the generated code for every request message.
pub trait Validate {
    /// Checks every field against the spec; reports all violations, not just the first.
    fn validate(&self) -> Result<(), ServiceError> {
        let mut v = Violations::default();
        self.validate_into("", &mut v);
        v.into_result()
    }

    /// Adds this message's violations, with field paths under `prefix`.
    fn validate_into(&self, prefix: &str, v: &mut Violations);
}

/// Collects violations; the generated validators call one method per constraint.
#[derive(Debug, Default)]
pub struct Violations {
    found: Vec<FieldViolation>,
}

pub fn path(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_string()
    } else {
        format!("{prefix}.{field}")
    }
}

impl Violations {
    pub fn add(&mut self, field: String, description: impl Into<String>) {
        self.found.push(FieldViolation {
            field,
            description: description.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    pub fn into_result(self) -> Result<(), ServiceError> {
        if self.found.is_empty() {
            Ok(())
        } else {
            Err(ServiceError::InvalidArgument(self.found))
        }
    }

    pub fn uuid(&mut self, field: String, value: &str) {
        if Uuid::parse_str(value).is_err() {
            let shown: String = value.chars().take(40).collect();
            self.add(field, format!("must be a UUID, got {shown:?}"));
        }
    }

    pub fn length(&mut self, field: String, value: &str, min: Option<u32>, max: Option<u32>) {
        let n = value.chars().count();
        if let Some(min) = min
            && n < min as usize
        {
            let what = if min == 1 {
                "must not be empty".to_string()
            } else {
                format!("must be at least {min} characters, got {n}")
            };
            self.add(field.clone(), what);
        }
        if let Some(max) = max
            && n > max as usize
        {
            self.add(field, format!("must be at most {max} characters, got {n}"));
        }
    }

    pub fn one_of(&mut self, field: String, value: &str, allowed: &[&str]) {
        if !allowed.contains(&value) {
            let shown: String = value.chars().take(40).collect();
            self.add(
                field,
                format!("must be one of {}, got {shown:?}", allowed.join(", ")),
            );
        }
    }

    pub fn email(&mut self, field: String, value: &str) {
        let ok = match value.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.is_empty()
                    && !domain.contains('@')
                    && !value.chars().any(char::is_whitespace)
            }
            None => false,
        };
        if !ok {
            self.add(field, "must be an email address like name@example.com");
        }
    }

    pub fn range(&mut self, field: String, value: i64, min: Option<i64>, max: Option<i64>) {
        if let Some(min) = min
            && value < min
        {
            self.add(
                field.clone(),
                format!("must be at least {min}, got {value}"),
            );
        }
        if let Some(max) = max
            && value > max
        {
            self.add(field, format!("must be at most {max}, got {value}"));
        }
    }

    pub fn required<T>(&mut self, field: String, value: &Option<T>) {
        if value.is_none() {
            self.add(field, "is required");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_every_violation() {
        let mut v = Violations::default();
        v.uuid("id".into(), "nope");
        v.length("name".into(), "", Some(1), Some(3));
        v.length("code".into(), "abcd", None, Some(3));
        v.range("qty".into(), 100, Some(1), Some(99));
        v.email("email".into(), "a@b@c");
        v.uuid("ok".into(), "67e55044-10b1-426f-9247-bb680e5fe0c8");
        let Err(ServiceError::InvalidArgument(found)) = v.into_result() else {
            panic!("expected violations");
        };
        let fields: Vec<&str> = found.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["id", "name", "code", "qty", "email"]);
    }

    #[test]
    fn one_of_names_the_allowed_values() {
        let mut v = Violations::default();
        v.one_of("status".into(), "placed", &["pending", "placed"]);
        assert!(v.is_empty());
        v.one_of("status".into(), "lost", &["pending", "placed"]);
        let Err(ServiceError::InvalidArgument(found)) = v.into_result() else {
            panic!("expected a violation");
        };
        assert_eq!(
            found[0].description,
            "must be one of pending, placed, got \"lost\""
        );
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        let mut v = Violations::default();
        v.length("name".into(), "日本語", None, Some(3));
        assert!(v.is_empty());
    }
}
