//! Where the client commands (`tail`, `publish`) get their bearer token (a JWT or an API
//! key), in falling precedence: `--token-file PATH` or `--token TOKEN` (the two exclude
//! each other), then the `TRACECAST_TOKEN` environment variable, then none.
//!
//! A command line is readable by every local user (`ps`, `/proc/PID/cmdline`), so
//! `--token` is kept only for compatibility and warns each time it is used; a file or the
//! environment keeps the token private. clap's own `env =` is not used for the variable:
//! it would fold the variable into `--token`'s value, and then the warning could not tell
//! the flag (which leaks) from the environment (which does not).
//!
//! [`resolve`] is a pure function of the flags, the variable's value and a file reader,
//! so the precedence and every error are unit-tested without a process or a disk.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use clap::Args;

use super::CliError;

/// The environment variable read when neither flag is given.
pub const TOKEN_ENV: &str = "TRACECAST_TOKEN";

#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct BearerArgs {
    /// Read the bearer token (JWT or API key) from this file; trailing whitespace (the
    /// newline an editor adds) is dropped. Without this or --token, the TRACECAST_TOKEN
    /// environment variable is used.
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// Bearer token (JWT or API key) on the command line. Deprecated: other local users
    /// see it in `ps`; prefer --token-file or TRACECAST_TOKEN.
    #[arg(long, value_name = "TOKEN", conflicts_with = "token_file")]
    pub token: Option<String>,
}

/// A token and what the user should be told about where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub token: Option<String>,
    /// A line for stderr (never containing the token), when the source is unsafe.
    pub warning: Option<String>,
}

/// The warning `--token` earns. It names the safe alternatives, never the token.
pub const TOKEN_FLAG_WARNING: &str =
    "warning: --token puts the token on the command line, where other users on this \
     machine can read it (ps, /proc/PID/cmdline); use --token-file PATH or the \
     TRACECAST_TOKEN environment variable instead";

/// Picks the token: a flag (`--token-file` or `--token`), else `env` (the value of
/// [`TOKEN_ENV`], if set), else none. `read` reads a file's bytes.
///
/// An empty environment value counts as unset, as it does for clap's `env`. A token file
/// that is missing, unreadable, not UTF-8 or blank is an error naming its path, never a
/// silent fall-back to the environment: the user asked for that file.
pub fn resolve<R>(args: &BearerArgs, env: Option<OsString>, read: R) -> Result<Resolved, CliError>
where
    R: FnOnce(&Path) -> io::Result<Vec<u8>>,
{
    if let Some(path) = &args.token_file {
        let shown = path.display();
        let bytes = read(path)
            .map_err(|e| CliError::Usage(format!("--token-file {shown}: cannot read: {e}")))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| CliError::Usage(format!("--token-file {shown}: not UTF-8 text")))?;
        let token = text.trim_end();
        if token.is_empty() {
            return Err(CliError::Usage(format!(
                "--token-file {shown}: the file is empty; it should hold the token"
            )));
        }
        let token = checked(token, &format!("--token-file {shown}"))?;
        return Ok(Resolved {
            token: Some(token),
            warning: None,
        });
    }
    if let Some(token) = &args.token {
        return Ok(Resolved {
            token: Some(checked(token, "--token")?),
            warning: Some(TOKEN_FLAG_WARNING.to_string()),
        });
    }
    let token = match env {
        Some(value) if !value.is_empty() => {
            let value = value
                .into_string()
                .map_err(|_| CliError::Usage(format!("{TOKEN_ENV}: value is not UTF-8")))?;
            Some(checked(&value, TOKEN_ENV)?)
        }
        _ => None,
    };
    Ok(Resolved {
        token,
        warning: None,
    })
}

/// The token goes into an HTTP header line: a CR or LF would end that line and let the
/// rest of a (say, two-line) file forge headers, so control characters are refused.
fn checked(token: &str, source: &str) -> Result<String, CliError> {
    if token.chars().any(char::is_control) {
        return Err(CliError::Usage(format!(
            "{source}: the token contains a control character (a line break?); \
             a token is one line of text"
        )));
    }
    Ok(token.to_string())
}

