-- SQLite twin of seed_postgres.sql, for the sqlite3 CLI, on a file that
-- `tasks-api migrate` created. bench/run prepends
--   create temp table p(users integer, tasks integer); insert into p values (…);
-- Same distributions as the PostgreSQL seed, from a random 32-bit number per
-- row (materialised first, so every column of a row sees the same number).
-- Timestamps are the store's fixed-width RFC 3339 UTC text with 6 fractional
-- digits; booleans are 0/1; tags are a JSON array. Change numbers as in
-- the PostgreSQL seed: tasks 1..tasks per user, the user's counter at tasks.

.bail on
pragma foreign_keys = on;

create temp table g as
with recursive
    uu(u) as (select 1 union all select u + 1 from uu where u < (select users from p)),
    tt(t) as (select 1 union all select t + 1 from tt where t < (select tasks from p))
select u, t, (random() & 4294967295) as h
from uu, tt
order by u, t;

begin;

insert into users (id, email, name, created_at, updated_at, sync_seq)
select u, 'user' || u || '@example.com', 'Bench User ' || u,
       strftime('%Y-%m-%dT%H:%M:%S', 'now', '-400 days') || '.000000Z',
       strftime('%Y-%m-%dT%H:%M:%S', 'now', '-400 days') || '.000000Z',
       (select tasks from p)
from (select distinct u from g)
order by u;

insert into tasks (user_id, title, title_lc, description, description_lc,
                   completed, priority, tags, due_date, completed_at,
                   created_at, updated_at, version, sync_seq)
select user_id, title, lower(title), description, lower(description),
       completed, priority, tags, due_date,
       case when completed = 1 then
           strftime('%Y-%m-%dT%H:%M:%S', 'now', '-' || (age - 3600) || ' seconds') || '.000000Z'
       end,
       strftime('%Y-%m-%dT%H:%M:%S', 'now', '-' || age || ' seconds') || '.000000Z',
       strftime('%Y-%m-%dT%H:%M:%S', 'now',
                '-' || (case when completed = 1 then age - 3600 else age end) || ' seconds')
           || '.000000Z',
       1, t
from (
    select u, t,
           cast(u as text) as user_id,
           json_extract('["Buy","Call","Fix","Write","Review","Plan","Clean","Book","Pay","Read","Email","Schedule"]',
                        '$[' || (h % 12) || ']')
             || ' ' ||
           json_extract('["milk","report","car","dentist","invoice","garden","slides","tickets","taxes","groceries","budget","roof","presentation","passport"]',
                        '$[' || (h / 12 % 14) || ']')
             || ' #' || t as title,
           case when h / 168 % 2 = 0 then
               'Remember the ' ||
               json_extract('["receipt","milk","keys","charger","forms","gift"]', '$[' || (h / 336 % 6) || ']')
               || ' before ' ||
               json_extract('["Monday","Tuesday","Wednesday","Thursday","Friday"]', '$[' || (h / 2016 % 5) || ']')
           end as description,
           case when h / 10080 % 10 < 3 then 1 else 0 end as completed,
           1 + h / 100800 % 3 as priority,
           case h / 2419200 % 4
               when 0 then '[]'
               when 1 then json_array(tag1)
               when 2 then json_array(tag1, tag2)
               else json_array(tag1, tag2, tag3)
           end as tags,
           case when h / 9676800 % 5 <> 0 then
               strftime('%Y-%m-%dT%H:00:00', 'now',
                        ((h / 48384000 % 80) - 20) || ' days',
                        (h % 24) || ' hours') || '.000000Z'
           end as due_date,
           -- Newest task last, three hours apart (as in the PostgreSQL seed).
           ((select tasks from p) - t + 1) * 10800 + u % 60 as age
    from (
        select u, t, h,
               json_extract(tg, '$[' || (h / 302400 % 8) || ']') as tag1,
               json_extract(tg, '$[' || ((h / 302400 + 3) % 8) || ']') as tag2,
               json_extract(tg, '$[' || ((h / 302400 + 5) % 8) || ']') as tag3
        from g, (select '["home","work","errands","urgent","health","finance","family","someday"]' as tg)
    )
    order by u, t
);

commit;

analyze;
pragma wal_checkpoint(truncate);
