//! End-to-end authentication and authorization against the real binary (SPEC §8):
//! bad JWTs refused at the upgrade (401, header and `?token=`) and in-band (1008); what an
//! unauthenticated connection may see; session scopes and permissions on both the
//! WebSocket and HTTP doors; API keys (plain, hashed, custom header, in-band); token
//! expiry and refresh; and secrets kept out of the debug log.

mod common;
use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tracecast::auth::jwt::mint;
use tracecast::auth::{Claims, Permissions};

const SECRET: &str = "e2e-secret-0123456789-abcdefghijk";
const OTHER_SECRET: &str = "some-other-secret-0123456789-xyz!";
const ISS: &str = "tracecast-e2e";
const AUD: &str = "tracecast-clients";
const ADMIN_KEY: &str = "admin-key-7f3a9c1e55";

fn auth_toml(extra_auth: &str) -> String {
    format!(
        "[storage]\npersist = false\n[auth]\nenabled = true\njwt_secret = {SECRET:?}\n\
         jwt_issuer = {ISS:?}\njwt_audience = {AUD:?}\n{extra_auth}\n\
         [[auth.api_keys]]\nkey = {ADMIN_KEY:?}\npermissions = [\"admin\"]\nname = \"ops\"\n"
    )
}

fn claims(perms: Permissions, sessions: &[&str], exp_in: i64) -> Claims {
    Claims {
        sub: Some("alice".into()),
        iss: Some(ISS.into()),
        aud: vec![AUD.into()],
        exp: Some(unix_now() + exp_in),
        iat: Some(unix_now()),
        permissions: perms,
        sessions: Some(sessions.iter().map(|s| s.to_string()).collect()),
        ..Claims::default()
    }
}

