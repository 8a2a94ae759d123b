//! Server configuration: the TOML file's shape (SPEC §9), its defaults, how the layers
//! combine, and the checks that run before the server sees any of it.
//!
//! Layering, in rising precedence: the TOML file, then `TRACECAST_*` environment
//! variables, then command-line flags ([`Overrides`]). The file and the environment are
//! checked against one key table ([`SCHEMA`]) before serde sees them, so an unknown key or
//! a bad value is reported with its full dotted path, where it came from (file line,
//! variable name, flag) and what was expected — serde's own messages name neither.
//! Secrets (`auth.jwt_secret`, API keys) can come only from the file or the environment:
//! [`Overrides`] has no field for them, and `Debug`/`Display` redact them.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

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
        }
    }
}

impl Config {
    /// The stale timeout in effect.
    pub fn stale_timeout_ms(&self) -> u64 {
        self.stale_timeout_ms
            .unwrap_or(self.heartbeat_interval_ms.saturating_mul(2))
    }
}

/// Prefix of every environment variable the configuration reads.
pub const ENV_PREFIX: &str = "TRACECAST_";

/// `TRACECAST_*` variables that belong to the clients or the command line, not to the
/// server's configuration, and so are not "unknown".
pub const ENV_NOT_CONFIG: &[&str] = &["TRACECAST_TOKEN", "TRACECAST_CONFIG"];

/// Short names kept for the variables people type most; every key also has its
/// systematic name (`TRACECAST_<KEY>`, `TRACECAST_<SECTION>__<KEY>`).
pub const ENV_SHORT_NAMES: &[(&str, &str)] = &[
    ("TRACECAST_JWT_SECRET", "auth.jwt_secret"),
    ("TRACECAST_AUTH_ENABLED", "auth.enabled"),
    ("TRACECAST_LOG_LEVEL", "log.level"),
    ("TRACECAST_LOG_FORMAT", "log.format"),
];

/// Option names of the original Node server, and the keys they now set. Other camelCase
/// spellings of our own keys (`rateLimit.windowMs`) are accepted by the generic
/// camelCase → snake_case rule; this table holds the names whose meaning or unit changed.
pub const NODE_ALIASES: &[(&str, &str)] = &[
    ("host", "bind"),
    ("port", "port"),
    ("dataDir", "data_dir"),
    ("maxConnections", "max_connections"),
    ("heartbeatInterval", "heartbeat_interval_ms"),
    ("staleTimeout", "stale_timeout_ms"),
    ("batchSize", "batch_size"),
    ("batchTimeout", "batch_timeout_ms"),
    ("maxMessageSize", "max_message_size"),
    ("maxEventSize", "max_event_bytes"),
    ("compressionEnabled", "compression_enabled"),
    ("enableCompression", "compression_enabled"),
    ("compressionLevel", "compression_level"),
    ("compressionThreshold", "compression_min_bytes"),
    ("binaryProtocol", "binary_protocol"),
    ("enableBinaryProtocol", "binary_protocol"),
    ("historicalDataLimit", "historical_data_limit"),
    ("historyChunkSize", "history_chunk_size"),
    ("maxConnectionsPerIp", "max_connections_per_ip"),
];

/// Top-level keys that are tables.
const SECTIONS: &[&str] = &["log", "auth", "rate_limit", "backpressure", "storage"];

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
    ("max_connections_per_ip", Kind::Usize),
    ("accept_rate_per_sec", Kind::U32),
    ("reuse_port", Kind::Bool),
    ("pin_core", Kind::OptUsize),
    ("log.level", Kind::Str),
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
];

/// Keys of one `[[auth.api_keys]]` entry.
const API_KEY_FIELDS: &[&str] = &["key", "key_sha256", "permissions", "sessions", "name"];

/// Permissions a token or an API key may carry (SPEC §8).
pub const PERMISSIONS: &[&str] = &["read", "publish", "admin"];

fn kind_of(path: &str) -> Option<Kind> {
    SCHEMA.iter().find(|(p, _)| *p == path).map(|&(_, k)| k)
}

