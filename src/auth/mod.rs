//! Credentials, permissions and session scopes (SPEC §8), as a pure core.
//!
//! [`Authenticator`] is built once from `[auth]` and answers one question: given the
//! credential a client presented and the current time, who is it ([`Principal`]) or why
//! not ([`AuthError`]). It never reads a clock (except [`Authenticator::authenticate_now`],
//! a thin convenience), never sees a socket and never logs, so the whole policy is unit
//! tested here and the server only maps `AuthError` to HTTP 401 / close 1008.
//!
//! - [`jwt`]: HS256 verification and minting.
//! - [`apikey`]: configured keys, compared in constant time.
//! - [`scope`]: `*` session patterns; [`permissions`]: read / publish / admin.
//! - [`principal`]: the permission policy; [`credential`]: where a credential is found.
//!
//! Secret material (JWT secret, API keys, presented tokens) never appears in an error
//! message or a `Debug` output: those impls are written by hand with redaction.

pub mod apikey;
pub mod credential;
pub mod error;
pub mod jwt;
pub mod permissions;
pub mod principal;
pub mod scope;

use std::fmt;

pub use apikey::{ApiKey, ApiKeyStore};
pub use credential::extract_credential;
pub use error::{AuthConfigError, AuthError, JwtError};
pub use jwt::{Claims, JwtKey, Validation};
pub use permissions::Permissions;
pub use principal::Principal;
pub use scope::SessionScope;

use crate::config::AuthConfig;

/// The configured credential checker.
#[derive(Clone)]
pub struct Authenticator {
    enabled: bool,
    jwt: Option<JwtKey>,
    validation: Validation,
    api_keys: ApiKeyStore,
    /// Lower-cased, to compare with lower-cased header names.
    api_key_header: String,
    auth_timeout_ms: u64,
}

impl Authenticator {
    /// Validates `[auth]`. Entries present are validated even when auth is disabled, so a
    /// typo is caught before someone turns auth on. An empty `jwt_secret` means "no JWTs".
    pub fn from_config(cfg: &AuthConfig) -> Result<Authenticator, AuthConfigError> {
        let jwt = match cfg.jwt_secret.len() {
            0 => None,
            n if n < jwt::MIN_SECRET_BYTES => {
                return Err(AuthConfigError::JwtSecretTooShort { len: n })
            }
            _ => Some(JwtKey::new(cfg.jwt_secret.as_bytes())),
        };
        let api_keys = ApiKeyStore::from_config(&cfg.api_keys)?;
        if cfg.enabled && jwt.is_none() && api_keys.is_empty() {
            return Err(AuthConfigError::NoCredentialsConfigured);
        }
        if !is_header_token(&cfg.api_key_header) {
            return Err(AuthConfigError::BadApiKeyHeader);
        }
        Ok(Authenticator {
            enabled: cfg.enabled,
            jwt,
            validation: Validation::from_config(cfg),
            api_keys,
            api_key_header: cfg.api_key_header.to_ascii_lowercase(),
            auth_timeout_ms: cfg.auth_timeout_ms,
        })
    }

    /// Auth off: every credential (or none) is [`Principal::anonymous_full`].
    pub fn disabled() -> Authenticator {
        Authenticator {
            enabled: false,
            jwt: None,
            validation: Validation::default(),
            api_keys: ApiKeyStore::default(),
            api_key_header: "x-api-key".to_owned(),
            auth_timeout_ms: 5000,
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// The API-key header name, lower-cased.
    pub fn api_key_header(&self) -> &str {
        &self.api_key_header
    }

    pub fn auth_timeout_ms(&self) -> u64 {
        self.auth_timeout_ms
    }

    /// [`extract_credential`] with the configured API-key header.
    pub fn extract<'a>(
        &self,
        headers: &'a [(String, String)],
        query: &'a str,
    ) -> Option<std::borrow::Cow<'a, str>> {
        extract_credential(headers, query, &self.api_key_header)
    }

