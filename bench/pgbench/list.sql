-- GET /api/v1/tasks (default sort, 20 items): sql::list_query, limit+1.
\set u random(1, :users)
\set lim 21
\set off 0
select id, user_id, title, description, completed, priority, tags, due_date, completed_at, created_at, updated_at, version from tasks where user_id = :u order by created_at desc, id desc limit :lim offset :off
