-- Seeds the schema `tasks-api migrate` created with :users users × :tasks
-- tasks each. User ids are the numbers '1'..':users' (so pgbench can bind
-- them directly as the same text parameter the server sends); each user's
-- tasks get consecutive ids (rows are inserted in user, task order), which
-- bench/run checks.
--
-- Every value is derived from one 32-bit hash of (user, task), so runs are
-- reproducible: 12 verbs × 14 nouns of titles, half the tasks with a
-- description, 0–3 of 8 tags, priorities 1..3, 80% with a due date between
-- 20 days ago and 60 days ahead, 30% completed. Change numbers as
-- migration V3 gives existing rows: each user's tasks 1..:tasks in id order,
-- the user's counter at :tasks (a full sync of the change feed sees them).
--
--   psql -v users=1000 -v tasks=100 -f bench/seed_postgres.sql DATABASE_URL

\set ON_ERROR_STOP on

begin;

insert into users (id, email, name, created_at, updated_at, sync_seq)
select g::text, 'user' || g || '@example.com', 'Bench User ' || g,
       now() - interval '400 days', now() - interval '400 days', :tasks
from generate_series(1, :users) g;

insert into tasks (user_id, title, title_lc, description, description_lc,
                   completed, priority, tags, due_date, completed_at,
                   created_at, updated_at, version, sync_seq)
select user_id, title, lower(title), description, lower(description),
       completed, priority, tags, due_date,
       case when completed then created_at + interval '1 hour' end,
       created_at,
       case when completed then created_at + interval '1 hour' else created_at end,
       1, t
from (
    select u::text as user_id, t,
           (array['Buy', 'Call', 'Fix', 'Write', 'Review', 'Plan', 'Clean', 'Book',
                  'Pay', 'Read', 'Email', 'Schedule'])[1 + h % 12]
             || ' ' ||
           (array['milk', 'report', 'car', 'dentist', 'invoice', 'garden', 'slides',
                  'tickets', 'taxes', 'groceries', 'budget', 'roof', 'presentation',
                  'passport'])[1 + h / 12 % 14]
             || ' #' || t as title,
           case when h / 168 % 2 = 0 then
               'Remember the ' ||
               (array['receipt', 'milk', 'keys', 'charger', 'forms', 'gift'])[1 + h / 336 % 6]
               || ' before ' ||
               (array['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday'])[1 + h / 2016 % 5]
           end as description,
           h / 10080 % 10 < 3 as completed,
           (1 + h / 100800 % 3)::smallint as priority,
           (array[tg[1 + h / 302400 % 8],
                  tg[1 + (h / 302400 + 3) % 8],
                  tg[1 + (h / 302400 + 5) % 8]])[1:(h / 2419200 % 4)::int] as tags,
           case when h / 9676800 % 5 <> 0 then
               date_trunc('hour', now())
               + ((h / 48384000 % 80) - 20) * interval '1 day'
               + (h % 24) * interval '1 hour'
           end as due_date,
           -- Newest task last, three hours apart, so the default sort
           -- (created_at desc) shows task #:tasks first.
           now() - (:tasks - t + 1) * interval '3 hours' - (u % 60) * interval '1 second'
             as created_at
    from generate_series(1, :users) u,
         generate_series(1, :tasks) t,
         lateral (select hashint4(u * 100003 + t)::bigint + 2147483648 as h) hash,
         lateral (select array['home', 'work', 'errands', 'urgent', 'health',
                               'finance', 'family', 'someday'] as tg) tag_list
    order by u, t
) seed;

commit;

vacuum analyze users;
vacuum analyze tasks;
