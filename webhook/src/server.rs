//! The webhook's HTTP surface: `POST /validate` (admission.k8s.io/v1 AdmissionReview),
//! `GET /healthz`, `GET /readyz`, `GET /metrics`.

use std::{sync::Arc, time::Instant};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use kube::core::{
    DynamicObject,
    admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation},
};

use crate::{
    cache::Caches,
    metrics::{Metrics, ReviewLabels},
    rules::{self, Config, Decision, Kind, Snapshot},
};
use usher_crds::rules::Violation;

/// The API server takes objects of at most 3 MiB (its request limit), and a review carries two
/// (object and oldObject) on UPDATE: nothing larger comes from it.
pub const MAX_REVIEW_BYTES: usize = 6 * 1024 * 1024 + 64 * 1024;

/// Where the rules read cluster objects from.
#[derive(Clone)]
pub enum Source {
    /// Watch caches, with a fresh List until they sync.
    Cluster(Caches),
    /// A fixed snapshot (tests, benchmarks).
    Fixed(Arc<Snapshot>),
}

/// Shared state of the handlers.
pub struct AppState {
    /// Where objects come from.
    pub source: Source,
    /// Rule settings.
    pub config: Config,
    /// Metrics.
    pub metrics: Metrics,
}

/// The webhook's router.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/validate", post(validate))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(MAX_REVIEW_BYTES))
        .with_state(state)
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    match &state.source {
        Source::Cluster(c) if !c.is_synced() => {
            // Still serving (with fresh Lists), but not yet at cache speed.
            (StatusCode::OK, "ok (caches syncing)").into_response()
        }
        _ => (StatusCode::OK, "ok").into_response(),
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    if let Source::Cluster(caches) = &state.source {
        state.metrics.fresh_lists.set(caches.lists_available());
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

/// A request the webhook cannot read at all (not an AdmissionReview).
fn bad_request(message: String) -> Response {
    let body = serde_json::json!({"error": "invalid_review", "message": message});
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

async fn validate(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let started = Instant::now();
    let review: AdmissionReview<DynamicObject> = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return bad_request(format!(
                "the body is not an admission.k8s.io/v1 AdmissionReview: {e}"
            ));
        }
    };
    let req: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(r) => r,
        Err(_) => return bad_request("the AdmissionReview has no request".into()),
    };
    let (response, decision) = decide(&state, &req).await;
    let kind = Kind::of(&req).map_or("other", Kind::label);
    state
        .metrics
        .reviews
        .get_or_create(&ReviewLabels {
            kind: kind.into(),
            operation: operation_label(&req.operation).into(),
            decision: decision.into(),
        })
        .inc();
    state
        .metrics
        .duration
        .observe(started.elapsed().as_secs_f64());
    Json(response.into_review()).into_response()
}

async fn decide(
    state: &AppState,
    req: &AdmissionRequest<DynamicObject>,
) -> (AdmissionResponse, &'static str) {
    let decision = match &state.source {
        Source::Fixed(snapshot) => rules::review(req, snapshot.as_ref(), &state.config),
        // The cache decides only what staleness cannot get wrong: it may allow, never refuse.
        Source::Cluster(caches)
            if caches.is_synced()
                && !rules::needs_fresh_view(req)
                && rules::review(req, caches, &state.config) == Decision::Allow =>
        {
            Decision::Allow
        }
        // Beyond the budget of fresh Lists, the synced caches decide: a flood of refused
        // reviews (anyone may post them, any tenant may create bad Users) does not become a
        // flood of Lists. At worst a refusal comes from a cache a moment behind (apply again),
        // or a duplicate login slips through, which the controller then refuses (the older
        // User keeps the login).
        Source::Cluster(caches) if caches.is_synced() && !caches.may_list() => {
            rules::review(req, caches, &state.config)
        }
        // Fresh data otherwise: a cache that has not yet seen an Organisation or Profile created
        // a moment ago (one `kubectl apply -k`) must not refuse the User that follows, and one
        // that has not yet seen a User must not admit a second User with the same login.
        Source::Cluster(caches) => match caches.list(users_scope(req)).await {
            Ok(snapshot) => rules::review(req, &snapshot, &state.config),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list Usher objects to review a request");
                let response = deny(
                    req,
                    "the Usher webhook cannot read Organisations, Profiles and Users right now; try again in a few seconds".into(),
                );
                return (response, "error");
            }
        },
    };
    match decision {
        Decision::Allow => (AdmissionResponse::from(req), "allowed"),
        Decision::Deny(violation) => {
            tracing::info!(
                kind = %req.kind.kind,
                namespace = req.namespace.as_deref().unwrap_or(""),
                name = %req.name,
                operation = operation_label(&req.operation),
                rule = violation.reason(),
                message = %violation,
                "denied"
            );
            (deny_violation(req, &violation), "denied")
        }
    }
}

