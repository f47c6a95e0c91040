//! Invitation acceptance: the link's token (single use, not expired) sets the first password,
//! which the policy checks with the person's own words as context.

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Deserialize;

use crate::audit::{Action, Outcome};
use crate::auth::trail;
use crate::{
    account::Account,
    auth::{
        error::{ApiError, ErrorCode, JsonBody},
        state::AuthState,
    },
    link_token::{hash_token, token_matches},
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptRequest {
    token: String,
    password: String,
}

pub async fn accept(
    State(st): State<AuthState>,
    headers: axum::http::HeaderMap,
    JsonBody(req): JsonBody<AcceptRequest>,
) -> Result<Response, ApiError> {
    let invalid = |m: &str| ApiError::of(ErrorCode::InvalidToken, m);
    let not_valid = "this invitation link is not valid: it was used already, replaced by a newer one, or copied incompletely. Ask your administrator to send a new invitation";
    let token_hash = hash_token(req.token.trim());
    let account = st
        .directory
        .account_by_invitation(&token_hash)
        .ok_or_else(|| invalid(not_valid))?;
    let check = |a: &Account| -> Result<(), ApiError> {
        let inv = a
            .invitation
            .as_ref()
            .filter(|i| token_matches(req.token.trim(), &i.token_hash))
            .ok_or_else(|| invalid(not_valid))?;
        if inv.expires_at <= st.clock.now() {
            return Err(invalid(&format!(
                "this invitation expired at {}. Ask your administrator to send a new one",
                inv.expires_at
            )));
        }
        Ok(())
    };
    check(&account)?;
    let hash = st.new_password_hash(&account, &req.password).await?;
    st.update_account(&account.id, |a| {
        // Single use: on a conflict the account is read again and the token checked again.
        check(a)?;
        a.password_hash = Some(hash.clone());
        a.activated_at = Some(st.clock.whole_seconds());
        a.invitation = None;
        a.locked_until = None;
        Ok(true)
    })
    .await?;
    tracing::info!(account = %account.id, "invitation accepted");
    st.audit(
        st.audit_record(Action::InvitationAccepted, Outcome::Success, &headers)
            .by(trail::person(&account, None))
            .on(trail::account_target(&account)),
    );
    Ok(StatusCode::NO_CONTENT.into_response())
}
