//! RP-Initiated Logout 1.0 at `/oauth2/logout` (GET or POST): an app sends the person here to
//! sign out of Usher. The session the `id_token_hint` names ends (and the browser's own, when it
//! is the same person's); without a hint, the person confirms first, so a link on another site
//! cannot sign anyone out. The browser goes back only to a `post_logout_redirect_uri` the
//! client registered, exactly; anything else gets a page, never a redirect. The apps that got
//! tokens from the ended session hear of it by back-channel logout (`controller::logouts`).

use axum::{
    Form,
    extract::{Query, State},
    http::{HeaderMap, Method, StatusCode},
    response::{IntoResponse, Response},
};
use maud::html;
use serde::Deserialize;

use super::{handlers::redirect_with, provider::Registered};
use crate::audit::{Action, Outcome};
use crate::auth::trail;
use crate::auth::{
    pages::layout::{layout, message_page, page},
    principal::Via,
    state::AuthState,
};

/// The request's parameters (query for GET, form for POST).
#[derive(Debug, Default, Deserialize)]
pub struct LogoutParams {
    id_token_hint: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
    client_id: Option<String>,
    /// Set by Usher's own confirmation form.
    confirm: Option<String>,
}

/// What an ID token hint names.
struct Hint {
    sub: String,
    sid: String,
    aud: String,
}

/// `GET /oauth2/logout`.
pub async fn logout_get(
    State(st): State<AuthState>,
    headers: HeaderMap,
    Query(params): Query<LogoutParams>,
) -> Response {
    logout(st, headers, Method::GET, params).await
}

/// `POST /oauth2/logout`.
pub async fn logout_post(
    State(st): State<AuthState>,
    headers: HeaderMap,
    Form(params): Form<LogoutParams>,
) -> Response {
    logout(st, headers, Method::POST, params).await
}

fn unavailable() -> Response {
    message_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Cannot sign out now",
        "Try again in a moment.",
    )
}

fn bad(text: &str) -> Response {
    message_page(StatusCode::BAD_REQUEST, "Cannot sign out here", text)
}

