//! The aquarium's saved player data: what the framework's data store keeps for it
//! ([`Aquarium`], a [`PlayerData`]), its migrations, validation, merge rules and offline gifts.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{Config, ConfigError};
use crate::datastore::PlayerData;
use crate::reconcile::Rule;

/// The aquarium's profile: the framework's envelope around [`Aquarium`].
pub type Profile = crate::datastore::Profile<Aquarium>;
/// The aquarium's profiles in play.
pub type DataStoreState = crate::datastore::DataStoreState<Aquarium>;
/// A live aquarium profile.
pub type LiveProfile = crate::datastore::LiveProfile<Aquarium>;

/// A fish in a tank.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fish {
    /// Unique within the profile.
    pub id: u64,
    /// Species index (into the game's species table).
    pub species: u8,
    /// The player's name for it.
    #[serde(default)]
    pub name: String,
    /// 0 (fed) .. 100 (starving).
    #[serde(default)]
    pub hunger: f32,
    /// The trade it arrived by (until it goes home in a reversal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_trade: Option<u64>,
}

/// The player's tank.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tank {
    /// 1..=5.
    pub level: u8,
    /// Decoration item ids placed in it.
    #[serde(default)]
    pub decorations: Vec<String>,
}

/// Progress figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Player level.
    pub level: u32,
    /// Experience points.
    pub experience: u64,
    /// Coins (never negative).
    pub coins: i64,
}

/// A player's aquarium, as saved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Aquarium {
    /// Items by id and count.
    pub inventory: BTreeMap<String, u32>,
    /// Level, experience, coins.
    pub stats: Stats,
    /// Achievement ids.
    pub achievements: BTreeSet<String>,
    /// The tank.
    pub tank: Tank,
    /// The fish.
    pub fish: Vec<Fish>,
    /// The player's settings.
    pub settings: BTreeMap<String, String>,
    /// When the server last saw the player, and the daily reward's streak.
    #[serde(default)]
    pub away: crate::game::rules::Away,
}

/// What waits for an offline player (an admin's grant, a gift).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum OfflineGift {
    /// Coins.
    Coins {
        /// How many.
        amount: i64,
        /// From whom.
        from: u64,
    },
    /// An item.
    Item {
        /// Item id.
        item: String,
        /// How many.
        count: u32,
        /// From whom.
        from: u64,
    },
    /// One side's goods of a trade.
    Parcel {
        /// From whom.
        from: u64,
        /// The trade.
        trade: u64,
        /// The goods.
        parcel: crate::game::rules::Parcel,
    },
}

impl Aquarium {
    /// A new player's aquarium with `starting_coins`.
    pub fn new(starting_coins: i64) -> Self {
        Self {
            inventory: BTreeMap::new(),
            stats: Stats {
                level: 1,
                experience: 0,
                coins: starting_coins,
            },
            achievements: BTreeSet::new(),
            tank: Tank {
                level: 1,
                decorations: Vec::new(),
            },
            fish: Vec::new(),
            settings: BTreeMap::new(),
            away: crate::game::rules::Away::default(),
        }
    }
}

impl PlayerData for Aquarium {
    /// Version 2: coins in `stats.coins`.
    const SCHEMA_VERSION: u32 = 2;
    type Offline = OfflineGift;

    fn template(config: &Config) -> Result<Self, ConfigError> {
        Ok(Self::new(config.get("game.startingCoins")?))
    }

    fn migrate(from: u32, doc: &mut Value) -> Result<(), String> {
        match from {
            // v1 kept coins at the top level as `money`; v2 has them in `stats.coins`.
            1 => {
                if let Some(obj) = doc.as_object_mut() {
                    let money = obj.remove("money");
                    let stats = obj
                        .entry("stats")
                        .or_insert_with(|| Value::Object(Default::default()));
                    if let (Some(money), Some(stats)) = (money, stats.as_object_mut()) {
                        stats.entry("coins").or_insert(money);
                    }
                }
                Ok(())
            }
            _ => Err(format!("no migration from version {from}")),
        }
    }

    fn validate(&self) -> Result<(), String> {
        if self.stats.coins < 0 {
            return Err(format!("coins {} is negative", self.stats.coins));
        }
        if !(1..=5).contains(&self.tank.level) {
            return Err(format!("tank level {} is not 1..=5", self.tank.level));
        }
        for f in &self.fish {
            if !f.hunger.is_finite() {
                return Err(format!("fish {} has a non-finite hunger", f.id));
            }
            if !(0.0..=100.0).contains(&f.hunger) {
                return Err(format!("fish {} hunger {} is not 0..=100", f.id, f.hunger));
            }
        }
        Ok(())
    }

