//! Mail: the transport (`USHER_SMTP_URL`: SMTP with STARTTLS or implicit TLS, or an outbox
//! folder) and the messages Usher sends: invitations and password resets.

mod invitation;
mod reset;
mod text;
mod transport;

pub use invitation::{Invitation, invitation_email};
pub use reset::{PasswordResetMail, reset_email};
pub use transport::{MailError, Mailer, SmtpOptions};
