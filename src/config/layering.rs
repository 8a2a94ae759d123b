//! The three layers, in rising precedence: the TOML file, `TRACECAST_*` environment
//! variables, then command-line flags ([`Overrides`]). The file and the environment are
//! normalised into one canonical table (the original Node server's option names and
//! camelCase spellings mapped to our keys) and every key and value is checked against
//! [`SCHEMA`](super::SCHEMA) on the way in, so errors carry the dotted path and where the
//! value came from. Flags are applied last, to the typed [`Config`].

use std::collections::{BTreeMap, HashMap};

use super::error::{ConfigError, Origin};
use super::schema::{
    check_value, kind_of, Config, Kind, LogFormat, API_KEY_FIELDS, REDACTED, SECTIONS,
};

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
    ("TRACECAST_NATS_URL", "cluster.nats_url"),
    ("TRACECAST_NODE_ID", "cluster.node_id"),
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
    /// `[cluster]` settings (`--nats-url`, `--cluster-stream`, `--subject-prefix`,
    /// `--node-id`).
    pub nats_url: Option<String>,
    pub cluster_stream: Option<String>,
    pub subject_prefix: Option<String>,
    pub node_id: Option<String>,
}

impl Overrides {
    pub(super) fn apply(&self, config: &mut Config) {
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
        if let Some(v) = &self.nats_url {
            config.cluster.nats_url = v.clone();
        }
        if let Some(v) = &self.cluster_stream {
            config.cluster.stream = v.clone();
        }
        if let Some(v) = &self.subject_prefix {
            config.cluster.subject_prefix = v.clone();
        }
        if let Some(v) = &self.node_id {
            config.cluster.node_id = v.clone();
        }
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
pub(super) fn file_layer(text: &str) -> Result<toml::Table, ConfigError> {
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
pub(super) fn env_layer<I>(merged: &mut toml::Table, env: I) -> Result<(), ConfigError>
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{env, err, load};
    use crate::config::{FsyncPolicy, SCHEMA};

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
            ("compression_level = 256\n", &[], "config: compression_level = 256 (line 1) is not an integer 0-255"),
            ("port = 1\nport = 2\n", &[], "config: invalid TOML (line 2)"),
            ("maxConnections = 5\nmax_connections = 6\n", &[], "both set \"max_connections\""),
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
}
