//! The OpenID Connect endpoints (DESIGN.md, "OpenID Connect provider"): thin handlers that read
//! the request and the caches, ask `core` what to do, and write the grant to the account.

use std::collections::HashMap;

use axum::{
    Form, Json,
    extract::{OriginalUri, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::{
    Engine as _,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use maud::html;
use serde_json::json;

use super::{
    core::{self, AccessClaims, AuthorizeParams, Choice, Person, Refusal},
    provider::Registered,
};
use crate::audit::{Action, Outcome};
use crate::auth::trail;
use crate::{
    account::{
        Account,
        grants::{self, Grant, PendingCode, Presented, Refused},
    },
    auth::{
        directory::Membership,
        pages::layout::{layout, message_page, page},
        principal::{Via, bearer_token, killed_since},
        session::Claims,
        state::AuthState,
    },
    crypto::random_bytes,
};

/// `GET /.well-known/openid-configuration`.
pub async fn discovery(State(st): State<AuthState>) -> Response {
    let issuer = &st.origin;
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/oauth2/authorize"),
        "token_endpoint": format!("{issuer}/oauth2/token"),
        "userinfo_endpoint": format!("{issuer}/oauth2/userinfo"),
        "jwks_uri": format!("{issuer}/oauth2/jwks"),
        "end_session_endpoint": format!("{issuer}/oauth2/logout"),
        "revocation_endpoint": format!("{issuer}/oauth2/revoke"),
        "introspection_endpoint": format!("{issuer}/oauth2/introspect"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": core::SCOPES,
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "sid", "amr", "azp",
            "email", "email_verified", "name", "preferred_username", "org", "org_display_name",
            "profile", "permissions", "groups"],
        "prompt_values_supported": ["none", "login"],
        "authorization_response_iss_parameter_supported": true,
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
    }))
    .into_response()
}

/// `GET /oauth2/jwks`.
pub async fn jwks(State(st): State<AuthState>) -> Response {
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(st.oidc.signer().jwks().clone()),
    )
        .into_response()
}

/// A redirect (302) to `uri` with `params` added to its query.
pub(super) fn redirect_with(uri: &str, params: &[(&str, &str)]) -> Response {
    let mut url = match url::Url::parse(uri) {
        Ok(u) => u,
        Err(_) => {
            return message_page(
                StatusCode::BAD_REQUEST,
                "Cannot sign in to this app",
                "The app's redirect address is not valid.",
            );
        }
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
    }
    (StatusCode::FOUND, [(header::LOCATION, url.to_string())]).into_response()
}

fn refuse(
    st: &AuthState,
    uri: &str,
    error: &str,
    description: &str,
    state: Option<&str>,
) -> Response {
    let mut params = vec![
        ("error", error),
        ("error_description", description),
        ("iss", st.origin.as_str()),
    ];
    if let Some(s) = state {
        params.push(("state", s));
    }
    redirect_with(uri, &params)
}

