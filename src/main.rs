//! The `tracecast` binary: the command line in [`tracecast::cli`], with the server's
//! entry point plugged in here so the library does not depend on it.

use std::process::ExitCode;

fn main() -> ExitCode {
    tracecast::cli::main(tracecast::server::serve)
}
