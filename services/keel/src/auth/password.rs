//! Passwords: argon2id (memory-hard), PHC strings, hashed off the async runtime.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::ServiceError;

pub const MIN_CHARS: usize = 8;
pub const MAX_CHARS: usize = 128;

/// OWASP's argon2id baseline: 19 MiB, 2 passes, 1 lane.
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A password a user may choose, or why not (as the `field`'s violation).
pub fn check(field: &str, password: &str) -> Result<(), ServiceError> {
    let chars = password.chars().count();
    if chars < MIN_CHARS {
        return Err(ServiceError::invalid(
            field,
            format!("must be at least {MIN_CHARS} characters"),
        ));
    }
    if chars > MAX_CHARS {
        return Err(ServiceError::invalid(
            field,
            format!("must be at most {MAX_CHARS} characters"),
        ));
    }
    Ok(())
}

pub fn hash(password: &str) -> Result<String, ServiceError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| ServiceError::Internal(e.to_string()))?;
    let salt = SaltString::encode_b64(&bytes).map_err(|e| ServiceError::Internal(e.to_string()))?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ServiceError::Internal(format!("hashing a password: {e}")))
}

/// Whether `password` matches the PHC string `stored`; a malformed one never matches.
pub fn verify(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|h| argon2().verify_password(password.as_bytes(), &h).is_ok())
        .unwrap_or(false)
}

/// [`hash`] on a blocking thread.
pub async fn hash_blocking(password: String) -> Result<String, ServiceError> {
    tokio::task::spawn_blocking(move || hash(&password))
        .await
        .map_err(|e| ServiceError::Internal(e.to_string()))?
}

/// [`verify`] on a blocking thread; with no stored hash it still spends the time of
/// one, so an unknown email answers as slowly as a wrong password.
pub async fn verify_blocking(password: String, stored: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || match stored {
        Some(s) => verify(&password, &s),
        None => {
            let _ = hash(&password);
            false
        }
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = hash("correct horse").expect("hash");
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify("correct horse", &h));
        assert!(!verify("correct horsf", &h));
        assert!(!verify("correct horse", "not a hash"));
        assert_ne!(hash("correct horse").expect("hash"), h, "salted");
    }

    #[test]
    fn length_bounds() {
        assert!(check("password", "short").is_err());
        assert!(check("password", &"x".repeat(129)).is_err());
        assert!(check("password", "long enough").is_ok());
    }
}
