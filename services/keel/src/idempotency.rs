//! Idempotency keys: a client-chosen string that makes a retried write answer its first
//! result. The key of one operation on one stream (or of one create) maps to one id.

use uuid::Uuid;

/// The namespace of every id derived from an idempotency key.
const NAMESPACE: Uuid = Uuid::from_u128(0x6964_656d_706f_7465_6e63_792d_6b65_7973);

/// The id that `key` stands for within `scope` (an operation, with its stream when it
/// has one): the same inputs give the same id, different scopes never collide.
pub fn derived_id(scope: &str, key: &str) -> Uuid {
    let mut name = Vec::with_capacity(scope.len() + key.len() + 1);
    name.extend_from_slice(scope.as_bytes());
    name.push(0);
    name.extend_from_slice(key.as_bytes());
    Uuid::new_v5(&NAMESPACE, &name)
}

/// The id of one attempt: derived from `key` when the caller gave one, else new (every
/// call without a key is an attempt of its own).
pub fn attempt_id(scope: &str, key: Option<&str>) -> Uuid {
    key.map_or_else(Uuid::now_v7, |k| derived_id(scope, k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_key_same_id_other_scope_other_id() {
        assert_eq!(derived_id("a", "k"), derived_id("a", "k"));
        assert_ne!(derived_id("a", "k"), derived_id("b", "k"));
        // The separator keeps ("ab", "c") apart from ("a", "bc").
        assert_ne!(derived_id("ab", "c"), derived_id("a", "bc"));
        assert_ne!(attempt_id("a", None), attempt_id("a", None));
        assert_eq!(attempt_id("a", Some("k")), derived_id("a", "k"));
    }
}
