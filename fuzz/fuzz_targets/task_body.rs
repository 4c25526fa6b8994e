//! Task bodies (POST/PUT and PATCH) on arbitrary JSON: validated values
//! always satisfy the contract's limits, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tasks_api::domain::input::RawTask;
use tasks_api::domain::task::{DESCRIPTION_MAX, TAG_MAX, TAGS_MAX, TITLE_MAX, TaskInput, TaskPatch};

fuzz_target!(|data: &[u8]| {
    // Every JSON document reads as a `RawTask`; only invalid JSON fails.
    let Ok(body) = serde_json::from_slice::<RawTask>(data) else {
        assert!(serde_json::from_slice::<serde_json::Value>(data).is_err());
        return;
    };
    if let Ok(input) = TaskInput::try_from(body.clone()) {
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
    if let Ok(patch) = TaskPatch::try_from(body) {
        if let Some(title) = &patch.title {
            assert!((1..=TITLE_MAX).contains(&title.chars().count()));
        }
        if let Some(tags) = &patch.tags {
            assert!(tags.len() <= TAGS_MAX);
        }
    }
});
