//! The three permissions a credential can carry, as a tiny hand-written bit set.
//!
//! Kept as a `Copy` value (one byte) so a `Principal` check on the hot path is a mask test.
//! The names are the wire/config spelling (`read`, `publish`, `admin`), case-sensitive,
//! because a permission that silently matched `READ` or `Admin ` would be a policy surprise.

use std::fmt;
use std::ops::{BitOr, BitOrAssign};

/// A set of permissions. `ADMIN` does not imply the others here: the implication is a
/// policy of [`crate::auth::Principal`], so this type stays a plain set.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Permissions(u8);

impl Permissions {
    pub const READ: Permissions = Permissions(1);
    pub const PUBLISH: Permissions = Permissions(2);
    pub const ADMIN: Permissions = Permissions(4);

    const NAMES: [(&'static str, Permissions); 3] = [
        ("read", Self::READ),
        ("publish", Self::PUBLISH),
        ("admin", Self::ADMIN),
    ];

    pub const fn empty() -> Permissions {
        Permissions(0)
    }

    pub const fn all() -> Permissions {
        Permissions(Self::READ.0 | Self::PUBLISH.0 | Self::ADMIN.0)
    }

    pub const fn bits(self) -> u8 {
        self.0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// True when every permission in `other` is in `self`.
    pub const fn contains(self, other: Permissions) -> bool {
        self.0 & other.0 == other.0
    }

    /// The permission spelled `name`, if it is one of `read`, `publish`, `admin`.
    pub fn from_name(name: &str) -> Option<Permissions> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, p)| *p)
    }

    /// Parses a list of names; the first unknown one is returned as the error so the
    /// caller can name it (config errors) or refuse the token (JWT claims).
    pub fn from_names<'a, I>(names: I) -> Result<Permissions, &'a str>
    where
        I: IntoIterator<Item = &'a str>,
    {
        let mut set = Permissions::empty();
        for name in names {
            set |= Permissions::from_name(name).ok_or(name)?;
        }
        Ok(set)
    }

    /// The names in the set, in the fixed order read, publish, admin.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMES
            .into_iter()
            .filter(move |(_, p)| self.contains(*p))
            .map(|(n, _)| n)
    }
}

impl BitOr for Permissions {
    type Output = Permissions;
    fn bitor(self, rhs: Permissions) -> Permissions {
        Permissions(self.0 | rhs.0)
    }
}

impl BitOrAssign for Permissions {
    fn bitor_assign(&mut self, rhs: Permissions) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let p = Permissions::from_names(["publish", "read"]).unwrap();
        assert_eq!(p, Permissions::READ | Permissions::PUBLISH);
        assert_eq!(p.names().collect::<Vec<_>>(), ["read", "publish"]);
        assert!(p.contains(Permissions::READ));
        assert!(!p.contains(Permissions::ADMIN));
        assert_eq!(Permissions::all().names().count(), 3);
        assert!(Permissions::empty().is_empty());
    }

    #[test]
    fn unknown_or_miscased_names_are_refused() {
        for bad in ["READ", "Admin", " read", "write", ""] {
            assert_eq!(Permissions::from_names(["read", bad]), Err(bad));
        }
    }

    #[test]
    fn debug_lists_names() {
        assert_eq!(
            format!("{:?}", Permissions::READ | Permissions::ADMIN),
            r#"{"read", "admin"}"#
        );
    }
}
