//! The invitation email: plain text and HTML, naming the organisation, with the link and its
//! expiry.

use lettre::Message;

use super::{
    text::{html_escape, message, one_line},
    transport::MailError,
};

/// What an invitation says.
pub struct Invitation<'a> {
    /// The login (email address) invited.
    pub login: &'a str,
    /// The person's name, as the organisation knows them.
    pub full_name: &'a str,
    /// The organisation's display name.
    pub organisation: &'a str,
    /// `${PUBLIC_URL}/invite#token=…`.
    pub link: &'a str,
    /// When the link stops working, already formatted (`2026-11-28 20:15 UTC`).
    pub expires: &'a str,
}

/// Builds the invitation email from `from` (`USHER_MAIL_FROM`).
pub fn invitation_email(from: &str, inv: &Invitation<'_>) -> Result<Message, MailError> {
    let name = one_line(inv.full_name);
    let org = one_line(inv.organisation);
    let text = format!(
        "Hello {name},\n\n\
         You have been invited to {org}. Open this link to choose your password:\n\n\
         {link}\n\n\
         The link works once and expires {expires}. If you did not expect this invitation, ignore this email.\n",
        link = inv.link,
        expires = inv.expires,
    );
    let html = format!(
        "<!doctype html><html><body style=\"font-family:sans-serif\">\
         <p>Hello {name},</p>\
         <p>You have been invited to <strong>{org}</strong>. Open this link to choose your password:</p>\
         <p><a href=\"{link}\">Accept the invitation</a></p>\
         <p>The link works once and expires {expires}. If you did not expect this invitation, ignore this email.</p>\
         </body></html>",
        name = html_escape(&name),
        org = html_escape(&org),
        link = html_escape(inv.link),
        expires = html_escape(inv.expires),
    );
    message(
        from,
        &name,
        inv.login,
        format!("You are invited to {org}"),
        text,
        html,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINK: &str = "https://usher.example.com/invite#token=abc_DEF-123";

    fn render(inv: &Invitation<'_>) -> String {
        let msg = invitation_email("Usher <usher@example.com>", inv).unwrap();
        String::from_utf8(msg.formatted()).unwrap()
    }

    fn invitation<'a>(full_name: &'a str, organisation: &'a str) -> Invitation<'a> {
        Invitation {
            login: "alice@example.com",
            full_name,
            organisation,
            link: LINK,
            expires: "2026-11-28 20:15 UTC",
        }
    }

    fn headers(raw: &str) -> Vec<&str> {
        raw.split("\r\n\r\n")
            .next()
            .unwrap()
            .split("\r\n")
            .collect()
    }

    /// The decoded body of the part with `content_type`, as a mail client shows it.
    fn part(raw: &str, content_type: &str) -> String {
        let start = raw
            .find(&format!("Content-Type: {content_type}"))
            .unwrap_or_else(|| panic!("no {content_type} part in {raw}"));
        let rest = &raw[start..];
        let body_start = rest.find("\r\n\r\n").unwrap() + 4;
        let body = &rest[body_start..rest.find("\r\n--").unwrap()];
        let decoded = quoted_printable::decode(body, quoted_printable::ParseMode::Strict).unwrap();
        String::from_utf8(decoded).unwrap().replace("\r\n", "\n")
    }

    #[test]
    fn has_plain_and_html_parts_with_the_organisation_link_and_expiry() {
        let raw = render(&invitation("Alice Martin", "ACME Corporation"));
        assert!(raw.contains("Content-Type: multipart/alternative"), "{raw}");
        assert!(
            headers(&raw).contains(&"Subject: You are invited to ACME Corporation"),
            "{raw}"
        );
        assert!(
            headers(&raw).contains(&"To: \"Alice Martin\" <alice@example.com>"),
            "{raw}"
        );
        let text = part(&raw, "text/plain");
        let html = part(&raw, "text/html");
        for body in [&text, &html] {
            assert!(body.contains("ACME Corporation"), "{body}");
            assert!(body.contains("2026-11-28 20:15 UTC"), "{body}");
        }
        assert!(text.contains(&format!("\n{LINK}\n")), "{text}");
        assert!(html.contains(&format!("<a href=\"{LINK}\">")), "{html}");
    }

    #[test]
    fn names_with_cr_lf_cannot_inject_headers() {
        let raw = render(&invitation(
            "Alice\r\nBcc: eve@evil.example",
            "ACME\r\nX-Injected: yes\n\nbody",
        ));
        for h in headers(&raw) {
            assert!(
                !h.starts_with("Bcc:") && !h.starts_with("X-Injected:"),
                "{h}\n{raw}"
            );
        }
        assert_eq!(
            headers(&raw)
                .iter()
                .filter(|h| h.starts_with("To:"))
                .count(),
            1
        );
        assert!(
            headers(&raw).contains(&"Subject: You are invited to ACME  X-Injected: yes  body"),
            "{raw}"
        );
    }

    #[test]
    fn html_part_escapes_names() {
        let raw = render(&invitation("<script>alert(1)</script>", "A & B"));
        let html = part(&raw, "text/html");
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(html.contains("<strong>A &amp; B</strong>"), "{html}");
        // Plain text is not HTML: it shows the name as typed.
        assert!(part(&raw, "text/plain").contains("Hello <script>alert(1)</script>,"));
    }
}
