//! Access tokens: compact JWS (JWT) signed with Ed25519 (`alg: EdDSA`), each naming its
//! key (`kid`); the public keys as a JWK Set, which Envoy's `jwt_authn` and the BFF read.
//!
//! Verification accepts exactly `EdDSA` with a known `kid` (so `alg: none` and any
//! algorithm confusion are refused before a signature is looked at), a strict
//! signature check, the issuer, and the expiry.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub const ALGORITHM: &str = "EdDSA";
/// Longer tokens are refused unread.
pub const MAX_TOKEN_BYTES: usize = 4096;
/// Clock skew tolerated between the identity service and a verifier.
pub const LEEWAY_SECS: i64 = 30;

/// What an access token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// The subject: the id of the identity entity (a customer's id).
    pub sub: Uuid,
    /// The session, which logout ends.
    pub sid: Uuid,
    pub roles: Vec<String>,
    pub iat: i64,
    pub exp: i64,
}

/// Who is calling, from a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub subject: Uuid,
    pub session: Uuid,
    pub roles: Vec<String>,
    /// Unix seconds the token stops being valid.
    pub expires_at: i64,
}

impl Principal {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

impl From<Claims> for Principal {
    fn from(c: Claims) -> Principal {
        Principal {
            subject: c.sub,
            session: c.sid,
            roles: c.roles,
            expires_at: c.exp,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a signed JWT")]
    Malformed,
    #[error("the token's algorithm `{0}` is not accepted (only EdDSA)")]
    Algorithm(String),
    #[error("the token names an unknown key")]
    UnknownKey,
    #[error("the token's signature does not verify")]
    Signature,
    #[error("the token has expired")]
    Expired,
    #[error("the token was issued by someone else")]
    Issuer,
    #[error("bad key set: {0}")]
    Jwks(String),
    #[error("no randomness: {0}")]
    Random(String),
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
}

/// A signing key and its id.
pub struct KeyPair {
    pub kid: String,
    key: SigningKey,
}

impl KeyPair {
    pub fn generate() -> Result<KeyPair, TokenError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| TokenError::Random(e.to_string()))?;
        Ok(KeyPair::from_seed(
            Uuid::new_v4().simple().to_string(),
            seed,
        ))
    }

    pub fn from_seed(kid: impl Into<String>, seed: [u8; 32]) -> KeyPair {
        KeyPair {
            kid: kid.into(),
            key: SigningKey::from_bytes(&seed),
        }
    }

    pub fn seed(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    pub fn sign(&self, claims: &Claims) -> String {
        let header = Header {
            alg: ALGORITHM.into(),
            typ: Some("JWT".into()),
            kid: Some(self.kid.clone()),
        };
        let input = format!("{}.{}", encode_json(&header), encode_json(claims));
        let signature = self.key.sign(input.as_bytes());
        format!("{input}.{}", B64.encode(signature.to_bytes()))
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": B64.encode(self.key.verifying_key().to_bytes()),
            "kid": self.kid,
            "alg": ALGORITHM,
            "use": "sig",
        })
    }
}

fn encode_json<T: Serialize>(v: &T) -> String {
    B64.encode(serde_json::to_vec(v).unwrap_or_default())
}

/// The JWK Set of `keys`.
pub fn jwks<'a>(keys: impl IntoIterator<Item = &'a KeyPair>) -> String {
    let keys: Vec<serde_json::Value> = keys.into_iter().map(KeyPair::jwk).collect();
    serde_json::json!({ "keys": keys }).to_string()
}

/// Checks access tokens against a JWK Set.
#[derive(Debug, Clone)]
pub struct Verifier {
    issuer: String,
    keys: BTreeMap<String, VerifyingKey>,
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    kid: Option<String>,
}

