//! Invitation email: the message (plain text and HTML, the organisation's display name, the link,
//! the expiry) and the transport named by `USHER_SMTP_URL`:
//! `smtp://host:port` (plain), `smtp://host:587?tls=required` (STARTTLS), `smtps://host:465`
//! (implicit TLS), with `user:password@` when the server wants it; or `file:///dir` to write
//! `.eml` files for local runs.

use std::path::PathBuf;

use lettre::{
    AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, MultiPart},
};

/// Why mail could not be configured, built or sent. Never contains the SMTP password or a link.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// `USHER_SMTP_URL` is not one of the supported forms.
    #[error(
        "USHER_SMTP_URL is not valid ({0}); use smtp://host:port, smtp://host:587?tls=required, smtps://host:465 or file:///dir"
    )]
    BadUrl(&'static str),
    /// An address could not be used in a header.
    #[error("{0} is not a usable email address")]
    BadAddress(&'static str),
    /// The message could not be assembled.
    #[error("the invitation email could not be built")]
    Build(#[source] lettre::error::Error),
    /// The SMTP server refused or could not be reached.
    #[error("the SMTP server did not accept the invitation email")]
    Smtp(#[source] lettre::transport::smtp::Error),
    /// The file transport could not write.
    #[error("the invitation email could not be written to the outbox folder")]
    File(#[source] lettre::transport::file::Error),
}

impl MailError {
    /// A short label for metrics and Event reasons.
    pub fn metric_label(&self) -> &'static str {
        match self {
            MailError::BadUrl(_) => "bad_url",
            MailError::BadAddress(_) => "bad_address",
            MailError::Build(_) => "build",
            MailError::Smtp(_) => "smtp",
            MailError::File(_) => "file",
        }
    }
}

/// Where invitation emails go.
#[derive(Clone)]
pub enum Mailer {
    /// A real SMTP server (pooled connections; build inside the Tokio runtime).
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// `.eml` files in a folder (`usher dev`).
    File(AsyncFileTransport<Tokio1Executor>, PathBuf),
}

/// Settings that do not fit in the URL.
#[derive(Clone, Debug, Default)]
pub struct SmtpOptions {
    /// An extra PEM CA to trust for STARTTLS / SMTPS (an internal relay's CA).
    pub ca_pem: Option<Vec<u8>>,
    /// The password, when not in the URL (read from a mounted Secret).
    pub password: Option<String>,
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protection {
    /// `smtp://` without `tls=`: plain text.
    Plain,
    /// `smtp://…?tls=opportunistic`: STARTTLS when offered.
    Opportunistic,
    /// `smtp://…?tls=required`: STARTTLS or fail.
    StartTls,
    /// `smtps://`: TLS from the first byte.
    Implicit,
}

/// What `USHER_SMTP_URL` says (pure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpUrl {
    /// Server host name or address.
    pub host: String,
    /// Port (25, 587 with STARTTLS required, 465 for smtps by default).
    pub port: u16,
    /// Protection.
    pub protection: Protection,
    /// User name, when authenticating.
    pub user: Option<String>,
    /// Password from the URL.
    pub password: Option<String>,
}

impl SmtpUrl {
    /// Parses `smtp://[user[:password]@]host[:port][?tls=required|opportunistic]` or `smtps://…`.
    pub fn parse(s: &str) -> Result<SmtpUrl, MailError> {
        let url = url::Url::parse(s).map_err(|_| MailError::BadUrl("not a URL"))?;
        let tls = url
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned());
        let protection = match (url.scheme(), tls.as_deref()) {
            ("smtps", None) => Protection::Implicit,
            ("smtp", None | Some("none")) => Protection::Plain,
            ("smtp", Some("opportunistic")) => Protection::Opportunistic,
            ("smtp", Some("required")) => Protection::StartTls,
            ("smtp" | "smtps", Some(_)) => {
                return Err(MailError::BadUrl("tls= must be required or opportunistic"));
            }
            _ => return Err(MailError::BadUrl("unknown scheme")),
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or(MailError::BadUrl("no host"))?
            .trim_matches(|c| c == '[' || c == ']')
            .to_owned();
        let port = url.port().unwrap_or(match protection {
            Protection::Implicit => 465,
            Protection::StartTls => 587,
            Protection::Plain | Protection::Opportunistic => 25,
        });
        let decode = |v: &str| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8()
                .ok()
                .map(|d| d.into_owned())
        };
        let user = Some(url.username())
            .filter(|u| !u.is_empty())
            .and_then(decode);
        let password = url.password().and_then(decode);
        Ok(SmtpUrl {
            host,
            port,
            protection,
            user,
            password,
        })
    }
}

impl Mailer {
    /// The transport named by `url` (see the module docs). Call it inside the Tokio runtime:
    /// the SMTP connection pool starts a task there.
    pub fn from_url(url: &str) -> Result<Mailer, MailError> {
        Self::from_url_with(url, &SmtpOptions::default())
    }

    /// As [`Mailer::from_url`], with a CA to trust and a password kept out of the URL.
    pub fn from_url_with(url: &str, options: &SmtpOptions) -> Result<Mailer, MailError> {
        use lettre::transport::smtp::{
            authentication::Credentials,
            client::{Certificate, Tls, TlsParameters},
        };
        if let Some(dir) = url.strip_prefix("file://") {
            if !dir.starts_with('/') {
                return Err(MailError::BadUrl(
                    "file:// needs an absolute folder, as in file:///var/mail/usher",
                ));
            }
            let dir = PathBuf::from(dir);
            return Ok(Mailer::File(AsyncFileTransport::new(&dir), dir));
        }
        let parsed = SmtpUrl::parse(url)?;
        let tls_parameters = || -> Result<TlsParameters, MailError> {
            let mut builder = TlsParameters::builder(parsed.host.clone());
            if let Some(ca) = &options.ca_pem {
                let cert = Certificate::from_pem(ca).map_err(|_| {
                    MailError::BadUrl("USHER_SMTP_CA_FILE is not a PEM certificate")
                })?;
                builder = builder.add_root_certificate(cert);
            }
            builder
                .build_rustls()
                .map_err(|_| MailError::BadUrl("TLS settings could not be built"))
        };
        let tls = match parsed.protection {
            Protection::Plain => Tls::None,
            Protection::Opportunistic => Tls::Opportunistic(tls_parameters()?),
            Protection::StartTls => Tls::Required(tls_parameters()?),
            Protection::Implicit => Tls::Wrapper(tls_parameters()?),
        };
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(parsed.host.clone())
                .port(parsed.port)
                .tls(tls);
        if let Some(user) = parsed.user {
            let password = options
                .password
                .clone()
                .or(parsed.password)
                .unwrap_or_default();
            builder = builder.credentials(Credentials::new(user, password));
        }
        Ok(Mailer::Smtp(builder.build()))
    }

    /// Sends `message`.
    pub async fn send(&self, message: Message) -> Result<(), MailError> {
        match self {
            Mailer::Smtp(t) => t.send(message).await.map(|_| ()).map_err(MailError::Smtp),
            Mailer::File(t, _) => t.send(message).await.map(|_| ()).map_err(MailError::File),
        }
    }
}

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
    let from: Mailbox = from
        .parse()
        .map_err(|_| MailError::BadAddress("USHER_MAIL_FROM"))?;
    let name = one_line(inv.full_name);
    let org = one_line(inv.organisation);
    let to = Mailbox::new(
        Some(name.clone()),
        inv.login
            .parse()
            .map_err(|_| MailError::BadAddress("the login"))?,
    );
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
    Message::builder()
        .from(from)
        .to(to)
        .subject(format!("You are invited to {org}"))
        .multipart(MultiPart::alternative_plain_html(text, html))
        .map_err(MailError::Build)
}

/// Control characters (CR and LF among them) become spaces, so a name cannot start a new header
/// or paragraph.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

fn html_escape(s: &str) -> String {
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

    #[test]
    fn smtp_urls_parse_with_the_default_ports_and_decoded_credentials() {
        let u = SmtpUrl::parse("smtp://mail.example.com").unwrap();
        assert_eq!(
            (u.port, u.protection, u.user),
            (25, Protection::Plain, None)
        );
        let u = SmtpUrl::parse("smtp://mail.example.com?tls=required").unwrap();
        assert_eq!((u.port, u.protection), (587, Protection::StartTls));
        let u = SmtpUrl::parse("smtps://us%40er:p%3Ass@mail.example.com").unwrap();
        assert_eq!((u.port, u.protection), (465, Protection::Implicit));
        assert_eq!(u.user.as_deref(), Some("us@er"));
        assert_eq!(u.password.as_deref(), Some("p:ss"));
        let u = SmtpUrl::parse("smtp://127.0.0.1:2525?tls=opportunistic").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.protection),
            ("127.0.0.1", 2525, Protection::Opportunistic)
        );
        assert!(SmtpUrl::parse("smtps://h?tls=required").is_err());
        // `+` is a plus in userinfo, not a space.
        let u = SmtpUrl::parse("smtp://a:x+y%2Bz@h").unwrap();
        assert_eq!(u.password.as_deref(), Some("x+y+z"));
    }

    #[tokio::test]
    async fn smtp_urls_are_understood_and_errors_never_show_the_password() {
        for ok in [
            "smtp://127.0.0.1:2525",
            "smtp://mail.example.com:587?tls=required",
            "smtps://user:s3cret@mail.example.com:465",
            "file:///tmp/usher-outbox",
        ] {
            assert!(Mailer::from_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://x",
            "smtp//x",
            "file://relative/dir",
            "smtps://user:s3cret@:465?tls=bogus",
        ] {
            let e = Mailer::from_url(bad)
                .err()
                .unwrap_or_else(|| panic!("{bad} accepted"));
            assert!(!e.to_string().contains("s3cret"), "{e}");
            assert!(e.to_string().contains("USHER_SMTP_URL"), "{e}");
        }
    }
}
