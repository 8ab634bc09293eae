//! The income watch, the economy's detector: a player's coins rising faster than their fish can
//! earn, plus what the server credited, is impossible (reported to security as
//! `SuspiciousActivity`).

use std::collections::HashMap;
use std::time::Duration;

/// Watches each live player's coins: a rise above what their fish can earn since the last look,
/// plus what the server credited in between (grants, refunds), is impossible.
#[derive(bevy::prelude::Resource, Debug, Default)]
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
}
