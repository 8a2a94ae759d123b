//! The plain-HTTP side of the port: health, metrics, sessions, history and ingest.
//!
//! Each route is a function from a parsed request (and body) to a [`Response`]; the loop
//! writes it. Credentials are checked here with the same [`crate::auth::Authenticator`]
//! the WebSocket side uses, so both doors follow one rule.

use super::commit::{accepted_response, store_failure_response, CommitFailure, Committed};
use super::{App, Origin};
use crate::auth::Principal;
use crate::http::{query_param, Method, Request, Response};
use crate::hub::ConnId;
use crate::protocol::json::{write_json_str, write_u64};
use crate::protocol::server::write_session_summary;
use crate::store::MAX_SESSIONS_PAGE;

const JSON: &str = "application/json";

/// What the connection does with a routed request.
pub enum Routed {
    Respond(Response),
    /// The answer is held until the batch is durable (`fsync = "always"`).
    Held,
}

pub fn route(req: &Request, body: &mut [u8], app: &mut App, conn: ConnId) -> Routed {
    app.metrics.http_requests += 1;
    let path = req.path.as_str();
    let r = match (path, &req.method) {
        ("/healthz", Method::Get | Method::Head) => healthz(app),
        ("/metrics", Method::Get) => match principal(req, app) {
            Ok(p) if p.is_admin() => {
                Response::new(200).body("text/plain; version=0.0.4", app.render_metrics())
            }
            Ok(_) => Response::error(403, "metrics need the admin permission"),
            Err(r) => r,
        },
        ("/v1/sessions", Method::Get) => match principal(req, app) {
            Ok(p) => sessions(req, &p, app),
            Err(r) => r,
        },
        ("/v1/history", Method::Get) => match principal(req, app) {
            Ok(p) => history(req, &p, app),
            Err(r) => r,
        },
        ("/v1/events", Method::Post) => match principal(req, app) {
            Ok(p) if p.can_publish() => {
                let keep_alive = req.keep_alive() && !app.shutting_down;
                return ingest(body, app, conn, keep_alive);
            }
            Ok(_) => Response::error(403, "this credential may not publish"),
            Err(r) => r,
        },
        // The viewer and its files (`super::assets`), embedded in the binary.
        (p, Method::Get) if super::assets::find(p).is_some() => match super::assets::find(p) {
            Some(a) => Response::new(200)
                .header("Cache-Control", "no-cache")
                .body(a.content_type, a.body),
            None => Response::error(404, "no such endpoint"),
        },
        ("/healthz" | "/metrics" | "/v1/sessions" | "/v1/history" | "/", _) => {
            Response::error(405, "method not allowed").header("Allow", "GET")
        }
        ("/v1/events", _) => Response::error(405, "method not allowed").header("Allow", "POST"),
        ("/ws", _) => Response::error(426, "this endpoint needs a WebSocket upgrade")
            .header("Upgrade", "websocket"),
        _ => Response::error(404, "no such endpoint"),
    };
    Routed::Respond(r)
}

/// The caller's principal, or the 401 to send. With auth disabled everyone is admin.
pub fn principal(req: &Request, app: &mut App) -> Result<Principal, Response> {
    if !app.auth.is_enabled() {
        return Ok(Principal::anonymous_full());
    }
    let unauthorized = |m: &str| Response::error(401, m).header("WWW-Authenticate", "Bearer");
    let Some(cred) = app.auth.extract(&req.headers, &req.query) else {
        app.metrics.auth_failures += 1;
        return Err(unauthorized("credentials required"));
    };
    app.auth
        .authenticate(&cred, crate::auth::unix_now_secs())
        .map_err(|e| {
            app.metrics.auth_failures += 1;
            tracing::info!(reason = e.code(), "HTTP authentication failed");
            unauthorized(e.message())
        })
}

