//! Task bodies (POST/PUT and PATCH) on arbitrary JSON: validated values
//! always satisfy the contract's limits, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tasks_api::domain::task::{DESCRIPTION_MAX, TAG_MAX, TAGS_MAX, TITLE_MAX, parse_input, parse_patch};

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Ok(input) = parse_input(&body) {
        let n = input.title.chars().count();
        assert!((1..=TITLE_MAX).contains(&n));
        assert_eq!(input.title.trim(), input.title);
        assert!(input.description.as_ref().is_none_or(|d| d.chars().count() <= DESCRIPTION_MAX));
        assert!(input.tags.len() <= TAGS_MAX);
        for tag in &input.tags {
            assert!((1..=TAG_MAX).contains(&tag.chars().count()));
            assert!(!tag.contains('\0'));
        }
        assert!(!input.title.contains('\0'));
    }
    if let Ok(patch) = parse_patch(&body) {
        if let Some(title) = &patch.title {
            assert!((1..=TITLE_MAX).contains(&title.chars().count()));
        }
        if let Some(tags) = &patch.tags {
            assert!(tags.len() <= TAGS_MAX);
        }
    }
});
