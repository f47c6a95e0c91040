//! Reading the emails an SMTP sink received, as a person would: the recipient, the subject, the
//! decoded plain-text part and the links in it (invitations, password resets).

/// One received email.
#[derive(Clone, Debug)]
pub struct Email {
    /// The raw message.
    pub raw: String,
    /// The address in the `To:` header.
    pub to: String,
    /// The `Subject:` header.
    pub subject: String,
    /// The plain-text part, decoded.
    pub text: String,
}

impl Email {
    /// Parses a raw message (as written by aiosmtpd's Mailbox handler).
    pub fn parse(raw: &str) -> Email {
        let raw = raw.replace("\r\n", "\n");
        let header = |name: &str| {
            raw.lines()
                .take_while(|l| !l.is_empty())
                .find_map(|l| l.strip_prefix(name))
                .unwrap_or_default()
                .trim()
                .to_owned()
        };
        let to_header = header("To:");
        let to = to_header
            .rsplit_once('<')
            .map(|(_, a)| a.trim_end_matches('>').to_owned())
            .unwrap_or(to_header);
        let text = raw
            .find("Content-Type: text/plain")
            .and_then(|start| {
                let part = &raw[start..];
                let body = &part[part.find("\n\n")? + 2..];
                let end = body.find("\n--").unwrap_or(body.len());
                let decoded =
                    quoted_printable::decode(&body[..end], quoted_printable::ParseMode::Robust)
                        .ok()?;
                String::from_utf8(decoded).ok()
            })
            .unwrap_or_default();
        Email {
            to,
            subject: header("Subject:"),
            text,
            raw,
        }
    }

    /// The invitation link in the plain-text part.
    pub fn invitation_link(&self) -> Option<String> {
        self.link_to("invite")
    }

    /// The token of the invitation link.
    pub fn invitation_token(&self) -> Option<String> {
        self.token_for("invite")
    }

    /// The link to page `page` (`invite`, `reset`) with a token, in the plain-text part.
    pub fn link_to(&self, page: &str) -> Option<String> {
        let marker = format!("/{page}#token=");
        self.text
            .split_whitespace()
            .find(|w| w.contains(&marker))
            .map(str::to_owned)
    }

    /// The token of the link to `page`.
    pub fn token_for(&self, page: &str) -> Option<String> {
        self.link_to(page)?
            .split_once("#token=")
            .map(|(_, t)| t.to_owned())
    }
}