fn token(perms: Permissions, sessions: &[&str]) -> String {
    mint(SECRET.as_bytes(), &claims(perms, sessions, 600))
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A token signed correctly with SECRET over an arbitrary header.
fn with_header(header: &str) -> String {
    let good = token(Permissions::READ, &["*"]);
    let payload = good.split('.').nth(1).unwrap_or_default().to_string();
    let input = format!("{}.{payload}", b64(header.as_bytes()));
    let sig = {
        use hmac::{KeyInit, Mac};
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(input.as_bytes());
        b64(&mac.finalize().into_bytes())
    };
    format!("{input}.{sig}")
}

/// Every kind of bad credential, named for the failure message.
fn bad_tokens() -> Vec<(&'static str, String)> {
    let good = token(Permissions::READ, &["*"]);
    let parts: Vec<&str> = good.split('.').collect();
    let mut wrong_iss = claims(Permissions::READ, &["*"], 600);
    wrong_iss.iss = Some("someone-else".into());
    let mut wrong_aud = claims(Permissions::READ, &["*"], 600);
    wrong_aud.aud = vec!["other-audience".into()];
    let mut future = claims(Permissions::READ, &["*"], 600);
    future.nbf = Some(unix_now() + 3600);
    vec![
        (
            "alg none",
            format!("{}.{}.", b64(br#"{"alg":"none","typ":"JWT"}"#), parts[1]),
        ),
        ("HS384", with_header(r#"{"alg":"HS384","typ":"JWT"}"#)),
        ("HS512", with_header(r#"{"alg":"HS512","typ":"JWT"}"#)),
        ("RS256", with_header(r#"{"alg":"RS256","typ":"JWT"}"#)),
        (
            "wrong key",
            mint(
                OTHER_SECRET.as_bytes(),
                &claims(Permissions::READ, &["*"], 600),
            ),
        ),
        (
            "expired",
            mint(SECRET.as_bytes(), &claims(Permissions::READ, &["*"], -3600)),
        ),
        ("nbf in the future", mint(SECRET.as_bytes(), &future)),
        (
            "bad base64",
            format!("{}.{}+/=.{}", parts[0], parts[1], parts[2]),
        ),
        ("two parts", format!("{}.{}", parts[0], parts[1])),
        ("four parts", format!("{good}.{}", parts[2])),
        (
            "oversized",
            format!("{}.{}.{}", parts[0], "A".repeat(9000), parts[2]),
        ),
        ("iss mismatch", mint(SECRET.as_bytes(), &wrong_iss)),
        ("aud mismatch", mint(SECRET.as_bytes(), &wrong_aud)),
    ]
}

fn admin() -> [(&'static str, &'static str); 1] {
    [("X-API-Key", ADMIN_KEY)]
}

fn publish(s: &TestServer, events: Value) {
    let (st, _, body) = s.http(
        "POST",
        "/v1/events",
        &[
            ("Content-Type", "application/json"),
            ("X-API-Key", ADMIN_KEY),
        ],
        events.to_string().as_bytes(),
    );
    assert_eq!(st, 202, "{}", String::from_utf8_lossy(&body));
}

#[test]
fn bad_tokens_get_401_at_the_upgrade_in_the_authorization_header() {
    let s = TestServer::start(&auth_toml(""));
    let before = s.metric("tracecast_auth_failures_total", &admin());
    let cases = bad_tokens();
    for (name, tok) in &cases {
        let bearer = format!("Bearer {tok}");
        let (status, head, _) = raw_upgrade(&s.addr, "/ws", &[("Authorization", &bearer)]);
        assert_eq!(status, 401, "{name}: {head}");
        assert!(head.contains("WWW-Authenticate"), "{name}: {head}");
    }
    let good = format!("Bearer {}", token(Permissions::READ, &["*"]));
    let (status, head, _) = raw_upgrade(&s.addr, "/ws", &[("Authorization", &good)]);
    assert_eq!(status, 101, "the control token is accepted: {head}");
    let after = s.metric("tracecast_auth_failures_total", &admin());
    assert!(
        after - before >= cases.len() as f64,
        "auth failures counted: {before} → {after}"
    );
}

#[test]
fn bad_tokens_get_401_at_the_upgrade_in_the_query_string() {
    let s = TestServer::start(&auth_toml(""));
    for (name, tok) in bad_tokens() {
        let path = format!("/ws?token={}", pct(&tok));
        let (status, head, _) = raw_upgrade(&s.addr, &path, &[]);
        assert_eq!(status, 401, "{name}: {head}");
    }
    let path = format!("/ws?token={}", pct(&token(Permissions::READ, &["*"])));
    let (status, head, _) = raw_upgrade(&s.addr, &path, &[]);
    assert_eq!(status, 101, "the control token is accepted: {head}");
}

#[test]
fn bad_tokens_in_band_get_auth_response_false_then_close_1008() {
    let s = TestServer::start(&auth_toml(""));
    for (name, tok) in bad_tokens() {
        let mut c = s.client();
        c.send(json!({"type": "auth", "token": tok}));
        let r = c.recv_type("auth_response");
        assert_eq!(r["authenticated"], false, "{name}: {r}");
        let (code, _) = c.recv_close_reason().expect("close frame");
        assert_eq!(code, 1008, "{name}");
    }
    let mut c = s.client();
    c.send(json!({"type": "auth", "token": token(Permissions::READ, &["*"])}));
    let r = c.recv_type("auth_response");
    assert_eq!(r["authenticated"], true, "{r}");
    assert_eq!(r["subject"], "alice");
}

#[test]
fn before_auth_only_connection_and_errors_then_timeout_closes_1008() {
    let s = TestServer::start(&format!(
        "heartbeat_interval_ms = 100\nstale_timeout_ms = 10000\n{}",
        auth_toml("auth_timeout_ms = 1500")
    ));
    let started = Instant::now();
    let mut c = s.client();
    assert_eq!(c.hello["type"], "connection");
    assert_eq!(
        c.hello["serverInfo"]["auth"]["required"], true,
        "{}",
        c.hello
    );
    let msgs = [
        json!({"type": "subscribe_session", "sessionId": "s-1"}),
        json!({"type": "unsubscribe_session", "sessionId": "s-1"}),
        json!({"type": "filter_agents", "agentIds": ["a"]}),
        json!({"type": "request_history", "sessionId": "s-1", "timeRange": {"start": 0, "end": 1}}),
        json!({"type": "time_travel", "sessionId": "s-1", "timestamp": 1}),
        json!({"type": "heartbeat"}),
        json!({"type": "publish", "event": event("s-1", "a", "X", 1)}),
    ];
    for m in &msgs {
        c.send(m.clone());
        let r = c.recv();
        assert_eq!(r["type"], "error", "{m} → {r}");
        assert_eq!(r["error"]["code"], "not_authenticated", "{m} → {r}");
    }
    // Several heartbeat intervals pass before the deadline: no JSON heartbeat may arrive.
    let mut seen = Vec::new();
    let close = loop {
        match c.ws.read() {
            Ok(tungstenite::Message::Text(t)) => seen.push(t.to_string()),
            Ok(tungstenite::Message::Close(f)) => break f.map(|f| u16::from(f.code)),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("{e}"),
        }
        assert!(started.elapsed() < WAIT, "no close after auth_timeout_ms");
    };
    assert_eq!(close, Some(1008));
    assert!(
        started.elapsed() >= Duration::from_millis(1400),
        "closed after {:?}, before auth_timeout_ms",
        started.elapsed()
    );
    for t in &seen {
        let v: Value = serde_json::from_str(t).expect("json");
        assert_eq!(v["type"], "error", "only errors before auth, got {v}");
    }
}

#[test]
fn scoped_token_reads_its_sessions_and_is_forbidden_elsewhere() {
    let s = TestServer::start(&auth_toml(""));
    publish(
        &s,
        json!([event("s-1", "a", "X", 1), event("other", "a", "X", 2)]),
    );
    let tok = token(Permissions::READ, &["s-*"]);
    let bearer = format!("Bearer {tok}");
    let mut c = Client::connect_with(&s.ws_url(), &[("Authorization", &bearer)]);
    let (info, initial) = c.subscribe("s-1");
    assert_eq!(info["session"]["id"], "s-1");
    assert_eq!(initial["traces"].as_array().map(Vec::len), Some(1));
    publish(&s, json!([event("s-1", "a", "Y", 3)]));
    let (evs, _) = c.recv_events(1);
    assert_eq!(evs[0]["sessionId"], "s-1");

    for m in [
        json!({"type": "subscribe_session", "sessionId": "other", "requestId": "r1"}),
        json!({"type": "request_history", "sessionId": "other", "timeRange": {"start": 0, "end": i64::MAX}, "requestId": "r2"}),
        json!({"type": "time_travel", "sessionId": "other", "timestamp": unix_now() * 1000, "requestId": "r3"}),
    ] {
        c.send(m.clone());
        let r = c.recv_type("error");
        assert_eq!(r["error"]["code"], "forbidden", "{m} → {r}");
        assert_eq!(r["requestId"], m["requestId"]);
    }
    // In scope, the same requests are answered.
    c.send(
        json!({"type": "time_travel", "sessionId": "s-1", "timestamp": unix_now() * 1000 + 60_000}),
    );
    assert_eq!(c.recv_type("time_travel_state")["sessionId"], "s-1");

    let h = [("Authorization", bearer.as_str())];
    let (st, _, _) = s.http("GET", "/v1/history?sessionId=other", &h, b"");
    assert_eq!(st, 403);
    let (st, _, body) = s.http("GET", "/v1/history?sessionId=s-1", &h, b"");
    assert_eq!(st, 200);
    assert_eq!(String::from_utf8_lossy(&body).lines().count(), 2);
    // /v1/sessions lists only what the token may read.
    let (st, _, body) = s.http("GET", "/v1/sessions", &h, b"");
    assert_eq!(st, 200);
    let v: Value = serde_json::from_slice(&body).expect("json");
    let ids: Vec<&str> = v["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .filter_map(|x| x["id"].as_str())
        .collect();
    assert_eq!(ids, ["s-1"]);
}

#[test]
fn read_only_cannot_publish_and_publish_only_can() {
    let s = TestServer::start(&auth_toml(""));
    let ro = format!("Bearer {}", token(Permissions::READ, &["*"]));
    let po = format!("Bearer {}", token(Permissions::PUBLISH, &[]));
    let body = json!([event("s-1", "a", "X", 1)]).to_string();

    let mut c = Client::connect_with(&s.ws_url(), &[("Authorization", &ro)]);
    c.send(json!({"type": "publish", "event": event("s-1", "a", "X", 1)}));
    assert_eq!(c.recv_type("error")["error"]["code"], "forbidden");
    let (st, _, _) = s.http(
        "POST",
        "/v1/events",
        &[("Authorization", &ro)],
        body.as_bytes(),
    );
    assert_eq!(st, 403);

    let mut p = Client::connect_with(&s.ws_url(), &[("Authorization", &po)]);
    p.send(json!({"type": "publish", "event": event("s-1", "a", "X", 1)}));
    let ack = p.recv_type("publish_ack");
    assert_eq!(ack["count"], 1, "{ack}");
    let (st, _, _) = s.http(
        "POST",
        "/v1/events",
        &[("Authorization", &po)],
        body.as_bytes(),
    );
    assert_eq!(st, 202);
    // A publish-only token names no session to read.
    p.send(json!({"type": "subscribe_session", "sessionId": "s-1"}));
    assert_eq!(p.recv_type("error")["error"]["code"], "forbidden");
}

#[test]
fn metrics_need_admin_and_sessions_need_any_valid_credential() {
    let s = TestServer::start(&auth_toml(""));
    let ro = format!("Bearer {}", token(Permissions::READ, &["*"]));
    let adm = format!("Bearer {}", token(Permissions::ADMIN, &[]));
    let (st, _, _) = s.http("GET", "/metrics", &[], b"");
    assert_eq!(st, 401);
    let (st, _, _) = s.http("GET", "/metrics", &[("Authorization", &ro)], b"");
    assert_eq!(st, 403);
    let (st, _, _) = s.http("GET", "/metrics", &[("Authorization", &adm)], b"");
    assert_eq!(st, 200);
    let (st, _, _) = s.http("GET", "/v1/sessions", &[], b"");
    assert_eq!(st, 401);
    let (st, _, _) = s.http("GET", "/v1/sessions", &[("Authorization", &ro)], b"");
    assert_eq!(st, 200);
    // Health stays open to load balancers.
    let (st, _, _) = s.http("GET", "/healthz", &[], b"");
    assert_eq!(st, 200);
}

const PLAIN_KEY: &str = "plain-reader-key-4b1d";
const HASHED_KEY: &str = "hashed-publisher-key-9e0c";

fn keys_toml(header: &str) -> String {
    use sha2::Digest;
    let hex: String = sha2::Sha256::digest(HASHED_KEY.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!(
        "[storage]\npersist = false\n[auth]\nenabled = true\n{header}\n\
         [[auth.api_keys]]\nkey = {PLAIN_KEY:?}\npermissions = [\"read\"]\nsessions = [\"s-*\"]\nname = \"reader\"\n\
         [[auth.api_keys]]\nkey_sha256 = {hex:?}\npermissions = [\"publish\"]\nname = \"publisher\"\n"
    )
}

#[test]
fn api_keys_plain_and_hashed_by_header_and_in_band() {
    let s = TestServer::start(&keys_toml(""));
    let mut r = Client::connect_with(&s.ws_url(), &[("X-API-Key", PLAIN_KEY)]);
    r.subscribe("s-1");
    r.send(json!({"type": "subscribe_session", "sessionId": "other"}));
    assert_eq!(r.recv_type("error")["error"]["code"], "forbidden");

    let mut p = Client::connect_with(&s.ws_url(), &[("X-API-Key", HASHED_KEY)]);
    p.send(json!({"type": "publish", "event": event("s-1", "a", "X", 1)}));
    assert_eq!(p.recv_type("publish_ack")["count"], 1);
    let (evs, _) = r.recv_events(1);
    assert_eq!(evs[0]["sessionId"], "s-1");

    let mut i = s.client();
    i.send(json!({"type": "auth", "token": HASHED_KEY}));
    let a = i.recv_type("auth_response");
    assert_eq!(a["authenticated"], true, "{a}");
    assert_eq!(a["subject"], "publisher");
    assert_eq!(a["permissions"], json!(["publish"]));

    let (st, head, _) = raw_upgrade(&s.addr, "/ws", &[("X-API-Key", "not-a-configured-key")]);
    assert_eq!(st, 401, "{head}");
    let mut bad = s.client();
    bad.send(json!({"type": "auth", "token": "not-a-configured-key"}));
    assert_eq!(bad.recv_type("auth_response")["authenticated"], false);
    assert_eq!(bad.recv_close_reason().map(|c| c.0), Some(1008));
}

#[test]
fn api_key_in_a_custom_header() {
    let s = TestServer::start(&keys_toml("api_key_header = \"X-Trace-Key\""));
    let mut c = Client::connect_with(&s.ws_url(), &[("X-Trace-Key", PLAIN_KEY)]);
    c.subscribe("s-1");
    let (st, head, _) = raw_upgrade(&s.addr, "/ws", &[("x-trace-key", "wrong-key-value")]);
    assert_eq!(st, 401, "{head}");
    // The default header name is not read any more: no credential, so not authenticated.
    let mut d = Client::connect_with(&s.ws_url(), &[("X-API-Key", PLAIN_KEY)]);
    d.send(json!({"type": "subscribe_session", "sessionId": "s-1"}));
    assert_eq!(d.recv_type("error")["error"]["code"], "not_authenticated");
    let (st, _, _) = s.http("GET", "/v1/sessions", &[("X-Trace-Key", PLAIN_KEY)], b"");
    assert_eq!(st, 200);
}

#[test]
fn token_expiry_closes_1008_with_the_reason() {
    let s = TestServer::start(&auth_toml("leeway_secs = 0"));
    let tok = mint(SECRET.as_bytes(), &claims(Permissions::READ, &["*"], 2));
    let bearer = format!("Bearer {tok}");
    let started = Instant::now();
    let mut c = Client::connect_with(&s.ws_url(), &[("Authorization", &bearer)]);
    c.subscribe("s-1");
    let (code, reason) = c.recv_close_reason().expect("close frame");
    assert_eq!(code, 1008);
    assert!(reason.contains("expired"), "{reason:?}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "closed after {took:?}"
    );
}

#[test]
fn refreshing_auth_before_exp_keeps_the_connection_open() {
    let s = TestServer::start(&auth_toml("leeway_secs = 0"));
    let exp = unix_now() + 2;
    let first = mint(SECRET.as_bytes(), &claims(Permissions::READ, &["*"], 2));
    let bearer = format!("Bearer {first}");
    let mut c = Client::connect_with(&s.ws_url(), &[("Authorization", &bearer)]);
    let fresh = mint(SECRET.as_bytes(), &claims(Permissions::READ, &["*"], 600));
    c.send(json!({"type": "auth", "token": fresh}));
    assert_eq!(c.recv_type("auth_response")["authenticated"], true);
    // Wait past the first token's exp (plus the timer's one-second granularity).
    while unix_now() <= exp + 1 {
        if let Some(v) = c.try_recv(Duration::from_millis(200)) {
            assert_ne!(v["type"], "error", "{v}");
        }
    }
    c.send(json!({"type": "heartbeat"}));
    assert_eq!(
        c.recv_type("heartbeat_response")["type"],
        "heartbeat_response"
    );
}

#[test]
fn secrets_never_reach_the_debug_log() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file_secret = "file-secret-should-be-overridden-0001";
    let env_secret = "env-secret-wins-over-the-file-0002xyz";
    let toml = format!(
        "[log]\nlevel = \"debug\"\n[storage]\npersist = false\n[auth]\nenabled = true\n\
         jwt_secret = {file_secret:?}\n[[auth.api_keys]]\nkey = {ADMIN_KEY:?}\npermissions = [\"admin\"]\n"
    );
    let mut s = TestServer::start_in(tmp.path(), &toml, &[("TRACECAST_JWT_SECRET", env_secret)]);
    let c = |exp_in: i64, secret: &str| {
        let mut cl = claims(Permissions::READ | Permissions::PUBLISH, &["*"], exp_in);
        cl.iss = None;
        cl.aud = Vec::new();
        mint(secret.as_bytes(), &cl)
    };
    let good = c(600, env_secret);
    let stale = c(-3600, env_secret);
    let forged = c(600, file_secret);
    let wrong_key = "wrong-api-key-55aa77";
    let mut tokens = vec![good.clone(), stale.clone(), forged.clone()];

    // Successes: header, query, in-band, HTTP.
    let (st, _, _) = raw_upgrade(
        &s.addr,
        "/ws",
        &[("Authorization", &format!("Bearer {good}"))],
    );
    assert_eq!(st, 101);
    let (st, _, _) = raw_upgrade(&s.addr, &format!("/ws?token={good}"), &[]);
    assert_eq!(st, 101);
    let (st, _, _) = raw_upgrade(&s.addr, "/ws", &[("X-API-Key", ADMIN_KEY)]);
    assert_eq!(st, 101);
    let mut ok = s.client();
    ok.send(json!({"type": "auth", "token": good}));
    assert_eq!(ok.recv_type("auth_response")["authenticated"], true);
    let body = json!([event("s-1", "a", "X", 1)]).to_string();
    let (st, _, _) = s.http(
        "POST",
        "/v1/events",
        &[("Authorization", &format!("Bearer {good}"))],
        body.as_bytes(),
    );
    assert_eq!(st, 202);
    let (st, _, _) = s.http("GET", &format!("/v1/sessions?token={good}"), &[], b"");
    assert_eq!(st, 200);
    // Failures: header, query, in-band, HTTP.
    for bad in [&stale, &forged] {
        let (st, _, _) = raw_upgrade(
            &s.addr,
            "/ws",
            &[("Authorization", &format!("Bearer {bad}"))],
        );
        assert_eq!(st, 401);
        let (st, _, _) = raw_upgrade(&s.addr, &format!("/ws?token={bad}"), &[]);
        assert_eq!(st, 401);
        let mut f = s.client();
        f.send(json!({"type": "auth", "token": bad}));
        assert_eq!(f.recv_type("auth_response")["authenticated"], false);
        let (st, _, _) = s.http(
            "GET",
            "/v1/sessions",
            &[("Authorization", &format!("Bearer {bad}"))],
            b"",
        );
        assert_eq!(st, 401);
        let (st, _, _) = s.http("GET", &format!("/v1/sessions?token={bad}"), &[], b"");
        assert_eq!(st, 401);
    }
    let (st, _, _) = raw_upgrade(&s.addr, "/ws", &[("X-API-Key", wrong_key)]);
    assert_eq!(st, 401);
    let mut f = s.client();
    f.send(json!({"type": "auth", "token": wrong_key}));
    assert_eq!(f.recv_type("auth_response")["authenticated"], false);

    s.terminate();
    let logs = s.logs();
    assert!(
        logs.contains("\"level\":\"DEBUG\""),
        "debug level is on:\n{logs}"
    );
    assert!(
        logs.contains("authentication"),
        "failures are logged:\n{logs}"
    );
    let sigs: Vec<String> = tokens
        .iter()
        .filter_map(|t| t.rsplit('.').next().map(str::to_owned))
        .collect();
    tokens.extend(sigs);
    for secret in [file_secret, env_secret, ADMIN_KEY, wrong_key]
        .into_iter()
        .chain(tokens.iter().map(String::as_str))
    {
        assert!(!logs.contains(secret), "the log leaks {secret:?}:\n{logs}");
    }
}

#[test]
fn re_auth_with_a_narrower_scope_drops_subscriptions_it_no_longer_allows() {
    let s = TestServer::start(&auth_toml(""));
    let wide = format!("Bearer {}", token(Permissions::READ, &["*"]));
    let mut c = Client::connect_with(&s.ws_url(), &[("Authorization", &wide)]);
    c.subscribe("other");
    c.subscribe("s-1");
    c.send(json!({"type": "auth", "token": token(Permissions::READ, &["s-*"])}));
    assert_eq!(c.recv_type("auth_response")["authenticated"], true);
    assert_eq!(c.recv_type("unsubscribed")["sessionId"], "other");
    publish(
        &s,
        json!([event("other", "a", "X", 1), event("s-1", "a", "X", 2)]),
    );
    let (evs, _) = c.recv_events(1);
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_eq!(
        evs[0]["sessionId"], "s-1",
        "the narrowed token still got {evs:?}"
    );
    c.send(json!({"type": "heartbeat"}));
    loop {
        let v = c.recv();
        assert_ne!(
            v["type"], "trace_batch",
            "events of a forbidden session: {v}"
        );
        if v["type"] == "heartbeat_response" {
            break;
        }
    }
}

#[test]
fn a_token_expiring_in_the_far_future_is_accepted_and_the_server_stays_up() {
    let s = TestServer::start(&auth_toml(""));
    let far = mint(
        SECRET.as_bytes(),
        &claims(Permissions::READ, &["*"], i64::MAX - unix_now()),
    );
    let mut c = Client::connect_with(&s.ws_url(), &[("Authorization", &format!("Bearer {far}"))]);
    c.subscribe("s-1");
    let mut d = s.client();
    d.send(json!({"type": "auth", "token": far}));
    assert_eq!(d.recv_type("auth_response")["authenticated"], true);
    d.send(json!({"type": "heartbeat"}));
    d.recv_type("heartbeat_response");
    let (st, _, _) = s.http("GET", "/healthz", &[], b"");
    assert_eq!(st, 200);
}
