//! The Organisation > Users admin API, for holders of `manageUser` in their current
//! organisation (session or Bearer key): list, add, edit, lock and unlock, Kill Session, create
//! and renew API keys. Every action is a write to a User resource in the current organisation's
//! namespace only, with the field manager `usher-ui`, and a Kubernetes Event on the User naming
//! who did it. Nothing here can enroll or reset anyone's MFA.

use axum::{
    Json, Router,
    extract::{Path, State as Extract},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, patch, post},
};
use k8s_openapi::jiff::Timestamp;
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams, PostParams},
    runtime::events::{Event, EventType, Recorder, Reporter},
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use usher_crds::{
    ANNOTATION_KILL_SESSIONS, ANNOTATION_RESET_PASSWORD, Profile, User, UserSpec,
    login::canonical_login, permission::MANAGE_USER, rules,
};

use crate::auth::{
    error::{ApiError, ErrorCode, JsonBody},
    principal::Principal,
    state::State,
};

/// Field manager of the admin API's writes.
pub const MANAGER: &str = "usher-ui";

/// The admin routes.
pub fn routes() -> Router<State> {
    Router::new()
        .route("/api/v1/users", get(list).post(add))
        .route("/api/v1/users/{name}", patch(edit))
        .route("/api/v1/users/{name}/lock", post(lock))
        .route("/api/v1/users/{name}/unlock", post(unlock))
        .route("/api/v1/users/{name}/kill-session", post(kill_session))
        .route("/api/v1/users/{name}/api-key", post(create_api_key))
        .route("/api/v1/users/{name}/api-key/renew", post(renew_api_key))
        .route("/api/v1/users/{name}/reset-password", post(reset_password))
}

/// A User as the admin table shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserRow {
    /// The resource name (what the action routes take).
    pub name: String,
    /// The login.
    pub login: String,
    /// Full name in this organisation.
    pub full_name: String,
    /// Profile in this organisation.
    pub profile: String,
    /// Locked by an admin.
    pub locked: bool,
    /// Pending, Invited, Active, Locked or Failed.
    pub phase: Option<String>,
    /// True once the person enrolled TOTP.
    pub mfa_enrolled: bool,
    /// True when an API key is enabled.
    pub api_key: bool,
    /// The key's fingerprint, once issued.
    pub api_key_fingerprint: Option<String>,
    /// `Person` or `Service` (API key only).
    #[serde(rename = "type")]
    pub user_type: usher_crds::UserType,
}

impl UserRow {
    fn of(st: &State, u: &User) -> UserRow {
        let status = u.status.as_ref();
        UserRow {
            name: u.name_any(),
            login: u.spec.login.clone(),
            full_name: u.spec.full_name.clone(),
            profile: u.spec.profile.clone(),
            locked: u.spec.locked,
            phase: status.and_then(|s| s.phase).map(|p| format!("{p:?}")),
            mfa_enrolled: status.and_then(|s| s.mfa_enrolled).unwrap_or(false),
            api_key: u.api_key_enabled(),
            api_key_fingerprint: u
                .api_key_enabled()
                .then(|| st.directory.key_fingerprint(u))
                .flatten(),
            user_type: u.spec.user_type,
        }
    }
}

/// An admin: authenticated, not restricted to enrolment, holding `manageUser`.
pub struct Admin {
    /// Who is asking.
    pub principal: Principal,
    /// The namespace of the organisation they act in.
    pub namespace: String,
}

