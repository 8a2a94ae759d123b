//! The configuration's shape (SPEC §9): the typed sections serde fills, their defaults,
//! and the key table ([`SCHEMA`]) saying what each dotted key holds. The layers check every
//! file and environment value against that table before serde runs, so a wrong value is
//! reported with its key instead of serde's message. The sections holding secrets write
//! their `Debug` by hand so a secret never reaches a log line.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub bind: String,
    pub port: u16,
    pub data_dir: String,
    pub max_connections: usize,
    pub heartbeat_interval_ms: u64,
    /// Default: 2 × `heartbeat_interval_ms`.
    pub stale_timeout_ms: Option<u64>,
    pub batch_size: usize,
    pub batch_timeout_ms: u64,
    pub max_message_size: usize,
    pub max_event_bytes: usize,
    pub compression_enabled: bool,
    pub compression_level: u8,
    pub compression_min_bytes: usize,
    pub binary_protocol: bool,
    pub historical_data_limit: usize,
    pub history_chunk_size: usize,
    /// Sessions per `GET /v1/sessions` page when the request names no `limit` (at most
    /// [`Config::MAX_SESSIONS_PAGE`], which also clamps a larger `limit`).
    pub sessions_page_limit: usize,
    /// Per-IP connection limit; 0 = none.
    pub max_connections_per_ip: usize,
    /// New connections accepted per second over the whole server; 0 = none.
    pub accept_rate_per_sec: u32,
    /// A request head must be complete this long after the connection (or the previous
    /// request) started; else 408 and close.
    pub http_header_timeout_ms: u64,
    /// A request body must be complete this long after its head; else 408 and close.
    pub http_body_timeout_ms: u64,
    /// Connections still in the HTTP phase (not upgraded) at once; past it, 503.
    pub max_http_connections: usize,
    /// Sessions one WebSocket connection may subscribe to at once.
    pub max_subscriptions_per_connection: usize,
    /// `SO_REUSEPORT` on the listener.
    pub reuse_port: bool,
    /// Pin the loop thread to this core.
    pub pin_core: Option<usize>,
    pub log: LogConfig,
    pub debug: DebugConfig,
    pub auth: AuthConfig,
    pub rate_limit: RateLimitConfig,
    pub backpressure: BackpressureConfig,
    pub storage: StorageConfig,
    pub cluster: ClusterConfig,
    pub otlp: OtlpConfig,
}

/// `[cluster]` (SPEC §11): with `nats_url` set, this node shares a NATS JetStream stream
/// with the other nodes (docs/CLUSTER.md). Empty `nats_url`: standalone.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// e.g. `nats://127.0.0.1:4222`; empty: standalone.
    pub nats_url: String,
    /// The JetStream stream every node shares (created when missing).
    pub stream: String,
    /// Batches are published on `<subject_prefix>.events`; the stream holds `<prefix>.>`.
    pub subject_prefix: String,
    /// This node's name in message ids and logs; empty: hostname + port.
    pub node_id: String,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            nats_url: String::new(),
            stream: "TRACECAST".into(),
            subject_prefix: "tracecast".into(),
            node_id: String::new(),
        }
    }
}

/// `[otlp]`: OpenTelemetry ingest (SPEC §12). `POST /v1/traces` is always served on the
/// main port; `port` adds a listener that serves only OTLP (4318 by convention).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpConfig {
    /// A second listener (on `bind`) serving only `POST /v1/traces`; unset: none. `0`
    /// picks a free port (tests).
    pub port: Option<u16>,
    /// The resource attribute naming the session when no span attribute does.
    pub session_resource_attribute: String,
    /// Largest request body, measured after decompression.
    pub max_body_bytes: usize,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        OtlpConfig {
            port: None,
            session_resource_attribute: "service.instance.id".into(),
            max_body_bytes: 20 * 1024 * 1024,
        }
    }
}

/// `[debug]`: tools for testing the server itself, never for production.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DebugConfig {
    /// When set (e.g. `"/echo"`), WebSocket connections upgraded on this path echo every
    /// message back through the same codec and limits as `/ws`: for the Autobahn
    /// conformance suite. Empty: off.
    pub echo_path: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `tracing` filter, e.g. `info` or `tracecast=debug`. `RUST_LOG` overrides.
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// `Debug` is written by hand so the secret never reaches a log line.
#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub enabled: bool,
    pub jwt_secret: String,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    pub api_key_header: String,
    pub auth_timeout_ms: u64,
    /// Seconds of clock skew accepted on `exp` / `nbf`.
    pub leeway_secs: u64,
    pub api_keys: Vec<ApiKeyConfig>,
}