/// `200 {"status":"ok",…}`, or `503 {"status":"failing","reason":…}` while storage is
/// failing (a load balancer then stops sending producers here).
fn healthz(app: &App) -> Response {
    let fault = app.storage_fault();
    let mut b = Vec::with_capacity(96);
    b.extend_from_slice(b"{\"status\":");
    match &fault {
        None => b.extend_from_slice(b"\"ok\""),
        Some(reason) => {
            b.extend_from_slice(b"\"failing\",\"reason\":");
            write_json_str(&mut b, reason);
        }
    }
    b.extend_from_slice(b",\"uptimeMs\":");
    write_u64(&mut b, app.epoch.elapsed().as_millis() as u64);
    b.extend_from_slice(b",\"nextSeq\":");
    write_u64(&mut b, app.store.next_seq());
    b.extend_from_slice(b",\"shuttingDown\":");
    b.extend_from_slice(if app.shutting_down { b"true" } else { b"false" });
    // Cluster mode: where this node stands against the stream. Catching up is 503, so a
    // load balancer sends producers and subscribers elsewhere until the node is current.
    let cluster = app.sequencer_status();
    if let Some(c) = cluster {
        b.extend_from_slice(b",\"cluster\":{\"connected\":");
        b.extend_from_slice(if c.connected { b"true" } else { b"false" });
        b.extend_from_slice(b",\"catching_up\":");
        b.extend_from_slice(if c.catching_up { b"true" } else { b"false" });
        b.extend_from_slice(b",\"lag\":");
        write_u64(&mut b, c.lag);
        b.extend_from_slice(b",\"streamSeq\":");
        write_u64(&mut b, c.stream_seq);
        b.push(b'}');
    }
    b.push(b'}');
    let catching_up = cluster.is_some_and(|c| c.catching_up);
    if catching_up && fault.is_none() {
        // `"status":"ok"` becomes `"catching_up"`: same shape, a different word.
        let ok = b"{\"status\":\"ok\"";
        if b.starts_with(ok) {
            b.splice(..ok.len(), b"{\"status\":\"catching_up\"".iter().copied());
        }
    }
    let status = if fault.is_some() || catching_up {
        503
    } else {
        200
    };
    Response::new(status).body(JSON, b)
}

/// `GET /v1/sessions?limit=N&after=CURSOR` → `{"sessions":[…],"next":"CURSOR"}`, one page
/// in creation order, `next` absent on the last page. A page looks at `limit` sessions
/// and keeps those the credential may read, so its cost is the page's whatever the
/// credential; a page may therefore hold fewer than `limit` (even none) and still have
/// a `next`. Bounded by `MAX_SESSIONS_PAGE`, so no answer grows with the session count.
fn sessions(req: &Request, p: &Principal, app: &App) -> Response {
    let q = &req.query;
    let limit = match query_param(q, "limit") {
        None => app.config.sessions_page_limit,
        Some(v) => match v.parse::<u64>() {
            Ok(n) if n >= 1 => usize::try_from(n).unwrap_or(MAX_SESSIONS_PAGE),
            _ => {
                return Response::error(
                    400,
                    "query parameter \"limit\": not an integer of at least 1",
                )
            }
        },
    }
    .min(MAX_SESSIONS_PAGE);
    let after = match query_param(q, "after") {
        None => 0,
        Some(v) => match v.parse::<u64>() {
            Ok(n) => n,
            Err(_) => {
                return Response::error(
                    400,
                    "query parameter \"after\": not a cursor (the \"next\" of a previous page)",
                )
            }
        },
    };
    let page = app
        .store
        .sessions_page(after, limit, &|id: &str| p.can_read(id));
    let mut b = Vec::with_capacity(64 + page.sessions.len() * 128);
    b.extend_from_slice(b"{\"sessions\":[");
    for (i, s) in page.sessions.iter().enumerate() {
        if i > 0 {
            b.push(b',');
        }
        write_session_summary(&mut b, s);
    }
    b.push(b']');
    if let Some(next) = page.next {
        // A string: the cursor is opaque to clients (and a u64 may exceed what a
        // JavaScript number holds exactly).
        b.extend_from_slice(b",\"next\":\"");
        write_u64(&mut b, next);
        b.push(b'"');
    }
    b.push(b'}');
    Response::new(200).body(JSON, b)
}