/// Where a value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File { line: Option<usize> },
    Env { var: String },
    Flag { flag: &'static str },
}

/// Everything that can stop the configuration from loading. Messages name the key, the
/// value (secrets excepted) and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    Read { path: PathBuf, reason: String },
    /// The file is not valid TOML.
    Syntax {
        line: Option<usize>,
        message: String,
    },
    /// A key the file may not contain (raw dotted path as written).
    UnknownKey { key: String, line: Option<usize> },
    /// Two spellings (an alias and the key, or two variables) set the same key.
    Duplicate {
        key: String,
        first: String,
        second: String,
    },
    /// A value of the wrong type or out of its type's range.
    BadValue {
        origin: Origin,
        key: String,
        value: String,
        expected: String,
    },
    /// A `TRACECAST_*` variable that maps to no key.
    UnknownEnv { var: String },
    /// A `TRACECAST_*` variable whose value is not UTF-8.
    EnvNotUnicode { var: String },
    /// Values that are each well-typed but out of range or inconsistent together.
    Invalid { key: String, reason: String },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { path, reason } => {
                write!(f, "config: cannot read {}: {reason}", path.display())
            }
            ConfigError::Syntax { line, message } => {
                write!(f, "config: invalid TOML{}: {message}", at_line(*line))
            }
            ConfigError::UnknownKey { key, line } => {
                write!(f, "config: unknown key \"{key}\"{}", at_line(*line))
            }
            ConfigError::Duplicate { key, first, second } => {
                write!(
                    f,
                    "config: {first} and {second} both set \"{key}\"; keep one"
                )
            }
            ConfigError::BadValue {
                origin,
                key,
                value,
                expected,
            } => match origin {
                Origin::File { line } => {
                    write!(
                        f,
                        "config: {key} = {value}{} is not {expected}",
                        at_line(*line)
                    )
                }
                Origin::Env { var } => {
                    write!(f, "{var}: {value} is not {expected} (sets {key})")
                }
                Origin::Flag { flag } => write!(f, "{flag}: {value} is not {expected}"),
            },
            ConfigError::UnknownEnv { var } => write!(
                f,
                "{var}: unknown environment variable (no such config key; \
                 use TRACECAST_<KEY> or TRACECAST_<SECTION>__<KEY>)"
            ),
            ConfigError::EnvNotUnicode { var } => write!(f, "{var}: value is not UTF-8"),
            ConfigError::Invalid { key, reason } => write!(f, "config: invalid {key}: {reason}"),
        }
    }
}

impl std::error::Error for ConfigError {}

fn at_line(line: Option<usize>) -> String {
    line.map(|l| format!(" (line {l})")).unwrap_or_default()
}

/// Command-line overrides: the top layer. It has no field for a secret on purpose.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub bind: Option<String>,
    pub port: Option<u16>,
    pub data_dir: Option<String>,
    pub pin_core: Option<usize>,
    /// Only turns `SO_REUSEPORT` on; absent leaves the lower layers' choice.
    pub reuse_port: bool,
    /// `storage.persist = false`: nothing touches the disk.
    pub ephemeral: bool,
    pub log_format: Option<LogFormat>,
    pub log_level: Option<String>,
}

const REDACTED: &str = "<redacted>";

fn redact(secret: &str) -> &'static str {
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

/// The effective configuration as TOML, secrets redacted.
impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_redacted_toml())
    }
}

