//! The `tasks-api` binary: parse the command line and hand over to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    tasks_api::cli::main(tasks_api::cli::Cli::parse())
}
