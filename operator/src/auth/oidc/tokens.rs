//! What clients ask about the tokens they hold: revocation (RFC 7009) and introspection
//! (RFC 7662). Both authenticate the client as the token endpoint does.

use std::collections::HashMap;

use axum::{
    Form, Json,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use super::{
    handlers::{authenticate_client, token_error, token_parts},
    provider::Registered,
};
use crate::{
    account::grants::{self, Grant},
    auth::{principal::looks_like_jwt, state::AuthState},
};

/// `POST /oauth2/revoke` (RFC 7009): a refresh token ends its grant; so does an access token
/// (its grant's other tokens with it). The client itself asked: no back-channel logout goes to
/// it. A token that is unknown, expired or malformed is answered 200 all the same (§2.2); one
/// issued to another client is refused.
pub async fn revoke(
    State(st): State<AuthState>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let (registered, token) = match client_and_token(&st, &headers, &form) {
        Ok(x) => x,
        Err(res) => return *res,
    };
    let client_id = registered.record.client_id.clone();
    let Some((account, gid, owner)) = grant_of(&st, token) else {
        return revoked();
    };
    if owner != client_id {
        return token_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "the token was issued to another client",
        );
    }
    match st
        .update_account(&account, |a| Ok(grants::revoke(&mut a.grants, &gid)))
        .await
    {
        Ok(_) => revoked(),
        Err(e) if e.status.is_server_error() => token_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "try again",
        ),
        Err(_) => revoked(),
    }
}

/// The authenticated client and the `token` parameter, or the error answer.
fn client_and_token<'f>(
    st: &AuthState,
    headers: &HeaderMap,
    form: &'f HashMap<String, String>,
) -> Result<(Registered, &'f str), Box<Response>> {
    let registered = authenticate_client(st, headers, form)?;
    let token = form.get("token").ok_or_else(|| {
        Box::new(token_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the token is missing",
        ))
    })?;
    Ok((registered, token))
}

fn revoked() -> Response {
    (StatusCode::OK, [(header::CACHE_CONTROL, "no-store")]).into_response()
}

/// The account, grant and client a refresh token (whose hash is current or spent) or an access
/// token (signed by us) names.
fn grant_of(st: &AuthState, token: &str) -> Option<(String, String, String)> {
    if !token.starts_with("urt_") && looks_like_jwt(token) {
        let claims = st
            .oidc
            .signer()
            .verify::<super::core::AccessClaims>(token, "at+jwt", &st.origin)?;
        return Some((claims.sub, claims.gid, claims.client_id));
    }
    let (acct, gid) = token_parts(token, "urt_")?;
    let account = st.directory.account(acct)?;
    let hash = grants::token_hash(token);
    let g = account.grants.iter().find(|g| g.id == gid)?;
    let known = g.refresh_hash.as_deref() == Some(hash.as_str()) || g.spent.contains(&hash);
    known.then(|| (acct.to_owned(), gid.to_owned(), g.client_id.clone()))
}

/// `POST /oauth2/introspect` (RFC 7662), for confidential clients: whether a token is active
/// now (its session, grant and membership live), and what it says. A client learns only of
/// tokens acting in an organisation it serves (an access token), or issued to it (a refresh
/// token); anything else is `{"active": false}`.
pub async fn introspect(
    State(st): State<AuthState>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let (registered, token) = match client_and_token(&st, &headers, &form) {
        Ok(x) => x,
        Err(res) => return *res,
    };
    if registered.client.spec.public {
        return token_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "introspection is for confidential clients",
        );
    }
    let answer = if !token.starts_with("urt_") && looks_like_jwt(token) {
        access(&st, &registered, token)
    } else {
        refresh(&st, &registered.record.client_id, token)
    };
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(answer.unwrap_or_else(|| json!({"active": false}))),
    )
        .into_response()
}

fn access(st: &AuthState, registered: &Registered, token: &str) -> Option<Value> {
    let (p, c) = st.access_token(token).ok()?;
    if !st
        .oidc
        .serves(&registered.client, &p.membership.organisation)
    {
        return None;
    }
    Some(json!({
        "active": true,
        "token_type": "Bearer",
        "scope": c.scope,
        "client_id": c.client_id,
        "username": p.account.login,
        "sub": c.sub,
        "aud": c.aud,
        "iss": c.iss,
        "exp": c.exp,
        "iat": c.iat,
        "jti": c.jti,
        "sid": c.sid,
        "org": c.org,
    }))
}

fn refresh(st: &AuthState, client_id: &str, token: &str) -> Option<Value> {
    let (acct, gid) = token_parts(token, "urt_")?;
    let account = st.directory.account(acct)?;
    let hash = grants::token_hash(token);
    let g: &Grant = account.grants.iter().find(|g| {
        g.id == gid
            && g.client_id == client_id
            && g.refresh_hash
                .as_deref()
                .is_some_and(|h| crate::crypto::constant_time_eq(h.as_bytes(), hash.as_bytes()))
    })?;
    if g.expires_at <= st.clock.now() {
        return None;
    }
    st.grant_alive(&account, g).ok()?;
    Some(json!({
        "active": true,
        "token_type": "refresh_token",
        "scope": g.scope,
        "client_id": g.client_id,
        "username": account.login,
        "sub": account.id,
        "exp": g.expires_at.as_second(),
        "sid": g.session,
        "org": g.organisation,
    }))
}