/// Raw dotted path (`auth.api_keys[0].key`, as written) → 1-based line of the key.
type LineIndex = HashMap<String, usize>;

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()
        .iter()
        .take(offset)
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn index_lines(text: &str) -> LineIndex {
    fn walk(text: &str, prefix: &str, table: &toml::de::DeTable<'_>, out: &mut LineIndex) {
        for (key, value) in table.iter() {
            let path = join(prefix, key.get_ref());
            out.entry(path.clone())
                .or_insert_with(|| line_of(text, key.span().start));
            walk_value(text, &path, value.get_ref(), out);
        }
    }
    fn walk_value(text: &str, path: &str, value: &toml::de::DeValue<'_>, out: &mut LineIndex) {
        match value {
            toml::de::DeValue::Table(t) => walk(text, path, t, out),
            toml::de::DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk_value(text, &format!("{path}[{i}]"), item.get_ref(), out);
                }
            }
            _ => {}
        }
    }
    let mut out = LineIndex::new();
    if let Ok(doc) = toml::de::DeTable::parse(text) {
        walk(text, "", doc.get_ref(), &mut out);
    }
    out
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn camel_to_snake(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The canonical name of `raw` inside `section` (None: top level), or None when unknown.
fn canonical(section: Option<&str>, raw: &str) -> Option<String> {
    let known = |name: &str| match section {
        None => SECTIONS.contains(&name) || kind_of(name).is_some(),
        Some(sec) => kind_of(&format!("{sec}.{name}")).is_some(),
    };
    if known(raw) {
        return Some(raw.to_string());
    }
    if section.is_none() {
        if let Some(&(_, to)) = NODE_ALIASES.iter().find(|(from, _)| *from == raw) {
            return Some(to.to_string());
        }
    }
    let snake = camel_to_snake(raw);
    (snake != raw && known(&snake)).then_some(snake)
}

/// A value as shown in a message: TOML syntax, or `<redacted>` for a secret.
fn show(kind: Kind, value: &toml::Value) -> String {
    match kind {
        Kind::Secret | Kind::ApiKeys => REDACTED.into(),
        _ => {
            let s = value.to_string();
            if s.len() > 80 {
                format!("{}…", s.chars().take(77).collect::<String>())
            } else {
                s
            }
        }
    }
}

/// Checks one value against its key's kind; the error is the "expected" phrase.
fn check_value(kind: Kind, value: &toml::Value) -> Result<(), String> {
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

/// Normalises and checks the `[[auth.api_keys]]` entries (keys may be camelCase too).
fn normalize_api_keys(
    value: toml::Value,
    raw_path: &str,
    lines: &LineIndex,
    origin: &Origin,
) -> Result<toml::Value, ConfigError> {
    let toml::Value::Array(items) = value else {
        return Ok(value);
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let toml::Value::Table(table) = item else {
            out.push(item);
            continue;
        };
        let mut entry = toml::Table::new();
        for (raw, v) in table {
            let path = format!("{raw_path}[{i}].{raw}");
            let line = lines.get(&path).copied();
            let name = if API_KEY_FIELDS.contains(&raw.as_str()) {
                raw.clone()
            } else {
                let snake = camel_to_snake(&raw);
                if !API_KEY_FIELDS.contains(&snake.as_str()) {
                    return Err(match origin {
                        Origin::File { .. } => ConfigError::UnknownKey { key: path, line },
                        _ => ConfigError::Invalid {
                            key: format!("auth.api_keys[{i}]"),
                            reason: format!("unknown field \"{raw}\""),
                        },
                    });
                }
                snake
            };
            let ok = match name.as_str() {
                "permissions" | "sessions" => v
                    .as_array()
                    .is_some_and(|a| a.iter().all(toml::Value::is_str)),
                _ => v.is_str(),
            };
            if !ok {
                let expected = match name.as_str() {
                    "permissions" | "sessions" => "an array of strings",
                    _ => "a string",
                };
                let origin = match origin {
                    Origin::File { .. } => Origin::File { line },
                    other => other.clone(),
                };
                let shown = if name == "key" || name == "key_sha256" {
                    REDACTED.to_string()
                } else {
                    v.to_string()
                };
                return Err(ConfigError::BadValue {
                    origin,
                    key: format!("auth.api_keys[{i}].{name}"),
                    value: shown,
                    expected: expected.into(),
                });
            }
            if entry.insert(name.clone(), v).is_some() {
                return Err(ConfigError::Duplicate {
                    key: format!("auth.api_keys[{i}].{name}"),
                    first: format!("\"{name}\""),
                    second: format!("\"{raw}\""),
                });
            }
        }
        out.push(toml::Value::Table(entry));
    }
    Ok(toml::Value::Array(out))
}

/// One key and value from a layer, checked and stored into `merged` under its canonical
/// dotted path.
fn put(
    merged: &mut toml::Table,
    path: &str,
    value: toml::Value,
    origin: Origin,
    raw_path: &str,
    lines: &LineIndex,
) -> Result<(), ConfigError> {
    let Some(kind) = kind_of(path) else {
        return Err(ConfigError::UnknownKey {
            key: raw_path.to_string(),
            line: None,
        });
    };
    if let Err(expected) = check_value(kind, &value) {
        return Err(ConfigError::BadValue {
            value: show(kind, &value),
            origin,
            key: path.to_string(),
            expected,
        });
    }
    let value = if kind == Kind::ApiKeys {
        normalize_api_keys(value, raw_path, lines, &origin)?
    } else {
        value
    };
    let (section, key) = match path.split_once('.') {
        Some((s, k)) => (Some(s), k),
        None => (None, path),
    };
    let target = match section {
        None => merged,
        Some(s) => {
            let slot = merged
                .entry(s.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match slot {
                toml::Value::Table(t) => t,
                // Unreachable by construction: sections are only ever inserted as tables.
                _ => {
                    return Err(ConfigError::Invalid {
                        key: s.into(),
                        reason: "not a table".into(),
                    })
                }
            }
        }
    };
    target.insert(key.to_string(), value);
    Ok(())
}

/// The file layer: TOML text → canonical table, every key and value checked.
fn file_layer(text: &str) -> Result<toml::Table, ConfigError> {
    let raw: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Syntax {
        line: e.span().map(|s| line_of(text, s.start)),
        message: e.message().trim().to_string(),
    })?;
    let lines = index_lines(text);
    let mut merged = toml::Table::new();
    // Canonical path → raw path that set it, to catch `maxConnections` + `max_connections`.
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut note = |canon: &str, raw: &str| -> Result<(), ConfigError> {
        if let Some(first) = seen.insert(canon.to_string(), raw.to_string()) {
            return Err(ConfigError::Duplicate {
                key: canon.to_string(),
                first: format!("\"{first}\""),
                second: format!("\"{raw}\""),
            });
        }
        Ok(())
    };
    for (raw_key, value) in raw {
        let line = lines.get(&raw_key).copied();
        let Some(key) = canonical(None, &raw_key) else {
            return Err(ConfigError::UnknownKey { key: raw_key, line });
        };
        if SECTIONS.contains(&key.as_str()) {
            let toml::Value::Table(section) = value else {
                return Err(ConfigError::BadValue {
                    origin: Origin::File { line },
                    key,
                    value: value.to_string(),
                    expected: "a table".into(),
                });
            };
            for (raw_sub, v) in section {
                let raw_path = format!("{raw_key}.{raw_sub}");
                let line = lines.get(&raw_path).copied();
                let Some(sub) = canonical(Some(&key), &raw_sub) else {
                    return Err(ConfigError::UnknownKey {
                        key: raw_path,
                        line,
                    });
                };
                let path = format!("{key}.{sub}");
                note(&path, &raw_path)?;
                put(
                    &mut merged,
                    &path,
                    v,
                    Origin::File { line },
                    &raw_path,
                    &lines,
                )?;
            }
        } else {
            note(&key, &raw_key)?;
            put(
                &mut merged,
                &key,
                value,
                Origin::File { line },
                &raw_key,
                &lines,
            )?;
        }
    }
    Ok(merged)
}

/// The dotted key a `TRACECAST_*` variable sets, or None when it sets none.
pub fn env_key(var: &str) -> Option<String> {
    if let Some(&(_, key)) = ENV_SHORT_NAMES.iter().find(|(v, _)| *v == var) {
        return Some(key.to_string());
    }
    let rest = var.strip_prefix(ENV_PREFIX)?;
    if rest.is_empty() || rest.chars().any(|c| c.is_ascii_lowercase()) {
        return None;
    }
    let path = rest.to_ascii_lowercase().replacen("__", ".", 1);
    kind_of(&path).map(|_| path)
}

/// The systematic variable name for a dotted key (`rate_limit.window_ms` →
/// `TRACECAST_RATE_LIMIT__WINDOW_MS`).
pub fn env_var_for(key: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        key.replacen('.', "__", 1).to_ascii_uppercase()
    )
}

/// Converts an environment string to the TOML value its key expects.
fn env_value(kind: Kind, var: &str, key: &str, raw: &str) -> Result<toml::Value, ConfigError> {
    let bad = || ConfigError::BadValue {
        origin: Origin::Env {
            var: var.to_string(),
        },
        key: key.to_string(),
        value: if kind == Kind::Secret || kind == Kind::ApiKeys {
            REDACTED.into()
        } else {
            format!("{raw:?}")
        },
        expected: kind.expected(),
    };
    let trimmed = raw.trim();
    match kind {
        Kind::Str | Kind::Secret | Kind::Enum(_) => Ok(toml::Value::String(raw.to_string())),
        Kind::Bool => match trimmed.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(toml::Value::Boolean(true)),
            "false" | "0" | "no" | "off" => Ok(toml::Value::Boolean(false)),
            _ => Err(bad()),
        },
        Kind::Port
        | Kind::U8
        | Kind::U32
        | Kind::U64
        | Kind::Usize
        | Kind::OptU64
        | Kind::OptUsize => trimmed
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| bad()),
        Kind::ApiKeys => {
            // An inline TOML array: `[{key = "…", permissions = ["read"]}]`.
            let doc: toml::Table = toml::from_str(&format!("v = {raw}")).map_err(|_| bad())?;
            doc.get("v").cloned().ok_or_else(bad)
        }
    }
}

