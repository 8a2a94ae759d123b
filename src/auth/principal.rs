//! Who a connection is and what it may do, once a credential has been accepted.
//!
//! The permission policy lives here in one place so the server asks questions
//! (`can_read(session)`, `can_publish()`, `is_admin()`) instead of testing bits:
//! - `admin` implies `read` and `publish` and reads every session regardless of scope;
//! - `read` allows a session only when the scope allows it;
//! - `publish` is not limited by the scope (SPEC §8: `sessions` are what a token may *read*).

use super::jwt::Claims;
use super::permissions::Permissions;
use super::scope::SessionScope;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// JWT `sub`, or the API key's `name`.
    pub subject: Option<String>,
    pub permissions: Permissions,
    pub scope: SessionScope,
    /// First Unix second at which the credential is no longer accepted (`exp` + leeway);
    /// `None` for API keys and when auth is disabled.
    pub expires_at: Option<i64>,
}

impl Principal {
    /// Everything allowed: what every connection is when auth is disabled.
    pub fn anonymous_full() -> Principal {
        Principal {
            subject: None,
            permissions: Permissions::all(),
            scope: SessionScope::all(),
            expires_at: None,
        }
    }

    /// From verified claims. An absent `sessions` claim means every session for an admin
    /// token and *no* session otherwise: a token must name what it may read, so a token
    /// minted for publishing can't read by accident.
    pub fn from_claims(claims: Claims, leeway_secs: u64) -> Principal {
        let scope = match &claims.sessions {
            Some(patterns) => SessionScope::from_patterns(patterns),
            None if claims.permissions.contains(Permissions::ADMIN) => SessionScope::all(),
            None => SessionScope::none(),
        };
        let leeway = i64::try_from(leeway_secs).unwrap_or(i64::MAX);
        Principal {
            subject: claims.sub,
            permissions: claims.permissions,
            scope,
            expires_at: claims.exp.map(|e| e.saturating_add(leeway)),
        }
    }

    pub fn is_admin(&self) -> bool {
        self.permissions.contains(Permissions::ADMIN)
    }

    /// Subscribe, history, time travel, breakpoints and `/v1/history` on `session`.
    pub fn can_read(&self, session: &str) -> bool {
        self.is_admin()
            || (self.permissions.contains(Permissions::READ) && self.scope.allows(session))
    }

    /// Read permission at all (some session may be readable), e.g. to accept a
    /// subscription to a pattern before individual sessions are checked.
    pub fn can_read_any(&self) -> bool {
        self.is_admin() || (self.permissions.contains(Permissions::READ) && !self.scope.is_none())
    }

    /// `publish` messages and `POST /v1/events`.
    pub fn can_publish(&self) -> bool {
        self.is_admin() || self.permissions.contains(Permissions::PUBLISH)
    }

    /// True once the credential has expired and the connection must re-`auth` or close.
    pub fn is_expired(&self, now_secs: i64) -> bool {
        self.expires_at.is_some_and(|at| now_secs >= at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(perms: Permissions, sessions: Option<&[&str]>) -> Principal {
        let claims = Claims {
            permissions: perms,
            sessions: sessions.map(|s| s.iter().map(|x| x.to_string()).collect()),
            exp: Some(100),
            ..Claims::default()
        };
        Principal::from_claims(claims, 5)
    }

    #[test]
    fn permission_table() {
        use Permissions as P;
        // (permissions, sessions claim, session, can_read, can_publish, is_admin)
        type Case<'a> = (P, Option<&'a [&'a str]>, &'a str, bool, bool, bool);
        let cases: &[Case<'_>] = &[
            (P::READ, Some(&["s-*"]), "s-1", true, false, false),
            (P::READ, Some(&["s-*"]), "other", false, false, false),
            (P::READ, Some(&["*"]), "anything", true, false, false),
            (P::READ, Some(&["exact"]), "exact", true, false, false),
            (P::READ, None, "s-1", false, false, false),
            (P::PUBLISH, Some(&["*"]), "s-1", false, true, false),
            (P::PUBLISH, None, "s-1", false, true, false),
            (P::ADMIN, None, "s-1", true, true, true),
            (P::ADMIN, Some(&["x"]), "s-1", true, true, true),
            (P::empty(), Some(&["*"]), "s-1", false, false, false),
        ];
        for (i, (perms, sessions, session, read, publish, admin)) in cases.iter().enumerate() {
            let p = principal(*perms, *sessions);
            assert_eq!(
                (p.can_read(session), p.can_publish(), p.is_admin()),
                (*read, *publish, *admin),
                "case {i}"
            );
        }
    }

    #[test]
    fn expiry_includes_leeway() {
        let p = principal(Permissions::READ, None);
        assert_eq!(p.expires_at, Some(105));
        assert!(!p.is_expired(104));
        assert!(p.is_expired(105));
        assert!(!Principal::anonymous_full().is_expired(i64::MAX));
        assert!(Principal::anonymous_full().can_read("x"));
    }
}
