//! A software passkey for the API tests: a P-256 key that answers WebAuthn options as a
//! platform authenticator with user verification would ("none" attestation), with knobs an
//! attacker turns (the origin in the client data, the RP ID hashed, the counter). The browser
//! tests use Chromium's virtual authenticator instead.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aws_lc_rs::{
    rand::SystemRandom,
    signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair},
};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Value, json};

/// A credential on a software authenticator.
pub struct SoftPasskey {
    key: EcdsaKeyPair,
    pub id: Vec<u8>,
    /// The signature counter the next assertion carries (then incremented).
    pub counter: u32,
    /// The user handle it was registered with.
    pub user: Vec<u8>,
    /// Backup eligible (a synced passkey): `swk`; else `hwk`.
    pub backup_eligible: bool,
}

/// What an assertion or registration says of where it happened.
#[derive(Clone)]
pub struct Site {
    /// The origin in the client data.
    pub origin: String,
    /// The RP ID whose hash is in the authenticator data; `None`: the options'.
    pub rp_id: Option<String>,
}

impl Site {
    pub fn at(origin: &str) -> Site {
        Site {
            origin: origin.to_owned(),
            rp_id: None,
        }
    }
}

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

fn sha256(b: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b)
        .as_ref()
        .to_vec()
}

// Minimal CBOR (RFC 8949) for the few shapes WebAuthn needs.
fn head(major: u8, n: u64, out: &mut Vec<u8>) {
    let m = major << 5;
    match n {
        0..=23 => out.push(m | n as u8),
        24..=0xff => out.extend([m | 24, n as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend((n as u16).to_be_bytes());
        }
        _ => {
            out.push(m | 26);
            out.extend((n as u32).to_be_bytes());
        }
    }
}

fn int(i: i64, out: &mut Vec<u8>) {
    if i >= 0 {
        head(0, i as u64, out);
    } else {
        head(1, (-1 - i) as u64, out);
    }
}

fn bytes(b: &[u8], out: &mut Vec<u8>) {
    head(2, b.len() as u64, out);
    out.extend_from_slice(b);
}

fn text(s: &str, out: &mut Vec<u8>) {
    head(3, s.len() as u64, out);
    out.extend_from_slice(s.as_bytes());
}

impl SoftPasskey {
    pub fn new() -> SoftPasskey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
        let mut id = [0u8; 32];
        aws_lc_rs::rand::fill(&mut id).unwrap();
        SoftPasskey {
            key,
            id: id.to_vec(),
            counter: 1,
            user: Vec::new(),
            backup_eligible: false,
        }
    }

    /// The credential id as the API shows it.
    pub fn id(&self) -> String {
        b64(&self.id)
    }

    fn flags(&self, attested: bool) -> u8 {
        // UP, UV, and AT for a registration; BE and BS for a synced passkey.
        let mut f = 0x01 | 0x04;
        if self.backup_eligible {
            f |= 0x08 | 0x10;
        }
        if attested {
            f |= 0x40;
        }
        f
    }

    fn client_data(kind: &str, challenge: &str, site: &Site) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "type": kind,
            "challenge": challenge,
            "origin": site.origin,
            "crossOrigin": false,
        }))
        .unwrap()
    }

    /// The response to creation options (`{publicKey: …}` as the server sent them).
    pub fn register(&mut self, options: &Value, site: &Site) -> Value {
        let pk = &options["publicKey"];
        let rp_id = site
            .rp_id
            .clone()
            .unwrap_or_else(|| pk["rp"]["id"].as_str().unwrap().to_owned());
        self.user = URL_SAFE_NO_PAD
            .decode(pk["user"]["id"].as_str().unwrap())
            .unwrap();
        let point = self.key.public_key().as_ref();
        let (x, y) = (&point[1..33], &point[33..65]);
        let mut cose = Vec::new();
        head(5, 5, &mut cose);
        int(1, &mut cose);
        int(2, &mut cose); // kty: EC2
        int(3, &mut cose);
        int(-7, &mut cose); // alg: ES256
        int(-1, &mut cose);
        int(1, &mut cose); // crv: P-256
        int(-2, &mut cose);
        bytes(x, &mut cose);
        int(-3, &mut cose);
        bytes(y, &mut cose);
        let mut auth = sha256(rp_id.as_bytes());
        auth.push(self.flags(true));
        auth.extend(0u32.to_be_bytes());
        auth.extend([0u8; 16]); // AAGUID
        auth.extend((self.id.len() as u16).to_be_bytes());
        auth.extend(&self.id);
        auth.extend(cose);
        let mut att = Vec::new();
        head(5, 3, &mut att);
        text("fmt", &mut att);
        text("none", &mut att);
        text("attStmt", &mut att);
        head(5, 0, &mut att);
        text("authData", &mut att);
        bytes(&auth, &mut att);
        let client = Self::client_data("webauthn.create", pk["challenge"].as_str().unwrap(), site);
        json!({
            "id": b64(&self.id),
            "rawId": b64(&self.id),
            "type": "public-key",
            "response": {
                "attestationObject": b64(&att),
                "clientDataJSON": b64(&client),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
        })
    }

    /// The response to request options, signed with this key (counter then incremented).
    pub fn assert(&mut self, options: &Value, site: &Site) -> Value {
        let pk = &options["publicKey"];
        let rp_id = site
            .rp_id
            .clone()
            .unwrap_or_else(|| pk["rpId"].as_str().unwrap().to_owned());
        let mut auth = sha256(rp_id.as_bytes());
        auth.push(self.flags(false));
        auth.extend(self.counter.to_be_bytes());
        self.counter += 1;
        let client = Self::client_data("webauthn.get", pk["challenge"].as_str().unwrap(), site);
        let mut signed = auth.clone();
        signed.extend(sha256(&client));
        let sig = self
            .key
            .sign(&SystemRandom::new(), &signed)
            .unwrap()
            .as_ref()
            .to_vec();
        json!({
            "id": b64(&self.id),
            "rawId": b64(&self.id),
            "type": "public-key",
            "response": {
                "authenticatorData": b64(&auth),
                "clientDataJSON": b64(&client),
                "signature": b64(&sig),
                "userHandle": b64(&self.user),
            },
            "clientExtensionResults": {},
        })
    }
}
