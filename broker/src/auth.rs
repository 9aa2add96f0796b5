//! Optional access control: users who log in with a password or a token,
//! and what each may do to which topic.
//!
//! Off by default ([`crate::server::start`], or
//! [`crate::server::start_with_auth`] with `None`): every connection may do
//! everything, as in stages 3 to 5, and `LOGIN` answers ok. On, a
//! connection must log in before anything else (every other command is
//! answered `UNAUTHENTICATED`); then:
//! - produce needs the topic in the user's `produce` list (or `"*"`);
//! - poll, poll by position, store and get offsets need it in `consume`;
//!   so do a consumer group's join, poll and commit (the group's topic),
//!   and its heartbeat and leave (checked against the group's topic);
//! - creating and deleting streams and topics needs `admin`, and an admin
//!   may also produce to and consume from every topic;
//! - listing, describing and `stats` need only a login (describing a
//!   group shows only the offsets of topics the user may consume from).
//!
//! Secrets are compared in constant time ([`constant_time_eq`]): the time a
//! wrong password takes says nothing of how much of it was right. They are
//! never logged: the `Debug` of the config prints `<redacted>`.
//!
//! Deliberate simplifications against a production system: passwords and
//! tokens are stored as given in the config file (a production broker keeps
//! salted hashes, e.g. argon2, and hashes the attempt); the wire is plain
//! TCP, so a password crosses it in the clear (TLS is the fix); a login
//! lasts as long as its connection, and changing a user needs a restart.

use std::fmt;

use serde::Deserialize;

use crate::api;
use stage6_broker::ConfigError;

/// Who may connect, and what each may do.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The users.
    #[serde(default)]
    pub users: Vec<UserConfig>,
    /// How many failed logins are allowed: from the `[server]` settings,
    /// not from this section (see [`crate::session`]).
    #[serde(skip)]
    pub login: crate::session::LoginLimits,
}

/// One user.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// The name it logs in with.
    pub name: String,
    /// Its password, to log in with its name.
    #[serde(default)]
    pub password: Option<String>,
    /// A token, to log in with alone.
    #[serde(default)]
    pub token: Option<String>,
    /// May create and delete streams and topics, and produce and consume
    /// everywhere.
    #[serde(default)]
    pub admin: bool,
    /// Topic names it may produce to; `"*"` for every topic.
    #[serde(default)]
    pub produce: Vec<String>,
    /// Topic names it may consume from (poll, offsets); `"*"` for every topic.
    #[serde(default)]
    pub consume: Vec<String>,
}

/// Prints a secret's presence, never its value.
fn redacted(secret: &Option<String>) -> &'static str {
    match secret {
        Some(_) => "Some(<redacted>)",
        None => "None",
    }
}

impl fmt::Debug for UserConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserConfig")
            .field("name", &self.name)
            .field("password", &format_args!("{}", redacted(&self.password)))
            .field("token", &format_args!("{}", redacted(&self.token)))
            .field("admin", &self.admin)
            .field("produce", &self.produce)
            .field("consume", &self.consume)
            .finish()
    }
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("users", &self.users)
            .field("login", &self.login)
            .finish()
    }
}