impl Verifier {
    /// The Ed25519 keys of `jwks` (others are ignored).
    pub fn from_jwks(issuer: impl Into<String>, jwks: &str) -> Result<Verifier, TokenError> {
        let set: JwkSet =
            serde_json::from_str(jwks).map_err(|e| TokenError::Jwks(e.to_string()))?;
        let mut keys = BTreeMap::new();
        for k in set.keys {
            if k.kty != "OKP" || k.crv.as_deref() != Some("Ed25519") {
                continue;
            }
            let (Some(kid), Some(x)) = (k.kid, k.x) else {
                continue;
            };
            let bytes: [u8; 32] = B64
                .decode(x)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| TokenError::Jwks(format!("key {kid} is not 32 bytes")))?;
            let key = VerifyingKey::from_bytes(&bytes)
                .map_err(|e| TokenError::Jwks(format!("key {kid}: {e}")))?;
            keys.insert(kid, key);
        }
        Ok(Verifier {
            issuer: issuer.into(),
            keys,
        })
    }

    pub fn knows(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    /// The key id a token names, read without verifying anything.
    pub fn kid_of(token: &str) -> Option<String> {
        let header = token.split('.').next()?;
        let header: Header = serde_json::from_slice(&B64.decode(header).ok()?).ok()?;
        header.kid
    }

    /// The claims of `token` if it is valid at unix time `now`.
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header: Header = decode_json(h)?;
        if header.alg != ALGORITHM {
            return Err(TokenError::Algorithm(header.alg));
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.keys.get(kid))
            .ok_or(TokenError::UnknownKey)?;
        let signature: [u8; 64] = B64
            .decode(s)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(TokenError::Malformed)?;
        key.verify_strict(
            format!("{h}.{c}").as_bytes(),
            &Signature::from_bytes(&signature),
        )
        .map_err(|_| TokenError::Signature)?;
        let claims: Claims = decode_json(c)?;
        if claims.iss != self.issuer {
            return Err(TokenError::Issuer);
        }
        if claims.exp + LEEWAY_SECS <= now || claims.iat - LEEWAY_SECS > now {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, TokenError> {
    let bytes = B64.decode(part).map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(now: i64) -> Claims {
        Claims {
            iss: "shop".into(),
            sub: Uuid::new_v4(),
            sid: Uuid::new_v4(),
            roles: vec!["customer".into()],
            iat: now,
            exp: now + 300,
        }
    }

    fn setup() -> (KeyPair, Verifier) {
        let key = KeyPair::generate().expect("key");
        let verifier = Verifier::from_jwks("shop", &jwks([&key])).expect("jwks");
        (key, verifier)
    }

    #[test]
    fn a_signed_token_verifies_until_it_expires() {
        let (key, verifier) = setup();
        let c = claims(1_000_000);
        let token = key.sign(&c);
        assert_eq!(verifier.verify(&token, 1_000_100), Ok(c.clone()));
        assert_eq!(
            verifier.verify(&token, c.exp + LEEWAY_SECS),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn tampered_unsigned_and_foreign_tokens_are_refused() {
        let (key, verifier) = setup();
        let now = 1_000_000;
        let token = key.sign(&claims(now));
        let parts: Vec<&str> = token.split('.').collect();
        let mut other = claims(now);
        other.roles = vec!["back-office".into()];
        let forged = format!("{}.{}.{}", parts[0], encode_json(&other), parts[2]);
        assert_eq!(verifier.verify(&forged, now), Err(TokenError::Signature));
        let none = format!(
            "{}.{}.",
            encode_json(&serde_json::json!({"alg": "none", "kid": key.kid})),
            parts[1]
        );
        assert_eq!(
            verifier.verify(&none, now),
            Err(TokenError::Algorithm("none".into()))
        );
        let hs = format!(
            "{}.{}.{}",
            encode_json(&serde_json::json!({"alg": "HS256", "kid": key.kid})),
            parts[1],
            parts[2]
        );
        assert_eq!(
            verifier.verify(&hs, now),
            Err(TokenError::Algorithm("HS256".into()))
        );
        let stranger = KeyPair::generate().expect("key");
        assert_eq!(
            verifier.verify(&stranger.sign(&claims(now)), now),
            Err(TokenError::UnknownKey)
        );
        assert_eq!(verifier.verify("a.b", now), Err(TokenError::Malformed));
        assert_eq!(
            verifier.verify(&"x".repeat(MAX_TOKEN_BYTES + 1), now),
            Err(TokenError::Malformed)
        );
        let mut foreign = claims(now);
        foreign.iss = "elsewhere".into();
        assert_eq!(
            verifier.verify(&key.sign(&foreign), now),
            Err(TokenError::Issuer)
        );
    }

    #[test]
    fn a_key_survives_its_seed() {
        let key = KeyPair::generate().expect("key");
        let again = KeyPair::from_seed(key.kid.clone(), key.seed());
        assert_eq!(key.jwk(), again.jwk());
        assert_eq!(Verifier::kid_of(&again.sign(&claims(0))), Some(key.kid));
    }
}
