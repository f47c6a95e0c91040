//! Permission names, as carried by [`crate::Profile`]s (TheHive's vocabulary: `manageUser`,
//! `manageCase`, …).

/// The syntax every permission name follows; also the CRD schema's `pattern`.
pub const PERMISSION_PATTERN: &str = r"^[a-zA-Z][a-zA-Z0-9:._-]{0,63}$";

/// The permission Usher itself enforces for its Organisation > Users admin API.
pub const MANAGE_USER: &str = "manageUser";

/// Why a permission name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "permission {name:?} is not valid: it must start with a letter and use only letters, digits and `:._-`, at most 64 characters (for example `manageUser`)"
)]
pub struct InvalidPermission {
    /// The refused name, escaped by `Debug` formatting in the message.
    pub name: String,
}

/// Checks a permission name against [`PERMISSION_PATTERN`].
pub fn validate_permission(name: &str) -> Result<(), InvalidPermission> {
    let mut chars = name.chars();
    let valid = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '.' | '_' | '-'));
    if valid {
        Ok(())
    } else {
        Err(InvalidPermission {
            name: name.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_thehive_names_and_namespaced_ones() {
        for ok in [
            "manageUser",
            "manageCase",
            "manageObservable",
            "accessTheHiveFS",
            "case:read",
            "app.usher-admin_2",
            "a",
        ] {
            assert_eq!(validate_permission(ok), Ok(()), "{ok}");
        }
        assert!(validate_permission(&format!("a{}", "b".repeat(63))).is_ok());
    }

    #[test]
    fn refuses_malformed_names_with_a_message_naming_the_rule() {
        for bad in [
            "",
            "1manage",
            "-x",
            "manage user",
            "manage/user",
            "manageÜser",
            "x\n",
            &format!("a{}", "b".repeat(64)),
        ] {
            let err = validate_permission(bad).expect_err(bad);
            assert!(
                err.to_string().contains("must start with a letter"),
                "{err}"
            );
        }
    }
}
