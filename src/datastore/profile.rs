//! A player's saved data: the game's own type ([`PlayerData`]) inside the framework's envelope
//! ([`Profile`]: schema version, player id, offline messages applied, recent operations),
//! versioned, migrated, reconciled with the template and validated.
//!
//! The envelope's fields sit beside the game's in one JSON document (the game's are flattened
//! into it), so a game's migrations see the whole stored document.

use std::collections::BTreeSet;
use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{Config, ConfigError};
use crate::reconcile::Rule;

/// Largest encoded profile accepted (as Roblox's DataStore).
pub const MAX_PROFILE_BYTES: usize = 4 * 1024 * 1024;

/// A game's per-player saved data, as the framework's data store, reconciliation and offline
/// inbox handle it.
pub trait PlayerData:
    Serialize + DeserializeOwned + Clone + PartialEq + Debug + Send + Sync + 'static
{
    /// The schema version this build writes (stored as the document's `schema_version`).
    const SCHEMA_VERSION: u32;

    /// What another player or an admin can send a player who is offline (applied exactly once
    /// at their next load).
    type Offline: Serialize + DeserializeOwned + Clone + PartialEq + Debug + Send + Sync + 'static;

    /// A new player's data, from the game's config keys.
    fn template(config: &Config) -> Result<Self, ConfigError>;

    /// One migration step of a stored document (the whole document, the envelope's fields
    /// included) from version `from` to `from + 1`.
    fn migrate(from: u32, doc: &mut Value) -> Result<(), String> {
        let _ = doc;
        Err(format!("no migration from version {from}"))
    }

    /// What a save must satisfy beyond its type (ranges, finite numbers).
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }

    /// Applies an offline message at load.
    fn apply_offline(&mut self, message: &Self::Offline);

    /// What the store-wide leaderboard ranks this player by, if the game has one (written in
    /// the same transaction as each save).
    fn score(&self) -> Option<i64> {
        None
    }

    /// How concurrent writes of each field merge under the `Automatic` strategy: paths into the
    /// game's fields (`stats.points`, `items.*`, `pets.*.name`) and their rules.
    fn merge_policy() -> Vec<(&'static str, Rule)>;
}

/// A player's profile: the framework's envelope around the game's data. Dereferences to the
/// game's data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile<D> {
    /// Schema version of this document.
    pub schema_version: u32,
    /// The player.
    pub player_id: u64,
    /// The game's data.
    #[serde(flatten)]
    pub data: D,
    /// Offline messages already applied (exactly once).
    #[serde(default)]
    pub applied_messages: BTreeSet<u64>,
    /// The most recent operations that changed this profile (at most [`MAX_PROFILE_OPS`]),
    /// oldest first.
    #[serde(default)]
    pub operations: Vec<OpRecord>,
}

impl<D> std::ops::Deref for Profile<D> {
    type Target = D;
    fn deref(&self) -> &D {
        &self.data
    }
}

impl<D> std::ops::DerefMut for Profile<D> {
    fn deref_mut(&mut self) -> &mut D {
        &mut self.data
    }
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

impl OpRecord {
    /// An operation on `player`'s profile by `actor`, written to reconciliation's operation log
    /// (which gives its id) and returned to keep with the profile (`DataStoreState::apply_op`).
    pub fn logged(
        reconciler: &mut crate::reconcile::Reconciler,
        (player, actor): (u64, u64),
        kind: &str,
        payload: Value,
        at_ms: u64,
    ) -> Self {
        let detail = payload.to_string();
        Self {
            id: reconciler.record_operation(&player.to_string(), kind, payload, at_ms),
            at_ms,
            actor: actor.to_string(),
            kind: kind.into(),
            detail,
        }
    }
}

/// The merge rules of the envelope's own fields, beside a game's [`PlayerData::merge_policy`].
pub fn envelope_policy() -> Vec<(&'static str, Rule)> {
    vec![
        ("applied_messages", Rule::Set),
        ("schema_version", Rule::Max),
    ]
}

/// The whole Automatic policy for profiles of `D`: the envelope's rules and the game's.
pub fn policy_of<D: PlayerData>() -> crate::reconcile::Policy {
    envelope_policy()
        .into_iter()
        .chain(D::merge_policy())
        .map(|(k, r)| (k.to_string(), r))
        .collect()
}

impl<D: PlayerData> Profile<D> {
    /// A new player's profile around `data` (the game's template).
    pub fn new(player_id: u64, data: D) -> Self {
        Self {
            schema_version: D::SCHEMA_VERSION,
            player_id,
            data,
            applied_messages: BTreeSet::new(),
            operations: Vec::new(),
        }
    }

    /// Keeps an operation with the profile (the oldest falls out past [`MAX_PROFILE_OPS`]).
    pub fn remember(&mut self, op: OpRecord) {
        if self.operations.len() >= MAX_PROFILE_OPS {
            self.operations.remove(0);
        }
        self.operations.push(op);
    }

