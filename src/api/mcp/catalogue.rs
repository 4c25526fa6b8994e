//! What the agent is told: the five tools' names, descriptions, input and
//! output schemas, and hints, built once per application.

use std::sync::Arc;

use rmcp::model::{Tool, ToolAnnotations};

use super::schema;
use crate::domain::{
    listing::V1_LIMITS,
    task::{DESCRIPTION_MAX, TAG_MAX, TAGS_MAX, TITLE_MAX},
};

/// The tool list, built once per application and shared by every request
/// (the MCP service makes a handler per request).
pub fn catalogue() -> Arc<[Tool]> {
    let formats = format!(
        "`priority` is low, medium or high (default medium). `tags` is a list of \
         1-{TAG_MAX} character strings, at most {TAGS_MAX} distinct (trimmed, duplicates \
         dropped, case-sensitive). `due_date` is an RFC 3339 date-time with seconds and \
         an offset, such as 2026-12-01T17:00:00+01:00 (returned in UTC). `description` \
         is at most {DESCRIPTION_MAX} characters."
    );
    let returns = |word: &str| {
        format!(
            "Returns {{task_id, status: \"{word}\", title, task}}, `task` being the whole task."
        )
    };
    // Hints for clients that ask before running a tool: every tool touches
    // only this service's data (closed world); list_tasks changes nothing;
    // delete_task cannot be undone; complete_task twice is complete_task once.
    let hints = |title: &str| ToolAnnotations::with_title(title).open_world(false);
    let tool = |name: &'static str, description: String, input, output, hints| {
        Tool::new(name, description, Arc::new(input))
            .with_raw_output_schema(Arc::new(output))
            .with_annotations(hints)
    };
    Arc::from(vec![
        tool(
            "add_task",
            format!(
                "Create a task for the signed-in user. `title` is required, \
                 1-{TITLE_MAX} characters after trimming. {formats} {}",
                returns("created")
            ),
            schema::add_task_input(),
            schema::write_output("created"),
            hints("Add a task").destructive(false).idempotent(false),
        ),
        tool(
            "list_tasks",
            format!(
                "List the signed-in user's tasks, newest first. `status`: all (default), \
                 pending or completed. `q`: text to find in title or description \
                 (case-insensitive). `tag`: a tag (or list of tags) every task returned \
                 carries. `limit`: 1-{} (default {}). Returns {{tasks, has_more}}; each \
                 task has id, title, description, completed, priority, tags, due_date, \
                 completed_at, created_at, updated_at (UTC).",
                V1_LIMITS.max, V1_LIMITS.default
            ),
            schema::list_tasks_input(),
            schema::list_output(),
            hints("List tasks").read_only(true),
        ),
        tool(
            "complete_task",
            format!(
                "Mark a task done (completed = true; calling it again keeps it done, \
                 use update_task with completed false to reopen). {}",
                returns("completed")
            ),
            schema::task_id_input(),
            schema::write_output("completed"),
            hints("Complete a task").destructive(false).idempotent(true),
        ),
        tool(
            "update_task",
            format!(
                "Change fields of a task: only the fields given change; `description` \
                 and `due_date` may be null to clear them; `completed` true or false. \
                 Title 1-{TITLE_MAX} characters. {formats} {}",
                returns("updated")
            ),
            schema::update_task_input(),
            schema::write_output("updated"),
            hints("Update a task").destructive(true).idempotent(false),
        ),
        tool(
            "delete_task",
            format!(
                "Delete a task for good. {} (`task` as it was before deletion)",
                returns("deleted")
            ),
            schema::task_id_input(),
            schema::write_output("deleted"),
            hints("Delete a task").destructive(true).idempotent(false),
        ),
    ])
}
