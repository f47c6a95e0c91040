//! The passkey ceremonies as decisions (no I/O): what to send a browser to start one, whether
//! its answer proves what it must, and what the account records once it does. The handlers
//! (`auth::handlers::passkeys`) seal, read and write around them; the tests below replay real
//! Chromium answers recorded by `operator/examples/record_passkeys.rs`.
//!
//! Each answer is accepted once: the account records the ceremony's challenge as answered
//! ([`Passkeys::spend`]), at the write, so two replicas finishing the same ceremony at once
//! cannot both succeed. A sign-in's signature counter must move forward from the one the
//! account holds *now* (webauthn-rs compares it with the counter copied into the ceremony
//! when it started, which a sign-in in between has made stale).

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use k8s_openapi::jiff::Timestamp;
use webauthn_rs::prelude::{
    AuthenticationResult, Credential, Passkey, PublicKeyCredential, RegisterPublicKeyCredential,
    Uuid, Webauthn,
};

use super::{CEREMONY_MS, Ceremony, Sealed, challenge_hash};
use crate::account::{
    Account,
    passkeys::{PasskeyRecord, Passkeys, Refused},
};

/// Why an answer to a ceremony was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The ceremony is not one this answer may finish (another kind, account or session), or
    /// it was answered before: start again.
    Expired,
    /// The answer does not prove itself: not a passkey of the account, a foreign origin or RP
    /// ID, a bad signature, no user verification, a counter gone backwards.
    Invalid,
}

/// A ceremony started: the options for the browser (`{publicKey: …}`) and what to seal.
pub struct Started {
    /// What `navigator.credentials.create()` or `.get()` takes (JSON, base64url binaries).
    pub options: serde_json::Value,
    /// The ceremony, for the cookie.
    pub sealed: Sealed,
}

fn sealed(ceremony: Ceremony, challenge: &[u8], now_ms: i64) -> Sealed {
    Sealed {
        ceremony,
        challenge: challenge_hash(challenge),
        expires_ms: now_ms.saturating_add(CEREMONY_MS),
    }
}

/// Starts adding a passkey to `account` for its session `sid`: a discoverable credential
/// (it signs in with no login typed) with user verification, none of the account's own
/// again. `new_user` is the user handle when the account has none yet.
pub fn start_registration(
    webauthn: &Webauthn,
    account: &Account,
    sid: &str,
    display_name: &str,
    new_user: Uuid,
    now_ms: i64,
) -> Result<Started, String> {
    let user = match &account.passkeys.user {
        Some(u) => Uuid::parse_str(u).map_err(|e| e.to_string())?,
        None => new_user,
    };
    let exclude = account
        .passkeys
        .keys
        .iter()
        .filter_map(|k| URL_SAFE_NO_PAD.decode(&k.id).ok())
        .collect::<Vec<_>>();
    let (ccr, state) = webauthn
        .start_passkey_registration(user, &account.login, display_name, Some(exclude))
        .map_err(|e| e.to_string())?;
    let challenge = ccr.public_key.challenge.to_vec();
    let mut options = serde_json::to_value(&ccr).map_err(|e| e.to_string())?;
    options["publicKey"]["authenticatorSelection"]["residentKey"] = "required".into();
    options["publicKey"]["authenticatorSelection"]["requireResidentKey"] = true.into();
    let ceremony = Ceremony::Register {
        account: account.id.clone(),
        sid: sid.to_owned(),
        user: user.to_string(),
        state,
    };
    Ok(Started {
        options,
        sealed: sealed(ceremony, &challenge, now_ms),
    })
}

/// Starts a sign-in: with the passkeys of `account` (the second factor after its password),
/// or, for no account or one without passkeys, with any discoverable passkey.
pub fn start_sign_in(
    webauthn: &Webauthn,
    account: Option<&Account>,
    now_ms: i64,
) -> Result<Started, String> {
    let keys: Vec<Passkey> = account
        .map(|a| a.passkeys.keys.iter().filter_map(passkey).collect())
        .unwrap_or_default();
    let (rcr, ceremony) = match account {
        Some(a) if !keys.is_empty() => {
            let (rcr, state) = webauthn
                .start_passkey_authentication(&keys)
                .map_err(|e| e.to_string())?;
            let ceremony = Ceremony::Login {
                account: a.id.clone(),
                state,
            };
            (rcr, ceremony)
        }
        _ => {
            let (rcr, state) = webauthn
                .start_discoverable_authentication()
                .map_err(|e| e.to_string())?;
            (rcr, Ceremony::Discover { state })
        }
    };
    let challenge = rcr.public_key.challenge.to_vec();
    let options = serde_json::to_value(&rcr).map_err(|e| e.to_string())?;
    Ok(Started {
        options,
        sealed: sealed(ceremony, &challenge, now_ms),
    })
}

