//! Token buckets per (player, action class).

use std::collections::HashMap;
use std::time::Duration;

/// What kind of action a message is, for rate limiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActionClass {
    /// Chat lines.
    Chat,
    /// Purchases and other economy actions.
    Purchase,
    /// Config change requests.
    ConfigRequest,
    /// Other remote function calls.
    Call,
    /// Heartbeats and other background traffic.
    Background,
}

impl ActionClass {
    /// Name as used in `security.rateLimits.<name>`.
    pub fn key(self) -> &'static str {
        match self {
            ActionClass::Chat => "chat",
            ActionClass::Purchase => "purchase",
            ActionClass::ConfigRequest => "config",
            ActionClass::Call => "call",
            ActionClass::Background => "background",
        }
    }
}

/// One token bucket: `rate` tokens per second, at most `burst` stored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    tokens: f64,
    last: Duration,
}

/// A limit: tokens per second and burst size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    /// Sustained rate, per second.
    pub per_second: f64,
    /// Largest burst.
    pub burst: f64,
}

/// Token buckets keyed by (player, class).
#[derive(Debug, Default)]
pub struct RateLimiter {
    limits: HashMap<ActionClass, Limit>,
    buckets: HashMap<(u64, ActionClass), Bucket>,
    /// Actions refused so far.
    pub refused: u64,
}

impl RateLimiter {
    /// With `limits` per class; a class without a limit is not limited.
    pub fn new(limits: impl IntoIterator<Item = (ActionClass, Limit)>) -> Self {
        Self {
            limits: limits.into_iter().collect(),
            buckets: HashMap::new(),
            refused: 0,
        }
    }

    /// Takes a token for `player`'s `class` action at `now`; false when over the limit.
    pub fn allow(&mut self, player: u64, class: ActionClass, now: Duration) -> bool {
        let Some(limit) = self.limits.get(&class).copied() else {
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

    /// Forgets a player's buckets (session ended).
    pub fn forget(&mut self, player: u64) {
        self.buckets.retain(|(p, _), _| *p != player);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_refills_at_the_rate() {
        let mut r = RateLimiter::new([(
            ActionClass::Chat,
            Limit {
                per_second: 2.0,
                burst: 2.0,
            },
        )]);
        let t = Duration::from_secs(10);
        assert!(r.allow(1, ActionClass::Chat, t));
        assert!(r.allow(1, ActionClass::Chat, t));
        assert!(!r.allow(1, ActionClass::Chat, t), "burst spent");
        assert!(
            r.allow(2, ActionClass::Chat, t),
            "another player has its own bucket"
        );
        assert!(
            r.allow(1, ActionClass::Chat, t + Duration::from_millis(500)),
            "one token after 0.5 s"
        );
        assert!(!r.allow(1, ActionClass::Chat, t + Duration::from_millis(600)));
        assert!(r.allow(1, ActionClass::Call, t), "unlimited class");
        assert_eq!(r.refused, 2);
    }
}
