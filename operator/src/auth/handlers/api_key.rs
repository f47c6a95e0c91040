//! A person's own API key, from account settings (sessions only): view it, renew it.

use axum::{
    Json,
    extract::State as Extract,
    http::{HeaderMap, StatusCode},
    response::Response,
};
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};
use usher_crds::User;

use crate::{
    apikey::{self, ApiKey, RenewError, secret::Issued},
    auth::{
        directory::Membership,
        error::{ApiError, ErrorCode},
        state::State,
    },
    runtime::clock::now,
};

fn no_api_key() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::NoApiKey,
        "this membership has no API key; ask an organisation admin to create one",
    )
}

/// `GET /api/v1/me/api-key`.
pub async fn view(Extract(st): Extract<State>, headers: HeaderMap) -> Result<Response, ApiError> {
    // Sessions only: authenticate(.., false) refuses API keys.
    let p = st.authenticate(&headers, false)?;
    p.not_restricted()?;
    let user = &p.membership.user;
    if !user.api_key_enabled() {
        return Err(no_api_key());
    }
    // The cache keeps only hashes: the key is read from its Secret.
    let issued = key_secret(&st, user).await?.map(|s| Issued::read(&s, user));
    let key = issued
        .filter(|i| i.ours)
        .and_then(|i| i.key)
        .ok_or_else(no_api_key)?;
    Ok(p.respond(Json(serde_json::json!({ "key": key.expose() }))))
}

/// `POST /api/v1/me/api-key/renew`.
pub async fn renew(Extract(st): Extract<State>, headers: HeaderMap) -> Result<Response, ApiError> {
    // Sessions only: authenticate(.., false) refuses API keys.
    let p = st.authenticate(&headers, false)?;
    p.not_restricted()?;
    let key = renew_key(&st, &p.membership).await?;
    Ok(p.respond(Json(serde_json::json!({ "key": key.expose() }))))
}

/// The API-key Secret of a User, read live.
async fn key_secret(st: &State, user: &User) -> Result<Option<Secret>, ApiError> {
    Ok(
        Api::<Secret>::namespaced(st.client.clone(), &user.namespace().unwrap_or_default())
            .get_opt(&user.api_key_secret_name())
            .await?,
    )
}

/// Replaces the membership's key with the one renewal the controller uses too: the key
/// returned is the one in the Secret.
async fn renew_key(st: &State, m: &Membership) -> Result<ApiKey, ApiError> {
    let user = &m.user;
    if !user.api_key_enabled() {
        return Err(no_api_key());
    }
    let Some(current) = key_secret(st, user).await? else {
        return Err(no_api_key());
    };
    let api: Api<Secret> =
        Api::namespaced(st.client.clone(), &user.namespace().unwrap_or_default());
    match apikey::renew(&api, user, &m.org_name(), Some(current), now()).await {
        Ok(renewed) => {
            st.directory.api_keys.apply_own_write(renewed.secret);
            tracing::info!(user = %user.name_any(), namespace = ?user.namespace(), fingerprint = %renewed.key.fingerprint(), "API key renewed by its user");
            Ok(renewed.key)
        }
        Err(RenewError::NotOurs | RenewError::Gone) => Err(no_api_key()),
        Err(RenewError::Kube(e)) => Err(e.into()),
        Err(RenewError::Contention) => {
            Err(ApiError::unavailable(&"the API-key Secret kept changing"))
        }
        Err(RenewError::Random(e)) => Err(ApiError::internal(&e)),
    }
}
