//! Everything that can stop the configuration from loading, and how each is told: the
//! message names the key, where the value came from (file line, variable, flag), the value
//! itself unless it is a secret, and what was expected.

use std::fmt;
use std::path::PathBuf;

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