/// The environment layer, laid over `merged`. Variables are visited in name order so the
/// first error reported does not depend on the environment's order.
fn env_layer<I>(merged: &mut toml::Table, env: I) -> Result<(), ConfigError>
where
    I: IntoIterator<Item = (String, String)>,
{
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX) && !ENV_NOT_CONFIG.contains(&k.as_str()))
        .collect();
    vars.sort();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let no_lines = LineIndex::new();
    for (var, raw) in vars {
        let Some(key) = env_key(&var) else {
            return Err(ConfigError::UnknownEnv { var });
        };
        if let Some(first) = seen.insert(key.clone(), var.clone()) {
            return Err(ConfigError::Duplicate {
                key,
                first,
                second: var,
            });
        }
        let Some(kind) = kind_of(&key) else {
            return Err(ConfigError::UnknownEnv { var });
        };
        let value = env_value(kind, &var, &key, &raw)?;
        put(
            merged,
            &key,
            value,
            Origin::Env { var: var.clone() },
            &key,
            &no_lines,
        )?;
    }
    Ok(())
}

impl Overrides {
    fn apply(&self, config: &mut Config) {
        if let Some(bind) = &self.bind {
            config.bind = bind.clone();
        }
        if let Some(port) = self.port {
            config.port = port;
        }
        if let Some(dir) = &self.data_dir {
            config.data_dir = dir.clone();
        }
        if let Some(core) = self.pin_core {
            config.pin_core = Some(core);
        }
        if self.reuse_port {
            config.reuse_port = true;
        }
        if self.ephemeral {
            config.storage.persist = false;
        }
        if let Some(format) = self.log_format {
            config.log.format = format;
        }
        if let Some(level) = &self.log_level {
            config.log.level = level.clone();
        }
    }
}

