//! The checks that run on the merged, typed configuration before the server sees it:
//! ranges, limits that keep timers and buffer sizes from overflowing, and consistency
//! between keys (water marks, history sizes, auth that somebody can pass). Each failure
//! names the offending key and says why, so start-up stops with a message a user can act on.

use super::error::ConfigError;
use super::schema::{Config, FsyncPolicy, PERMISSIONS};

impl Config {
    /// Ranges and consistency between keys. Returns the first problem found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |key: &str, reason: String| -> Result<(), ConfigError> {
            Err(ConfigError::Invalid {
                key: key.to_string(),
                reason,
            })
        };
        if self.bind.parse::<std::net::IpAddr>().is_err() {
            return fail(
                "bind",
                format!(
                    "{:?} is not an IP address (e.g. 127.0.0.1, 0.0.0.0, ::)",
                    self.bind
                ),
            );
        }
        let echo = self.debug.echo_path.as_str();
        if !echo.is_empty() && (!echo.starts_with('/') || echo == "/" || echo == "/ws") {
            return fail(
                "debug.echo_path",
                format!(
                    "{echo:?} must be empty (off) or a path starting with '/' other than / and /ws"
                ),
            );
        }
        if self.storage.persist && self.data_dir.trim().is_empty() {
            return fail(
                "data_dir",
                "must not be empty while storage.persist = true".into(),
            );
        }
        if self.otlp.session_resource_attribute.trim().is_empty() {
            return fail(
                "otlp.session_resource_attribute",
                "must name a resource attribute (default service.instance.id)".into(),
            );
        }
        if self.otlp.max_body_bytes == 0 {
            return fail("otlp.max_body_bytes", "must be at least 1 (got 0)".into());
        }
        let at_least_one: [(&str, u64); 19] = [
            ("max_connections", self.max_connections as u64),
            ("http_header_timeout_ms", self.http_header_timeout_ms),
            ("http_body_timeout_ms", self.http_body_timeout_ms),
            ("max_http_connections", self.max_http_connections as u64),
            (
                "max_subscriptions_per_connection",
                self.max_subscriptions_per_connection as u64,
            ),
            ("heartbeat_interval_ms", self.heartbeat_interval_ms),
            ("batch_size", self.batch_size as u64),
            ("max_message_size", self.max_message_size as u64),
            ("max_event_bytes", self.max_event_bytes as u64),
            ("historical_data_limit", self.historical_data_limit as u64),
            ("history_chunk_size", self.history_chunk_size as u64),
            ("sessions_page_limit", self.sessions_page_limit as u64),
            ("auth.auth_timeout_ms", self.auth.auth_timeout_ms),
            ("rate_limit.window_ms", self.rate_limit.window_ms),
            (
                "backpressure.high_water_mark",
                self.backpressure.high_water_mark as u64,
            ),
            (
                "backpressure.max_queue_size",
                self.backpressure.max_queue_size as u64,
            ),
            (
                "storage.memory_events_per_session",
                self.storage.memory_events_per_session as u64,
            ),
            ("storage.checkpoint_every", self.storage.checkpoint_every),
            // No "0 = unlimited": an unbounded session map is what this key prevents.
            ("storage.max_sessions", self.storage.max_sessions as u64),
        ];
        for (key, value) in at_least_one {
            if value == 0 {
                return fail(key, "must be at least 1 (got 0)".into());
            }
        }
        // Timers are added to the clock and sizes to buffer lengths: absurd values must
        // stop start-up here rather than overflow later.
        const YEAR_MS: u64 = 365 * 24 * 3600 * 1000;
        let durations: [(&str, u64); 8] = [
            ("heartbeat_interval_ms", self.heartbeat_interval_ms),
            ("http_header_timeout_ms", self.http_header_timeout_ms),
            ("http_body_timeout_ms", self.http_body_timeout_ms),
            ("stale_timeout_ms", self.stale_timeout_ms()),
            ("batch_timeout_ms", self.batch_timeout_ms),
            ("auth.auth_timeout_ms", self.auth.auth_timeout_ms),
            ("rate_limit.window_ms", self.rate_limit.window_ms),
            ("storage.fsync_interval_ms", self.storage.fsync_interval_ms),
        ];
        for (key, value) in durations {
            if value > YEAR_MS {
                return fail(
                    key,
                    format!("must be at most {YEAR_MS} (one year), got {value}"),
                );
            }
        }
        const GIB: u64 = 1 << 30;
        if self.max_message_size as u64 > GIB {
            return fail(
                "max_message_size",
                format!(
                    "must be at most {GIB} (1 GiB), got {}",
                    self.max_message_size
                ),
            );
        }
        if self.rate_limit.enabled {
            for (key, value) in [
                ("rate_limit.max_messages", self.rate_limit.max_messages),
                (
                    "rate_limit.max_bytes_per_window",
                    self.rate_limit.max_bytes_per_window,
                ),
                (
                    "rate_limit.abuse_multiplier",
                    self.rate_limit.abuse_multiplier,
                ),
            ] {
                if value == 0 {
                    return fail(
                        key,
                        "must be at least 1 while rate_limit.enabled = true (got 0)".into(),
                    );
                }
            }
        }
        if let Some(stale) = self.stale_timeout_ms {
            if stale < self.heartbeat_interval_ms {
                return fail(
                    "stale_timeout_ms",
                    format!(
                        "{stale} is shorter than heartbeat_interval_ms ({}); a healthy client would be closed",
                        self.heartbeat_interval_ms
                    ),
                );
            }
        }
        if !(1..=9).contains(&self.compression_level) {
            return fail(
                "compression_level",
                format!("{} is not between 1 and 9", self.compression_level),
            );
        }
        if self.max_event_bytes > self.max_message_size {
            return fail(
                "max_event_bytes",
                format!(
                    "{} exceeds max_message_size ({}); such an event could never arrive",
                    self.max_event_bytes, self.max_message_size
                ),
            );
        }
        if self.history_chunk_size > self.historical_data_limit {
            return fail(
                "history_chunk_size",
                format!(
                    "{} exceeds historical_data_limit ({})",
                    self.history_chunk_size, self.historical_data_limit
                ),
            );
        }
        if self.sessions_page_limit > Config::MAX_SESSIONS_PAGE {
            return fail(
                "sessions_page_limit",
                format!(
                    "{} exceeds the largest page, {}",
                    self.sessions_page_limit,
                    Config::MAX_SESSIONS_PAGE
                ),
            );
        }
        if self.backpressure.low_water_mark >= self.backpressure.high_water_mark {
            return fail(
                "backpressure.low_water_mark",
                format!(
                    "{} must be below backpressure.high_water_mark ({})",
                    self.backpressure.low_water_mark, self.backpressure.high_water_mark
                ),
            );
        }
        const MIB: u64 = 1 << 20;
        if self.storage.segment_bytes < MIB {
            return fail(
                "storage.segment_bytes",
                format!(
                    "{} is below the minimum of 1 MiB ({MIB})",
                    self.storage.segment_bytes
                ),
            );
        }
        if self.storage.retention_bytes < self.storage.segment_bytes {
            return fail(
                "storage.retention_bytes",
                format!(
                    "{} is below storage.segment_bytes ({}); retention works in whole segments",
                    self.storage.retention_bytes, self.storage.segment_bytes
                ),
            );
        }
        if self.storage.retention_ms == 0 {
            return fail("storage.retention_ms", "must be at least 1 (got 0)".into());
        }
        if self.storage.fsync == FsyncPolicy::Interval && self.storage.fsync_interval_ms == 0 {
            return fail(
                "storage.fsync_interval_ms",
                "must be at least 1 while storage.fsync = \"interval\" (got 0)".into(),
            );
        }
        if self.log.level.trim().is_empty() {
            return fail("log.level", "must not be empty (e.g. \"info\")".into());
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return fail(
                "log.level",
                format!("{:?} is not a tracing filter: {e}", self.log.level),
            );
        }
        self.validate_auth()
    }

    fn validate_auth(&self) -> Result<(), ConfigError> {
        let fail = |key: String, reason: String| -> Result<(), ConfigError> {
            Err(ConfigError::Invalid { key, reason })
        };
        let auth = &self.auth;
        let header_ok = !auth.api_key_header.is_empty()
            && auth
                .api_key_header
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !header_ok {
            return fail(
                "auth.api_key_header".into(),
                format!("{:?} is not an HTTP header name", auth.api_key_header),
            );
        }
        if auth.enabled && auth.jwt_secret.is_empty() && auth.api_keys.is_empty() {
            return fail(
                "auth.enabled".into(),
                "auth is on but there is neither auth.jwt_secret (or TRACECAST_JWT_SECRET) \
                 nor any [[auth.api_keys]]: nobody could connect"
                    .into(),
            );
        }
        for (i, key) in auth.api_keys.iter().enumerate() {
            let at = |field: &str| format!("auth.api_keys[{i}]{field}");
            match (&key.key, &key.key_sha256) {
                (Some(_), Some(_)) | (None, None) => {
                    return fail(at(""), "needs exactly one of key or key_sha256".into());
                }
                (Some(k), None) if k.is_empty() => {
                    return fail(at(".key"), "must not be empty".into());
                }
                (None, Some(h)) if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    return fail(at(".key_sha256"), "must be 64 hexadecimal digits".into());
                }
                _ => {}
            }
            if key.permissions.is_empty() {
                return fail(
                    at(".permissions"),
                    "must list at least one permission".into(),
                );
            }
            if let Some(p) = key
                .permissions
                .iter()
                .find(|p| !PERMISSIONS.contains(&p.as_str()))
            {
                return fail(
                    at(".permissions"),
                    format!("{p:?} is not one of {}", PERMISSIONS.join(", ")),
                );
            }
            if key.sessions.is_empty() || key.sessions.iter().any(|s| s.is_empty()) {
                return fail(
                    at(".sessions"),
                    "must list at least one non-empty session pattern (\"*\" for all)".into(),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::tests::err;

    #[test]
    fn messages_name_the_key_and_the_reason() {
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case] = &[
            (
                "compression_level = 12\n",
                &[],
                "config: invalid compression_level: 12 is not between 1 and 9",
            ),
            (
                "[backpressure]\nlow_water_mark = 70000\n",
                &[],
                "config: invalid backpressure.low_water_mark: 70000 must be below",
            ),
            (
                "batch_size = 0\n",
                &[],
                "config: invalid batch_size: must be at least 1",
            ),
            (
                "history_chunk_size = 20000\n",
                &[],
                "config: invalid history_chunk_size: 20000 exceeds historical_data_limit",
            ),
            (
                "max_event_bytes = 2000000\n",
                &[],
                "config: invalid max_event_bytes",
            ),
            (
                "heartbeat_interval_ms = 0\n",
                &[],
                "config: invalid heartbeat_interval_ms",
            ),
            (
                "stale_timeout_ms = 10\n",
                &[],
                "config: invalid stale_timeout_ms",
            ),
            (
                "heartbeat_interval_ms = 99999999999999\n",
                &[],
                "config: invalid heartbeat_interval_ms",
            ),
            (
                "max_message_size = 99999999999\n",
                &[],
                "config: invalid max_message_size",
            ),
            (
                "[storage]\nsegment_bytes = 1000\n",
                &[],
                "config: invalid storage.segment_bytes",
            ),
            (
                "sessions_page_limit = 0\n",
                &[],
                "config: invalid sessions_page_limit: must be at least 1",
            ),
            (
                "sessions_page_limit = 20000\n",
                &[],
                "config: invalid sessions_page_limit: 20000 exceeds the largest page, 10000",
            ),
            (
                "[storage]\nmax_sessions = 0\n",
                &[],
                "config: invalid storage.max_sessions: must be at least 1",
            ),
            (
                "[rate_limit]\nwindow_ms = 0\n",
                &[],
                "config: invalid rate_limit.window_ms",
            ),
            (
                "[auth]\nenabled = true\n",
                &[],
                "config: invalid auth.enabled",
            ),
            (
                "[[auth.api_keys]]\nkey = \"a\"\nkey_sha256 = \"b\"\n",
                &[],
                "config: invalid auth.api_keys[0]: needs exactly one",
            ),
            (
                "[[auth.api_keys]]\npermissions = [\"read\"]\n",
                &[],
                "config: invalid auth.api_keys[0]: needs exactly one",
            ),
            (
                "[[auth.api_keys]]\nkey = \"a\"\npermissions = [\"root\"]\n",
                &[],
                "config: invalid auth.api_keys[0].permissions",
            ),
            ("bind = \"example.com\"\n", &[], "config: invalid bind"),
            (
                "[log]\nlevel = \"info,[[\"\n",
                &[],
                "config: invalid log.level",
            ),
        ];
        for (text, vars, want) in cases {
            let got = err(text, vars);
            assert!(
                got.contains(want),
                "for {text:?} {vars:?}\n got: {got}\nwant: {want}"
            );
        }
    }
}
