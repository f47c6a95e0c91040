//! AdmissionReviews per second and latency percentiles, in-process, at 64 concurrent requests,
//! against two baselines measured in the same run on the same router: an empty handler, and a
//! handler that only decodes the AdmissionReview and allows it (so the ratio shows the rules' cost).
//!
//! `cargo bench -p usher-webhook` (or `make bench`). Cluster: 50 organisations, 10,000 Users.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // benchmark code may panic

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{Router, body::Body, routing::post};
use http::Request;
use kube::core::{
    DynamicObject,
    admission::{AdmissionRequest, AdmissionResponse, AdmissionReview},
};
use tower::ServiceExt;
use usher_testkit::admission::{organisation, profile, review_json, user, user_json};
use usher_webhook::{
    metrics::Metrics,
    rules::{Config, Snapshot},
    server::{AppState, Source, router},
};

const CONCURRENCY: usize = 64;
const PER_WORKER: usize = 400;
const ORGS: usize = 50;
const USERS_PER_ORG: usize = 200;

fn cluster() -> Snapshot {
    let mut s = Snapshot {
        profiles: ["admin", "org-admin", "analyst", "read-only"]
            .iter()
            .map(|p| profile(p, &["manageCase"]))
            .collect(),
        ..Default::default()
    };
    for o in 0..ORGS {
        let name = format!("org{o}");
        s.organisations.push(organisation(&name, None));
        for u in 0..USERS_PER_ORG {
            s.users.push(user(
                &name,
                &format!("u{u}"),
                &format!("u{u}@example.com"),
                "analyst",
            ));
        }
    }
    s
}

struct Run {
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

async fn run(app: Router, path: &'static str, body: Arc<Vec<u8>>) -> Run {
    let started = Instant::now();
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let app = app.clone();
            let body = body.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(PER_WORKER);
                for _ in 0..PER_WORKER {
                    let req = Request::post(path)
                        .header("content-type", "application/json")
                        .body(Body::from(body.as_ref().clone()))
                        .unwrap();
                    let t = Instant::now();
                    let resp = app.clone().oneshot(req).await.unwrap();
                    let _ = axum::body::to_bytes(resp.into_body(), usize::MAX)
                        .await
                        .unwrap();
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::with_capacity(CONCURRENCY * PER_WORKER);
    for w in workers {
        all.extend(w.await.unwrap());
    }
    let elapsed = started.elapsed();
    all.sort_unstable();
    Run {
        per_second: all.len() as f64 / elapsed.as_secs_f64(),
        p50: all[all.len() / 2],
        p99: all[all.len() * 99 / 100],
    }
}

async fn decode_only(body: axum::body::Bytes) -> axum::Json<AdmissionReview<DynamicObject>> {
    let review: AdmissionReview<DynamicObject> = serde_json::from_slice(&body).unwrap();
    let req: AdmissionRequest<DynamicObject> = review.try_into().unwrap();
    axum::Json(AdmissionResponse::from(&req).into_review())
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let state = Arc::new(AppState {
            source: Source::Fixed(Arc::new(cluster())),
            config: Config {
                operator_namespace: "usher-system".into(),
                accounts_namespace: None,
            },
            metrics: Metrics::default(),
        });
        let app = router(state)
            .route("/empty", post(|| async { "{}" }))
            .route("/decode-only", post(decode_only));
        let allowed = review_json(
            "CREATE",
            "User",
            Some("org7"),
            "newcomer",
            Some(user_json("org7", "newcomer", "newcomer@example.com", "analyst")),
            None,
        );
        let denied = review_json(
            "CREATE",
            "User",
            Some("org7"),
            "newcomer",
            Some(user_json("org7", "newcomer", "u3@example.com", "analyst")),
            None,
        );
        let allowed = Arc::new(serde_json::to_vec(&allowed).unwrap());
        let denied = Arc::new(serde_json::to_vec(&denied).unwrap());

        // Warm up, then measure baseline and workloads back to back.
        run(app.clone(), "/validate", allowed.clone()).await;
        let empty = run(app.clone(), "/empty", allowed.clone()).await;
        let base = run(app.clone(), "/decode-only", allowed.clone()).await;
        let ok = run(app.clone(), "/validate", allowed).await;
        let no = run(app.clone(), "/validate", denied).await;
        println!(
            "webhook admission benchmark: {CONCURRENCY} concurrent, {} requests each, {} Users in {ORGS} organisations",
            CONCURRENCY * PER_WORKER,
            ORGS * USERS_PER_ORG
        );
        println!("  ratios are to the decode-only baseline");
        for (name, r) in [
            ("empty handler", &empty),
            ("decode-only handler (baseline)", &base),
            ("User CREATE allowed", &ok),
            ("User CREATE denied (duplicate login)", &no),
        ] {
            println!(
                "  {name:<40} {:>9.0} req/s  p50 {:>7.1} µs  p99 {:>7.1} µs  ratio {:.2}",
                r.per_second,
                r.p50.as_secs_f64() * 1e6,
                r.p99.as_secs_f64() * 1e6,
                r.per_second / base.per_second
            );
        }
        let target = Duration::from_millis(2);
        println!(
            "  p99 target < 2 ms: {}",
            if ok.p99 < target && no.p99 < target { "met" } else { "NOT met" }
        );
    });
}
