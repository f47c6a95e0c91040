//! The controller's error: why a reconcile failed (it is retried with backoff). Never carries a
//! secret.

use crate::{account::StoreError, crypto::RandomError, mail::MailError, reason::Reason};

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kubernetes API refused or could not be reached.
    #[error("Kubernetes API error: {0}")]
    Kube(#[source] kube::Error),
    /// An account Secret could not be read or written.
    #[error(transparent)]
    Account(#[from] StoreError),
    /// The invitation email could not be sent.
    #[error(transparent)]
    Mail(#[from] MailError),
    /// The OS random number generator failed.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// Adding or removing the finalizer failed.
    #[error("finalizer: {0}")]
    Finalizer(String),
    /// Something Usher stored does not read back (a sealed secret that does not open).
    #[error("{0}")]
    Damaged(String),
}

impl From<kube::Error> for Error {
    fn from(e: kube::Error) -> Self {
        Error::Kube(e)
    }
}

impl Error {
    /// A short label for metrics and Event reasons.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Account(e) => e.metric_label(),
            Error::Mail(e) => e.metric_label(),
            Error::Random(_) => "random",
            Error::Finalizer(_) => "finalizer",
            Error::Damaged(_) => "damaged",
        }
    }

    /// The reason of the Warning Event a failed reconcile publishes.
    pub fn event_reason(&self) -> Reason {
        match self {
            Error::Mail(_) => Reason::MailUnavailable,
            Error::Kube(_) | Error::Account(_) => Reason::ApiUnavailable,
            Error::Random(_) | Error::Finalizer(_) | Error::Damaged(_) => Reason::ReconcileFailed,
        }
    }
}
