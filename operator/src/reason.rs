//! Every reason Usher writes to Kubernetes, on Events and on status conditions, named once: what
//! `kubectl get events --field-selector reason=…`, alerts, dashboards and the tests rely on.
//! Condition types are [`ConditionType`].

macro_rules! names {
    ($(#[$doc:meta])* $vis:vis enum $name:ident { $($(#[$m:meta])* $variant:ident,)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        $vis enum $name { $($(#[$m])* $variant,)* }

        impl $name {
            /// The CamelCase name Kubernetes shows.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => stringify!($variant),)* }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

names! {
    /// The reason of an Event or a condition.
    pub enum Reason {
        // A User's way to an active account (Events and conditions).
        /// Its account is being made or its invitation has not gone yet.
        Provisioning,
        /// The invitation went out (Event, `Ready` reason while it waits).
        Invited,
        /// The invitation went out again, same link (Event).
        InvitationResent,
        /// The invitation expired (`Stalled`).
        InvitationExpired,
        /// The `InvitationSent` condition is true.
        Sent,
        /// The mail server refused or could not be reached.
        MailUnavailable,
        /// The person set a password (Event).
        Activated,
        /// Active (`Ready`).
        Active,
        /// A service user (`Ready`).
        ServiceUser,
        /// `spec.locked` (Event and `Ready`).
        Locked,
        /// `spec.locked` cleared (Event).
        Unlocked,
        /// Kill Session ended the membership's sessions (Event).
        SessionsKilled,
        /// A password reset link was emailed (Event).
        PasswordResetSent,
        /// A login with an active account was linked, and the person told by email (Event).
        AddedNoticeSent,
        /// Sign-in with a factor stopped after too many failures, and the person was told
        /// (Event).
        SignInLockedNoticeSent,
        // API keys.
        /// The key is being issued (`Reconciling`).
        IssuingApiKey,
        /// A first key was issued (Event).
        ApiKeyIssued,
        /// A key was renewed or rotated (Event, also by an admin).
        ApiKeyRenewed,
        /// The key was turned off and its Secret removed (Event).
        ApiKeyRevoked,
        /// `spec.apiKey.secretName` changed: the key moved (Event).
        ApiKeySecretMoved,
        /// The key's Secret name is taken by a Secret Usher did not make (Warning).
        ApiKeySecretTaken,
        /// The key's Secret was deleted or edited and was put right (Event).
        ApiKeySecretRepaired,
        // What a person fixes in a User (Warning, `Stalled`).
        /// `spec.login` is not a valid login.
        InvalidLogin,
        /// No Organisation holds the User's namespace.
        NoOrganisation,
        /// `spec.profile` names no Profile.
        UnknownProfile,
        /// Another live User of the organisation has the login.
        DuplicateLogin,
        // Organisations and Profiles.
        /// The namespace belongs to another Organisation (Warning, `Stalled`).
        NamespaceTaken,
        /// The namespace was created (Event).
        NamespaceCreated,
        /// The Organisation holds its namespace (`Ready`).
        NamespaceHeld,
        /// A Profile is valid (`Ready`).
        Valid,
        // A reconcile that failed and is retried (Warning).
        /// The API server could not be reached or refused.
        ApiUnavailable,
        /// Anything else.
        ReconcileFailed,
        // What an admin did through the admin API (Event naming the admin).
        /// A User was added.
        UserAdded,
        /// A User was edited.
        UserEdited,
        /// A membership was locked.
        UserLocked,
        /// A membership was unlocked.
        UserUnlocked,
        /// Kill Session was asked for.
        KillSessionRequested,
        /// A password reset was asked for.
        PasswordResetRequested,
        /// An API key was asked for.
        ApiKeyRequested,
        /// One of a member's sessions was ended.
        SessionEnded,
        // OIDC clients.
        /// The client got its id (and secret) (Event).
        ClientRegistered,
        /// Its secret was renewed (Event).
        ClientSecretRenewed,
        /// Its Secret was deleted or edited and was put right (Event).
        ClientSecretRepaired,
        /// Its Secret name is taken by a Secret Usher did not make (Warning, `Stalled`).
        ClientSecretTaken,
        /// It is in a namespace it cannot serve from, or lists what it must not (Warning,
        /// `Stalled`).
        ClientMisplaced,
        /// It can sign people in (`Ready`).
        ClientReady,
        /// Its back-channel logout endpoint did not take a logout token; it is kept and
        /// retried (Warning).
        LogoutFailed,
        /// A logout token its endpoint never took within the retry bound was given up
        /// (Warning).
        LogoutDropped,
    }
}

names! {
    /// A condition type.
    pub enum ConditionType {
        /// kstatus: the object is what was asked for.
        Ready,
        /// kstatus: work is under way.
        Reconciling,
        /// kstatus: it cannot go on until someone fixes something.
        Stalled,
        /// A User's invitation email went out.
        InvitationSent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_variants_in_camel_case() {
        assert_eq!(Reason::NamespaceTaken.as_str(), "NamespaceTaken");
        assert_eq!(Reason::ApiKeySecretTaken.to_string(), "ApiKeySecretTaken");
        assert_eq!(ConditionType::InvitationSent.as_str(), "InvitationSent");
    }
}
