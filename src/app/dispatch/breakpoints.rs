//! `set_breakpoint`, `remove_breakpoint`, `resume`, `step`: conditional breakpoints.
//!
//! Not offered yet (SPEC §7 is the next step). Until then each of these messages gets an
//! `error` with the stable code `unsupported`, documented in docs/PROTOCOL.md, and the
//! `connection` message lists no `breakpoints` capability, so a client can tell before
//! it asks.

use super::Call;
use crate::protocol::ErrorCode;

pub fn refuse(call: &mut Call<'_>) {
    call.error(
        ErrorCode::Unsupported,
        "breakpoints are not available in this version of the server",
    );
}
