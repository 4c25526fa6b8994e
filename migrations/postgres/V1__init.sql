-- Users exist because an identity provider (Better Auth) vouched for them:
-- the id is its opaque user id, and email/name are copies of token claims.
create table users (
    id         text primary key check (char_length(id) between 1 and 255),
    email      text,
    name       text,
    created_at timestamptz not null,
    updated_at timestamptz not null
);

create table tasks (
    id             bigint generated always as identity primary key,
    user_id        text not null references users (id) on delete cascade,
    title          text not null check (char_length(title) between 1 and 200),
    -- Lower-cased copies for `q` search, computed by the service so that
    -- matching is identical on PostgreSQL and SQLite.
    title_lc       text not null,
    description    text check (char_length(description) <= 1000),
    description_lc text,
    completed      boolean not null default false,
    -- 1 = low, 2 = medium, 3 = high: sorting by the column sorts by urgency.
    priority       smallint not null default 2 check (priority between 1 and 3),
    tags           text[] not null default '{}' check (cardinality(tags) <= 20),
    due_date       timestamptz,
    completed_at   timestamptz,
    created_at     timestamptz not null,
    updated_at     timestamptz not null,
    version        bigint not null default 1 check (version >= 1),
    check (completed = (completed_at is not null))
);

-- One index per sort key, each led by user_id and ended by id (the
-- tie-breaker), so a page of one user's list is an index range scan in
-- either direction and never touches other users' rows.
create index tasks_user_created_idx  on tasks (user_id, created_at, id);
create index tasks_user_updated_idx  on tasks (user_id, updated_at, id);
create index tasks_user_due_idx      on tasks (user_id, due_date, id);
create index tasks_user_priority_idx on tasks (user_id, priority, id);
create index tasks_user_title_idx    on tasks (user_id, title collate "C", id);
-- Tag containment (`tags @> '{home}'`).
create index tasks_tags_idx on tasks using gin (tags);

-- Idempotency-Key records: the key is claimed in the same transaction that
-- inserts the task, so concurrent retries create exactly one task.
create table idempotency_keys (
    user_id     text not null references users (id) on delete cascade,
    key         text not null,
    fingerprint text not null,
    response    text,
    created_at  timestamptz not null,
    primary key (user_id, key)
);
create index idempotency_keys_created_idx on idempotency_keys (created_at);