    /// Checks `credential` at `now_secs` (Unix seconds). Something shaped like a JWT (two
    /// dots) is verified as one when a secret is configured; if it isn't even a
    /// well-formed JWT it is tried as an API key too (keys may contain dots). Anything
    /// else is looked up as an API key. With auth disabled this always succeeds.
    pub fn authenticate(&self, credential: &str, now_secs: i64) -> Result<Principal, AuthError> {
        if !self.enabled {
            return Ok(Principal::anonymous_full());
        }
        if credential.is_empty() {
            return Err(AuthError::MissingCredential);
        }
        if credential.len() > jwt::MAX_TOKEN_BYTES {
            return Err(AuthError::TokenTooLarge);
        }
        let jwt_shaped = credential.bytes().filter(|&b| b == b'.').count() == 2;
        if let (true, Some(key)) = (jwt_shaped, &self.jwt) {
            match jwt::verify(credential, key, &self.validation, now_secs) {
                Ok(claims) => {
                    return Ok(Principal::from_claims(claims, self.validation.leeway_secs))
                }
                Err(JwtError::Malformed) if !self.api_keys.is_empty() => {
                    return self.lookup_key(credential).ok_or(AuthError::Malformed);
                }
                Err(e) => return Err(e.into()),
            }
        }
        self.lookup_key(credential).ok_or(AuthError::UnknownApiKey)
    }

    /// [`Self::authenticate`] at the system clock's current time.
    pub fn authenticate_now(&self, credential: &str) -> Result<Principal, AuthError> {
        self.authenticate(credential, unix_now_secs())
    }

    fn lookup_key(&self, credential: &str) -> Option<Principal> {
        self.api_keys.lookup(credential).map(|k| Principal {
            subject: k.name.clone(),
            permissions: k.permissions,
            scope: k.scope.clone(),
            expires_at: None,
        })
    }
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("enabled", &self.enabled)
            .field("jwt", &self.jwt.as_ref().map(|_| "<redacted>"))
            .field("validation", &self.validation)
            .field("api_keys", &self.api_keys)
            .field("api_key_header", &self.api_key_header)
            .field("auth_timeout_ms", &self.auth_timeout_ms)
            .finish()
    }
}

