//! The admin of a request ([`Admin`], an axum extractor): who they are, the organisation they
//! act in, and the writes they make, each checked against `auth::authority` and recorded as an
//! Event naming them.

use std::sync::Arc;

use axum::{extract::FromRequestParts, http::request::Parts};
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::events::{Event, EventType, Recorder, Reporter},
};
use usher_crds::{ANNOTATION_AUDITED, ANNOTATION_AUDITED_GENERATION, User, rules};

use crate::{
    audit::{Action, Outcome},
    auth::{
        authority,
        error::{ApiError, ErrorCode},
        principal::Principal,
        state::AuthState,
        trail,
    },
    reason::Reason,
};

/// Field manager of the admin API's writes.
pub const MANAGER: &str = "usher-ui";

/// An admin: authenticated (session or key), not restricted to enrolment, not locked, holding
/// `manageUser` in the organisation they act in.
pub struct Admin {
    /// Who is asking.
    pub principal: Principal,
    /// The namespace of the organisation they act in.
    pub namespace: String,
    /// The request's headers (its client and id, for the audit trail).
    pub headers: axum::http::HeaderMap,
}

/// The action an admin-API request attempts (what a refusal is recorded under).
pub fn attempted(method: &axum::http::Method, path: &str) -> Option<Action> {
    use axum::http::Method;
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    match (method, parts.as_slice()) {
        (&Method::POST, ["", "api", "v1", "users"]) => Some(Action::UserCreated),
        (&Method::PATCH, ["", "api", "v1", "users", _]) => Some(Action::UserUpdated),
        (&Method::POST, ["", "api", "v1", "users", _, "lock"]) => Some(Action::UserLocked),
        (&Method::POST, ["", "api", "v1", "users", _, "unlock"]) => Some(Action::UserUnlocked),
        (&Method::POST, ["", "api", "v1", "users", _, "kill-session"])
        | (&Method::DELETE, ["", "api", "v1", "sessions", _]) => Some(Action::SessionKilled),
        (&Method::POST, ["", "api", "v1", "users", _, "api-key"]) => Some(Action::ApikeyCreated),
        (&Method::POST, ["", "api", "v1", "users", _, "api-key", "renew"]) => {
            Some(Action::ApikeyRenewed)
        }
        (&Method::POST, ["", "api", "v1", "users", _, "reset-password"]) => {
            Some(Action::PasswordResetRequested)
        }
        _ => None,
    }
}

/// The audit action of what an admin did, by the Event reason it is recorded under.
fn action_of(reason: Reason) -> Option<Action> {
    Some(match reason {
        Reason::UserAdded => Action::UserCreated,
        Reason::UserEdited => Action::UserUpdated,
        Reason::UserLocked => Action::UserLocked,
        Reason::UserUnlocked => Action::UserUnlocked,
        Reason::KillSessionRequested | Reason::SessionEnded => Action::SessionKilled,
        Reason::PasswordResetRequested => Action::PasswordResetRequested,
        Reason::ApiKeyRequested => Action::ApikeyCreated,
        Reason::ApiKeyRenewed => Action::ApikeyRenewed,
        _ => return None,
    })
}

/// The annotation by which the admin API tells the controller that a change of a User is in
/// the audit trail already, and its value: the generation a spec change makes
/// (`usher.dev/audited-generation`), or `<annotation>=<value>` for a one-shot action
/// (`usher.dev/audited`). The controller records what it acts on only when these do not name
/// it. Two annotations, so a one-shot action does not hide a spec change not yet acted on.
pub fn audited_marker(user: &User, patch: &serde_json::Value) -> Option<(&'static str, String)> {
    let one_shot = patch["metadata"]["annotations"].as_object().and_then(|a| {
        a.iter()
            .find(|(k, _)| !k.starts_with("usher.dev/audited"))
            .map(|(k, v)| {
                (
                    ANNOTATION_AUDITED,
                    format!("{k}={}", v.as_str().unwrap_or_default()),
                )
            })
    });
    one_shot.or_else(|| {
        patch.get("spec").map(|_| {
            (
                ANNOTATION_AUDITED_GENERATION,
                (user.metadata.generation.unwrap_or(0) + 1).to_string(),
            )
        })
    })
}

