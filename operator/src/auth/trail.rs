//! The auth server's audit records (the trail itself is `crate::audit`): a record stamped with
//! this server's clock, the request's id and its client (set on every request by
//! `middleware::guard`, never taken from the client), sent without waiting; and who a request
//! is (the actor) and whom it concerns (the target).

use axum::http::HeaderMap;
use usher_crds::User;

use super::{
    principal::{Principal, Via as Authenticated},
    state::AuthState,
};
use crate::{
    account::Account,
    audit::{Action, Actor, ClientInfo, Outcome, Record, Target, Via, record},
};

/// The header `guard` sets to the client's address (any the client sent is removed first).
pub const CLIENT_HEADER: &str = "x-usher-client";
/// The request id: the ingress's `X-Request-Id` when it is plain, else one `guard` makes.
pub const REQUEST_ID: &str = "x-request-id";

pub use crate::audit::sink::new_id;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

impl AuthState {
    /// A record of `action` with `outcome`, from the client of `headers`.
    pub fn audit_record(&self, action: Action, outcome: Outcome, headers: &HeaderMap) -> Record {
        let client = ClientInfo {
            address: header(headers, CLIENT_HEADER).map(str::to_owned),
            user_agent: header(headers, "user-agent").map(record::user_agent),
        };
        let request = header(headers, REQUEST_ID).and_then(record::request_id);
        Record::new(action, outcome, self.clock.now(), new_id()).from(client, request)
    }

    /// Sends `record` to the trail (never waits).
    pub fn audit(&self, record: Record) {
        self.auditor.record(record);
    }
}

/// Who `p` is, as an actor.
pub fn actor(p: &Principal) -> Actor {
    Actor {
        account_id: Some(p.account.id.clone()),
        login: Some(p.account.login.clone()),
        organisation: Some(p.membership.org_name()),
        via: Some(match p.via {
            Authenticated::Session { .. } => Via::Session,
            Authenticated::Bearer => Via::ApiKey,
            Authenticated::Token { .. } => Via::Oidc,
        }),
        name: None,
    }
}

/// A person signing in or acting on their own account (no session yet).
pub fn person(account: &Account, organisation: Option<String>) -> Actor {
    Actor {
        account_id: Some(account.id.clone()),
        login: Some(account.login.clone()),
        organisation,
        via: Some(Via::Session),
        name: None,
    }
}

/// An account as a target.
pub fn account_target(account: &Account) -> Target {
    Target {
        kind: Some("Account"),
        account_id: Some(account.id.clone()),
        login: Some(account.login.clone()),
        ..Target::default()
    }
}

/// A login that may not exist (a failed sign-in) as a target.
pub fn login_target(login: &str) -> Target {
    Target {
        kind: Some("Account"),
        login: Some(login.chars().take(320).collect()),
        ..Target::default()
    }
}

/// A User as a target.
pub fn user_target(u: &User) -> Target {
    Target {
        kind: Some("User"),
        namespace: u.metadata.namespace.clone(),
        name: u.metadata.name.clone(),
        account_id: u.status.as_ref().and_then(|s| s.account_id.clone()),
        login: Some(u.spec.login.clone()),
    }
}
