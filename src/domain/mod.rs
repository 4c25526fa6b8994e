//! The domain: tasks, their validation, what a list asks for, and who a
//! token speaks for. Everything else builds on these types, and they on
//! nothing of the service's own: no HTTP (`axum`, `http`, `hyper`), no
//! storage driver, no configuration, no `ApiError` (tests/api/architecture.rs
//! holds that rule). So a validator or the list spec can be used, tested and
//! fuzzed without a server, and a new front door (MCP, events) reuses them.

pub mod changes;
pub mod input;
pub mod invalid;
pub mod listing;
pub mod task;
pub mod time;
pub mod user;

pub use invalid::{ERRORS_MAX, FieldError, Invalid};
pub use user::Claims;
