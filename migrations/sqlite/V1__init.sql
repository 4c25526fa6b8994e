-- The same schema as migrations/postgres, in SQLite's terms: timestamps are
-- fixed-width RFC 3339 UTC text (so text order is time order), booleans are
-- 0/1, and tags are a JSON array. STRICT makes column types binding.

create table users (
    id         text primary key check (length(id) between 1 and 255),
    email      text,
    name       text,
    created_at text not null,
    updated_at text not null
) strict;

create table tasks (
    id             integer primary key autoincrement,
    user_id        text not null references users (id) on delete cascade,
    title          text not null check (length(title) between 1 and 200),
    title_lc       text not null,
    description    text check (length(description) <= 1000),
    description_lc text,
    completed      integer not null default 0 check (completed in (0, 1)),
    priority       integer not null default 2 check (priority between 1 and 3),
    tags           text not null default '[]'
                   check (json_valid(tags) and json_type(tags) = 'array' and json_array_length(tags) <= 20),
    due_date       text,
    completed_at   text,
    created_at     text not null,
    updated_at     text not null,
    version        integer not null default 1 check (version >= 1),
    check (completed = (completed_at is not null))
) strict;

create index tasks_user_created_idx  on tasks (user_id, created_at, id);
create index tasks_user_updated_idx  on tasks (user_id, updated_at, id);
create index tasks_user_due_idx      on tasks (user_id, due_date, id);
create index tasks_user_priority_idx on tasks (user_id, priority, id);
create index tasks_user_title_idx    on tasks (user_id, title, id);

create table idempotency_keys (
    user_id     text not null references users (id) on delete cascade,
    key         text not null,
    fingerprint text not null,
    response    text,
    created_at  text not null,
    primary key (user_id, key)
) strict;
create index idempotency_keys_created_idx on idempotency_keys (created_at);
