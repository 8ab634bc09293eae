//! The player profile: typed, versioned, migrated, reconciled with the template, validated.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The profile schema version this build writes.
pub const PROFILE_SCHEMA_VERSION: u32 = 2;
/// Largest encoded profile accepted (as Roblox's DataStore).
pub const MAX_PROFILE_BYTES: usize = 4 * 1024 * 1024;

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

/// A player's saved data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Schema version of this document.
    pub schema_version: u32,
    /// The player.
    pub player_id: u64,
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
    /// Offline messages already applied (exactly once).
    pub applied_messages: BTreeSet<u64>,
    /// The most recent operations that changed this profile (at most [`MAX_PROFILE_OPS`]),
    /// oldest first.
    #[serde(default)]
    pub operations: Vec<OpRecord>,
}

/// Operations kept with a profile.
pub const MAX_PROFILE_OPS: usize = 32;

/// An operation that changed a profile, as kept with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpRecord {
    /// The operation log's id.
    pub id: u64,
    /// Wall clock, ms since the Unix epoch.
    pub at_ms: u64,
    /// Who.
    pub actor: String,
    /// What kind.
    pub kind: String,
    /// Details.
    pub detail: String,
}

impl Profile {
    /// Keeps an operation with the profile (the oldest falls out past [`MAX_PROFILE_OPS`]).
    pub fn remember(&mut self, op: OpRecord) {
        if self.operations.len() >= MAX_PROFILE_OPS {
            self.operations.remove(0);
        }
        self.operations.push(op);
    }

    /// A new player's profile (`initialize_player_data`).
    pub fn template(player_id: u64, starting_coins: i64) -> Self {
        Self {
            schema_version: PROFILE_SCHEMA_VERSION,
            player_id,
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
            applied_messages: BTreeSet::new(),
            operations: Vec::new(),
        }
    }

    /// Checks what a save must satisfy: finite numbers, sane ranges, the size limit.
    pub fn validate(&self) -> Result<Vec<u8>, String> {
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
        let bytes = serde_json::to_vec(self).map_err(|e| e.to_string())?;
        if bytes.len() > MAX_PROFILE_BYTES {
            return Err(format!(
                "{} bytes, over the {MAX_PROFILE_BYTES}-byte limit",
                bytes.len()
            ));
        }
        Ok(bytes)
    }
}

/// Why a stored document could not become a profile.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON.
    #[error("not a profile document: {0}")]
    NotJson(String),
    /// From a newer build.
    #[error("schema version {0} is newer than this build's {PROFILE_SCHEMA_VERSION}")]
    TooNew(u32),
    /// JSON, but not a profile even after migration and reconcile.
    #[error("profile does not fit the schema: {0}")]
    Shape(String),
}

/// Migrates `doc` up to [`PROFILE_SCHEMA_VERSION`] one version at a time.
pub fn migrate(mut doc: Value) -> Result<Value, DecodeError> {
    let mut version = doc
        .get("schema_version")
        .and_then(Value::as_u64)
        .unwrap_or(1) as u32;
    if version > PROFILE_SCHEMA_VERSION {
        return Err(DecodeError::TooNew(version));
    }
    while version < PROFILE_SCHEMA_VERSION {
        match version {
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
            }
            _ => {
                return Err(DecodeError::Shape(format!(
                    "no migration from version {version}"
                )));
            }
        }
        version += 1;
        if let Some(obj) = doc.as_object_mut() {
            obj.insert("schema_version".into(), Value::from(version));
        }
    }
    Ok(doc)
}

/// Fills keys missing from `doc` with the template's, recursively, never overwriting anything
/// (ProfileStore's Reconcile).
pub fn reconcile(doc: &mut Value, template: &Value) {
    if let (Some(d), Some(t)) = (doc.as_object_mut(), template.as_object()) {
        for (k, tv) in t {
            match d.get_mut(k) {
                Some(dv) => reconcile(dv, tv),
                None => {
                    d.insert(k.clone(), tv.clone());
                }
            }
        }
    }
}

/// Decodes a stored document: migrate, reconcile with the template, then type it.
pub fn decode(bytes: &[u8], player_id: u64, starting_coins: i64) -> Result<Profile, DecodeError> {
    let doc: Value =
        serde_json::from_slice(bytes).map_err(|e| DecodeError::NotJson(e.to_string()))?;
    let mut doc = migrate(doc)?;
    let template = serde_json::to_value(Profile::template(player_id, starting_coins))
        .map_err(|e| DecodeError::Shape(e.to_string()))?;
    reconcile(&mut doc, &template);
    serde_json::from_value(doc).map_err(|e| DecodeError::Shape(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconcile_fills_missing_and_keeps_existing() {
        let stored = serde_json::json!({
            "schema_version": 2, "player_id": 7,
            "stats": {"level": 9, "coins": 55},
            "fish": [{"id": 1, "species": 2}],
        });
        let p = decode(&serde_json::to_vec(&stored).unwrap(), 7, 100).unwrap();
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
        let p = decode(&serde_json::to_vec(&v1).unwrap(), 3, 100).unwrap();
        assert_eq!(p.stats.coins, 42);
        assert_eq!(p.schema_version, PROFILE_SCHEMA_VERSION);
    }

    #[test]
    fn newer_and_garbage_documents_are_refused() {
        let v9 = serde_json::json!({"schema_version": 9});
        assert_eq!(
            decode(&serde_json::to_vec(&v9).unwrap(), 1, 0),
            Err(DecodeError::TooNew(9))
        );
        assert!(matches!(
            decode(b"\x00\x01", 1, 0),
            Err(DecodeError::NotJson(_))
        ));
        let wrong = serde_json::json!({"schema_version": 2, "stats": {"coins": "lots"}});
        assert!(matches!(
            decode(&serde_json::to_vec(&wrong).unwrap(), 1, 0),
            Err(DecodeError::Shape(_))
        ));
    }

    #[test]
    fn validation_refuses_bad_saves() {
        let mut p = Profile::template(1, 10);
        assert!(p.validate().is_ok());
        p.fish.push(Fish {
            id: 1,
            species: 0,
            name: String::new(),
            hunger: f32::NAN,
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
}
