//! Configuration from the environment (and an optional `.env` file, loaded by
//! the binary before this runs). Everything is validated up front and every
//! problem is reported as one sentence, so a misconfigured deployment fails at
//! start-up instead of on the first request.

use read::{either, parse_num, positive, var};
use std::{fmt, net::IpAddr, time::Duration};

/// A value that must never reach a log line or an error body.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the few places that need the bytes.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// Shortest accepted `BETTER_AUTH_SECRET`: HS256 keys shorter than the hash
/// output are brute-forceable, and Better Auth itself asks for 32+ characters.
pub const MIN_SECRET_LEN: usize = 32;

/// Where the embedded default database lives, relative to the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://tasks.db";

/// Every setting of the service.
#[derive(Debug, Clone)]
pub struct Config {
    /// `sqlite://…` or `postgres(ql)://…`; may carry a password, hence secret.
    pub database_url: Secret,
    /// The HS* signing secret shared with the Better Auth front end.
    pub auth_secret: Option<Secret>,
    /// Interface to listen on.
    pub host: IpAddr,
    /// Port to listen on; 0 picks a free one (tests).
    pub port: u16,
    /// Origins allowed by CORS (the Next.js front ends).
    pub cors_origins: Vec<String>,
    /// Most database connections the pool opens.
    pub db_pool_size: u32,
    /// How long a request waits for a database connection before a 503.
    pub db_acquire_timeout: Duration,
    /// How long start-up waits for the database (cold starts) before giving up.
    pub db_startup_timeout: Duration,
    /// Whether PostgreSQL statements are prepared once per connection and
    /// reused (`DB_PREPARED_STATEMENTS=auto|on|off`). `None` (auto): yes on a
    /// direct connection, no through a transaction pooler, where a named
    /// statement may not exist on the next server connection.
    pub db_prepared_statements: Option<bool>,
    /// How many PostgreSQL connections concurrent reads share, pipelining
    /// their statements (`DB_SHARED_READ_CONNECTIONS=auto|N`; 0: every read
    /// checks out its own). `None` (auto): see `PostgresStore::connect`.
    pub db_shared_read_connections: Option<u32>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`.
    pub jwt_leeway: Duration,
    /// Required `iss` of every token, when set.
    pub jwt_issuer: Option<String>,
    /// Required `aud` of every token, when set.
    pub jwt_audience: Option<String>,
    /// How long an `Idempotency-Key` is remembered.
    pub idempotency_ttl: Duration,
    /// Requests per second per user (0 disables), and the burst allowed.
    pub rate_limit_per_second: u32,
    pub rate_limit_burst: u32,
    /// Failed-authentication requests per second per client IP, and burst.
    pub ip_rate_limit_per_second: u32,
    pub ip_rate_limit_burst: u32,
    /// Most time a client may take to send request headers (slowloris).
    pub header_read_timeout: Duration,
    /// How long a client may leave the server's data unread (its TCP
    /// window full) before its connection is closed
    /// (`CLIENT_STALL_TIMEOUT_SECONDS`): what disconnects an event stream's
    /// reader that stopped reading, and any other stalled download.
    pub client_stall_timeout: Duration,
    /// Most open connections.
    pub max_connections: usize,
    /// Most open connections from one client IP, so one client cannot take
    /// them all; 0 = no per-IP cap (e.g. behind a proxy with its own).
    pub max_connections_per_ip: usize,
    /// Also serve cleartext HTTP/2 with prior knowledge (h2c), for a proxy
    /// in front that carries many event streams on one connection.
    pub http2_cleartext: bool,
    /// Bearer token required by `/metrics`, when set.
    pub metrics_token: Option<Secret>,
    /// Longest a request may take before it is answered 503.
    pub request_timeout: Duration,
    /// Log lines as JSON objects (`LOG_FORMAT=json`) instead of text.
    pub log_json: bool,
    /// Where Better Auth publishes its public keys, when asymmetric tokens
    /// are accepted (`JWKS_URL`, or `BETTER_AUTH_URL` + `/api/auth/jwks`).
    pub jwks_url: Option<String>,
    /// `iss`/`aud` required of JWKS-verified tokens (default: `BETTER_AUTH_URL`).
    pub jwks_issuer: Option<String>,
    pub jwks_audience: Option<String>,
    /// How often the JWKS is refreshed (Better Auth sends no cache headers).
    pub jwks_cache_ttl: Duration,
    /// Least time between two refetches caused by unknown `kid`s.
    pub jwks_refetch_interval: Duration,
    /// `Host` values `/mcp` answers (`MCP_ALLOWED_HOSTS`), against DNS
    /// rebinding; empty when `*` turned the check off.
    pub mcp_allowed_hosts: Vec<String>,
    /// How long delete tombstones are kept for the change feed
    /// (`CHANGES_RETENTION_DAYS`); an older sync token answers 410.
    pub changes_retention: Duration,
    /// Most open event streams of one user (`EVENTS_MAX_STREAMS_PER_USER`).
    pub events_max_streams_per_user: usize,
    /// A direct (unpooled) PostgreSQL URL for the one `LISTEN` connection
    /// that brings other instances' changes to this one's event streams
    /// (`DATABASE_LISTEN_URL`); PgBouncer in transaction mode cannot
    /// `LISTEN`. Unset: `DATABASE_URL`, unless that is a pooled URL.
    pub database_listen_url: Option<Secret>,
}

/// `MCP_ALLOWED_HOSTS` when unset: loopback only, as the MCP SDK defaults.
pub const DEFAULT_MCP_ALLOWED_HOSTS: &str = "localhost,127.0.0.1,::1";

/// Parses `MCP_ALLOWED_HOSTS`: host names or `host:port` authorities,
/// comma-separated, or `*` alone for no check (empty list).
fn mcp_allowed_hosts(raw: Option<&str>, problems: &mut Vec<String>) -> Vec<String> {
    let hosts: Vec<String> = raw
        .unwrap_or(DEFAULT_MCP_ALLOWED_HOSTS)
        .split(',')
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .collect();
    if hosts.iter().any(|h| h == "*") {
        if hosts.len() > 1 {
            problems
                .push("MCP_ALLOWED_HOSTS is either `*` alone or a list of host names.".to_owned());
        }
        return Vec::new();
    }
    for host in &hosts {
        let plain = host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
        if !plain {
            problems.push(format!(
                "MCP_ALLOWED_HOSTS entry {host:?} is not a host name such as api.example.com or api.example.com:8443."
            ));
        }
    }
    hosts
}

impl Config {
    /// Builds the configuration from a variable lookup (the process
    /// environment in production, a map in tests). `dev` allows a missing
    /// secret; the caller then supplies a random one.
    pub fn from_lookup(
        lookup: &dyn Fn(&str) -> Option<String>,
        dev: bool,
    ) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();

        let database_url =
            var(lookup, "DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        if let Err(why) = crate::db::DatabaseKind::of(&database_url) {
            problems.push(why);
        }

        let better_auth_url =
            var(lookup, "BETTER_AUTH_URL").map(|u| u.trim_end_matches('/').to_owned());
        let jwks_url = var(lookup, "JWKS_URL").or_else(|| {
            better_auth_url
                .as_ref()
                .map(|u| format!("{u}/api/auth/jwks"))
        });
        for (name, value) in [
            ("BETTER_AUTH_URL", &better_auth_url),
            ("JWKS_URL", &jwks_url),
        ] {
            if let Some(url) = value
                && !(url.starts_with("http://") || url.starts_with("https://"))
            {
                problems.push(format!(
                    "{name} must be an http:// or https:// URL, got {url:?}."
                ));
            }
        }
        let auth_secret = var(lookup, "BETTER_AUTH_SECRET").map(Secret::new);
        match &auth_secret {
            None if !dev && jwks_url.is_none() => problems.push(
                "BETTER_AUTH_SECRET is not set: set it to the secret your Better Auth front end uses (at least 32 characters), set BETTER_AUTH_URL to verify Better Auth's own tokens, or run `tasks-api serve --dev` to use a random secret for this run.".to_owned(),
            ),
            Some(s) if s.expose().len() < MIN_SECRET_LEN => problems.push(format!(
                "BETTER_AUTH_SECRET is {} bytes long; it must be at least {MIN_SECRET_LEN} bytes.",
                s.expose().len()
            )),
            _ => {}
        }

        let host = match var(lookup, "HOST") {
            None => IpAddr::from([127, 0, 0, 1]),
            Some(raw) => raw.parse().unwrap_or_else(|_| {
                problems.push(format!(
                    "HOST must be an IP address such as 127.0.0.1 or 0.0.0.0, got {raw:?}."
                ));
                IpAddr::from([127, 0, 0, 1])
            }),
        };
        let port = parse_num(lookup, "PORT", 8000u16, &mut problems);

        let cors_origins: Vec<String> = var(lookup, "CORS_ORIGINS")
            .unwrap_or_else(|| "http://localhost:3000".to_owned())
            .split(',')
            .map(|o| o.trim().trim_end_matches('/').to_owned())
            .filter(|o| !o.is_empty())
            .collect();
        for origin in &cors_origins {
            if origin == "*" {
                problems.push("CORS_ORIGINS must list origins explicitly; `*` cannot be combined with credentialed requests.".to_owned());
            } else if !(origin.starts_with("http://") || origin.starts_with("https://"))
                || axum::http::HeaderValue::from_str(origin).is_err()
            {
                problems.push(format!("CORS_ORIGINS entry {origin:?} is not an origin such as https://app.example.com."));
            }
        }

        let db_pool_size = positive(lookup, "DB_POOL_SIZE", 10u32, &mut problems);
        let acquire_ms = parse_num(lookup, "DB_ACQUIRE_TIMEOUT_MS", 5_000u64, &mut problems);
        let startup_s = parse_num(lookup, "DB_STARTUP_TIMEOUT_SECONDS", 30u64, &mut problems);
        let db_prepared_statements = match var(lookup, "DB_PREPARED_STATEMENTS").as_deref() {
            None | Some("auto") => None,
            Some("on") => Some(true),
            Some("off") => Some(false),
            Some(other) => {
                problems.push(format!(
                    "DB_PREPARED_STATEMENTS must be auto, on or off, got {other:?}."
                ));
                None
            }
        };
        let db_shared_read_connections = match var(lookup, "DB_SHARED_READ_CONNECTIONS").as_deref()
        {
            None | Some("auto") => None,
            Some(n) => match n.parse::<u32>() {
                Ok(n) if n < db_pool_size => Some(n),
                _ => {
                    problems.push(format!(
                        "DB_SHARED_READ_CONNECTIONS must be auto or a number below DB_POOL_SIZE ({db_pool_size}), got {n:?}."
                    ));
                    None
                }
            },
        };
        let leeway = parse_num(lookup, "JWT_LEEWAY_SECONDS", 60u64, &mut problems);
        let idem_hours = positive(lookup, "IDEMPOTENCY_TTL_HOURS", 24u64, &mut problems);

        let rate = parse_num(lookup, "RATE_LIMIT_PER_SECOND", 20u32, &mut problems);
        let burst = parse_num(lookup, "RATE_LIMIT_BURST", 100u32, &mut problems);
        let ip_rate = parse_num(lookup, "RATE_LIMIT_IP_PER_SECOND", 5u32, &mut problems);
        let ip_burst = parse_num(lookup, "RATE_LIMIT_IP_BURST", 30u32, &mut problems);
        let header_ms = parse_num(lookup, "HEADER_READ_TIMEOUT_MS", 10_000u64, &mut problems);
        let stall_s = positive(lookup, "CLIENT_STALL_TIMEOUT_SECONDS", 30u64, &mut problems);
        let max_connections = parse_num(lookup, "MAX_CONNECTIONS", 4096usize, &mut problems);
        let max_connections_per_ip =
            parse_num(lookup, "MAX_CONNECTIONS_PER_IP", 1024usize, &mut problems);
        let timeout_ms = parse_num(lookup, "REQUEST_TIMEOUT_MS", 10_000u64, &mut problems);
        let http2_cleartext = either(lookup, "HTTP2_CLEARTEXT", ["off", "on"], &mut problems);
        let log_json = either(lookup, "LOG_FORMAT", ["text", "json"], &mut problems);
        let jwks_ttl = parse_num(lookup, "JWKS_CACHE_TTL_SECONDS", 300u64, &mut problems);
        let jwks_refetch = parse_num(
            lookup,
            "JWKS_REFETCH_INTERVAL_SECONDS",
            10u64,
            &mut problems,
        );
        let jwt_issuer = var(lookup, "JWT_ISSUER");
        let jwt_audience = var(lookup, "JWT_AUDIENCE");
        let mcp_allowed_hosts =
            mcp_allowed_hosts(var(lookup, "MCP_ALLOWED_HOSTS").as_deref(), &mut problems);
        let retention_days = positive(lookup, "CHANGES_RETENTION_DAYS", 30u64, &mut problems);
        let max_streams = positive(
            lookup,
            "EVENTS_MAX_STREAMS_PER_USER",
            16usize,
            &mut problems,
        );
        let database_listen_url = var(lookup, "DATABASE_LISTEN_URL");
        if let Some(url) = &database_listen_url
            && crate::db::DatabaseKind::of(url) != Ok(crate::db::DatabaseKind::Postgres)
        {
            problems.push("DATABASE_LISTEN_URL must be a postgres:// URL (a direct connection, not through a pooler).".to_owned());
        }

        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self {
            database_url: Secret::new(database_url),
            auth_secret,
            host,
            port,
            cors_origins,
            db_pool_size,
            db_acquire_timeout: Duration::from_millis(acquire_ms.max(1)),
            db_startup_timeout: Duration::from_secs(startup_s),
            db_prepared_statements,
            db_shared_read_connections,
            jwt_leeway: Duration::from_secs(leeway),
            jwks_issuer: jwt_issuer.clone().or_else(|| better_auth_url.clone()),
            jwks_audience: jwt_audience.clone().or_else(|| better_auth_url.clone()),
            jwt_issuer,
            jwt_audience,
            idempotency_ttl: Duration::from_secs(idem_hours * 3600),
            request_timeout: Duration::from_millis(timeout_ms.max(1)),
            metrics_token: var(lookup, "METRICS_TOKEN").map(Secret::new),
            header_read_timeout: Duration::from_millis(header_ms.max(1)),
            client_stall_timeout: Duration::from_secs(stall_s),
            max_connections: max_connections.max(1),
            max_connections_per_ip,
            http2_cleartext,
            rate_limit_per_second: rate,
            rate_limit_burst: burst,
            ip_rate_limit_per_second: ip_rate,
            ip_rate_limit_burst: ip_burst,
            log_json,
            jwks_url,
            jwks_cache_ttl: Duration::from_secs(jwks_ttl.max(1)),
            jwks_refetch_interval: Duration::from_secs(jwks_refetch),
            mcp_allowed_hosts,
            changes_retention: Duration::from_secs(retention_days * 86_400),
            events_max_streams_per_user: max_streams,
            database_listen_url: database_listen_url.map(Secret::new),
        })
    }

    /// Builds the configuration from the process environment.
    pub fn from_env(dev: bool) -> Result<Self, Vec<String>> {
        Self::from_lookup(&|name| std::env::var(name).ok(), dev)
    }
}

mod read;
#[cfg(test)]
mod tests;
