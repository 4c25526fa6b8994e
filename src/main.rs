//! The `tasks-api` binary: parse the command line and hand over to the library.

use clap::Parser;

/// mimalloc instead of glibc's malloc: a list request makes a few hundred
/// small allocations (rows, strings, JSON), and profiling showed glibc's
/// allocator taking about a quarter of the server's CPU under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tasks_api::cli::main(tasks_api::cli::Cli::parse())
}
