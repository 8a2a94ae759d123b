//! `POST /v1/traces`: the OTLP/HTTP front end of ingest (SPEC §12, docs/OTLP.md).
//!
//! The route authenticates as `POST /v1/events` does (Bearer JWT or API key with
//! `publish`), applies the connection's rate limit, decodes and maps the export with the
//! sans-IO [`crate::otlp`] core, and hands the events to [`App::commit`] like every other
//! front end. Every answer is in the request's content type, as the OTLP specification
//! asks: `200` with an `ExportTraceServiceResponse` (with `partial_success` when spans
//! were rejected), `400`/`413`/`415` with a `google.rpc.Status`, `429` with `Retry-After`
//! when throttled, `503` with `Retry-After` when the store refuses for now.

use super::commit::{store_failure_response, CommitFailure, Committed};
use super::routes::{principal, Routed};
use super::{App, Origin};
use crate::http::{Method, Request, Response};
use crate::hub::ConnId;
use crate::limits::{Decision, RateLimiter};
use crate::otlp::{self, response, Format, MapConfig};

/// Answers one request to [`otlp::TRACES_PATH`]. `limiter` is the connection's.
pub fn route(
    req: &Request,
    body: &[u8],
    app: &mut App,
    conn: ConnId,
    limiter: &mut RateLimiter,
) -> Routed {
    app.metrics.http_requests += 1;
    let content_type = req.header("content-type").unwrap_or_default();
    let format = Format::of(content_type);
    // Errors before the format is known are written as OTLP/JSON: readable, and what a
    // client sending neither type most likely reads.
    let answer_format = format.unwrap_or(Format::Json);
    let fail = |status: u16, message: &str| {
        Response::new(status).body(
            answer_format.content_type(),
            response::status(answer_format, response::code_for(status), message),
        )
    };
    if req.method != Method::Post {
        return Routed::Respond(fail(405, "method not allowed").header("Allow", "POST"));
    }
    match principal(req, app) {
        Ok(p) if p.can_publish() => {}
        Ok(_) => return Routed::Respond(fail(403, "this credential may not publish")),
        Err(r) => {
            return Routed::Respond(
                fail(r.status(), "valid credentials required").header("WWW-Authenticate", "Bearer"),
            )
        }
    }
    match limiter.check(app.mono_ms(), body.len() as u64) {
        Decision::Allow => {}
        Decision::Limited { retry_after_ms } => {
            app.metrics.rate_limit_hits += 1;
            return Routed::Respond(throttled(&fail, retry_after_ms));
        }
        Decision::Abuse => {
            app.metrics.rate_limit_hits += 1;
            let window = app.config.rate_limit.window_ms;
            return Routed::Respond(throttled(&fail, window).close());
        }
    }
    let Some(format) = format else {
        let m = format!(
            "Content-Type {content_type:?} is not supported: send application/x-protobuf or application/json"
        );
        return Routed::Respond(fail(415, &m));
    };
    let limit = app.config.otlp.max_body_bytes;
    let request = match otlp::decode(format, req.header("content-encoding"), body, limit) {
        Ok(r) => r,
        Err(e) => {
            app.metrics.events_rejected += 1;
            tracing::debug!(error = %e, "OTLP request refused");
            return Routed::Respond(fail(e.status(), &e.to_string()));
        }
    };
    let ok = |rejected: usize, message: &str| {
        Response::new(200).body(
            format.content_type(),
            response::success(format, rejected, message),
        )
    };
    if otlp::span_count(&request) == 0 {
        // An empty request is a success (the specification's words).
        return Routed::Respond(ok(0, ""));
    }
    app.ingest.now_ms = app.now_ms;
    let cfg = MapConfig {
        session_resource_attribute: app.config.otlp.session_resource_attribute.clone(),
    };
    let mapped = otlp::map_request(&request, &cfg, &mut app.ingest);
    drop(request);
    if mapped.rejected_spans > 0 {
        tracing::debug!(
            rejected = mapped.rejected_spans,
            error = %mapped.error_message,
            "OTLP spans rejected"
        );
        app.rejected(mapped.rejected_spans);
    }
    let answer = ok(mapped.rejected_spans, &mapped.error_message);
    if mapped.events.is_empty() {
        return Routed::Respond(answer);
    }
    let keep_alive = req.keep_alive() && !app.shutting_down;
    let origin = Origin::HttpWith {
        conn,
        keep_alive,
        ok: answer.clone(),
    };
    match app.commit(mapped.events, origin) {
        Committed::Acked { held: false, .. } => Routed::Respond(answer),
        Committed::Acked { held: true, .. } | Committed::InFlight => Routed::Held,
        Committed::Failed(CommitFailure::Store(e)) => {
            let native = store_failure_response(&e);
            let mut r = fail(native.status(), &e.to_string());
            if native.status() == 503 {
                r = r.header("Retry-After", "10");
            }
            Routed::Respond(r)
        }
        // The mapper's events are built by the builder, so the commit never validates.
        Committed::Failed(CommitFailure::Invalid(e)) => Routed::Respond(fail(400, &e.to_string())),
    }
}

/// `429` with `Retry-After` in whole seconds (at least 1), as OTLP clients read it.
fn throttled(fail: &impl Fn(u16, &str) -> Response, retry_after_ms: u64) -> Response {
    let secs = retry_after_ms.div_ceil(1000).max(1);
    fail(
        429,
        &format!("rate limit exceeded; retry after {secs} s (rate_limit)"),
    )
    .header("Retry-After", &secs.to_string())
}
