//! The `tracecast` command line: `serve`, `config`, `token`, `tail`, `publish`.
//!
//! `main.rs` only hands over the server's entry point; everything else (argument parsing,
//! configuration, logging set-up, the small clients) lives here so it is testable, and
//! errors map to exit codes in one place: 0 clean, 2 configuration or usage, 1 runtime.

pub mod bearer;
pub mod duration;
pub mod publish;
pub mod serve;
pub mod tail;
pub mod token;

use std::fmt::{self, Display};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigError};

#[derive(Debug, Parser)]
#[command(
    name = "tracecast",
    version,
    about = "Streams, stores, replays and time-travels trace events over WebSocket."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(serve::ServeArgs),
    /// Print the effective configuration as TOML (secrets redacted) and exit.
    Config(serve::ServeArgs),
    /// Mint a development HS256 JWT (secret from TRACECAST_JWT_SECRET or --config).
    Token(token::TokenArgs),
    /// Follow a session's events as NDJSON on stdout.
    Tail(tail::TailArgs),
    /// POST NDJSON events from stdin to /v1/events in batches.
    Publish(publish::PublishArgs),
}

/// Why a command failed; decides the exit code.
#[derive(Debug)]
pub enum CliError {
    Config(ConfigError),
    Usage(String),
    Runtime(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Config(_) | CliError::Usage(_) => 2,
            CliError::Runtime(_) => 1,
        }
    }
}

impl Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Config(e) => write!(f, "{e}"),
            CliError::Usage(m) | CliError::Runtime(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for CliError {}

impl From<ConfigError> for CliError {
    fn from(e: ConfigError) -> Self {
        CliError::Config(e)
    }
}

/// Runs one parsed command line; `serve` is the server's entry point.
pub fn run<F, E>(cli: Cli, serve: F) -> Result<(), CliError>
where
    F: FnOnce(Config) -> Result<(), E>,
    E: Display,
{
    match cli.command {
        Command::Serve(args) => serve::run(&args, serve),
        Command::Config(args) => serve::print_config(&args),
        Command::Token(args) => token::run(&args),
        Command::Tail(args) => tail::run(&args),
        Command::Publish(args) => publish::run(&args),
    }
}

/// The whole program: parse `std::env::args`, run, report on stderr, map to an exit code.
pub fn main<F, E>(serve: F) -> ExitCode
where
    F: FnOnce(Config) -> Result<(), E>,
    E: Display,
{
    let cli = Cli::parse();
    match run(cli, serve) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tracecast: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn both_clients_take_a_token_file_and_refuse_it_with_token() {
        for client in [&["tail", "--session", "s"][..], &["publish"][..]] {
            let parse = |extra: &[&str]| {
                let mut argv = vec!["tracecast"];
                argv.extend_from_slice(client);
                argv.extend_from_slice(extra);
                Cli::try_parse_from(argv)
            };
            let bearer = |cli: Cli| match cli.command {
                Command::Tail(a) => a.bearer,
                Command::Publish(a) => a.bearer,
                other => panic!("{other:?}"),
            };
            let file = bearer(parse(&["--token-file", "/t"]).expect("parses"));
            assert_eq!(file.token_file.as_deref(), Some(std::path::Path::new("/t")));
            let flag = bearer(parse(&["--token", "x"]).expect("parses"));
            assert_eq!(flag.token.as_deref(), Some("x"));
            let both = parse(&["--token", "x", "--token-file", "/t"]).expect_err("conflict");
            assert_eq!(both.kind(), clap::error::ErrorKind::ArgumentConflict);
        }
    }

    #[test]
    fn exit_codes() {
        assert_eq!(
            CliError::Config(ConfigError::UnknownEnv { var: "X".into() }).exit_code(),
            2
        );
        assert_eq!(CliError::Usage("u".into()).exit_code(), 2);
        assert_eq!(CliError::Runtime("r".into()).exit_code(), 1);
    }
}