/// Seconds since the Unix epoch from the system clock (0 if the clock is before 1970).
pub fn unix_now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// RFC 9110 `token`: the characters a header field name may use.
fn is_header_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ApiKeyConfig;

    const SECRET: &str = "a-test-secret-that-is-32-bytes!!";
    const NOW: i64 = 1_700_000_000;

    fn cfg() -> AuthConfig {
        AuthConfig {
            enabled: true,
            jwt_secret: SECRET.into(),
            api_keys: vec![
                ApiKeyConfig {
                    key: Some("reader-key-0001".into()),
                    key_sha256: None,
                    permissions: vec!["read".into()],
                    sessions: vec!["s-*".into()],
                    name: Some("reader".into()),
                },
                ApiKeyConfig {
                    key: Some("weird.key.withdots".into()),
                    key_sha256: None,
                    permissions: vec!["publish".into()],
                    sessions: vec![],
                    name: None,
                },
            ],
            ..AuthConfig::default()
        }
    }

    fn token(perms: Permissions, exp: i64) -> String {
        jwt::mint(
            SECRET.as_bytes(),
            &Claims {
                sub: Some("bob".into()),
                permissions: perms,
                exp: Some(exp),
                ..Claims::default()
            },
        )
    }

    #[test]
    fn jwt_and_api_keys() {
        let a = Authenticator::from_config(&cfg()).unwrap();
        let p = a
            .authenticate(&token(Permissions::ADMIN, NOW + 60), NOW)
            .unwrap();
        assert_eq!(p.subject.as_deref(), Some("bob"));
        assert!(p.is_admin() && p.can_read("any"));
        assert_eq!(p.expires_at, Some(NOW + 60 + 30));

        let p = a.authenticate("reader-key-0001", NOW).unwrap();
        assert_eq!(p.subject.as_deref(), Some("reader"));
        assert!(p.can_read("s-1") && !p.can_read("t") && !p.can_publish());
        assert_eq!(p.expires_at, None);

        // An API key with two dots: not a valid JWT, so it's tried as a key.
        assert!(a
            .authenticate("weird.key.withdots", NOW)
            .unwrap()
            .can_publish());
        assert_eq!(a.authenticate("not.a.key", NOW), Err(AuthError::Malformed));
        assert_eq!(a.authenticate("nope", NOW), Err(AuthError::UnknownApiKey));
        assert_eq!(a.authenticate("", NOW), Err(AuthError::MissingCredential));
        assert_eq!(
            a.authenticate(&"k".repeat(9000), NOW),
            Err(AuthError::TokenTooLarge)
        );
        assert_eq!(
            a.authenticate(&token(Permissions::READ, NOW - 60), NOW),
            Err(AuthError::Expired)
        );
        let wrong = jwt::mint(
            b"some-other-secret-of-32-bytes!!!",
            &Claims {
                exp: Some(NOW + 5),
                ..Claims::default()
            },
        );
        assert_eq!(a.authenticate(&wrong, NOW), Err(AuthError::BadSignature));
    }

    #[test]
    fn jwt_without_secret_is_unknown_key() {
        let a = Authenticator::from_config(&AuthConfig {
            jwt_secret: String::new(),
            ..cfg()
        })
        .unwrap();
        assert_eq!(
            a.authenticate(&token(Permissions::READ, NOW + 60), NOW),
            Err(AuthError::UnknownApiKey)
        );
    }

    #[test]
    fn disabled_allows_everything() {
        let a = Authenticator::from_config(&AuthConfig::default()).unwrap();
        assert_eq!(a.authenticate("", NOW), Ok(Principal::anonymous_full()));
        assert_eq!(
            Authenticator::disabled().authenticate("x", NOW),
            Ok(Principal::anonymous_full())
        );
    }

    #[test]
    fn config_validation() {
        let none = AuthConfig {
            enabled: true,
            ..AuthConfig::default()
        };
        assert_eq!(
            Authenticator::from_config(&none).unwrap_err(),
            AuthConfigError::NoCredentialsConfigured
        );
        let short = AuthConfig {
            jwt_secret: "short".into(),
            ..cfg()
        };
        assert_eq!(
            Authenticator::from_config(&short).unwrap_err(),
            AuthConfigError::JwtSecretTooShort { len: 5 }
        );
        let header = AuthConfig {
            api_key_header: "X Api Key".into(),
            ..cfg()
        };
        assert_eq!(
            Authenticator::from_config(&header).unwrap_err(),
            AuthConfigError::BadApiKeyHeader
        );
        let mut bad_perm = cfg();
        bad_perm.api_keys[1].permissions.push("superuser".into());
        let err = Authenticator::from_config(&bad_perm).unwrap_err();
        assert_eq!(
            err,
            AuthConfigError::ApiKeyBadPermission {
                index: 1,
                value: "superuser".into()
            }
        );
        assert!(err.to_string().contains("api_keys[1]") && err.to_string().contains("superuser"));
        let a = Authenticator::from_config(&AuthConfig {
            api_key_header: "X-Custom".into(),
            ..cfg()
        })
        .unwrap();
        assert_eq!(a.api_key_header(), "x-custom");
        let headers = vec![("x-custom".to_owned(), "reader-key-0001".to_owned())];
        assert_eq!(a.extract(&headers, "").as_deref(), Some("reader-key-0001"));
    }

    #[test]
    fn no_secret_material_in_debug_or_display() {
        let a = Authenticator::from_config(&cfg()).unwrap();
        let tok = token(Permissions::READ, NOW - 100);
        let mut outputs = vec![
            format!("{a:?}"),
            format!("{:?}", JwtKey::new(SECRET.as_bytes())),
        ];
        for cred in [
            tok.as_str(),
            "reader-key-0001x",
            "weird.key.withdotsx",
            &"z".repeat(9000),
            "a.b.c",
        ] {
            if let Err(e) = a.authenticate(cred, NOW) {
                outputs.push(format!("{e:?} {e} {}", e.code()));
            }
        }
        let short = AuthConfig {
            jwt_secret: "tiny-secret".into(),
            ..cfg()
        };
        let e = Authenticator::from_config(&short).unwrap_err();
        outputs.push(format!("{e:?} {e}"));
        let sig = tok.rsplit('.').next().unwrap_or_default();
        for out in &outputs {
            for secret in [
                SECRET,
                "tiny-secret",
                "reader-key-0001",
                "weird.key.withdots",
                tok.as_str(),
                sig,
            ] {
                assert!(!out.contains(secret), "{out:?} leaks {secret:?}");
            }
        }
        assert!(outputs.iter().any(|o| o.contains("expired")));
    }
}
