//! `tracecast token`: mints a development HS256 JWT the server will accept.
//!
//! The secret comes from the configuration (file or `TRACECAST_JWT_SECRET`), never from a
//! flag, so it does not end up in shell history or `ps`. The issuer and audience are taken
//! from the same configuration so the token passes the server's checks as minted.
//!
//! INTEGRATOR: [`mint_hs256`] is a minimal local signer kept so this command works and is
//! tested on its own; once `crate::auth::jwt::mint` exists it can replace the body.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use clap::Args;
use hmac::{KeyInit, Mac};

use super::duration::parse_duration;
use super::CliError;
use crate::config::{Config, Overrides, PERMISSIONS};

#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// Subject (`sub`) of the token.
    #[arg(long)]
    pub sub: String,
    /// Comma-separated permissions: read, publish, admin.
    #[arg(long, default_value = "read", value_delimiter = ',')]
    pub permissions: Vec<String>,
    /// Comma-separated session-id patterns the token may read (`*` wildcard).
    #[arg(long, default_value = "*", value_delimiter = ',')]
    pub sessions: Vec<String>,
    /// Lifetime, e.g. 30m, 1h, 7d.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub ttl: Duration,
    /// Configuration file holding auth.jwt_secret (else TRACECAST_JWT_SECRET).
    #[arg(long, env = "TRACECAST_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Builds the claims object; `now` in seconds since the epoch.
pub fn claims(args: &TokenArgs, config: &Config, now: u64) -> Result<serde_json::Value, CliError> {
    if args.sub.is_empty() {
        return Err(CliError::Usage("--sub must not be empty".into()));
    }
    if let Some(p) = args
        .permissions
        .iter()
        .find(|p| !PERMISSIONS.contains(&p.as_str()))
    {
        return Err(CliError::Usage(format!(
            "--permissions: {p:?} is not one of {}",
            PERMISSIONS.join(", ")
        )));
    }
    if args.sessions.iter().any(|s| s.is_empty()) {
        return Err(CliError::Usage("--sessions: empty pattern".into()));
    }
    let exp = now.saturating_add(args.ttl.as_secs().max(1));
    let mut claims = serde_json::json!({
        "sub": args.sub,
        "iat": now,
        "exp": exp,
        "permissions": args.permissions,
        "sessions": args.sessions,
    });
    if let Some(map) = claims.as_object_mut() {
        if !config.auth.jwt_issuer.is_empty() {
            map.insert("iss".into(), config.auth.jwt_issuer.clone().into());
        }
        if !config.auth.jwt_audience.is_empty() {
            map.insert("aud".into(), config.auth.jwt_audience.clone().into());
        }
    }
    Ok(claims)
}

/// `header.payload.signature`, HS256, base64url without padding.
pub fn mint_hs256(secret: &[u8], claims: &serde_json::Value) -> Result<String, CliError> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = b64.encode(claims.to_string());
    let signing_input = format!("{header}.{payload}");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret)
        .map_err(|e| CliError::Runtime(format!("token: {e}")))?;
    mac.update(signing_input.as_bytes());
    let signature = b64.encode(mac.finalize().into_bytes());
    Ok(format!("{signing_input}.{signature}"))
}

/// Runs the command: prints the token on stdout.
pub fn run(args: &TokenArgs) -> Result<(), CliError> {
    let config = Config::load(
        args.config.as_deref(),
        Config::process_env()?,
        &Overrides::default(),
    )?;
    if config.auth.jwt_secret.is_empty() {
        return Err(CliError::Usage(
            "token: no secret; set TRACECAST_JWT_SECRET or auth.jwt_secret in --config FILE".into(),
        ));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let claims = claims(args, &config, now)?;
    println!(
        "{}",
        mint_hs256(config.auth.jwt_secret.as_bytes(), &claims)?
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        args: TokenArgs,
    }

    fn parse(argv: &[&str]) -> TokenArgs {
        T::try_parse_from(std::iter::once("t").chain(argv.iter().copied()))
            .map(|t| t.args)
            .unwrap_or_else(|e| panic!("{argv:?}: {e}"))
    }

    #[test]
    fn parses_flags_and_builds_claims() {
        let args = parse(&[
            "--sub",
            "ci",
            "--permissions",
            "read,publish",
            "--sessions",
            "a-*,b",
            "--ttl",
            "2h",
        ]);
        assert_eq!(args.ttl, Duration::from_secs(7200));
        let mut config = Config::default();
        config.auth.jwt_issuer = "me".into();
        let c = claims(&args, &config, 1000).expect("claims");
        assert_eq!(c["sub"], "ci");
        assert_eq!(c["exp"], 8200);
        assert_eq!(c["permissions"], serde_json::json!(["read", "publish"]));
        assert_eq!(c["sessions"], serde_json::json!(["a-*", "b"]));
        assert_eq!(c["iss"], "me");
        assert!(c.get("aud").is_none());
        let bad = parse(&["--sub", "x", "--permissions", "root"]);
        assert!(claims(&bad, &config, 0).is_err());
        assert!(T::try_parse_from(["t", "--sub", "x", "--ttl", "soon"]).is_err());
        // No flag can carry the secret.
        assert!(T::try_parse_from(["t", "--sub", "x", "--jwt-secret", "s"]).is_err());
    }

    #[test]
    fn signature_verifies() {
        let token = mint_hs256(b"secret", &serde_json::json!({"sub":"a"})).expect("mint");
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"secret").expect("key");
        mac.update(format!("{}.{}", parts[0], parts[1]).as_bytes());
        let sig = b64.decode(parts[2]).expect("b64");
        assert!(mac.verify_slice(&sig).is_ok());
        assert_eq!(b64.decode(parts[1]).expect("b64"), br#"{"sub":"a"}"#);
    }
}
