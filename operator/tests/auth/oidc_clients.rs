//! The provider against relying parties others wrote, each through the real sign-in page in
//! Chromium: openid-client (npm, OpenID-certified), Apache's mod_auth_openidc (certified) in front
//! of a page, oauth2-proxy behind nginx `auth_request`.

use std::time::Duration;

use serde_json::{Value, json};
use usher_testkit::Process;

use crate::{
    common::{auth::*, oidc::declare_client, *},
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_client_introspects_revokes_and_signs_out_through_the_end_session_url() {
    let (h, client) = harness().await;
    let (org, _, login) = active_member(h, &client, &["wiki:edit"]).await;
    let (redirect, bye) = (
        "https://app.example.test/cb",
        "https://app.example.test/bye",
    );
    let (client_id, secret) = declare_client(
        &client,
        &org.ns,
        "confidential",
        json!({"redirectURIs": [redirect], "postLogoutRedirectURIs": [bye]}),
    )
    .await;
    let vars = [
        ("ISSUER", h.a.base.clone()),
        ("CLIENT_ID", client_id.clone()),
        ("CLIENT_SECRET", secret),
        ("REDIRECT_URI", redirect.to_owned()),
        ("POST_LOGOUT_URI", bye.to_owned()),
        ("LOGIN", login.clone()),
        ("PASSWORD", PASSWORD.to_owned()),
    ];
    let run = tokio::task::spawn_blocking(move || browser_script("oidc-session.mjs", vars))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        run.status.success() && stdout.contains("OIDC_SESSION_OK"),
        "openid-client failed:\n{stdout}\n{}\nauth server log:\n{}",
        String::from_utf8_lossy(&run.stderr),
        h.a.process.log_tail(30)
    );
    let learnt: Value =
        serde_json::from_str(stdout.lines().find(|l| l.starts_with('{')).unwrap()).unwrap();
    assert_eq!(learnt["access"]["active"], true, "{learnt}");
    assert_eq!(learnt["access"]["client_id"], client_id.as_str());
    assert_eq!(learnt["access"]["username"], login.as_str());
    assert_eq!(learnt["refresh"]["active"], true);
    assert_eq!(learnt["revoked"], json!({"active": false}));
    assert_eq!(learnt["revokedAccess"], json!({"active": false}));
    assert_eq!(learnt["bye"], format!("{bye}?state=bye-state").as_str());
    assert_eq!(learnt["afterLogout"], json!({"active": false}));
}

/// Runs `e2e/relying-party.mjs` against `page_url`; the page's text.
async fn through_relying_party(
    h: &Harness,
    page_url: &str,
    login: &str,
    expect: &str,
    rp: &Process,
) -> String {
    through_relying_party_with(h, page_url, login, expect, rp, vec![]).await
}

/// As [`through_relying_party`], with more of the script's environment (`READY_FILE` …).
async fn through_relying_party_with(
    h: &Harness,
    page_url: &str,
    login: &str,
    expect: &str,
    rp: &Process,
    more: Vec<(&'static str, String)>,
) -> String {
    let mut vars = vec![
        ("PAGE_URL", page_url.to_owned()),
        ("ISSUER", h.a.base.clone()),
        ("LOGIN", login.to_owned()),
        ("PASSWORD", PASSWORD.to_owned()),
        ("EXPECT_TEXT", expect.to_owned()),
    ];
    vars.extend(more);
    let run = tokio::task::spawn_blocking(move || browser_script("relying-party.mjs", vars))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        run.status.success() && stdout.contains("RP_OK"),
        "the relying party failed:\n{stdout}\n{}\nits log:\n{}\nauth server log:\n{}",
        String::from_utf8_lossy(&run.stderr),
        rp.log_tail(40),
        h.a.process.log_tail(30)
    );
    stdout
}

/// A [`readable_dir`] holding `cert.pem` and `key.pem`, a serving certificate for `localhost`
/// of the harness's CA (the browser is told to accept it; the controller trusts it).
fn tls_dir(h: &Harness) -> tempfile::TempDir {
    let dir = readable_dir();
    let cert = h.ca.issue(1).unwrap();
    write_readable(&dir.path().join("cert.pem"), &cert.cert_pem);
    write_readable(&dir.path().join("key.pem"), &cert.key_pem);
    dir
}

/// A directory servers that drop privileges (as root) can still read.
fn readable_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn write_readable(path: &std::path::Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
}

