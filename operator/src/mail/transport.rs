//! The mail transport named by `USHER_SMTP_URL`:
//! `smtp://host:port` (plain), `smtp://host:587?tls=required` (STARTTLS), `smtps://host:465`
//! (implicit TLS), with `user:password@` when the server wants it; or `file:///dir` to write
//! `.eml` files for local runs.

use std::path::PathBuf;

use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

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
    ///
    /// Not lettre's `from_url`: it reads the same forms but yields a builder whose TLS mode
    /// cannot be read back, so the TLS parameters of [`SmtpOptions`] (trust only a given CA)
    /// could not be applied to the mode the URL chose; it knows no `file://` either.
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

#[cfg(test)]
mod tests {
    use super::*;

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
