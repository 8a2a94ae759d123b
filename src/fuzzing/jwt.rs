//! Fuzz body for the credential path: JWT verification, `Authenticator::authenticate`,
//! credential extraction from a query string, and session-scope matching.
//!
//! Everything a client can put in a token or an upgrade URL flows through here, so the
//! body drives all of it with one input. Beyond "no panic", it asserts what makes the
//! verifier a verifier: an accepted token's claims pass the validation asked for, the
//! same token with any signature character or a signed character changed is refused, and
//! re-minting its claims gives a token that verifies to the same claims; the
//! authenticator accepts only the configured API key or a token that verifies; a session
//! scope agrees with a plain glob matcher, and its normalised patterns compile back to it.

use crate::auth::jwt::{Claims, MAX_PAYLOAD_BYTES, MAX_TOKEN_BYTES};
use crate::auth::{self, jwt, Authenticator, JwtKey, SessionScope, Validation};
use crate::config::{ApiKeyConfig, AuthConfig};

const SECRET: &str = "fuzz-secret-fuzz-secret-fuzz-sec";
/// 2023-11-14: the corpus seeds are minted around this instant.
const NOW: i64 = 1_700_000_000;

const API_KEY: &str = "fuzz.api.key";

/// Feeds arbitrary bytes to the parsers and checks what they accept.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let key = JwtKey::new(SECRET.as_bytes());
    let validation = Validation {
        issuer: Some("tracecast".into()),
        audience: Some("viewer".into()),
        ..Validation::default()
    };
    if let Ok(claims) = jwt::verify(&text, &key, &validation, NOW) {
        accepted(&text, &key, &validation, NOW, &claims);
    }
    let lax = Validation {
        require_exp: false,
        ..Validation::default()
    };
    if let Ok(claims) = jwt::verify(&text, &key, &lax, i64::MIN) {
        accepted(&text, &key, &lax, i64::MIN, &claims);
    }

    let cfg = AuthConfig {
        enabled: true,
        jwt_secret: SECRET.into(),
        api_keys: vec![ApiKeyConfig {
            key: Some(API_KEY.into()),
            key_sha256: None,
            permissions: vec!["read".into()],
            sessions: vec!["s-*".into()],
            name: None,
        }],
        ..AuthConfig::default()
    };
    if let Ok(authn) = Authenticator::from_config(&cfg) {
        let rules = Validation::from_config(&cfg);
        for now in [NOW, i64::MAX] {
            if let Ok(p) = authn.authenticate(&text, now) {
                let _ = (p.can_read(&text), p.can_publish(), p.is_expired(i64::MAX));
                assert!(
                    text == API_KEY || jwt::verify(&text, &key, &rules, now).is_ok(),
                    "accepted a credential that is neither the key nor a valid token"
                );
            }
        }
    }

    let headers = vec![("authorization".to_owned(), text.to_string())];
    let _ = auth::extract_credential(&headers, &text, "x-api-key");
    let _ = auth::extract_credential(&[], &text, "");

    // The first line as patterns, the rest as the session id.
    let (patterns, id) = text.split_once('\n').unwrap_or((&text, ""));
    let patterns: Vec<&str> = patterns.split(',').collect();
    let scope = SessionScope::from_patterns(&patterns);
    let allowed = scope.allows(id);
    // The reference matcher is quadratic: keep the check cheap on long inputs.
    if patterns.iter().map(|p| p.len() * id.len()).sum::<usize>() <= 1 << 20 {
        let expected = patterns.iter().any(|p| glob(p.as_bytes(), id.as_bytes()));
        assert_eq!(allowed, expected, "scope {scope:?} on {id:?}");
    }
    for p in &patterns {
        // `*` matches the empty run, so a pattern with its stars removed matches itself.
        assert!(
            scope.allows(&p.replace('*', "")),
            "{p:?} does not match itself"
        );
    }
    let normalised = SessionScope::from_patterns(scope.patterns());
    assert_eq!(
        normalised, scope,
        "patterns() does not compile back to the scope"
    );
}

