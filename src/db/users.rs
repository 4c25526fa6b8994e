//! The user statements and the profile row.

use chrono::{DateTime, Utc};

use super::{
    UserProfile,
    columns::{Columns, RowResult},
    sql::{Dialect, Param, SqlBuilder},
};
use crate::domain::Claims;

/// Creates the user, or refreshes the profile claims the token carries. The
/// `where` makes an unchanged user a no-op (no row version, no WAL).
pub fn upsert_user(who: &Claims, now: DateTime<Utc>, dialect: Dialect) -> SqlBuilder {
    let mut b = SqlBuilder::default();
    let id = b.text(&who.sub);
    let email = b.bind(Param::OptText(who.email.clone()));
    let name = b.bind(Param::OptText(who.name.clone()));
    let now = b.bind(Param::Timestamp(now));
    let differs = match dialect {
        Dialect::Postgres => "is distinct from",
        Dialect::Sqlite => "is not",
    };
    // A new row is a new incarnation of the user: sync tokens issued
    // before a `DELETE /me` name the old one (410).
    let epoch = b.bind(Param::Int(rand::random::<i64>() & i64::MAX));
    b.sql = format!(
        "insert into users (id, email, name, created_at, updated_at, sync_epoch) \
         values ({id}, {email}, {name}, {now}, {now}, {epoch}) \
         on conflict (id) do update set \
         email = coalesce(excluded.email, users.email), \
         name = coalesce(excluded.name, users.name), \
         updated_at = excluded.updated_at \
         where (excluded.email is not null and excluded.email {differs} users.email) \
         or (excluded.name is not null and excluded.name {differs} users.name)"
    );
    b
}

/// The user's row with task counts: id, email, name, created_at, updated_at,
/// total, completed.
pub fn select_user(user_id: &str) -> SqlBuilder {
    let mut b = SqlBuilder::default();
    let user = b.text(user_id);
    b.sql = format!(
        "select u.id, u.email, u.name, u.created_at, u.updated_at, \
         (select count(*) from tasks t where t.user_id = u.id) as total, \
         (select count(*) from tasks t where t.user_id = u.id and t.completed) as done \
         from users u where u.id = {user}"
    );
    b
}

/// Deletes the user; tasks and idempotency keys go with it by cascade, in
/// the same statement and therefore the same transaction.
pub fn delete_user(user_id: &str) -> SqlBuilder {
    let mut b = SqlBuilder::default();
    let user = b.text(user_id);
    b.sql = format!("delete from users where id = {user} returning 1");
    b
}

/// A user's row and counts from [`select_user`].
pub(super) fn decode_profile(row: &impl Columns) -> RowResult<UserProfile> {
    Ok(UserProfile {
        id: row.text("id")?,
        email: row.opt_text("email")?,
        name: row.opt_text("name")?,
        created_at: row.ts("created_at")?,
        updated_at: row.ts("updated_at")?,
        total: row.int("total")?,
        completed: row.int("done")?,
    })
}
