//! Back-channel logout delivery (DESIGN.md, "Logout"): the controller's leader alone tells apps
//! that a session they got tokens from ended, whatever ended it (a sign-out, Kill Session, a
//! revocation, a lock, a membership removed, a refresh token reused, the person revoking the
//! app): the auth server, the CLI and the reconciles only record the end in the account.
//!
//! Why here: exactly one process must send each logout token, and the leader already watches
//! every account and User, holds the signing keys' Secret, and writes Events on OIDCClients.
//! What is due is kept in the cluster, never only in memory: a sweep of an account moves its
//! ended grants into the outbox Secret (`oidc::logout`) before it takes them out of the account,
//! and an account deleted with its last membership hands its grants over first. Each logout is
//! posted until its app answers 2xx, with backoff per app (2 s doubling to 5 min; the backoff
//! resets with a restart, the outbox does not), and given up after `USHER_OIDC_LOGOUT_RETRY`
//! (24 h by default). Each failure is a Warning Event on the client and a metric.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::{Duration, Instant},
};

use k8s_openapi::{api::core::v1::Secret, jiff::Timestamp};
use kube::{Api, ResourceExt, runtime::reflector::Store};
use usher_crds::{OIDCClient, User};

use super::{
    context::Context,
    error::Error,
    outbox::backchannel_uri,
    user::accounts::{Members, users_of},
};
use crate::{
    account::{Account, GRANTS_KEY, StoreError, secret_name},
    crypto::random_bytes,
    oidc::{
        logout::{self, Due},
        signing::{KeySet, SECRET_NAME as KEYS_SECRET, Signer},
    },
    reason::Reason,
};

/// How often every account is swept, beside the sweeps their changes ask for.
const FULL_SWEEP_EVERY: Duration = Duration::from_secs(300);
/// How long an app has to answer.
const POST_TIMEOUT: Duration = Duration::from_secs(5);