impl Config {
    /// The built-in defaults (SPEC §9): what `tracecast serve` runs with and no file.
    pub fn embedded_default() -> Config {
        Config::default()
    }

    /// Loads and validates: `file` (if any) < `env` (`TRACECAST_*` pairs; others are
    /// ignored) < `overrides`.
    pub fn load<I>(
        file: Option<&Path>,
        env: I,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let text = match file {
            Some(path) => Some(
                std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })?,
            ),
            None => None,
        };
        Config::load_str(text.as_deref(), env, overrides)
    }

    /// [`Config::load`] with the file's text already read.
    pub fn load_str<I>(
        text: Option<&str>,
        env: I,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let mut merged = match text {
            Some(text) => file_layer(text)?,
            None => toml::Table::new(),
        };
        env_layer(&mut merged, env)?;
        let mut config = from_table(merged)?;
        overrides.apply(&mut config);
        config.validate()?;
        Ok(config)
    }

    /// Parses a file's text alone (no environment, no flags, no validation).
    pub fn parse_toml(text: &str) -> Result<Config, ConfigError> {
        from_table(file_layer(text)?)
    }

    /// The `TRACECAST_*` variables of this process, for [`Config::load`].
    pub fn process_env() -> Result<Vec<(String, String)>, ConfigError> {
        let mut out = Vec::new();
        for (name, value) in std::env::vars_os() {
            let Some(name) = name.to_str() else { continue };
            if !name.starts_with(ENV_PREFIX) {
                continue;
            }
            let value = value
                .into_string()
                .map_err(|_| ConfigError::EnvNotUnicode {
                    var: name.to_string(),
                })?;
            out.push((name.to_string(), value));
        }
        Ok(out)
    }

    /// The configuration as TOML with every secret replaced by `<redacted>`.
    pub fn to_redacted_toml(&self) -> String {
        let mut copy = self.clone();
        copy.auth.jwt_secret = redact(&copy.auth.jwt_secret).to_string();
        for key in &mut copy.auth.api_keys {
            key.key = key.key.as_deref().map(|k| redact(k).to_string());
            key.key_sha256 = key.key_sha256.as_deref().map(|k| redact(k).to_string());
        }
        toml::to_string_pretty(&copy)
            .unwrap_or_else(|e| format!("# cannot render the configuration: {e}\n"))
    }

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
        if self.storage.persist && self.data_dir.trim().is_empty() {
            return fail(
                "data_dir",
                "must not be empty while storage.persist = true".into(),
            );
        }
        let at_least_one: [(&str, u64); 13] = [
            ("max_connections", self.max_connections as u64),
            ("heartbeat_interval_ms", self.heartbeat_interval_ms),
            ("batch_size", self.batch_size as u64),
            ("max_message_size", self.max_message_size as u64),
            ("max_event_bytes", self.max_event_bytes as u64),
            ("historical_data_limit", self.historical_data_limit as u64),
            ("history_chunk_size", self.history_chunk_size as u64),
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
        ];
        for (key, value) in at_least_one {
            if value == 0 {
                return fail(key, "must be at least 1 (got 0)".into());
            }
        }
        // Timers are added to the clock and sizes to buffer lengths: absurd values must
        // stop start-up here rather than overflow later.
        const YEAR_MS: u64 = 365 * 24 * 3600 * 1000;
        let durations: [(&str, u64); 6] = [
            ("heartbeat_interval_ms", self.heartbeat_interval_ms),
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

fn from_table(merged: toml::Table) -> Result<Config, ConfigError> {
    // Every key and value was checked on the way in, so this only fails on a bug in the
    // schema; say so rather than panic.
    toml::Value::Table(merged)
        .try_into::<Config>()
        .map_err(|e| ConfigError::Invalid {
            key: "(schema)".into(),
            reason: e.message().to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC_EXAMPLE: &str = include_str!("../fuzz/corpus/config/spec_example.toml");

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn load(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::load_str(Some(text), env(vars), &Overrides::default())
    }

    fn err(text: &str, vars: &[(&str, &str)]) -> String {
        match load(text, vars) {
            Ok(_) => panic!("expected an error for {text:?} {vars:?}"),
            Err(e) => e.to_string(),
        }
    }

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

    #[test]
    fn precedence_file_env_flags() {
        let text = "port = 1111\nbind = \"0.0.0.0\"\ndata_dir = \"/file\"\n";
        let c = load(text, &[]).expect("file");
        assert_eq!(
            (c.port, c.bind.as_str(), c.data_dir.as_str()),
            (1111, "0.0.0.0", "/file")
        );
        let c = load(
            text,
            &[("TRACECAST_PORT", "2222"), ("TRACECAST_DATA_DIR", "/env")],
        )
        .expect("env");
        assert_eq!(
            (c.port, c.bind.as_str(), c.data_dir.as_str()),
            (2222, "0.0.0.0", "/env")
        );
        let flags = Overrides {
            port: Some(3333),
            ephemeral: true,
            ..Overrides::default()
        };
        let c = Config::load_str(Some(text), env(&[("TRACECAST_PORT", "2222")]), &flags)
            .expect("flags");
        assert_eq!(
            (c.port, c.storage.persist, c.data_dir.as_str()),
            (3333, false, "/file")
        );
    }

    #[test]
    fn env_mapping() {
        let c = load(
            "",
            &[
                ("TRACECAST_JWT_SECRET", "s3cret"),
                ("TRACECAST_AUTH_ENABLED", "true"),
                ("TRACECAST_LOG_LEVEL", "debug"),
                ("TRACECAST_LOG_FORMAT", "json"),
                ("TRACECAST_RATE_LIMIT__WINDOW_MS", "5000"),
                ("TRACECAST_STORAGE__FSYNC", "always"),
                ("TRACECAST_STALE_TIMEOUT_MS", "90000"),
                ("TRACECAST_TOKEN", "client-only, ignored"),
                (
                    "TRACECAST_AUTH__API_KEYS",
                    "[{key = \"k1\", permissions = [\"publish\"]}]",
                ),
                ("PATH", "/bin"),
            ],
        )
        .expect("loads");
        assert_eq!(c.auth.jwt_secret, "s3cret");
        assert!(c.auth.enabled);
        assert_eq!(
            (c.log.level.as_str(), c.log.format),
            ("debug", LogFormat::Json)
        );
        assert_eq!(c.rate_limit.window_ms, 5000);
        assert_eq!(c.storage.fsync, FsyncPolicy::Always);
        assert_eq!(c.stale_timeout_ms, Some(90_000));
        assert_eq!(c.auth.api_keys.len(), 1);
        assert_eq!(c.auth.api_keys[0].sessions, vec!["*".to_string()]);
        assert_eq!(
            env_var_for("rate_limit.window_ms"),
            "TRACECAST_RATE_LIMIT__WINDOW_MS"
        );
        for (key, _) in SCHEMA {
            assert_eq!(env_key(&env_var_for(key)).as_deref(), Some(*key));
        }
    }

    #[test]
    fn messages_name_key_value_and_expectation() {
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case] = &[
            ("[rate_limit]\nwindow_ms = 1\n\nmax_msgs = 3\n", &[], "config: unknown key \"rate_limit.max_msgs\" (line 4)"),
            ("nope = 1\n", &[], "config: unknown key \"nope\" (line 1)"),
            ("[[auth.api_keys]]\nkey = \"k\"\nperms = []\n", &[], "config: unknown key \"auth.api_keys[0].perms\" (line 3)"),
            ("", &[("TRACECAST_PORT", "abc")], "TRACECAST_PORT: \"abc\" is not a valid port (0-65535) (sets port)"),
            ("", &[("TRACECAST_PORT", "70000")], "TRACECAST_PORT: 70000 is not a valid port (0-65535) (sets port)"),
            ("", &[("TRACECAST_NOPE", "1")], "TRACECAST_NOPE: unknown environment variable"),
            ("\nport = \"x\"\n", &[], "config: port = \"x\" (line 2) is not a valid port (0-65535)"),
            ("[storage]\nfsync = \"sometimes\"\n", &[], "config: storage.fsync = \"sometimes\" (line 2) is not one of always | interval | never"),
            ("compression_level = 12\n", &[], "config: invalid compression_level: 12 is not between 1 and 9"),
            ("compression_level = 256\n", &[], "config: compression_level = 256 (line 1) is not an integer 0-255"),
            ("[backpressure]\nlow_water_mark = 70000\n", &[], "config: invalid backpressure.low_water_mark: 70000 must be below"),
            ("batch_size = 0\n", &[], "config: invalid batch_size: must be at least 1"),
            ("history_chunk_size = 20000\n", &[], "config: invalid history_chunk_size: 20000 exceeds historical_data_limit"),
            ("max_event_bytes = 2000000\n", &[], "config: invalid max_event_bytes"),
            ("heartbeat_interval_ms = 0\n", &[], "config: invalid heartbeat_interval_ms"),
            ("stale_timeout_ms = 10\n", &[], "config: invalid stale_timeout_ms"),
            ("heartbeat_interval_ms = 99999999999999\n", &[], "config: invalid heartbeat_interval_ms"),
            ("max_message_size = 99999999999\n", &[], "config: invalid max_message_size"),
            ("[storage]\nsegment_bytes = 1000\n", &[], "config: invalid storage.segment_bytes"),
            ("[rate_limit]\nwindow_ms = 0\n", &[], "config: invalid rate_limit.window_ms"),
            ("[auth]\nenabled = true\n", &[], "config: invalid auth.enabled"),
            ("[[auth.api_keys]]\nkey = \"a\"\nkey_sha256 = \"b\"\n", &[], "config: invalid auth.api_keys[0]: needs exactly one"),
            ("[[auth.api_keys]]\npermissions = [\"read\"]\n", &[], "config: invalid auth.api_keys[0]: needs exactly one"),
            ("[[auth.api_keys]]\nkey = \"a\"\npermissions = [\"root\"]\n", &[], "config: invalid auth.api_keys[0].permissions"),
            ("port = 1\nport = 2\n", &[], "config: invalid TOML (line 2)"),
            ("maxConnections = 5\nmax_connections = 6\n", &[], "both set \"max_connections\""),
            ("bind = \"example.com\"\n", &[], "config: invalid bind"),
            ("[log]\nlevel = \"info,[[\"\n", &[], "config: invalid log.level"),
            ("log = 3\n", &[], "config: log = 3 (line 1) is not a table"),
        ];
        for (text, vars, want) in cases {
            let got = err(text, vars);
            assert!(
                got.contains(want),
                "for {text:?} {vars:?}\n got: {got}\nwant: {want}"
            );
        }
    }

    #[test]
    fn node_aliases_and_camel_case() {
        let text =
            "maxConnections = 7\nheartbeatInterval = 1000\nbatchSize = 3\nbatchTimeout = 5\n\
                    maxMessageSize = 200000\ncompressionEnabled = false\ncompressionLevel = 2\n\
                    historicalDataLimit = 500\nhost = \"0.0.0.0\"\n\
                    [rateLimit]\nwindowMs = 10\nmaxMessages = 4\n\
                    [[auth.apiKeys]]\nkeySha256 = \"aa\"\n";
        // keySha256 is not 64 hex digits: parse alone, then check validation names it.
        let c = Config::parse_toml(text).expect("aliases parse");
        assert_eq!(
            (
                c.max_connections,
                c.heartbeat_interval_ms,
                c.batch_size,
                c.batch_timeout_ms
            ),
            (7, 1000, 3, 5)
        );
        assert_eq!(
            (
                c.max_message_size,
                c.compression_enabled,
                c.compression_level
            ),
            (200_000, false, 2)
        );
        assert_eq!((c.historical_data_limit, c.bind.as_str()), (500, "0.0.0.0"));
        assert_eq!((c.rate_limit.window_ms, c.rate_limit.max_messages), (10, 4));
        assert_eq!(c.auth.api_keys[0].key_sha256.as_deref(), Some("aa"));
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("auth.api_keys[0].key_sha256"));
    }

    #[test]
    fn secrets_never_formatted() {
        let text = "[auth]\nenabled = true\njwt_secret = \"hunter2-jwt\"\n\
                    [[auth.api_keys]]\nkey = \"hunter2-key\"\n";
        let c = load(text, &[]).expect("loads");
        for shown in [
            format!("{c:?}"),
            format!("{c:#?}"),
            c.to_string(),
            c.to_redacted_toml(),
        ] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains(REDACTED), "{shown}");
        }
        // Nor in an error about them.
        let e = err("[auth]\njwt_secret = 1234\n", &[]);
        assert!(!e.contains("1234") && e.contains("auth.jwt_secret"), "{e}");
        let e = err("", &[("TRACECAST_AUTH__API_KEYS", "[{key = \"hunter2\"")]);
        assert!(!e.contains("hunter2"), "{e}");
        // The redacted dump is itself a loadable file.
        assert!(Config::parse_toml(&Config::default().to_redacted_toml()).is_ok());
    }
}
