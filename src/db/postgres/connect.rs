//! Opening the store: the pool, the wait for a database that may be waking
//! up (Neon), migrations, and whether the URL names a transaction pooler.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};

use super::{
    PostgresStore,
    changes::Notifier,
    errors::{describe_pool_error, is_permanent},
    read_lanes::ReadLanes,
    statements::Statements,
};

/// Neon's pooled endpoints carry `-pooler` in the host; PgBouncer's
/// customary port is 6432, and Supabase's transaction pooler listens on
/// 6543. A pooler elsewhere is found out by its first vanished prepared
/// statement instead (see [`Statements::pooler_detected`]).
fn looks_pooled(url: &str) -> bool {
    const POOLER_PORTS: [&str; 2] = ["6432", "6543"];
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    // After the credentials, which may contain anything.
    let hosts = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    hosts.split(',').any(|host| {
        let port = host.rsplit_once(':').map(|(_, port)| port);
        host.contains("-pooler") || port.is_some_and(|p| POOLER_PORTS.contains(&p))
    })
}

impl PostgresStore {
    /// Opens the pool, checks the database answers, and migrates.
    pub async fn connect(url: &str, config: &crate::db::Settings) -> anyhow::Result<Self> {
        let settings = super::tls::parse(url).map_err(anyhow::Error::msg)?;
        let manager = Manager::from_config(
            settings.config.clone(),
            settings.tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let timeout = Some(config.db_acquire_timeout);
        let pool = Pool::builder(manager)
            .max_size(config.db_pool_size as usize)
            .wait_timeout(timeout)
            .create_timeout(timeout)
            .recycle_timeout(timeout)
            .runtime(Runtime::Tokio1)
            .build()
            .context("could not build the PostgreSQL pool")?;
        let pooled = looks_pooled(url);
        let prepared = config.db_prepared_statements.unwrap_or(!pooled);
        // Auto: one shared connection, whenever the pool leaves at least two
        // for writes. Measured here (bench/run, PostgreSQL on the same 2 cores,
        // 32 HTTP connections): against a connection per read, get 25k ->
        // 37k req/s, list 17k -> 23k, list-filtered 8.8k -> 11.5k; two
        // shared connections gained less and varied more. Through
        // PgBouncer in transaction mode the pipelined reads stay correct
        // (tests/api/neon.rs checks every value read). The cost: one slow
        // read delays the reads queued behind it on the same connection;
        // DB_SHARED_READ_CONNECTIONS raises the count or turns this off.
        let shared_reads = config
            .db_shared_read_connections
            .unwrap_or(u32::from(config.db_pool_size >= 3));
        let listen = match &config.database_listen_url {
            Some(url) => Some(super::tls::parse(url).map_err(|e| {
                anyhow::anyhow!("{}", e.replace("DATABASE_URL", "DATABASE_LISTEN_URL"))
            })?),
            None if pooled => {
                tracing::warn!(
                    "DATABASE_URL looks like a pooler (PgBouncer in transaction mode cannot LISTEN): event streams hear other instances' writes only by polling, within 1 s; set DATABASE_LISTEN_URL to a direct connection URL to hear them at once"
                );
                None
            }
            None => Some(settings.clone()),
        };
        let store = Self {
            notifier: Notifier::start(pool.clone()),
            pool,
            lanes: ReadLanes::new(shared_reads as usize),
            statements: Statements::new(prepared),
            tls: settings.tls,
            acquire_timeout: config.db_acquire_timeout,
            max_size: config.db_pool_size as usize,
            signals: std::sync::Arc::default(),
            listen,
        };
        store.wait_for_database(config.db_startup_timeout).await?;
        // Pending migrations (see `migrations/`), on one pooled connection.
        let mut client = store.pool.get().await.map_err(|e| {
            anyhow::anyhow!(
                "cannot reach the PostgreSQL database in DATABASE_URL: {}",
                describe_pool_error(&e)
            )
        })?;
        crate::db::migrations::postgres(&mut client, pooled).await?;
        Ok(store)
    }

    /// Waits for the first connection with bounded exponential backoff: a
    /// serverless database (Neon) can take seconds to wake from zero.
    /// Errors that waiting cannot fix (bad password, no such database) end
    /// the wait at once.
    async fn wait_for_database(&self, budget: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut delay = Duration::from_millis(250);
        // The last answer from a server: a later attempt may only time out
        // (a pooler retrying its own login holds the client meanwhile), and
        // the server's reason should still be in the final message.
        let mut said: Option<String> = None;
        for attempt in 1.. {
            let Err(err) = self.pool.get().await else {
                return Ok(());
            };
            let permanent = matches!(&err, PoolError::Backend(e) if is_permanent(e));
            let elapsed = started.elapsed();
            let from_server = matches!(&err, PoolError::Backend(e) if e.as_db_error().is_some());
            let mut err = describe_pool_error(&err);
            if from_server {
                said = Some(err.clone());
            } else if let Some(earlier) = &said {
                err = format!("{err} (earlier: {earlier})");
            }
            if permanent || elapsed + delay > budget {
                anyhow::bail!(
                    "cannot reach the PostgreSQL database in DATABASE_URL after {attempt} attempt(s) in {:.1} s: {err}",
                    elapsed.as_secs_f64()
                );
            }
            tracing::warn!(attempt, retry_in_ms = delay.as_millis() as u64, error = %err, "database not reachable yet");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(4));
        }
        unreachable!("the loop returns or bails")
    }
}

#[cfg(test)]
mod tests {
    use super::looks_pooled;

    #[test]
    fn neon_pooler_hosts_and_the_pgbouncer_port_count_as_pooled() {
        assert!(looks_pooled(
            "postgresql://u:p@ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech/neondb?sslmode=require"
        ));
        assert!(looks_pooled("postgres://u@127.0.0.1:6432/app"));
        assert!(looks_pooled("postgres://u@127.0.0.1:6432"));
        assert!(looks_pooled(
            "postgresql://postgres.abcd:pw@aws-0-eu-central-1.pooler.supabase.com:6543/postgres"
        ));
        assert!(looks_pooled(
            "postgres://u@db.internal:6543/app?sslmode=require"
        ));
        assert!(!looks_pooled("postgres://u:6432@db.internal:5432/app"));
        assert!(!looks_pooled(
            "postgresql://u:p@ep-cool-darkness-123456.us-east-2.aws.neon.tech/neondb?sslmode=require"
        ));
        assert!(!looks_pooled("postgres://u@127.0.0.1:5432/app"));
    }
}