/// Sweeps and delivers until the controller stops: woken by changes (see [`Logouts::touch`]),
/// by the next retry due, and every few minutes.
pub async fn run(
    ctx: Arc<Context>,
    clients: Store<OIDCClient>,
    mut clients_synced: tokio::sync::watch::Receiver<bool>,
    members: Members,
) {
    ctx.wait_synced().await;
    // Until the clients are known, no grant may be judged (a client not seen yet would look
    // like one without a back-channel endpoint).
    if clients_synced.wait_for(|synced| *synced).await.is_err() {
        return;
    }
    let http = match http_client(ctx.settings.logout_ca.as_deref()) {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "cannot make the HTTP client for back-channel logouts: check USHER_OIDC_LOGOUT_CA_FILE");
            return;
        }
    };
    let mut courier = Courier {
        ctx: ctx.clone(),
        clients,
        members,
        http,
        failures: HashMap::new(),
        signer: None,
    };
    tracing::info!("back-channel logouts: sweeping and delivering");
    ctx.logouts.touch_all();
    let mut last_full = Instant::now();
    loop {
        if last_full.elapsed() >= FULL_SWEEP_EVERY {
            ctx.logouts.touch_all();
            last_full = Instant::now();
        }
        let dirty = ctx.logouts.take_dirty();
        if !dirty.is_empty()
            && let Err(e) = courier.sweep(&dirty).await
        {
            tracing::warn!(error = %e, "cannot sweep ended grants; retrying");
            ctx.logouts.touch_all();
        }
        let wait = match courier.deliver().await {
            Ok(wait) => wait,
            Err(e) => {
                tracing::warn!(error = %e, "cannot deliver back-channel logouts; retrying");
                Duration::from_secs(5)
            }
        };
        let wait = wait.min(FULL_SWEEP_EVERY.saturating_sub(last_full.elapsed()));
        tokio::select! {
            () = ctx.logouts.wake.notified() => {
                // Let a burst of changes arrive before sweeping.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// The client that posts logout tokens: no redirects, a short timeout, the system's roots and
/// `ca` (PEM) if given.
fn http_client(ca: Option<&[u8]>) -> Result<reqwest::Client, reqwest::Error> {
    let mut builder = reqwest::Client::builder()
        .timeout(POST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none());
    if let Some(pem) = ca {
        builder = builder.tls_certs_merge(reqwest::Certificate::from_pem_bundle(pem)?);
    }
    builder.build()
}

struct Courier {
    ctx: Arc<Context>,
    clients: Store<OIDCClient>,
    members: Members,
    http: reqwest::Client,
    /// Failures in a row per client, and when it may be tried again.
    failures: HashMap<String, (u32, Instant)>,
    /// The signing keys, by the resourceVersion they were read at.
    signer: Option<(Option<String>, Arc<Signer>)>,
}

impl Courier {
    /// Sweeps the accounts in `dirty` (all of them for `None`): ended grants go, their
    /// logouts into the outbox first.
    async fn sweep(&self, dirty: &HashSet<Option<String>>) -> Result<(), Error> {
        let ns = self.ctx.settings.namespace.clone();
        let secrets: Vec<Arc<Secret>> = if dirty.contains(&None) {
            self.ctx.account_cache.all()
        } else {
            dirty
                .iter()
                .flatten()
                .filter_map(|id| self.ctx.account_cache.get(&ns, &secret_name(id)))
                .collect()
        };
        for secret in secrets {
            if !secret
                .data
                .as_ref()
                .is_some_and(|d| d.contains_key(GRANTS_KEY))
            {
                continue;
            }
            let Ok(account) = Account::from_secret(&secret) else {
                continue;
            };
            self.sweep_one(account).await?;
        }
        Ok(())
    }

    async fn sweep_one(&self, account: Account) -> Result<(), Error> {
        let ctx = &self.ctx;
        let users: Vec<Arc<User>> = users_of(&self.members, &account.id, &account.login)
            .iter()
            .filter_map(|r| ctx.users.get(r))
            .collect();
        let users: Vec<&User> = users.iter().map(Arc::as_ref).collect();
        let now = Timestamp::now();
        let tells = |c: &str| backchannel_uri(&self.clients, c).is_some();
        let swept = logout::sweep(&account, &users, tells, &ctx.settings.public_url, now);
        if swept.ended.is_empty() {
            return Ok(());
        }
        let _lock = ctx.locks.lock(std::slice::from_ref(&account.id)).await;
        if !swept.due.is_empty() {
            ctx.logouts.enqueue(swept.due.clone()).await?;
        }
        let id = account.id.clone();
        let removed = ctx
            .accounts
            .modify(account, |a| {
                let before = a.grants.len();
                a.grants.retain(|g| !swept.ended.contains(&g.id));
                Ok::<_, Error>(a.grants.len() != before)
            })
            .await;
        match removed {
            Ok(_) | Err(Error::Account(StoreError::Gone)) => {}
            Err(e) => return Err(e),
        }
        tracing::info!(account = %id, grants = swept.ended.len(), logouts = swept.due.len(), "ended grants taken out; their apps are due a back-channel logout");
        Ok(())
    }

    /// Posts each logout due to an app not backing off; returns how long until the next try.
    async fn deliver(&mut self) -> Result<Duration, Error> {
        let due = self.ctx.logouts.snapshot().await?;
        if due.is_empty() {
            return Ok(FULL_SWEEP_EVERY);
        }
        let now = Timestamp::now();
        let keep = self.ctx.settings.logout_retry;
        let mut done: Vec<Due> = Vec::new();
        let mut by_client: HashMap<String, Vec<Due>> = HashMap::new();
        for d in due {
            if logout::too_old(&d, now, keep) {
                self.ctx.metrics.logout("dropped");
                if let Some((client, _)) = backchannel_uri(&self.clients, &d.client_id) {
                    self.ctx.audit_logout(
                        &client,
                        &d,
                        crate::audit::Outcome::Failed,
                        Some("given_up"),
                    );
                    self.ctx
                        .warning(
                            client.as_ref(),
                            Reason::LogoutDropped,
                            format!(
                                "a back-channel logout waiting since {} was given up: the app did not answer within {}s",
                                d.since,
                                keep.as_secs()
                            ),
                        )
                        .await;
                }
                done.push(d);
                continue;
            }
            by_client.entry(d.client_id.clone()).or_default().push(d);
        }
        let signer = self.signer().await?;
        let mut next = FULL_SWEEP_EVERY;
        let mut sends = Vec::new();
        // The first logout of each client, named when its delivery fails.
        let pending: HashMap<String, Due> = by_client
            .iter()
            .filter_map(|(c, l)| Some((c.clone(), l.first()?.clone())))
            .collect();
        for (client_id, list) in by_client {
            let Some((client, uri)) = backchannel_uri(&self.clients, &client_id) else {
                // The client is gone or no longer has an endpoint: nobody to tell.
                done.extend(list);
                continue;
            };
            if let Some((_, at)) = self.failures.get(&client_id)
                && *at > Instant::now()
            {
                next = next.min(at.saturating_duration_since(Instant::now()));
                continue;
            }
            sends.push(post_all(&self.http, &signer, client, uri, list));
        }
        for (client, delivered, failed) in futures::future::join_all(sends).await {
            let client_id = usher_crds::oidc_client::client_id(
                client.namespace().as_deref().unwrap_or_default(),
                &client.name_any(),
            );
            for d in &delivered {
                self.ctx.metrics.logout("sent");
                self.ctx
                    .audit_logout(&client, d, crate::audit::Outcome::Success, None);
            }
            done.extend(delivered);
            match failed {
                None => {
                    self.failures.remove(&client_id);
                }
                Some(why) => {
                    self.ctx.metrics.logout("failed");
                    if let Some(d) = pending.get(&client_id) {
                        self.ctx.audit_logout(
                            &client,
                            d,
                            crate::audit::Outcome::Failed,
                            Some("unreachable"),
                        );
                    }
                    let n = self.failures.get(&client_id).map_or(0, |f| f.0) + 1;
                    let wait = logout::retry_after(n);
                    self.failures
                        .insert(client_id.clone(), (n, Instant::now() + wait));
                    next = next.min(wait);
                    tracing::warn!(client = %client_id, error = %why, retry_in = ?wait, "a back-channel logout failed; kept and retried");
                    self.ctx
                        .warning(
                            client.as_ref(),
                            Reason::LogoutFailed,
                            format!(
                                "the back-channel logout endpoint did not take a logout: {why}; kept and retried in {}s",
                                wait.as_secs()
                            ),
                        )
                        .await;
                }
            }
        }
        if !done.is_empty() {
            self.ctx.logouts.remove(&done).await?;
        }
        Ok(next)
    }

    /// The signer over the current signing keys (read again when they changed).
    async fn signer(&mut self) -> Result<Arc<Signer>, Error> {
        let api: Api<Secret> =
            Api::namespaced(self.ctx.client.clone(), &self.ctx.settings.namespace);
        let secret = api
            .get_opt(KEYS_SECRET)
            .await?
            .ok_or_else(|| Error::Damaged(format!("Secret {KEYS_SECRET} is not there yet")))?;
        let version = secret.resource_version();
        if self.signer.as_ref().is_none_or(|(v, _)| *v != version) {
            let set = KeySet::from_secret(&secret).map_err(|e| Error::Damaged(e.to_string()))?;
            let signer = Signer::new(&set).map_err(|e| Error::Damaged(e.to_string()))?;
            self.signer = Some((version, Arc::new(signer)));
        }
        self.signer
            .as_ref()
            .map(|(_, s)| s.clone())
            .ok_or_else(|| Error::Damaged(KEYS_SECRET.into()))
    }
}

/// Posts `list` to `uri` in order until one fails: the delivered ones, and why it stopped.
async fn post_all(
    http: &reqwest::Client,
    signer: &Signer,
    client: Arc<OIDCClient>,
    uri: String,
    list: Vec<Due>,
) -> (Arc<OIDCClient>, Vec<Due>, Option<String>) {
    let mut delivered = Vec::new();
    for d in list {
        match post(http, signer, &client, &uri, &d).await {
            Ok(()) => delivered.push(d),
            Err(why) => return (client, delivered, Some(why)),
        }
    }
    (client, delivered, None)
}

async fn post(
    http: &reqwest::Client,
    signer: &Signer,
    client: &OIDCClient,
    uri: &str,
    d: &Due,
) -> Result<(), String> {
    use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
    let jti = URL_SAFE_NO_PAD.encode(random_bytes::<16>().map_err(|e| e.to_string())?);
    let claims = logout::claims(d, Timestamp::now().as_second(), jti);
    let token = signer
        .sign(client.spec.id_token_signing_alg, "logout+jwt", &claims)
        .ok_or("no signing key for the client's algorithm yet")?;
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("logout_token", &token)
        .finish();
    let res = http
        .post(uri)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        // The error's text names the endpoint, not the token.
        .map_err(|e| format!("cannot reach it ({})", without_url(&e)))?;
    if res.status().is_success() {
        Ok(())
    } else {
        Err(format!("it answered {}", res.status()))
    }
}

fn without_url(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection refused or unreachable".into()
    } else {
        "request failed".into()
    }
}