    /// The leaderboard ranks by coins.
    fn score(&self) -> Option<i64> {
        Some(self.stats.coins)
    }

    fn apply_offline(&mut self, message: &OfflineGift) {
        match message {
            OfflineGift::Coins { amount, .. } => {
                self.stats.coins = self.stats.coins.saturating_add(*amount);
            }
            OfflineGift::Item { item, count, .. } => {
                *self.inventory.entry(item.clone()).or_default() += count;
            }
            OfflineGift::Parcel { trade, parcel, .. } => {
                crate::game::rules::put_parcel(self, parcel, *trade);
            }
        }
    }

    /// Coins and experience are counters, levels only go up, collections are sets, a fed fish
    /// stays fed, names and settings take the latest write.
    fn merge_policy() -> Vec<(&'static str, Rule)> {
        vec![
            ("stats.coins", Rule::Counter),
            ("stats.experience", Rule::Counter),
            ("stats.level", Rule::Max),
            ("inventory.*", Rule::Counter),
            ("achievements", Rule::Set),
            ("tank.level", Rule::Max),
            ("tank.decorations", Rule::Set),
            ("fish.*.hunger", Rule::Min),
            ("fish.*.name", Rule::Latest),
            ("settings.*", Rule::Latest),
            ("away.last_seen_ms", Rule::Max),
            ("away.daily_day", Rule::Max),
            ("away.daily_streak", Rule::Latest),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datastore::{DecodeError, MAX_PROFILE_BYTES, decode_profile};

    fn template() -> Value {
        serde_json::to_value(Aquarium::new(100)).unwrap()
    }

    #[test]
    fn stored_aquariums_read_as_before() {
        let stored = serde_json::json!({
            "schema_version": 2, "player_id": 7,
            "stats": {"level": 9, "coins": 55},
            "fish": [{"id": 1, "species": 2}],
        });
        let p: Profile =
            decode_profile(&serde_json::to_vec(&stored).unwrap(), 7, &template()).unwrap();
        assert_eq!(p.stats.level, 9);
        assert_eq!(
            p.stats.coins, 55,
            "existing value kept, not the template's 100"
        );
        assert_eq!(p.stats.experience, 0, "missing key filled");
        assert_eq!(p.tank.level, 1);
        assert_eq!(p.fish[0].hunger, 0.0);
    }

    #[test]
    fn v1_money_migrates_to_stats_coins() {
        let v1 = serde_json::json!({"player_id": 3, "money": 42});
        let p: Profile = decode_profile(&serde_json::to_vec(&v1).unwrap(), 3, &template()).unwrap();
        assert_eq!(p.stats.coins, 42);
        assert_eq!(p.schema_version, Aquarium::SCHEMA_VERSION);
        let wrong = serde_json::json!({"schema_version": 2, "stats": {"coins": "lots"}});
        assert!(matches!(
            decode_profile::<Aquarium>(&serde_json::to_vec(&wrong).unwrap(), 1, &template()),
            Err(DecodeError::Shape(_))
        ));
    }

    #[test]
    fn validation_refuses_bad_saves() {
        let mut p = Profile::new(1, Aquarium::new(10));
        assert!(p.validate().is_ok());
        p.fish.push(Fish {
            id: 1,
            species: 0,
            name: String::new(),
            hunger: f32::NAN,
            from_trade: None,
        });
        assert!(p.validate().unwrap_err().contains("non-finite"));
        p.fish[0].hunger = 10.0;
        p.stats.coins = -1;
        assert!(p.validate().unwrap_err().contains("negative"));
        p.stats.coins = 0;
        p.settings
            .insert("big".into(), "x".repeat(MAX_PROFILE_BYTES));
        assert!(p.validate().unwrap_err().contains("limit"));
    }

    /// `game.startingCoins` is what a new player's profile holds.
    #[test]
    fn a_new_profile_starts_with_the_configured_coins() {
        let d = crate::config::defaults_with_game_for_tests(&crate::game::KEYS);
        assert_eq!(Aquarium::template(&d).unwrap().stats.coins, 100);
        let c = crate::config::changed_for_tests(
            &crate::game::KEYS,
            &[("game.startingCoins", crate::protocol::ConfigValue::Int(7))],
        );
        assert_eq!(Aquarium::template(&c).unwrap().stats.coins, 7);
    }
}
