//! tasks-api: a multi-user task API for Better Auth front ends, on SQLite
//! (embedded default) or PostgreSQL. `main.rs` only parses the command line;
//! everything else lives here so tests can build the real application.

pub mod api;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod metrics;
pub mod middleware;
pub mod rate_limit;
pub mod server;

pub use api::AppState;
pub use app::Application;
pub use config::Config;
