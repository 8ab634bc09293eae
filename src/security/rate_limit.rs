//! Token buckets per (player, rate class). A message's class is declared on its type
//! (`Remote::RATE_CLASS`); each class's rate is `security.rateLimits.<class>`, and a class
//! without its own key counts against [`FALLBACK_CLASS`]'s rate (in its own bucket).

use std::collections::HashMap;
use std::time::Duration;

/// The class whose limit applies to classes without their own.
pub const FALLBACK_CLASS: &str = "call";

#[derive(Debug, Clone, Copy, PartialEq)]
struct Bucket {
    tokens: f64,
    last: Duration,
}

/// A class's limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    /// Sustained rate.
    pub per_second: f64,
    /// Burst size.
    pub burst: f64,
}

/// Per-player token buckets.
#[derive(Debug, Default)]
pub struct RateLimiter {
    limits: HashMap<String, Limit>,
    buckets: HashMap<(u64, &'static str), Bucket>,
    /// Messages refused.
    pub refused: u64,
}

impl RateLimiter {
    /// A limiter with these limits by class name.
    pub fn new(limits: impl IntoIterator<Item = (String, Limit)>) -> Self {
        Self {
            limits: limits.into_iter().collect(),
            buckets: HashMap::new(),
            refused: 0,
        }
    }

    /// The limit that applies to `class` (its own, else the fallback's; `None`: unlimited).
    pub fn limit(&self, class: &str) -> Option<Limit> {
        self.limits
            .get(class)
            .or_else(|| self.limits.get(FALLBACK_CLASS))
            .copied()
    }

    /// Takes a token for `player`'s `class`, if one is there.
    pub fn allow(&mut self, player: u64, class: &'static str, now: Duration) -> bool {
        let Some(limit) = self.limit(class) else {
            return true;
        };
        let b = self.buckets.entry((player, class)).or_insert(Bucket {
            tokens: limit.burst,
            last: now,
        });
        let elapsed = now.saturating_sub(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * limit.per_second).min(limit.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            self.refused += 1;
            false
        }
    }

    /// Forgets a player's buckets.
    pub fn forget(&mut self, player: u64) {
        self.buckets.retain(|(p, _), _| *p != player);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_refills_at_the_rate() {
        let limit = |per_second| Limit {
            per_second,
            burst: per_second,
        };
        let mut r = RateLimiter::new([("chat".to_string(), limit(2.0))]);
        let t = Duration::from_secs(10);
        assert!(r.allow(1, "chat", t));
        assert!(r.allow(1, "chat", t));
        assert!(!r.allow(1, "chat", t), "burst spent");
        assert!(r.allow(2, "chat", t), "another player has its own bucket");
        assert!(
            r.allow(1, "chat", t + Duration::from_millis(500)),
            "one token after 0.5 s"
        );
        assert!(!r.allow(1, "chat", t + Duration::from_millis(600)));
        assert!(r.allow(1, "call", t), "no limit at all: unlimited");
        assert_eq!(r.refused, 2);
        // A class without its own limit gets the fallback's, in its own bucket.
        let mut r = RateLimiter::new([(FALLBACK_CLASS.to_string(), limit(1.0))]);
        assert!(r.allow(1, "game.thing", t));
        assert!(!r.allow(1, "game.thing", t));
        assert!(r.allow(1, FALLBACK_CLASS, t));
    }
}
