//! The auth layer's errors: why a credential or an auth configuration was refused.
//!
//! Messages are stable and safe to send to a client (`auth_response`, HTTP 401 body):
//! they say which rule failed and never echo the credential, the secret, or any part of a
//! decoded token, so a reflected error can't be turned into an oracle or a log leak.

use std::fmt;

/// Why a JWT was refused. A subset of [`AuthError`], which it converts into one-to-one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JwtError {
    /// Longer than the token size limit, or a decoded part over its limit.
    TooLarge,
    /// Not three base64url parts, bad base64, bad JSON, a bad claim type, or a bad `typ`.
    Malformed,
    /// `alg` missing or not `HS256` (`none`, `HS384`, `RS256`, …), or a `crit` header.
    UnsupportedAlgorithm,
    BadSignature,
    /// `exp` + leeway is not after now, or `exp` is missing while required.
    Expired,
    /// `nbf` − leeway is after now.
    NotYetValid,
    IssuerMismatch,
    AudienceMismatch,
    /// A `permissions` entry that is not `read`, `publish` or `admin`.
    InvalidClaims,
}

/// Why a credential was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthError {
    TokenTooLarge,
    Malformed,
    UnsupportedAlgorithm,
    BadSignature,
    Expired,
    NotYetValid,
    IssuerMismatch,
    AudienceMismatch,
    InvalidClaims,
    /// Not a JWT (or JWTs aren't configured) and no configured API key matches.
    UnknownApiKey,
    /// An empty credential.
    MissingCredential,
}

impl AuthError {
    /// A stable machine-readable code (snake_case), e.g. for metrics labels.
    pub fn code(self) -> &'static str {
        match self {
            AuthError::TokenTooLarge => "token_too_large",
            AuthError::Malformed => "malformed_token",
            AuthError::UnsupportedAlgorithm => "unsupported_algorithm",
            AuthError::BadSignature => "bad_signature",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::IssuerMismatch => "issuer_mismatch",
            AuthError::AudienceMismatch => "audience_mismatch",
            AuthError::InvalidClaims => "invalid_claims",
            AuthError::UnknownApiKey => "unknown_api_key",
            AuthError::MissingCredential => "missing_credential",
        }
    }

    /// The user-safe message (also the `Display` text).
    pub fn message(self) -> &'static str {
        match self {
            AuthError::TokenTooLarge => "token too large",
            AuthError::Malformed => "malformed token",
            AuthError::UnsupportedAlgorithm => "unsupported algorithm",
            AuthError::BadSignature => "bad signature",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not yet valid",
            AuthError::IssuerMismatch => "issuer mismatch",
            AuthError::AudienceMismatch => "audience mismatch",
            AuthError::InvalidClaims => "invalid claims",
            AuthError::UnknownApiKey => "unknown api key",
            AuthError::MissingCredential => "missing credential",
        }
    }
}

impl From<JwtError> for AuthError {
    fn from(e: JwtError) -> AuthError {
        match e {
            JwtError::TooLarge => AuthError::TokenTooLarge,
            JwtError::Malformed => AuthError::Malformed,
            JwtError::UnsupportedAlgorithm => AuthError::UnsupportedAlgorithm,
            JwtError::BadSignature => AuthError::BadSignature,
            JwtError::Expired => AuthError::Expired,
            JwtError::NotYetValid => AuthError::NotYetValid,
            JwtError::IssuerMismatch => AuthError::IssuerMismatch,
            JwtError::AudienceMismatch => AuthError::AudienceMismatch,
            JwtError::InvalidClaims => AuthError::InvalidClaims,
        }
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for AuthError {}

impl fmt::Display for JwtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(AuthError::from(*self).message())
    }
}

impl std::error::Error for JwtError {}

/// Why an `[auth]` section can't be used. Names the offending key by index and field,
/// never its value when the value is secret.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthConfigError {
    /// `enabled = true` with neither `jwt_secret` nor any `api_keys`.
    NoCredentialsConfigured,
    /// `jwt_secret` shorter than [`crate::auth::jwt::MIN_SECRET_BYTES`].
    JwtSecretTooShort { len: usize },
    /// `api_keys[index]` has both or neither of `key` / `key_sha256`, or an empty `key`.
    ApiKeyMissingOrAmbiguous { index: usize },
    /// `api_keys[index].key_sha256` is not 64 hex digits.
    ApiKeyBadHex { index: usize },
    /// `api_keys[index].permissions` holds a name that isn't read/publish/admin.
    ApiKeyBadPermission { index: usize, value: String },
    /// The API-key header name is empty or not a valid header token.
    BadApiKeyHeader,
}

impl fmt::Display for AuthConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthConfigError::NoCredentialsConfigured => {
                f.write_str("auth.enabled is true but neither auth.jwt_secret nor auth.api_keys is set")
            }
            AuthConfigError::JwtSecretTooShort { len } => write!(
                f,
                "auth.jwt_secret is {len} bytes; HS256 needs at least {} (RFC 7518 §3.2)",
                crate::auth::jwt::MIN_SECRET_BYTES
            ),
            AuthConfigError::ApiKeyMissingOrAmbiguous { index } => {
                write!(f, "auth.api_keys[{index}]: set exactly one of `key` (non-empty) or `key_sha256`")
            }
            AuthConfigError::ApiKeyBadHex { index } => {
                write!(f, "auth.api_keys[{index}].key_sha256: expected 64 hex digits")
            }
            AuthConfigError::ApiKeyBadPermission { index, value } => write!(
                f,
                "auth.api_keys[{index}].permissions: unknown permission {value:?} (expected read, publish or admin)"
            ),
            AuthConfigError::BadApiKeyHeader => f.write_str("auth.api_key_header: not a valid header name"),
        }
    }
}

impl std::error::Error for AuthConfigError {}