/// `Debug` is written by hand so the key never reaches a log line.
#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub key_sha256: Option<String>,
    #[serde(default = "default_key_permissions")]
    pub permissions: Vec<String>,
    #[serde(default = "default_sessions")]
    pub sessions: Vec<String>,
    /// Shown as the `subject` of connections authenticated with this key.
    #[serde(default)]
    pub name: Option<String>,
}

fn default_key_permissions() -> Vec<String> {
    vec!["read".into()]
}
fn default_sessions() -> Vec<String> {
    vec!["*".into()]
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    pub enabled: bool,
    pub window_ms: u64,
    pub max_messages: u64,
    pub max_bytes_per_window: u64,
    /// A client over its limit this many times in one window is closed with 1008.
    pub abuse_multiplier: u64,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BackpressurePolicy {
    DropOldest,
    DropNewest,
    Disconnect,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BackpressureConfig {
    pub high_water_mark: usize,
    pub low_water_mark: usize,
    pub max_queue_size: usize,
    pub policy: BackpressurePolicy,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    Always,
    Interval,
    Never,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// `false`: keep events in a bounded memory ring only (nothing on disk).
    pub persist: bool,
    pub fsync: FsyncPolicy,
    pub fsync_interval_ms: u64,
    pub retention_bytes: u64,
    pub retention_ms: u64,
    pub segment_bytes: u64,
    /// Events per session kept by the memory store.
    pub memory_events_per_session: usize,
    /// On a corrupt record in the middle of a segment: move the rest of that segment
    /// aside and go on, instead of refusing to start.
    pub quarantine_corrupt: bool,
    /// Time-travel checkpoint interval, in events per session.
    pub checkpoint_every: u64,
    /// Bytes of sealed, synced segments left in the OS page cache; older ones are
    /// dropped from it (the files stay).
    pub page_cache_bytes: u64,
    /// Sessions the store keeps at once. A batch that would start one more is refused
    /// whole; retention forgets a session once it deleted all of its events.
    pub max_sessions: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: "127.0.0.1".into(),
            port: 8080,
            data_dir: "./tracecast-data".into(),
            max_connections: 1000,
            heartbeat_interval_ms: 30_000,
            stale_timeout_ms: None,
            batch_size: 50,
            batch_timeout_ms: 0,
            max_message_size: 1_048_576,
            max_event_bytes: 65_536,
            compression_enabled: true,
            compression_level: 6,
            compression_min_bytes: 1024,
            binary_protocol: true,
            historical_data_limit: 10_000,
            history_chunk_size: 100,
            sessions_page_limit: 1000,
            max_connections_per_ip: 0,
            accept_rate_per_sec: 0,
            http_header_timeout_ms: 10_000,
            http_body_timeout_ms: 30_000,
            max_http_connections: 512,
            max_subscriptions_per_connection: 1_000,
            reuse_port: false,
            pin_core: None,
            log: LogConfig::default(),
            debug: DebugConfig::default(),
            auth: AuthConfig::default(),
            rate_limit: RateLimitConfig::default(),
            backpressure: BackpressureConfig::default(),
            storage: StorageConfig::default(),
            cluster: ClusterConfig::default(),
            otlp: OtlpConfig::default(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Pretty,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            enabled: false,
            jwt_secret: String::new(),
            jwt_issuer: String::new(),
            jwt_audience: String::new(),
            api_key_header: "X-API-Key".into(),
            auth_timeout_ms: 5000,
            leeway_secs: 30,
            api_keys: Vec::new(),
        }
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            enabled: true,
            window_ms: 60_000,
            max_messages: 1000,
            max_bytes_per_window: 10_485_760,
            abuse_multiplier: 10,
        }
    }
}

