//! Detectors for suspicious activity, as plain types: impossible income, clock skew, and the
//! per-address limit on connection attempts.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

/// What kind of suspicious activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Suspicion {
    /// A purchase costing more than the balance (a client that knows its balance never asks).
    Overspend,
    /// Coins rose faster than the player's fish can earn plus what was credited.
    ImpossibleIncome,
    /// The client's clock is far from the server's.
    ClockSkew,
    /// An address sent connection attempts over the limit.
    ConnectFlood,
    /// Envelope, decoding or validation failures reported by the transport.
    BadInput,
}

impl Suspicion {
    /// Stable name (stats, audit).
    pub fn key(self) -> &'static str {
        match self {
            Suspicion::Overspend => "overspend",
            Suspicion::ImpossibleIncome => "impossible_income",
            Suspicion::ClockSkew => "clock_skew",
            Suspicion::ConnectFlood => "connect_flood",
            Suspicion::BadInput => "bad_input",
        }
    }
}

/// Watches each live player's coins: a rise above what their fish can earn since the last look,
/// plus what the server credited in between (grants, refunds), is impossible.
#[derive(Debug, Default)]
pub struct IncomeWatch {
    seen: HashMap<u64, Seen>,
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    coins: i64,
    at: Duration,
    max_rate: f64,
    credited: i64,
}

impl IncomeWatch {
    /// Records that the server itself gave `player` `amount` coins (counted as possible income).
    pub fn credit(&mut self, player: u64, amount: i64) {
        if let Some(s) = self.seen.get_mut(&player) {
            s.credited = s.credited.saturating_add(amount.max(0));
        }
    }

    /// Looks at a player's balance; `max_rate` is the most they can earn per second now.
    /// Returns the details of an impossible rise (then the new balance is the baseline).
    pub fn observe(
        &mut self,
        player: u64,
        coins: i64,
        max_rate: f64,
        now: Duration,
    ) -> Option<String> {
        let next = Seen {
            coins,
            at: now,
            max_rate,
            credited: 0,
        };
        let prev = self.seen.insert(player, next)?;
        let secs = now.saturating_sub(prev.at).as_secs_f64();
        // The higher of the two rates (fish bought in between earn too), rounded up, plus one
        // coin for rounding.
        let earnable = (prev.max_rate.max(max_rate) * secs).ceil() as i64 + 1;
        let allowed = prev
            .coins
            .saturating_add(earnable)
            .saturating_add(prev.credited);
        (coins > allowed).then(|| {
            format!(
                "coins rose from {} to {coins} in {secs:.1} s; at most {allowed} was possible",
                prev.coins
            )
        })
    }

    /// Forgets a player who left.
    pub fn forget(&mut self, player: u64) {
        self.seen.remove(&player);
    }
}

/// The difference between a client's clock and the server's, if over `max` (ms).
pub fn clock_skew(client_ms: u64, server_ms: u64, max: Duration) -> Option<u64> {
    let skew = client_ms.abs_diff(server_ms);
    (skew > max.as_millis() as u64).then_some(skew)
}

/// Remembers which sessions were already reported for clock skew (one report per session).
#[derive(Debug, Default)]
pub struct SkewReports(HashSet<u64>);

impl SkewReports {
    /// True the first time for `client`.
    pub fn first(&mut self, client: u64) -> bool {
        self.0.insert(client)
    }
    /// Forgets a client whose session ended.
    pub fn forget(&mut self, client: u64) {
        self.0.remove(&client);
    }
}

/// A token bucket per source address for connection attempts (netcode connection requests).
#[derive(Debug)]
pub struct AddressGate {
    per_second: f64,
    burst: f64,
    buckets: HashMap<IpAddr, (f64, Duration)>,
    /// Attempts refused.
    pub refused: u64,
    /// Addresses refused since the last [`AddressGate::take_flooders`].
    flooders: HashMap<IpAddr, u64>,
}