    /// Checks what a save must satisfy (the game's rules, the size limit); the encoded
    /// document.
    pub fn validate(&self) -> Result<Vec<u8>, String> {
        self.data.validate()?;
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
    #[error("schema version {0} is newer than this build's {1}")]
    TooNew(u32, u32),
    /// JSON, but not a profile even after migration and reconcile.
    #[error("profile does not fit the schema: {0}")]
    Shape(String),
}

/// Migrates `doc` up to `D`'s schema version one version at a time.
pub fn migrate<D: PlayerData>(mut doc: Value) -> Result<Value, DecodeError> {
    let mut version = doc
        .get("schema_version")
        .and_then(Value::as_u64)
        .unwrap_or(1) as u32;
    if version > D::SCHEMA_VERSION {
        return Err(DecodeError::TooNew(version, D::SCHEMA_VERSION));
    }
    while version < D::SCHEMA_VERSION {
        D::migrate(version, &mut doc).map_err(DecodeError::Shape)?;
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

/// Decodes a stored document: migrate, reconcile with the template (the game's template data as
/// JSON: its fields sit at the document's top level), then type it.
pub fn decode<D: PlayerData>(
    bytes: &[u8],
    player_id: u64,
    template: &Value,
) -> Result<Profile<D>, DecodeError> {
    let doc: Value =
        serde_json::from_slice(bytes).map_err(|e| DecodeError::NotJson(e.to_string()))?;
    let mut doc = migrate::<D>(doc)?;
    reconcile(&mut doc, template);
    if let Some(obj) = doc.as_object_mut() {
        obj.entry("player_id").or_insert(Value::from(player_id));
    }
    serde_json::from_value(doc).map_err(|e| DecodeError::Shape(e.to_string()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small game's data for the framework's own tests.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub(crate) struct Tally {
        pub points: i64,
        #[serde(default)]
        pub level: u32,
        #[serde(default)]
        pub notes: Vec<String>,
    }

    impl PlayerData for Tally {
        const SCHEMA_VERSION: u32 = 2;
        type Offline = i64;
        fn template(_: &Config) -> Result<Self, ConfigError> {
            Ok(Self {
                points: 100,
                level: 1,
                notes: Vec::new(),
            })
        }
        // v1 kept `score` at the top level; v2 calls it `points`.
        fn migrate(from: u32, doc: &mut Value) -> Result<(), String> {
            match (from, doc.as_object_mut()) {
                (1, Some(obj)) => {
                    if let Some(score) = obj.remove("score") {
                        obj.entry("points").or_insert(score);
                    }
                    Ok(())
                }
                _ => Err(format!("no migration from version {from}")),
            }
        }
        fn validate(&self) -> Result<(), String> {
            if self.points < 0 {
                Err(format!("points {} is negative", self.points))
            } else {
                Ok(())
            }
        }
        fn apply_offline(&mut self, message: &i64) {
            self.points = self.points.saturating_add(*message);
        }
        fn merge_policy() -> Vec<(&'static str, Rule)> {
            vec![("points", Rule::Counter), ("level", Rule::Max)]
        }
    }

    pub(crate) fn fresh() -> Tally {
        Tally {
            points: 100,
            level: 1,
            notes: Vec::new(),
        }
    }

    fn template() -> Value {
        serde_json::json!({"points": 100, "level": 1, "notes": []})
    }

    #[test]
    fn reconcile_fills_missing_and_keeps_existing() {
        let stored = serde_json::json!({"schema_version": 2, "player_id": 7, "points": 55});
        let p: Profile<Tally> =
            decode(&serde_json::to_vec(&stored).unwrap(), 7, &template()).unwrap();
        assert_eq!(p.points, 55, "existing value kept, not the template's 100");
        assert_eq!(p.level, 1, "missing key filled");
        assert!(p.applied_messages.is_empty());
    }

    #[test]
    fn the_game_migrates_old_documents() {
        let v1 = serde_json::json!({"player_id": 3, "score": 42});
        let p: Profile<Tally> = decode(&serde_json::to_vec(&v1).unwrap(), 3, &template()).unwrap();
        assert_eq!(p.points, 42);
        assert_eq!(p.schema_version, 2);
    }

    #[test]
    fn newer_and_garbage_documents_are_refused() {
        let v9 = serde_json::json!({"schema_version": 9});
        assert_eq!(
            decode::<Tally>(&serde_json::to_vec(&v9).unwrap(), 1, &template()),
            Err(DecodeError::TooNew(9, 2))
        );
        assert!(matches!(
            decode::<Tally>(b"\x00\x01", 1, &template()),
            Err(DecodeError::NotJson(_))
        ));
        let wrong = serde_json::json!({"schema_version": 2, "points": "lots"});
        assert!(matches!(
            decode::<Tally>(&serde_json::to_vec(&wrong).unwrap(), 1, &template()),
            Err(DecodeError::Shape(_))
        ));
    }

    #[test]
    fn validation_refuses_bad_saves() {
        let mut p = Profile::new(1, fresh());
        assert!(p.validate().is_ok());
        p.points = -1;
        assert!(p.validate().unwrap_err().contains("negative"));
        p.points = 0;
        p.notes.push("x".repeat(MAX_PROFILE_BYTES));
        assert!(p.validate().unwrap_err().contains("limit"));
    }

    #[test]
    fn the_game_fields_sit_beside_the_envelope_in_one_document() {
        let p = Profile::new(4, fresh());
        let doc = serde_json::to_value(&p).unwrap();
        assert_eq!(doc["points"], 100);
        assert_eq!(doc["player_id"], 4);
        assert_eq!(doc["schema_version"], 2);
        let policy = policy_of::<Tally>();
        assert_eq!(policy.get("points"), Some(&Rule::Counter));
        assert_eq!(policy.get("applied_messages"), Some(&Rule::Set));
    }
}