impl Admin {
    /// The admin of a request, or the answer to give instead.
    pub fn of(st: &State, headers: &HeaderMap) -> Result<Admin, ApiError> {
        let principal = st.authenticate(headers, true)?;
        principal.not_restricted()?;
        // A locked admin keeps a live session (the product says so) but administers nothing,
        // not even their own unlock.
        if principal.membership.user.spec.locked {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::MembershipLocked,
                "your membership of this organisation is locked; ask another admin",
            ));
        }
        if !principal
            .membership
            .permissions()
            .iter()
            .any(|p| p == MANAGE_USER)
        {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::PermissionDenied,
                format!(
                    "managing users needs the {MANAGE_USER} permission in organisation {}",
                    principal.membership.org_name()
                ),
            ));
        }
        let namespace = principal.membership.organisation.namespace_name();
        Ok(Admin {
            principal,
            namespace,
        })
    }

    /// Refuses changes to Users when the organisation manages them in Git
    /// (`spec.userManagement: GitOps`): Argo CD or Flux would revert them. One-shot actions
    /// (Kill Session, Reset password, key renewal) are not changes to what Git holds.
    pub fn may_edit(&self) -> Result<(), ApiError> {
        let org = &self.principal.membership.organisation;
        if !org.managed_in_git() {
            return Ok(());
        }
        Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::ManagedInGit,
            format!(
                "organisation {} manages its users in Git (spec.userManagement: GitOps): change them in the repository, as Argo CD or Flux would revert an edit made here",
                org.spec.display_name
            ),
        ))
    }

    /// The permissions of `profile` this admin does not hold.
    fn lacks(&self, profile: &Profile) -> Vec<String> {
        let own = self.principal.membership.permissions();
        profile
            .spec
            .permissions
            .iter()
            .filter(|p| !own.contains(p))
            .cloned()
            .collect()
    }

    /// Refuses granting `profile` when it holds permissions this admin does not: an admin can
    /// hand out at most what they have (as Kubernetes RBAC prevents escalation).
    fn may_grant(&self, st: &State, profile: &str) -> Result<(), ApiError> {
        let target = st.directory.profiles.get("", profile).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::InvalidUser,
                format!("profile {profile:?} does not exist"),
            )
        })?;
        match self.lacks(&target).as_slice() {
            [] => Ok(()),
            missing => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::PermissionDenied,
                format!(
                    "profile {profile:?} has permissions you do not have ({}); ask a platform operator",
                    missing.join(", ")
                ),
            )),
        }
    }

    /// Refuses any action on `target` whose current profile holds a permission this admin
    /// lacks: an admin acts only on members they could have made.
    pub fn may_act_on(&self, st: &State, target: &User) -> Result<(), ApiError> {
        let Some(profile) = st.directory.profiles.get("", &target.spec.profile) else {
            return Ok(());
        };
        match self.lacks(&profile).as_slice() {
            [] => Ok(()),
            missing => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::PermissionDenied,
                format!(
                    "{} has the profile {:?}, with permissions you do not have ({}); ask a platform operator",
                    target.spec.login,
                    target.spec.profile,
                    missing.join(", ")
                ),
            )),
        }
    }

    /// Refuses `login` when another User of this organisation has it (the one named `name`
    /// aside): a login has one membership per organisation.
    fn login_free(&self, st: &State, login: &str, name: Option<&str>) -> Result<(), ApiError> {
        let users = st.directory.users_in(&self.namespace);
        match rules::login_holder(login, &self.namespace, name.unwrap_or_default(), &users) {
            Some(holder) => Err(ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::LoginTaken,
                format!(
                    "{login} is already a member of this organisation (user {:?}); edit that user instead",
                    holder.name_any()
                ),
            )),
            None => Ok(()),
        }
    }

    fn users(&self, st: &State) -> Api<User> {
        Api::namespaced(st.client.clone(), &self.namespace)
    }

    /// The User `name` of the current organisation, from the cache.
    fn user(&self, st: &State, name: &str) -> Result<std::sync::Arc<User>, ApiError> {
        st.directory
            .users
            .get(&self.namespace, name)
            .filter(|u| rules::is_live(u))
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    ErrorCode::UserNotFound,
                    format!(
                        "organisation {} has no user {name:?}",
                        self.principal.membership.org_name()
                    ),
                )
            })
    }

    /// Applies a merge patch to User `name` as `usher-ui` and records an Event naming the admin.
    async fn change(
        &self,
        st: &State,
        name: &str,
        patch: serde_json::Value,
        reason: &str,
        what: &str,
    ) -> Result<User, ApiError> {
        let target = self.user(st, name)?;
        self.may_act_on(st, &target)?;
        let written = self
            .users(st)
            .patch(
                name,
                &PatchParams {
                    field_manager: Some(MANAGER.into()),
                    ..Default::default()
                },
                &Patch::Merge(&patch),
            )
            .await
            .map_err(refused)?;
        st.directory.users.apply_own_write(written.clone());
        self.record(st, &written, reason, what).await;
        Ok(written)
    }

    /// Records an Event on `user` naming the admin.
    pub async fn record(&self, st: &State, user: &User, reason: &str, what: &str) {
        let recorder = Recorder::new(
            st.client.clone(),
            Reporter {
                controller: MANAGER.into(),
                instance: std::env::var("POD_NAME").ok(),
            },
        );
        let ev = Event {
            type_: EventType::Normal,
            reason: reason.into(),
            note: Some(format!(
                "{what} by {} through the admin API",
                self.principal.account.login
            )),
            action: reason.into(),
            secondary: None,
        };
        if let Err(e) = recorder.publish(&ev, &user.object_ref(&())).await {
            tracing::warn!(error = %e, reason, "could not publish an Event");
        }
    }
}

