//! The notice that a login was added to another organisation: an account already active is
//! linked with no invitation (nothing to accept), so this email is how the person learns that
//! one more organisation now holds a membership of theirs. Nothing in it to click.

use lettre::Message;

use super::{
    text::{html_escape, message, one_line},
    transport::MailError,
};

/// What the notice says.
pub struct AddedNotice<'a> {
    /// The login (email address).
    pub login: &'a str,
    /// The person's name, as this organisation wrote it.
    pub full_name: &'a str,
    /// The organisation's display name.
    pub organisation: &'a str,
    /// The admin who added them (their login), when one did through Usher's pages or API;
    /// `None` for the platform team's own resources (kubectl, GitOps).
    pub added_by: Option<&'a str>,
}

/// Builds the notice from `from` (`USHER_MAIL_FROM`).
pub fn added_notice(from: &str, n: &AddedNotice<'_>) -> Result<Message, MailError> {
    let name = one_line(n.full_name);
    let organisation = one_line(n.organisation);
    let who = n
        .added_by
        .map(one_line)
        .unwrap_or_else(|| "The platform team".to_owned());
    let text = format!(
        "Hello {name},\n\n\
         {who} added {login} to the organisation {organisation}. You need not do anything: \
         sign in as usual and choose {organisation} to work there. Its administrators can see \
         your name and login, and the sessions you use in it.\n\n\
         If you did not expect this, tell the platform team.\n",
        login = n.login,
    );
    let html = format!(
        "<!doctype html><html><body style=\"font-family:sans-serif\">\
         <p>Hello {name},</p>\
         <p>{who} added <strong>{login}</strong> to the organisation <strong>{organisation}</strong>. \
         You need not do anything: sign in as usual and choose {organisation} to work there. \
         Its administrators can see your name and login, and the sessions you use in it.</p>\
         <p>If you did not expect this, tell the platform team.</p>\
         </body></html>",
        name = html_escape(&name),
        who = html_escape(&who),
        login = html_escape(n.login),
        organisation = html_escape(&organisation),
    );
    message(
        from,
        &name,
        n.login,
        format!("You were added to {organisation}"),
        text,
        html,
    )
}

/// What the notice of a stopped sign-in says.
pub struct LockedNotice<'a> {
    /// The login (email address).
    pub login: &'a str,
    /// The person's name.
    pub full_name: &'a str,
    /// What was guessed: "password" or "two-factor code".
    pub factor: &'a str,
    /// How many failures in a row stopped it.
    pub failures: u32,
    /// `${PUBLIC_URL}/reset`, the page that sends a reset link.
    pub reset_page: &'a str,
}

/// Builds the notice that sign-in with a factor stopped after too many failures in a row.
pub fn locked_notice(from: &str, n: &LockedNotice<'_>) -> Result<Message, MailError> {
    let name = one_line(n.full_name);
    let text = format!(
        "Hello {name},\n\n\
         Sign-in to {login} stopped after {failures} wrong attempts in a row at the {factor}. \
         Someone may be trying to guess it.\n\n\
         To sign in again, choose a new password: ask for a link at {reset} (your two-factor \
         authentication stays as it is), or ask the platform team to unlock your account.\n",
        login = n.login,
        failures = n.failures,
        factor = n.factor,
        reset = n.reset_page,
    );
    let html = format!(
        "<!doctype html><html><body style=\"font-family:sans-serif\">\
         <p>Hello {name},</p>\
         <p>Sign-in to <strong>{login}</strong> stopped after {failures} wrong attempts in a row at the {factor}. Someone may be trying to guess it.</p>\
         <p>To sign in again, choose a new password: ask for a link at {reset} (your two-factor authentication stays as it is), or ask the platform team to unlock your account.</p>\
         </body></html>",
        name = html_escape(&name),
        login = html_escape(n.login),
        failures = n.failures,
        factor = html_escape(n.factor),
        reset = html_escape(n.reset_page),
    );
    message(
        from,
        &name,
        n.login,
        "Sign-in to your account stopped".into(),
        text,
        html,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_sign_in_says_which_factor_and_how_to_get_back_in() {
        let msg = locked_notice(
            "Usher <usher@example.com>",
            &LockedNotice {
                login: "alice@example.com",
                full_name: "Alice",
                factor: "two-factor code",
                failures: 100,
                reset_page: "https://usher.example.com/reset",
            },
        )
        .unwrap();
        let raw = String::from_utf8(msg.formatted()).unwrap();
        assert!(
            raw.contains("Subject: Sign-in to your account stopped"),
            "{raw}"
        );
        // Quoted-printable wraps long lines with a soft break.
        let flat = raw.replace("=\r\n", "");
        assert!(flat.contains("100 wrong attempts"), "{raw}");
        assert!(flat.contains("https://usher.example.com/reset"), "{raw}");
    }

    #[test]
    fn names_the_organisation_and_who_added_and_has_nothing_to_click() {
        let msg = added_notice(
            "Usher <usher@example.com>",
            &AddedNotice {
                login: "alice@example.com",
                full_name: "Alice",
                organisation: "Globex <b>\r\nBcc: evil@example.com",
                added_by: Some("boss@globex.example"),
            },
        )
        .unwrap();
        let raw = String::from_utf8(msg.formatted()).unwrap();
        assert!(
            raw.contains("boss@globex.example added alice@example.com"),
            "{raw}"
        );
        assert!(!raw.contains("\nBcc:"), "{raw}");
        assert!(!raw.contains("href="), "nothing to click: {raw}");
        assert!(
            raw.contains("<strong>Globex &lt;b&gt;"),
            "escaped in HTML: {raw}"
        );
        let by_team = added_notice(
            "Usher <usher@example.com>",
            &AddedNotice {
                login: "alice@example.com",
                full_name: "Alice",
                organisation: "Globex",
                added_by: None,
            },
        )
        .unwrap();
        let raw = String::from_utf8(by_team.formatted()).unwrap();
        assert!(raw.contains("The platform team added"), "{raw}");
    }
}