/// A registration that proved itself: the new passkey and the user handle it carries.
#[derive(Debug)]
pub struct Registered {
    /// The credential.
    pub key: Passkey,
    /// The user handle.
    pub user: String,
}

/// Whether `credential` finishes `sealed`, a registration started for `account_id` by its
/// session `sid`.
pub fn finish_registration(
    webauthn: &Webauthn,
    sealed: &Sealed,
    account_id: &str,
    sid: &str,
    credential: &RegisterPublicKeyCredential,
) -> Result<Registered, Refusal> {
    let Ceremony::Register {
        account,
        sid: started_by,
        user,
        state,
    } = &sealed.ceremony
    else {
        return Err(Refusal::Expired);
    };
    if account != account_id || started_by != sid {
        return Err(Refusal::Expired);
    }
    let key = webauthn
        .finish_passkey_registration(credential, state)
        .map_err(|e| {
            tracing::info!(error = %e, "a passkey registration was refused");
            Refusal::Invalid
        })?;
    Ok(Registered {
        key,
        user: user.clone(),
    })
}

/// Records `registered` (called `name`) in `passkeys` at `now`, answering `sealed`: its id,
/// and its name as kept.
pub fn add(
    passkeys: &mut Passkeys,
    sealed: &Sealed,
    registered: &Registered,
    name: &str,
    now: Timestamp,
) -> Result<(String, String), Refused> {
    let id = URL_SAFE_NO_PAD.encode(registered.key.cred_id());
    let credential = serde_json::to_value(&registered.key).map_err(|_| Refused::Unknown)?;
    passkeys.spend(&sealed.challenge, sealed.expires_ms, now.as_millisecond())?;
    passkeys.add(PasskeyRecord {
        id: id.clone(),
        name: name.to_owned(),
        created_at: now,
        last_used_at: None,
        credential,
    })?;
    passkeys.user.get_or_insert_with(|| registered.user.clone());
    let kept = passkeys
        .get(&id)
        .map(|k| k.name.clone())
        .unwrap_or_default();
    Ok((id, kept))
}

/// A sign-in that proved itself: which passkey, and what webauthn-rs found.
#[derive(Debug)]
pub struct Verified {
    /// The passkey's id (base64url credential id).
    pub id: String,
    /// The verified assertion (counter, backup flags).
    pub result: AuthenticationResult,
}

impl Verified {
    /// RFC 8176's `amr` of this passkey: `swk` when it may be synced to other devices,
    /// else `hwk`.
    pub fn amr(&self) -> &'static str {
        if self.result.backup_eligible() {
            "swk"
        } else {
            "hwk"
        }
    }
}

/// Whether `credential` finishes the sign-in `sealed` as `account`: a passkey of that account,
/// answered for this site with user verification, its counter ahead of the one the account
/// holds, and the ceremony not answered before.
pub fn finish_sign_in(
    webauthn: &Webauthn,
    sealed: &Sealed,
    account: &Account,
    credential: &PublicKeyCredential,
) -> Result<Verified, Refusal> {
    if account.passkeys.spent.contains_key(&sealed.challenge) {
        return Err(Refusal::Expired);
    }
    let id = URL_SAFE_NO_PAD.encode(credential.get_credential_id());
    let key = account
        .passkeys
        .get(&id)
        .and_then(passkey)
        .ok_or(Refusal::Invalid)?;
    let result = match &sealed.ceremony {
        Ceremony::Login { account: a, state } if *a == account.id => {
            webauthn.finish_passkey_authentication(credential, state)
        }
        Ceremony::Discover { state } => {
            // The user handle named the account: it must be this account's.
            let handle = credential
                .get_user_unique_id()
                .and_then(|b| Uuid::from_slice(b).ok())
                .map(|u| u.to_string());
            if handle.is_none() || handle != account.passkeys.user {
                return Err(Refusal::Invalid);
            }
            webauthn.finish_discoverable_authentication_v2(credential, state.clone(), &key)
        }
        Ceremony::Login { .. } => return Err(Refusal::Invalid),
        Ceremony::Register { .. } => return Err(Refusal::Expired),
    };
    let result = result.map_err(|e| {
        tracing::info!(account = %account.id, error = %e, "a passkey sign-in was refused");
        Refusal::Invalid
    })?;
    if !result.user_verified() || result.cred_id() != key.cred_id() {
        return Err(Refusal::Invalid);
    }
    counter_moves_forward(&key, &result, &account.id)?;
    Ok(Verified { id, result })
}

