//! An HS256-only JWT verifier and minter (RFC 7519 / 7515 compact form).
//!
//! Written here rather than taken from a general JOSE crate so the accepted surface is
//! exactly what tracecast needs and nothing more: one algorithm (no `alg` confusion, no
//! `none`), strict unpadded base64url, hard size limits checked before any decoding, the
//! MAC checked in constant time *before* the payload JSON is parsed, and time passed in
//! as a number so every rule is unit-testable. The keyed HMAC state (inner and outer pad
//! blocks already absorbed) is computed once per key and cloned per token.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::JwtError;
use super::permissions::Permissions;

type HmacSha256 = Hmac<Sha256>;

/// Longest token accepted, in bytes, before anything is decoded.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Longest decoded header JSON.
pub const MAX_HEADER_BYTES: usize = 1024;
/// Longest decoded payload (claims) JSON.
pub const MAX_PAYLOAD_BYTES: usize = 4 * 1024;
/// Shortest secret [`crate::auth::Authenticator`] accepts: 256 bits (RFC 7518 §3.2).
/// [`JwtKey::new`] itself accepts any length so tests and tools can use short ones.
pub const MIN_SECRET_BYTES: usize = 32;

const SHA256_BLOCK: usize = 64;
const SIG_BYTES: usize = 32;
/// Unpadded base64 of 32 bytes.
const SIG_B64_LEN: usize = 43;

/// Base64 characters needed for `n` decoded bytes without padding.
const fn b64_len(n: usize) -> usize {
    (n * 4).div_ceil(3)
}

/// A keyed HS256 MAC, ready to be cloned per token.
#[derive(Clone)]
pub struct JwtKey {
    mac: HmacSha256,
}

impl JwtKey {
    pub fn new(secret: &[u8]) -> JwtKey {
        // HMAC's own key rule (hash if longer than a block, then zero-pad) done here so the
        // infallible fixed-size constructor can be used; the resulting MAC is identical.
        let mut block = [0u8; SHA256_BLOCK];
        let digest;
        let key = if secret.len() > SHA256_BLOCK {
            digest = Sha256::digest(secret);
            digest.as_slice()
        } else {
            secret
        };
        for (b, k) in block.iter_mut().zip(key) {
            *b = *k;
        }
        JwtKey {
            mac: <HmacSha256 as KeyInit>::new(&block.into()),
        }
    }

    fn tag(&self, signing_input: &[u8]) -> [u8; SIG_BYTES] {
        let mut mac = self.mac.clone();
        mac.update(signing_input);
        let mut out = [0u8; SIG_BYTES];
        out.copy_from_slice(&mac.finalize().into_bytes());
        out
    }
}

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JwtKey(<redacted>)")
    }
}

/// Which optional claims are checked and how much clock skew is forgiven.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validation {
    /// When set, `iss` must be present and equal.
    pub issuer: Option<String>,
    /// When set, `aud` (string or array) must be present and contain it.
    pub audience: Option<String>,
    /// Seconds added after `exp` and before `nbf`.
    pub leeway_secs: u64,
    /// Refuse tokens without `exp` (default true: a token without expiry is forever).
    pub require_exp: bool,
}

impl Default for Validation {
    fn default() -> Validation {
        Validation {
            issuer: None,
            audience: None,
            leeway_secs: 30,
            require_exp: true,
        }
    }
}

impl Validation {
    /// From `[auth]`: empty `jwt_issuer` / `jwt_audience` mean "not checked".
    pub fn from_config(cfg: &crate::config::AuthConfig) -> Validation {
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        Validation {
            issuer: opt(&cfg.jwt_issuer),
            audience: opt(&cfg.jwt_audience),
            leeway_secs: cfg.leeway_secs,
            require_exp: true,
        }
    }
}

/// The claims tracecast reads. Unknown claims (`jti`, custom ones) are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Claims {
    pub sub: Option<String>,
    pub iss: Option<String>,
    /// Empty when absent; one entry is minted as a string, several as an array.
    pub aud: Vec<String>,
    /// Seconds since the Unix epoch.
    pub exp: Option<i64>,
    pub nbf: Option<i64>,
    /// Informational only: never checked (a future `iat` is not refused).
    pub iat: Option<i64>,
    /// Absent claim → empty set.
    pub permissions: Permissions,
    /// Session patterns. `None` when the claim is absent; see
    /// [`crate::auth::Principal::from_claims`] for what that means.
    pub sessions: Option<Vec<String>>,
}