/// `GET /oauth2/authorize`: the browser arrives from the app; with a session (fresh enough,
/// acting where the app may sign people in) it goes back with a code, else to sign in first.
pub async fn authorize(
    State(st): State<AuthState>,
    OriginalUri(original): OriginalUri,
    Query(params): Query<AuthorizeParams>,
    headers: HeaderMap,
) -> Response {
    let now_ms = st.clock.now_ms();
    let registered = params
        .client_id
        .as_deref()
        .and_then(|id| st.oidc.client(id));
    let valid = match core::authorize(
        &params,
        registered.as_ref().map(|r| r.client.as_ref()),
        now_ms,
    ) {
        Ok(v) => v,
        Err(Refusal::Page(text)) => {
            return message_page(StatusCode::BAD_REQUEST, "Cannot sign in to this app", &text);
        }
        Err(Refusal::Redirect {
            uri,
            error,
            description,
            state,
        }) => {
            return refuse(&st, &uri, error, &description, state.as_deref());
        }
    };
    let Some(Registered { client, .. }) = registered else {
        return message_page(
            StatusCode::BAD_REQUEST,
            "Cannot sign in to this app",
            "unknown client",
        );
    };
    let back = |e: &str, d: &str| refuse(&st, &valid.redirect_uri, e, d, valid.state.as_deref());
    // The person the app expects, from an ID token of ours (it authenticates nobody).
    let hinted = match params.id_token_hint.as_deref() {
        None => None,
        Some(hint) => match st
            .oidc
            .signer()
            .verify::<serde_json::Value>(hint, "JWT", &st.origin)
        {
            Some(claims) => claims["sub"].as_str().map(str::to_owned),
            None => {
                return back(
                    "invalid_request",
                    "id_token_hint is not an ID token this provider issued",
                );
            }
        },
    };
    let principal = st.authenticate_session(&headers).ok();
    // Someone else is signed in here: they sign in as the person the app expects, or nobody.
    if let (Some(sub), Some(p)) = (&hinted, &principal)
        && *sub != p.account.id
    {
        if valid.prompt_none {
            return back("login_required", "another person is signed in to Usher");
        }
        return to_sign_in(&original, &params, true, now_ms);
    }
    let session = principal.as_ref().and_then(|p| match &p.via {
        Via::Session { claims, .. } => Some(claims.clone()),
        _ => None,
    });
    let fresh =
        |c: &Claims| !valid.wants_fresh_sign_in && valid.fresh_after.is_none_or(|t| c.auth >= t);
    let (Some(p), Some(claims)) = (principal, session.filter(fresh)) else {
        if valid.prompt_none {
            return back("login_required", "the person is not signed in to Usher");
        }
        return to_sign_in(&original, &params, valid.fresh_after.is_some(), now_ms);
    };
    let account = p.account.clone();
    // The memberships this client may sign in, among the person's.
    let served: Vec<Membership> = st
        .directory
        .memberships(&account.login)
        .into_iter()
        .filter(|m| m.can_sign_in() && st.oidc.serves(&client, &m.organisation))
        .collect();
    let names: Vec<String> = served.iter().map(Membership::org_name).collect();
    let org = match core::choose(&names, valid.organisation.as_deref()) {
        Choice::One(org) => org,
        Choice::Refused => {
            return back(
                "access_denied",
                "the person is not a member of an organisation this app serves",
            );
        }
        Choice::Ask(orgs) => {
            if valid.prompt_none {
                return back(
                    "interaction_required",
                    "the person must choose an organisation",
                );
            }
            return chooser(&original, client.display_name(), &served, &orgs);
        }
    };
    let Some(m) = served.into_iter().find(|m| m.org_name() == org) else {
        return back("access_denied", "not a member of that organisation");
    };
    if killed_since(&account, &m, claims.iat) {
        return to_sign_in(&original, &params, true, now_ms);
    }
    if st.enrolment_required(&account, &m) {
        return back(
            "access_denied",
            "the organisation requires two-factor authentication: add a passkey or enroll TOTP in your Usher account first",
        );
    }
    if let Some(missing) = core::missing_permission(&client, &m.permissions()) {
        return back(
            "access_denied",
            &format!("your profile lacks the permission {missing} this app requires"),
        );
    }
    if client.spec.require_mfa && !claims.mfa {
        if account.mfa_enrolled() && !valid.prompt_none {
            return to_sign_in(&original, &params, true, now_ms);
        }
        return back(
            "access_denied",
            "this app requires two-factor authentication: add a passkey or enroll TOTP in your Usher account, then sign in again",
        );
    }
    // The grant, with its code.
    let (Ok(gid), Ok(secret)) = (random_bytes::<16>(), random_bytes::<32>()) else {
        return back("server_error", "try again");
    };
    let gid = URL_SAFE_NO_PAD.encode(gid);
    let code = format!(
        "uac_{}.{gid}.{}",
        account.id,
        URL_SAFE_NO_PAD.encode(secret)
    );
    let now = st.clock.now();
    let expires_ms = claims
        .iat
        .saturating_add(i64::try_from(st.settings.max_lifetime.as_millis()).unwrap_or(i64::MAX));
    let amr = core::amr(claims.mfa, claims.passkey.as_deref());
    let grant = Grant {
        id: gid,
        client_id: valid.client_id.clone(),
        session: claims.sid.clone(),
        session_iat: claims.iat,
        organisation: org,
        user_uid: m.user.metadata.uid.clone().unwrap_or_default(),
        scope: valid.scopes.join(" "),
        nonce: valid.nonce.clone(),
        auth_time: claims.auth.div_euclid(1000),
        amr,
        expires_at: k8s_openapi::jiff::Timestamp::from_millisecond(expires_ms).unwrap_or(now),
        code: Some(PendingCode {
            hash: grants::token_hash(&code),
            expires_at: now + k8s_openapi::jiff::SignedDuration::from_secs(core::CODE_LIFETIME_S),
            redirect_uri: valid.redirect_uri.clone(),
            challenge: valid.challenge.clone(),
        }),
        refresh_hash: None,
        spent: vec![],
        issuer: st.origin.clone(),
        refreshed_at: None,
        ended_at: None,
    };
    let written = st
        .update_account(&account.id, |a| {
            grants::add(&mut a.grants, grant.clone(), now);
            Ok(true)
        })
        .await;
    if written.is_err() {
        return back("temporarily_unavailable", "try again in a moment");
    }
    let mut out = vec![("code", code.as_str()), ("iss", st.origin.as_str())];
    if let Some(s) = valid.state.as_deref() {
        out.push(("state", s));
    }
    p.respond(redirect_with(&valid.redirect_uri, &out))
}

