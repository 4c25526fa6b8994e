-- GET /api/v1/tasks/{id} of the user's own task: sql::select_task.
\set u random(1, :users)
\set id :base + (:u - 1) * :tasks + random(0, :tasks - 1)
select id, user_id, title, description, completed, priority, tags, due_date, completed_at, created_at, updated_at, version from tasks where id = :id and user_id = :u
