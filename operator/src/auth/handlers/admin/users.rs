//! The admin table: list the organisation's Users, add, edit, lock and unlock them.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use kube::{ResourceExt, api::PostParams};
use serde::{Deserialize, Serialize};
use serde_json::json;
use usher_crds::{
    ANNOTATION_ADDED_BY, ANNOTATION_AUDITED_GENERATION, User, UserSpec, login::canonical_login,
};

use super::actor::{Admin, MANAGER, refused};
use crate::{
    auth::{
        error::{ApiError, ErrorCode, JsonBody},
        state::AuthState,
    },
    reason::Reason,
};

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
    fn of(st: &AuthState, u: &User) -> UserRow {
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

/// `GET /api/v1/users`: the organisation's Users.
pub async fn list(State(st): State<AuthState>, admin: Admin) -> Result<Response, ApiError> {
    let rows: Vec<UserRow> = st
        .directory
        .users_in(&admin.namespace)
        .iter()
        .map(|u| UserRow::of(&st, u))
        .collect();
    Ok(admin.principal.respond(Json(json!({ "users": rows }))))
}

/// The body of `POST /api/v1/users`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AddRequest {
    login: String,
    full_name: String,
    profile: String,
    #[serde(default)]
    name: Option<String>,
}

/// The canonical form of a login typed by an admin, or 422 saying what is wrong with it.
fn login_of(input: &str) -> Result<String, ApiError> {
    canonical_login(input).map_err(|e| ApiError::of(ErrorCode::InvalidUser, format!("login: {e}")))
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

/// `POST /api/v1/users`: 201 and the new User; its name from the login when not given.
pub async fn add(
    State(st): State<AuthState>,
    admin: Admin,
    JsonBody(req): JsonBody<AddRequest>,
) -> Result<Response, ApiError> {
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
        let mut user = User::new(
            &name,
            UserSpec {
                login: login.clone(),
                full_name: req.full_name.clone(),
                profile: req.profile.clone(),
                ..Default::default()
            },
        );
        // Who added them: a login that already has an account is told by email, naming them.
        user.metadata.annotations = Some(
            [
                (
                    ANNOTATION_ADDED_BY.to_owned(),
                    admin.principal.account.login.clone(),
                ),
                // In the trail already (see `actor::audited_marker`).
                (ANNOTATION_AUDITED_GENERATION.to_owned(), "1".to_owned()),
            ]
            .into(),
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
        ApiError::of(
            ErrorCode::Conflict,
            "no free resource name; pass one as \"name\"",
        )
    })?;
    st.directory.users.apply_own_write(user.clone());
    admin.record(&st, &user, Reason::UserAdded, "added").await;
    Ok((StatusCode::CREATED, Json(UserRow::of(&st, &user))).into_response())
}

/// The body of `PATCH /api/v1/users/{name}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EditRequest {
    #[serde(default)]
    full_name: Option<String>,
    #[serde(default)]
    login: Option<String>,
    #[serde(default)]
    profile: Option<String>,
}

/// `PATCH /api/v1/users/{name}`: full name, login or profile.
pub async fn edit(
    State(st): State<AuthState>,
    admin: Admin,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<EditRequest>,
) -> Result<Response, ApiError> {
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
        .change(
            &st,
            &name,
            json!({"spec": spec}),
            Reason::UserEdited,
            "edited",
        )
        .await?;
    Ok(admin.principal.respond(Json(UserRow::of(&st, &u))))
}

async fn set_locked(
    st: AuthState,
    admin: Admin,
    name: String,
    locked: bool,
) -> Result<Response, ApiError> {
    admin.may_edit()?;
    if locked && admin.principal.membership.user.name_any() == name {
        return Err(ApiError::of(
            ErrorCode::CannotLockSelf,
            "you cannot lock yourself out; ask another admin",
        ));
    }
    let (reason, what) = if locked {
        (Reason::UserLocked, "locked")
    } else {
        (Reason::UserUnlocked, "unlocked")
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

/// `POST /api/v1/users/{name}/lock`.
pub async fn lock(
    State(st): State<AuthState>,
    admin: Admin,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    set_locked(st, admin, name, true).await
}

/// `POST /api/v1/users/{name}/unlock`.
pub async fn unlock(
    State(st): State<AuthState>,
    admin: Admin,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    set_locked(st, admin, name, false).await
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
