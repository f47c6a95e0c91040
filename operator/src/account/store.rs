//! Reads and writes account Secrets. The Secret's name derives from the login, so creating it
//! twice is harmless; every update carries the resourceVersion it read, and a 409 means read
//! again and redo the change ([`AccountStore::modify`]). With a watch cache
//! ([`AccountStore::with_cache`]) reads come from it and writes are applied to it at once; only
//! a conflict reads the API server.

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, api::PostParams};

use super::{
    error::StoreError,
    record::{Account, account_id, secret_name},
};
use crate::runtime::{api::delete_if_present, cache::Cache};

/// Tries of [`AccountStore::modify`] before it gives up with [`StoreError::Contention`].
const MODIFY_TRIES: usize = 8;

/// Reads and writes account Secrets in the operator namespace.
#[derive(Clone)]
pub struct AccountStore {
    api: Api<Secret>,
    namespace: String,
    cache: Option<Cache<Secret>>,
}

impl AccountStore {
    /// A store over `namespace`.
    pub fn new(client: kube::Client, namespace: &str) -> AccountStore {
        AccountStore {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            cache: None,
        }
    }

    /// This store reading accounts from `cache` (a watch of the account Secrets) once it is
    /// filled, and applying its own writes to it.
    pub fn with_cache(mut self, cache: Cache<Secret>) -> AccountStore {
        self.cache = Some(cache);
        self
    }

    fn ready_cache(&self) -> Option<&Cache<Secret>> {
        self.cache.as_ref().filter(|c| c.is_ready())
    }

    fn remember(&self, secret: &Secret) {
        if let Some(c) = &self.cache {
            c.apply_own_write(secret.clone());
        }
    }

    /// The operator namespace the accounts live in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The account with id `id`, if it exists: from the cache when there is one.
    pub async fn get_id(&self, id: &str) -> Result<Option<Account>, StoreError> {
        if let Some(cache) = self.ready_cache() {
            return match cache.get(&self.namespace, &secret_name(id)) {
                Some(s) => Ok(Some(Account::from_secret(&s)?)),
                None => Ok(None),
            };
        }
        self.get_fresh(id).await
    }

    /// The account with id `id` as the API server has it now.
    async fn get_fresh(&self, id: &str) -> Result<Option<Account>, StoreError> {
        match self.api.get_opt(&secret_name(id)).await? {
            Some(s) => {
                self.remember(&s);
                Ok(Some(Account::from_secret(&s)?))
            }
            None => Ok(None),
        }
    }

    /// The account of `login`: the stored one, or a new one not written yet (the first
    /// [`AccountStore::modify`] creates it), so an account costs no write until something is
    /// recorded in it.
    pub async fn get_or_new(&self, login: &str) -> Result<Account, StoreError> {
        Ok(self
            .get(login)
            .await?
            .unwrap_or_else(|| Account::new(login)))
    }

    /// The account of `login`, if it exists.
    pub async fn get(&self, login: &str) -> Result<Option<Account>, StoreError> {
        self.get_id(&account_id(login)).await
    }

    /// Creates the Secret of an account that must not exist yet (a rename's new account).
    pub async fn create(&self, account: &Account) -> Result<Account, StoreError> {
        let written = self
            .api
            .create(&PostParams::default(), &account.to_secret(&self.namespace))
            .await?;
        self.remember(&written);
        Ok(Account::from_secret(&written)?)
    }

    /// Writes `account` if nobody wrote since it was read (creates it when it was never
    /// stored): the stored account with its new resourceVersion, or `None` when someone else
    /// wrote (or created it) first.
    async fn update(&self, account: &Account) -> Result<Option<Account>, StoreError> {
        let secret = account.to_secret(&self.namespace);
        let written = if account.resource_version.is_none() {
            self.api.create(&PostParams::default(), &secret).await
        } else {
            self.api
                .replace(&secret_name(&account.id), &PostParams::default(), &secret)
                .await
        };
        match written {
            Ok(s) => {
                self.remember(&s);
                Ok(Some(Account::from_secret(&s)?))
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(None),
            Err(kube::Error::Api(s)) if s.code == 404 => Err(StoreError::Gone),
            Err(e) => Err(e.into()),
        }
    }

    /// The one optimistic update every writer uses: applies `change` to `account` (as last read
    /// or written) and writes it with the resourceVersion it was read at; on a conflict reads
    /// the account again and applies `change` again, so checks made inside `change` (a TOTP step
    /// not used yet, an invitation still pending) hold at the moment of the write. `change`
    /// returns `Ok(false)` to write nothing (the account is returned as it is) or an error to
    /// stop.
    pub async fn modify<E, F>(&self, account: Account, mut change: F) -> Result<Account, E>
    where
        E: From<StoreError>,
        F: FnMut(&mut Account) -> Result<bool, E>,
    {
        let mut current = account;
        for _ in 0..MODIFY_TRIES {
            let mut changed = current.clone();
            if !change(&mut changed)? {
                return Ok(current);
            }
            if let Some(stored) = self.update(&changed).await? {
                return Ok(stored);
            }
            current = self.get_fresh(&current.id).await?.ok_or(StoreError::Gone)?;
        }
        Err(StoreError::Contention.into())
    }

    /// Deletes the account with id `id` (gone already is fine).
    pub async fn delete_id(&self, id: &str) -> Result<(), StoreError> {
        delete_if_present(&self.api, &secret_name(id)).await?;
        if let Some(c) = &self.cache {
            c.forget(&self.namespace, &secret_name(id));
        }
        Ok(())
    }
}
