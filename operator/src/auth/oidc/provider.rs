//! What the provider answers from: the OIDCClients and their records (watch caches), and the
//! signing keys (a watch of `usher-oidc-keys`, loaded into a [`Signer`] on every change, so
//! every replica signs with the current key and publishes the same JWKS).

use std::sync::{Arc, RwLock};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client, ResourceExt,
    runtime::{WatchStreamExt, watcher},
};
use usher_crds::{LABEL_OIDC_CLIENT, OIDCClient, Organisation, oidc_client};

use crate::{
    oidc::{
        client_record::{self, ClientRecord},
        signing::{self, KeySet, Signer},
    },
    runtime::cache::{Cache, IndexFn, no_index},
};

/// A registered client: the resource and its record.
pub struct Registered {
    /// The OIDCClient.
    pub client: Arc<OIDCClient>,
    /// Its record (secret hash).
    pub record: ClientRecord,
}

/// The provider's caches.
pub struct Provider {
    namespace: String,
    operator_namespace: String,
    /// Every OIDCClient.
    pub clients: Cache<OIDCClient>,
    /// The client records of the accounts namespace.
    pub records: Cache<Secret>,
    signer: RwLock<Arc<Signer>>,
    /// Access tokens this replica verified.
    pub verified: super::verified::Verified,
    /// Userinfo answers kept while nothing they were computed from changes.
    pub userinfo: super::verified::UserinfoAnswers,
}

impl Provider {
    /// Empty caches; `namespace` holds the records and keys, OIDCClients in
    /// `operator_namespace` serve the organisations they list.
    pub fn new(namespace: &str, operator_namespace: &str) -> Provider {
        Provider {
            namespace: namespace.to_owned(),
            operator_namespace: operator_namespace.to_owned(),
            clients: Cache::new(no_index::<OIDCClient> as IndexFn<OIDCClient>),
            records: Cache::new(no_index::<Secret> as IndexFn<Secret>),
            signer: RwLock::default(),
            verified: Default::default(),
            userinfo: Default::default(),
        }
    }

    /// Spawns the watches.
    pub fn start(self: &Arc<Self>, client: &Client) {
        tokio::spawn(
            self.clients
                .run(Api::all(client.clone()), watcher::Config::default()),
        );
        tokio::spawn(self.records.run(
            Api::namespaced(client.clone(), &self.namespace),
            watcher::Config::default().labels(LABEL_OIDC_CLIENT),
        ));
        let me = self.clone();
        let api: Api<Secret> = Api::namespaced(client.clone(), &self.namespace);
        tokio::spawn(async move {
            let config = watcher::Config::default()
                .fields(&format!("metadata.name={}", signing::SECRET_NAME));
            // With a backoff: a watch that fails at once (the API server gone) would otherwise
            // be retried at once, forever, holding a core and keeping the runtime from stopping.
            let events = watcher::watcher(api, config).default_backoff();
            futures::pin_mut!(events);
            while let Some(event) = events.next().await {
                match event {
                    Ok(watcher::Event::Apply(s) | watcher::Event::InitApply(s)) => me.load(&s),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "watching the OpenID Connect signing keys; retrying")
                    }
                }
            }
        });
    }

    fn load(&self, secret: &Secret) {
        match KeySet::from_secret(secret).and_then(|set| Signer::new(&set)) {
            Ok(signer) => {
                *self.signer.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(signer);
            }
            Err(e) => tracing::error!(error = %e, "cannot load the OpenID Connect signing keys"),
        }
    }

    /// Changes seen by the client caches so far (see `Directory::generation`).
    pub fn generation(&self) -> u64 {
        self.clients.generation() + self.records.generation()
    }

    /// The keys in force.
    pub fn signer(&self) -> Arc<Signer> {
        self.signer
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The client `client_id` names, when the controller has registered it (its record made
    /// for this very resource).
    pub fn client(&self, client_id: &str) -> Option<Registered> {
        let (ns, name) = oidc_client::parse_client_id(client_id)?;
        let client = self.clients.get(ns, name)?;
        if client.metadata.deletion_timestamp.is_some() {
            return None;
        }
        let record = self
            .records
            .get(&self.namespace, &client_record::record_name(client_id))
            .and_then(|s| ClientRecord::from_secret(&s))
            .filter(|r| r.client_id == client_id && Some(&r.client_uid) == client.uid().as_ref())?;
        Some(Registered { client, record })
    }

    /// True when `client` serves members of `org`: it is in the organisation's namespace, or in
    /// the operator namespace listing it (or `*`).
    pub fn serves(&self, client: &OIDCClient, org: &Organisation) -> bool {
        let ns = client.namespace().unwrap_or_default();
        if ns == org.namespace_name() {
            return client.spec.organisations.is_empty();
        }
        ns == self.operator_namespace
            && client
                .spec
                .organisations
                .iter()
                .any(|o| o == "*" || *o == org.name_any())
    }
}
