//! Authentication: bearer tokens verified into the domain's `Claims`, and
//! the memory of which users are already stored with which claims. Nothing
//! here knows HTTP; the `AuthUser` extractor, which reads the header and
//! turns an [`AuthError`] into a 401 or 503, is `api::auth_user`.

mod jwks;
mod known_users;
mod token;
mod verified;

pub use jwks::{Jwks, KeyLookupError, refresh_forever};
pub use known_users::KnownUsers;
pub use token::{ClaimRules, Verifier, mint_hs256};

/// Why a token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The token was presented but fails verification. The text says why
    /// (it is also the `reason` label of the failure metric) and never
    /// quotes the token.
    #[error("unauthorized: {0}")]
    InvalidToken(&'static str),
    /// An asymmetric token whose key set cannot be fetched right now: not
    /// the client's fault, so it is retried rather than refused.
    #[error("service unavailable: the JWKS cannot be fetched")]
    KeysUnavailable,
}
