//! Passwords: the policy (12–128 characters after NFC, never truncated, refused when easy to
//! guess, with the reason), and argon2id (m = 19 MiB, t = 2, p = 1) on a pool of its own threads
//! with a bounded queue, so a flood of logins cannot starve other work. Unknown logins are verified against a dummy
//! hash so they take as long as known ones.

use std::sync::Arc;

use argon2::{
    Argon2, Params,
    password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash},
};
use unicode_normalization::UnicodeNormalization;

/// Fewest characters a password may have.
pub const MIN_CHARS: usize = 12;
/// Most characters a password may have (never silently truncated).
pub const MAX_CHARS: usize = 128;
/// Lowest zxcvbn score accepted (0–4): 3 is "safely unguessable".
const MIN_SCORE: u8 = 3;

/// Why a password was refused; the message tells the person what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Too short.
    #[error("use at least {MIN_CHARS} characters (this one has {0})")]
    TooShort(usize),
    /// Too long.
    #[error("use at most {MAX_CHARS} characters (this one has {0})")]
    TooLong(usize),
    /// Easy to guess; says why and what helps.
    #[error("this password is easy to guess: {0}")]
    Weak(String),
}

/// Checks `password` against the policy. `context` holds words a guesser would try first (the
/// login, the person's name, the organisation). Returns the NFC form to hash.
pub fn check_policy(password: &str, context: &[&str]) -> Result<String, PasswordError> {
    // Count before normalising a huge input: a megabyte is refused without further work.
    if password.len() > MAX_CHARS * 4 {
        return Err(PasswordError::TooLong(password.chars().count()));
    }
    let nfc: String = password.nfc().collect();
    let chars = nfc.chars().count();
    if chars < MIN_CHARS {
        return Err(PasswordError::TooShort(chars));
    }
    if chars > MAX_CHARS {
        return Err(PasswordError::TooLong(chars));
    }
    // The login's parts count as context too: "alice" in alice@example.com.
    let mut words: Vec<&str> = context.to_vec();
    for c in context {
        words.extend(
            c.split(|ch: char| !ch.is_alphanumeric())
                .filter(|w| w.len() >= 3),
        );
    }
    let entropy = zxcvbn::zxcvbn(&nfc, &words);
    if u8::from(entropy.score()) < MIN_SCORE {
        let feedback = entropy.feedback();
        let warning = feedback.and_then(|f| f.warning()).map(|w| w.to_string());
        let suggestions: Vec<String> = feedback
            .map(|f| f.suggestions().iter().map(ToString::to_string).collect())
            .unwrap_or_default();
        let mut why =
            warning.unwrap_or_else(|| "it resembles common passwords or your details".into());
        if !suggestions.is_empty() {
            why = format!("{why}. {}", suggestions.join(" "));
        }
        return Err(PasswordError::Weak(why));
    }
    Ok(nfc)
}

/// The outcome of a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// The password matches; `rehash` when its hash uses older parameters.
    Ok {
        /// Store a new hash made with today's parameters.
        rehash: bool,
    },
    /// Wrong password, unknown login, or an unreadable hash: all look the same.
    Wrong,
}

/// Why a hash or verification did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    /// The queue of hashes waiting for a thread is full: try again shortly.
    #[error("too many passwords are being checked at once")]
    Busy,
    /// argon2 failed (it does not, with today's parameters).
    #[error("the password could not be hashed")]
    Failed,
}

enum Job {
    Hash(
        String,
        tokio::sync::oneshot::Sender<Result<String, HashError>>,
    ),
    Verify(String, String, tokio::sync::oneshot::Sender<Verified>),
}

/// argon2id hashing and verification on a pool of its own threads (never the async runtime's,
/// so a flood of logins does not slow other requests), with a bounded queue: past it, requests
/// are refused at once ([`HashError::Busy`]) instead of waiting without end.
#[derive(Clone)]
pub struct Hasher {
    jobs: std::sync::mpsc::SyncSender<Job>,
    dummy: Arc<str>,
}

impl Hasher {
    /// A hasher on `threads` threads (each hash takes 19 MiB and a core for ~50 ms) with room
    /// for `queue` hashes waiting.
    pub fn new(threads: usize, queue: usize) -> Result<Hasher, argon2::password_hash::Error> {
        let dummy = Argon2::default().hash_password(b"usher dummy password for unknown logins")?;
        let (jobs, rx) = std::sync::mpsc::sync_channel::<Job>(queue);
        let rx = Arc::new(std::sync::Mutex::new(rx));
        for n in 0..threads.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("usher-argon2-{n}"))
                .spawn(move || {
                    // The lowest priority (nice 19): a flood of sign-ins takes only the CPU
                    // that requests needing none (forward-auth, pages) leave.
                    if let Err(e) = rustix::process::nice(19) {
                        tracing::debug!(error = %e, "could not lower the hashing thread's priority");
                    }
                    loop {
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(poisoned) => poisoned.into_inner().recv(),
                        };
                        match job {
                            Ok(Job::Hash(password, reply)) => {
                                let hashed = Argon2::default()
                                    .hash_password(password.as_bytes())
                                    .map(|h| h.to_string())
                                    .map_err(|_| HashError::Failed);
                                let _ = reply.send(hashed);
                            }
                            Ok(Job::Verify(phc, password, reply)) => {
                                let _ = reply.send(verify_now(&phc, &password));
                            }
                            // Every Hasher is gone: the pool ends.
                            Err(_) => return,
                        }
                    }
                });
            if spawned.is_err() {
                return Err(argon2::password_hash::Error::Crypto);
            }
        }
        Ok(Hasher {
            jobs,
            dummy: dummy.to_string().into(),
        })
    }

    fn submit(&self, job: Job) -> Result<(), HashError> {
        self.jobs.try_send(job).map_err(|_| HashError::Busy)
    }

    /// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`) of `password` with a random salt.
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.submit(Job::Hash(password, reply))?;
        answer.await.map_err(|_| HashError::Failed)?
    }

    /// Verifies `password` against `stored`; `None` (unknown or not yet activated login) is
    /// checked against a dummy hash so it takes as long and always fails.
    pub async fn verify(
        &self,
        stored: Option<String>,
        password: String,
    ) -> Result<Verified, HashError> {
        let known = stored.is_some();
        let phc = stored.unwrap_or_else(|| self.dummy.to_string());
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.submit(Job::Verify(phc, password, reply))?;
        let result = answer.await.unwrap_or(Verified::Wrong);
        Ok(if known { result } else { Verified::Wrong })
    }
}

