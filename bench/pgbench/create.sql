-- POST /api/v1/tasks without Idempotency-Key: sql::insert_task (one statement).
\set u random(1, :users)
insert into tasks (user_id, title, title_lc, description, description_lc, completed, priority, tags, due_date, completed_at, created_at, updated_at, version) values (:u, :title, :title_lc, NULL, NULL, :f, :prio, :newtags, now() + interval '3 days', NULL, now(), now(), 1) returning id, user_id, title, description, completed, priority, tags, due_date, completed_at, created_at, updated_at, version
