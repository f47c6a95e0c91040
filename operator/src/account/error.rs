//! What can go wrong reading or writing an account Secret. Never carries a secret.

use super::record::DamagedAccount;

/// Why the account store could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The Kubernetes API refused or could not be reached.
    #[error("Kubernetes API error: {0}")]
    Kube(#[source] kube::Error),
    /// The account Secret cannot be read.
    #[error(transparent)]
    Damaged(#[from] DamagedAccount),
    /// The account Secret is gone (deleted between a read and the write that followed).
    #[error("the account no longer exists")]
    Gone,
    /// Others kept writing the account between our read and write.
    #[error("the account kept changing while it was being updated; retrying")]
    Contention,
}

impl From<kube::Error> for StoreError {
    fn from(e: kube::Error) -> Self {
        StoreError::Kube(e)
    }
}

impl StoreError {
    /// A short label for metrics and Event reasons.
    pub fn metric_label(&self) -> &'static str {
        match self {
            StoreError::Kube(_) => "kube",
            StoreError::Damaged(_) => "damaged_account",
            StoreError::Gone => "account_gone",
            StoreError::Contention => "account_contention",
        }
    }
}
