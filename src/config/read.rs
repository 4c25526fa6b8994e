//! How one setting is read from the environment: empty counts as unset,
//! and a bad value becomes a sentence in the list of problems (start-up
//! reports them all at once) while its default stands in.

/// Reads a variable, treating an empty value as unset (as `.env` files and
/// shells commonly produce `VAR=`).
pub(super) fn var(lookup: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    lookup(name)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

pub(super) fn parse_num<T: std::str::FromStr>(
    lookup: &dyn Fn(&str) -> Option<String>,
    name: &str,
    default: T,
    problems: &mut Vec<String>,
) -> T {
    match var(lookup, name) {
        None => default,
        Some(raw) => raw.parse().unwrap_or_else(|_| {
            problems.push(format!("{name} must be a whole number, got {raw:?}."));
            default
        }),
    }
}

/// A count or duration that must be at least 1 (0 would turn the feature
/// it sizes into a refusal of every request, or a busy loop).
pub(super) fn positive<T: std::str::FromStr + PartialOrd + From<u8>>(
    lookup: &dyn Fn(&str) -> Option<String>,
    name: &str,
    default: T,
    problems: &mut Vec<String>,
) -> T {
    let value = parse_num(lookup, name, default, problems);
    if value < T::from(1) {
        problems.push(format!("{name} must be at least 1."));
    }
    value
}

/// A setting that is one of two words: `false` for the first (also the
/// default), `true` for the second.
pub(super) fn either(
    lookup: &dyn Fn(&str) -> Option<String>,
    name: &str,
    [no, yes]: [&str; 2],
    problems: &mut Vec<String>,
) -> bool {
    match var(lookup, name) {
        None => false,
        Some(value) if value == no => false,
        Some(value) if value == yes => true,
        Some(other) => {
            problems.push(format!("{name} must be {no} or {yes}, got {other:?}."));
            false
        }
    }
}