/// Turns the API server's refusal (schema, admission webhook) into an answer that keeps its
/// message: it names the field and the fix.
fn refused(e: kube::Error) -> ApiError {
    match e {
        // A 403 that is not the webhook's is RBAC refusing this server: a deployment problem,
        // logged, not shown (it names the service account).
        kube::Error::Api(s) if s.code == 403 && !s.message.contains("admission webhook") => {
            ApiError::internal(&s.message)
        }
        kube::Error::Api(s) if matches!(s.code, 400 | 403 | 409 | 422) => {
            let (status, code) = match s.code {
                409 => (StatusCode::CONFLICT, ErrorCode::Conflict),
                _ => (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::InvalidUser),
            };
            ApiError::new(status, code, s.message)
        }
        kube::Error::Api(s) if s.code == 404 => ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::UserNotFound,
            "no such user",
        ),
        other => other.into(),
    }
}

async fn list(Extract(st): Extract<State>, headers: HeaderMap) -> Result<Response, ApiError> {
    let admin = Admin::of(&st, &headers)?;
    let rows: Vec<UserRow> = st
        .directory
        .users_in(&admin.namespace)
        .iter()
        .map(|u| UserRow::of(&st, u))
        .collect();
    Ok(admin.principal.respond(Json(json!({ "users": rows }))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AddRequest {
    login: String,
    full_name: String,
    profile: String,
    #[serde(default)]
    name: Option<String>,
}

/// The canonical form of a login typed by an admin, or 422 saying what is wrong with it.
fn login_of(input: &str) -> Result<String, ApiError> {
    canonical_login(input).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidUser,
            format!("login: {e}"),
        )
    })
}

/// A resource name from a login's local part: lowercase letters, digits and '-'.
fn name_from_login(login: &str) -> String {
    let local = login.split('@').next().unwrap_or_default();
    let mut name: String = local
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    name = name.trim_matches('-').chars().take(50).collect();
    if name.is_empty() { "user".into() } else { name }
}

async fn add(
    Extract(st): Extract<State>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<AddRequest>,
) -> Result<Response, ApiError> {
    let admin = Admin::of(&st, &headers)?;
    admin.may_edit()?;
    let login = login_of(&req.login)?;
    admin.login_free(&st, &login, None)?;
    admin.may_grant(&st, &req.profile)?;
    let base = req.name.clone().unwrap_or_else(|| name_from_login(&login));
    let api = admin.users(&st);
    // A free name: the login's local part, then -2, -3, … (two people may share it).
    let mut created = None;
    for n in 1..=20 {
        let name = if n == 1 {
            base.clone()
        } else {
            format!("{base}-{n}")
        };
        let user = User::new(
            &name,
            UserSpec {
                login: login.clone(),
                full_name: req.full_name.clone(),
                profile: req.profile.clone(),
                ..Default::default()
            },
        );
        match api
            .create(
                &PostParams {
                    field_manager: Some(MANAGER.into()),
                    ..Default::default()
                },
                &user,
            )
            .await
        {
            Ok(u) => {
                created = Some(u);
                break;
            }
            Err(kube::Error::Api(s)) if s.code == 409 && req.name.is_none() => continue,
            Err(e) => return Err(refused(e)),
        }
    }
    let user = created.ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            "no free resource name; pass one as \"name\"",
        )
    })?;
    st.directory.users.apply_own_write(user.clone());
    admin.record(&st, &user, "UserAdded", "added").await;
    Ok((StatusCode::CREATED, Json(UserRow::of(&st, &user))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct EditRequest {
    #[serde(default)]
    full_name: Option<String>,
    #[serde(default)]
    login: Option<String>,
    #[serde(default)]
    profile: Option<String>,
}

async fn edit(
    Extract(st): Extract<State>,
    headers: HeaderMap,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<EditRequest>,
) -> Result<Response, ApiError> {
    let admin = Admin::of(&st, &headers)?;
    admin.may_edit()?;
    let mut spec = serde_json::Map::new();
    if let Some(f) = req.full_name {
        spec.insert("fullName".into(), json!(f));
    }
    let target = admin.user(&st, &name)?;
    if let Some(l) = req.login {
        let login = login_of(&l)?;
        admin.login_free(&st, &login, Some(&name))?;
        // A new login receives the membership's profile: that is granting it again.
        admin.may_grant(&st, req.profile.as_deref().unwrap_or(&target.spec.profile))?;
        spec.insert("login".into(), json!(login));
    }
    if let Some(p) = req.profile {
        admin.may_grant(&st, &p)?;
        spec.insert("profile".into(), json!(p));
    }
    if spec.is_empty() {
        return Err(ApiError::bad_request(
            "send at least one of fullName, login, profile",
        ));
    }
    let u = admin
        .change(&st, &name, json!({"spec": spec}), "UserEdited", "edited")
        .await?;
    Ok(admin.principal.respond(Json(UserRow::of(&st, &u))))
}

async fn set_locked(
    st: State,
    headers: HeaderMap,
    name: String,
    locked: bool,
) -> Result<Response, ApiError> {
    let admin = Admin::of(&st, &headers)?;
    admin.may_edit()?;
    if locked && admin.principal.membership.user.name_any() == name {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::CannotLockSelf,
            "you cannot lock yourself out; ask another admin",
        ));
    }
    let (reason, what) = if locked {
        ("UserLocked", "locked")
    } else {
        ("UserUnlocked", "unlocked")
    };
    let u = admin
        .change(
            &st,
            &name,
            json!({"spec": {"locked": locked}}),
            reason,
            what,
        )
        .await?;
    Ok(admin.principal.respond(Json(UserRow::of(&st, &u))))
}