impl Default for BackpressureConfig {
    fn default() -> Self {
        BackpressureConfig {
            high_water_mark: 65_536,
            low_water_mark: 16_384,
            max_queue_size: 10_000,
            policy: BackpressurePolicy::DropOldest,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            persist: true,
            fsync: FsyncPolicy::Interval,
            fsync_interval_ms: 100,
            retention_bytes: 10_737_418_240,
            retention_ms: 604_800_000,
            segment_bytes: 134_217_728,
            memory_events_per_session: 10_000,
            quarantine_corrupt: false,
            checkpoint_every: 1000,
            page_cache_bytes: 1 << 30,
            max_sessions: 1_000_000,
        }
    }
}

impl Config {
    /// The largest `GET /v1/sessions` page, whatever a request's `limit` or
    /// `sessions_page_limit` ask: one page is one response, built in one turn of the loop.
    pub const MAX_SESSIONS_PAGE: usize = 10_000;

    /// The stale timeout in effect.
    pub fn stale_timeout_ms(&self) -> u64 {
        self.stale_timeout_ms
            .unwrap_or(self.heartbeat_interval_ms.saturating_mul(2))
    }
}

/// Top-level keys that are tables.
pub(super) const SECTIONS: &[&str] = &[
    "log",
    "debug",
    "auth",
    "rate_limit",
    "backpressure",
    "storage",
    "cluster",
    "otlp",
];

/// What a key holds, so file and environment values are checked (and environment strings
/// converted) before serde runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Str,
    /// A string never echoed back in a message.
    Secret,
    Bool,
    Port,
    U8,
    U32,
    U64,
    Usize,
    /// An optional integer: absent means "use the derived default".
    OptU64,
    OptUsize,
    Enum(&'static [&'static str]),
    /// `[[auth.api_keys]]`: an array of tables.
    ApiKeys,
}

impl Kind {
    /// The phrase used after "is not" in error messages.
    pub fn expected(self) -> String {
        match self {
            Kind::Str | Kind::Secret => "a string".into(),
            Kind::Bool => "a boolean (true or false)".into(),
            Kind::Port => "a valid port (0-65535)".into(),
            Kind::U8 => "an integer 0-255".into(),
            Kind::U32 => format!("an integer 0-{}", u32::MAX),
            Kind::U64 | Kind::OptU64 => format!("an integer 0-{}", i64::MAX),
            Kind::Usize | Kind::OptUsize => format!("an integer 0-{}", usize_max()),
            Kind::Enum(names) => format!("one of {}", names.join(" | ")),
            Kind::ApiKeys => {
                "an array of tables {key | key_sha256, permissions, sessions, name}".into()
            }
        }
    }
}

fn usize_max() -> i64 {
    i64::try_from(usize::MAX).unwrap_or(i64::MAX)
}

