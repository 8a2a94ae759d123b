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
//!
//! This file holds the entry points ([`Config::load`] and friends); `schema` the types,
//! defaults and key table; `layering` the file/environment/flag layers; `validate` the
//! checks on the merged result; `error` the error type and its messages.

mod error;
mod layering;
mod schema;
mod validate;

use std::fmt;
use std::path::Path;

pub use error::{ConfigError, Origin};
pub use layering::{
    env_key, env_var_for, Overrides, ENV_NOT_CONFIG, ENV_PREFIX, ENV_SHORT_NAMES, NODE_ALIASES,
};
pub use schema::OtlpConfig;
pub use schema::{
    ApiKeyConfig, AuthConfig, BackpressureConfig, BackpressurePolicy, ClusterConfig, Config,
    DebugConfig, FsyncPolicy, Kind, LogConfig, LogFormat, RateLimitConfig, StorageConfig,
    PERMISSIONS, SCHEMA,
};

use layering::{env_layer, file_layer};
use schema::redact;

/// The effective configuration as TOML, secrets redacted.
impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_redacted_toml())
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
    use schema::REDACTED;

    pub(super) fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    pub(super) fn load(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::load_str(Some(text), env(vars), &Overrides::default())
    }

    pub(super) fn err(text: &str, vars: &[(&str, &str)]) -> String {
        match load(text, vars) {
            Ok(_) => panic!("expected an error for {text:?} {vars:?}"),
            Err(e) => e.to_string(),
        }
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
