-- PATCH /api/v1/tasks/{id}/complete without If-Match: db::tasks::update_task (Toggle; Numbering::InStatement takes the user's next change number).
\set u random(1, :users)
\set id :base + (:u - 1) * :tasks + random(0, :tasks - 1)
with s as (update users set sync_seq = sync_seq + 1 where id = :u returning sync_seq) update tasks set completed_at = case when not completed then coalesce(completed_at, now()) else null end, completed = not completed, version = version + 1, updated_at = greatest(now(), updated_at + interval '1 microsecond'), sync_seq = (select sync_seq from s) where id = :id and user_id = :u returning id, user_id, title, description, completed, priority, tags, due_date, completed_at, created_at, updated_at, version