fn verify_now(phc: &str, password: &str) -> Verified {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return Verified::Wrong;
    };
    match Argon2::default().verify_password(password.as_bytes(), &parsed) {
        Ok(()) => Verified::Ok {
            rehash: needs_rehash(&parsed),
        },
        Err(_) => Verified::Wrong,
    }
}

/// True when a hash was made with other parameters than today's (argon2id, m=19456, t=2, p=1).
fn needs_rehash(hash: &PasswordHash) -> bool {
    let current = Params::default();
    match Params::try_from(hash) {
        Ok(p) => {
            hash.algorithm.as_str() != "argon2id"
                || p.m_cost() != current.m_cost()
                || p.t_cost() != current.t_cost()
                || p.p_cost() != current.p_cost()
        }
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_counts_characters_after_nfc_and_explains_refusals() {
        let ctx = ["alice@example.com", "Alice Martin", "ACME Corporation"];
        assert_eq!(check_policy("short", &ctx), Err(PasswordError::TooShort(5)));
        // 12 characters, each an e + combining accent: 24 code points, 12 characters.
        let composed = "e\u{301}".repeat(12);
        assert!(!matches!(
            check_policy(&composed, &ctx),
            Err(PasswordError::TooShort(_))
        ));
        assert_eq!(
            check_policy(&"x".repeat(129), &ctx),
            Err(PasswordError::TooLong(129))
        );
        let huge = "y".repeat(1 << 20);
        assert!(matches!(
            check_policy(&huge, &ctx),
            Err(PasswordError::TooLong(_))
        ));
        for weak in [
            "password1234",
            "alicemartin1",
            "acmecorporation",
            "qwertyuiopasdf",
        ] {
            let e = check_policy(weak, &ctx).unwrap_err();
            assert!(matches!(e, PasswordError::Weak(_)), "{weak}: {e}");
            assert!(
                e.to_string().starts_with("this password is easy to guess"),
                "{e}"
            );
        }
        assert!(check_policy("correct horse battery staple orbit", &ctx).is_ok());
        assert!(check_policy("Tz8#qL2!vR9$wX4m", &ctx).is_ok());
    }

    #[tokio::test]
    async fn hashes_are_argon2id_with_owasp_parameters_and_verify() {
        let h = Hasher::new(2, 4).unwrap();
        let phc = h.hash("Tz8#qL2!vR9$wX4m".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert_eq!(
            h.verify(Some(phc.clone()), "Tz8#qL2!vR9$wX4m".into()).await,
            Ok(Verified::Ok { rehash: false })
        );
        assert_eq!(
            h.verify(Some(phc), "Tz8#qL2!vR9$wX4n".into()).await,
            Ok(Verified::Wrong)
        );
        // Unknown login: the dummy hash is checked, and even its own password fails.
        assert_eq!(
            h.verify(None, "usher dummy password for unknown logins".into())
                .await,
            Ok(Verified::Wrong)
        );
        assert_eq!(
            h.verify(Some("not a hash".into()), "x".into()).await,
            Ok(Verified::Wrong)
        );
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        let h = Hasher::new(1, 1).unwrap();
        let runs: Vec<_> = (0..8)
            .map(|_| {
                let h = h.clone();
                tokio::spawn(async move { h.hash("Tz8#qL2!vR9$wX4m".into()).await })
            })
            .collect();
        let mut busy = 0;
        for r in runs {
            if r.await.unwrap() == Err(HashError::Busy) {
                busy += 1;
            }
        }
        // One runs, one waits: the others are refused.
        assert!(busy >= 5, "{busy}");
    }

    #[tokio::test]
    async fn hashes_with_older_parameters_ask_for_a_rehash() {
        let weak = Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            Params::new(8192, 1, 1, None).unwrap(),
        );
        let old = weak.hash_password(b"Tz8#qL2!vR9$wX4m").unwrap().to_string();
        let h = Hasher::new(1, 1).unwrap();
        assert_eq!(
            h.verify(Some(old), "Tz8#qL2!vR9$wX4m".into()).await,
            Ok(Verified::Ok { rehash: true })
        );
    }
}
