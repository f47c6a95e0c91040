//! Limits that keep one client from stalling everyone: a bounded hash queue (503 `busy`, other
//! routes answer at once) and a header-read timeout (slowloris).

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{common::auth::*, *};

#[tokio::test]
async fn a_full_hash_queue_answers_busy_while_health_answers_at_once() {
    let (h, _) = ingress().await;
    let small = start_auth(
        h.env,
        "ingress-small-pool",
        &[("USHER_HASH_CONCURRENCY", "1"), ("USHER_HASH_QUEUE", "1")],
    )
    .await;
    let http = reqwest::Client::new();
    let logins = (0..24).map(|i| {
        let (http, url) = (http.clone(), format!("{}/api/v1/login", small.base));
        async move {
            answer(
                http.post(url)
                    .json(&serde_json::json!({"login": format!("queue-{i}@example.com"), "password": "Wrong-password-47!"}))
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    });
    let flood = tokio::spawn(futures::future::join_all(logins));
    tokio::time::sleep(Duration::from_millis(20)).await;
    let started = Instant::now();
    let health = reqwest::get(format!("{}/healthz", small.base))
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(health.status(), StatusCode::OK);
    assert!(
        took < Duration::from_millis(500),
        "/healthz took {took:?} during the flood"
    );
    let answers = flood.await.unwrap();
    let busy: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.status == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert!(!busy.is_empty(), "{answers:?}");
    assert_eq!(busy[0].code(), "busy");
    assert_eq!(busy[0].header("retry-after").as_deref(), Some("1"));
    // The rest got their verdict.
    assert_eq!(
        busy.len() + count(&answers, StatusCode::UNAUTHORIZED),
        answers.len()
    );
}

#[tokio::test]
async fn a_connection_that_never_finishes_its_headers_is_closed() {
    let (h, _) = ingress().await;
    let strict = start_auth(
        h.env,
        "ingress-slowloris",
        &[("USHER_HEADER_TIMEOUT", "1s")],
    )
    .await;
    let addr = strict.base.trim_start_matches("http://").to_owned();
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: usher\r\nX-Slow: 1")
        .await
        .unwrap();
    let started = Instant::now();
    // A 408 first is fine; the connection must end after it.
    assert!(
        closed_within(&mut slow, Duration::from_secs(10)).await,
        "the half-sent request was still open after 10 s"
    );
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(800), "closed after {took:?}");
    // A request that completes in time is answered as usual.
    assert_eq!(
        reqwest::get(format!("{}/healthz", strict.base))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_http2_connection_that_never_sends_a_request_is_closed() {
    // HTTP/2 with prior knowledge has no header-read timeout of its own: the preface and an
    // empty SETTINGS frame, then nothing, held a connection open for ever.
    let (h, _) = ingress().await;
    let strict = start_auth(h.env, "ingress-h2-idle", &[("USHER_HEADER_TIMEOUT", "1s")]).await;
    let addr = strict.base.trim_start_matches("http://").to_owned();
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    idle.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    // The server's SETTINGS and its acknowledgement come first.
    assert!(
        closed_within(&mut idle, Duration::from_secs(10)).await,
        "the HTTP/2 connection without a request was still open after 10 s"
    );
}

/// True when the server closes `stream` within `limit`, whatever it sends before.
async fn closed_within(stream: &mut tokio::net::TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
    .is_ok()
}
