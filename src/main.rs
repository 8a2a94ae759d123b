//! The `tracecast` binary: the command line in [`tracecast::cli`], with the server's
//! entry point plugged in here so the library does not depend on it.
//!
//! The global allocator is mimalloc: ingest allocates and frees every event's bytes
//! (and more) at a million events a second, and glibc's malloc took about 8 % of the
//! loop's CPU on that path (docs/perf-ingest.md). It is chosen here, in the binary, so
//! the library leaves the choice to whoever embeds it.

use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    tracecast::cli::main(tracecast::server::serve)
}
