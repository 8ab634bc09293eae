//! Coming back: what the fish earned while the player was away, and the daily reward.
//!
//! - **Earnings while away**: from the last time the server saw the player with fish (the
//!   profile's `away.last_seen_ms`, on the server's clock) to now, if that is at least a minute
//!   ([`MIN_AWAY_SECS`]: a reconnect is not being away), capped at
//!   `game.offlineEarningsCapHours`, the fish earn by the same rules as online ([`advance`] in
//!   one-minute steps): they get hungrier as they go, and a starving fish earns nothing.
//! - **Daily reward**: claimed by the client (`ClaimDaily`; the window claims it by itself), once
//!   per day, the day starting at `game.dailyResetHourUtc` (UTC). Claimed
//!   on the day after the last claim, the streak grows; after a missed day it starts again at
//!   one. The coins are `game.dailyRewards[streak - 1]`, the list's last amount once the streak
//!   is longer than the list.

use serde::{Deserialize, Serialize};

use super::economy::{Catalog, advance};
use crate::config::{Config, ConfigError};
use crate::game::data::Profile;

/// What a profile keeps for coming back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Away {
    /// When the server last saw the player with fish, Unix ms (server clock; 0: never).
    #[serde(default)]
    pub last_seen_ms: u64,
    /// The day of the last daily reward ([`day_of`]; 0: none yet).
    #[serde(default)]
    pub daily_day: i64,
    /// Days in a row the reward was claimed.
    #[serde(default)]
    pub daily_streak: u32,
}

/// The coming-back rules, from the `game.*` keys.
#[derive(Debug, Clone, PartialEq)]
pub struct AwayRules {
    /// The most time away that earns.
    pub cap_secs: f64,
    /// Hunger per minute (`game.hungerPerMinute`).
    pub hunger_per_minute: f64,
    /// Daily reward by streak day.
    pub daily: Vec<i64>,
    /// The hour (UTC) a new day starts.
    pub reset_hour: u32,
}

impl AwayRules {
    /// From `game.offlineEarningsCapHours`, `game.hungerPerMinute`, `game.dailyRewards` and
    /// `game.dailyResetHourUtc`.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        Ok(Self {
            cap_secs: config.get::<f64>("game.offlineEarningsCapHours")?.max(0.0) * 3600.0,
            hunger_per_minute: config.get("game.hungerPerMinute")?,
            daily: config.get("game.dailyRewards")?,
            reset_hour: config.get::<i64>("game.dailyResetHourUtc")?.clamp(0, 23) as u32,
        })
    }
}

/// Time away below this earns nothing (a reconnect, a quick restart).
pub const MIN_AWAY_SECS: u64 = 60;

/// One step of the simulation while away.
const STEP_SECS: f64 = 60.0;

/// Credits what the fish earned between `away.last_seen_ms` and `now_ms` (capped), raises their
/// hunger the same way, and marks the player seen now. Returns (seconds away, coins earned).
pub fn earn_while_away(
    profile: &mut Profile,
    catalog: &Catalog,
    rules: &AwayRules,
    now_ms: u64,
) -> (u64, i64) {
    let last = profile.away.last_seen_ms;
    profile.away.last_seen_ms = now_ms;
    // Never seen, or a clock that went back: nothing earned.
    if last == 0 || now_ms <= last {
        return (0, 0);
    }
    let away_secs = (now_ms - last) / 1000;
    if away_secs < MIN_AWAY_SECS {
        return (away_secs, 0);
    }
    let mut left = (away_secs as f64).min(rules.cap_secs);
    let (mut earned, mut carry) = (0i64, 0.0);
    while left > 0.0 && !profile.fish.is_empty() {
        let step = left.min(STEP_SECS);
        earned = earned.saturating_add(advance(
            profile,
            catalog,
            rules.hunger_per_minute,
            step,
            &mut carry,
        ));
        left -= step;
        if catalog.income_per_second(profile) <= 0.0 && rules.hunger_per_minute > 0.0 {
            // Every fish is starving: the rest earns nothing and hunger is at its top.
            for f in &mut profile.fish {
                f.hunger = 100.0;
            }
            break;
        }
    }
    (away_secs, earned)
}

/// The day `now_ms` falls in, days starting at `reset_hour` UTC.
pub fn day_of(now_ms: u64, reset_hour: u32) -> i64 {
    let shifted = now_ms as i64 - i64::from(reset_hour) * 3_600_000;
    shifted.div_euclid(86_400_000)
}

/// Milliseconds from `now_ms` to the start of the next day.
pub fn until_next_day(now_ms: u64, reset_hour: u32) -> u64 {
    let next = (day_of(now_ms, reset_hour) + 1) * 86_400_000 + i64::from(reset_hour) * 3_600_000;
    (next - now_ms as i64).max(0) as u64
}

