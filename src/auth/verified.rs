//! Tokens this process has already verified. A front end sends the same
//! token with every request until it expires, so checking its signature and
//! claims once is enough: afterwards only what can change is checked again —
//! the clock against `exp`, and for a JWKS token whether the key that
//! verified it is still the one the JWKS publishes (a key rotated out stops
//! verifying its tokens on the next refresh, cached or not).
//!
//! Only successful verifications are remembered; a rejected token pays the
//! full check (and the client address's rate-limit budget) every time.
//! Entries are found by a hash of the token keyed per process (foldhash:
//! ~90 instructions for a 300-byte token where SipHash takes several
//! hundred) and then compared in constant time, so timing reveals nothing
//! about tokens other clients sent.
//! Written by hand rather than with a caching crate: it is one map behind a
//! lock with a size budget, and the entries need these checks on every hit.

use std::{
    collections::HashMap,
    hash::BuildHasher,
    sync::{Arc, RwLock},
};

use foldhash::fast::RandomState;

use subtle::ConstantTimeEq;

use super::jwks::PublicKey;
use crate::domain::Claims;

/// Tokens longer than this are verified every time (Better Auth's are well
/// under 2 KiB); it keeps a few odd clients from filling the budget.
const MAX_CACHED_TOKEN_BYTES: usize = 8 * 1024;
/// Entries and token bytes held at most (about 4 MiB): when either would be
/// exceeded, expired entries are dropped, and if that is not enough, all.
const MAX_ENTRIES: usize = 10_000;
const MAX_TOKEN_BYTES_HELD: usize = 4 * 1024 * 1024;

/// The JWKS key that verified a token, to recheck on every hit.
#[derive(Clone)]
pub struct VerifiedBy {
    pub kid: String,
    pub key: Arc<PublicKey>,
}

struct Entry {
    token: Box<str>,
    identity: Claims,
    /// `exp` plus the leeway: the first instant (Unix seconds) the token is
    /// refused.
    refused_from: f64,
    key: Option<VerifiedBy>,
}

/// A bounded map from token to the identity its verification produced.
#[derive(Default)]
pub struct VerifiedTokens {
    hasher: RandomState,
    state: RwLock<State>,
}

#[derive(Default)]
struct State {
    entries: HashMap<u64, Entry>,
    token_bytes: usize,
}

/// What a hit returns: the identity, and the key to recheck, if any.
pub type Hit = (Claims, Option<VerifiedBy>, f64);

impl VerifiedTokens {
    /// The identity `token` was verified to carry, if it was and has not
    /// expired by `now`. The caller still checks the returned key.
    pub fn get(&self, token: &str, now: f64) -> Option<Hit> {
        let hash = self.hasher.hash_one(token);
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        let entry = state.entries.get(&hash)?;
        if !same_bytes(entry.token.as_bytes(), token.as_bytes()) || now >= entry.refused_from {
            return None;
        }
        Some((
            entry.identity.clone(),
            entry.key.clone(),
            entry.refused_from,
        ))
    }

    /// Remembers a token that passed every check.
    pub fn insert(
        &self,
        token: &str,
        identity: &Claims,
        refused_from: f64,
        key: Option<VerifiedBy>,
        now: f64,
    ) {
        if token.len() > MAX_CACHED_TOKEN_BYTES {
            return;
        }
        let hash = self.hasher.hash_one(token);
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        if state.entries.len() >= MAX_ENTRIES
            || state.token_bytes + token.len() > MAX_TOKEN_BYTES_HELD
        {
            state.entries.retain(|_, e| e.refused_from > now);
            state.token_bytes = state.entries.values().map(|e| e.token.len()).sum();
            if state.entries.len() >= MAX_ENTRIES
                || state.token_bytes + token.len() > MAX_TOKEN_BYTES_HELD
            {
                state.entries.clear();
                state.token_bytes = 0;
            }
        }
        let entry = Entry {
            token: token.into(),
            identity: identity.clone(),
            refused_from,
            key,
        };
        state.token_bytes += token.len();
        if let Some(old) = state.entries.insert(hash, entry) {
            state.token_bytes -= old.token.len();
        }
    }

