-- GET /api/v1/tasks?status=pending&tag=home&q=milk: sql::list_query.
\set u random(1, :users)
\set lim 21
\set off 0
select id, user_id, title, description, completed, priority, tags, due_date, completed_at, created_at, updated_at, version from tasks where user_id = :u and completed = :f and tags @> :tag and (strpos(title_lc, :q) > 0 or coalesce(strpos(description_lc, :q), 0) > 0) order by created_at desc, id desc limit :lim offset :off