/// Verifies `token` with `key` at `now_secs` (Unix seconds) and returns its claims.
///
/// Checks, in order: total size; exactly three `.`-separated parts; part sizes; header
/// (`alg` = `HS256`, `typ` absent or `JWT`, no `crit`); signature (constant time); then
/// the payload JSON, `permissions`, `exp`, `nbf`, `iss`, `aud`.
pub fn verify(
    token: &str,
    key: &JwtKey,
    validation: &Validation,
    now_secs: i64,
) -> Result<Claims, JwtError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(JwtError::TooLarge);
    }
    let (header_b64, rest) = token.split_once('.').ok_or(JwtError::Malformed)?;
    let (payload_b64, sig_b64) = rest.split_once('.').ok_or(JwtError::Malformed)?;
    if sig_b64.contains('.') {
        return Err(JwtError::Malformed);
    }
    if header_b64.len() > b64_len(MAX_HEADER_BYTES)
        || payload_b64.len() > b64_len(MAX_PAYLOAD_BYTES)
    {
        return Err(JwtError::TooLarge);
    }

    // Heap buffers sized to the input: zeroing fixed 1 KiB + 4 KiB stack buffers cost
    // more than the two small allocations for a typical 200-byte token.
    check_header(&decode_vec(header_b64)?)?;

    if sig_b64.len() != SIG_B64_LEN {
        return Err(JwtError::Malformed);
    }
    // +3: the decoder sizes its output check by an upper estimate, not the exact length.
    let mut sig = [0u8; SIG_BYTES + 3];
    if decode(sig_b64, &mut sig)? != SIG_BYTES {
        return Err(JwtError::Malformed);
    }
    let signing_input = token
        .get(..header_b64.len() + 1 + payload_b64.len())
        .ok_or(JwtError::Malformed)?;
    let mut mac = key.mac.clone();
    mac.update(signing_input.as_bytes());
    mac.verify_slice(sig.get(..SIG_BYTES).ok_or(JwtError::Malformed)?)
        .map_err(|_| JwtError::BadSignature)?;

    let payload = decode_vec(payload_b64)?;
    let raw: RawClaims = serde_json::from_slice(&payload).map_err(|_| JwtError::Malformed)?;
    let claims = raw.into_claims()?;
    validate(&claims, validation, now_secs)?;
    Ok(claims)
}

/// Signs `claims` with `secret` as an HS256 JWT (`{"alg":"HS256","typ":"JWT"}`).
pub fn mint(secret: &[u8], claims: &Claims) -> String {
    mint_with_key(&JwtKey::new(secret), claims)
}

/// [`mint`] with a prepared key.
pub fn mint_with_key(key: &JwtKey, claims: &Claims) -> String {
    let payload = MintClaims::from(claims);
    // Serialising plain strings, integers and string lists cannot fail.
    let json = serde_json::to_vec(&payload).unwrap_or_default();
    let mut token = String::with_capacity(64 + json.len() * 4 / 3 + SIG_B64_LEN);
    URL_SAFE_NO_PAD.encode_string(br#"{"alg":"HS256","typ":"JWT"}"#, &mut token);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&json, &mut token);
    let tag = key.tag(token.as_bytes());
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(tag, &mut token);
    token
}

// URL_SAFE_NO_PAD refuses `=`, `+`, `/`, whitespace and non-canonical trailing bits.
fn decode(b64: &str, out: &mut [u8]) -> Result<usize, JwtError> {
    URL_SAFE_NO_PAD
        .decode_slice(b64, out)
        .map_err(|_| JwtError::Malformed)
}

fn decode_vec(b64: &str) -> Result<Vec<u8>, JwtError> {
    URL_SAFE_NO_PAD.decode(b64).map_err(|_| JwtError::Malformed)
}

#[derive(Deserialize)]
struct RawHeader<'a> {
    #[serde(borrow, default)]
    alg: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    typ: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    crit: Option<de::IgnoredAny>,
}

fn check_header(json: &[u8]) -> Result<(), JwtError> {
    let h: RawHeader<'_> = serde_json::from_slice(json).map_err(|_| JwtError::Malformed)?;
    if h.alg.as_deref() != Some("HS256") || h.crit.is_some() {
        return Err(JwtError::UnsupportedAlgorithm);
    }
    match h.typ.as_deref() {
        None => Ok(()),
        Some(t) if t.eq_ignore_ascii_case("JWT") => Ok(()),
        Some(_) => Err(JwtError::Malformed),
    }
}

