//! tasks-api: a multi-user task API for Better Auth front ends, on SQLite
//! (embedded default) or PostgreSQL. `main.rs` only parses the command line;
//! everything else lives here so tests can build the real application.

pub mod api;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod error;
pub mod json;
pub mod listing;
pub mod metrics;
pub mod middleware;
pub mod rate_limit;
pub mod server;
pub mod task;

pub use app::{AppState, Application};
pub use config::Config;
