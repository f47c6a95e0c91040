//! `usher kill-session | renew-key | resend-invitation | reset-password <user> [-n namespace]`: the one-shot
//! actions as commands, so the binary doubles as a kubectl plugin (installed as `kubectl-usher`
//! on the PATH: `kubectl usher kill-session alice -n acme`). Each sets its annotation to a new
//! value, which the controller processes once.

use clap::Args;
use k8s_openapi::jiff::Timestamp;
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use usher_crds::{
    ANNOTATION_KILL_SESSIONS, ANNOTATION_RENEW_API_KEY, ANNOTATION_RESEND_INVITATION,
    ANNOTATION_RESET_PASSWORD, User,
};

/// Field manager of the plugin's writes.
pub const MANAGER: &str = "kubectl-usher";

/// A one-shot action on a User.
#[derive(Debug, Clone, Copy)]
pub enum Action {
    /// End every session of the User's account at its next request.
    KillSession,
    /// Replace the User's API key (the old one stops, unless a grace period is set).
    RenewKey,
    /// Send a new invitation link (the previous link stops working).
    ResendInvitation,
    /// Email an activated member a link to choose a new password.
    ResetPassword,
}

impl Action {
    fn annotation(self) -> &'static str {
        match self {
            Action::KillSession => ANNOTATION_KILL_SESSIONS,
            Action::RenewKey => ANNOTATION_RENEW_API_KEY,
            Action::ResendInvitation => ANNOTATION_RESEND_INVITATION,
            Action::ResetPassword => ANNOTATION_RESET_PASSWORD,
        }
    }

    fn done(self) -> &'static str {
        match self {
            Action::KillSession => "sessions end at their next request",
            Action::RenewKey => "a new key goes into its Secret",
            Action::ResendInvitation => "a new invitation email goes out",
            Action::ResetPassword => "a password reset email goes out",
        }
    }
}

/// The User an action applies to.
#[derive(Debug, Args)]
pub struct Target {
    /// The User (membership) name.
    pub user: String,
    /// Its namespace (the organisation's); defaults to the kubeconfig context's.
    #[arg(short, long)]
    pub namespace: Option<String>,
}

/// Sets the action's annotation on the User to a new value.
pub async fn run(
    action: Action,
    target: Target,
    out: &mut impl std::io::Write,
) -> anyhow::Result<()> {
    let client = Client::try_default().await?;
    let namespace = target
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let users: Api<User> = Api::namespaced(client, &namespace);
    let value = Timestamp::now().as_nanosecond().to_string();
    let patch = serde_json::json!({"metadata": {"annotations": {action.annotation(): value}}});
    users
        .patch(
            &target.user,
            &PatchParams {
                field_manager: Some(MANAGER.into()),
                ..Default::default()
            },
            &Patch::Merge(&patch),
        )
        .await
        .map_err(|e| match e {
            kube::Error::Api(s) if s.code == 404 => {
                anyhow::anyhow!("no User {:?} in namespace {namespace:?}", target.user)
            }
            other => other.into(),
        })?;
    writeln!(
        out,
        "user.usher.dev/{} annotated {}={value}: {}",
        target.user,
        action.annotation(),
        action.done()
    )?;
    Ok(())
}
