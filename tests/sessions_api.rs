//! The session list at scale (SPEC §8, §9): `GET /v1/sessions` in pages with a cursor,
//! `/metrics` counting sessions without listing them, and `storage.max_sessions`
//! refusing new sessions over HTTP and WebSocket — against the real binary and its
//! durable log.

mod common;
use common::*;
use serde_json::{json, Value};
use std::collections::HashSet;

/// Posts one event to each of `ids`, `chunk` events per request.
fn post_sessions(s: &TestServer, ids: &[String], chunk: usize) {
    for part in ids.chunks(chunk) {
        let body: Vec<Value> = part
            .iter()
            .map(|id| json!({"type": "X", "sessionId": id}))
            .collect();
        let (st, v) = s.post_events(&Value::Array(body).to_string());
        assert_eq!(st, 202, "{v}");
    }
}

fn get_json(s: &TestServer, path: &str, headers: &[(&str, &str)]) -> (u16, String, Value) {
    let (st, head, body) = s.http("GET", path, headers, b"");
    let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (st, head, v)
}

/// Follows `next` from the first page; returns every id seen and the pages' sizes.
fn page_through(
    s: &TestServer,
    limit: usize,
    headers: &[(&str, &str)],
) -> (Vec<String>, Vec<usize>) {
    let mut ids = Vec::new();
    let mut sizes = Vec::new();
    let mut path = format!("/v1/sessions?limit={limit}");
    loop {
        let (st, _, v) = get_json(s, &path, headers);
        assert_eq!(st, 200, "{v}");
        let page = v["sessions"].as_array().expect("sessions array");
        sizes.push(page.len());
        ids.extend(
            page.iter()
                .map(|x| x["id"].as_str().expect("id").to_string()),
        );
        match v.get("next") {
            None => return (ids, sizes),
            Some(next) => {
                let cursor = next.as_str().expect("next is a string");
                path = format!("/v1/sessions?limit={limit}&after={}", pct(cursor));
            }
        }
        assert!(sizes.len() <= 1000, "paging does not end");
    }
}

#[test]
fn five_thousand_sessions_page_through_without_repeats_and_metrics_count_them() {
    let s = TestServer::start("");
    let ids: Vec<String> = (0..5000).map(|i| format!("sess-{i:05}")).collect();
    post_sessions(&s, &ids, 1000);

    let (seen, sizes) = page_through(&s, 1000, &[]);
    assert_eq!(
        sizes,
        [1000, 1000, 1000, 1000, 1000],
        "5 full pages, the last without next"
    );
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no session twice");
    assert_eq!(seen, ids, "every session, in creation order");
    assert_eq!(s.metric("tracecast_sessions", &[]), 5000.0);

    // A page carries the summaries; the default limit is sessions_page_limit (1000).
    let (_, _, first) = get_json(&s, "/v1/sessions", &[]);
    assert_eq!(first["sessions"].as_array().map(Vec::len), Some(1000));
    assert_eq!(first["sessions"][0]["id"], "sess-00000");
    assert_eq!(first["sessions"][0]["eventCount"], 1);
    assert!(first["next"].is_string());
    // A larger limit is clamped to 10,000 (all 5000 here, so no next).
    let (st, _, all) = get_json(&s, "/v1/sessions?limit=99999999", &[]);
    assert_eq!(st, 200);
    assert_eq!(all["sessions"].as_array().map(Vec::len), Some(5000));
    assert!(all.get("next").is_none(), "{}", all["next"]);
    // Bad parameters are 400s naming the parameter.
    for (query, name) in [
        ("limit=0", "limit"),
        ("limit=ten", "limit"),
        ("after=x", "after"),
    ] {
        let (st, _, v) = get_json(&s, &format!("/v1/sessions?{query}"), &[]);
        assert_eq!(st, 400, "{query}: {v}");
        let msg = v["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains(&format!("\"{name}\"")), "{query}: {msg}");
    }
    // A cursor past the end is an empty last page.
    let (st, _, v) = get_json(&s, "/v1/sessions?after=18446744073709551615", &[]);
    assert_eq!(st, 200);
    assert_eq!(v, json!({"sessions": []}));
}

