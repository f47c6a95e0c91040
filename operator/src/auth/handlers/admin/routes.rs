//! The admin API's routes.

use axum::{
    Router,
    routing::{get, patch, post},
};

use super::{actions, users};
use crate::auth::state::AuthState;

/// The admin routes.
pub fn routes() -> Router<AuthState> {
    Router::new()
        .route("/api/v1/users", get(users::list).post(users::add))
        .route("/api/v1/users/{name}", patch(users::edit))
        .route("/api/v1/users/{name}/lock", post(users::lock))
        .route("/api/v1/users/{name}/unlock", post(users::unlock))
        .route(
            "/api/v1/users/{name}/kill-session",
            post(actions::kill_session),
        )
        .route(
            "/api/v1/users/{name}/api-key",
            post(actions::create_api_key),
        )
        .route(
            "/api/v1/users/{name}/api-key/renew",
            post(actions::renew_api_key),
        )
        .route(
            "/api/v1/users/{name}/reset-password",
            post(actions::reset_password),
        )
}