fn validate(c: &Claims, v: &Validation, now: i64) -> Result<(), JwtError> {
    let leeway = i64::try_from(v.leeway_secs).unwrap_or(i64::MAX);
    match c.exp {
        // Valid while now < exp + leeway (RFC 7519 §4.1.4: "before").
        Some(exp) if now >= exp.saturating_add(leeway) => return Err(JwtError::Expired),
        None if v.require_exp => return Err(JwtError::Expired),
        _ => {}
    }
    if let Some(nbf) = c.nbf {
        // Valid from nbf - leeway on (§4.1.5: "after or equal").
        if now < nbf.saturating_sub(leeway) {
            return Err(JwtError::NotYetValid);
        }
    }
    if let Some(iss) = &v.issuer {
        if c.iss.as_deref() != Some(iss.as_str()) {
            return Err(JwtError::IssuerMismatch);
        }
    }
    if let Some(aud) = &v.audience {
        if !c.aud.iter().any(|a| a == aud) {
            return Err(JwtError::AudienceMismatch);
        }
    }
    Ok(())
}

#[derive(Deserialize)]
struct RawClaims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    iss: Option<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    aud: Option<Vec<String>>,
    #[serde(default, deserialize_with = "numeric_date")]
    exp: Option<i64>,
    #[serde(default, deserialize_with = "numeric_date")]
    nbf: Option<i64>,
    #[serde(default, deserialize_with = "numeric_date")]
    iat: Option<i64>,
    #[serde(default, deserialize_with = "permission_list")]
    permissions: Option<Result<Permissions, ()>>,
    #[serde(default, deserialize_with = "one_or_many")]
    sessions: Option<Vec<String>>,
}

impl RawClaims {
    fn into_claims(self) -> Result<Claims, JwtError> {
        let permissions = match self.permissions {
            None => Permissions::empty(),
            Some(Ok(p)) => p,
            // Refused rather than ignored: a typo like "publsh" should fail loudly at the
            // first connection, not silently grant less (or, after a rename, more).
            Some(Err(())) => return Err(JwtError::InvalidClaims),
        };
        Ok(Claims {
            sub: self.sub,
            iss: self.iss,
            aud: self.aud.unwrap_or_default(),
            exp: self.exp,
            nbf: self.nbf,
            iat: self.iat,
            permissions,
            sessions: self.sessions,
        })
    }
}

/// NumericDate (RFC 7519 §2): integer or fractional seconds; fractions are floored and
/// out-of-range values saturate, so a huge `exp` is "far future", never a wrap-around.
fn numeric_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let n: Option<serde_json::Number> = Option::deserialize(d)?;
    let Some(n) = n else { return Ok(None) };
    if let Some(i) = n.as_i64() {
        return Ok(Some(i));
    }
    if n.as_u64().is_some() {
        return Ok(Some(i64::MAX));
    }
    match n.as_f64() {
        // `as` saturates for finite floats, which is the intent.
        Some(f) if f.is_finite() => Ok(Some(f.floor() as i64)),
        _ => Err(de::Error::custom("bad NumericDate")),
    }
}

/// An array of permission names, folded straight into a set without allocating; an
/// unknown name is remembered as `Err` so it maps to `InvalidClaims`, not `Malformed`.
fn permission_list<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Result<Permissions, ()>>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<Result<Permissions, ()>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array of permission names")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_seq(V)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut set = Ok(Permissions::empty());
            while let Some(PermName(p)) = seq.next_element::<PermName>()? {
                set = match (set, p) {
                    (Ok(s), Some(p)) => Ok(s | p),
                    _ => Err(()),
                };
            }
            Ok(Some(set))
        }
    }
    d.deserialize_option(V)
}

/// One permission name, looked up while the JSON string is still borrowed.
struct PermName(Option<Permissions>);

impl<'de> Deserialize<'de> for PermName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<PermName, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = PermName;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a permission name")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<PermName, E> {
                Ok(PermName(Permissions::from_name(s)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A string or an array of strings (`aud` per RFC 7519 §4.1.3; `sessions` for symmetry).
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<Vec<String>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string or an array of strings")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(V)
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
            Ok(Some(vec![s.to_owned()]))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
            while let Some(s) = seq.next_element::<String>()? {
                out.push(s);
            }
            Ok(Some(out))
        }
    }
    d.deserialize_option(V)
}