/// Every key of the file, by dotted path. The single source of truth for unknown-key
/// checks, the environment mapping and docs/CONFIG.md (a test keeps it equal to the
/// serialized [`Config::default`]).
pub const SCHEMA: &[(&str, Kind)] = &[
    ("bind", Kind::Str),
    ("port", Kind::Port),
    ("data_dir", Kind::Str),
    ("max_connections", Kind::Usize),
    ("heartbeat_interval_ms", Kind::U64),
    ("stale_timeout_ms", Kind::OptU64),
    ("batch_size", Kind::Usize),
    ("batch_timeout_ms", Kind::U64),
    ("max_message_size", Kind::Usize),
    ("max_event_bytes", Kind::Usize),
    ("compression_enabled", Kind::Bool),
    ("compression_level", Kind::U8),
    ("compression_min_bytes", Kind::Usize),
    ("binary_protocol", Kind::Bool),
    ("historical_data_limit", Kind::Usize),
    ("history_chunk_size", Kind::Usize),
    ("sessions_page_limit", Kind::Usize),
    ("max_connections_per_ip", Kind::Usize),
    ("accept_rate_per_sec", Kind::U32),
    ("http_header_timeout_ms", Kind::U64),
    ("http_body_timeout_ms", Kind::U64),
    ("max_http_connections", Kind::Usize),
    ("max_subscriptions_per_connection", Kind::Usize),
    ("reuse_port", Kind::Bool),
    ("pin_core", Kind::OptUsize),
    ("log.level", Kind::Str),
    ("debug.echo_path", Kind::Str),
    ("log.format", Kind::Enum(&["pretty", "json"])),
    ("auth.enabled", Kind::Bool),
    ("auth.jwt_secret", Kind::Secret),
    ("auth.jwt_issuer", Kind::Str),
    ("auth.jwt_audience", Kind::Str),
    ("auth.api_key_header", Kind::Str),
    ("auth.auth_timeout_ms", Kind::U64),
    ("auth.leeway_secs", Kind::U64),
    ("auth.api_keys", Kind::ApiKeys),
    ("rate_limit.enabled", Kind::Bool),
    ("rate_limit.window_ms", Kind::U64),
    ("rate_limit.max_messages", Kind::U64),
    ("rate_limit.max_bytes_per_window", Kind::U64),
    ("rate_limit.abuse_multiplier", Kind::U64),
    ("backpressure.high_water_mark", Kind::Usize),
    ("backpressure.low_water_mark", Kind::Usize),
    ("backpressure.max_queue_size", Kind::Usize),
    (
        "backpressure.policy",
        Kind::Enum(&["drop_oldest", "drop_newest", "disconnect"]),
    ),
    ("storage.persist", Kind::Bool),
    (
        "storage.fsync",
        Kind::Enum(&["always", "interval", "never"]),
    ),
    ("storage.fsync_interval_ms", Kind::U64),
    ("storage.retention_bytes", Kind::U64),
    ("storage.retention_ms", Kind::U64),
    ("storage.segment_bytes", Kind::U64),
    ("storage.memory_events_per_session", Kind::Usize),
    ("storage.quarantine_corrupt", Kind::Bool),
    ("storage.checkpoint_every", Kind::U64),
    ("storage.page_cache_bytes", Kind::U64),
    ("storage.max_sessions", Kind::Usize),
    ("cluster.nats_url", Kind::Str),
    ("cluster.stream", Kind::Str),
    ("cluster.subject_prefix", Kind::Str),
    ("cluster.node_id", Kind::Str),
    ("otlp.port", Kind::Port),
    ("otlp.session_resource_attribute", Kind::Str),
    ("otlp.max_body_bytes", Kind::Usize),
];

/// Keys of one `[[auth.api_keys]]` entry.
pub(super) const API_KEY_FIELDS: &[&str] =
    &["key", "key_sha256", "permissions", "sessions", "name"];

/// Permissions a token or an API key may carry (SPEC §8).
pub const PERMISSIONS: &[&str] = &["read", "publish", "admin"];

pub(super) fn kind_of(path: &str) -> Option<Kind> {
    SCHEMA.iter().find(|(p, _)| *p == path).map(|&(_, k)| k)
}

/// Checks one value against its key's kind; the error is the "expected" phrase.
pub(super) fn check_value(kind: Kind, value: &toml::Value) -> Result<(), String> {
    let int_max = |max: i64| match value {
        toml::Value::Integer(n) if (0..=max).contains(n) => Ok(()),
        _ => Err(kind.expected()),
    };
    match kind {
        Kind::Str | Kind::Secret => match value {
            toml::Value::String(_) => Ok(()),
            _ => Err(kind.expected()),
        },
        Kind::Bool => match value {
            toml::Value::Boolean(_) => Ok(()),
            _ => Err(kind.expected()),
        },
        Kind::Port => int_max(i64::from(u16::MAX)),
        Kind::U8 => int_max(i64::from(u8::MAX)),
        Kind::U32 => int_max(i64::from(u32::MAX)),
        Kind::U64 | Kind::OptU64 => int_max(i64::MAX),
        Kind::Usize | Kind::OptUsize => int_max(usize_max()),
        Kind::Enum(names) => match value {
            toml::Value::String(s) if names.contains(&s.as_str()) => Ok(()),
            _ => Err(kind.expected()),
        },
        Kind::ApiKeys => match value {
            toml::Value::Array(items) if items.iter().all(|i| i.is_table()) => Ok(()),
            _ => Err(kind.expected()),
        },
    }
}

pub(super) const REDACTED: &str = "<redacted>";

pub(super) fn redact(secret: &str) -> &'static str {
    if secret.is_empty() {
        ""
    } else {
        REDACTED
    }
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("enabled", &self.enabled)
            .field("jwt_secret", &redact(&self.jwt_secret))
            .field("jwt_issuer", &self.jwt_issuer)
            .field("jwt_audience", &self.jwt_audience)
            .field("api_key_header", &self.api_key_header)
            .field("auth_timeout_ms", &self.auth_timeout_ms)
            .field("leeway_secs", &self.leeway_secs)
            .field("api_keys", &self.api_keys)
            .finish()
    }
}

