//! `tracecast token` end to end: a JWT minted by the CLI (secret from
//! `TRACECAST_JWT_SECRET`, issuer and audience from the same config file) is accepted by a
//! server sharing that secret, with the permissions and session scope asked for; one
//! minted with another secret is refused with 401; no secret means no token.

mod common;
use common::*;
use serde_json::json;
use std::path::Path;
use std::process::{Command, Output};

const SECRET: &str = "cli-e2e-secret-0123456789-abcdefgh";

fn server_toml() -> String {
    "[storage]\npersist = false\n[auth]\nenabled = true\n\
     jwt_issuer = \"tracecast-cli\"\njwt_audience = \"tracecast-e2e\"\n"
        .to_string()
}

/// Runs `tracecast token ARGS --config FILE` with only the given secret in the environment.
fn cli_token(config: &Path, secret: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tracecast"));
    cmd.arg("token")
        .args(args)
        .arg("--config")
        .arg(config)
        .env_clear();
    if let Some(s) = secret {
        cmd.env("TRACECAST_JWT_SECRET", s);
    }
    cmd.output().expect("run tracecast token")
}

fn minted(config: &Path, secret: &str, args: &[&str]) -> String {
    let out = cli_token(config, Some(secret), args);
    assert!(
        out.status.success(),
        "tracecast token failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string()
}

#[test]
fn cli_token_is_accepted_by_a_server_with_the_same_secret() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let s = TestServer::start_in(
        tmp.path(),
        &server_toml(),
        &[("TRACECAST_JWT_SECRET", SECRET)],
    );
    let config = tmp.path().join("tracecast.toml");
    let tok = minted(
        &config,
        SECRET,
        &[
            "--sub",
            "ci",
            "--permissions",
            "read,publish",
            "--sessions",
            "a-*",
            "--ttl",
            "5m",
        ],
    );
    assert_eq!(tok.split('.').count(), 3, "{tok}");
    let bearer = format!("Bearer {tok}");

    let mut c = Client::connect_with(&s.ws_url(), &[("Authorization", &bearer)]);
    c.subscribe("a-1");
    let body = json!([event("a-1", "x", "X", 1)]).to_string();
    let (st, _, _) = s.http(
        "POST",
        "/v1/events",
        &[("Authorization", &bearer)],
        body.as_bytes(),
    );
    assert_eq!(st, 202);
    assert_eq!(c.recv_events(1).0[0]["sessionId"], "a-1");
    c.send(json!({"type": "subscribe_session", "sessionId": "b-1"}));
    assert_eq!(c.recv_type("error")["error"]["code"], "forbidden");

    let mut i = s.client();
    i.send(json!({"type": "auth", "token": tok}));
    let a = i.recv_type("auth_response");
    assert_eq!(a["authenticated"], true, "{a}");
    assert_eq!(a["subject"], "ci");
    assert_eq!(a["permissions"], json!(["read", "publish"]));
    let exp = a["expiresAt"].as_i64().expect("expiresAt") / 1000;
    assert!(
        (exp - unix_now() - 300).abs() <= 40,
        "exp {exp} ≈ now + 5m (+ leeway)"
    );
}

#[test]
fn cli_token_with_the_wrong_secret_gets_401() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let s = TestServer::start_in(
        tmp.path(),
        &server_toml(),
        &[("TRACECAST_JWT_SECRET", SECRET)],
    );
    let config = tmp.path().join("tracecast.toml");
    let tok = minted(
        &config,
        "a-different-secret-0123456789-xyz",
        &["--sub", "ci", "--permissions", "admin"],
    );
    let bearer = format!("Bearer {tok}");
    let (st, head, _) = raw_upgrade(&s.addr, "/ws", &[("Authorization", &bearer)]);
    assert_eq!(st, 401, "{head}");
    let (st, _, _) = s.http("GET", "/v1/sessions", &[("Authorization", &bearer)], b"");
    assert_eq!(st, 401);
}

#[test]
fn cli_token_without_a_secret_fails_and_prints_no_token() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = tmp.path().join("tracecast.toml");
    std::fs::write(&config, server_toml()).expect("write config");
    let out = cli_token(&config, None, &["--sub", "ci"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("TRACECAST_JWT_SECRET"));
    // No flag carries the secret.
    let out = cli_token(
        &config,
        Some(SECRET),
        &["--sub", "ci", "--jwt-secret", SECRET],
    );
    assert!(!out.status.success());
}