/// To the sign-in page, which comes back to this request; `fresh`: a new sign-in is required
/// (the page asks even when a session exists), which this request then checks for.
fn to_sign_in(
    original: &axum::http::Uri,
    params: &AuthorizeParams,
    fresh: bool,
    now_ms: i64,
) -> Response {
    let mut back = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in url::form_urlencoded::parse(original.query().unwrap_or_default().as_bytes()) {
        if fresh && (k == "prompt" || k == "auth_after" || k == "max_age") {
            continue;
        }
        back.append_pair(&k, &v);
    }
    if fresh {
        back.append_pair("auth_after", &now_ms.to_string());
    }
    let rd = format!("{}?{}", original.path(), back.finish());
    let mut login = url::form_urlencoded::Serializer::new(String::new());
    login.append_pair("rd", &rd);
    if fresh {
        login.append_pair("fresh", "1");
    }
    if let Some(hint) = params.login_hint.as_deref().filter(|h| h.len() <= 320) {
        login.append_pair("login", hint);
    }
    (
        StatusCode::FOUND,
        [(header::LOCATION, format!("/login?{}", login.finish()))],
    )
        .into_response()
}

/// The organisation chooser: one link per organisation, back to this request naming it.
fn chooser(
    original: &axum::http::Uri,
    app: &str,
    served: &[Membership],
    orgs: &[String],
) -> Response {
    let link = |org: &str| {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in url::form_urlencoded::parse(original.query().unwrap_or_default().as_bytes()) {
            if k != "organisation" {
                q.append_pair(&k, &v);
            }
        }
        q.append_pair("organisation", org);
        format!("{}?{}", original.path(), q.finish())
    };
    page(
        StatusCode::OK,
        layout(
            "Choose an organisation",
            None,
            html! {
                section {
                    h1 { "Sign in to " (app) }
                    p { "You are a member of several organisations this app serves. Which one?" }
                    ul.organisations {
                        @for org in orgs {
                            @let display = served.iter().find(|m| m.org_name() == *org).map(|m| m.organisation.spec.display_name.clone()).unwrap_or_else(|| org.clone());
                            li { a href=(link(org)) data-organisation=(org) { (display) } }
                        }
                    }
                }
            },
        ),
    )
}

