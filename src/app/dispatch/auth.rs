//! `auth`, and the two deadlines a credential brings: authenticate in time, and stop
//! when the token expires.
//!
//! A refreshed credential may read less than the one it replaces, so re-authenticating
//! ends the subscriptions and jobs the new one does not allow, each announced.

use super::Call;
use crate::protocol::server as enc;
use crate::protocol::ErrorCode;
use crate::ws::{close_code, close_frame};
use std::sync::Arc;

pub fn on_auth(token: &str, call: &mut Call<'_>) {
    match call
        .app
        .auth
        .authenticate(token, crate::auth::unix_now_secs())
    {
        Ok(p) => {
            let perms: Vec<&str> = p.permissions.names().collect();
            call.app.scratch.clear();
            enc::encode_auth_response(
                &mut call.app.scratch,
                &enc::AuthOutcome {
                    authenticated: true,
                    subject: p.subject.as_deref(),
                    permissions: Some(&perms),
                    expires_at: p.expires_at.map(|s| s.saturating_mul(1000)),
                    message: None,
                },
                call.rid.as_ref(),
            );
            call.send_scratch();
            if let Some(exp) = p.expires_at {
                call.app.schedule_expiry(call.id, exp);
            }
            call.client.jobs.retain(|j| p.can_read(j.session()));
            let dropped: Vec<Arc<str>> = call
                .client
                .subs
                .iter()
                .filter(|s| !p.can_read(s))
                .cloned()
                .collect();
            for s in &dropped {
                call.app.hub.unsubscribe(s, call.id);
                call.client.subs.remove(s);
                call.app.scratch.clear();
                enc::encode_unsubscribed(&mut call.app.scratch, s, call.rid.as_ref());
                call.send_scratch();
            }
            call.client.principal = Some(p);
        }
        Err(e) => {
            call.app.metrics.auth_failures += 1;
            tracing::info!(
                conn = call.id.key,
                reason = e.code(),
                "in-band authentication failed"
            );
            call.app.scratch.clear();
            enc::encode_auth_response(
                &mut call.app.scratch,
                &enc::AuthOutcome {
                    authenticated: false,
                    message: Some(e.message()),
                    ..Default::default()
                },
                call.rid.as_ref(),
            );
            call.send_scratch();
            call.out
                .close_with(close_frame(close_code::POLICY, e.message()));
        }
    }
}

/// The auth deadline fired: a client still unauthenticated is told and closed.
pub fn on_auth_deadline(call: &mut Call<'_>) {
    if call.client.principal.is_some() || call.out.closing {
        return;
    }
    call.app.metrics.auth_failures += 1;
    call.error(ErrorCode::NotAuthenticated, "authentication timed out");
    call.out
        .close_with(close_frame(close_code::POLICY, "authentication timed out"));
}

/// The credential's expiry fired: closed unless it was refreshed meanwhile.
pub fn on_auth_expiry(call: &mut Call<'_>) {
    let expired = call
        .client
        .principal
        .as_ref()
        .is_some_and(|p| p.is_expired(crate::auth::unix_now_secs()));
    if expired && !call.out.closing {
        call.out
            .close_with(close_frame(close_code::POLICY, "token expired"));
    }
}
