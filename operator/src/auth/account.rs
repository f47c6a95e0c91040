//! The auth server's writes to accounts: the store's one [`modify`](AccountStore::modify),
//! started from this replica's cache and applied to it at once, so the next request here sees
//! the write even before its watch event arrives; and the record of ended sessions.
//!
//! [`AccountStore::modify`]: crate::account::AccountStore::modify

use k8s_openapi::jiff::Timestamp;

use super::{error::ApiError, session::Claims, state::AuthState};
use crate::account::guesses::Factor;
use crate::account::{
    Account, StoreError,
    sessions::{self, SessionRecord},
};

impl AuthState {
    /// Applies `change` to the account with id `id` and writes it with the resourceVersion it
    /// read; on a conflict it reads the account live and applies `change` again, so checks made
    /// in `change` (a TOTP step not yet used, an invitation still pending) hold at the write.
    /// `change` returns false to leave the account as it is.
    pub async fn update_account<F>(&self, id: &str, change: F) -> Result<Account, ApiError>
    where
        F: FnMut(&mut Account) -> Result<bool, ApiError>,
    {
        let current = match self.directory.account(id) {
            Some(a) => (*a).clone(),
            None => self.accounts.get_id(id).await?.ok_or(StoreError::Gone)?,
        };
        let written = self.accounts.modify(current, change).await?;
        self.directory
            .accounts
            .apply_own_write(written.to_secret(&self.settings.namespace));
        Ok(written)
    }

    /// When a session that started at `iat` (Unix milliseconds) expires at the latest.
    pub fn expires_ms(&self, iat: i64) -> i64 {
        iat.saturating_add(
            i64::try_from(self.settings.max_lifetime.as_millis()).unwrap_or(i64::MAX),
        )
    }

    /// Records the session of `claims` (a sign-in, a switch, a reissue) in the account: what
    /// people and their admins see. A 21st pushes the oldest out, and that session ends.
    pub async fn start_session(
        &self,
        claims: &Claims,
        user_agent: &str,
        address: &str,
    ) -> Result<Account, ApiError> {
        let started = Timestamp::from_millisecond(claims.iat).unwrap_or_else(|_| self.clock.now());
        let expires =
            Timestamp::from_millisecond(self.expires_ms(claims.iat)).unwrap_or(Timestamp::MAX);
        let record = SessionRecord::new(
            &claims.sid,
            &claims.org,
            started,
            expires,
            user_agent,
            address,
        );
        let now = self.clock.now();
        self.update_account(&claims.acct, |a| {
            a.last_organisation = Some(claims.org.clone());
            // A complete sign-in: the password was right.
            a.guesses.succeeded(Factor::Password);
            for out in sessions::add(&mut a.sessions, record.clone(), now) {
                a.sessions_ended
                    .insert(out.id, out.expires_at.as_millisecond());
            }
            Ok(true)
        })
        .await
    }

    /// Records that the session `sid` of account `account_id` ended (logout, switch, "Sign
    /// out" of one session), dropping records of sessions that have expired anyway.
    pub async fn end_session_id(
        &self,
        account_id: &str,
        sid: &str,
        iat: i64,
    ) -> Result<(), ApiError> {
        let now = self.clock.now();
        let expires = self.expires_ms(iat);
        self.update_account(account_id, |a| {
            a.end_session(sid, expires, now);
            Ok(true)
        })
        .await?;
        Ok(())
    }

    /// Records that the session of `claims` ended.
    pub async fn end_session(&self, claims: &Claims) -> Result<(), ApiError> {
        self.end_session_id(&claims.acct, &claims.sid, claims.iat)
            .await
    }
}
