//! The auth server's writes to accounts: the store's one [`modify`](AccountStore::modify),
//! started from this replica's cache and applied to it at once, so the next request here sees
//! the write even before its watch event arrives; and the record of ended sessions.
//!
//! [`AccountStore::modify`]: crate::account::AccountStore::modify

use super::{error::ApiError, session::Claims, state::State};
use crate::{
    account::{Account, StoreError},
    runtime::clock::{now, now_ms},
};

/// Most ended sessions remembered per account.
const MAX_ENDED_SESSIONS: usize = 500;

impl State {
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

    /// Records that a session ended (logout, organisation switch), dropping records of
    /// sessions that have expired anyway.
    pub async fn end_session(&self, claims: &Claims) -> Result<(), ApiError> {
        let now_ms = now_ms();
        let expires = claims.iat.saturating_add(
            i64::try_from(self.settings.max_lifetime.as_millis()).unwrap_or(i64::MAX),
        );
        self.update_account(&claims.acct, |a| {
            a.sessions_ended.retain(|_, until| *until > now_ms);
            if a.sessions_ended.len() >= MAX_ENDED_SESSIONS {
                // Keeps the account Secret small: past this many sign-outs within one session
                // lifetime, every session ends instead (the safe way to forget them).
                a.sessions_ended.clear();
                a.sessions_revoked_at = Some(now());
            } else {
                a.sessions_ended.insert(claims.sid.clone(), expires);
            }
            Ok(true)
        })
        .await?;
        Ok(())
    }
}
