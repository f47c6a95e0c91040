//! The back-channel logouts due, as the leader holds them: the outbox Secret
//! (`oidc::logout::Outbox`) read once and written on every change, the accounts to sweep, and
//! the signal that wakes the courier (`logouts`). The reconciles hand over the logouts of an
//! account they delete ([`Logouts::account_going`]); everything else reaches the courier as a
//! changed account or User.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
};

use k8s_openapi::{api::core::v1::Secret, jiff::Timestamp};
use kube::{
    Api, ResourceExt,
    api::PostParams,
    runtime::reflector::{ObjectRef, Store},
};
use usher_crds::{OIDCClient, User, oidc_client::parse_client_id};

use super::{error::Error, metrics::Metrics};
use crate::{
    account::{AccountStore, StoreError, account_id},
    oidc::logout::{self, Due, Outbox},
};

/// The outbox as this leader knows it, and what asks for a sweep.
pub struct Logouts {
    api: Api<Secret>,
    namespace: String,
    metrics: Metrics,
    outbox: tokio::sync::Mutex<Option<Outbox>>,
    /// Accounts (ids) to sweep; `None` in it: all of them.
    dirty: Mutex<HashSet<Option<String>>>,
    /// Wakes the courier.
    pub wake: tokio::sync::Notify,
}

impl Logouts {
    /// The outbox of the accounts namespace `namespace`, not read yet.
    pub fn new(client: kube::Client, namespace: &str, metrics: Metrics) -> Logouts {
        Logouts {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            metrics,
            outbox: tokio::sync::Mutex::default(),
            dirty: Mutex::default(),
            wake: tokio::sync::Notify::new(),
        }
    }

    /// Asks for a sweep of account `id` (its Secret changed).
    pub fn touch(&self, id: &str) {
        self.mark(Some(id.to_owned()));
    }

    /// Asks for a sweep of the account a User belongs to (it changed or went).
    pub fn touch_user(&self, user: &User) {
        let id = user
            .status
            .as_ref()
            .and_then(|s| s.account_id.clone())
            .unwrap_or_else(|| account_id(&user.spec.login));
        self.mark(Some(id));
    }

    /// Asks for a sweep of every account.
    pub fn touch_all(&self) {
        self.mark(None);
    }

    fn mark(&self, id: Option<String>) {
        if let Ok(mut d) = self.dirty.lock() {
            d.insert(id);
        }
        self.wake.notify_one();
    }

    /// The accounts to sweep (`None`: all), forgotten as they are returned.
    pub fn take_dirty(&self) -> HashSet<Option<String>> {
        self.dirty
            .lock()
            .map(|mut d| std::mem::take(&mut *d))
            .unwrap_or_default()
    }

    /// Hands the logouts of account `id`, about to be deleted with its last membership, to the
    /// outbox: every app that got tokens from it and has a back-channel endpoint is due.
    /// Returns once the outbox holds them.
    pub async fn account_going(
        &self,
        accounts: &AccountStore,
        clients: &Store<OIDCClient>,
        issuer: &str,
        id: &str,
    ) -> Result<(), Error> {
        let Some(account) = accounts.get_id(id).await? else {
            return Ok(());
        };
        let tells = |c: &str| backchannel_uri(clients, c).is_some();
        let due = logout::sweep(&account, &[], tells, issuer, Timestamp::now()).due;
        if !due.is_empty() {
            self.enqueue(due).await?;
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Adds `due` to the outbox and stores it.
    pub async fn enqueue(&self, due: Vec<Due>) -> Result<(), Error> {
        let metrics = self.metrics.clone();
        self.change(|o| {
            let (added, dropped) = o.enqueue(due.clone());
            for d in &dropped {
                metrics.logout("dropped");
                tracing::warn!(client = %d.client_id, since = %d.since, "a back-channel logout was dropped: the outbox is full");
            }
            added > 0 || !dropped.is_empty()
        })
        .await
    }

    /// Takes `done` (delivered, or given up) out of the outbox and stores it.
    pub async fn remove(&self, done: &[Due]) -> Result<(), Error> {
        self.change(|o| {
            // Every one of them goes: no short cut after the first.
            let removed: Vec<bool> = done.iter().map(|d| o.remove(d)).collect();
            removed.contains(&true)
        })
        .await
    }

    /// What is due, read from the cluster the first time.
    pub async fn snapshot(&self) -> Result<Vec<Due>, Error> {
        let mut held = self.outbox.lock().await;
        if held.is_none() {
            let o = self.load().await?;
            self.metrics.logouts_due(o.due.len());
            *held = Some(o);
        }
        Ok(held.as_ref().map(|o| o.due.clone()).unwrap_or_default())
    }

    /// Applies `f` to the outbox and stores it (read first if this leader has not yet; read
    /// again and `f` applied again on a conflict). `f` returns false to write nothing.
    async fn change(&self, mut f: impl FnMut(&mut Outbox) -> bool) -> Result<(), Error> {
        let mut held = self.outbox.lock().await;
        for _ in 0..5 {
            let mut current = match held.take() {
                Some(o) => o,
                None => self.load().await?,
            };
            let before = current.clone();
            if !f(&mut current) {
                *held = Some(before);
                return Ok(());
            }
            let secret = current.to_secret(&self.namespace);
            let written = match current.resource_version {
                None => self.api.create(&PostParams::default(), &secret).await,
                Some(_) => {
                    self.api
                        .replace(logout::SECRET_NAME, &PostParams::default(), &secret)
                        .await
                }
            };
            match written {
                Ok(s) => {
                    current.resource_version = s.resource_version();
                    self.metrics.logouts_due(current.due.len());
                    *held = Some(current);
                    return Ok(());
                }
                // Another leader wrote meanwhile (a handover): read it again.
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => {
                    *held = Some(before);
                    return Err(e.into());
                }
            }
        }
        Err(StoreError::Contention.into())
    }

    async fn load(&self) -> Result<Outbox, Error> {
        match self.api.get_opt(logout::SECRET_NAME).await? {
            Some(s) => Outbox::from_secret(&s).map_err(|e| Error::Damaged(e.to_string())),
            None => Ok(Outbox::default()),
        }
    }
}

/// The client `client_id` names and its back-channel endpoint, when it has one.
pub fn backchannel_uri(
    clients: &Store<OIDCClient>,
    client_id: &str,
) -> Option<(Arc<OIDCClient>, String)> {
    let (ns, name) = parse_client_id(client_id)?;
    let c = clients.get(&ObjectRef::new(name).within(ns))?;
    let uri = c.spec.backchannel_logout_uri.clone()?;
    Some((c, uri))
}
