//! The tools' input and output JSON Schemas, made from the utoipa schemas
//! the OpenAPI document uses (`TaskInput`, `TaskPatch`, `Task`, the list
//! parameters), so the field rules an agent is shown are the ones the HTTP
//! API documents and the validators enforce, written once.
//!
//! utoipa rather than schemars: the HTTP types already derive `ToSchema`
//! (with the limits a test pins to the validators' constants); schemars
//! derives would be a second copy of the same rules. utoipa emits OpenAPI
//! 3.1 schemas, which are JSON Schema 2020-12, once their `$ref`s into
//! `#/components/schemas` are inlined (a tool schema must stand alone).

use serde_json::{Map, Value, json};
use utoipa::{IntoParams, ToSchema, openapi::path::ParameterIn};

use crate::domain::{
    listing::ListParams,
    task::{Task, TaskInput, TaskPatch},
};

/// A JSON object.
pub type Object = Map<String, Value>;

/// `T`'s schema as a standalone JSON Schema object, every `$ref` inlined.
pub fn standalone<T: ToSchema>() -> Object {
    let mut named = Vec::new();
    T::schemas(&mut named);
    let defs: Object = named
        .into_iter()
        .filter_map(|(name, schema)| Some((name, serde_json::to_value(schema).ok()?)))
        .collect();
    let mut schema = serde_json::to_value(T::schema()).unwrap_or_else(|_| json!({}));
    inline_refs(&mut schema, &defs, 0);
    match schema {
        Value::Object(map) => map,
        _ => Object::new(),
    }
}

/// Replaces each `{"$ref": "#/components/schemas/X"}` by `X`'s schema
/// (recursively; `depth` stops a cycle, which these types do not have).
fn inline_refs(value: &mut Value, defs: &Object, depth: usize) {
    if depth > 16 {
        return;
    }
    match value {
        Value::Object(map) => {
            let target = map
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
                .and_then(|name| defs.get(name));
            if let Some(target) = target {
                let mut target = target.clone();
                inline_refs(&mut target, defs, depth + 1);
                // Keep what sits beside the `$ref` (a description) unless the
                // target says it itself.
                map.remove("$ref");
                if let Value::Object(target) = target {
                    for (k, v) in target {
                        map.entry(k).or_insert(v);
                    }
                }
                return;
            }
            for v in map.values_mut() {
                inline_refs(v, defs, depth);
            }
        }
        Value::Array(items) => {
            for v in items {
                inline_refs(v, defs, depth);
            }
        }
        _ => {}
    }
}

/// One property of an object schema (`Value::Null` when absent).
fn property(schema: &Object, name: &str) -> Value {
    schema
        .get("properties")
        .and_then(|p| p.get(name))
        .cloned()
        .unwrap_or(Value::Null)
}

/// `schema` with `description` set.
fn described(mut schema: Value, description: &str) -> Value {
    if let Value::Object(map) = &mut schema {
        map.insert("description".to_owned(), Value::from(description));
    }
    schema
}

/// The `task_id` argument: the `id` of `Task`.
fn task_id_schema() -> Value {
    described(
        property(&standalone::<Task>(), "id"),
        "The task's id (`task_id` of add_task, `id` in list_tasks).",
    )
}

/// The optional `user_id` argument: the `user_id` of `Task`.
fn user_id_schema() -> Value {
    described(
        property(&standalone::<Task>(), "user_id"),
        "Optional. The signed-in user's id; any other value fails the call. \
         Leave it out: the user always comes from the bearer token.",
    )
}

/// An object schema of `properties`, `required` ones, nothing else.
fn object(properties: Vec<(&str, Value)>, required: &[&str]) -> Object {
    let properties: Object = properties
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    let mut schema = Object::new();
    schema.insert("type".to_owned(), json!("object"));
    schema.insert("properties".to_owned(), Value::Object(properties));
    schema.insert("required".to_owned(), json!(required));
    schema.insert("additionalProperties".to_owned(), json!(false));
    schema
}

