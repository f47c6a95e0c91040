//! `/account`: profile, two-factor authentication, sessions and the membership's API key.

use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
    response::Response,
};
use maud::html;

use super::layout::{layout, page, signed_in};
use crate::auth::{
    handlers::sessions::{alive, apps},
    state::AuthState,
};

/// `/account`.
pub async fn account(State(st): State<AuthState>, headers: HeaderMap) -> Response {
    let (p, me) = match signed_in(&st, &headers) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let has_key = p.membership.user.api_key_enabled();
    let sessions = alive(&st, &p.account);
    let current = p.session().ok().map(|c| c.sid.clone());
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
                @if me.totp_enrolled {
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
        @if st.passkeys.get().is_ok() {
            section #passkeys {
                h2 { "Passkeys" }
                p { "Sign in with your fingerprint, face or device PIN instead of a password and code. A passkey works only on this site, so a fake sign-in page cannot use it." }
                @if p.account.passkeys.keys.is_empty() {
                    p.muted { "No passkeys yet." }
                } @else {
                    table {
                        thead { tr { th { "Name" } th { "Added" } th { "Last used" } th {} } }
                        tbody {
                            @for k in &p.account.passkeys.keys {
                                tr data-passkey=(k.id) {
                                    td data-label="Name" { (k.name) }
                                    td data-label="Added" { (k.created_at.strftime("%Y-%m-%d %H:%M UTC")) }
                                    td data-label="Last used" { @match k.last_used_at { Some(t) => (t.strftime("%Y-%m-%d %H:%M UTC")), None => "never" } }
                                    td {
                                        form data-api=(format!("/api/v1/me/passkeys/{}", k.id)) data-method="DELETE" data-then="reload" {
                                            button.danger type="submit" { "Remove" }
                                            p.error data-error role="alert" hidden {}
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                form #passkey-add data-passkey-add {
                    label for="passkey-name" { "Name for a new passkey" }
                    input #passkey-name name="name" maxlength="64" placeholder="Laptop" required;
                    p.error data-error role="alert" hidden {}
                    button type="submit" { "Add a passkey" }
                }
            }
        }
        section #reauth-section {
            form #reauth data-api="/api/v1/me/reauthenticate" data-then="retry" hidden {
                h2 { "Confirm it is you" }
                p { "This needs a recent sign-in. Enter your password" @if me.totp_enrolled { " and a code from your authenticator app" } "." }
                label for="reauth-password" { "Password" }
                input #reauth-password name="password" type="password" autocomplete="current-password" required;
                @if me.totp_enrolled {
                    label for="reauth-code" { "Code from your authenticator app" }
                    input #reauth-code name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" maxlength="6" required;
                }
                p.error data-error role="alert" hidden {}
                button type="submit" { "Confirm" }
            }
        }
        section {
            h2 { "Password" }
            form data-api="/api/v1/me/password" data-then="done" {
                label for="current-password" { "Current password" }
                input #current-password name="currentPassword" type="password" autocomplete="current-password" required;
                label for="change-password" { "New password" }
                input #change-password name="newPassword" type="password" autocomplete="new-password" minlength="12" maxlength="128" required aria-describedby="change-policy";
                p #change-policy .muted { "At least 12 characters; common passwords and ones containing your name or organisation are refused. Your other sessions end." }
                p.error data-error role="alert" hidden {}
                button type="submit" { "Change password" }
            }
            p data-done hidden role="status" { "Your password is changed. Your other sessions are signed out." }
        }
        section {
            h2 { "Active sessions" }
            table {
                thead { tr { th { "Organisation" } th { "Since" } th { "Browser" } th { "Address" } th { "Apps" } th {} } }
                tbody {
                    @for s in &sessions {
                        tr data-session=(s.id) {
                            td data-label="Organisation" { (s.organisation) }
                            td data-label="Since" { (s.started_at.strftime("%Y-%m-%d %H:%M UTC")) }
                            td data-label="Browser" { (s.user_agent) }
                            td data-label="Address" { (s.address) }
                                td data-label="Apps" {
                                @for app in apps(&st, &p.account, &s.id) {
                                    div.app data-app=(app.client_id) {
                                        span { (app.display_name) " · " (app.organisation) }
                                        @if let Some(t) = app.last_refresh_at {
                                            span.muted { " · last refresh " (t.strftime("%Y-%m-%d %H:%M UTC")) }
                                        }
                                        form data-api=(format!("/api/v1/me/sessions/{}/apps/{}", s.id, app.client_id)) data-method="DELETE" data-then="reload" {
                                            button.secondary type="submit" { "Revoke" }
                                            p.error data-error role="alert" hidden {}
                                        }
                                    }
                                }
                            }
                            td {
                                @if current.as_deref() == Some(s.id.as_str()) {
                                    strong { "This session" }
                                } @else {
                                    form data-api=(format!("/api/v1/me/sessions/{}", s.id)) data-method="DELETE" {
                                        button.secondary type="submit" { "Sign out" }
                                        p.error data-error role="alert" hidden {}
                                    }
                                }
                            }
                        }
                    }
                }
            }
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