    /// Forgets `token` (its key is gone), so the next request verifies it.
    pub fn remove(&self, token: &str) {
        let hash = self.hasher.hash_one(token);
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = state.entries.remove(&hash) {
            state.token_bytes -= old.token.len();
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.state.read().map(|s| s.entries.len()).unwrap_or(0)
    }
}

/// Equality whose time depends only on the length: eight bytes at a time,
/// differences accumulated without branching, one constant-time check at
/// the end (`subtle`'s byte-wise `ct_eq` cost ~1,400 instructions for a
/// 300-byte token).
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let word = |chunk: &[u8]| {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        u64::from_ne_bytes(w)
    };
    let (wa, wb) = (a.chunks_exact(8), b.chunks_exact(8));
    let mut diff = wa
        .remainder()
        .iter()
        .zip(wb.remainder())
        .fold(0u64, |d, (x, y)| d | u64::from(x ^ y));
    for (x, y) in wa.zip(wb) {
        diff |= word(x) ^ word(y);
    }
    bool::from(diff.ct_eq(&0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(sub: &str) -> Claims {
        Claims {
            sub: sub.into(),
            email: None,
            name: None,
        }
    }

    #[test]
    fn same_bytes_compares_every_byte() {
        for len in [0, 1, 7, 8, 9, 16, 23, 300] {
            let a: Vec<u8> = (0..len).map(|i| i as u8).collect();
            assert!(same_bytes(&a, &a.clone()));
            for i in 0..len {
                let mut b = a.clone();
                b[i] ^= 0x80;
                assert!(!same_bytes(&a, &b), "len {len}, byte {i}");
            }
            assert!(!same_bytes(&a, &[a.as_slice(), &[0]].concat()));
        }
    }

    #[test]
    fn a_remembered_token_is_found_until_it_expires() {
        let cache = VerifiedTokens::default();
        cache.insert("a.b.c", &who("u1"), 100.0, None, 10.0);
        assert_eq!(cache.get("a.b.c", 99.9).map(|h| h.0.sub), Some("u1".into()));
        assert!(cache.get("a.b.c", 100.0).is_none());
        assert!(cache.get("a.b.d", 50.0).is_none());
        assert!(cache.get("a.b.", 50.0).is_none());
        cache.remove("a.b.c");
        assert!(cache.get("a.b.c", 50.0).is_none());
    }

    #[test]
    fn the_budget_drops_expired_entries_first_then_everything() {
        let cache = VerifiedTokens::default();
        for i in 0..MAX_ENTRIES {
            // Half of them expired by t = 50.
            let until = if i % 2 == 0 { 40.0 } else { 1000.0 };
            cache.insert(&format!("t{i}"), &who("u"), until, None, 10.0);
        }
        assert_eq!(cache.len(), MAX_ENTRIES);
        cache.insert("fresh", &who("u"), 1000.0, None, 50.0);
        assert_eq!(cache.len(), MAX_ENTRIES / 2 + 1);
        assert!(cache.get("t1", 50.0).is_some());
        assert!(cache.get("fresh", 50.0).is_some());
        // Now nothing has expired: a full map starts over.
        for i in 0..MAX_ENTRIES {
            cache.insert(&format!("n{i}"), &who("u"), 1000.0, None, 50.0);
        }
        assert!(cache.len() <= MAX_ENTRIES);
        cache.insert(
            &"x".repeat(MAX_CACHED_TOKEN_BYTES + 1),
            &who("u"),
            1e9,
            None,
            50.0,
        );
        assert!(
            cache
                .get(&"x".repeat(MAX_CACHED_TOKEN_BYTES + 1), 50.0)
                .is_none()
        );
    }

    #[test]
    fn the_byte_budget_holds() {
        let cache = VerifiedTokens::default();
        let big = MAX_CACHED_TOKEN_BYTES;
        for i in 0..(MAX_TOKEN_BYTES_HELD / big + 10) {
            let token = format!("{i:0>width$}", width = big);
            cache.insert(&token, &who("u"), 1e9, None, 0.0);
        }
        let held = cache.state.read().unwrap().token_bytes;
        assert!(held <= MAX_TOKEN_BYTES_HELD, "{held}");
        let counted: usize = cache
            .state
            .read()
            .unwrap()
            .entries
            .values()
            .map(|e| e.token.len())
            .sum();
        assert_eq!(held, counted);
    }
}
