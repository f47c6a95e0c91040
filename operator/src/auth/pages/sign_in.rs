//! The pages before a session: `/login` (password, then code) and `/invite` (the token from the
//! link's fragment sets the password).

use axum::{
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use maud::html;
use serde::Deserialize;

use super::layout::{layout, page, signed_in};
use crate::auth::{settings::Settings, state::AuthState};

/// `rd` when the browser may be sent there after sign-in, as the normalised absolute URL to
/// emit: `rd` resolved against the public URL, http(s) (https when the public URL is), no
/// credentials, and its host the public URL's or one under the cookie domain. A value with a
/// control character, whitespace or `\` anywhere is refused outright, not cleaned: browsers
/// drop tabs and newlines inside URLs and read `\` as `/`, so `/<TAB>/evil.test` would become
/// `//evil.test`. Nothing else: no open redirect.
pub fn return_to(settings: &Settings, rd: &str) -> Option<String> {
    if rd
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
    {
        return None;
    }
    let url = url::Url::parse(&settings.public_url).ok()?.join(rd).ok()?;
    let scheme_ok = match url.scheme() {
        "https" => true,
        "http" => !settings.secure(),
        _ => false,
    };
    if !scheme_ok || !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    let host = url.host_str()?.to_ascii_lowercase();
    let under_domain = settings
        .cookie_domain
        .as_deref()
        .is_some_and(|d| host == d || host.ends_with(&format!(".{d}")));
    (host == settings.public_host() || under_domain).then(|| url.to_string())
}

/// `/login?rd=` takes.
#[derive(Deserialize)]
pub struct LoginQuery {
    /// Where to send the browser after sign-in (an app behind forward-auth).
    rd: Option<String>,
    /// Ask even when signed in (an app asked for a fresh sign-in: `prompt=login`, `max_age`).
    #[serde(default)]
    fresh: Option<String>,
    /// The login to fill in (an app's `login_hint`).
    login: Option<String>,
}

/// `/login`, and `/login?rd=<url>`: after sign-in (and the TOTP step) the browser goes back to
/// `rd` when it is on the public host or under the cookie domain; any other `rd` is ignored.
pub async fn login(
    State(st): State<AuthState>,
    Query(q): Query<LoginQuery>,
    headers: HeaderMap,
) -> Response {
    let then =
        q.rd.as_deref()
            .and_then(|rd| return_to(&st.settings, rd))
            .unwrap_or_else(|| "/account".to_owned());
    if q.fresh.is_none() && signed_in(&st, &headers).is_ok() {
        return Redirect::to(&then).into_response();
    }
    page(
        StatusCode::OK,
        layout(
            "Sign in",
            None,
            html! {
                section {
                    h1 { "Sign in" }
                    form #sign-in data-api="/api/v1/login" data-then=(then) {
                        label for="login" { "Login (email address)" }
                        input #login name="login" type="email" autocomplete="username webauthn" required autofocus value=[q.login.as_deref()];
                        label for="password" { "Password" }
                        input #password name="password" type="password" autocomplete="current-password" required;
                        div data-mfa="totp" hidden {
                            label for="code" { "Code from your authenticator app" }
                            input #code name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" maxlength="6";
                        }
                        p.error data-error role="alert" hidden {}
                        button type="submit" { "Sign in" }
                        div data-mfa="passkey" hidden {
                            button.secondary type="button" data-passkey-login="second" data-then=(then) { "Use your passkey" }
                        }
                    }
                    @if st.passkeys.get().is_ok() {
                        p {
                            button.secondary #passkey-sign-in type="button" data-passkey-login="discoverable" data-then=(then) { "Sign in with a passkey" }
                        }
                        p.error #passkey-error role="alert" hidden {}
                    }
                    p { a href="/reset" { "Forgot password?" } }
                }
            },
        ),
    )
}

/// `/reset`: without a token, asks for a link by email; with the link's token (in the
/// fragment), sets the new password.
pub async fn reset() -> Response {
    page(
        StatusCode::OK,
        layout(
            "Reset your password",
            None,
            html! {
                section data-without-token {
                    h1 { "Forgot your password?" }
                    form data-api="/api/v1/password-reset" data-then="done" {
                        p { "Enter your login. If it can sign in, a link to choose a new password is sent to it by email." }
                        label for="reset-login" { "Login (email address)" }
                        input #reset-login name="login" type="email" autocomplete="username" required autofocus;
                        p.error data-error role="alert" hidden {}
                        button type="submit" { "Send the link" }
                    }
                    p data-done hidden role="status" {
                        "If an account with this login can sign in, a link is on its way. It works once, for a limited time. "
                        a href="/login" { "Back to sign-in" }
                    }
                }
                section data-with-token hidden {
                    h1 { "Choose a new password" }
                    form #reset-form data-api="/api/v1/password-reset/accept" data-then="/login" {
                        input type="hidden" name="token";
                        label for="new-password" { "New password" }
                        input #new-password name="password" type="password" autocomplete="new-password" minlength="12" maxlength="128" required aria-describedby="reset-policy";
                        p #reset-policy .muted {
                            "At least 12 characters. A few unrelated words make a strong password; common passwords and ones containing your name or organisation are refused. Setting it signs you out everywhere."
                        }
                        p.error data-error role="alert" hidden {}
                        button type="submit" { "Set password" }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_public_host_and_the_cookie_domain_are_returned_to() {
        let mut s = Settings::new("usher-system", "https://login.example.com");
        assert_eq!(
            return_to(&s, "/account").as_deref(),
            Some("https://login.example.com/account")
        );
        assert_eq!(
            return_to(&s, "https://login.example.com/x").as_deref(),
            Some("https://login.example.com/x")
        );
        for bad in [
            "https://app.example.com/",
            "https://evil.test/",
            "//evil.test/",
            "/\\evil.test",
            "/\t/evil.test",
            "\t//evil.test",
            "/\n/evil.test",
            " //evil.test",
            "https:/\t/evil.test",
            "javascript:alert(1)",
            "http://login.example.com/",
            "https://login.example.com@evil.test/",
            "https://user@login.example.com/",
            "https://login.example.com.evil.test/",
        ] {
            assert_eq!(return_to(&s, bad), None, "{bad}");
        }
        s.cookie_domain = Some("example.com".into());
        assert_eq!(
            return_to(&s, "https://app.example.com/cases?id=7").as_deref(),
            Some("https://app.example.com/cases?id=7")
        );
        assert_eq!(
            return_to(&s, "https://example.com/").as_deref(),
            Some("https://example.com/")
        );
        assert_eq!(return_to(&s, "https://notexample.com/"), None);
        assert_eq!(return_to(&s, "https://evil.test/?example.com"), None);
    }
}
