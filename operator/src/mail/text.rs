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

/// `s` escaped for HTML text and double-quoted attributes: maud's escaping, as the pages use.
pub fn html_escape(s: &str) -> String {
    maud::html! { (s) }.into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escape_leaves_no_markup_and_no_way_out_of_an_attribute() {
        assert_eq!(
            html_escape(r#"<a href="x">Tom & Jerry</a>"#),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&lt;/a&gt;"
        );
    }
}
