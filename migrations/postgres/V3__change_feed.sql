-- The change feed (API.md "Sync: the change feed").
--
-- users.sync_seq is the user's change counter. Every write of the user's
-- tasks increments it in the write's own statement, which locks the user's
-- row until commit, so numbers are handed out in commit order: once change
-- n is visible, so is every change below n, and a client that has read up
-- to n never misses a later commit. users.sync_epoch names the row's
-- incarnation: a user re-created after DELETE /api/v1/me gets a new one,
-- which makes tokens issued before the delete answer 410.
alter table users add column sync_seq bigint not null default 0;
alter table users add column sync_epoch bigint not null default 0;

-- The number of the task's latest change: "what changed after n" is one
-- range of this index per user.
alter table tasks add column sync_seq bigint not null default 0;

-- Tasks created before this migration get distinct numbers, in id order,
-- so a feed page can end between any two of them.
update tasks set sync_seq = numbered.n
from (select id, row_number() over (partition by user_id order by id) as n from tasks) numbered
where tasks.id = numbered.id;
update users set sync_seq = coalesce((select max(t.sync_seq) from tasks t where t.user_id = users.id), 0);

create index tasks_user_sync_idx on tasks (user_id, sync_seq);

-- A deleted task's last change. Kept for CHANGES_RETENTION_DAYS, then
-- purged in small batches; a token older than that answers 410.
create table task_tombstones (
    user_id    text not null references users (id) on delete cascade,
    sync_seq   bigint not null,
    task_id    bigint not null,
    deleted_at timestamptz not null,
    primary key (user_id, sync_seq)
);
create index task_tombstones_deleted_idx on task_tombstones (deleted_at);
