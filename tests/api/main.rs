//! The HTTP test suite: one binary, every test against the real server over
//! HTTP, on SQLite and (when `TEST_DATABASE_URL` is set) PostgreSQL.

mod helpers;

mod architecture;
mod auth;
mod changes;
mod cli;
mod compat;
mod concurrency;
mod deadlines;
mod errors;
mod events;
mod faults;
mod idempotency;
mod isolation;
mod jwks;
mod listing;
mod mcp;
mod migrations;
mod neon;
mod openapi;
mod operations;
mod statements;
mod tasks;
mod users;
mod validation;