/// Most addresses tracked at once; the fullest buckets are forgotten first when it is reached.
const MAX_TRACKED: usize = 65_536;

impl AddressGate {
    /// `per_second` attempts per address, bursts up to `burst`.
    pub fn new(per_second: f64, burst: f64) -> Self {
        Self {
            per_second,
            burst: burst.max(1.0),
            buckets: HashMap::new(),
            refused: 0,
            flooders: HashMap::new(),
        }
    }

    /// True if an attempt from `addr` at `now` is within the limit.
    pub fn allow(&mut self, addr: IpAddr, now: Duration) -> bool {
        if self.buckets.len() >= MAX_TRACKED && !self.buckets.contains_key(&addr) {
            // Buckets that have refilled carry no information: drop them.
            let (rate, burst) = (self.per_second, self.burst);
            self.buckets.retain(|_, (tokens, at)| {
                *tokens + now.saturating_sub(*at).as_secs_f64() * rate < burst
            });
            if self.buckets.len() >= MAX_TRACKED {
                self.refused += 1;
                *self.flooders.entry(addr).or_default() += 1;
                return false;
            }
        }
        let (tokens, at) = self.buckets.entry(addr).or_insert((self.burst, now));
        *tokens =
            (*tokens + now.saturating_sub(*at).as_secs_f64() * self.per_second).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            self.refused += 1;
            *self.flooders.entry(addr).or_default() += 1;
            false
        }
    }

    /// Addresses refused since the last call, with how many attempts each.
    pub fn take_flooders(&mut self) -> Vec<(IpAddr, u64)> {
        let mut v: Vec<_> = self.flooders.drain().collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn income_within_the_fish_rate_and_credits_passes_and_more_is_caught() {
        let mut w = IncomeWatch::default();
        let s = Duration::from_secs;
        assert_eq!(w.observe(1, 100, 2.0, s(0)), None);
        // 10 s at 2/s: up to 121 is possible.
        assert_eq!(w.observe(1, 120, 2.0, s(10)), None);
        // Spending is never suspicious.
        assert_eq!(w.observe(1, 5, 2.0, s(11)), None);
        // A grant of 1000 is credited.
        w.credit(1, 1000);
        assert_eq!(w.observe(1, 1005, 2.0, s(12)), None);
        // 1 s later, 500 more is impossible.
        let caught = w.observe(1, 1505, 2.0, s(13)).unwrap();
        assert!(caught.contains("1005 to 1505"), "{caught}");
        // The new balance is the baseline: no repeated report.
        assert_eq!(w.observe(1, 1505, 2.0, s(14)), None);
        w.forget(1);
        assert_eq!(w.observe(1, 9_999_999, 0.0, s(15)), None);
    }

    #[test]
    fn clock_skew_over_the_limit() {
        let max = Duration::from_secs(60);
        assert_eq!(clock_skew(1_000_000, 1_030_000, max), None);
        assert_eq!(clock_skew(1_000_000, 1_090_000, max), Some(90_000));
        assert_eq!(clock_skew(1_090_000, 1_000_000, max), Some(90_000));
        let mut r = SkewReports::default();
        assert!(r.first(3));
        assert!(!r.first(3));
        r.forget(3);
        assert!(r.first(3));
    }

    #[test]
    fn address_gate_limits_each_address_alone() {
        let mut g = AddressGate::new(2.0, 4.0);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let t = Duration::from_millis;
        let allowed = (0..10).filter(|_| g.allow(a, t(0))).count();
        assert_eq!(allowed, 4, "the burst");
        assert!(g.allow(b, t(0)), "another address is unaffected");
        assert!(!g.allow(a, t(100)));
        assert!(g.allow(a, t(600)), "refilled at 2/s");
        assert_eq!(g.refused, 7);
        assert_eq!(g.take_flooders(), vec![(a, 7)]);
        assert!(g.take_flooders().is_empty());
    }
}
