//! Unit tests of `input.rs`: every field checked, every bad one reported.

use super::*;
use serde_json::json;

fn input(body: Value) -> Result<TaskInput, Invalid> {
    TaskInput::try_from(serde_json::from_value::<RawTask>(body).unwrap())
}

fn patch(body: Value) -> Result<TaskPatch, Invalid> {
    TaskPatch::try_from(serde_json::from_value::<RawTask>(body).unwrap())
}

fn fields(invalid: &Invalid) -> Vec<&str> {
    invalid.errors().iter().map(|e| e.field.as_str()).collect()
}

#[test]
fn title_counts_scalar_values_after_trimming() {
    let ok = "é".repeat(200);
    let title = format!("  {ok}\u{3000}");
    assert_eq!(input(json!({"title": title})).unwrap().title, ok);
    assert!(input(json!({"title": "é".repeat(201)})).is_err());
    assert!(input(json!({"title": " \t\u{2003} "})).is_err());
}

#[test]
fn tag_checking_stops_at_the_first_tag_past_the_limit() {
    // 21 distinct tags, then items that would each be an error: they are
    // never read, because the 21st distinct tag already decides the 422.
    let mut tags: Vec<Value> = (0..=TAGS_MAX).map(|i| json!(format!("t{i}"))).collect();
    tags.extend([json!(1), json!(""), json!("x".repeat(TAG_MAX + 1))]);
    let expected = [FieldError::new(
        "tags",
        "must hold at most 20 distinct tags",
    )];
    let errors = input(json!({"title": "t", "tags": tags})).unwrap_err();
    assert_eq!(errors.errors(), expected);
    let errors = patch(json!({"tags": tags})).unwrap_err();
    assert_eq!(errors.errors(), expected);
    // Errors of items before the stop are kept.
    tags.insert(0, json!(7));
    let errors = patch(json!({"tags": tags})).unwrap_err();
    assert_eq!(fields(&errors), ["tags[0]", "tags"]);
}

#[test]
fn other_keys_come_first_sorted_then_fields_in_fixed_order() {
    let body = br#"{"version": 1, "title": "", "owner": 2, "tags": 3, "id": 4, "owner": 5}"#;
    let raw: RawTask = serde_json::from_slice(body).unwrap();
    let errors = TaskInput::try_from(raw).unwrap_err();
    assert_eq!(fields(&errors), ["id", "owner", "version", "title", "tags"]);
    assert_eq!(
        errors.errors()[0].message,
        "is set by the server and cannot be written"
    );
    assert_eq!(errors.errors()[1].message, "is not a task field");
}

#[test]
fn a_repeated_key_keeps_its_last_value() {
    let raw: RawTask = serde_json::from_slice(br#"{"title": 5, "title": "b"}"#).unwrap();
    assert_eq!(TaskInput::try_from(raw).unwrap().title, "b");
}

#[test]
fn any_json_value_reads_and_a_non_object_is_one_error() {
    for body in ["[1, [2], {}]", "\"t\"", "3", "-3", "1.5", "true", "null"] {
        let raw: RawTask = serde_json::from_str(body).unwrap();
        for errors in [
            TaskInput::try_from(raw.clone()).unwrap_err(),
            TaskPatch::try_from(raw).unwrap_err(),
        ] {
            assert_eq!(errors.to_string(), "body must be a JSON object", "{body}");
        }
    }
    assert!(serde_json::from_str::<RawTask>("[1,").is_err());
    // Nesting past serde_json's limit is invalid JSON, here as in a field.
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    for body in [deep.clone(), format!(r#"{{"x": {deep}}}"#)] {
        assert!(serde_json::from_str::<RawTask>(&body).is_err());
    }
    assert!(serde_json::from_slice::<RawTask>(b"{\"x\": \"\xff\"}").is_err());
}

#[test]
fn task_inputs_deserialize_with_the_api_detail_as_error() {
    let err = serde_json::from_value::<TaskInput>(json!({"title": "", "x": 1})).unwrap_err();
    assert_eq!(
        err.to_string(),
        "x is not a task field; title must be 1-200 characters"
    );
    let patch: TaskPatch = serde_json::from_value(json!({"completed": true})).unwrap();
    assert_eq!(patch.completed, Some(true));
}

#[test]
fn patch_allows_null_only_for_nullable_fields() {
    let cleared = patch(json!({"description": null, "due_date": null})).unwrap();
    assert_eq!(cleared.description, Some(None));
    assert_eq!(cleared.due_date, Some(None));
    assert!(patch(json!({"title": null})).is_err());
    assert!(patch(json!({"tags": null})).is_err());
    assert_eq!(patch(json!({})).unwrap(), TaskPatch::default());
}
