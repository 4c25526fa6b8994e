//! List query-string parsing on arbitrary input: a 400 or a valid query,
//! never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tasks_api::domain::listing::{COMPAT_LIMITS, ListParams, ListQuery, V1_LIMITS};

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(params) = ListParams::from_query(Some(raw)) else {
        return;
    };
    for (limits, compat) in [(V1_LIMITS, false), (COMPAT_LIMITS, true)] {
        if let Ok(query) = ListQuery::parse(params.clone(), limits, compat) {
            assert!((1..=limits.max).contains(&query.limit));
            assert!(!(query.cursor.is_some() && query.offset.is_some()));
        }
    }
});