/// Records the sign-in `verified` in `passkeys` at `now`: `sealed` answered, the passkey's new
/// counter and when it was used. Checked again here, on the account as it is at the write:
/// the ceremony unanswered and the counter ahead.
pub fn record_use(
    passkeys: &mut Passkeys,
    sealed: &Sealed,
    verified: &Verified,
    now: Timestamp,
) -> Result<(), Refusal> {
    if passkeys.spent.contains_key(&sealed.challenge) {
        return Err(Refusal::Expired);
    }
    let mut key = passkeys
        .get(&verified.id)
        .and_then(passkey)
        .ok_or(Refusal::Invalid)?;
    counter_moves_forward(&key, &verified.result, &verified.id)?;
    passkeys
        .spend(&sealed.challenge, sealed.expires_ms, now.as_millisecond())
        .map_err(|_| Refusal::Expired)?;
    key.update_credential(&verified.result);
    let credential = serde_json::to_value(&key).map_err(|_| Refusal::Invalid)?;
    passkeys
        .used(&verified.id, credential, now)
        .map_err(|_| Refusal::Invalid)
}

/// The passkey a record keeps.
fn passkey(record: &PasskeyRecord) -> Option<Passkey> {
    serde_json::from_value(record.credential.clone()).ok()
}

/// A signature counter in use (either side non-zero) must be ahead of the one held: one that
/// is not says the credential was copied (WebAuthn level 2, 7.2 step 21).
fn counter_moves_forward(
    key: &Passkey,
    result: &AuthenticationResult,
    whose: &str,
) -> Result<(), Refusal> {
    let held = Credential::from(key.clone()).counter;
    let now = result.counter();
    if (now > 0 || held > 0) && now <= held {
        tracing::warn!(%whose, held, presented = now, "a passkey's counter went backwards: a cloned authenticator?");
        return Err(Refusal::Invalid);
    }
    Ok(())
}