/// What must hold of any token `verify` accepted with `validation` at `now`.
fn accepted(token: &str, key: &JwtKey, validation: &Validation, now: i64, claims: &Claims) {
    let leeway = i64::try_from(validation.leeway_secs).unwrap_or(i64::MAX);
    match claims.exp {
        Some(exp) => assert!(now < exp.saturating_add(leeway), "accepted after exp"),
        None => assert!(!validation.require_exp, "accepted without exp"),
    }
    if let Some(nbf) = claims.nbf {
        assert!(now >= nbf.saturating_sub(leeway), "accepted before nbf");
    }
    if let Some(iss) = &validation.issuer {
        assert_eq!(claims.iss.as_ref(), Some(iss), "accepted another issuer");
    }
    if let Some(aud) = &validation.audience {
        assert!(claims.aud.contains(aud), "accepted another audience");
    }

    // An accepted token is ASCII (three base64url parts), so bytes are characters.
    let signed_len = token.rfind('.').unwrap_or(0);
    let changed = |at: usize| -> String {
        let mut bytes = token.as_bytes().to_vec();
        if let Some(b) = bytes.get_mut(at) {
            // Another base64url character (or, in place of a `.`, a broken structure).
            *b = if *b == b'A' { b'B' } else { b'A' };
        }
        String::from_utf8_lossy(&bytes).into_owned()
    };
    // Every character of the signature: flipping the last one's unused low bits must be
    // refused too (as non-canonical base64), or two strings would carry one signature.
    let signed_samples = [0, signed_len / 2, signed_len.saturating_sub(1)];
    for at in (signed_len + 1..token.len()).chain(signed_samples) {
        let forged = changed(at);
        assert!(
            jwt::verify(&forged, key, validation, now).is_err(),
            "accepted {forged:?}, {token:?} changed at byte {at}"
        );
    }

    // The minter and the verifier agree: the claims, minted again, verify to themselves
    // (unless re-serialising grew them past the verifier's size limits: `1e9` becomes
    // `1000000000`).
    let minted = jwt::mint_with_key(key, claims);
    let payload_len = minted.split('.').nth(1).map_or(0, str::len);
    if minted.len() <= MAX_TOKEN_BYTES && payload_len <= (MAX_PAYLOAD_BYTES * 4).div_ceil(3) {
        match jwt::verify(&minted, key, validation, now) {
            Ok(again) => assert_eq!(&again, claims, "re-minted claims differ"),
            Err(e) => panic!("re-minted claims are refused: {e:?}"),
        }
    }
}

/// A plain dynamic-programming glob (`*` = any run, anything else itself), the reference
/// [`SessionScope`] is checked against.
fn glob(pattern: &[u8], id: &[u8]) -> bool {
    // row[j]: the pattern so far matches id[..j].
    let mut row = vec![false; id.len() + 1];
    if let Some(empty) = row.first_mut() {
        *empty = true;
    }
    for &p in pattern {
        let mut next = vec![false; id.len() + 1];
        if p == b'*' {
            let mut any = false;
            for (n, r) in next.iter_mut().zip(&row) {
                any |= *r;
                *n = any;
            }
        } else {
            // next[j + 1]: row[j] and id[j] is this pattern byte.
            for ((n, r), c) in next.iter_mut().skip(1).zip(&row).zip(id) {
                *n = *r && *c == p;
            }
        }
        row = next;
    }
    row.last().copied().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_glob() {
        for (p, id, want) in [
            ("", "", true),
            ("", "a", false),
            ("*", "", true),
            ("a*", "abc", true),
            ("*c", "abc", true),
            ("a*b*c", "aXbYc", true),
            ("a*a", "a", false),
            ("a*b", "ba", false),
        ] {
            assert_eq!(glob(p.as_bytes(), id.as_bytes()), want, "{p:?} {id:?}");
        }
    }

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
