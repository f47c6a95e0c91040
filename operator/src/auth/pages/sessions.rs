//! `/organisation/sessions`: who is signed in to this organisation, since when, from which
//! browser and address, which apps each signed in to, with Kill per session; for `manageUser`
//! holders.

use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
    response::Response,
};
use maud::html;

use super::layout::{layout, page, signed_in_admin};
use crate::auth::{
    handlers::sessions::{apps, in_organisation},
    state::AuthState,
};

/// `/organisation/sessions`.
pub async fn sessions(State(st): State<AuthState>, headers: HeaderMap) -> Response {
    let (p, me) = match signed_in_admin(&st, &headers, "Seeing who is signed in") {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let ns = p.membership.organisation.namespace_name();
    let list = in_organisation(&st, &ns, &p.membership.org_name());
    let current = p.session().ok().map(|c| c.sid.clone());
    let org_display = p.membership.organisation.spec.display_name.clone();
    let body = html! {
        h1 { "Who is signed in to " (org_display) }
        section {
            @if list.is_empty() {
                p { "Nobody is signed in to this organisation." }
            } @else {
                table {
                    thead { tr { th { "Login" } th { "Name" } th { "Since" } th { "Browser" } th { "Address" } th { "Apps" } th { "Actions" } } }
                    tbody {
                        @for (user, account, s) in &list {
                            tr data-session=(s.id) {
                                td data-label="Login" { (user.spec.login) }
                                td data-label="Name" { (user.spec.full_name) }
                                td data-label="Since" { (s.started_at.strftime("%Y-%m-%d %H:%M UTC")) }
                                td data-label="Browser" { (s.user_agent) }
                                td data-label="Address" { (s.address) }
                                td data-label="Apps" {
                                    @for app in apps(&st, account, &s.id) {
                                        div.app data-app=(app.client_id) { (app.display_name) }
                                    }
                                }
                                td data-label="Actions" {
                                    @if current.as_deref() == Some(s.id.as_str()) {
                                        strong { "Your session" }
                                    } @else {
                                        form data-api=(format!("/api/v1/sessions/{}", s.id)) data-method="DELETE" {
                                            button.danger type="submit" { "Kill" }
                                            p.error data-error role="alert" hidden {}
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            p.muted { "Only sessions acting in this organisation are listed. Kill ends one session at its next request; Kill Session in " a href="/organisation/users" { "Users" } " ends all of a person's sessions here." }
        }
    };
    page(StatusCode::OK, layout("Sessions", Some(&me), body))
}