/// What a connection wants to do, as far as permissions go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<'a> {
    /// Append to the topic named so.
    Produce(&'a str),
    /// Read from, or store offsets in, the topic named so.
    Consume(&'a str),
    /// Create or delete streams and topics.
    Admin,
    /// List, describe, stats: anything a logged-in user may do.
    Read,
}

impl AuthConfig {
    /// Checks the users: plain names, no name twice, a password or a token
    /// each, no empty secret, no token twice.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |reason: String| {
            Err(ConfigError {
                key: "auth.users",
                reason,
            })
        };
        if self.users.is_empty() {
            return fail("access control is on but no user is configured".to_string());
        }
        for (n, user) in self.users.iter().enumerate() {
            if let Err(reason) = api::check_name("user", &user.name) {
                return fail(reason);
            }
            if user.password.is_none() && user.token.is_none() {
                return fail(format!(
                    "user {:?} has neither password nor token",
                    user.name
                ));
            }
            if [&user.password, &user.token]
                .into_iter()
                .any(|secret| secret.as_deref() == Some(""))
            {
                return fail(format!("user {:?} has an empty secret", user.name));
            }
            let earlier = &self.users[..n];
            if earlier.iter().any(|other| other.name == user.name) {
                return fail(format!("user {:?} appears twice", user.name));
            }
            if user.token.is_some() && earlier.iter().any(|other| other.token == user.token) {
                return fail(format!("user {:?} shares a token with another", user.name));
            }
        }
        Ok(())
    }

    /// The user a login names, if its secret is right: by name and password,
    /// or by token. Every user's secret is compared, in constant time, so
    /// the time taken does not say which users exist either.
    pub fn login(&self, login: &api::Login) -> Option<usize> {
        let mut found = None;
        for (n, user) in self.users.iter().enumerate() {
            let by_password = match (&login.username, &login.password, &user.password) {
                (Some(name), Some(given), Some(expected)) => {
                    constant_time_eq(name.as_bytes(), user.name.as_bytes())
                        & constant_time_eq(given.as_bytes(), expected.as_bytes())
                }
                _ => false,
            };
            let by_token = match (&login.token, &user.token) {
                (Some(given), Some(expected)) => {
                    constant_time_eq(given.as_bytes(), expected.as_bytes())
                }
                _ => false,
            };
            if (by_password | by_token) && found.is_none() {
                found = Some(n);
            }
        }
        found
    }

    /// Whether user `user` (from [`AuthConfig::login`]) may do `action`.
    pub fn allows(&self, user: usize, action: Action<'_>) -> bool {
        let Some(user) = self.users.get(user) else {
            return false;
        };
        let listed = |topics: &[String], topic: &str| {
            topics
                .iter()
                .any(|allowed| allowed == "*" || allowed == topic)
        };
        match action {
            Action::Read => true,
            Action::Admin => user.admin,
            Action::Produce(topic) => user.admin || listed(&user.produce, topic),
            Action::Consume(topic) => user.admin || listed(&user.consume, topic),
        }
    }

    /// User `user`'s name, for logs.
    pub fn name(&self, user: usize) -> &str {
        self.users.get(user).map_or("?", |user| user.name.as_str())
    }
}

// ANCHOR: constant_time_eq
/// Whether `a` equals `b`, in a time that depends on their lengths only,
/// never on where they first differ. Rejected: `a == b`, which stops at the
/// first differing byte, so an attacker timing many attempts can find a
/// secret byte by byte.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut difference = u8::from(a.len() != b.len());
    for n in 0..a.len().max(b.len()) {
        let x = a.get(n).copied().unwrap_or(0);
        let y = b.get(n).copied().unwrap_or(0);
        difference |= x ^ y;
    }
    // `black_box` keeps the optimizer from turning the loop into an early exit.
    std::hint::black_box(difference) == 0
}
// ANCHOR_END: constant_time_eq

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn users() -> AuthConfig {
        AuthConfig {
            users: vec![
                UserConfig {
                    name: "root".into(),
                    password: Some("hunter2".into()),
                    admin: true,
                    ..UserConfig::default()
                },
                UserConfig {
                    name: "app".into(),
                    token: Some("t0ken".into()),
                    produce: vec!["orders".into()],
                    consume: vec!["*".into()],
                    ..UserConfig::default()
                },
            ],
            ..AuthConfig::default()
        }
    }

    #[test]
    fn auth_logs_in_by_password_or_token_and_checks_permissions() {
        let auth = users();
        auth.validate().unwrap();
        let by = |username: Option<&str>, password: Option<&str>, token: Option<&str>| {
            auth.login(&api::Login {
                username: username.map(Into::into),
                password: password.map(Into::into),
                token: token.map(Into::into),
            })
        };
        assert_eq!(by(Some("root"), Some("hunter2"), None), Some(0));
        assert_eq!(by(Some("root"), Some("hunter"), None), None);
        assert_eq!(
            by(Some("app"), Some("t0ken"), None),
            None,
            "a token is no password"
        );
        assert_eq!(by(None, None, Some("t0ken")), Some(1));
        assert_eq!(by(None, None, Some("")), None);
        assert!(auth.allows(0, Action::Admin));
        assert!(auth.allows(0, Action::Produce("any")));
        assert!(!auth.allows(1, Action::Admin));
        assert!(auth.allows(1, Action::Produce("orders")));
        assert!(!auth.allows(1, Action::Produce("audit")));
        assert!(auth.allows(1, Action::Consume("audit")));
    }

    #[test]
    fn auth_secrets_never_appear_in_debug_output() {
        let printed = format!("{:?}", users());
        assert!(
            !printed.contains("hunter2") && !printed.contains("t0ken"),
            "{printed}"
        );
        assert!(printed.contains("<redacted>"));
    }

    #[test]
    fn auth_config_refuses_users_that_cannot_work() {
        let mut auth = users();
        auth.users[1].token = None;
        assert!(auth.validate().unwrap_err().reason.contains("neither"));
        let mut auth = users();
        auth.users[1].name = "root".into();
        assert!(auth.validate().is_err());
        assert!(AuthConfig::default().validate().is_err());
    }

    #[test]
    fn auth_compares_secrets_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }
}
