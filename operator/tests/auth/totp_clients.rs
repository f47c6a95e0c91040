//! TOTP against real clients: `zbarimg` reads the enrolment QR code back to the otpauth URI,
//! and `oathtool` computes codes from the manual secret that Usher accepts once.

use std::{
    process::Command,
    time::{SystemTime, UNIX_EPOCH},
};

use usher_operator::{CodeError, enrol_totp as enrol, verify_totp as verify};

fn tool(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| {
        panic!(
            "{cmd} is missing ({e}): apt-get install oathtool zbar-tools (scripts/install-deps.sh)"
        )
    });
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn the_qr_code_decodes_to_the_uri_and_oathtool_codes_are_accepted_once() {
    let e = enrol("ACME Usher", "alice@example.com").unwrap();
    assert!(
        e.otpauth_uri
            .starts_with("otpauth://totp/ACME%20Usher:alice%40example.com?"),
        "{}",
        e.otpauth_uri
    );
    assert!(
        e.otpauth_uri
            .contains(&format!("secret={}", e.secret_base32)),
        "{}",
        e.otpauth_uri
    );
    assert!(
        e.otpauth_uri.contains("issuer=ACME%20Usher"),
        "{}",
        e.otpauth_uri
    );
    assert_eq!(e.secret_base32.len(), 32, "160 bits in base32");

    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("enrol.png");
    std::fs::write(&png, &e.qr_png).unwrap();
    let decoded = tool("zbarimg", &["--quiet", "--raw", png.to_str().unwrap()]);
    assert_eq!(decoded, e.otpauth_uri);

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let code = tool(
        "oathtool",
        &[
            "--totp",
            "-b",
            &e.secret_base32,
            "--now",
            &format!("@{now}"),
        ],
    );
    let step = verify(e.secret, &code, now, None).unwrap_or_else(|err| panic!("{code}: {err}"));
    assert_eq!(
        verify(e.secret, &code, now, Some(step)),
        Err(CodeError::Replayed)
    );
    // A code for 90 s ago is outside ±1 step.
    let old = tool(
        "oathtool",
        &[
            "--totp",
            "-b",
            &e.secret_base32,
            "--now",
            &format!("@{}", now - 90),
        ],
    );
    if old != code {
        assert_eq!(verify(e.secret, &old, now, None), Err(CodeError::Wrong));
    }
}
