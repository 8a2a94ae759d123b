//! Fuzz body for the configuration file: arbitrary bytes go through the same parsing,
//! alias, schema and validation path as `tracecast serve --config FILE`, and through the
//! redacted dump.
//!
//! Property asserted: the dump (`tracecast config`) of a configuration that parsed is
//! itself a file that parses back to the same configuration, secrets aside (they come back
//! as the redaction marker, exactly where one was set), and dumps to the same text.

use crate::config::{Config, Overrides};

/// Feeds arbitrary bytes to the parser and checks the dump round trip.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = Config::parse_toml(text) {
        let _ = config.validate();
        let _ = format!("{config:?}");
        dump_round_trips(&config);
    }
    // The full layering, with one environment override on top, must not panic either.
    let env = vec![("TRACECAST_PORT".to_string(), "9".to_string())];
    if let Ok(config) = Config::load_str(Some(text), env, &Overrides::default()) {
        assert_eq!(config.port, 9, "the environment outranks the file");
        dump_round_trips(&config);
    }
}

fn dump_round_trips(config: &Config) {
    let dump = config.to_redacted_toml();
    let mut back = match Config::parse_toml(&dump) {
        Ok(c) => c,
        Err(e) => panic!("the dump of a parsed configuration does not parse: {e}\n{dump}"),
    };
    assert_eq!(
        back.to_redacted_toml(),
        dump,
        "the dump is not a fixed point"
    );
    // Put the secrets back, having checked each was redacted only where it was set.
    let same_presence = |a: &str, b: &str| a.is_empty() == b.is_empty();
    assert!(same_presence(
        &config.auth.jwt_secret,
        &back.auth.jwt_secret
    ));
    back.auth.jwt_secret.clone_from(&config.auth.jwt_secret);
    assert_eq!(back.auth.api_keys.len(), config.auth.api_keys.len());
    for (b, c) in back.auth.api_keys.iter_mut().zip(&config.auth.api_keys) {
        for (got, had) in [(&mut b.key, &c.key), (&mut b.key_sha256, &c.key_sha256)] {
            assert_eq!(
                got.as_deref().map(str::is_empty),
                had.as_deref().map(str::is_empty)
            );
            got.clone_from(had);
        }
    }
    assert_eq!(&back, config, "the dump parses to another configuration");
}