/// `GET /v1/history?sessionId=&start=&end=&limit=&offset=` → NDJSON, one event a line.
fn history(req: &Request, p: &Principal, app: &App) -> Response {
    let q = &req.query;
    let Some(session) = query_param(q, "sessionId") else {
        return Response::error(400, "query parameter \"sessionId\" is required");
    };
    if !p.can_read(&session) {
        return Response::error(403, "this credential may not read that session");
    }
    let num = |name: &str, default: i64| -> Result<i64, Response> {
        match query_param(q, name) {
            None => Ok(default),
            Some(v) => v.parse::<i64>().map_err(|_| {
                Response::error(400, &format!("query parameter \"{name}\": not an integer"))
            }),
        }
    };
    let cap = app.config.historical_data_limit as i64;
    let (start, end, limit, offset) = match (
        num("start", 0),
        num("end", i64::MAX),
        num("limit", cap),
        num("offset", 0),
    ) {
        (Ok(s), Ok(e), Ok(l), Ok(o)) => (s, e, l.clamp(0, cap) as usize, o.max(0) as usize),
        (Err(r), ..) | (_, Err(r), ..) | (_, _, Err(r), _) | (.., Err(r)) => return r,
    };
    if let Some(src) = query_param(q, "filter").filter(|f| !f.trim().is_empty()) {
        return filtered_history(app, &session, (start, end), offset, limit, &src);
    }
    match app.store.time_range(&session, start, end, offset, limit) {
        Ok(events) => {
            let mut b = Vec::with_capacity(events.iter().map(|e| e.json.len() + 1).sum());
            for e in &events {
                b.extend_from_slice(&e.json);
                b.push(b'\n');
            }
            let total = app.store.count_time_range(&session, start, end);
            Response::new(200)
                .header("X-Total-Count", &total.to_string())
                .body("application/x-ndjson", b)
        }
        Err(e) => Response::error(500, &format!("history read failed: {e}")),
    }
}

/// `GET /v1/history?…&filter=CONDITION`: only matching events, `offset` and `limit`
/// counting matches, `X-Total-Count` the matches in the whole range (the range is read
/// in runs of [`crate::app::jobs::SCAN_STEP`] events, never all at once).
fn filtered_history(
    app: &App,
    session: &str,
    (start, end): (i64, i64),
    offset: usize,
    limit: usize,
    src: &str,
) -> Response {
    let cond = match crate::condition::Condition::compile(src) {
        Ok(c) => c,
        Err(e) => {
            return Response::error(400, &format!("query parameter \"filter\": {e}"));
        }
    };
    let step = crate::app::jobs::SCAN_STEP;
    let (mut b, mut total, mut at, mut skip) = (Vec::new(), 0u64, 0, offset);
    loop {
        let run = match app.store.time_range(session, start, end, at, step) {
            Ok(r) => r,
            Err(e) => return Response::error(500, &format!("history read failed: {e}")),
        };
        at += run.len();
        for e in run.iter().filter(|e| cond.matches(&e.json)) {
            total += 1;
            if skip > 0 {
                skip -= 1;
            } else if total as usize <= offset + limit {
                b.extend_from_slice(&e.json);
                b.push(b'\n');
            }
        }
        if run.len() < step {
            break;
        }
    }
    Response::new(200)
        .header("X-Total-Count", &total.to_string())
        .body("application/x-ndjson", b)
}

fn ingest(body: &mut [u8], app: &mut App, conn: ConnId, keep_alive: bool) -> Routed {
    let mut buffers = std::mem::take(&mut app.buffers);
    app.ingest.now_ms = app.now_ms;
    let validated = crate::ingest::with_body(body, &mut buffers, |parsed| {
        let values = parsed?;
        let r = crate::ingest::validate(values, &mut app.ingest);
        if r.is_err() {
            app.rejected(values.len());
        }
        r
    });
    app.buffers = buffers;
    let result = match validated {
        Ok(pending) => app.commit(pending, Origin::Http { conn, keep_alive }),
        Err(e) => Committed::Failed(CommitFailure::Invalid(e)),
    };
    match result {
        Committed::Acked {
            held: false,
            appended,
        } => Routed::Respond(accepted_response(&appended)),
        Committed::Acked { held: true, .. } | Committed::InFlight => Routed::Held,
        Committed::Failed(CommitFailure::Invalid(e)) => {
            // The protocol's error shape, plus where the batch went wrong.
            let mut b = Vec::with_capacity(128);
            b.extend_from_slice(b"{\"error\":{\"code\":\"invalid_request\",\"message\":");
            write_json_str(&mut b, &e.to_string());
            b.extend_from_slice(b",\"index\":");
            write_u64(&mut b, e.index as u64);
            if let Some(field) = e.field {
                b.extend_from_slice(b",\"field\":");
                write_json_str(&mut b, field);
            }
            b.extend_from_slice(b"}}");
            Routed::Respond(Response::new(400).body(JSON, b))
        }
        Committed::Failed(CommitFailure::Store(e)) => Routed::Respond(store_failure_response(&e)),
    }
}
