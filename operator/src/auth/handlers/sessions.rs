//! Sessions people and admins can see: one's own (`/api/v1/me/sessions`) and those acting in
//! the organisation (`/api/v1/sessions`, for `manageUser` holders, under the admin authority
//! rule), each ended by id.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use k8s_openapi::jiff::Timestamp;
use serde::Serialize;

use super::admin::Admin;
use crate::audit::{Action, Outcome};
use crate::auth::trail;
use crate::{
    account::{Account, sessions::SessionRecord},
    auth::{
        error::{ApiError, ErrorCode},
        principal::killed_since_in,
        state::AuthState,
    },
};
use crate::{auth::principal::SignedIn, reason::Reason};

/// A session as the API shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    /// Its id (what the DELETE routes take).
    pub id: String,
    /// The organisation it acts in.
    pub organisation: String,
    /// When it started.
    pub started_at: Timestamp,
    /// The browser or client.
    pub user_agent: String,
    /// The client's address.
    pub address: String,
    /// True for the session making this request.
    pub current: bool,
    /// The login (admin list only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
    /// The full name in this organisation (admin list only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub full_name: Option<String>,
    /// The apps (OpenID Connect clients) it signed in to.
    pub apps: Vec<AppView>,
}

/// An app a session signed in to: every live grant of one client in that session.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppView {
    /// The client's id (what the DELETE route takes).
    pub client_id: String,
    /// Its display name.
    pub display_name: String,
    /// The organisation it acts in.
    pub organisation: String,
    /// When it last got tokens (its sign-in, or its last refresh).
    pub last_refresh_at: Option<Timestamp>,
}

/// The apps session `sid` of `account` signed in to and may still refresh: grants that issued
/// tokens, neither ended nor expired; one per client, newest refresh first.
pub fn apps(st: &AuthState, account: &Account, sid: &str) -> Vec<AppView> {
    let now = st.clock.now();
    let mut out: Vec<AppView> = Vec::new();
    for g in account.grants.iter().filter(|g| {
        g.session == sid && g.issued_tokens() && g.ended_at.is_none() && g.expires_at > now
    }) {
        match out.iter_mut().find(|a| a.client_id == g.client_id) {
            Some(a) => a.last_refresh_at = a.last_refresh_at.max(g.refreshed_at),
            None => out.push(AppView {
                client_id: g.client_id.clone(),
                display_name: st.oidc.client(&g.client_id).map_or_else(
                    || g.client_id.clone(),
                    |r| r.client.display_name().to_owned(),
                ),
                organisation: g.organisation.clone(),
                last_refresh_at: g.refreshed_at,
            }),
        }
    }
    out.sort_by_key(|a| std::cmp::Reverse(a.last_refresh_at));
    out
}

/// The sessions of `account` that are still alive: not signed out, not ended by a revocation
/// (account-wide, or a Kill Session in their organisation), not past their lifetime.
pub fn alive(st: &AuthState, account: &Account) -> Vec<SessionRecord> {
    let now = st.clock.now();
    account
        .sessions
        .iter()
        .filter(|s| s.expires_at > now)
        .filter(|s| !account.sessions_ended.contains_key(&s.id))
        .filter(|s| !account.revoked_since(s.started_at.as_millisecond()))
        .filter(|s| !killed_since_in(st, account, &s.organisation, s.started_at.as_millisecond()))
        .cloned()
        .collect()
}

fn view(st: &AuthState, account: &Account, s: SessionRecord, current: Option<&str>) -> SessionView {
    SessionView {
        apps: apps(st, account, &s.id),
        current: current == Some(s.id.as_str()),
        id: s.id,
        organisation: s.organisation,
        started_at: s.started_at,
        user_agent: s.user_agent,
        address: s.address,
        login: None,
        full_name: None,
    }
}

fn not_found() -> ApiError {
    ApiError::of(
        ErrorCode::SessionNotFound,
        "no such session: it ended already, or it is not one you can see",
    )
}

/// `GET /api/v1/me/sessions`.
pub async fn mine(
    State(st): State<AuthState>,
    SignedIn(p): SignedIn,
) -> Result<Response, ApiError> {
    let sid = p.session()?.sid.clone();
    let list: Vec<SessionView> = alive(&st, &p.account)
        .into_iter()
        .map(|s| view(&st, &p.account, s, Some(&sid)))
        .collect();
    Ok(p.respond(Json(list)))
}

