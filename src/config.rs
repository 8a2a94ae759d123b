//! Server configuration: the TOML file's shape (SPEC §9) with its defaults.
//!
//! Layering (file < `TRACECAST_*` environment < command-line flags) and validation live
//! here too, so the server only ever sees a [`Config`] that is whole and consistent.
//! (loading in progress)

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
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
    /// Per-IP connection limit; 0 = none.
    pub max_connections_per_ip: usize,
    /// New connections accepted per second over the whole server; 0 = none.
    pub accept_rate_per_sec: u32,
    /// `SO_REUSEPORT` on the listener.
    pub reuse_port: bool,
    /// Pin the loop thread to this core.
    pub pin_core: Option<usize>,
    pub log: LogConfig,
    pub auth: AuthConfig,
    pub rate_limit: RateLimitConfig,
    pub backpressure: BackpressureConfig,
    pub storage: StorageConfig,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `tracing` filter, e.g. `info` or `tracecast=debug`. `RUST_LOG` overrides.
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
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

#[derive(Debug, Clone, Deserialize, PartialEq)]
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

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    pub enabled: bool,
    pub window_ms: u64,
    pub max_messages: u64,
    pub max_bytes_per_window: u64,
    /// A client over its limit this many times in one window is closed with 1008.
    pub abuse_multiplier: u64,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BackpressurePolicy {
    DropOldest,
    DropNewest,
    Disconnect,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BackpressureConfig {
    pub high_water_mark: usize,
    pub low_water_mark: usize,
    pub max_queue_size: usize,
    pub policy: BackpressurePolicy,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    Always,
    Interval,
    Never,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
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
            max_connections_per_ip: 0,
            accept_rate_per_sec: 0,
            reuse_port: false,
            pin_core: None,
            log: LogConfig::default(),
            auth: AuthConfig::default(),
            rate_limit: RateLimitConfig::default(),
            backpressure: BackpressureConfig::default(),
            storage: StorageConfig::default(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { level: "info".into(), format: LogFormat::Pretty }
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
        }
    }
}

impl Config {
    /// The stale timeout in effect.
    pub fn stale_timeout_ms(&self) -> u64 {
        self.stale_timeout_ms.unwrap_or(self.heartbeat_interval_ms * 2)
    }
}