#[test]
fn a_credential_pages_only_through_the_sessions_it_may_read() {
    let key = "reader-key-0123456789";
    let admin = "admin-key-0123456789";
    let s = TestServer::start(&format!(
        "[auth]\nenabled = true\njwt_secret = \"0123456789abcdef0123456789abcdef\"\n\
         [[auth.api_keys]]\nkey = {key:?}\npermissions = [\"read\"]\nsessions = [\"b-*\"]\n\
         [[auth.api_keys]]\nkey = {admin:?}\npermissions = [\"admin\"]\n"
    ));
    // 30 readable sessions among 300, clustered at the end of the listing.
    let mut ids: Vec<String> = (0..270).map(|i| format!("a-{i:03}")).collect();
    ids.extend((0..30).map(|i| format!("b-{i:03}")));
    for part in ids.chunks(100) {
        let body: Vec<Value> = part
            .iter()
            .map(|id| json!({"type": "X", "sessionId": id}))
            .collect();
        let (st, _, b) = s.http(
            "POST",
            "/v1/events",
            &[("X-API-Key", admin), ("Content-Type", "application/json")],
            Value::Array(body).to_string().as_bytes(),
        );
        assert_eq!(st, 202, "{}", String::from_utf8_lossy(&b));
    }
    let (seen, sizes) = page_through(&s, 50, &[("X-API-Key", key)]);
    let want: Vec<String> = (0..30).map(|i| format!("b-{i:03}")).collect();
    assert_eq!(seen, want);
    // Six pages of 50 looked at; the first five hold nothing readable yet go on.
    assert_eq!(sizes, [0, 0, 0, 0, 0, 30]);
    let (all, _) = page_through(&s, 1000, &[("X-API-Key", admin)]);
    assert_eq!(all.len(), 300);
}

#[test]
fn max_sessions_refuses_the_next_new_session_with_503_over_http_and_ws() {
    let s = TestServer::start("[storage]\nmax_sessions = 100\n");
    let ids: Vec<String> = (0..100).map(|i| format!("m-{i:03}")).collect();
    post_sessions(&s, &ids, 50);
    assert_eq!(s.metric("tracecast_sessions", &[]), 100.0);
    let next_seq = |s: &TestServer| get_json(s, "/healthz", &[]).2["nextSeq"].as_u64();
    let before = next_seq(&s);

    // The 101st session: the whole batch is refused, the known session's event too.
    let body = json!([
        {"type": "X", "sessionId": "m-000"},
        {"type": "X", "sessionId": "m-100"}
    ]);
    let (st, head, b) = s.http(
        "POST",
        "/v1/events",
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    );
    assert_eq!(st, 503, "{}", String::from_utf8_lossy(&b));
    assert!(
        head.to_ascii_lowercase().contains("retry-after: 10"),
        "{head}"
    );
    let v: Value = serde_json::from_slice(&b).expect("JSON error");
    let msg = v["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("max_sessions (100)"), "{msg}");
    assert_eq!(next_seq(&s), before, "no seq used");
    let (_, _, one) = get_json(&s, "/v1/sessions?limit=1", &[]);
    assert_eq!(one["sessions"][0]["eventCount"], 1, "nothing half-stored");
    assert_eq!(s.metric("tracecast_sessions", &[]), 100.0);

    // Known sessions still take events.
    let (st, v) = s.post_events(&json!({"type": "X", "sessionId": "m-042"}).to_string());
    assert_eq!(st, 202, "{v}");

    // WebSocket publish: an `error` with code storage_error naming the limit.
    let mut c = s.client();
    c.send(json!({
        "type": "publish",
        "event": {"type": "X", "sessionId": "m-101"},
        "requestId": "r1"
    }));
    let e = c.recv_type("error");
    assert_eq!(e["error"]["code"], "storage_error", "{e}");
    assert_eq!(e["requestId"], "r1");
    let msg = e["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("max_sessions (100)"), "{msg}");
    c.send(json!({"type": "publish", "event": {"type": "X", "sessionId": "m-001"}}));
    assert_eq!(c.recv_type("publish_ack")["count"], 1);
}