/// `DELETE /api/v1/me/sessions/{id}`: 204; ending the current one signs this browser out.
pub async fn end_mine(
    State(st): State<AuthState>,
    SignedIn(p): SignedIn,
    headers: axum::http::HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let current = p.session()?.sid == id;
    let record = alive(&st, &p.account)
        .into_iter()
        .find(|s| s.id == id)
        .ok_or_else(not_found)?;
    st.end_session_id(
        &p.account.id,
        &record.id,
        record.started_at.as_millisecond(),
    )
    .await?;
    st.audit(
        st.audit_record(Action::SessionEnded, Outcome::Success, &headers)
            .by(trail::actor(&p))
            .on(trail::account_target(&p.account))
            .in_organisation(record.organisation.clone()),
    );
    if current {
        return Ok((StatusCode::NO_CONTENT, st.cookie_scope().clear()).into_response());
    }
    Ok(p.respond(StatusCode::NO_CONTENT))
}

/// `DELETE /api/v1/me/sessions/{id}/apps/{client}`: 204; the app's grants in that session end
/// (its tokens stop; the app is told by back-channel logout). The session goes on.
pub async fn revoke_app(
    State(st): State<AuthState>,
    SignedIn(p): SignedIn,
    Path((id, client)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    if !apps(&st, &p.account, &id)
        .iter()
        .any(|a| a.client_id == client)
    {
        return Err(ApiError::of(
            ErrorCode::NotFound,
            "no such app in that session: it was revoked already, or the session ended",
        ));
    }
    let now = st.clock.now();
    st.update_account(&p.account.id, |a| {
        Ok(crate::account::grants::end(&mut a.grants, now, |g| {
            g.session == id && g.client_id == client
        }) > 0)
    })
    .await?;
    Ok(p.respond(StatusCode::NO_CONTENT))
}

/// A session acting in an organisation, with the member and the account it belongs to.
pub type MemberSession = (std::sync::Arc<usher_crds::User>, Account, SessionRecord);

/// The sessions acting in organisation `org` (whose Users live in `namespace`), newest first.
pub fn in_organisation(st: &AuthState, namespace: &str, org: &str) -> Vec<MemberSession> {
    let mut out = Vec::new();
    for user in st.directory.users_in(namespace) {
        let Some(account) = st
            .directory
            .account(&crate::account::account_id(&user.spec.login))
        else {
            continue;
        };
        for s in alive(st, &account) {
            if s.organisation == org {
                out.push((user.clone(), (*account).clone(), s));
            }
        }
    }
    out.sort_by_key(|(_, _, s)| std::cmp::Reverse(s.started_at));
    out
}

/// `GET /api/v1/sessions`: who is signed in to this organisation, since when, from where.
pub async fn organisation(State(st): State<AuthState>, admin: Admin) -> Result<Response, ApiError> {
    let current = match &admin.principal.via {
        crate::auth::principal::Via::Session { claims, .. } => Some(claims.sid.clone()),
        crate::auth::principal::Via::Bearer | crate::auth::principal::Via::Token { .. } => None,
    };
    let org = admin.principal.membership.org_name();
    let list: Vec<SessionView> = in_organisation(&st, &admin.namespace, &org)
        .into_iter()
        .map(|(user, account, s)| SessionView {
            login: Some(user.spec.login.clone()),
            full_name: Some(user.spec.full_name.clone()),
            ..view(&st, &account, s, current.as_deref())
        })
        .collect();
    Ok(admin.principal.respond(Json(list)))
}

/// `DELETE /api/v1/sessions/{id}`: 204; a session of a member whose profile the admin holds.
pub async fn end_in_organisation(
    State(st): State<AuthState>,
    admin: Admin,
    headers: axum::http::HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let org = admin.principal.membership.org_name();
    let (user, account, record) = in_organisation(&st, &admin.namespace, &org)
        .into_iter()
        .find(|(_, _, s)| s.id == id)
        .ok_or_else(not_found)?;
    let denied = |e: ApiError| {
        st.audit(
            st.audit_record(Action::SessionKilled, Outcome::Denied, &headers)
                .by(trail::actor(&admin.principal))
                .on(trail::user_target(&user))
                .in_organisation(org.clone())
                .because(e.code.as_str()),
        );
        e
    };
    admin.may_act_on(&st, &user).map_err(denied)?;
    st.end_session_id(&account.id, &record.id, record.started_at.as_millisecond())
        .await?;
    st.audit(
        st.audit_record(Action::SessionKilled, Outcome::Success, &headers)
            .by(trail::actor(&admin.principal))
            .on(trail::user_target(&user))
            .in_organisation(org.clone()),
    );
    admin
        .record(&st, &user, Reason::SessionEnded, "a session ended")
        .await;
    Ok(admin.principal.respond(StatusCode::NO_CONTENT))
}