/// The daily reward, if today's is not claimed yet: credits it and returns (coins, streak).
pub fn claim_daily(profile: &mut Profile, rules: &AwayRules, now_ms: u64) -> Option<(i64, u32)> {
    let today = day_of(now_ms, rules.reset_hour);
    let last = profile.away.daily_day;
    if last >= today || rules.daily.is_empty() {
        return None;
    }
    let streak = if last == today - 1 {
        profile.away.daily_streak.saturating_add(1)
    } else {
        1
    };
    let index = (streak as usize).min(rules.daily.len()) - 1;
    let coins = rules.daily[index].max(0);
    profile.away.daily_day = today;
    profile.away.daily_streak = streak;
    profile.stats.coins = profile.stats.coins.saturating_add(coins);
    Some((coins, streak))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::game::data::Fish;

    const HOUR_MS: u64 = 3_600_000;
    const DAY_MS: u64 = 24 * HOUR_MS;

    fn catalog() -> Catalog {
        Catalog::from_config(&crate::config::defaults_with_game_for_tests(
            &crate::game::KEYS,
        ))
        .unwrap()
    }

    fn rules(hunger: f64) -> AwayRules {
        AwayRules {
            cap_secs: 8.0 * 3600.0,
            hunger_per_minute: hunger,
            daily: vec![50, 75, 100],
            reset_hour: 6,
        }
    }

    fn with_fish(n: usize) -> Profile {
        let mut p = Profile::new(1, crate::game::Aquarium::new(0));
        for i in 0..n {
            p.fish.push(Fish {
                id: i as u64 + 1,
                species: 0,
                name: format!("f{i}"),
                hunger: 0.0,
                from_trade: None,
            });
        }
        p
    }

    #[test]
    fn fish_earn_while_away_by_the_same_rules_up_to_the_cap() {
        let c = catalog();
        let rate = c.income_per_second(&with_fish(2));
        // Without hunger: two hours earn two hours of income.
        let mut p = with_fish(2);
        p.away.last_seen_ms = 1_000 * HOUR_MS;
        let (away, earned) = earn_while_away(&mut p, &c, &rules(0.0), 1_002 * HOUR_MS);
        assert_eq!(away, 7200);
        assert!(
            (earned as f64 - rate * 7200.0).abs() <= 1.0,
            "{earned} vs {}",
            rate * 7200.0
        );
        assert_eq!(p.stats.coins, earned);
        assert_eq!(p.away.last_seen_ms, 1_002 * HOUR_MS);
        // Three days away earn only the cap's eight hours.
        let mut p = with_fish(2);
        p.away.last_seen_ms = 1_000 * HOUR_MS;
        let (_, capped) = earn_while_away(&mut p, &c, &rules(0.0), 1_072 * HOUR_MS);
        assert!((capped as f64 - rate * 8.0 * 3600.0).abs() <= 1.0);
        // With hunger at 5 a minute the fish starve after 20 minutes: about ten minutes of full
        // income, however long the player was away.
        let mut p = with_fish(2);
        p.away.last_seen_ms = 1_000 * HOUR_MS;
        let (_, hungry) = earn_while_away(&mut p, &c, &rules(5.0), 1_002 * HOUR_MS);
        assert!(
            (hungry as f64 - rate * 600.0).abs() <= rate * 60.0 + 1.0,
            "{hungry}"
        );
        assert!(p.fish.iter().all(|f| f.hunger == 100.0));
        // Under a minute away (a reconnect) earns nothing.
        let mut p = with_fish(2);
        p.away.last_seen_ms = 1_000 * HOUR_MS;
        assert_eq!(
            earn_while_away(&mut p, &c, &rules(0.0), 1_000 * HOUR_MS + 59_000),
            (59, 0)
        );
        // Never seen, and a clock that went back, earn nothing.
        let mut p = with_fish(2);
        assert_eq!(
            earn_while_away(&mut p, &c, &rules(0.0), 5 * HOUR_MS),
            (0, 0)
        );
        p.away.last_seen_ms = 9 * HOUR_MS;
        assert_eq!(
            earn_while_away(&mut p, &c, &rules(0.0), 5 * HOUR_MS),
            (0, 0)
        );
        assert_eq!(p.stats.coins, 0);
    }

    #[test]
    fn the_daily_reward_once_a_day_with_a_streak() {
        let r = rules(0.0);
        // Days start at 06:00 UTC.
        let day0 = 20_000 * DAY_MS + 6 * HOUR_MS;
        assert_eq!(day_of(day0, 6), 20_000);
        assert_eq!(day_of(day0 - 1, 6), 19_999);
        assert_eq!(until_next_day(day0, 6), DAY_MS);
        assert_eq!(until_next_day(day0 - 1, 6), 1);
        let mut p = with_fish(0);
        assert_eq!(claim_daily(&mut p, &r, day0), Some((50, 1)));
        assert_eq!(
            claim_daily(&mut p, &r, day0 + 17 * HOUR_MS),
            None,
            "once a day"
        );
        assert_eq!(claim_daily(&mut p, &r, day0 + DAY_MS), Some((75, 2)));
        assert_eq!(claim_daily(&mut p, &r, day0 + 2 * DAY_MS), Some((100, 3)));
        // Past the list's end the last amount repeats.
        assert_eq!(claim_daily(&mut p, &r, day0 + 3 * DAY_MS), Some((100, 4)));
        assert_eq!(p.stats.coins, 325);
        // A missed day starts the streak again.
        assert_eq!(claim_daily(&mut p, &r, day0 + 5 * DAY_MS), Some((50, 1)));
        // An empty list gives nothing.
        let none = AwayRules { daily: vec![], ..r };
        assert_eq!(claim_daily(&mut p, &none, day0 + 9 * DAY_MS), None);
    }

    #[test]
    fn the_coming_back_keys_set_the_rules() {
        use crate::protocol::ConfigValue::{Float, Int, List};
        let changed = crate::config::changed_for_tests(
            &crate::game::KEYS,
            &[
                ("game.offlineEarningsCapHours", Float(2.5)),
                ("game.dailyRewards", List(vec![Int(7), Int(9)])),
                ("game.dailyResetHourUtc", Int(13)),
            ],
        );
        let r = AwayRules::from_config(&changed).unwrap();
        assert_eq!(r.cap_secs, 9000.0);
        assert_eq!(r.daily, vec![7, 9]);
        assert_eq!(r.reset_hour, 13);
    }
}
