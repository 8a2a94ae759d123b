//! `publish`: the WebSocket ingest front end.
//!
//! The events are still simd-json tape from the message parse; they are validated into
//! pending events and handed to the one commit every front end shares, which answers
//! with `publish_ack` (held until durable under `fsync = "always"`) or an error.

use super::Call;
use crate::app::commit::Committed;
use crate::app::Origin;
use crate::ingest::Events;
use crate::protocol::ErrorCode;

pub fn on_publish(events: &Events<'_>, call: &mut Call<'_>) {
    if !call
        .client
        .principal
        .as_ref()
        .is_some_and(|p| p.can_publish())
    {
        call.error(ErrorCode::Forbidden, "this credential may not publish");
        return;
    }
    let app = &mut *call.app;
    app.ingest.now_ms = app.now_ms;
    let pending = match crate::ingest::validate(events, &mut app.ingest) {
        Ok(p) => p,
        Err(e) => {
            app.rejected(events.len());
            let code = if e.kind == crate::ingest::IngestErrorKind::TooLarge {
                ErrorCode::MessageTooLarge
            } else {
                ErrorCode::InvalidRequest
            };
            call.error(code, &e.to_string());
            return;
        }
    };
    let origin = Origin::Ws {
        conn: call.id,
        rid: call.rid.clone(),
        deflate: call.client.deflate,
    };
    match call.app.commit(pending, origin) {
        Committed::Acked { .. } => {
            // The `publish_ack` itself is queued by the commit (held while not durable).
            call.client.messages_out += 1;
            call.app.metrics.messages_sent += 1;
        }
        Committed::InFlight => {}
        Committed::Failed(e) => {
            let (code, msg) = e.to_protocol();
            call.error(code, &msg);
        }
    }
}
