//! Who may administer whom (pure): an admin holds `manageUser` in the organisation they act in
//! and is not locked; they grant at most the permissions they hold (as Kubernetes RBAC prevents
//! escalation) and act only on members whose profile they could have granted; an organisation
//! whose Users live in Git takes no edits here. Each refusal is the answer to give.

use usher_crds::{Organisation, Profile, User, permission::MANAGE_USER};

use super::error::{ApiError, ErrorCode};

/// What the admin's own membership allows, or why it allows nothing.
pub fn may_administer(
    locked: bool,
    permissions: &[String],
    organisation: &str,
) -> Result<(), ApiError> {
    // A locked admin keeps a live session (the product says so) but administers nothing, not
    // even their own unlock.
    if locked {
        return Err(ApiError::of(
            ErrorCode::MembershipLocked,
            "your membership of this organisation is locked; ask another admin",
        ));
    }
    if !permissions.iter().any(|p| p == MANAGE_USER) {
        return Err(ApiError::of(
            ErrorCode::PermissionDenied,
            format!(
                "managing users needs the {MANAGE_USER} permission in organisation {organisation}"
            ),
        ));
    }
    Ok(())
}

/// Refuses changes to Users when the organisation manages them in Git
/// (`spec.userManagement: GitOps`): Argo CD or Flux would revert them. One-shot actions (Kill
/// Session, Reset password, key renewal) are not changes to what Git holds.
pub fn may_edit(organisation: &Organisation) -> Result<(), ApiError> {
    if !organisation.managed_in_git() {
        return Ok(());
    }
    Err(ApiError::of(
        ErrorCode::ManagedInGit,
        format!(
            "organisation {} manages its users in Git (spec.userManagement: GitOps): change them in the repository, as Argo CD or Flux would revert an edit made here",
            organisation.spec.display_name
        ),
    ))
}

/// The permissions of `profile` that `own` does not hold.
pub fn lacking(own: &[String], profile: &Profile) -> Vec<String> {
    profile
        .spec
        .permissions
        .iter()
        .filter(|p| !own.contains(p))
        .cloned()
        .collect()
}

/// Refuses granting the profile `name` (`profile`, when it exists) to anyone when it holds
/// permissions `own` does not.
pub fn may_grant(own: &[String], name: &str, profile: Option<&Profile>) -> Result<(), ApiError> {
    let profile = profile.ok_or_else(|| {
        ApiError::of(
            ErrorCode::InvalidUser,
            format!("profile {name:?} does not exist"),
        )
    })?;
    holds_all(own, profile, |missing| {
        format!(
            "profile {name:?} has permissions you do not have ({missing}); ask a platform operator"
        )
    })
}

/// Refuses (403 `permission_denied`, the text `refusal` makes of the missing permissions) when
/// `profile` holds a permission `own` lacks.
fn holds_all(
    own: &[String],
    profile: &Profile,
    refusal: impl FnOnce(&str) -> String,
) -> Result<(), ApiError> {
    match lacking(own, profile).as_slice() {
        [] => Ok(()),
        missing => Err(ApiError::of(
            ErrorCode::PermissionDenied,
            refusal(&missing.join(", ")),
        )),
    }
}

/// Refuses any action on `target`, whose current profile is `profile` (None when it does not
/// exist: it grants nothing), when that profile holds a permission `own` lacks.
pub fn may_act_on(
    own: &[String],
    target: &User,
    profile: Option<&Profile>,
) -> Result<(), ApiError> {
    let Some(profile) = profile else {
        return Ok(());
    };
    holds_all(own, profile, |missing| {
        format!(
            "{} has the profile {:?}, with permissions you do not have ({missing}); ask a platform operator",
            target.spec.login, target.spec.profile
        )
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use usher_crds::{OrganisationSpec, ProfileSpec, UserManagement, UserSpec};

    use super::*;

    fn profile(name: &str, permissions: &[&str]) -> Profile {
        Profile::new(
            name,
            ProfileSpec {
                permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
                ..Default::default()
            },
        )
    }

    fn own(permissions: &[&str]) -> Vec<String> {
        permissions.iter().map(|p| (*p).to_owned()).collect()
    }

    fn user(profile: &str) -> User {
        User::new(
            "bob",
            UserSpec {
                login: "bob@example.com".into(),
                profile: profile.into(),
                ..Default::default()
            },
        )
    }

    #[test]
    fn only_an_unlocked_holder_of_manage_user_administers() {
        assert!(may_administer(false, &own(&[MANAGE_USER]), "acme").is_ok());
        let locked = may_administer(true, &own(&[MANAGE_USER]), "acme").unwrap_err();
        assert_eq!(locked.code, ErrorCode::MembershipLocked);
        let plain = may_administer(false, &own(&["readAlerts"]), "acme").unwrap_err();
        assert_eq!(
            (plain.code, plain.status.as_u16()),
            (ErrorCode::PermissionDenied, 403)
        );
        assert!(plain.message.contains(MANAGE_USER), "{}", plain.message);
    }

    #[test]
    fn an_admin_grants_at_most_what_they_hold() {
        let admin = own(&[MANAGE_USER, "readAlerts"]);
        let analyst = profile("analyst", &["readAlerts"]);
        let root = profile("root", &[MANAGE_USER, "deleteAll"]);
        assert!(may_grant(&admin, "analyst", Some(&analyst)).is_ok());
        let refused = may_grant(&admin, "root", Some(&root)).unwrap_err();
        assert_eq!(refused.code, ErrorCode::PermissionDenied);
        assert!(refused.message.contains("deleteAll"), "{}", refused.message);
        assert!(
            !refused.message.contains(MANAGE_USER),
            "{}",
            refused.message
        );
        let unknown = may_grant(&admin, "ghost", None).unwrap_err();
        assert_eq!(
            (unknown.code, unknown.status.as_u16()),
            (ErrorCode::InvalidUser, 422)
        );
    }

    #[test]
    fn an_admin_acts_only_on_members_they_could_have_made() {
        let admin = own(&[MANAGE_USER]);
        let root = profile("root", &[MANAGE_USER, "deleteAll"]);
        let refused = may_act_on(&admin, &user("root"), Some(&root)).unwrap_err();
        assert!(
            refused.message.contains("bob@example.com"),
            "{}",
            refused.message
        );
        assert!(
            may_act_on(
                &own(&[MANAGE_USER, "deleteAll"]),
                &user("root"),
                Some(&root)
            )
            .is_ok()
        );
        // A profile that does not exist grants nothing.
        assert!(may_act_on(&admin, &user("gone"), None).is_ok());
    }

    #[test]
    fn an_organisation_kept_in_git_takes_no_edits() {
        let mut org = Organisation::new(
            "acme",
            OrganisationSpec {
                display_name: "ACME".into(),
                ..Default::default()
            },
        );
        assert!(may_edit(&org).is_ok());
        org.spec.user_management = UserManagement::GitOps;
        let refused = may_edit(&org).unwrap_err();
        assert_eq!(
            (refused.code, refused.status.as_u16()),
            (ErrorCode::ManagedInGit, 409)
        );
    }
}
