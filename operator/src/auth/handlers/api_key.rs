//! A person's own API key, from account settings (sessions only): view it, renew it. The key
//! lives in the account (sealed); renewing writes the account, so the old key stops at once on
//! every replica, and the controller then delivers the new one to its Secret.

use axum::{Json, extract::State, response::Response};
use usher_crds::User;

use crate::audit::{Action, Outcome};
use crate::auth::principal::SignedIn;
use crate::auth::trail;
use crate::{
    account::account_id,
    apikey::{
        ApiKey,
        renew::{NewKey, current, renew},
    },
    auth::{
        error::{ApiError, ErrorCode},
        state::AuthState,
    },
};

/// 404 `no_api_key`.
pub fn no_api_key() -> ApiError {
    ApiError::of(
        ErrorCode::NoApiKey,
        "this membership has no API key; ask an organisation admin to create one",
    )
}

/// `GET /api/v1/me/api-key`.
pub async fn view(
    State(st): State<AuthState>,
    SignedIn(p): SignedIn,
) -> Result<Response, ApiError> {
    // Sessions only: SignedIn refuses API keys.
    p.not_restricted()?;
    p.recently_authenticated(st.settings.reauth_window, st.clock.now_ms())?;
    let user = &p.membership.user;
    if !user.api_key_enabled() {
        return Err(no_api_key());
    }
    let (key, _) = current(&st.keys, &p.account, user).ok_or_else(no_api_key)?;
    Ok(p.respond(Json(serde_json::json!({ "key": key.expose() }))))
}

/// `POST /api/v1/me/api-key/renew`.
pub async fn renew_own(
    State(st): State<AuthState>,
    SignedIn(p): SignedIn,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    // Sessions only: SignedIn refuses API keys.
    p.not_restricted()?;
    p.recently_authenticated(st.settings.reauth_window, st.clock.now_ms())?;
    let key = st.renew_key(&p.membership.user).await?;
    tracing::info!(account = %p.account.id, fingerprint = %key.fingerprint(), "API key renewed by its user");
    st.audit(
        st.audit_record(Action::ApikeyRenewed, Outcome::Success, &headers)
            .by(trail::actor(&p))
            .on(trail::user_target(&p.membership.user))
            .in_organisation(p.membership.org_name()),
    );
    Ok(p.respond(Json(serde_json::json!({ "key": key.expose() }))))
}

impl AuthState {
    /// Renews `user`'s key in its account with the one renewal the controller uses too: the
    /// key returned is the one in force (another renewal's, when one won meanwhile).
    pub async fn renew_key(&self, user: &User) -> Result<ApiKey, ApiError> {
        if !user.api_key_enabled() {
            return Err(no_api_key());
        }
        let id = account_id(&user.spec.login);
        // The cache, or the API when the key was issued a moment ago and its watch event is
        // still on the way.
        let recorded = match self.directory.account(&id) {
            Some(a) if a.api_key(user).is_some() => Some((*a).clone()),
            _ => self.accounts.get_id(&id).await?,
        };
        let replacing = recorded
            .as_ref()
            .and_then(|a| a.api_key(user))
            .ok_or_else(no_api_key)?
            .hash
            .clone();
        let new = NewKey::generate(&self.keys, &id, user).map_err(|e| ApiError::internal(&e))?;
        let now = self.clock.whole_seconds();
        let written = self
            .update_account(&id, |a| {
                if a.api_key(user).is_none() {
                    return Err(no_api_key());
                }
                Ok(renew(a, user, &new, Some(&replacing), now))
            })
            .await?;
        let (key, _) = current(&self.keys, &written, user).ok_or_else(no_api_key)?;
        Ok(key)
    }
}
