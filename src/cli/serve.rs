//! `tracecast serve` and `tracecast config`: turn flags into [`Overrides`], load the
//! layered configuration, set up logging, and hand the result to the server.
//!
//! The server entry point is passed in by `main.rs` rather than named here, so the
//! library (and its tests) do not depend on the network shell being built.

use std::fmt::Display;
use std::path::PathBuf;

use clap::Args;

use super::CliError;
use crate::config::{Config, ConfigError, LogFormat, Overrides};

/// Flags shared by `serve` and `config`. No flag carries a secret (SPEC §8).
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "TRACECAST_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on (an IP address).
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,
    /// Port to listen on (0: any free port).
    #[arg(long, value_name = "N")]
    pub port: Option<u16>,
    /// Directory of the event log.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<String>,
    /// Pin the network loop to this CPU core.
    #[arg(long, value_name = "N")]
    pub pin_core: Option<usize>,
    /// Set SO_REUSEPORT on the listener.
    #[arg(long)]
    pub reuse_port: bool,
    /// Keep events in memory only (storage.persist = false): nothing is written to disk.
    #[arg(long)]
    pub ephemeral: bool,
    /// Log format.
    #[arg(long, value_name = "pretty|json", value_parser = parse_log_format)]
    pub log_format: Option<LogFormat>,
    /// Log filter, e.g. info or tracecast=debug (RUST_LOG still wins).
    #[arg(long, value_name = "FILTER")]
    pub log_level: Option<String>,
    /// Cluster mode: the NATS server(s) to join, e.g. nats://127.0.0.1:4222
    /// ([cluster] nats_url; credentials belong in the file or TRACECAST_NATS_URL).
    #[arg(long, value_name = "URL")]
    pub nats_url: Option<String>,
    /// Cluster mode: the JetStream stream the nodes share ([cluster] stream).
    #[arg(long, value_name = "NAME")]
    pub cluster_stream: Option<String>,
    /// Cluster mode: the subject prefix of the stream ([cluster] subject_prefix).
    #[arg(long, value_name = "PREFIX")]
    pub subject_prefix: Option<String>,
    /// Cluster mode: this node's name ([cluster] node_id; default hostname + port).
    #[arg(long, value_name = "ID")]
    pub node_id: Option<String>,
}

fn parse_log_format(text: &str) -> Result<LogFormat, String> {
    match text {
        "pretty" => Ok(LogFormat::Pretty),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!("{text:?} is not one of pretty | json")),
    }
}

impl ServeArgs {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            bind: self.bind.clone(),
            port: self.port,
            data_dir: self.data_dir.clone(),
            pin_core: self.pin_core,
            reuse_port: self.reuse_port,
            ephemeral: self.ephemeral,
            log_format: self.log_format,
            log_level: self.log_level.clone(),
            nats_url: self.nats_url.clone(),
            cluster_stream: self.cluster_stream.clone(),
            subject_prefix: self.subject_prefix.clone(),
            node_id: self.node_id.clone(),
        }
    }

    /// The effective configuration: file < process environment < these flags.
    pub fn load(&self) -> Result<Config, ConfigError> {
        Config::load(
            self.config.as_deref(),
            Config::process_env()?,
            &self.overrides(),
        )
    }
}

/// Installs the global `tracing` subscriber on stderr (stdout stays free for data).
pub fn init_tracing(config: &Config) -> Result<(), CliError> {
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let (source, filter) = match &from_env {
        Some(v) => ("RUST_LOG", v.as_str()),
        None => ("log.level", config.log.level.as_str()),
    };
    let filter = tracing_subscriber::EnvFilter::try_new(filter).map_err(|e| {
        CliError::Config(ConfigError::Invalid {
            key: source.into(),
            reason: e.to_string(),
        })
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match config.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
    installed.map_err(|e| CliError::Runtime(format!("logging: {e}")))
}

/// Logs what the server is about to run with; secrets stay out (only whether they exist).
pub fn log_effective(config: &Config) {
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        bind = %config.bind,
        port = config.port,
        data_dir = %config.data_dir,
        persist = config.storage.persist,
        fsync = ?config.storage.fsync,
        max_connections = config.max_connections,
        auth = config.auth.enabled,
        jwt_secret_set = !config.auth.jwt_secret.is_empty(),
        api_keys = config.auth.api_keys.len(),
        rate_limit = config.rate_limit.enabled,
        compression = config.compression_enabled,
        pin_core = ?config.pin_core,
        reuse_port = config.reuse_port,
        "starting tracecast"
    );
    // `Config`'s Debug redacts every secret.
    tracing::debug!(config = ?config, "effective configuration");
}

pub fn run<F, E>(args: &ServeArgs, serve: F) -> Result<(), CliError>
where
    F: FnOnce(Config) -> Result<(), E>,
    E: Display,
{
    let config = args.load()?;
    init_tracing(&config)?;
    log_effective(&config);
    serve(config).map_err(|e| CliError::Runtime(e.to_string()))?;
    tracing::info!("stopped");
    Ok(())
}

/// `tracecast config`: the effective configuration as TOML, secrets redacted.
pub fn print_config(args: &ServeArgs) -> Result<(), CliError> {
    let config = args.load()?;
    print!("{}", config.to_redacted_toml());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct S {
        #[command(flatten)]
        args: ServeArgs,
    }

    #[test]
    fn flags_become_overrides() {
        let s = S::try_parse_from([
            "s",
            "--bind",
            "0.0.0.0",
            "--port",
            "9000",
            "--data-dir",
            "/d",
            "--pin-core",
            "2",
            "--reuse-port",
            "--ephemeral",
            "--log-format",
            "json",
        ])
        .expect("parses");
        let o = s.args.overrides();
        assert_eq!(o.bind.as_deref(), Some("0.0.0.0"));
        assert_eq!(
            (o.port, o.pin_core, o.reuse_port, o.ephemeral),
            (Some(9000), Some(2), true, true)
        );
        assert_eq!(o.log_format, Some(LogFormat::Json));
        let c = Config::load_str(None, Vec::new(), &o).expect("valid");
        assert!(!c.storage.persist);
        assert!(S::try_parse_from(["s", "--port", "70000"]).is_err());
        assert!(S::try_parse_from(["s", "--log-format", "xml"]).is_err());
        assert!(S::try_parse_from(["s", "--jwt-secret", "x"]).is_err());
    }
}