impl fmt::Debug for ApiKeyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The hash is redacted too: a short key is cheap to brute-force from its SHA-256.
        f.debug_struct("ApiKeyConfig")
            .field("key", &self.key.as_deref().map(redact))
            .field("key_sha256", &self.key_sha256.as_deref().map(redact))
            .field("permissions", &self.permissions)
            .field("sessions", &self.sessions)
            .field("name", &self.name)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC_EXAMPLE: &str = include_str!("../../fuzz/corpus/config/spec_example.toml");

    #[test]
    fn defaults_equal_spec_section_9() {
        let c = Config::embedded_default();
        assert_eq!(
            (c.bind.as_str(), c.port, c.data_dir.as_str()),
            ("127.0.0.1", 8080, "./tracecast-data")
        );
        assert_eq!(
            (
                c.max_connections,
                c.heartbeat_interval_ms,
                c.stale_timeout_ms()
            ),
            (1000, 30_000, 60_000)
        );
        assert_eq!(
            (
                c.batch_size,
                c.batch_timeout_ms,
                c.max_message_size,
                c.max_event_bytes
            ),
            (50, 0, 1_048_576, 65_536)
        );
        assert_eq!(
            (
                c.compression_enabled,
                c.compression_level,
                c.compression_min_bytes
            ),
            (true, 6, 1024)
        );
        assert_eq!(
            (
                c.binary_protocol,
                c.historical_data_limit,
                c.history_chunk_size
            ),
            (true, 10_000, 100)
        );
        assert_eq!(
            (
                c.auth.enabled,
                c.auth.api_key_header.as_str(),
                c.auth.auth_timeout_ms
            ),
            (false, "X-API-Key", 5000)
        );
        assert_eq!(
            (
                c.rate_limit.window_ms,
                c.rate_limit.max_messages,
                c.rate_limit.max_bytes_per_window
            ),
            (60_000, 1000, 10_485_760)
        );
        let b = &c.backpressure;
        assert_eq!(
            (
                b.high_water_mark,
                b.low_water_mark,
                b.max_queue_size,
                b.policy
            ),
            (65_536, 16_384, 10_000, BackpressurePolicy::DropOldest)
        );
        let s = &c.storage;
        assert_eq!(
            (
                s.fsync,
                s.fsync_interval_ms,
                s.retention_bytes,
                s.retention_ms,
                s.segment_bytes
            ),
            (
                FsyncPolicy::Interval,
                100,
                10_737_418_240,
                604_800_000,
                134_217_728
            )
        );
        c.validate().expect("defaults are valid");
        // The SPEC's example file (with its api key) loads and differs only there.
        let from_spec = Config::parse_toml(SPEC_EXAMPLE).expect("spec example parses");
        let mut expected = Config::default();
        expected.auth.api_keys = from_spec.auth.api_keys.clone();
        assert_eq!(from_spec, expected);
    }

    #[test]
    fn schema_matches_the_struct() {
        let c = Config {
            stale_timeout_ms: Some(1),
            pin_core: Some(1),
            otlp: OtlpConfig {
                port: Some(1),
                ..OtlpConfig::default()
            },
            ..Config::default()
        };
        let table = toml::Table::try_from(&c).expect("serializes");
        let mut paths = Vec::new();
        for (k, v) in &table {
            match v {
                toml::Value::Table(t) => paths.extend(t.keys().map(|s| format!("{k}.{s}"))),
                _ => paths.push(k.clone()),
            }
        }
        paths.sort();
        let mut schema: Vec<String> = SCHEMA.iter().map(|(p, _)| p.to_string()).collect();
        schema.sort();
        assert_eq!(paths, schema);
        // Each kind accepts the default value of its key.
        for (k, v) in &table {
            match v {
                toml::Value::Table(t) if SECTIONS.contains(&k.as_str()) => {
                    for (s, v) in t {
                        let kind = kind_of(&format!("{k}.{s}")).expect("known");
                        assert_eq!(check_value(kind, v), Ok(()), "{k}.{s}");
                    }
                }
                _ => assert_eq!(check_value(kind_of(k).expect("known"), v), Ok(()), "{k}"),
            }
        }
    }
}
