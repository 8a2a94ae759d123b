//! Fuzz body for the configuration file: arbitrary bytes go through the same parsing,
//! alias, schema and validation path as `tracecast serve --config FILE`, and through the
//! redacted dump. Any outcome but a panic is fine.

use crate::config::{Config, Overrides};

/// Feeds arbitrary bytes to the parser; must never panic.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = Config::parse_toml(text) {
        let _ = config.validate();
        let _ = config.to_redacted_toml();
        let _ = format!("{config:?}");
    }
    // The full layering, with one environment override on top, must not panic either.
    let env = vec![("TRACECAST_PORT".to_string(), "9".to_string())];
    let _ = Config::load_str(Some(text), env, &Overrides::default());
}
