//! `usher account …`: the platform operator's commands on accounts (they live in the operator
//! namespace, which only platform operators can reach).

use std::io::Write;

use clap::{Args, Subcommand};
use k8s_openapi::{api::core::v1::Secret, jiff::Timestamp};
use kube::{
    Api, Client, ResourceExt,
    api::{ListParams, Patch, PatchParams},
};
use usher_crds::{LABEL_ACCOUNT, User, login::canonical_login};

use crate::account::guesses::Factor;
use crate::audit::{Action, Actor, Auditor, Outcome, Record, Target, Via};
use crate::{
    account::{Account, AccountStore, StoreError, account_id},
    keys::{Keys, has_sealed, reseal_account},
};

/// Flags of `usher account`.
#[derive(Debug, Args)]
pub struct AccountArgs {
    /// The operator namespace, holding account Secrets.
    #[arg(
        long,
        env = "USHER_NAMESPACE",
        default_value = "usher-system",
        global = true
    )]
    pub namespace: String,
    /// The namespace of the account Secrets (the chart's `<release namespace>-accounts`).
    /// Default: `--namespace`.
    #[arg(long, env = "USHER_ACCOUNTS_NAMESPACE", global = true)]
    pub accounts_namespace: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: AccountCommand,
}

/// `usher account` subcommands.
#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// List accounts: login, state, MFA, memberships.
    List,
    /// Remove a login's TOTP enrolment and passkeys (they enroll again at next login) and end
    /// their sessions.
    ResetMfa {
        /// The login (email address).
        login: String,
    },
    /// Email a login a link to choose a new password (the controller sends it).
    ResetPassword {
        /// The login (email address).
        login: String,
    },
    /// End every session of a login, in every organisation, at its next request.
    KillSessions {
        /// The login (email address).
        login: String,
    },
    /// End a soft lock (too many failed logins) before it expires by itself.
    Unlock {
        /// The login (email address).
        login: String,
    },
    /// Rename an account and every membership of it, keeping password and MFA.
    Rename {
        /// The current login.
        old: String,
        /// The new login.
        new: String,
        /// The Users are managed in Git: only move the account (password, MFA, keys) to the
        /// new login and leave `spec.login` to the repository. When Git changes it, the
        /// controller links each User to the new account (no invitation) and deletes the old
        /// account after the last one.
        #[arg(long)]
        users_in_git: bool,
    },
}

/// Runs an `usher account` command, writing its report to `out`; what it changed goes to the
/// audit trail (`via: operator`) before it returns.
pub async fn run(client: Client, args: AccountArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let auditor = Auditor::from_env().map_err(|e| anyhow::anyhow!(e))?;
    let result = act(client, args, out, &auditor).await;
    auditor.flush(std::time::Duration::from_secs(10)).await;
    result
}

/// A record of the operator's `action` on the account of `login`.
fn operator_record(action: Action, login: &str) -> Record {
    Record::new(
        action,
        Outcome::Success,
        Timestamp::now(),
        crate::audit::sink::new_id(),
    )
    .by(Actor {
        via: Some(Via::Operator),
        name: std::env::var("USER").ok().filter(|u| !u.is_empty()),
        ..Actor::default()
    })
    .on(Target {
        kind: Some("Account"),
        account_id: Some(account_id(login)),
        login: Some(login.to_owned()),
        ..Target::default()
    })
}

