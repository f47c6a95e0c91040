//! `/organisation/users`: the Organisation > Users table for `manageUser` holders.

use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
    response::Response,
};
use maud::html;
use usher_crds::User;

use super::layout::{layout, page, signed_in_admin};
use crate::auth::state::AuthState;

fn phase_text(u: &User) -> String {
    if u.spec.locked {
        return "Locked".into();
    }
    u.status
        .as_ref()
        .and_then(|s| s.phase)
        .map_or_else(|| "Pending".into(), |p| format!("{p:?}"))
}

/// `/organisation/users`.
pub async fn users(State(st): State<AuthState>, headers: HeaderMap) -> Response {
    let (p, me) = match signed_in_admin(&st, &headers, "Managing users") {
        Ok(x) => x,
        Err(r) => return *r,
    };
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
    // Users managed in Git are changed in the repository; here only the one-shot actions stay.
    let editable = !p.membership.organisation.managed_in_git();
    let body = html! {
        h1 { "Users of " (org_display) }
        @if !editable {
            p.notice role="note" #managed-in-git {
                strong { "Managed in Git. " }
                "This organisation's users come from its Git repository (Argo CD or Flux): add, edit, lock and API keys are changed there. Kill Session, Reset password and Renew still work here."
            }
        }
        @if editable { section {
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
        } }
        section {
            table {
                thead { tr { th { "Login" } th { "Name" } th { "Profile" } th { "Status" } th { "MFA" } th { "API key" } th { "Actions" } } }
                tbody {
                    @for u in &list {
                        @let name = u.metadata.name.clone().unwrap_or_default();
                        @let key_on = u.api_key_enabled();
                        @let fingerprint = if key_on { st.directory.key_fingerprint(u) } else { None };
                        tr data-user=(name) {
                            td data-label="Login" { (u.spec.login) }
                            td data-label="Name" { (u.spec.full_name) }
                            td data-label="Profile" { (u.spec.profile) }
                            td data-label="Status" { (phase_text(u)) @if u.is_service() { " · " span.badge { "service user" } } }
                            td data-label="MFA" { @if u.status.as_ref().and_then(|s| s.mfa_enrolled).unwrap_or(false) { "on" } @else { "off" } }
                            td data-label="API key" {
                                @if let Some(f) = &fingerprint { code { (f) } } @else if key_on { "issuing…" } @else { "none" }
                            }
                            td data-label="Actions" {
                                @if editable {
                                    button.secondary type="button" data-toggle=(format!("edit-{name}")) aria-label=(format!("Edit {}", u.spec.login)) { "✎ Edit" }
                                    @if u.spec.locked {
                                        form data-api=(format!("/api/v1/users/{name}/unlock")) { button.secondary type="submit" { "Unlock" } p.error data-error role="alert" hidden {} }
                                    } @else {
                                        form data-api=(format!("/api/v1/users/{name}/lock")) { button.danger type="submit" { "Lock" } p.error data-error role="alert" hidden {} }
                                    }
                                }
                                @if !u.is_service() {
                                    form data-api=(format!("/api/v1/users/{name}/kill-session")) data-then="done" data-done-id="killed" { button.secondary type="submit" { "Kill Session" } p.error data-error role="alert" hidden {} }
                                }
                                @if !u.is_service() && u.status.as_ref().and_then(|s| s.activated_at.as_ref()).is_some() {
                                    form data-api=(format!("/api/v1/users/{name}/reset-password")) data-then="done" data-done-id="reset-sent" { button.secondary type="submit" { "Reset password" } p.error data-error role="alert" hidden {} }
                                }
                                @if key_on {
                                    form data-api=(format!("/api/v1/users/{name}/api-key/renew")) { button.secondary type="submit" { "Renew" } p.error data-error role="alert" hidden {} }
                                } @else if editable {
                                    form data-api=(format!("/api/v1/users/{name}/api-key")) { button.secondary type="submit" { "Create API Key" } p.error data-error role="alert" hidden {} }
                                }
                                @if editable { form #(format!("edit-{name}")) data-api=(format!("/api/v1/users/{name}")) data-method="PATCH" hidden {
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
                                } }
                            }
                        }
                    }
                }
            }
            p #killed data-done hidden role="status" { "Kill Session requested: that person's sessions in this organisation end at their next request." }
            p #reset-sent data-done hidden role="status" { "Password reset requested: a link goes to that person by email." }
            p { a href="/organisation/sessions" { "Who is signed in to this organisation" } }
        }
    };
    page(StatusCode::OK, layout("Users", Some(&me), body))
}
