//! The page routes and their two assets (one script, one style sheet; nothing from elsewhere).

use axum::{Router, http::header, response::Redirect, routing::get};

use super::{account, sessions, sign_in, users};
use crate::auth::state::AuthState;

const SCRIPT: &str = include_str!("../../../assets/usher.js");
const STYLE: &str = include_str!("../../../assets/usher.css");

/// The page routes and their assets.
pub fn routes() -> Router<AuthState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/account") }))
        .route("/login", get(sign_in::login))
        .route("/invite", get(sign_in::invite))
        .route("/reset", get(sign_in::reset))
        .route("/organisation/sessions", get(sessions::sessions))
        .route("/account", get(account::account))
        .route("/organisation/users", get(users::users))
        .route(
            "/assets/usher.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    SCRIPT,
                )
            }),
        )
        .route(
            "/assets/usher.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE) }),
        )
}
