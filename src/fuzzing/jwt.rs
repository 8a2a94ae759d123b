//! Fuzz body for the credential path: JWT verification, `Authenticator::authenticate`,
//! credential extraction from a query string, and session-scope matching.
//!
//! Everything a client can put in a token or an upgrade URL flows through here, so the
//! body drives all of it with one input and relies on the cores never panicking.

use crate::auth::{self, jwt, Authenticator, JwtKey, SessionScope, Validation};
use crate::config::{ApiKeyConfig, AuthConfig};

const SECRET: &str = "fuzz-secret-fuzz-secret-fuzz-sec";
/// 2023-11-14: the corpus seeds are minted around this instant.
const NOW: i64 = 1_700_000_000;

/// Feeds arbitrary bytes to the parser; must never panic.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let key = JwtKey::new(SECRET.as_bytes());
    let validation = Validation {
        issuer: Some("tracecast".into()),
        audience: Some("viewer".into()),
        ..Validation::default()
    };
    let _ = jwt::verify(&text, &key, &validation, NOW);
    let _ = jwt::verify(
        &text,
        &key,
        &Validation {
            require_exp: false,
            ..Validation::default()
        },
        i64::MIN,
    );

    let cfg = AuthConfig {
        enabled: true,
        jwt_secret: SECRET.into(),
        api_keys: vec![ApiKeyConfig {
            key: Some("fuzz.api.key".into()),
            key_sha256: None,
            permissions: vec!["read".into()],
            sessions: vec!["s-*".into()],
            name: None,
        }],
        ..AuthConfig::default()
    };
    if let Ok(authn) = Authenticator::from_config(&cfg) {
        if let Ok(p) = authn.authenticate(&text, NOW) {
            let _ = (p.can_read(&text), p.can_publish(), p.is_expired(i64::MAX));
        }
        let _ = authn.authenticate(&text, i64::MAX);
    }

    let headers = vec![("authorization".to_owned(), text.to_string())];
    let _ = auth::extract_credential(&headers, &text, "x-api-key");
    let _ = auth::extract_credential(&[], &text, "");

    // The first line as patterns, the rest as the session id.
    let (patterns, id) = text.split_once('\n').unwrap_or((&text, ""));
    let scope = SessionScope::from_patterns(patterns.split(','));
    let _ = scope.allows(id);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `valid` seed must stay valid, or the fuzzer never reaches the claims checks.
    #[test]
    fn valid_seed_verifies() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/jwt/valid");
        let token = std::fs::read_to_string(path).unwrap();
        let v = Validation {
            issuer: Some("tracecast".into()),
            audience: Some("viewer".into()),
            ..Validation::default()
        };
        let claims = jwt::verify(&token, &JwtKey::new(SECRET.as_bytes()), &v, NOW).unwrap();
        assert_eq!(claims.sub.as_deref(), Some("alice"));
    }
}
