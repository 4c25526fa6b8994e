//! Per-user and per-IP request budgets (token buckets, via governor's GCRA).
//!
//! Authenticated requests spend the user's budget; requests that fail
//! authentication spend the client IP's budget, so token guessing is
//! throttled without slowing honest users behind a shared address. Memory is
//! bounded: idle keys are dropped every minute, and if a flood of distinct
//! keys still exceeds the cap, the table starts afresh.

use std::{
    hash::Hash,
    net::IpAddr,
    num::NonZeroU32,
    sync::{Arc, RwLock},
    time::Duration,
};

use governor::{Quota, RateLimiter, clock::Clock, clock::DefaultClock};

/// A spent budget: when the next request would be allowed, and the burst
/// size. The HTTP layer answers it 429 with `Retry-After` and `RateLimit-*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// Whole seconds until the next request is allowed (rounded up).
    pub retry_after: u64,
    /// The burst size of the budget that ran out.
    pub limit: u32,
}

/// Most keys one table holds before it is reset.
const MAX_KEYS: usize = 200_000;

type Keyed<K> = RateLimiter<K, governor::state::keyed::DefaultKeyedStateStore<K>, DefaultClock>;

/// One keyed limiter and the quota it enforces.
struct Table<K: Hash + Eq + Clone> {
    quota: Quota,
    burst: u32,
    limiter: RwLock<Arc<Keyed<K>>>,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new(per_second: u32, burst: u32) -> Option<Self> {
        let rate = NonZeroU32::new(per_second)?;
        let burst_nz = NonZeroU32::new(burst.max(1))?;
        let quota = Quota::per_second(rate).allow_burst(burst_nz);
        Some(Self {
            quota,
            burst: burst.max(1),
            limiter: RwLock::new(Arc::new(RateLimiter::keyed(quota))),
        })
    }

    fn check(&self, key: &K) -> Result<(), Limited> {
        let limiter = self
            .limiter
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            Limited {
                retry_after: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
                limit: self.burst,
            }
        })
    }

    fn housekeeping(&self) {
        let limiter = self
            .limiter
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        limiter.retain_recent();
        limiter.shrink_to_fit();
        if limiter.len() > MAX_KEYS {
            tracing::warn!(
                keys = limiter.len(),
                "rate-limit table full; starting afresh"
            );
            *self.limiter.write().unwrap_or_else(|p| p.into_inner()) =
                Arc::new(RateLimiter::keyed(self.quota));
        }
    }
}

/// The service's budgets; `None` tables are disabled (rate 0).
pub struct RateLimits {
    users: Option<Table<String>>,
    ips: Option<Table<IpAddr>>,
}

impl RateLimits {
    /// Budgets of `user_rate`/s (burst `user_burst`) per user and
    /// `ip_rate`/s (burst `ip_burst`) per IP for failed authentication.
    pub fn new(user_rate: u32, user_burst: u32, ip_rate: u32, ip_burst: u32) -> Self {
        Self {
            users: Table::new(user_rate, user_burst),
            ips: Table::new(ip_rate, ip_burst),
        }
    }

    /// Spends one request of `user`'s budget.
    pub fn check_user(&self, user: &str) -> Result<(), Limited> {
        match &self.users {
            Some(table) => table.check(&user.to_owned()),
            None => Ok(()),
        }
    }

    /// Spends one failed-authentication request of `ip`'s budget.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Limited> {
        match &self.ips {
            Some(table) => table.check(&ip),
            None => Ok(()),
        }
    }

    /// Drops idle keys; run periodically.
    pub fn housekeeping(&self) {
        if let Some(t) = &self.users {
            t.housekeeping();
        }
        if let Some(t) = &self.ips {
            t.housekeeping();
        }
    }
}

/// Runs [`RateLimits::housekeeping`] every minute.
pub async fn housekeeping_forever(limits: Arc<RateLimits>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        limits.housekeeping();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_429_per_key() {
        let limits = RateLimits::new(1, 3, 1, 2);
        for _ in 0..3 {
            assert!(limits.check_user("a").is_ok());
        }
        match limits.check_user("a") {
            Err(Limited { retry_after, limit }) => {
                assert!(retry_after >= 1);
                assert_eq!(limit, 3);
            }
            other => panic!("{other:?}"),
        }
        assert!(limits.check_user("b").is_ok(), "another user is unaffected");
        let ip = IpAddr::from([10, 0, 0, 1]);
        assert!(limits.check_ip(ip).is_ok());
        assert!(limits.check_ip(ip).is_ok());
        assert!(limits.check_ip(ip).is_err());
    }

    #[test]
    fn zero_rate_disables() {
        let limits = RateLimits::new(0, 0, 0, 0);
        for _ in 0..1000 {
            assert!(limits.check_user("a").is_ok());
        }
    }
}
