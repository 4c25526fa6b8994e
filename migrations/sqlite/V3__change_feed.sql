-- The change feed: the same schema as migrations/postgres/V3 (see there
-- for why); on SQLite every write runs on the one writer connection, so the
-- counter is trivially in commit order.
alter table users add column sync_seq integer not null default 0;
alter table users add column sync_epoch integer not null default 0;
alter table tasks add column sync_seq integer not null default 0;

update tasks set sync_seq = numbered.n
from (select id, row_number() over (partition by user_id order by id) as n from tasks) as numbered
where tasks.id = numbered.id;
update users set sync_seq = coalesce((select max(t.sync_seq) from tasks t where t.user_id = users.id), 0);

create index tasks_user_sync_idx on tasks (user_id, sync_seq);

create table task_tombstones (
    user_id    text not null references users (id) on delete cascade,
    sync_seq   integer not null,
    task_id    integer not null,
    deleted_at text not null,
    primary key (user_id, sync_seq)
) strict;
create index task_tombstones_deleted_idx on task_tombstones (deleted_at);
