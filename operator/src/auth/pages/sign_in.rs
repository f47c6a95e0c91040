//! The pages before a session: `/login` (password, then code) and `/invite` (the token from the
//! link's fragment sets the password).

use axum::{
    extract::State as Extract,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use maud::html;

use super::layout::{layout, page, signed_in};
use crate::auth::state::State;

/// `/login`.
pub async fn login(Extract(st): Extract<State>, headers: HeaderMap) -> Response {
    if signed_in(&st, &headers).is_ok() {
        return Redirect::to("/account").into_response();
    }
    page(
        StatusCode::OK,
        layout(
            "Sign in",
            None,
            html! {
                section {
                    h1 { "Sign in" }
                    form data-api="/api/v1/login" data-then="/account" {
                        label for="login" { "Login (email address)" }
                        input #login name="login" type="email" autocomplete="username" required autofocus;
                        label for="password" { "Password" }
                        input #password name="password" type="password" autocomplete="current-password" required;
                        div data-mfa hidden {
                            label for="code" { "Code from your authenticator app" }
                            input #code name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" maxlength="6";
                        }
                        p.error data-error role="alert" hidden {}
                        button type="submit" { "Sign in" }
                    }
                }
            },
        ),
    )
}

/// `/invite`.
pub async fn invite() -> Response {
    page(
        StatusCode::OK,
        layout(
            "Set your password",
            None,
            html! {
                section {
                    h1 { "Set your password" }
                    form data-api="/api/v1/invitations/accept" data-then="done" {
                        input type="hidden" name="token";
                        label for="password" { "New password" }
                        input #password name="password" type="password" autocomplete="new-password" minlength="12" maxlength="128" required autofocus aria-describedby="policy";
                        p #policy .muted {
                            "At least 12 characters. A few unrelated words make a strong password; common passwords and ones containing your name or organisation are refused."
                        }
                        p.error data-error role="alert" hidden {}
                        button type="submit" { "Set password" }
                    }
                    p data-done hidden role="status" {
                        "Your password is set. " a href="/login" { "Sign in" }
                    }
                }
            },
        ),
    )
}
