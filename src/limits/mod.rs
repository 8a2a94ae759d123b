//! Rate and connection limits (SPEC §8), as pure counters with time passed in.
//!
//! - [`TokenBucket`]: the primitive, integer-only, no division unless a request is refused.
//! - [`RateLimiter`]: per connection, one bucket for messages and one for bytes, plus the
//!   abuse rule that turns sustained hammering into a 1008 close.
//! - [`IpLimiter`], [`AcceptRate`]: live connections per IP and accepts per second.
//!
//! Times are milliseconds on any monotonic clock the caller chooses (the server passes
//! milliseconds since start); going backwards is treated as no time passing.

mod bucket;
mod conn;
mod rate;

pub use bucket::TokenBucket;
pub use conn::{AcceptRate, IpLimiter};
pub use rate::{Decision, RateLimiter};