/// [`resolve`] against this process's environment and disk; prints the warning, if any,
/// on stderr.
pub fn token(args: &BearerArgs) -> Result<Option<String>, CliError> {
    let resolved = resolve(args, std::env::var_os(TOKEN_ENV), |p| std::fs::read(p))?;
    if let Some(warning) = &resolved.warning {
        eprintln!("tracecast: {warning}");
    }
    Ok(resolved.token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(file: Option<&str>, flag: Option<&str>) -> BearerArgs {
        BearerArgs {
            token_file: file.map(PathBuf::from),
            token: flag.map(str::to_string),
        }
    }

    fn no_file(_: &Path) -> io::Result<Vec<u8>> {
        Err(io::Error::new(io::ErrorKind::NotFound, "No such file"))
    }

    fn file(contents: &'static str) -> impl FnOnce(&Path) -> io::Result<Vec<u8>> {
        move |_| Ok(contents.as_bytes().to_vec())
    }

    fn env(v: &str) -> Option<OsString> {
        Some(OsString::from(v))
    }

    fn token_of(r: Result<Resolved, CliError>) -> Option<String> {
        r.expect("resolves").token
    }

    fn usage(r: Result<Resolved, CliError>) -> String {
        match r {
            Err(e @ CliError::Usage(_)) => e.to_string(),
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn flags_outrank_the_environment_which_outranks_nothing() {
        let from_file = resolve(&args(Some("/t"), None), env("E"), file("F\n"));
        assert_eq!(token_of(from_file), Some("F".into()));
        let from_flag = resolve(&args(None, Some("T")), env("E"), no_file);
        assert_eq!(token_of(from_flag), Some("T".into()));
        let from_env = resolve(&args(None, None), env("E"), no_file);
        assert_eq!(token_of(from_env), Some("E".into()));
        assert_eq!(token_of(resolve(&args(None, None), None, no_file)), None);
        // Set but empty is unset, as with clap's `env`.
        assert_eq!(token_of(resolve(&args(None, None), env(""), no_file)), None);
    }

    #[test]
    fn only_the_command_line_flag_warns() {
        let r = resolve(&args(None, Some("s3cret")), None, no_file).expect("ok");
        let w = r.warning.expect("a warning");
        assert!(w.contains("ps") && w.contains("--token-file") && w.contains(TOKEN_ENV));
        assert!(!w.contains("s3cret"));
        for quiet in [
            resolve(&args(Some("/t"), None), None, file("s3cret")),
            resolve(&args(None, None), env("s3cret"), no_file),
            resolve(&args(None, None), None, no_file),
        ] {
            assert_eq!(quiet.expect("ok").warning, None);
        }
    }

    #[test]
    fn a_token_file_loses_only_its_trailing_whitespace() {
        for (contents, want) in [
            ("abc\n", "abc"),
            ("abc\r\n", "abc"),
            ("abc", "abc"),
            ("abc \t\n\n", "abc"),
            ("  abc\n", "  abc"),
        ] {
            let got = resolve(&args(Some("/t"), None), None, file(contents));
            assert_eq!(token_of(got).as_deref(), Some(want), "{contents:?}");
        }
    }

    #[test]
    fn an_unusable_token_file_is_an_error_naming_the_path() {
        let path = Some("/run/secrets/tracecast");
        let missing = usage(resolve(&args(path, None), env("E"), no_file));
        assert!(missing.contains("/run/secrets/tracecast") && missing.contains("No such file"));
        for contents in ["", "\n", " \r\n"] {
            let e = usage(resolve(&args(path, None), env("E"), file(contents)));
            assert!(
                e.contains("/run/secrets/tracecast") && e.contains("empty"),
                "{e}"
            );
        }
        let binary = |_: &Path| Ok(vec![0xff, 0xfe]);
        let e = usage(resolve(&args(path, None), None, binary));
        assert!(
            e.contains("/run/secrets/tracecast") && e.contains("UTF-8"),
            "{e}"
        );
        let two_lines = usage(resolve(&args(path, None), None, file("a\r\nX-Admin: 1\n")));
        assert!(two_lines.contains("/run/secrets/tracecast"), "{two_lines}");
    }

    #[test]
    fn line_breaks_are_refused_from_every_source() {
        let e = usage(resolve(&args(None, Some("a\nb")), None, no_file));
        assert!(e.contains("--token"), "{e}");
        let e = usage(resolve(&args(None, None), env("a\r\nb"), no_file));
        assert!(e.contains(TOKEN_ENV), "{e}");
    }
}
