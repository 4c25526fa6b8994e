//! Memory of which users already exist with which claims, so that a known user
//! with unchanged claims costs no database write (API.md: "a known user with
//! unchanged claims costs no database write").

use std::{collections::HashMap, sync::Mutex};

use crate::domain::Claims;

/// Stored `(email, name)` as last written, per user id.
type Profile = (Option<String>, Option<String>);

/// A bounded map from user id to the profile last synchronised to the
/// database. When it is full it is cleared: the cost is one idempotent upsert
/// per active user, and memory stays bounded whatever the number of users.
pub struct KnownUsers {
    map: Mutex<HashMap<String, Profile>>,
    capacity: usize,
}

impl KnownUsers {
    /// An empty memory holding at most `capacity` users.
    pub fn new(capacity: usize) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// True when the database is known to hold this user with every claim the
    /// token carries (absent claims never change the row, so they match).
    pub fn is_current(&self, who: &Claims) -> bool {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&who.sub).is_some_and(|(email, name)| {
            (who.email.is_none() || who.email == *email)
                && (who.name.is_none() || who.name == *name)
        })
    }

    /// Records that the database now holds the token's claims for this user.
    pub fn remember(&self, who: &Claims) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= self.capacity && !map.contains_key(&who.sub) {
            map.clear();
        }
        let entry = map.entry(who.sub.clone()).or_default();
        if who.email.is_some() {
            entry.0.clone_from(&who.email);
        }
        if who.name.is_some() {
            entry.1.clone_from(&who.name);
        }
    }

    /// Forgets a user, after `DELETE /me`, so the next request recreates it.
    pub fn forget(&self, sub: &str) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(sub);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(email: Option<&str>, name: Option<&str>) -> Claims {
        Claims {
            sub: "u1".into(),
            email: email.map(Into::into),
            name: name.map(Into::into),
        }
    }

    #[test]
    fn absent_claims_match_and_changed_claims_do_not() {
        let known = KnownUsers::new(10);
        assert!(!known.is_current(&who(None, None)));
        known.remember(&who(Some("a@x"), Some("A")));
        assert!(known.is_current(&who(None, None)));
        assert!(known.is_current(&who(Some("a@x"), None)));
        assert!(!known.is_current(&who(Some("b@x"), None)));
        known.remember(&who(None, Some("B")));
        assert!(known.is_current(&who(Some("a@x"), Some("B"))));
        known.forget("u1");
        assert!(!known.is_current(&who(None, None)));
    }

    #[test]
    fn memory_is_bounded() {
        let known = KnownUsers::new(2);
        for i in 0..5 {
            known.remember(&Claims {
                sub: format!("u{i}"),
                email: None,
                name: None,
            });
        }
        assert!(known.map.lock().unwrap().len() <= 2);
    }
}
