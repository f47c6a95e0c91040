//! The one error type of the controller.

/// Why a reconcile failed (it is retried with backoff). Never carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kubernetes API refused or could not be reached.
    #[error("Kubernetes API error: {0}")]
    Kube(#[source] kube::Error),
    /// An account Secret cannot be read.
    #[error(transparent)]
    DamagedAccount(#[from] crate::account::DamagedAccount),
    /// An account Secret vanished between a 409 on create and the read that followed.
    #[error("the account Secret vanished while it was being created; retrying")]
    AccountVanished,
    /// Others kept writing the account between our read and write.
    #[error("the account kept changing while it was being updated; retrying")]
    AccountContention,
    /// The invitation email could not be sent.
    #[error(transparent)]
    Mail(#[from] crate::mailer::MailError),
    /// The OS random number generator failed.
    #[error(transparent)]
    Random(#[from] crate::crypto::RandomError),
    /// Adding or removing the finalizer failed.
    #[error("finalizer: {0}")]
    Finalizer(String),
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
            Error::DamagedAccount(_) => "damaged_account",
            Error::AccountVanished => "account_vanished",
            Error::AccountContention => "account_contention",
            Error::Mail(e) => e.metric_label(),
            Error::Random(_) => "random",
            Error::Finalizer(_) => "finalizer",
        }
    }
}
