//! Rate limiting: a token bucket per key (an API key, or for public routes a client address or a
//! requester) (`rate` requests per second, bursts up to
//! `burst`). A refused request answers 429 `rate_limited` with `Retry-After` and changes nothing.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many requests a key may make.
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    /// Sustained requests per second per key; 0 turns limiting off.
    pub per_second: f64,
    /// Requests a key may make at once after being idle.
    pub burst: f64,
}

/// The default per API key: about half of what the server sustains for profile reads with the
/// access log (3,700–4,000/s with 8 clients, docs/performance.md), so a busy shop backend meets
/// the server's own limit first, while one leaked key or runaway loop cannot take every request
/// slot from the other keys.
impl Default for RateLimit {
    fn default() -> RateLimit {
        RateLimit {
            per_second: 2_000.0,
            burst: 4_000.0,
        }
    }
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// The buckets of every key seen.
#[derive(Default)]
pub(crate) struct Limiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl Limiter {
    /// Takes one token from `key`'s bucket, or says how long until one is there.
    pub(crate) fn take(&self, key: &str, limit: RateLimit, now: Instant) -> Result<(), Duration> {
        if limit.per_second <= 0.0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: limit.burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * limit.per_second).min(limit.burst);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - bucket.tokens) / limit.per_second,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_refills_per_key() {
        let limiter = Limiter::default();
        let limit = RateLimit {
            per_second: 2.0,
            burst: 3.0,
        };
        let (a, b) = ("key:a", "key:b");
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.take(a, limit, t0).is_ok());
        }
        let wait = limiter.take(a, limit, t0).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(500));
        assert!(
            limiter.take(b, limit, t0).is_ok(),
            "another key has its own bucket"
        );
        assert!(
            limiter
                .take(a, limit, t0 + Duration::from_millis(500))
                .is_ok(),
            "refilled"
        );
        let off = RateLimit {
            per_second: 0.0,
            burst: 0.0,
        };
        assert!((0..1000).all(|_| limiter.take(a, off, t0).is_ok()));
    }

    #[test]
    fn the_default_lets_a_busy_backend_through() {
        let limiter = Limiter::default();
        let limit = RateLimit::default();
        assert!(limit.per_second >= 2_000.0);
        let t0 = Instant::now();
        // 2,000 requests at one instant, then 2,000 a second for ten seconds.
        assert!((0..2_000).all(|_| limiter.take("key:a", limit, t0).is_ok()));
        for second in 1..=10 {
            let now = t0 + Duration::from_secs(second);
            assert!(
                (0..2_000).all(|_| limiter.take("key:a", limit, now).is_ok()),
                "second {second}"
            );
        }
    }
}
