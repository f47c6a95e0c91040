//! The password reset email: plain text and HTML, with the link, its lifetime and what to do if
//! the person did not ask for it.

use lettre::Message;

use super::{
    text::{html_escape, message, one_line},
    transport::MailError,
};

/// What a reset email says.
pub struct PasswordResetMail<'a> {
    /// The login (email address).
    pub login: &'a str,
    /// The person's name.
    pub full_name: &'a str,
    /// `${PUBLIC_URL}/reset#token=…`.
    pub link: &'a str,
    /// When the link stops working, already formatted (`2026-11-28 20:15 UTC`).
    pub expires: &'a str,
}

/// Builds the reset email from `from` (`USHER_MAIL_FROM`).
pub fn reset_email(from: &str, reset: &PasswordResetMail<'_>) -> Result<Message, MailError> {
    let name = one_line(reset.full_name);
    let text = format!(
        "Hello {name},\n\n\
         Someone asked to reset the password of {login}. Open this link to choose a new one:\n\n\
         {link}\n\n\
         The link works once and expires {expires}. Setting a new password signs you out \
         everywhere; your two-factor authentication stays as it is.\n\n\
         If this was not you, ignore this email: your password stays as it is. If it keeps \
         happening, tell your administrator.\n",
        login = reset.login,
        link = reset.link,
        expires = reset.expires,
    );
    let html = format!(
        "<!doctype html><html><body style=\"font-family:sans-serif\">\
         <p>Hello {name},</p>\
         <p>Someone asked to reset the password of <strong>{login}</strong>. Open this link to choose a new one:</p>\
         <p><a href=\"{link}\">Choose a new password</a></p>\
         <p>The link works once and expires {expires}. Setting a new password signs you out everywhere; your two-factor authentication stays as it is.</p>\
         <p>If this was not you, ignore this email: your password stays as it is. If it keeps happening, tell your administrator.</p>\
         </body></html>",
        name = html_escape(&name),
        login = html_escape(reset.login),
        link = html_escape(reset.link),
        expires = html_escape(reset.expires),
    );
    message(
        from,
        &name,
        reset.login,
        "Reset your password".into(),
        text,
        html,
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn says_what_happened_the_link_its_lifetime_and_if_this_was_not_you() {
        let msg = reset_email(
            "Usher <usher@example.com>",
            &PasswordResetMail {
                login: "alice@example.com",
                full_name: "Alice\r\nBcc: evil@example.com",
                link: "https://usher.example.com/reset#token=abc_DEF-123",
                expires: "2026-11-28 13:00 UTC",
            },
        )
        .unwrap();
        let raw = String::from_utf8(msg.formatted()).unwrap();
        assert!(raw.contains("Subject: Reset your password"), "{raw}");
        assert!(!raw.contains("\r\nBcc:"), "{raw}");
        let text = raw.replace("=\r\n", "");
        assert!(
            text.contains("reset#token=3Dabc_DEF-123") || text.contains("reset#token=abc_DEF-123"),
            "{raw}"
        );
        assert!(text.contains("2026-11-28 13:00 UTC"));
        assert!(text.contains("If this was not you"));
    }
}
