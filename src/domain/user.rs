//! Who a request acts for, as the domain knows it: the claims of a verified
//! token. Verification is `auth`'s; storage and handlers only need the
//! result, so it lives here and neither of them depends on `auth`.

/// Who a verified token speaks for, and the profile claims it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The user id (`sub`, or `id` when `sub` is absent).
    pub sub: String,
    /// The `email` claim, when it is a usable string.
    pub email: Option<String>,
    /// The `name` claim, when it is a usable string.
    pub name: Option<String>,
}