impl FromRequestParts<AuthState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AuthState) -> Result<Self, ApiError> {
        let principal = st.authenticate(&parts.headers, true)?;
        let m = &principal.membership;
        let allowed = principal.not_restricted().and_then(|()| {
            authority::may_administer(m.user.spec.locked, &m.permissions(), &m.org_name())
        });
        if let Err(e) = allowed {
            if let Some(action) = attempted(&parts.method, parts.uri.path()) {
                st.audit(
                    st.audit_record(action, Outcome::Denied, &parts.headers)
                        .by(trail::actor(&principal))
                        .in_organisation(m.org_name())
                        .because(e.code.as_str()),
                );
            }
            return Err(e);
        }
        let namespace = m.organisation.namespace_name();
        Ok(Admin {
            principal,
            namespace,
            headers: parts.headers.clone(),
        })
    }
}

impl Admin {
    fn own(&self) -> Vec<String> {
        self.principal.membership.permissions()
    }

    /// Refuses edits when the organisation keeps its Users in Git.
    pub fn may_edit(&self) -> Result<(), ApiError> {
        authority::may_edit(&self.principal.membership.organisation)
    }

    /// Refuses granting `profile` when it holds permissions this admin does not.
    pub fn may_grant(&self, st: &AuthState, profile: &str) -> Result<(), ApiError> {
        let target = st.directory.profiles.get("", profile);
        authority::may_grant(&self.own(), profile, target.as_deref())
    }

    /// Refuses any action on `target` whose profile holds a permission this admin lacks.
    pub fn may_act_on(&self, st: &AuthState, target: &User) -> Result<(), ApiError> {
        let profile = st.directory.profiles.get("", &target.spec.profile);
        authority::may_act_on(&self.own(), target, profile.as_deref())
    }

    /// Refuses `login` when another User of this organisation has it (the one named `name`
    /// aside): a login has one membership per organisation.
    pub fn login_free(
        &self,
        st: &AuthState,
        login: &str,
        name: Option<&str>,
    ) -> Result<(), ApiError> {
        let users = st.directory.users_in(&self.namespace);
        match rules::login_holder(login, &self.namespace, name.unwrap_or_default(), &users) {
            Some(holder) => Err(ApiError::of(
                ErrorCode::LoginTaken,
                format!(
                    "{login} is already a member of this organisation (user {:?}); edit that user instead",
                    holder.name_any()
                ),
            )),
            None => Ok(()),
        }
    }

    /// The Users of the organisation, as the API server serves them.
    pub fn users(&self, st: &AuthState) -> Api<User> {
        Api::namespaced(st.client.clone(), &self.namespace)
    }

    /// The User `name` of the current organisation, from the cache.
    pub fn user(&self, st: &AuthState, name: &str) -> Result<Arc<User>, ApiError> {
        st.directory
            .users
            .get(&self.namespace, name)
            .filter(|u| rules::is_live(u))
            .ok_or_else(|| {
                ApiError::of(
                    ErrorCode::UserNotFound,
                    format!(
                        "organisation {} has no user {name:?}",
                        self.principal.membership.org_name()
                    ),
                )
            })
    }

    /// Applies a merge patch to User `name` as `usher-ui` and records an Event naming the admin.
    pub async fn change(
        &self,
        st: &AuthState,
        name: &str,
        patch: serde_json::Value,
        reason: Reason,
        what: &str,
    ) -> Result<User, ApiError> {
        let mut target = self.user(st, name)?;
        let mut attempts = 0;
        let written = loop {
            if let Err(e) = self.may_act_on(st, &target) {
                self.denied(st, reason, &target, &e);
                return Err(e);
            }
            // Marked as audited here, in the same write, with the version it was read at (so
            // the generation it names is the one this write makes).
            let mut patch = patch.clone();
            if let Some((annotation, marker)) = audited_marker(&target, &patch) {
                patch["metadata"]["annotations"][annotation] = marker.into();
                if patch.get("spec").is_some() {
                    patch["metadata"]["resourceVersion"] = target.resource_version().into();
                }
            }
            let params = PatchParams {
                field_manager: Some(MANAGER.into()),
                ..Default::default()
            };
            match self
                .users(st)
                .patch(name, &params, &Patch::Merge(&patch))
                .await
            {
                Ok(written) => break written,
                // Written meanwhile (the controller's status, or the cache a step behind): read
                // it again, decide again, write again.
                Err(kube::Error::Api(s)) if s.code == 409 && attempts < 3 => {
                    attempts += 1;
                    target = Arc::new(self.users(st).get(name).await.map_err(refused)?);
                }
                Err(e) => return Err(refused(e)),
            }
        };
        st.directory.users.apply_own_write(written.clone());
        self.record(st, &written, reason, what).await;
        Ok(written)
    }