/// `schema`'s properties (less `drop`), plus `extra`, as a closed object
/// that requires `required`.
fn extend(schema: &Object, drop: &[&str], extra: Vec<(&str, Value)>, required: &[&str]) -> Object {
    let mut properties: Vec<(&str, Value)> = schema
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(k, _)| !drop.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    properties.extend(extra);
    object(properties, required)
}

/// `add_task`: `TaskInput` without `completed` (a new task is open), plus
/// `user_id`.
pub fn add_task_input() -> Object {
    extend(
        &standalone::<TaskInput>(),
        &["completed"],
        vec![("user_id", user_id_schema())],
        &["title"],
    )
}

/// `update_task`: `TaskPatch`, plus `task_id` and `user_id`.
pub fn update_task_input() -> Object {
    extend(
        &standalone::<TaskPatch>(),
        &[],
        vec![("task_id", task_id_schema()), ("user_id", user_id_schema())],
        &["task_id"],
    )
}

/// `complete_task` and `delete_task`: `task_id`, plus `user_id`.
pub fn task_id_input() -> Object {
    object(
        vec![("task_id", task_id_schema()), ("user_id", user_id_schema())],
        &["task_id"],
    )
}

/// `list_tasks`: `status`, `q`, `tag` and `limit` of `GET /api/v1/tasks`'s
/// parameters, plus `user_id`. `tag` is one tag or a list (every one
/// required), since a model asked for "my work tasks" sends one.
pub fn list_tasks_input() -> Object {
    let params = ListParams::into_params(|| Some(ParameterIn::Query));
    let mut properties = Vec::new();
    for name in ["status", "q", "tag", "limit"] {
        let Some(param) = params.iter().find(|p| p.name == name) else {
            continue;
        };
        let mut schema = param
            .schema
            .as_ref()
            .and_then(|s| serde_json::to_value(s).ok())
            .unwrap_or_else(|| json!({}));
        if name == "tag" {
            let one = schema
                .get("items")
                .cloned()
                .unwrap_or(json!({"type": "string"}));
            schema = json!({"anyOf": [one, schema]});
        }
        if let Some(description) = &param.description {
            schema = described(schema, description);
        }
        properties.push((name, schema));
    }
    properties.push(("user_id", user_id_schema()));
    object(properties, &[])
}

/// What a write tool answers: `{task_id, status, title, task}`, `status`
/// always `status_word`.
pub fn write_output(status_word: &str) -> Object {
    let task = standalone::<Task>();
    object(
        vec![
            ("task_id", property(&task, "id")),
            ("status", json!({"type": "string", "const": status_word})),
            ("title", property(&task, "title")),
            (
                "task",
                described(Value::Object(task), "The task after the call."),
            ),
        ],
        &["task_id", "status", "title", "task"],
    )
}

/// What `list_tasks` answers: `{tasks, has_more}`.
pub fn list_output() -> Object {
    object(
        vec![
            (
                "tasks",
                json!({
                    "type": "array",
                    "items": described(Value::Object(standalone::<Task>()), "One task."),
                    "description": "Newest first.",
                }),
            ),
            (
                "has_more",
                json!({
                    "type": "boolean",
                    "description": "More tasks match than were returned (raise `limit` or narrow the filters).",
                }),
            ),
        ],
        &["tasks", "has_more"],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No `$ref` is left for a client to resolve.
    fn assert_no_refs(value: &Value) {
        match value {
            Value::Object(map) => {
                assert!(!map.contains_key("$ref"), "{value}");
                map.values().for_each(assert_no_refs);
            }
            Value::Array(items) => items.iter().for_each(assert_no_refs),
            _ => {}
        }
    }

    #[test]
    fn schemas_stand_alone_and_keep_the_http_rules() {
        let add = add_task_input();
        assert_no_refs(&Value::Object(add.clone()));
        assert!(add["properties"].get("completed").is_none());
        let output = write_output("created");
        assert_no_refs(&Value::Object(output.clone()));
        assert_eq!(
            output["properties"]["task"]["properties"]["priority"]["enum"],
            json!(["low", "medium", "high"])
        );
        assert_eq!(
            list_tasks_input()["properties"]["status"]["enum"],
            json!(["all", "pending", "completed"])
        );
    }
}