fn wait_listening(port: u16, what: &Process) {
    let up = usher_testkit::poll_blocking(Duration::from_secs(15), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    assert!(
        up.is_some(),
        "not listening on {port}:\n{}",
        what.log_tail(30)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mod_auth_openidc_in_apache_protects_a_page_passes_the_claims_on_and_signs_out_with_usher()
{
    let (h, client) = harness().await;
    let (org, name, login) = active_member(h, &client, &["wiki:edit"]).await;
    let port = usher_testkit::free_port().unwrap();
    let origin = format!("https://localhost:{port}");
    let (client_id, secret) = declare_client(
        &client,
        &org.ns,
        "apache",
        json!({
            "redirectURIs": [format!("{origin}/protected/redirect_uri")],
            // mod_auth_openidc's back-channel endpoint is its redirect URI with this query.
            "backchannelLogoutURI": format!("{origin}/protected/redirect_uri?logout=backchannel"),
            "postLogoutRedirectURIs": [format!("{origin}/loggedout.html")],
        }),
    )
    .await;
    let modules = "/usr/lib/apache2/modules";
    assert!(
        std::path::Path::new(&format!("{modules}/mod_auth_openidc.so")).exists(),
        "mod_auth_openidc is missing: run scripts/install-deps.sh (Debian packages apache2-bin libapache2-mod-auth-openidc)"
    );
    let dir = tls_dir(h);
    let d = dir.path().display();
    std::fs::create_dir_all(dir.path().join("htdocs/protected")).unwrap();
    write_readable(
        &dir.path().join("htdocs/protected/claims.shtml"),
        "<html><body><p>user=<!--#echo var=\"REMOTE_USER\" --></p>\
         <p>org=<!--#echo var=\"OIDC_CLAIM_org\" --></p>\
         <p>permissions=<!--#echo var=\"OIDC_CLAIM_permissions\" --></p>\
         <p>sub=<!--#echo var=\"OIDC_CLAIM_sub\" --></p></body></html>\n",
    );
    write_readable(
        &dir.path().join("htdocs/loggedout.html"),
        "<html><body><p>You left the wiki.</p></body></html>\n",
    );
    let user = if running_as_root() {
        "User nobody\nGroup nogroup\n"
    } else {
        ""
    };
    let conf = format!(
        "ServerRoot {d}\nDefaultRuntimeDir {d}\nPidFile {d}/httpd.pid\nListen 127.0.0.1:{port}\n\
         ServerName localhost\nErrorLog {d}/error.log\nLogLevel warn auth_openidc:info\n{user}\
         LoadModule mpm_event_module {modules}/mod_mpm_event.so\n\
         LoadModule authn_core_module {modules}/mod_authn_core.so\n\
         LoadModule authz_core_module {modules}/mod_authz_core.so\n\
         LoadModule authz_user_module {modules}/mod_authz_user.so\n\
         LoadModule ssl_module {modules}/mod_ssl.so\n\
         LoadModule include_module {modules}/mod_include.so\n\
         LoadModule auth_openidc_module {modules}/mod_auth_openidc.so\n\
         DocumentRoot {d}/htdocs\nSSLEngine on\nSSLCertificateFile {d}/cert.pem\nSSLCertificateKeyFile {d}/key.pem\n\
         OIDCProviderMetadataURL {issuer}/.well-known/openid-configuration\n\
         OIDCClientID {client_id}\nOIDCClientSecret {secret}\n\
         OIDCRedirectURI {origin}/protected/redirect_uri\nOIDCCryptoPassphrase {pass}\n\
         OIDCScope \"openid email profile organisation\"\nOIDCPKCEMethod S256\n\
         OIDCProviderTokenEndpointAuth client_secret_basic\nOIDCRemoteUserClaim email\n\
         <Directory {d}/htdocs>\n  Options +Includes\n  Require all granted\n</Directory>\n\
         <Location /protected>\n  AuthType openid-connect\n  Require valid-user\n  \
         SetOutputFilter INCLUDES\n  ForceType text/html\n</Location>\n",
        issuer = h.a.base,
        pass = usher_testkit::unique_name("pass"),
    );
    let path = dir.path().join("httpd.conf");
    write_readable(&path, &conf);
    let apache = Process::spawn(
        std::process::Command::new("/usr/sbin/apache2")
            .arg("-X")
            .arg("-f")
            .arg(&path),
        &log_path("oidc-apache"),
        None,
    )
    .unwrap();
    wait_listening(port, &apache);
    // Once signed in (the script says so with a file), Kill Session in Usher: the annotation a
    // platform team sets. Apache's own session must end through its back-channel endpoint.
    let ready = dir.path().join("signed-in");
    let kill = tokio::spawn({
        let (client, ns, ready) = (client.clone(), org.ns.clone(), ready.clone());
        async move {
            eventually(
                "the browser to be signed in through Apache",
                Duration::from_secs(60),
                || {
                    let ready = ready.clone();
                    async move { ready.exists().then_some(()) }
                },
            )
            .await;
            kill_sessions(&client, &ns, &name, "apache-1").await;
        }
    });
    let shown = through_relying_party_with(
        h,
        &format!("{origin}/protected/claims.shtml"),
        &login,
        &format!("user={login}"),
        &apache,
        vec![
            ("READY_FILE", ready.display().to_string()),
            ("LOGGED_OUT_URL", format!("{origin}/loggedout.html")),
            ("LOGGED_OUT_TEXT", "You left the wiki.".into()),
        ],
    )
    .await;
    kill.await.unwrap();
    assert!(shown.contains("RP_LOGGED_OUT"), "{shown}");
    assert!(shown.contains(&format!("org={}", org.name)), "{shown}");
    assert!(shown.contains("permissions=wiki:edit"), "{shown}");
    assert!(
        shown.contains(&format!("sub={}", usher_operator::account_id(&login))),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_proxy_behind_nginx_auth_request_signs_in_through_usher() {
    let (h, client) = harness().await;
    let (org, _, login) = active_member(h, &client, &["wiki:edit"]).await;
    let (port, proxy_port) = (
        usher_testkit::free_port().unwrap(),
        usher_testkit::free_port().unwrap(),
    );
    let origin = format!("https://localhost:{port}");
    let (client_id, secret) = declare_client(
        &client,
        &org.ns,
        "proxy",
        json!({"redirectURIs": [format!("{origin}/oauth2/callback")]}),
    )
    .await;
    let proxy = Process::spawn(
        std::process::Command::new(tool("oauth2-proxy"))
            .arg("--provider=oidc")
            .arg(format!("--oidc-issuer-url={}", h.a.base))
            .arg(format!("--client-id={client_id}"))
            .arg(format!("--client-secret={secret}"))
            .arg(format!("--redirect-url={origin}/oauth2/callback"))
            .arg(format!(
                "--cookie-secret={}",
                &usher_testkit::unique_name("cookie-secret-0123456789abcdef")[..32]
            ))
            .args([
                "--cookie-secure=true",
                "--email-domain=*",
                "--upstream=static://202",
            ])
            .arg(format!("--http-address=127.0.0.1:{proxy_port}"))
            .args([
                "--reverse-proxy=true",
                "--set-xauthrequest=true",
                "--code-challenge-method=S256",
            ])
            .args([
                "--skip-provider-button=true",
                "--scope=openid email profile groups",
            ])
            .arg(format!("--whitelist-domain=localhost:{port}")),
        &log_path("oidc-oauth2-proxy"),
        None,
    )
    .unwrap();
    wait_listening(proxy_port, &proxy);
    let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("nginx is missing: run scripts/install-deps.sh (Debian package nginx-light)");
    let dir = tls_dir(h);
    let d = dir.path().display();
    let user = if running_as_root() { "user root;" } else { "" };
    let conf = format!(
        "{user}\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  \
         proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  \
         scgi_temp_path {d}/scgi;\n  server {{\n    listen 127.0.0.1:{port} ssl;\n    server_name localhost;\n    \
         ssl_certificate {d}/cert.pem;\n    ssl_certificate_key {d}/key.pem;\n    \
         location /oauth2/ {{\n      proxy_pass http://127.0.0.1:{proxy_port};\n      \
         proxy_set_header Host $host:$server_port;\n      proxy_set_header X-Forwarded-Proto https;\n    }}\n    \
         location = /oauth2/auth {{\n      proxy_pass http://127.0.0.1:{proxy_port};\n      \
         proxy_set_header Host $host:$server_port;\n      proxy_set_header X-Forwarded-Proto https;\n      \
         proxy_set_header Content-Length \"\";\n      proxy_pass_request_body off;\n    }}\n    \
         location / {{\n      auth_request /oauth2/auth;\n      \
         error_page 401 =302 /oauth2/start?rd=$scheme://$host:$server_port$request_uri;\n      \
         auth_request_set $email $upstream_http_x_auth_request_email;\n      \
         auth_request_set $groups $upstream_http_x_auth_request_groups;\n      \
         default_type text/html;\n      ssi on;\n      root {d};\n      try_files /page.html =404;\n    }}\n  }}\n}}\n"
    );
    let path = dir.path().join("nginx.conf");
    write_readable(&path, &conf);
    // The page, after the auth_request: what oauth2-proxy passed on (a `return` would answer
    // before the access phase).
    write_readable(
        &dir.path().join("page.html"),
        "<html><body><p>email=<!--# echo var=\"email\" --></p>\
         <p>groups=<!--# echo var=\"groups\" --></p></body></html>\n",
    );
    let nginx = Process::spawn(
        std::process::Command::new(nginx)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&path)
            .args(["-g", "daemon off;"]),
        &log_path("oidc-nginx"),
        None,
    )
    .unwrap();
    wait_listening(port, &nginx);
    let shown = through_relying_party(
        h,
        &format!("{origin}/wiki"),
        &login,
        &format!("email={login}"),
        &proxy,
    )
    .await;
    assert!(shown.contains(&format!("groups={}", org.name)), "{shown}");
}
