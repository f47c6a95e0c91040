//! Invitation emails through a real SMTP server (aiosmtpd) and the file transport.

use std::time::Duration;

use usher_operator::{Invitation, Mailer, invitation_email};
use usher_testkit::SmtpSink;

fn invitation() -> Invitation<'static> {
    Invitation {
        login: "alice@example.com",
        full_name: "Alice Martin",
        organisation: "ACME Corporation",
        link: "http://127.0.0.1:8080/invite#token=abc",
        expires: "2026-11-28 20:15 UTC",
    }
}

#[tokio::test]
async fn an_invitation_reaches_a_real_smtp_server() {
    let sink = SmtpSink::start().await.unwrap();
    let mailer = Mailer::from_url(&sink.url()).unwrap();
    let msg = invitation_email("Usher <usher@example.com>", &invitation()).unwrap();
    mailer.send(msg).await.unwrap();
    let got = sink.wait_for(1, Duration::from_secs(10)).await.unwrap();
    assert_eq!(got.len(), 1);
    assert!(
        got[0].contains("To: \"Alice Martin\" <alice@example.com>"),
        "{}",
        got[0]
    );
    assert!(
        got[0].contains("Subject: You are invited to ACME Corporation"),
        "{}",
        got[0]
    );
}

#[tokio::test]
async fn a_down_smtp_server_is_a_clear_error_without_secrets() {
    let mut sink = SmtpSink::start().await.unwrap();
    let url = sink.url().replace("smtp://", "smtp://user:s3cret@");
    sink.stop();
    let mailer = Mailer::from_url(&url).unwrap();
    let msg = invitation_email("usher@example.com", &invitation()).unwrap();
    let err = mailer.send(msg).await.unwrap_err();
    assert_eq!(err.metric_label(), "smtp");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("s3cret"), "{shown}");
}

#[tokio::test]
async fn the_file_transport_writes_eml_files() {
    let dir = tempfile::tempdir().unwrap();
    let mailer = Mailer::from_url(&format!("file://{}", dir.path().display())).unwrap();
    let msg = invitation_email("usher@example.com", &invitation()).unwrap();
    mailer.send(msg).await.unwrap();
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].extension().unwrap(), "eml");
    let raw = std::fs::read_to_string(&files[0]).unwrap();
    assert!(raw.contains("alice@example.com"), "{raw}");
}

/// STARTTLS (required) and SMTPS against aiosmtpd with a certificate from a private CA, trusted
/// through `SmtpOptions::ca_pem` (USHER_SMTP_CA_FILE); without the CA the server is refused.
#[tokio::test]
async fn starttls_and_smtps_reach_a_real_server_trusting_only_the_given_ca() {
    use usher_operator::SmtpOptions;
    use usher_testkit::{SmtpTls, TestCa};
    let ca = TestCa::new().unwrap();
    let cert = ca.issue(7).unwrap();
    let options = SmtpOptions {
        ca_pem: Some(ca.cert_pem().into_bytes()),
        password: None,
    };
    for tls in [SmtpTls::StartTls, SmtpTls::Implicit] {
        let sink = SmtpSink::start_tls(tls, Some((&cert.cert_pem, &cert.key_pem)))
            .await
            .unwrap();
        let msg = || invitation_email("usher@example.com", &invitation()).unwrap();
        // Not trusting the private CA: refused, nothing delivered.
        let untrusted = Mailer::from_url(&sink.url()).unwrap();
        assert!(
            untrusted.send(msg()).await.is_err(),
            "{tls:?} without the CA"
        );
        // Trusting it: delivered over TLS.
        let mailer = Mailer::from_url_with(&sink.url(), &options).unwrap();
        mailer
            .send(msg())
            .await
            .unwrap_or_else(|e| panic!("{tls:?}: {e:?}"));
        let got = sink.wait_for(1, Duration::from_secs(10)).await.unwrap();
        assert_eq!(got.len(), 1, "{tls:?}");
    }
}
