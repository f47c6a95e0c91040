//! Mail: the transport (`USHER_SMTP_URL`: SMTP with STARTTLS or implicit TLS, or an outbox
//! folder) and the messages Usher sends.

mod invitation;
mod transport;

pub use invitation::{Invitation, invitation_email};
pub use transport::{MailError, Mailer, SmtpOptions};
