//! The auth server's routes (DESIGN.md, "Auth server HTTP API") and what every request goes
//! through (see `middleware`). `/metrics` is not among them: it has a listener of its own.

use axum::{
    Router,
    extract::DefaultBodyLimit,
    middleware,
    routing::{delete, get, post},
};

use super::{
    error::{ApiError, BODY_LIMIT, ErrorCode},
    handlers::{
        admin, api_key, invitation, login, me, mfa, passkeys, password, probes, reauth, sessions,
        verify,
    },
    middleware::guard,
    oidc::handlers as oidc,
    oidc::logout as oidc_logout,
    oidc::tokens as oidc_tokens,
    pages,
    state::AuthState,
};

/// The server: every route of [`api`] behind [`layers`].
pub fn router(state: AuthState) -> Router {
    layers(api(), state)
}

/// Wraps routes in what every request goes through (`middleware::guard`: the body cap, the
/// cross-site rule, the time bound and the common headers), and adds forward-auth.
pub fn layers(routes: Router<AuthState>, state: AuthState) -> Router {
    routes
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        // Forward-auth, the hot path of every proxied request, stays outside the guard: it
        // reads no body, changes nothing and awaits nothing (no cap, rule or time bound to
        // apply), and sets the common headers itself.
        .route("/api/v1/verify", get(verify::verify))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// The routes of DESIGN.md's HTTP API, the pages and the probes (forward-auth is added by
/// [`layers`]).
pub fn api() -> Router<AuthState> {
    Router::new()
        .route("/api/v1/invitations/accept", post(invitation::accept))
        .route("/api/v1/login", post(login::login))
        .route("/api/v1/logout", post(login::logout))
        .route("/api/v1/me", get(me::me))
        .route("/api/v1/me/organisation", post(me::switch_organisation))
        .route(
            "/api/v1/me/mfa/totp",
            post(mfa::totp_start).delete(mfa::totp_disable),
        )
        .route("/api/v1/me/mfa/totp/confirm", post(mfa::totp_confirm))
        .route("/api/v1/me/password", post(password::change))
        .route("/api/v1/me/passkeys", get(passkeys::list))
        .route("/api/v1/me/passkeys/{id}", delete(passkeys::remove))
        .route(
            "/api/v1/me/passkeys/register/start",
            post(passkeys::register_start),
        )
        .route(
            "/api/v1/me/passkeys/register/finish",
            post(passkeys::register_finish),
        )
        .route("/api/v1/login/passkey/start", post(passkeys::login_start))
        .route("/api/v1/login/passkey/finish", post(passkeys::login_finish))
        .route("/api/v1/me/reauthenticate", post(reauth::reauthenticate))
        .route("/api/v1/me/sessions", get(sessions::mine))
        .route("/api/v1/me/sessions/{id}", delete(sessions::end_mine))
        .route(
            "/api/v1/me/sessions/{id}/apps/{client}",
            delete(sessions::revoke_app),
        )
        .route("/api/v1/password-reset", post(password::request))
        .route("/api/v1/password-reset/accept", post(password::accept))
        .route("/api/v1/sessions", get(sessions::organisation))
        .route(
            "/api/v1/sessions/{id}",
            delete(sessions::end_in_organisation),
        )
        .route("/.well-known/openid-configuration", get(oidc::discovery))
        .route("/oauth2/jwks", get(oidc::jwks))
        .route("/oauth2/authorize", get(oidc::authorize))
        .route("/oauth2/token", post(oidc::token))
        .route("/oauth2/userinfo", get(oidc::userinfo).post(oidc::userinfo))
        .route("/oauth2/revoke", post(oidc_tokens::revoke))
        .route("/oauth2/introspect", post(oidc_tokens::introspect))
        .route(
            "/oauth2/logout",
            get(oidc_logout::logout_get).post(oidc_logout::logout_post),
        )
        .route("/api/v1/me/api-key", get(api_key::view))
        .route("/api/v1/me/api-key/renew", post(api_key::renew_own))
        .merge(admin::routes())
        .merge(pages::routes())
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(probes::readyz))
        .fallback(|| async { ApiError::of(ErrorCode::NotFound, "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::of(
                ErrorCode::MethodNotAllowed,
                "this route does not take that method",
            )
        })
}