async fn logout(
    st: AuthState,
    headers: HeaderMap,
    method: Method,
    params: LogoutParams,
) -> Response {
    // The hint: an ID token of ours (expired is fine: it names, it does not authenticate).
    let hint = match params.id_token_hint.as_deref() {
        None => None,
        Some(t) => match st
            .oidc
            .signer()
            .verify::<serde_json::Value>(t, "JWT", &st.origin)
        {
            Some(c) => Some(Hint {
                sub: c["sub"].as_str().unwrap_or_default().to_owned(),
                sid: c["sid"].as_str().unwrap_or_default().to_owned(),
                aud: c["aud"].as_str().unwrap_or_default().to_owned(),
            }),
            None => return bad("The id_token_hint is not an ID token of this provider."),
        },
    };
    // The client: named, or the hint's audience; both must agree.
    let client_id = match (
        params.client_id.as_deref(),
        hint.as_ref().map(|h| h.aud.as_str()),
    ) {
        (Some(a), Some(b)) if a != b => {
            return bad("client_id is not the audience of the id_token_hint.");
        }
        (Some(a), _) | (None, Some(a)) => Some(a.to_owned()),
        (None, None) => None,
    };
    let registered: Option<Registered> = match client_id.as_deref() {
        Some(id) => match st.oidc.client(id) {
            Some(r) => Some(r),
            None => return bad("unknown client"),
        },
        None => None,
    };
    let back = match (params.post_logout_redirect_uri.as_deref(), &registered) {
        (None, _) => None,
        (Some(_), None) => {
            return bad(
                "A post_logout_redirect_uri needs the client: send client_id or id_token_hint.",
            );
        }
        (Some(uri), Some(r)) => {
            if !r
                .client
                .spec
                .post_logout_redirect_uris
                .iter()
                .any(|u| u == uri)
            {
                return bad("The post_logout_redirect_uri is not one the app registered.");
            }
            Some(uri.to_owned())
        }
    };
    let current = st
        .authenticate_session(&headers)
        .ok()
        .and_then(|p| match p.via {
            Via::Session { claims, .. } => Some(claims),
            _ => None,
        });
    let mut clear_cookie = false;
    match &hint {
        Some(h) => {
            if !h.sid.is_empty() && st.directory.account(&h.sub).is_some() {
                let iat = session_start(&st, &h.sub, &h.sid);
                if st.end_session_id(&h.sub, &h.sid, iat).await.is_err() {
                    return unavailable();
                }
            }
            if let Some(c) = current.as_ref().filter(|c| c.acct == h.sub) {
                if st.end_session(c).await.is_err() {
                    return unavailable();
                }
                clear_cookie = true;
            }
        }
        None => {
            if let Some(c) = &current {
                let confirmed = method == Method::POST && params.confirm.as_deref() == Some("1");
                if !confirmed {
                    let app = registered
                        .as_ref()
                        .map(|r| r.client.display_name().to_owned());
                    return confirm_page(&params, app.as_deref());
                }
                if st.end_session(c).await.is_err() {
                    return unavailable();
                }
                clear_cookie = true;
            }
        }
    }
    let ended = hint.as_ref().map(|h| h.sub.clone()).or_else(|| {
        current
            .as_ref()
            .filter(|_| clear_cookie)
            .map(|c| c.acct.clone())
    });
    if let Some(account) = ended.and_then(|id| st.directory.account(&id)) {
        st.audit(
            st.audit_record(Action::SessionEnded, Outcome::Success, &headers)
                .by(crate::audit::Actor {
                    via: Some(crate::audit::Via::Oidc),
                    name: client_id.clone(),
                    ..trail::person(&account, None)
                })
                .on(trail::account_target(&account)),
        );
    }
    let res = match back {
        Some(uri) => {
            let mut q = Vec::new();
            if let Some(s) = params.state.as_deref() {
                q.push(("state", s));
            }
            redirect_with(&uri, &q)
        }
        None => message_page(
            StatusCode::OK,
            "Signed out",
            "You are signed out of Usher and of the apps you signed in to with it.",
        ),
    };
    if clear_cookie {
        (st.cookie_scope().clear(), res).into_response()
    } else {
        res
    }
}

/// When session `sid` of account `acct` began (Unix ms): from its record, else a grant of it,
/// else now (the ended session is then remembered a little longer than needed).
fn session_start(st: &AuthState, acct: &str, sid: &str) -> i64 {
    let account = st.directory.account(acct);
    account
        .as_ref()
        .and_then(|a| {
            a.sessions
                .iter()
                .find(|s| s.id == sid)
                .map(|s| s.started_at.as_millisecond())
                .or_else(|| {
                    a.grants
                        .iter()
                        .find(|g| g.session == sid)
                        .map(|g| g.session_iat)
                })
        })
        .unwrap_or_else(|| st.clock.now_ms())
}

/// Asks the person whether to sign out (a logout without an ID token hint).
fn confirm_page(params: &LogoutParams, app: Option<&str>) -> Response {
    page(
        StatusCode::OK,
        layout(
            "Sign out",
            None,
            html! {
                section {
                    h1 { "Sign out of Usher?" }
                    @if let Some(app) = app {
                        p { (app) " asks you to sign out. You will be signed out of Usher and of the apps you signed in to with it." }
                    } @else {
                        p { "You will be signed out of Usher and of the apps you signed in to with it." }
                    }
                    form method="post" action="/oauth2/logout" {
                        input type="hidden" name="confirm" value="1";
                        @if let Some(v) = &params.post_logout_redirect_uri { input type="hidden" name="post_logout_redirect_uri" value=(v); }
                        @if let Some(v) = &params.state { input type="hidden" name="state" value=(v); }
                        @if let Some(v) = &params.client_id { input type="hidden" name="client_id" value=(v); }
                        button type="submit" { "Sign out" }
                    }
                }
            },
        ),
    )
}
