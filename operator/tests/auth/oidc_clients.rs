//! The provider against relying parties others wrote: openid-client (npm, OpenID-certified)
//! through the real sign-in page in Chromium.

use serde_json::{Value, json};

use crate::{
    common::{auth::*, *},
    oidc::declare_client,
    *,
};

// Several threads: the browser runs in `spawn_blocking` while the servers go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_client_signs_in_with_password_and_totp_reads_userinfo_and_refreshes() {
    let (h, client) = harness().await;
    let (org, _, login) = active_member(h, &client, &["wiki:edit"]).await;
    let session = h.a.session(&login, PASSWORD).await;
    // Enrolled with the previous step's code: the browser uses the current one.
    let totp_secret = h.a.enroll_totp(&session, -30).await;
    let port = usher_testkit::free_port().unwrap();
    let redirect = format!("http://localhost:{port}/cb");
    let (client_id, secret) = declare_client(
        &client,
        &org.ns,
        "spa",
        json!({"redirectURIs": [redirect], "public": true, "idTokenSigningAlg": "ES256"}),
    )
    .await;
    assert_eq!(secret, "", "a public client gets no secret");
    let vars = [
        ("ISSUER", h.a.base.clone()),
        ("CLIENT_ID", client_id.clone()),
        ("REDIRECT_URI", redirect),
        ("LOGIN", login.clone()),
        ("PASSWORD", PASSWORD.to_owned()),
        ("TOTP_SECRET", totp_secret),
    ];
    let run = tokio::task::spawn_blocking(move || browser_script("oidc.mjs", vars))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        run.status.success() && stdout.contains("OIDC_OK"),
        "openid-client failed:\n{stdout}\n{}\nauth server log:\n{}",
        String::from_utf8_lossy(&run.stderr),
        h.a.process.log_tail(30)
    );
    let learnt: Value =
        serde_json::from_str(stdout.lines().find(|l| l.starts_with('{')).unwrap()).unwrap();
    let claims = &learnt["claims"];
    assert_eq!(claims["sub"], usher_operator::account_id(&login).as_str());
    assert_eq!(claims["aud"], client_id.as_str());
    assert_eq!(claims["email"], login.as_str());
    assert_eq!(claims["org"], org.name.as_str());
    assert_eq!(claims["amr"], json!(["pwd", "otp", "mfa"]));
    assert_eq!(learnt["info"]["permissions"], json!(["wiki:edit"]));
    assert_eq!(learnt["again"]["email"], login.as_str());
    assert_eq!(learnt["reused"], "invalid_grant");
}