/// An OAuth error answer of the token endpoint (RFC 6749 §5.2).
pub(super) fn token_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut res = (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"usher\""),
        );
    }
    res
}

/// The client a token request authenticates as: `client_secret_basic`, `client_secret_post`,
/// or a public client's bare `client_id`.
pub(super) fn authenticate_client(
    st: &AuthState,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<Registered, Box<Response>> {
    let invalid = || {
        Box::new(token_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        ))
    };
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        })
        .map(|b| {
            let raw = STANDARD.decode(b.trim()).map_err(|_| invalid())?;
            let raw = String::from_utf8(raw).map_err(|_| invalid())?;
            let (id, secret) = raw.split_once(':').ok_or_else(invalid)?;
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            Ok::<_, Box<Response>>((decode(id), Some(decode(secret))))
        })
        .transpose()?;
    if basic.is_some() && form.contains_key("client_secret") {
        return Err(Box::new(token_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "use one client authentication method",
        )));
    }
    let (id, secret) = match basic {
        Some(b) => b,
        None => (
            form.get("client_id").cloned().ok_or_else(invalid)?,
            form.get("client_secret").cloned(),
        ),
    };
    if form.get("client_id").is_some_and(|f| *f != id) {
        return Err(invalid());
    }
    let registered = st.oidc.client(&id).ok_or_else(invalid)?;
    let ok = match (registered.client.spec.public, secret.as_deref()) {
        (true, None) => true,
        (false, Some(s)) => registered.record.secret_matches(s),
        _ => false,
    };
    if !ok {
        return Err(invalid());
    }
    Ok(registered)
}

/// Splits a code or refresh token (`<prefix><account>.<grant>.<secret>`).
pub(super) fn token_parts<'a>(token: &'a str, prefix: &str) -> Option<(&'a str, &'a str)> {
    let rest = token.strip_prefix(prefix)?;
    let mut it = rest.splitn(3, '.');
    let (acct, gid, secret) = (it.next()?, it.next()?, it.next()?);
    (acct.len() == 20 && !gid.is_empty() && !secret.is_empty() && token.len() < 256)
        .then_some((acct, gid))
}

