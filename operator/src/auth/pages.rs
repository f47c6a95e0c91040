//! The web pages: `/login`, `/invite`, `/account` and `/organisation/users`, rendered on the
//! server with maud. One small script (`/assets/usher.js`) sends their forms as JSON to the API
//! and shows the answers; nothing is loaded from elsewhere. A page request without a session
//! goes to `/login` (303); API keys cannot use the pages.

use axum::{
    Router,
    extract::State as Extract,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
    routing::get,
};
use maud::{DOCTYPE, Markup, html};
use usher_crds::User;

use super::{State, admin::MANAGE_USER, directory::Me, routes::Principal};

const SCRIPT: &str = include_str!("../../assets/usher.js");
const STYLE: &str = include_str!("../../assets/usher.css");

/// The page routes and their assets.
pub fn routes() -> Router<State> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/account") }))
        .route("/login", get(login))
        .route("/invite", get(invite))
        .route("/account", get(account))
        .route("/organisation/users", get(users))
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

fn layout(title: &str, header_me: Option<&Me>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Usher" }
                link rel="stylesheet" href="/assets/usher.css";
                script src="/assets/usher.js" defer {}
            }
            body {
                header {
                    span.brand { "Usher" }
                    @if let Some(me) = header_me {
                        nav aria-label="Main" {
                            a href="/account" { "Account" }
                            @if me.permissions.iter().any(|p| p == MANAGE_USER) {
                                a href="/organisation/users" { "Users" }
                            }
                            form data-api="/api/v1/me/organisation" data-then="reload" {
                                label.visually-hidden for="org-switch" { "Organisation" }
                                select #org-switch name="organisation" aria-label="Organisation" data-autosubmit {
                                    @for org in &me.organisations {
                                        option value=(org.name) selected[org.name == me.organisation] {
                                            (org.display_name)
                                        }
                                    }
                                }
                                p.error data-error role="alert" hidden {}
                            }
                            form data-api="/api/v1/logout" data-then="/login" {
                                button.secondary type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

fn page(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

fn message_page(status: StatusCode, title: &str, text: &str) -> Response {
    page(
        status,
        layout(
            title,
            None,
            html! { section { h1 { (title) } p { (text) } } },
        ),
    )
}

/// The signed-in person, or the answer to give instead: `/login` without a valid session, 403
/// for API keys.
fn signed_in(st: &State, headers: &HeaderMap) -> Result<(Principal, Me), Box<Response>> {
    if headers.contains_key(header::AUTHORIZATION) {
        return Err(Box::new(message_page(
            StatusCode::FORBIDDEN,
            "Not with an API key",
            "API keys work with the API only. Sign in with your login and password to use these pages.",
        )));
    }
    let p = st
        .authenticate(headers, false)
        .map_err(|_| Box::new(Redirect::to("/login").into_response()))?;
    let me = st
        .directory
        .me(&p.account, &p.membership, p.enrolment_required);
    Ok((p, me))
}

async fn login(Extract(st): Extract<State>, headers: HeaderMap) -> Response {
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

async fn invite() -> Response {
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

async fn account(Extract(st): Extract<State>, headers: HeaderMap) -> Response {
    let (p, me) = match signed_in(&st, &headers) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let has_key = p.membership.user.api_key_enabled();
    let org_display = p.membership.organisation.spec.display_name.clone();
    let body = html! {
        h1 { "Your account" }
        @if me.mfa_enrolment_required {
            section role="alert" {
                h2 { "Set up two-factor authentication to continue" }
                p { (org_display) " requires two-factor authentication. Set it up below; the rest of Usher opens once it is confirmed." }
            }
        }
        section {
            h2 { "Profile" }
            p { "Signed in as " strong { (me.login) } " (" (me.full_name) ")" }
            p { "Organisation: " strong { (org_display) } " · profile " strong { (me.profile) } }
            p.muted { "Permissions: " (me.permissions.join(", ")) }
        }
        @if st.settings.mfa_enabled {
            section {
                h2 { "Two-factor authentication" }
                @if me.mfa_enrolled {
                    p { "TOTP is on: signing in asks for a code from your authenticator app." }
                    form data-api="/api/v1/me/mfa/totp" data-method="DELETE" data-then="reload" {
                        label for="disable-code" { "Code, to turn it off" }
                        input #disable-code name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" maxlength="6" required;
                        p.error data-error role="alert" hidden {}
                        button.danger type="submit" { "Turn off" }
                    }
                    p.muted { "Lost your device? Ask your platform operator to reset it." }
                } @else {
                    form data-api="/api/v1/me/mfa/totp" data-then="totp" {
                        p { "Protect your account with a code from an authenticator app." }
                        p.error data-error role="alert" hidden {}
                        button type="submit" { "Set up two-factor authentication" }
                    }
                    div #totp-confirm hidden {
                        p { "Scan this QR code with your authenticator app:" }
                        img #totp-qr .qr alt="QR code for your authenticator app";
                        p { "Or type this secret: " code #totp-secret .secret {} }
                        form data-api="/api/v1/me/mfa/totp/confirm" data-then="reload" {
                            label for="confirm-code" { "Code shown by the app" }
                            input #confirm-code name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" maxlength="6" required;
                            p.error data-error role="alert" hidden {}
                            button type="submit" { "Confirm" }
                        }
                    }
                }
            }
        }
        section {
            h2 { "Sessions" }
            p { "Signed in somewhere you no longer use? End every session of your account, this one included." }
            form data-api="/api/v1/logout?everywhere=true" data-then="/login" {
                p.error data-error role="alert" hidden {}
                button.danger type="submit" { "Sign out everywhere" }
            }
        }
        @if has_key && !me.mfa_enrolment_required {
            section {
                h2 { "API key" }
                p { "The API key of your membership in " (org_display) ". Apps send it as " code { "Authorization: Bearer …" } "." }
                form data-api="/api/v1/me/api-key" data-method="GET" data-then="key" {
                    p.error data-error role="alert" hidden {}
                    button.secondary type="submit" { "Show key" }
                }
                pre #api-key .secret hidden {}
                button #api-key-copy .secondary type="button" hidden { "Copy" }
                form data-api="/api/v1/me/api-key/renew" data-then="key" {
                    p.muted { "Renewing stops the current key at once (unless your admin set a grace period)." }
                    p.error data-error role="alert" hidden {}
                    button.danger type="submit" { "Renew key" }
                }
            }
        }
    };
    page(StatusCode::OK, layout("Account", Some(&me), body))
}

fn phase_text(u: &User) -> String {
    if u.spec.locked {
        return "Locked".into();
    }
    u.status
        .as_ref()
        .and_then(|s| s.phase)
        .map_or_else(|| "Pending".into(), |p| format!("{p:?}"))
}

async fn users(Extract(st): Extract<State>, headers: HeaderMap) -> Response {
    let (p, me) = match signed_in(&st, &headers) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    if me.mfa_enrolment_required {
        return Redirect::to("/account").into_response();
    }
    if !me.permissions.iter().any(|x| x == MANAGE_USER) {
        return page(
            StatusCode::FORBIDDEN,
            layout(
                "Not allowed",
                Some(&me),
                html! { section { h1 { "Not allowed" } p { "Managing users needs the " code { (MANAGE_USER) } " permission in this organisation." } } },
            ),
        );
    }
    let ns = p.membership.organisation.namespace_name();
    let list = st.directory.users_in(&ns);
    let mut profiles: Vec<String> = st
        .directory
        .profiles
        .all()
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    profiles.sort();
    let org_display = p.membership.organisation.spec.display_name.clone();
    let body = html! {
        h1 { "Users of " (org_display) }
        section {
            h2 { "Add User" }
            form data-api="/api/v1/users" data-then="reload" {
                label for="add-login" { "Login (email address)" }
                input #add-login name="login" type="email" required;
                label for="add-name" { "Full name" }
                input #add-name name="fullName" required;
                label for="add-profile" { "Profile" }
                select #add-profile name="profile" required {
                    @for prof in &profiles { option value=(prof) { (prof) } }
                }
                p.error data-error role="alert" hidden {}
                button type="submit" { "Add User" }
            }
        }
        section {
            table {
                thead { tr { th { "Login" } th { "Name" } th { "Profile" } th { "Status" } th { "MFA" } th { "API key" } th { "Actions" } } }
                tbody {
                    @for u in &list {
                        @let name = u.metadata.name.clone().unwrap_or_default();
                        @let fingerprint = u.status.as_ref().and_then(|s| s.api_key.as_ref()).and_then(|k| k.fingerprint.clone());
                        @let key_on = u.api_key_enabled();
                        tr data-user=(name) {
                            td data-label="Login" { (u.spec.login) }
                            td data-label="Name" { (u.spec.full_name) }
                            td data-label="Profile" { (u.spec.profile) }
                            td data-label="Status" { (phase_text(u)) }
                            td data-label="MFA" { @if u.status.as_ref().and_then(|s| s.mfa_enrolled).unwrap_or(false) { "on" } @else { "off" } }
                            td data-label="API key" {
                                @if let Some(f) = &fingerprint { code { (f) } } @else if key_on { "issuing…" } @else { "none" }
                            }
                            td data-label="Actions" {
                                button.secondary type="button" data-toggle=(format!("edit-{name}")) aria-label=(format!("Edit {}", u.spec.login)) { "✎ Edit" }
                                @if u.spec.locked {
                                    form data-api=(format!("/api/v1/users/{name}/unlock")) { button.secondary type="submit" { "Unlock" } p.error data-error role="alert" hidden {} }
                                } @else {
                                    form data-api=(format!("/api/v1/users/{name}/lock")) { button.danger type="submit" { "Lock" } p.error data-error role="alert" hidden {} }
                                }
                                form data-api=(format!("/api/v1/users/{name}/kill-session")) data-then="done" { button.secondary type="submit" { "Kill Session" } p.error data-error role="alert" hidden {} }
                                @if key_on {
                                    form data-api=(format!("/api/v1/users/{name}/api-key/renew")) { button.secondary type="submit" { "Renew" } p.error data-error role="alert" hidden {} }
                                } @else {
                                    form data-api=(format!("/api/v1/users/{name}/api-key")) { button.secondary type="submit" { "Create API Key" } p.error data-error role="alert" hidden {} }
                                }
                                form #(format!("edit-{name}")) data-api=(format!("/api/v1/users/{name}")) data-method="PATCH" hidden {
                                    label for=(format!("edit-{name}-fullName")) { "Full name" }
                                    input #(format!("edit-{name}-fullName")) name="fullName" value=(u.spec.full_name);
                                    label for=(format!("edit-{name}-login")) { "Login" }
                                    input #(format!("edit-{name}-login")) name="login" type="email" value=(u.spec.login);
                                    label for=(format!("edit-{name}-profile")) { "Profile" }
                                    select #(format!("edit-{name}-profile")) name="profile" {
                                        @for prof in &profiles { option value=(prof) selected[*prof == u.spec.profile] { (prof) } }
                                    }
                                    p.error data-error role="alert" hidden {}
                                    button type="submit" { "Save" }
                                }
                            }
                        }
                    }
                }
            }
            p data-done hidden role="status" { "Kill Session requested: that person's sessions end at their next request." }
        }
    };
    page(StatusCode::OK, layout("Users", Some(&me), body))
}
