//! What every message shares: the envelope (from `USHER_MAIL_FROM` to the person), one-line
//! header values and escaped HTML.

use lettre::{
    Message,
    message::{Mailbox, MultiPart},
};

use super::transport::MailError;

/// A plain-text and HTML message from `from` to `name <login>`; `name` is already one line.
pub fn message(
    from: &str,
    name: &str,
    login: &str,
    subject: String,
    text: String,
    html: String,
) -> Result<Message, MailError> {
    let from: Mailbox = from
        .parse()
        .map_err(|_| MailError::BadAddress("USHER_MAIL_FROM"))?;
    let to = Mailbox::new(
        Some(name.to_owned()),
        login
            .parse()
            .map_err(|_| MailError::BadAddress("the login"))?,
    );
    Message::builder()
        .from(from)
        .to(to)
        .subject(subject)
        .multipart(MultiPart::alternative_plain_html(text, html))
        .map_err(MailError::Build)
}

/// Control characters (CR and LF among them) become spaces, so a name cannot start a new header
/// or paragraph.
pub fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