    /// Records a refused action on `user` in the audit trail.
    pub fn denied(&self, st: &AuthState, reason: Reason, user: &User, e: &ApiError) {
        if let Some(action) = action_of(reason) {
            st.audit(
                st.audit_record(action, Outcome::Denied, &self.headers)
                    .by(trail::actor(&self.principal))
                    .on(trail::user_target(user))
                    .in_organisation(self.principal.membership.org_name())
                    .because(e.code.as_str()),
            );
        }
    }

    /// Records an Event on `user` naming the admin, and the action in the audit trail.
    pub async fn record(&self, st: &AuthState, user: &User, reason: Reason, what: &str) {
        if let Some(action) = action_of(reason) {
            st.audit(
                st.audit_record(action, Outcome::Success, &self.headers)
                    .by(trail::actor(&self.principal))
                    .on(trail::user_target(user))
                    .in_organisation(self.principal.membership.org_name()),
            );
        }
        let recorder = Recorder::new(
            st.client.clone(),
            Reporter {
                controller: MANAGER.into(),
                instance: std::env::var("POD_NAME").ok(),
            },
        );
        let ev = Event {
            type_: EventType::Normal,
            reason: reason.as_str().into(),
            note: Some(format!(
                "{what} by {} through the admin API",
                self.principal.account.login
            )),
            action: reason.as_str().into(),
            secondary: None,
        };
        if let Err(e) = recorder.publish(&ev, &user.object_ref(&())).await {
            tracing::warn!(error = %e, %reason, "could not publish an Event");
        }
    }
}

/// Turns the API server's refusal (schema, CEL rule, Usher's admission webhook) into an answer
/// that keeps its message: it names the field and the fix.
pub fn refused(e: kube::Error) -> ApiError {
    match e {
        // A 403 without the details Usher's webhook gives its refusals (the group and the rule)
        // is RBAC refusing this server: a deployment problem, logged, not shown (it names the
        // service account).
        kube::Error::Api(s)
            if s.code == 403
                && s.details
                    .as_ref()
                    .is_none_or(|d| d.group != usher_crds::GROUP) =>
        {
            ApiError::internal(&s.message)
        }
        kube::Error::Api(s) if matches!(s.code, 400 | 403 | 409 | 422) => {
            let code = match s.code {
                409 => ErrorCode::Conflict,
                _ => ErrorCode::InvalidUser,
            };
            ApiError::of(code, s.message)
        }
        kube::Error::Api(s) if s.code == 404 => {
            ApiError::of(ErrorCode::UserNotFound, "no such user")
        }
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use kube::core::{
        Status,
        response::{StatusCause, StatusDetails},
    };

    use super::*;

    fn forbidden(details: Option<StatusDetails>) -> kube::Error {
        let mut s = Status::failure("denied: spec.login is taken", "Forbidden");
        s.code = 403;
        s.details = details;
        kube::Error::Api(Box::new(s))
    }

    #[test]
    fn the_webhooks_refusal_is_told_by_its_details_not_its_text() {
        let webhook = forbidden(Some(StatusDetails {
            name: "bob".into(),
            group: usher_crds::GROUP.into(),
            kind: "User".into(),
            uid: String::new(),
            causes: vec![StatusCause {
                reason: "LoginTaken".into(),
                message: "spec.login is taken".into(),
                field: "spec.login".into(),
            }],
            retry_after_seconds: 0,
        }));
        let answer = refused(webhook);
        assert_eq!(
            (answer.code, answer.status.as_u16()),
            (ErrorCode::InvalidUser, 422)
        );
        assert!(answer.message.contains("spec.login"), "{}", answer.message);
        // RBAC refusing this server: not shown to the admin (it names the service account),
        // even when its text happens to mention an admission webhook.
        let mut rbac = Status::failure(
            "users is forbidden: User \"system:serviceaccount:usher:auth\" cannot patch (admission webhook)",
            "Forbidden",
        );
        rbac.code = 403;
        let answer = refused(kube::Error::Api(Box::new(rbac)));
        assert_eq!(answer.code, ErrorCode::InternalError);
        assert!(
            !answer.message.contains("serviceaccount"),
            "{}",
            answer.message
        );
        assert_eq!(refused(forbidden(None)).code, ErrorCode::InternalError);
    }
}
