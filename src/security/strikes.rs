//! Strikes that decay, kicks when they pile up, temporary bans after repeated kicks.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// What a strike leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StrikeOutcome {
    /// Counted; nothing more yet.
    Counted(usize),
    /// Enough strikes within the window: kick.
    Kick,
    /// Kicked too often: ban until the given time (ms since the Unix epoch).
    Ban {
        /// When the ban ends.
        until_ms: u64,
    },
}

/// The strike book of a server.
#[derive(Debug, Clone)]
pub struct StrikeBook {
    strikes: HashMap<u64, VecDeque<Duration>>,
    kicks: HashMap<u64, VecDeque<Duration>>,
    /// Strikes within `window` that kick (`security.maxFailedAttempts`).
    pub max_strikes: usize,
    /// `security.rateLimitWindow`.
    pub window: Duration,
    /// Kicks within `ban_window` that ban.
    pub kicks_before_ban: usize,
    /// How far back kicks count.
    pub ban_window: Duration,
    /// How long a ban lasts.
    pub ban_length: Duration,
    /// Strikes counted so far.
    pub total_strikes: u64,
}

impl StrikeBook {
    /// A book with the given limits.
    pub fn new(
        max_strikes: usize,
        window: Duration,
        kicks_before_ban: usize,
        ban_window: Duration,
        ban_length: Duration,
    ) -> Self {
        Self {
            strikes: HashMap::new(),
            kicks: HashMap::new(),
            max_strikes: max_strikes.max(1),
            window,
            kicks_before_ban: kicks_before_ban.max(1),
            ban_window,
            ban_length,
            total_strikes: 0,
        }
    }

    /// Counts a strike against `player` at `now` (app time) / `now_ms` (wall clock, for bans).
    pub fn strike(&mut self, player: u64, now: Duration, now_ms: u64) -> StrikeOutcome {
        self.total_strikes += 1;
        let window = self.window;
        let list = self.strikes.entry(player).or_default();
        list.push_back(now);
        while list
            .front()
            .is_some_and(|t| now.saturating_sub(*t) > window)
        {
            list.pop_front();
        }
        if list.len() < self.max_strikes {
            return StrikeOutcome::Counted(list.len());
        }
        list.clear();
        let ban_window = self.ban_window;
        let kicks = self.kicks.entry(player).or_default();
        kicks.push_back(now);
        while kicks
            .front()
            .is_some_and(|t| now.saturating_sub(*t) > ban_window)
        {
            kicks.pop_front();
        }
        if kicks.len() >= self.kicks_before_ban {
            kicks.clear();
            StrikeOutcome::Ban {
                until_ms: now_ms + self.ban_length.as_millis() as u64,
            }
        } else {
            StrikeOutcome::Kick
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strikes_decay_kick_then_ban() {
        let mut b = StrikeBook::new(
            3,
            Duration::from_secs(60),
            2,
            Duration::from_secs(3600),
            Duration::from_secs(600),
        );
        let s = Duration::from_secs;
        assert_eq!(b.strike(1, s(0), 0), StrikeOutcome::Counted(1));
        assert_eq!(b.strike(1, s(10), 0), StrikeOutcome::Counted(2));
        // The first strike has decayed by t = 70.
        assert_eq!(b.strike(1, s(70), 0), StrikeOutcome::Counted(2));
        assert_eq!(
            b.strike(1, s(71), 0),
            StrikeOutcome::Counted(2),
            "t=10 decayed too"
        );
        assert_eq!(b.strike(1, s(72), 0), StrikeOutcome::Kick);
        for t in 100..102 {
            b.strike(1, s(t), 0);
        }
        assert_eq!(
            b.strike(1, s(102), 1_000),
            StrikeOutcome::Ban { until_ms: 601_000 }
        );
        assert_eq!(
            b.strike(2, s(102), 0),
            StrikeOutcome::Counted(1),
            "players are separate"
        );
    }
}
