//! Forward-auth across hosts in Chromium: an app on app.usher.test behind nginx's auth_request,
//! Usher's sign-in on login.usher.test (password, then TOTP), back on the app with the identity
//! headers and without Usher's cookie; a foreign `rd` is ignored.

use crate::{common::auth::*, *};

#[tokio::test]
async fn an_app_on_another_host_signs_people_in_through_usher() {
    let (h, client) = ingress().await;
    let login = person(h, &client, "fwd").await;
    // TOTP enrolled with the previous step's code, so the browser's current code is new.
    let cookie = h.a.session(&login, PASSWORD).await;
    let secret = h.a.enroll_totp(&cookie, -30).await;

    // Not signed in: nginx sends the browser to Usher's sign-in with the way back.
    let anonymous = Client127::new("127.0.0.20", h.port);
    let to_app = anonymous
        .http
        .get(format!("http://127.0.0.1:{}/cases", h.port))
        .header("host", format!("{APP_HOST}:{}", h.port))
        .send()
        .await
        .unwrap();
    assert_eq!(to_app.status(), reqwest::StatusCode::FOUND);
    assert_eq!(
        to_app.headers()["location"],
        format!(
            "{}/login?rd=http://{APP_HOST}:{}/cases",
            h.login_url(),
            h.port
        )
        .as_str()
    );

    let out = repo().join("test-output/forward-auth");
    let vars = [
        ("APP_URL", h.app_url()),
        ("LOGIN_URL", h.login_url()),
        ("LOGIN", login.clone()),
        ("PASSWORD", PASSWORD.to_owned()),
        ("TOTP_SECRET", secret),
        ("OUT", out.display().to_string()),
    ];
    let run = tokio::task::spawn_blocking(move || browser_script("forward-auth.mjs", vars))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success() && stdout.contains("FORWARD_AUTH_OK"),
        "{stdout}\n{stderr}\n{}\n{}",
        h.a.process.log_tail(20),
        h.b.process.log_tail(20)
    );
}
