//! Users by the account they concern: the index that turns an account change into the Users
//! to look at again, in a few map lookups instead of a pass over every User.

use kube::runtime::reflector::ObjectRef;
use usher_crds::User;

use crate::runtime::cache::{Cache, Entry, key_of, version_of};

/// What the index keeps of a User: where it is, its login and the account it recorded.
pub struct Member {
    key: String,
    version: Option<u64>,
    login: String,
    account_id: Option<String>,
}

impl Entry for Member {
    fn key(&self) -> String {
        self.key.clone()
    }
    fn version(&self) -> Option<u64> {
        self.version
    }
}

fn member(user: User) -> Member {
    Member {
        key: key_of(&user),
        version: version_of(&user),
        account_id: user.status.and_then(|s| s.account_id),
        login: user.spec.login,
    }
}

fn by_login(login: &str) -> String {
    format!("login:{login}")
}

fn by_account(id: &str) -> String {
    format!("account:{id}")
}

fn index(m: &Member) -> Vec<String> {
    let mut keys = vec![by_login(&m.login)];
    keys.extend(m.account_id.as_deref().map(by_account));
    keys
}

/// Users by login and by recorded account id.
pub type Members = Cache<User, Member>;

/// An empty index (fill it with [`Cache::feed`] from the Users' watch).
pub fn members() -> Members {
    Cache::mapped(member, index)
}

/// The Users of account `id` with `login`: those that recorded it, and those with its login
/// (canonical, as the webhook keeps it), each once.
pub fn users_of(members: &Members, id: &str, login: &str) -> Vec<ObjectRef<User>> {
    let mut keys: Vec<String> = members
        .find(&by_login(login))
        .into_iter()
        .chain(members.find(&by_account(id)))
        .map(|m| m.key.clone())
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys.iter()
        .filter_map(|k| k.split_once('/'))
        .map(|(ns, name)| ObjectRef::new(name).within(ns))
        .collect()
}

#[cfg(test)]
mod tests {
    use kube::runtime::watcher::Event;
    use usher_crds::{UserSpec, UserStatus};

    use super::*;

    fn user(ns: &str, name: &str, version: u64, login: &str, account: Option<&str>) -> User {
        let mut u = User::new(
            name,
            UserSpec {
                login: login.into(),
                ..Default::default()
            },
        );
        u.metadata.namespace = Some(ns.into());
        u.metadata.resource_version = Some(version.to_string());
        u.status = account.map(|id| UserStatus {
            account_id: Some(id.into()),
            ..Default::default()
        });
        u
    }

    fn names(refs: Vec<ObjectRef<User>>) -> Vec<String> {
        refs.iter()
            .map(|r| format!("{}/{}", r.namespace.as_deref().unwrap_or_default(), r.name))
            .collect()
    }

    #[test]
    fn an_account_finds_its_users_by_login_and_by_record_and_forgets_a_changed_login() {
        let members = members();
        let mut feed = members.feed();
        for event in [
            Event::Init,
            Event::InitApply(user("a", "ann", 1, "ann@example.com", Some("acc-ann"))),
            Event::InitApply(user("b", "ann", 2, "ann@example.com", None)),
            Event::InitApply(user("a", "bob", 3, "bob@example.com", None)),
            Event::InitDone,
        ] {
            feed.apply(event, &|_| ());
        }
        assert_eq!(
            names(users_of(&members, "acc-ann", "ann@example.com")),
            ["a/ann", "b/ann"]
        );
        // a/ann moves to a new login: found by the account it recorded, not by the old login.
        feed.apply(
            Event::Apply(user("a", "ann", 4, "anne@example.com", Some("acc-ann"))),
            &|_| (),
        );
        assert_eq!(
            names(users_of(&members, "acc-x", "ann@example.com")),
            ["b/ann"]
        );
        assert_eq!(
            names(users_of(&members, "acc-ann", "ann@example.com")),
            ["a/ann", "b/ann"]
        );
        feed.apply(
            Event::Delete(user("b", "ann", 5, "ann@example.com", None)),
            &|_| (),
        );
        assert!(users_of(&members, "acc-x", "ann@example.com").is_empty());
        assert_eq!(
            names(users_of(&members, "acc-y", "bob@example.com")),
            ["a/bob"]
        );
    }
}
