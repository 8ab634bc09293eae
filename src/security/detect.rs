//! Detectors for suspicious activity, as plain types: impossible income and clock skew. (The
//! per-address limit on connection attempts is the transport's `AddressGate`.)

use std::collections::{HashMap, HashSet};
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
}
