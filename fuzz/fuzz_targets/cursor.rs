//! Cursor decoding on arbitrary input: tampered cursors are refused, never
//! a panic, never a position the key did not sign.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tasks_api::domain::listing::{CursorKey, ListParams, ListQuery, V1_LIMITS};

fuzz_target!(|data: &[u8]| {
    let Ok(cursor) = std::str::from_utf8(data) else {
        return;
    };
    let key = CursorKey::derive(b"fuzz-secret");
    for sort in ["-created_at", "due_date", "-due_date", "priority", "title"] {
        let params = ListParams { sort: Some(sort.to_owned()), ..ListParams::default() };
        let query = ListQuery::parse(params, V1_LIMITS, false)
            .unwrap_or_else(|_| unreachable!("valid sort"));
        // The fuzzer cannot forge the MAC: any success is a bug.
        assert!(key.decode("user", &query, cursor).is_err(), "forged cursor accepted");
    }
});
