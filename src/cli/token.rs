//! `tracecast token`: mints a development HS256 JWT the server will accept.
//!
//! The secret comes from the configuration (file or `TRACECAST_JWT_SECRET`), never from a
//! flag, so it does not end up in shell history or `ps`. The issuer and audience are taken
//! from the same configuration so the token passes the server's checks as minted. Signing
//! goes through [`crate::auth::jwt::mint`], the same code the server verifies against, so
//! the claim names and encoding cannot drift apart.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;

use super::duration::parse_duration;
use super::CliError;
use crate::auth::{jwt, Claims, Permissions};
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

/// Builds the claims; `now` in seconds since the epoch.
pub fn claims(args: &TokenArgs, config: &Config, now: i64) -> Result<Claims, CliError> {
    if args.sub.is_empty() {
        return Err(CliError::Usage("--sub must not be empty".into()));
    }
    let permissions = Permissions::from_names(args.permissions.iter().map(String::as_str))
        .map_err(|p| {
            CliError::Usage(format!(
                "--permissions: {p:?} is not one of {}",
                PERMISSIONS.join(", ")
            ))
        })?;
    if args.sessions.iter().any(|s| s.is_empty()) {
        return Err(CliError::Usage("--sessions: empty pattern".into()));
    }
    let ttl = i64::try_from(args.ttl.as_secs().max(1)).unwrap_or(i64::MAX);
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    Ok(Claims {
        sub: Some(args.sub.clone()),
        iss: opt(&config.auth.jwt_issuer),
        aud: opt(&config.auth.jwt_audience).into_iter().collect(),
        exp: Some(now.saturating_add(ttl)),
        nbf: None,
        iat: Some(now),
        permissions,
        sessions: Some(args.sessions.clone()),
    })
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
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let claims = claims(args, &config, now)?;
    println!("{}", jwt::mint(config.auth.jwt_secret.as_bytes(), &claims));
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
        assert_eq!(c.sub.as_deref(), Some("ci"));
        assert_eq!(c.exp, Some(8200));
        assert_eq!(c.iat, Some(1000));
        assert_eq!(c.permissions, Permissions::READ | Permissions::PUBLISH);
        assert_eq!(c.sessions, Some(vec!["a-*".to_owned(), "b".to_owned()]));
        assert_eq!(c.iss.as_deref(), Some("me"));
        assert!(c.aud.is_empty());
        let bad = parse(&["--sub", "x", "--permissions", "root"]);
        assert!(claims(&bad, &config, 0).is_err());
        assert!(T::try_parse_from(["t", "--sub", "x", "--ttl", "soon"]).is_err());
        // No flag can carry the secret.
        assert!(T::try_parse_from(["t", "--sub", "x", "--jwt-secret", "s"]).is_err());
    }

    #[test]
    fn minted_token_verifies_with_the_servers_rules() {
        let secret = b"a-test-secret-that-is-32-bytes!!";
        let args = parse(&["--sub", "ci", "--permissions", "publish", "--ttl", "90s"]);
        let mut config = Config::default();
        config.auth.jwt_issuer = "iss-1".into();
        config.auth.jwt_audience = "aud-1".into();
        let token = jwt::mint(secret, &claims(&args, &config, 1000).expect("claims"));
        let validation = jwt::Validation::from_config(&config.auth);
        let got =
            jwt::verify(&token, &jwt::JwtKey::new(secret), &validation, 1010).expect("verifies");
        assert_eq!(got.sub.as_deref(), Some("ci"));
        assert_eq!(got.permissions, Permissions::PUBLISH);
        assert_eq!(got.aud, vec!["aud-1".to_owned()]);
        assert_eq!(got.exp, Some(1090));
    }
}
