//! TOTP (RFC 6238: SHA-1, 6 digits, 30 s steps, ±1 step) with a 160-bit secret, the otpauth URI
//! and a QR PNG for enrolment, and replay protection: a code is accepted only for a step later
//! than the last accepted one (stored in the account, compare-and-set across replicas).

use totp_rs::{Builder, Secret, Totp};

use crate::crypto::{RandomError, random_bytes};

/// Default issuer shown by authenticator apps (`USHER_MFA_ISSUER`).
pub const DEFAULT_ISSUER: &str = "Usher";

/// What a person needs to enroll: the manual secret, the URI and its QR code.
pub struct Enrolment {
    /// The 20-byte secret (store it encrypted).
    pub secret: [u8; 20],
    /// The secret in base32, for typing into an app.
    pub secret_base32: String,
    /// `otpauth://totp/Issuer:login?secret=…&issuer=…`.
    pub otpauth_uri: String,
    /// The URI as a QR code (PNG).
    pub qr_png: Vec<u8>,
}

/// Why a code was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// Not six digits.
    #[error("enter the 6-digit code from your authenticator app")]
    Malformed,
    /// Not the code of this step or the ones beside it.
    #[error("that code is not valid; check the time on your device and try the next code")]
    Wrong,
    /// Already used (here or on another replica).
    #[error("that code was already used; wait for the next one")]
    Replayed,
}

/// Why enrolment data could not be made.
#[derive(Debug, thiserror::Error)]
pub enum EnrolError {
    /// No randomness.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// totp-rs refused the settings (an issuer or login with ':').
    #[error("the TOTP settings are not valid: {0}")]
    Settings(String),
}

fn totp(secret: [u8; 20], issuer: &str, login: &str) -> Result<Totp, EnrolError> {
    Builder::new()
        .with_secret(Secret::from(secret))
        .with_issuer(Some(issuer.replace(':', " ")))
        .with_account_name(login.replace(':', " "))
        .build()
        .map_err(|e| EnrolError::Settings(e.to_string()))
}

/// New enrolment data for `login`, shown with `issuer`.
pub fn enrol(issuer: &str, login: &str) -> Result<Enrolment, EnrolError> {
    let secret = random_bytes::<20>()?;
    let t = totp(secret, issuer, login)?;
    Ok(Enrolment {
        secret,
        secret_base32: t.secret().to_base32(),
        otpauth_uri: t
            .to_url()
            .map_err(|e| EnrolError::Settings(e.to_string()))?,
        qr_png: t
            .to_qr_png()
            .map_err(|e| EnrolError::Settings(e.to_string()))?,
    })
}

/// Checks `code` at Unix time `now`; on success returns the step to store as the last accepted
/// one. A step at or before `last_step` is a replay.
pub fn verify(
    secret: [u8; 20],
    code: &str,
    now: u64,
    last_step: Option<u64>,
) -> Result<u64, CodeError> {
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CodeError::Malformed);
    }
    let t = totp(secret, DEFAULT_ISSUER, "x").map_err(|_| CodeError::Wrong)?;
    let step = t.check(code, now).ok_or(CodeError::Wrong)?;
    if last_step.is_some_and(|last| step <= last) {
        return Err(CodeError::Replayed);
    }
    Ok(step)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_at(secret: [u8; 20], time: u64) -> String {
        totp(secret, DEFAULT_ISSUER, "x")
            .unwrap()
            .generate(time)
            .to_string()
    }

    #[test]
    fn a_code_is_accepted_once_and_older_steps_never_after_a_newer_one() {
        let secret = [7u8; 20];
        let now = 1_764_000_000;
        let step = verify(secret, &code_at(secret, now), now, None).unwrap();
        assert_eq!(step, now / 30);
        assert_eq!(
            verify(secret, &code_at(secret, now), now, Some(step)),
            Err(CodeError::Replayed)
        );
        // The previous step's code (still within ±1) is refused after a newer one was used.
        assert_eq!(
            verify(secret, &code_at(secret, now - 30), now, Some(step)),
            Err(CodeError::Replayed)
        );
        // The next step is fine.
        assert!(verify(secret, &code_at(secret, now + 30), now + 30, Some(step)).is_ok());
    }

    #[test]
    fn skew_is_one_step_and_garbage_is_malformed() {
        let secret = [9u8; 20];
        let now = 1_764_000_015;
        assert!(verify(secret, &code_at(secret, now - 30), now, None).is_ok());
        assert!(verify(secret, &code_at(secret, now + 30), now, None).is_ok());
        assert_eq!(
            verify(secret, &code_at(secret, now - 90), now, None),
            Err(CodeError::Wrong)
        );
        for bad in ["", "12345", "1234567", "12a456", "１２３４５６"] {
            assert_eq!(
                verify(secret, bad, now, None),
                Err(CodeError::Malformed),
                "{bad}"
            );
        }
    }
}