#[derive(Serialize)]
struct MintClaims<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<MintAud<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nbf: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    permissions: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sessions: Option<&'a [String]>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum MintAud<'a> {
    One(&'a str),
    Many(&'a [String]),
}

impl<'a> From<&'a Claims> for MintClaims<'a> {
    fn from(c: &'a Claims) -> MintClaims<'a> {
        MintClaims {
            sub: c.sub.as_deref(),
            iss: c.iss.as_deref(),
            aud: match c.aud.as_slice() {
                [] => None,
                [one] => Some(MintAud::One(one)),
                many => Some(MintAud::Many(many)),
            },
            exp: c.exp,
            nbf: c.nbf,
            iat: c.iat,
            permissions: c.permissions.names().collect(),
            sessions: c.sessions.as_deref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: i64 = 1_700_000_000;

    fn claims() -> Claims {
        Claims {
            sub: Some("alice".into()),
            exp: Some(NOW + 3600),
            permissions: Permissions::READ,
            sessions: Some(vec!["s-*".into()]),
            ..Claims::default()
        }
    }

    fn b64(s: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    /// Builds a token from raw header and payload JSON, signed with `secret` over
    /// exactly what is sent (so only the rule under test fails).
    fn raw_token(header: &str, payload: &str, secret: &[u8]) -> String {
        let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
        let tag = JwtKey::new(secret).tag(input.as_bytes());
        format!("{input}.{}", b64(&tag))
    }

    fn check(token: &str) -> Result<Claims, JwtError> {
        verify(token, &JwtKey::new(SECRET), &Validation::default(), NOW)
    }

    const HS256: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

    #[test]
    fn mint_verify_round_trip() {
        let c = Claims {
            aud: vec!["a".into(), "b".into()],
            iss: Some("me".into()),
            ..claims()
        };
        let token = mint(SECRET, &c);
        assert_eq!(check(&token), Ok(c));
    }

    #[test]
    fn known_answer_rfc7515_a1_style() {
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog") — a published
        // test vector — proves the hand-prepared key block gives the standard MAC.
        let tag = JwtKey::new(b"key").tag(b"The quick brown fox jumps over the lazy dog");
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
        // And a key longer than a block is hashed first, like HMAC says.
        let long = [7u8; 100];
        let mut reference = <HmacSha256 as KeyInit>::new_from_slice(&long).unwrap();
        reference.update(b"x");
        assert_eq!(
            JwtKey::new(&long).tag(b"x")[..],
            reference.finalize().into_bytes()[..]
        );
    }

    #[test]
    fn bad_token_matrix() {
        let good = r#"{"sub":"a","exp":1700003600,"permissions":["read"]}"#;
        let valid = raw_token(HS256, good, SECRET);
        let parts: Vec<&str> = valid.split('.').collect();
        let cases: Vec<(&str, String, JwtError)> = vec![
            (
                "alg none",
                format!("{}.{}.", b64(br#"{"alg":"none"}"#), parts[1]),
                JwtError::UnsupportedAlgorithm,
            ),
            (
                "alg none signed",
                raw_token(r#"{"alg":"none"}"#, good, SECRET),
                JwtError::UnsupportedAlgorithm,
            ),
            (
                "HS384",
                raw_token(r#"{"alg":"HS384"}"#, good, SECRET),
                JwtError::UnsupportedAlgorithm,
            ),
            (
                "HS512",
                raw_token(r#"{"alg":"HS512"}"#, good, SECRET),
                JwtError::UnsupportedAlgorithm,
            ),
            (
                "RS256",
                raw_token(r#"{"alg":"RS256"}"#, good, SECRET),
                JwtError::UnsupportedAlgorithm,
            ),
            (
                "hs256 lowercase",
                raw_token(r#"{"alg":"hs256"}"#, good, SECRET),
                JwtError::UnsupportedAlgorithm,
            ),
            (
                "missing alg",
                raw_token(r#"{"typ":"JWT"}"#, good, SECRET),
                JwtError::UnsupportedAlgorithm,
            ),
            (
                "crit",
                raw_token(
                    r#"{"alg":"HS256","crit":["b64"],"b64":false}"#,
                    good,
                    SECRET,
                ),
                JwtError::UnsupportedAlgorithm,
            ),
            (
                "typ not JWT",
                raw_token(r#"{"alg":"HS256","typ":"at+jwt"}"#, good, SECRET),
                JwtError::Malformed,
            ),
            (
                "duplicate alg",
                raw_token(r#"{"alg":"none","alg":"HS256"}"#, good, SECRET),
                JwtError::Malformed,
            ),
            (
                "header not object",
                raw_token(r#""HS256""#, good, SECRET),
                JwtError::Malformed,
            ),
            (
                "wrong key",
                raw_token(HS256, good, b"another-secret-another-secret-xx"),
                JwtError::BadSignature,
            ),
            (
                "tampered payload",
                format!(
                    "{}.{}.{}",
                    parts[0],
                    b64(br#"{"sub":"root","exp":1700003600}"#),
                    parts[2]
                ),
                JwtError::BadSignature,
            ),
            (
                "two parts",
                format!("{}.{}", parts[0], parts[1]),
                JwtError::Malformed,
            ),
            ("four parts", format!("{valid}.x"), JwtError::Malformed),
            ("one part", parts[0].to_owned(), JwtError::Malformed),
            ("empty", String::new(), JwtError::Malformed),
            ("dots only", "..".into(), JwtError::Malformed),
            ("padded sig", format!("{valid}="), JwtError::Malformed),
            (
                "padded header",
                format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
                JwtError::Malformed,
            ),
            (
                "std alphabet",
                format!("{}.{}.+{}", parts[0], parts[1], &parts[2][1..]),
                JwtError::Malformed,
            ),
            (
                "bad base64 header",
                format!("!!!.{}.{}", parts[1], parts[2]),
                JwtError::Malformed,
            ),
            ("whitespace", format!(" {valid}"), JwtError::Malformed),
            (
                "short sig",
                format!("{}.{}.{}", parts[0], parts[1], &parts[2][..42]),
                JwtError::Malformed,
            ),
            (
                "payload not json",
                raw_token(HS256, "not json", SECRET),
                JwtError::Malformed,
            ),
            (
                "exp string",
                raw_token(HS256, r#"{"exp":"1700003600"}"#, SECRET),
                JwtError::Malformed,
            ),
            (
                "unknown permission",
                raw_token(
                    HS256,
                    r#"{"exp":1700003600,"permissions":["read","root"]}"#,
                    SECRET,
                ),
                JwtError::InvalidClaims,
            ),
            (
                "no exp",
                raw_token(HS256, r#"{"sub":"a"}"#, SECRET),
                JwtError::Expired,
            ),
            (
                "expired",
                raw_token(HS256, r#"{"exp":1699990000}"#, SECRET),
                JwtError::Expired,
            ),
            (
                "nbf future",
                raw_token(HS256, r#"{"exp":1700003600,"nbf":1700000100}"#, SECRET),
                JwtError::NotYetValid,
            ),
            (
                "oversized token",
                "a".repeat(MAX_TOKEN_BYTES + 1),
                JwtError::TooLarge,
            ),
            (
                "oversized payload",
                raw_token(
                    HS256,
                    &format!(
                        r#"{{"exp":1700003600,"x":"{}"}}"#,
                        "y".repeat(MAX_PAYLOAD_BYTES)
                    ),
                    SECRET,
                ),
                JwtError::TooLarge,
            ),
            (
                "oversized header",
                raw_token(
                    &format!(
                        r#"{{"alg":"HS256","x":"{}"}}"#,
                        "y".repeat(MAX_HEADER_BYTES)
                    ),
                    good,
                    SECRET,
                ),
                JwtError::TooLarge,
            ),
        ];
        assert_eq!(check(&valid).map(|c| c.sub), Ok(Some("a".into())));
        for (name, token, want) in cases {
            assert_eq!(check(&token), Err(want), "{name}");
        }
    }

    #[test]
    fn non_canonical_trailing_bits_refused() {
        let valid = mint(SECRET, &claims());
        let (head, sig) = valid.rsplit_once('.').unwrap();
        // 43 chars encode 258 bits; the last char carries 2 unused bits that must be 0.
        let mut chars: Vec<char> = sig.chars().collect();
        let last = chars[42];
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let idx = alphabet.find(last).unwrap();
        chars[42] = alphabet.chars().nth(idx | 1).unwrap();
        let tweaked: String = chars.into_iter().collect();
        assert_ne!(tweaked, sig);
        assert_eq!(
            check(&format!("{head}.{tweaked}")),
            Err(JwtError::Malformed)
        );
    }

    #[test]
    fn leeway_edges() {
        let key = JwtKey::new(SECRET);
        let v = Validation {
            leeway_secs: 30,
            ..Validation::default()
        };
        let exp = mint(
            SECRET,
            &Claims {
                exp: Some(NOW),
                ..claims()
            },
        );
        assert!(verify(&exp, &key, &v, NOW + 29).is_ok());
        assert_eq!(verify(&exp, &key, &v, NOW + 30), Err(JwtError::Expired));
        let nbf = mint(
            SECRET,
            &Claims {
                nbf: Some(NOW + 30),
                ..claims()
            },
        );
        assert!(verify(&nbf, &key, &v, NOW).is_ok());
        assert_eq!(verify(&nbf, &key, &v, NOW - 1), Err(JwtError::NotYetValid));
        let strict = Validation {
            leeway_secs: 0,
            ..v.clone()
        };
        assert_eq!(verify(&exp, &key, &strict, NOW), Err(JwtError::Expired));
        assert!(verify(&exp, &key, &strict, NOW - 1).is_ok());
        // Saturation instead of overflow at the extremes.
        let huge = Validation {
            leeway_secs: u64::MAX,
            ..v.clone()
        };
        assert!(verify(&exp, &key, &huge, i64::MAX - 1).is_ok());
        let far = raw_token(HS256, r#"{"exp":1e300,"nbf":-1e300}"#, SECRET);
        assert!(verify(&far, &key, &v, NOW).is_ok());
        let frac = raw_token(HS256, r#"{"exp":1700000000.9}"#, SECRET);
        assert_eq!(
            verify(&frac, &key, &strict, NOW).map(|c| c.exp),
            Err(JwtError::Expired)
        );
        let optional = Validation {
            require_exp: false,
            ..v
        };
        assert!(verify(&raw_token(HS256, "{}", SECRET), &key, &optional, NOW).is_ok());
    }

    #[test]
    fn issuer_and_audience() {
        let key = JwtKey::new(SECRET);
        let v = Validation {
            issuer: Some("tc".into()),
            audience: Some("viewer".into()),
            ..Validation::default()
        };
        let ok = |c: Claims| verify(&mint(SECRET, &c), &key, &v, NOW);
        let with = |iss: Option<&str>, aud: &[&str]| Claims {
            iss: iss.map(str::to_owned),
            aud: aud.iter().map(|s| s.to_string()).collect(),
            ..claims()
        };
        assert!(ok(with(Some("tc"), &["viewer"])).is_ok());
        assert!(ok(with(Some("tc"), &["other", "viewer"])).is_ok());
        assert_eq!(
            ok(with(Some("tc2"), &["viewer"])),
            Err(JwtError::IssuerMismatch)
        );
        assert_eq!(ok(with(None, &["viewer"])), Err(JwtError::IssuerMismatch));
        assert_eq!(
            ok(with(Some("tc"), &["other"])),
            Err(JwtError::AudienceMismatch)
        );
        assert_eq!(ok(with(Some("tc"), &[])), Err(JwtError::AudienceMismatch));
        // Audience given as a plain string in the raw JSON.
        let t = raw_token(
            HS256,
            r#"{"exp":1700003600,"iss":"tc","aud":"viewer"}"#,
            SECRET,
        );
        assert!(verify(&t, &key, &v, NOW).is_ok());
        let t = raw_token(
            HS256,
            r#"{"exp":1700003600,"iss":"tc","aud":["x","viewer"]}"#,
            SECRET,
        );
        assert!(verify(&t, &key, &v, NOW).is_ok());
        let t = raw_token(HS256, r#"{"exp":1700003600,"iss":"tc","aud":[1]}"#, SECRET);
        assert_eq!(verify(&t, &key, &v, NOW), Err(JwtError::Malformed));
    }

    #[test]
    fn claims_shapes() {
        let t = raw_token(
            HS256,
            r#"{"exp":1700003600,"sessions":"one","jti":"x","permissions":["admin","read"]}"#,
            SECRET,
        );
        let c = check(&t).unwrap();
        assert_eq!(c.sessions, Some(vec!["one".into()]));
        assert_eq!(c.permissions, Permissions::ADMIN | Permissions::READ);
        let c = check(&raw_token(
            HS256,
            r#"{"exp":1700003600,"sessions":null}"#,
            SECRET,
        ))
        .unwrap();
        assert_eq!((c.sessions, c.permissions), (None, Permissions::empty()));
    }

    #[test]
    fn key_debug_is_redacted() {
        let dbg = format!("{:?}", JwtKey::new(SECRET));
        assert_eq!(dbg, "JwtKey(<redacted>)");
    }
}
