//! Login protection behind the ingress: client addresses from X-Forwarded-For of a trusted
//! proxy only, attempts counted before hashing, device cookies, and throttled answers that do not
//! tell which logins exist.

use reqwest::StatusCode;

use crate::{
    common::{auth::*, *},
    *,
};

/// Sends `n` sign-ins at once; their answers.
async fn burst(client: &Client127, login: &str, password: &str, n: usize) -> Vec<Answer> {
    let all = (0..n).map(|_| client.login(login, password, &[]));
    futures::future::join_all(all).await
}

#[tokio::test]
async fn forwarded_clients_are_throttled_apart_and_no_client_picks_its_own_address() {
    let (h, client) = ingress().await;
    let person = person(h, &client, "bystander").await;
    let attacker = Client127::new("127.0.0.5", h.port);
    // Wrong passwords for many logins, so only the per-address allowance (50 on each replica,
    // nginx spreads them over both) is spent.
    let mut last = Vec::new();
    for round in 0..30 {
        let tries = (0..4).map(|i| {
            let login = format!("nobody-{round}-{i}@example.com");
            let attacker = &attacker;
            async move { attacker.login(&login, "Wrong-password-47!", &[]).await }
        });
        last = futures::future::join_all(tries).await;
    }
    assert_eq!(
        count(&last, StatusCode::TOO_MANY_REQUESTS),
        last.len(),
        "the flooding address is throttled: {last:?}"
    );
    assert_eq!(last[0].code(), "too_many_attempts");
    // Forging X-Forwarded-For changes nothing: nginx appends the address it saw, and Usher
    // takes the right-most hop that is not a trusted proxy.
    let spoofed = attacker
        .login(
            "nobody-else@example.com",
            "Wrong-password-47!",
            &[("x-forwarded-for", "127.0.0.99")],
        )
        .await;
    assert_eq!(spoofed.status, StatusCode::TOO_MANY_REQUESTS);

    // Another client behind the same ingress is not held by that address's throttle.
    let other = Client127::new("127.0.0.6", h.port);
    let wrong = other.login(&person, "Wrong-password-47!", &[]).await;
    assert_eq!(
        (wrong.status, wrong.code()),
        (StatusCode::UNAUTHORIZED, "invalid_credentials")
    );
    let right = other.login(&person, PASSWORD, &[]).await;
    assert_eq!(right.status, StatusCode::OK, "{}", right.body);

    // A client that is not a trusted proxy cannot claim another's address either: straight to
    // a replica from 127.0.0.7, naming the throttled address, it is judged as itself.
    let direct = reqwest::Client::builder()
        .local_address("127.0.0.7".parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let claimed = direct
        .post(format!("{}/api/v1/login", h.a.base))
        .header("x-forwarded-for", "127.0.0.5")
        .json(&serde_json::json!({"login": "nobody-direct@example.com", "password": "Wrong-password-47!"}))
        .send()
        .await
        .unwrap();
    assert_eq!(claimed.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_parallel_burst_of_fifty_guesses_gets_at_most_six_verdicts() {
    let (h, client) = ingress().await;
    let victim = person(h, &client, "burst").await;
    let attacker = Client127::new("127.0.0.8", h.port);
    let answers = burst(&attacker, &victim, "Wrong-password-47!", 50).await;
    let verdicts = count(&answers, StatusCode::UNAUTHORIZED);
    assert!(
        (1..=6).contains(&verdicts),
        "{verdicts} verdicts of 50 parallel guesses: {:?}",
        answers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    // The rest were refused before any hashing.
    assert_eq!(
        count(&answers, StatusCode::TOO_MANY_REQUESTS) + verdicts,
        50,
        "{answers:?}"
    );
}

#[tokio::test]
async fn a_person_with_a_device_cookie_signs_in_while_an_attacker_holds_their_login_locked() {
    let (h, client) = ingress().await;
    let victim = person(h, &client, "device").await;
    // The person's own browser: a complete sign-in leaves a device cookie.
    let browser = Client127::new("127.0.0.10", h.port);
    let first = browser.login(&victim, PASSWORD, &[]).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let device = first
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("usher_device="))
        .expect("a device cookie after a complete sign-in")
        .to_owned();
    assert!(
        device.contains("HttpOnly") && device.contains("Max-Age=31536000"),
        "{device}"
    );
    let device = device.split(';').next().unwrap().to_owned();

    // An attacker elsewhere guesses until the login is soft-locked.
    let attacker = Client127::new("127.0.0.11", h.port);
    let mut locked = None;
    for _ in 0..12 {
        let a = attacker.login(&victim, "Wrong-password-47!", &[]).await;
        if a.status == StatusCode::TOO_MANY_REQUESTS {
            locked = Some(a);
        }
    }
    assert!(locked.is_some(), "the attacker is held by the lock");
    // Without the device cookie even the right password is refused (held: answered as a
    // wrong password, or throttled, as an unknown login would be)...
    let elsewhere = Client127::new("127.0.0.12", h.port);
    let refused = elsewhere.login(&victim, PASSWORD, &[]).await;
    assert!(
        matches!(refused.code(), "invalid_credentials" | "too_many_attempts"),
        "{}",
        refused.body
    );
    // ...but the person's device is not held by the attacker's failures.
    let again = browser
        .login(&victim, PASSWORD, &[("cookie", device.as_str())])
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
}

#[tokio::test]
async fn throttled_answers_look_the_same_for_known_and_unknown_logins() {
    let (h, client) = ingress().await;
    let known = person(h, &client, "known").await;
    let unknown = login("unknown");
    // Straight to one replica (the lock of an unknown login is that replica's).
    let direct = reqwest::Client::builder()
        .local_address("127.0.0.13".parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let attempt = |login: String| {
        let direct = direct.clone();
        let url = format!("{}/api/v1/login", h.a.base);
        async move {
            answer(
                direct
                    .post(url)
                    .json(&serde_json::json!({"login": login, "password": "Wrong-password-47!"}))
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    let mut finals = Vec::new();
    for login in [&known, &unknown] {
        let mut last = None;
        for _ in 0..6 {
            last = Some(attempt(login.clone()).await);
        }
        finals.push(last.unwrap());
    }
    let (k, u) = (&finals[0], &finals[1]);
    assert_eq!(
        (k.status, u.status),
        (StatusCode::TOO_MANY_REQUESTS, StatusCode::TOO_MANY_REQUESTS)
    );
    assert_eq!(k.body, u.body);
    let retry = |a: &Answer| a.header("retry-after").unwrap().parse::<f64>().unwrap();
    let (rk, ru) = (retry(k), retry(u));
    assert!(
        rk > 60.0 && ru > 60.0 && (rk / ru - 1.0).abs() < 0.1,
        "Retry-After {rk} for a known login and {ru} for an unknown one"
    );
}