/// The namespace whose Users a fresh view needs: a User's own, else every namespace.
fn users_scope(req: &AdmissionRequest<DynamicObject>) -> Option<&str> {
    match Kind::of(req) {
        Some(Kind::User) => req.namespace.as_deref(),
        _ => None,
    }
}

/// A refusal as Kubernetes' own admission plugins answer: 403 Forbidden with the message.
fn deny(req: &AdmissionRequest<DynamicObject>, message: String) -> AdmissionResponse {
    let mut response = AdmissionResponse::from(req).deny(message);
    response.result.code = 403;
    response.result.reason = "Forbidden".into();
    response
}

/// A refusal for a broken rule: 403 Forbidden with its message, and details naming the group,
/// the kind, the object and the rule (a cause with its reason and field), which the API server
/// passes on to the client: what the admin API (or any client) tells Usher's refusals by,
/// rather than by the text.
fn deny_violation(
    req: &AdmissionRequest<DynamicObject>,
    violation: &Violation,
) -> AdmissionResponse {
    let message = violation.to_string();
    let mut response = deny(req, message.clone());
    response.result.details = Some(kube::core::response::StatusDetails {
        group: usher_crds::GROUP.to_owned(),
        kind: req.kind.kind.clone(),
        name: req.name.clone(),
        causes: vec![kube::core::response::StatusCause {
            reason: violation.reason().to_owned(),
            message,
            field: violation.field().unwrap_or_default(),
        }],
        uid: String::new(),
        retry_after_seconds: 0,
    });
    response
}

fn operation_label(op: &Operation) -> &'static str {
    match op {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}

#[cfg(test)]
mod tests {
    use axum::body::{Body, to_bytes};
    use http::Request;
    use tower::ServiceExt;

    use super::*;
    use usher_testkit::admission::{organisation, profile, review_json, user_json};

    fn app() -> Router {
        router(Arc::new(AppState {
            source: Source::Fixed(Arc::new(Snapshot {
                organisations: vec![organisation("acme", None)],
                profiles: vec![profile("analyst", &[])],
                users: vec![],
            })),
            config: Config {
                operator_namespace: "usher-system".into(),
                accounts_namespace: None,
            },
            metrics: Metrics::default(),
        }))
    }

    async fn post(body: Vec<u8>) -> (StatusCode, serde_json::Value) {
        let req = Request::post("/validate")
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        let resp = app().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = to_bytes(resp.into_body(), usize::MAX).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or_default())
    }

    #[tokio::test]
    async fn answers_with_the_request_uid_and_a_403_status_on_refusal() {
        let review = review_json(
            "CREATE",
            "User",
            Some("acme"),
            "a",
            Some(user_json("acme", "a", "A@example.com", "analyst")),
            None,
        );
        let (status, body) = post(serde_json::to_vec(&review).unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["kind"], "AdmissionReview");
        assert_eq!(body["response"]["uid"], review["request"]["uid"]);
        assert_eq!(body["response"]["allowed"], false);
        assert_eq!(body["response"]["status"]["code"], 403);
        assert!(
            body["response"]["status"]["message"]
                .as_str()
                .unwrap()
                .contains("use \"a@example.com\"")
        );
    }

    #[tokio::test]
    async fn oversized_and_malformed_bodies_get_4xx_never_5xx() {
        let (status, _) = post(vec![b'x'; MAX_REVIEW_BYTES + 1]).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        let (status, body) = post(b"[1,2,3]".to_vec()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "invalid_review");
        let (status, body) =
            post(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec())
                .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body["message"].as_str().unwrap().contains("no request"));
    }
}