async fn act(
    client: Client,
    args: AccountArgs,
    out: &mut impl Write,
    auditor: &Auditor,
) -> anyhow::Result<()> {
    let namespace =
        super::common::accounts_namespace(&args.namespace, args.accounts_namespace.as_deref());
    let store = AccountStore::new(client.clone(), &namespace);
    match args.command {
        AccountCommand::List => list(&client, &namespace, out).await,
        AccountCommand::ResetMfa { login } => {
            let login = canonical(&login)?;
            let account = existing(&store, &login).await?;
            store
                .modify(account, |a| {
                    a.forget_totp();
                    a.passkeys.clear();
                    a.guesses.code = 0;
                    a.end_all_sessions(Timestamp::now());
                    Ok::<_, StoreError>(true)
                })
                .await?;
            writeln!(
                out,
                "MFA reset for {login} (TOTP and passkeys): they enroll again at their next login; their sessions end at the next request"
            )?;
            auditor.record(operator_record(Action::MfaReset, &login));
            Ok(())
        }
        AccountCommand::ResetPassword { login } => {
            let login = canonical(&login)?;
            let account = existing(&store, &login).await?;
            if !account.is_activated() {
                anyhow::bail!(
                    "{login} has not accepted its invitation yet; send a new invitation instead (kubectl usher resend-invitation)"
                );
            }
            store
                .modify(account, |a| {
                    a.reset.requested_at = Some(Timestamp::now());
                    Ok::<_, StoreError>(true)
                })
                .await?;
            writeln!(
                out,
                "a password reset link goes to {login}: the controller sends it, and it stops the previous one"
            )?;
            auditor.record(operator_record(Action::PasswordResetRequested, &login));
            Ok(())
        }
        AccountCommand::KillSessions { login } => {
            let login = canonical(&login)?;
            let account = existing(&store, &login).await?;
            store
                .modify(account, |a| {
                    a.end_all_sessions(Timestamp::now());
                    Ok::<_, StoreError>(true)
                })
                .await?;
            writeln!(
                out,
                "every session of {login} ends at its next request, in every organisation"
            )?;
            auditor.record(operator_record(Action::SessionKilled, &login));
            Ok(())
        }
        AccountCommand::Unlock { login } => {
            let login = canonical(&login)?;
            let account = existing(&store, &login).await?;
            let was_locked = account.locked_until.is_some()
                || account.guesses.locked(Factor::Password)
                || account.guesses.locked(Factor::Code);
            store
                .modify(account, |a| {
                    // The soft lock, and the count of failures that stops a factor.
                    let soft = a.locked_until.take().is_some();
                    Ok::<_, StoreError>(a.guesses.clear() || soft)
                })
                .await?;
            if was_locked {
                writeln!(out, "{login} is unlocked: they can sign in again")?;
                auditor.record(operator_record(Action::UserUnlocked, &login));
            } else {
                writeln!(out, "{login} was not locked")?;
            }
            Ok(())
        }
        AccountCommand::Rename {
            old,
            new,
            users_in_git,
        } => {
            let (old, new) = (canonical(&old)?, canonical(&new)?);
            let account = existing(&store, &old).await?;
            if store.get(&new).await?.is_some() {
                anyhow::bail!(
                    "an account for {new} exists already; delete its Users first or choose another login"
                );
            }
            // The new account first, with everything the old one had, so no membership is ever
            // without its password and MFA.
            let new_id = account_id(&new);
            // TOTP secrets and API keys are sealed to their account id: seal them again.
            let keys = if has_sealed(&account) {
                Some(Keys::load_or_create(client.clone(), &namespace).await?)
            } else {
                None
            };
            let renamed = Account {
                id: new_id.clone(),
                login: new.clone(),
                resource_version: None,
                uid: None,
                ..reseal_account(keys.as_ref(), &account, &new_id)?
            };
            store.create(&renamed).await?;
            let users: Vec<User> = Api::<User>::all(client.clone())
                .list(&ListParams::default())
                .await?
                .items
                .into_iter()
                .filter(|u| canonical_login(&u.spec.login).ok().as_deref() == Some(old.as_str()))
                .collect();
            if users_in_git {
                let names: Vec<String> = users
                    .iter()
                    .map(|u| format!("{}/{}", u.namespace().unwrap_or_default(), u.name_any()))
                    .collect();
                writeln!(
                    out,
                    "copied the account of {old} to {new}: now set spec.login: {new} in Git for {} User(s) ({}); the controller moves each to the new account without an invitation, and deletes the account of {old} after the last",
                    users.len(),
                    names.join(", ")
                )?;
                return Ok(());
            }
            let patch = serde_json::json!({"spec": {"login": new}});
            for u in &users {
                Api::<User>::namespaced(client.clone(), &u.namespace().unwrap_or_default())
                    .patch(
                        &u.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await?;
            }
            store.delete_id(&account_id(&old)).await?;
            writeln!(
                out,
                "renamed {old} to {new}: {} membership(s) updated",
                users.len()
            )?;
            Ok(())
        }
    }
}

/// The account of `login`, or an error saying there is none.
async fn existing(store: &AccountStore, login: &str) -> anyhow::Result<Account> {
    store
        .get(login)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no account for {login}"))
}

fn canonical(login: &str) -> anyhow::Result<String> {
    canonical_login(login).map_err(|e| anyhow::anyhow!("{login:?} is not a usable login: {e}"))
}

async fn list(client: &Client, namespace: &str, out: &mut impl Write) -> anyhow::Result<()> {
    let secrets = Api::<Secret>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(LABEL_ACCOUNT))
        .await?;
    let users = Api::<User>::all(client.clone())
        .list(&ListParams::default())
        .await?;
    let mut rows = Vec::new();
    for s in &secrets.items {
        let Ok(a) = Account::from_secret(s) else {
            rows.push([s.name_any(), "damaged".into(), "-".into(), "-".into()]);
            continue;
        };
        let memberships: Vec<String> = users
            .items
            .iter()
            .filter(|u| canonical_login(&u.spec.login).ok().as_deref() == Some(a.login.as_str()))
            .map(|u| format!("{}/{}", u.namespace().unwrap_or_default(), u.name_any()))
            .collect();
        let state = if a.is_activated() {
            "active"
        } else {
            "invited"
        };
        let mfa = if a.mfa_enrolled() { "yes" } else { "no" };
        rows.push([a.login, state.into(), mfa.into(), memberships.join(",")]);
    }
    rows.sort();
    let header = [
        "LOGIN".to_string(),
        "STATE".into(),
        "MFA".into(),
        "MEMBERSHIPS".into(),
    ];
    let widths: Vec<usize> = (0..3)
        .map(|i| {
            rows.iter()
                .chain([&header])
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in std::iter::once(&header).chain(&rows) {
        writeln!(
            out,
            "{:w0$}   {:w1$}   {:w2$}   {}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        )?;
    }
    Ok(())
}