/// `POST /oauth2/token`.
pub async fn token(
    State(st): State<AuthState>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let registered = match authenticate_client(&st, &headers, &form) {
        Ok(r) => r,
        Err(res) => return *res,
    };
    let client_id = oidc_id(&registered);
    let invalid_grant = |d: &str| token_error(StatusCode::BAD_REQUEST, "invalid_grant", d);
    let Ok(next) = random_bytes::<32>() else {
        return token_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "try again",
        );
    };
    let now = st.clock.now();
    let (kind, presented) = match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => ("uac_", form.get("code")),
        Some("refresh_token") => ("urt_", form.get("refresh_token")),
        _ => {
            return token_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "grant_type must be authorization_code or refresh_token",
            );
        }
    };
    let Some(presented) = presented else {
        return token_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the code or refresh_token is missing",
        );
    };
    let Some((acct, gid)) = token_parts(presented, kind) else {
        return invalid_grant("the code or refresh token is not valid");
    };
    // Only an account the caches hold: a made-up code costs the API server nothing.
    if st.directory.account(acct).is_none() {
        return invalid_grant("the code or refresh token is not valid");
    }
    let refresh = format!("urt_{acct}.{gid}.{}", URL_SAFE_NO_PAD.encode(next));
    let hash = grants::token_hash(presented);
    let mut outcome: Result<Grant, Refused> = Err(Refused::Invalid);
    let written = st
        .update_account(acct, |a| {
            outcome = if kind == "uac_" {
                let p = Presented {
                    grant: gid,
                    hash: &hash,
                    client_id: &client_id,
                    redirect_uri: form
                        .get("redirect_uri")
                        .map(String::as_str)
                        .unwrap_or_default(),
                    verifier: form.get("code_verifier").map(String::as_str),
                };
                grants::redeem(&mut a.grants, &p, grants::token_hash(&refresh), now)
            } else {
                let refreshed = grants::refresh(
                    &mut a.grants,
                    gid,
                    &hash,
                    &client_id,
                    grants::token_hash(&refresh),
                    now,
                );
                // A reused refresh token: whoever holds the other copy is a thief, and it was
                // taken from this session: the session ends (every app of it is told).
                if refreshed == Err(Refused::Replayed)
                    && let Some(g) = a.grants.iter().find(|g| g.id == gid)
                {
                    let (sid, expires) = (g.session.clone(), st.expires_ms(g.session_iat));
                    a.end_session(&sid, expires, now);
                }
                refreshed
            };
            Ok(!matches!(outcome, Err(Refused::Invalid)))
        })
        .await;
    let account = match written {
        Ok(a) => a,
        Err(e) if e.status.is_server_error() => {
            return token_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "try again",
            );
        }
        Err(_) => return invalid_grant("the code or refresh token is not valid"),
    };
    let grant = match outcome {
        Ok(g) => g,
        Err(Refused::Replayed) => {
            tracing::warn!(client = %client_id, "a code or refresh token was used twice: its grant (for a refresh token, its session) ended");
            if kind == "urt_" {
                st.audit(
                    st.audit_record(Action::OidcRefreshReused, Outcome::Denied, &headers)
                        .by(crate::audit::Actor {
                            via: Some(crate::audit::Via::Oidc),
                            name: Some(client_id.clone()),
                            ..Default::default()
                        })
                        .on(trail::account_target(&account))
                        .because("invalid_grant"),
                );
            }
            return invalid_grant(
                "the code or refresh token was used before; everything issued from it is revoked",
            );
        }
        Err(Refused::Invalid) => {
            return invalid_grant(
                "the code or refresh token is not valid, expired, or was issued to another client or redirect URI (or the PKCE verifier does not match)",
            );
        }
    };
    // The session and membership must still be live (the grant stays until the controller
    // told the app it ended); refresh re-reads the person.
    let Ok(m) = st.grant_alive(&account, &grant) else {
        return invalid_grant(
            "the session this grant came from has ended, or the membership is locked or gone",
        );
    };
    if core::missing_permission(&registered.client, &m.permissions()).is_some() {
        let _ = st
            .update_account(acct, |a| {
                Ok(grants::end(&mut a.grants, now, |g| g.id == grant.id) > 0)
            })
            .await;
        return invalid_grant("the profile no longer grants a permission this app requires");
    }
    match issue(&st, &registered, &account, &m, &grant, kind == "uac_") {
        Some(mut body) => {
            if kind == "uac_" {
                st.audit(
                    st.audit_record(Action::OidcTokenIssued, Outcome::Success, &headers)
                        .by(crate::audit::Actor {
                            via: Some(crate::audit::Via::Oidc),
                            name: Some(client_id.clone()),
                            ..Default::default()
                        })
                        .on(trail::account_target(&account))
                        .in_organisation(grant.organisation.clone()),
                );
            }
            body["refresh_token"] = json!(refresh);
            (
                [
                    (header::CACHE_CONTROL, "no-store"),
                    (header::PRAGMA, "no-cache"),
                ],
                Json(body),
            )
                .into_response()
        }
        None => token_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "the signing keys are not ready; try again",
        ),
    }
}

fn oidc_id(r: &Registered) -> String {
    r.record.client_id.clone()
}