async fn lock(
    Extract(st): Extract<State>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    set_locked(st, headers, name, true).await
}

async fn unlock(
    Extract(st): Extract<State>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    set_locked(st, headers, name, false).await
}

/// A fresh value for a one-shot annotation.
fn action_value() -> String {
    Timestamp::now().as_millisecond().to_string()
}

async fn kill_session(
    Extract(st): Extract<State>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let admin = Admin::of(&st, &headers)?;
    let patch = json!({"metadata": {"annotations": {ANNOTATION_KILL_SESSIONS: action_value()}}});
    admin
        .change(
            &st,
            &name,
            patch,
            "KillSessionRequested",
            "Kill Session requested",
        )
        .await?;
    Ok(admin.principal.respond(StatusCode::ACCEPTED))
}

/// Sends the person a password reset link (the annotation; the controller mails it).
async fn reset_password(
    Extract(st): Extract<State>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let admin = Admin::of(&st, &headers)?;
    if admin.user(&st, &name)?.is_service() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::ServiceUser,
            "a service user has no password: it authenticates with its API key (renew the key instead)",
        ));
    }
    let patch = json!({"metadata": {"annotations": {ANNOTATION_RESET_PASSWORD: action_value()}}});
    admin
        .change(
            &st,
            &name,
            patch,
            "PasswordResetRequested",
            "password reset requested",
        )
        .await?;
    Ok(admin.principal.respond(StatusCode::ACCEPTED))
}

async fn create_api_key(
    Extract(st): Extract<State>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let admin = Admin::of(&st, &headers)?;
    admin.may_edit()?;
    let u = admin
        .change(
            &st,
            &name,
            json!({"spec": {"apiKey": {"enabled": true}}}),
            "ApiKeyRequested",
            "API key requested",
        )
        .await?;
    Ok(admin.principal.respond((
        StatusCode::ACCEPTED,
        Json(json!({ "secretName": u.api_key_secret_name() })),
    )))
}

async fn renew_api_key(
    Extract(st): Extract<State>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let admin = Admin::of(&st, &headers)?;
    let user = admin.user(&st, &name)?;
    admin.may_act_on(&st, &user)?;
    if !user.api_key_enabled() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NoApiKey,
            "this user has no API key; create one first",
        ));
    }
    // The account first: the old key stops at once; the controller delivers the new one.
    let key = st.renew_key(&user).await?;
    admin
        .record(
            &st,
            &user,
            "ApiKeyRenewed",
            &format!("API key renewed ({})", key.fingerprint()),
        )
        .await;
    Ok(admin.principal.respond((
        StatusCode::ACCEPTED,
        Json(json!({ "secretName": user.api_key_secret_name() })),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_login_local_part() {
        assert_eq!(name_from_login("alice.martin@example.com"), "alice-martin");
        assert_eq!(
            name_from_login("Bob_Smith+tag@example.com"),
            "bob-smith-tag"
        );
        assert_eq!(name_from_login("élodie@example.com"), "lodie");
        assert_eq!(name_from_login("@example.com"), "user");
    }
}
