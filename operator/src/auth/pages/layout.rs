//! What every page shares: the layout with the header (navigation, organisation switcher,
//! sign-out), the HTML answer, and the signed-in check.

use axum::{
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use maud::{DOCTYPE, Markup, html};
use usher_crds::permission::MANAGE_USER;

use crate::auth::{directory::Me, principal::Principal, state::AuthState};

/// A page: the header (with navigation when someone is signed in) and `body`.
pub fn layout(title: &str, header_me: Option<&Me>, body: Markup) -> Markup {
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
                                a href="/organisation/sessions" { "Sessions" }
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

/// An HTML answer.
pub fn page(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

/// A page with a title and one paragraph.
pub fn message_page(status: StatusCode, title: &str, text: &str) -> Response {
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
pub fn signed_in(st: &AuthState, headers: &HeaderMap) -> Result<(Principal, Me), Box<Response>> {
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
        .me(&p.account, &p.membership, p.enrolment_required, p.sees());
    Ok((p, me))
}

/// As [`signed_in`], for an organisation admin's page: someone who must still enroll TOTP goes
/// to `/account`, and someone without `manageUser` gets a 403 page saying that `needs` needs it.
pub fn signed_in_admin(
    st: &AuthState,
    headers: &HeaderMap,
    needs: &str,
) -> Result<(Principal, Me), Box<Response>> {
    let (p, me) = signed_in(st, headers)?;
    if me.mfa_enrolment_required {
        return Err(Box::new(Redirect::to("/account").into_response()));
    }
    if !me.permissions.iter().any(|x| x == MANAGE_USER) {
        return Err(Box::new(page(
            StatusCode::FORBIDDEN,
            layout(
                "Not allowed",
                Some(&me),
                html! { section { h1 { "Not allowed" } p { (needs) " needs the " code { (MANAGE_USER) } " permission in this organisation." } } },
            ),
        )));
    }
    Ok((p, me))
}