/// The access and ID tokens of `grant`.
fn issue(
    st: &AuthState,
    registered: &Registered,
    account: &Account,
    m: &Membership,
    grant: &Grant,
    with_nonce: bool,
) -> Option<serde_json::Value> {
    let signer = st.oidc.signer();
    let now = st.clock.now_ms().div_euclid(1000);
    let lifetime =
        i64::try_from(registered.client.access_token_lifetime().as_secs()).unwrap_or(300);
    let client_id = oidc_id(registered);
    let jti = URL_SAFE_NO_PAD.encode(random_bytes::<16>().ok()?);
    let access = AccessClaims {
        iss: st.origin.clone(),
        sub: account.id.clone(),
        aud: client_id.clone(),
        client_id: client_id.clone(),
        exp: now + lifetime,
        iat: now,
        jti,
        scope: grant.scope.clone(),
        auth_time: grant.auth_time,
        sid: grant.session.clone(),
        gid: grant.id.clone(),
        org: grant.organisation.clone(),
        auid: account.uid.clone().unwrap_or_default(),
        muid: grant.user_uid.clone(),
        siat: grant.session_iat,
    };
    let access_token = signer.sign(usher_crds::SigningAlg::RS256, "at+jwt", &access)?;
    let scopes: Vec<String> = grant.scope.split(' ').map(str::to_owned).collect();
    let mut id = core::person_claims(&person(m, &account.login), &scopes);
    for (k, v) in [
        ("iss", json!(st.origin)),
        ("sub", json!(account.id)),
        ("aud", json!(client_id)),
        ("azp", json!(client_id)),
        ("exp", json!(now + lifetime)),
        ("iat", json!(now)),
        ("auth_time", json!(grant.auth_time)),
        ("sid", json!(grant.session)),
        ("amr", json!(grant.amr)),
    ] {
        id.insert(k.into(), v);
    }
    if with_nonce && let Some(n) = &grant.nonce {
        id.insert("nonce".into(), json!(n));
    }
    let id_token = signer.sign(registered.client.spec.id_token_signing_alg, "JWT", &id)?;
    Some(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": lifetime,
        "id_token": id_token,
        "scope": grant.scope,
    }))
}

/// What the tokens say of `login` acting through `m`.
fn person<'a>(m: &'a Membership, login: &'a str) -> Person<'a> {
    Person {
        login,
        name: &m.user.spec.full_name,
        organisation: m.acting().organisation,
        organisation_display_name: &m.organisation.spec.display_name,
        profile: &m.user.spec.profile,
        permissions: m.permissions(),
    }
}

/// `GET|POST /oauth2/userinfo`: the person, as the access token's scopes release them.
pub async fn userinfo(State(st): State<AuthState>, headers: HeaderMap) -> Response {
    // Read before anything is looked up: an answer computed from what changes meanwhile is
    // stamped stale.
    let generation = st.directory.generation() + st.oidc.generation();
    let token = bearer_token(&headers).map(str::to_owned);
    let now_s = st.clock.now_ms().div_euclid(1000);
    if let Some(body) = token
        .as_deref()
        .and_then(|t| st.oidc.userinfo.get(t, generation, now_s))
    {
        return json_answer(body);
    }
    let p = match st.authenticate(&headers, true) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let Via::Token { scope, expires, .. } = &p.via else {
        return crate::auth::principal::unauthenticated(
            crate::auth::error::ErrorCode::InvalidToken,
            "userinfo takes an access token",
            Some("invalid_token"),
        )
        .into_response();
    };
    let scopes: Vec<String> = scope.split(' ').map(str::to_owned).collect();
    let mut body = core::person_claims(&person(&p.membership, &p.account.login), &scopes);
    body.insert("sub".into(), json!(p.account.id));
    let body = axum::body::Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
    if let Some(t) = token.as_deref() {
        st.oidc.userinfo.put(t, generation, *expires, body.clone());
    }
    json_answer(body)
}

fn json_answer(body: axum::body::Bytes) -> Response {
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_TYPE, "application/json"),
        ],
        body,
    )
        .into_response()
}
