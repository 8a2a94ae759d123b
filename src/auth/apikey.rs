//! API keys from the `[auth]` config: lookup in constant time.
//!
//! Only the SHA-256 digest of each key is kept in memory (a plain `key` from the config is
//! hashed at start-up), so a memory dump or a stray `Debug` shows no usable key. A
//! presented key is hashed once and compared against *every* stored digest with
//! `subtle`, so neither which key matched nor how many bytes of a near-miss matched shows
//! up in the response time.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use super::error::AuthConfigError;
use super::permissions::Permissions;
use super::scope::SessionScope;
use crate::config::ApiKeyConfig;

/// One configured key: its digest and what it grants.
#[derive(Clone)]
pub struct ApiKey {
    digest: [u8; 32],
    pub name: Option<String>,
    pub permissions: Permissions,
    pub scope: SessionScope,
}

impl ApiKey {
    /// Validates one `[[auth.api_keys]]` entry; `index` is its position, for errors.
    pub fn from_config(index: usize, cfg: &ApiKeyConfig) -> Result<ApiKey, AuthConfigError> {
        let digest = match (&cfg.key, &cfg.key_sha256) {
            (Some(key), None) if !key.is_empty() => sha256(key.as_bytes()),
            (None, Some(hex)) => parse_hex32(hex).ok_or(AuthConfigError::ApiKeyBadHex { index })?,
            _ => return Err(AuthConfigError::ApiKeyMissingOrAmbiguous { index }),
        };
        let permissions = Permissions::from_names(cfg.permissions.iter().map(String::as_str))
            .map_err(|bad| AuthConfigError::ApiKeyBadPermission {
                index,
                value: bad.to_owned(),
            })?;
        Ok(ApiKey {
            digest,
            name: cfg.name.clone(),
            permissions,
            scope: SessionScope::from_patterns(&cfg.sessions),
        })
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("digest", &"<redacted>")
            .field("name", &self.name)
            .field("permissions", &self.permissions)
            .field("scope", &self.scope)
            .finish()
    }
}

/// All configured keys.
#[derive(Clone, Default)]
pub struct ApiKeyStore {
    keys: Vec<ApiKey>,
}

impl ApiKeyStore {
    pub fn from_config(cfgs: &[ApiKeyConfig]) -> Result<ApiKeyStore, AuthConfigError> {
        let keys = cfgs
            .iter()
            .enumerate()
            .map(|(i, c)| ApiKey::from_config(i, c))
            .collect::<Result<_, _>>()?;
        Ok(ApiKeyStore { keys })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// The key equal to `presented`, if any. Time depends only on the number of keys and
    /// the length of `presented`, not on which key (if any) matches.
    pub fn lookup(&self, presented: &str) -> Option<&ApiKey> {
        let digest = sha256(presented.as_bytes());
        // 1-based index of the match, 0 for none, selected without branching on secrets.
        let mut found: u32 = 0;
        for (i, key) in self.keys.iter().enumerate() {
            let hit = key.digest.ct_eq(&digest);
            let candidate = u32::try_from(i + 1).unwrap_or(u32::MAX);
            found = u32::conditional_select(&found, &candidate, hit);
        }
        let index = usize::try_from(found).ok()?.checked_sub(1)?;
        self.keys.get(index)
    }
}

impl fmt::Debug for ApiKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.keys).finish()
    }
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&Sha256::digest(data));
    out
}

/// Exactly 64 hex digits (either case) → 32 bytes.
fn parse_hex32(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let hi = char::from(*pair.first()?).to_digit(16)?;
        let lo = char::from(*pair.get(1)?).to_digit(16)?;
        *o = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn key_cfg(key: Option<&str>, sha: Option<&str>, perms: &[&str]) -> ApiKeyConfig {
        ApiKeyConfig {
            key: key.map(str::to_owned),
            key_sha256: sha.map(str::to_owned),
            permissions: perms.iter().map(|s| s.to_string()).collect(),
            sessions: vec!["*".into()],
            name: Some("ci".into()),
        }
    }

    fn hex(d: [u8; 32]) -> String {
        d.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn plain_and_sha256_keys() {
        let store = ApiKeyStore::from_config(&[
            key_cfg(Some("plain-key-1"), None, &["read"]),
            key_cfg(
                None,
                Some(&hex(sha256(b"hashed-key-2")).to_uppercase()),
                &["publish"],
            ),
        ])
        .unwrap();
        assert_eq!(
            store.lookup("plain-key-1").map(|k| k.permissions),
            Some(Permissions::READ)
        );
        assert_eq!(
            store.lookup("hashed-key-2").map(|k| k.permissions),
            Some(Permissions::PUBLISH)
        );
        assert!(store.lookup("plain-key-").is_none());
        assert!(store.lookup("").is_none());
        assert!(
            store.lookup(&hex(sha256(b"hashed-key-2"))).is_none(),
            "the digest itself is not a key"
        );
    }

    #[test]
    fn config_errors_name_the_index() {
        let cases: Vec<(ApiKeyConfig, AuthConfigError)> = vec![
            (
                key_cfg(None, None, &["read"]),
                AuthConfigError::ApiKeyMissingOrAmbiguous { index: 1 },
            ),
            (
                key_cfg(Some("a"), Some(&"0".repeat(64)), &["read"]),
                AuthConfigError::ApiKeyMissingOrAmbiguous { index: 1 },
            ),
            (
                key_cfg(Some(""), None, &["read"]),
                AuthConfigError::ApiKeyMissingOrAmbiguous { index: 1 },
            ),
            (
                key_cfg(None, Some("abc"), &["read"]),
                AuthConfigError::ApiKeyBadHex { index: 1 },
            ),
            (
                key_cfg(None, Some(&"g".repeat(64)), &["read"]),
                AuthConfigError::ApiKeyBadHex { index: 1 },
            ),
            (
                key_cfg(None, Some(&"é".repeat(32)), &["read"]),
                AuthConfigError::ApiKeyBadHex { index: 1 },
            ),
            (
                key_cfg(Some("k"), None, &["read", "wrte"]),
                AuthConfigError::ApiKeyBadPermission {
                    index: 1,
                    value: "wrte".into(),
                },
            ),
        ];
        for (bad, want) in cases {
            let err = ApiKeyStore::from_config(&[key_cfg(Some("ok"), None, &[]), bad]).unwrap_err();
            assert_eq!(err, want);
        }
    }

    #[test]
    fn debug_has_no_key_material() {
        let store = ApiKeyStore::from_config(&[key_cfg(Some("super-secret-key"), None, &["read"])])
            .unwrap();
        let dbg = format!("{store:?}");
        assert!(!dbg.contains("super-secret-key"));
        assert!(!dbg.contains(&hex(sha256(b"super-secret-key"))));
        assert!(dbg.contains("ci"));
    }
}