/// Replays of real Chromium answers (`operator/tests/fixtures/passkeys.json`, recorded by
/// `cargo run -p usher-operator --example record_passkeys`): each ceremony's sealed state as the
/// server made it, and what the browser answered. In the recording the authenticator's counter
/// went 1 (register), 2 (sign-in-1), 3 (sign-in-2), 4 (discover), 5 (no-user-verification),
/// 6 (phished); sign-in-2 was started after sign-in-1 was recorded.
#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::Value;
    use webauthn_rs::prelude::{Url, WebauthnBuilder};

    use crate::{account::account_id, auth::passkey::RelyingParty};

    const RECORDING: &str = include_str!("../../../tests/fixtures/passkeys.json");

    fn recording() -> Value {
        serde_json::from_str(RECORDING).unwrap()
    }

    fn field(name: &str) -> String {
        recording()[name].as_str().unwrap().to_owned()
    }

    fn sealed(step: &str) -> Sealed {
        serde_json::from_value(recording()["ceremonies"][step]["sealed"].clone()).unwrap()
    }

    fn answer(step: &str) -> Value {
        recording()["ceremonies"][step]["answer"].clone()
    }

    fn assertion(step: &str) -> PublicKeyCredential {
        serde_json::from_value(answer(step)).unwrap()
    }

    fn registration(step: &str) -> RegisterPublicKeyCredential {
        serde_json::from_value(answer(step)).unwrap()
    }

    /// When the browser answered `step`.
    fn at(step: &str) -> Timestamp {
        let ms = recording()["ceremonies"][step]["recordedAtMs"]
            .as_i64()
            .unwrap();
        Timestamp::from_millisecond(ms).unwrap()
    }

    /// The server that started the ceremonies.
    fn server() -> Webauthn {
        RelyingParty::new(&field("origin"), None)
            .get()
            .unwrap()
            .clone()
    }

    /// The account of `login`, with the passkey `register_step` added, as the server left it.
    fn enrolled(login: &str, register_step: &str) -> Account {
        let mut account = Account::new(login);
        let sealed = sealed(register_step);
        let registered = finish_registration(
            &server(),
            &sealed,
            &account.id,
            &field("sid"),
            &registration(register_step),
        )
        .unwrap();
        add(
            &mut account.passkeys,
            &sealed,
            &registered,
            "Laptop",
            at(register_step),
        )
        .unwrap();
        account
    }

    fn ada() -> Account {
        enrolled(&field("login"), "register")
    }

    fn grace() -> Account {
        enrolled(&field("otherLogin"), "register-other")
    }

    /// Finishes sign-in `step` as `account` and records it, as the server does.
    fn sign_in(account: &mut Account, step: &str) -> Result<Verified, Refusal> {
        let sealed = sealed(step);
        let verified = finish_sign_in(&server(), &sealed, account, &assertion(step))?;
        record_use(&mut account.passkeys, &sealed, &verified, at(step))?;
        Ok(verified)
    }

    #[test]
    fn chromiums_registration_is_added_once_with_its_user_handle() {
        let login = field("login");
        let account = ada();
        let key = &account.passkeys.keys[0];
        assert_eq!(key.id, answer("register")["id"].as_str().unwrap());
        assert_eq!(key.name, "Laptop");
        // The user handle the authenticator stored is the one the account keeps.
        let handle = assertion("discover").get_user_unique_id().unwrap().to_vec();
        assert_eq!(
            account.passkeys.user.as_deref(),
            Some(Uuid::from_slice(&handle).unwrap().to_string().as_str())
        );
        // The same answer again: the ceremony was answered.
        let mut again = account.clone();
        let sealed = sealed("register");
        let registered = finish_registration(
            &server(),
            &sealed,
            &Account::new(&login).id,
            &field("sid"),
            &registration("register"),
        )
        .unwrap();
        assert_eq!(
            add(
                &mut again.passkeys,
                &sealed,
                &registered,
                "Twice",
                at("register")
            ),
            Err(Refused::ChallengeUsed)
        );
        assert_eq!(again.passkeys.keys.len(), 1);
    }

    #[test]
    fn a_registration_finishes_only_for_the_account_and_session_that_started_it() {
        let sealed = sealed("register");
        let (ada_id, grace_id) = (
            account_id(&field("login")),
            account_id(&field("otherLogin")),
        );
        let finish = |account: &str, sid: &str| {
            finish_registration(&server(), &sealed, account, sid, &registration("register"))
                .map(|_| ())
        };
        assert_eq!(finish(&ada_id, &field("sid")), Ok(()));
        assert_eq!(finish(&ada_id, "another-session"), Err(Refusal::Expired));
        assert_eq!(finish(&grace_id, &field("sid")), Err(Refusal::Expired));
        // An answer to another registration (another challenge).
        assert_eq!(
            finish_registration(
                &server(),
                &sealed,
                &ada_id,
                &field("sid"),
                &registration("register-other")
            )
            .map(|_| ()),
            Err(Refusal::Invalid)
        );
        // A sign-in's ceremony does not finish a registration, nor the other way round.
        assert_eq!(
            finish_registration(
                &server(),
                &self::sealed("sign-in-1"),
                &ada_id,
                &field("sid"),
                &registration("register")
            )
            .map(|_| ()),
            Err(Refusal::Expired)
        );
        assert_eq!(
            finish_sign_in(&server(), &sealed, &ada(), &assertion("sign-in-1")).map(|_| ()),
            Err(Refusal::Expired)
        );
    }

    #[test]
    fn chromiums_sign_ins_are_accepted_each_once_and_move_the_counter() {
        let mut account = ada();
        let first = sign_in(&mut account, "sign-in-1").unwrap();
        assert_eq!(first.result.counter(), 2);
        assert!(first.result.user_verified());
        // Chromium's virtual authenticator is device-bound (not backup eligible).
        assert_eq!(first.amr(), "hwk");
        let key = &account.passkeys.keys[0];
        assert_eq!(key.last_used_at, Some(at("sign-in-1")));
        assert_eq!(key.credential["cred"]["counter"], 2);

        // The same answer again (a replay): the ceremony was answered.
        assert_eq!(
            sign_in(&mut account, "sign-in-1").map(|_| ()),
            Err(Refusal::Expired)
        );
        sign_in(&mut account, "sign-in-2").unwrap();
        // Passwordless: the discoverable ceremony names no account; the answer's user handle
        // finds this one.
        let discovered = sign_in(&mut account, "discover").unwrap();
        assert_eq!(discovered.result.counter(), 4);
        assert_eq!(
            sign_in(&mut account, "discover").map(|_| ()),
            Err(Refusal::Expired)
        );
    }

    #[test]
    fn one_answer_finished_on_two_replicas_at_once_is_recorded_once() {
        let mut account = ada();
        let sealed = sealed("sign-in-1");
        // Both replicas verify against the account as their caches hold it...
        let a = finish_sign_in(&server(), &sealed, &account, &assertion("sign-in-1")).unwrap();
        let b = finish_sign_in(&server(), &sealed, &account, &assertion("sign-in-1")).unwrap();
        // ...and write in turn: the second finds the ceremony answered.
        record_use(&mut account.passkeys, &sealed, &a, at("sign-in-1")).unwrap();
        assert_eq!(
            record_use(&mut account.passkeys, &sealed, &b, at("sign-in-1")),
            Err(Refusal::Expired)
        );
    }

    /// A cloned authenticator: the copy answers with a counter the account has seen already.
    /// webauthn-rs alone compares it with the counter copied into the ceremony at its start
    /// (1 for sign-in-1, started before sign-in-2 moved it to 3) and accepts it.
    #[test]
    fn a_counter_that_goes_backwards_is_refused() {
        let mut account = ada();
        sign_in(&mut account, "sign-in-2").unwrap();
        let Ceremony::Login { state, .. } = &sealed("sign-in-1").ceremony else {
            panic!("sign-in-1 is a second factor's ceremony");
        };
        assert!(
            server()
                .finish_passkey_authentication(&assertion("sign-in-1"), state)
                .is_ok(),
            "webauthn-rs alone accepts the stale counter"
        );
        assert_eq!(
            sign_in(&mut account, "sign-in-1").map(|_| ()),
            Err(Refusal::Invalid)
        );

        // Both verified against the same copy of the account, the older written last.
        let mut account = ada();
        let (one, two) = (sealed("sign-in-1"), sealed("sign-in-2"));
        let v1 = finish_sign_in(&server(), &one, &account, &assertion("sign-in-1")).unwrap();
        let v2 = finish_sign_in(&server(), &two, &account, &assertion("sign-in-2")).unwrap();
        record_use(&mut account.passkeys, &two, &v2, at("sign-in-2")).unwrap();
        assert_eq!(
            record_use(&mut account.passkeys, &one, &v1, at("sign-in-1")),
            Err(Refusal::Invalid)
        );
        assert_eq!(account.passkeys.keys[0].credential["cred"]["counter"], 3);
    }

    /// A live phishing proxy relays the real server's options to a page on its own origin; the
    /// browser signs that origin, and the real server refuses the answer.
    #[test]
    fn an_answer_made_on_another_origin_is_refused() {
        let mut account = ada();
        // What the browser signed: the page's origin, not the server's.
        let client_data = answer("phished")["response"]["clientDataJSON"]
            .as_str()
            .map(|s| URL_SAFE_NO_PAD.decode(s).unwrap())
            .unwrap();
        let client_data: Value = serde_json::from_slice(&client_data).unwrap();
        assert_eq!(client_data["origin"], field("phishingOrigin"));
        assert_ne!(field("phishingOrigin"), field("origin"));
        assert_eq!(
            sign_in(&mut account, "phished").map(|_| ()),
            Err(Refusal::Invalid)
        );
        // And an answer made on the real origin does not sign in to a server elsewhere.
        let elsewhere = RelyingParty::new(&field("phishingOrigin"), None);
        assert_eq!(
            finish_sign_in(
                elsewhere.get().unwrap(),
                &sealed("sign-in-1"),
                &ada(),
                &assertion("sign-in-1")
            )
            .map(|_| ()),
            Err(Refusal::Invalid)
        );
        // Untouched by the refusals: the next real answer signs in.
        sign_in(&mut account, "sign-in-1").unwrap();
    }

    /// A server whose RP ID is not the one the passkey was made for (a cookie domain set or
    /// changed after passkeys were added), accepting the recording's origin all the same.
    #[test]
    fn an_rp_id_mismatch_is_refused() {
        let origin = Url::parse(&field("origin")).unwrap();
        let other = Url::parse("http://login.localhost/").unwrap();
        let server = WebauthnBuilder::new("login.localhost", &other)
            .unwrap()
            .append_allowed_origin(&origin)
            .allow_any_port(true)
            .build()
            .unwrap();
        let sealed = sealed("discover");
        assert_eq!(
            finish_sign_in(&server, &sealed, &ada(), &assertion("discover")).map(|_| ()),
            Err(Refusal::Invalid)
        );
        let account = Account::new(&field("login"));
        assert_eq!(
            finish_registration(
                &server,
                &self::sealed("register"),
                &account.id,
                &field("sid"),
                &registration("register")
            )
            .map(|_| ()),
            Err(Refusal::Invalid)
        );
    }

    #[test]
    fn an_answer_without_user_verification_is_refused() {
        let mut account = ada();
        assert_eq!(
            sign_in(&mut account, "no-user-verification").map(|_| ()),
            Err(Refusal::Invalid)
        );
    }

    #[test]
    fn a_passkey_of_another_account_does_not_sign_in() {
        let grace = grace();
        assert_ne!(grace.passkeys.user, ada().passkeys.user);
        // Ada's passwordless answer, presented as Grace (the handle is Ada's).
        let discover = sealed("discover");
        assert_eq!(
            finish_sign_in(&server(), &discover, &grace, &assertion("discover")).map(|_| ()),
            Err(Refusal::Invalid)
        );
        // With Grace's user handle put in its place (it is not signed): Ada's credential is
        // still not one of Grace's.
        let mut forged = answer("discover");
        let handle = Uuid::parse_str(grace.passkeys.user.as_deref().unwrap()).unwrap();
        forged["response"]["userHandle"] = URL_SAFE_NO_PAD.encode(handle.as_bytes()).into();
        let forged: PublicKeyCredential = serde_json::from_value(forged).unwrap();
        assert_eq!(
            finish_sign_in(&server(), &discover, &grace, &forged).map(|_| ()),
            Err(Refusal::Invalid)
        );
        // Ada's second factor, finished as Grace (who knows her own password only).
        assert_eq!(
            finish_sign_in(
                &server(),
                &sealed("sign-in-1"),
                &grace,
                &assertion("sign-in-1")
            )
            .map(|_| ()),
            Err(Refusal::Invalid)
        );
        // Grace holding Ada's passkey record too does not make Ada's ceremony hers.
        let mut both = grace.clone();
        both.passkeys.keys.extend(ada().passkeys.keys);
        assert_eq!(
            finish_sign_in(
                &server(),
                &sealed("sign-in-1"),
                &both,
                &assertion("sign-in-1")
            )
            .map(|_| ()),
            Err(Refusal::Invalid)
        );
    }

    #[test]
    fn a_second_passkey_is_not_offered_the_first_again() {
        let account = ada();
        let started = start_registration(
            &server(),
            &account,
            "s",
            "Ada",
            Uuid::from_bytes([7; 16]),
            0,
        )
        .unwrap();
        let pk = &started.options["publicKey"];
        assert_eq!(
            pk["excludeCredentials"][0]["id"],
            account.passkeys.keys[0].id
        );
        assert_eq!(pk["authenticatorSelection"]["residentKey"], "required");
        assert_eq!(pk["authenticatorSelection"]["userVerification"], "required");
        // The account's user handle, not the new one offered.
        assert_eq!(
            pk["user"]["id"],
            answer("discover")["response"]["userHandle"]
        );
        let sign_in = start_sign_in(&server(), Some(&account), 0).unwrap();
        assert_eq!(
            sign_in.options["publicKey"]["allowCredentials"][0]["id"],
            account.passkeys.keys[0].id
        );
        assert!(matches!(sign_in.sealed.ceremony, Ceremony::Login { .. }));
        assert_eq!(sign_in.sealed.expires_ms, CEREMONY_MS);
        let nobody = start_sign_in(&server(), Some(&Account::new("x@example.com")), 0).unwrap();
        assert!(matches!(nobody.sealed.ceremony, Ceremony::Discover { .. }));
    }
}
