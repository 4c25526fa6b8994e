//! The HTTP surface: every route in one table, one module per resource.

mod auth_user;
pub mod changes;
mod compat;
mod deadline;
pub mod events;
mod extract;
mod health;
pub mod mcp;
mod me;
pub mod metrics;
pub mod openapi;
pub mod params;
pub mod responses;
mod state;
mod tasks;

pub use auth_user::AuthUser;
pub use state::{AppState, Shared};

use axum::{
    Router,
    routing::{get, patch},
};

/// Every route of API.md. Static segments win over `{user_id}`, so
/// `/api/v1/tasks` is never read as the compatibility route of a user "v1".
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/api/v1/tasks", get(tasks::list).post(tasks::create))
        .route(
            "/api/v1/tasks/{id}",
            get(tasks::get_one)
                .put(tasks::replace)
                .patch(tasks::update)
                .delete(tasks::delete),
        )
        .route("/api/v1/tasks/{id}/complete", patch(tasks::toggle))
        .route("/api/v1/me", get(me::get_me).delete(me::delete_me))
        .route("/api/v1/changes", get(changes::changes))
        .route("/api/v1/events", get(events::events))
        .route(
            "/api/{user_id}/tasks",
            get(compat::list).post(compat::create),
        )
        .route(
            "/api/{user_id}/tasks/{id}",
            get(compat::get_one)
                .put(compat::replace)
                .patch(compat::update)
                .delete(compat::delete),
        )
        .route("/api/{user_id}/tasks/{id}/complete", patch(compat::toggle))
}
