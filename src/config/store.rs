//! The configuration store: layered values over the schema, typed and tier-checked access,
//! validated changes, timed overrides, history and stats. Plain Rust; the plugin wraps it.
//!
//! Effective value of a key = its active override, else its runtime value (`set`), else its base
//! value (files and environment on the server; the server's snapshot on a client, plus the
//! player's own ClientSafe preferences), else the schema default.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use super::schema::{Key, Schema, Tier};
use crate::protocol::{ConfigSnapshot, ConfigValue};

/// Which side of the wire this store serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The authoritative server: every tier.
    Server,
    /// A client: ClientSafe and Shared only.
    Client,
}

/// Why a config operation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// No such key in the schema.
    #[error("unknown config key {0}")]
    UnknownKey(String),
    /// A client asked for a ServerOnly key.
    #[error("config key {0} is ServerOnly: not available on a client")]
    ServerOnly(String),
    /// The value breaks the key's type or rules.
    #[error("config key {path}: {reason}")]
    Invalid {
        /// The key.
        path: String,
        /// Why.
        reason: String,
    },
    /// The value exists but not as the requested Rust type.
    #[error("config key {path} is {found}, not {wanted}")]
    WrongType {
        /// The key.
        path: String,
        /// The Rust type asked for.
        wanted: &'static str,
        /// What the value is.
        found: String,
    },
    /// This side may not change this key.
    #[error("config key {path} cannot be changed here: {reason}")]
    Forbidden {
        /// The key.
        path: String,
        /// Why.
        reason: String,
    },
}

/// One recorded change.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Config version after the change.
    pub version: u64,
    /// The key.
    pub path: String,
    /// Who changed it.
    pub actor: String,
    /// When (the app's real time).
    pub at: Duration,
    /// Effective value before.
    pub old: ConfigValue,
    /// Effective value after.
    pub new: ConfigValue,
    /// Why.
    pub reason: String,
}

/// A timed override.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// The value in force until `expires_at`.
    pub value: ConfigValue,
    /// When it lapses.
    pub expires_at: Duration,
    /// Who set it.
    pub actor: String,
}

/// Counters (the seed's config stats).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigStats {
    /// Effective changes recorded.
    pub changes: u64,
    /// Values refused by validation.
    pub validation_failures: u64,
    /// Overrides in force now.
    pub active_overrides: usize,
    /// Overrides ever set.
    pub overrides_used: u64,
    /// Overrides that lapsed.
    pub overrides_expired: u64,
    /// Share of keys whose effective value passes validation, at the last `validate_all`.
    pub schema_compliance: f64,
}

/// The result of [`Config::validate_all`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ValidationReport {
    /// Keys checked.
    pub checked: usize,
    /// Keys that failed, with reasons.
    pub failures: Vec<(String, String)>,
}

impl ValidationReport {
    /// True when every key passed.
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Most changes kept in the history.
pub const HISTORY_CAPACITY: usize = 256;

/// The store. On the server it is the `Config` resource; a client wraps one in `ClientConfig`.
#[derive(bevy::prelude::Resource, Debug, Clone)]
pub struct Config {
    schema: Arc<Schema>,
    side: Side,
    base: BTreeMap<String, ConfigValue>,
    runtime: BTreeMap<String, ConfigValue>,
    overrides: BTreeMap<String, Override>,
    version: u64,
    history: VecDeque<Change>,
    unseen: Vec<Change>,
    stats: ConfigStats,
}

/// Rust types a config value can be read as.
pub trait FromConfig: Sized {
    /// The type's name in errors.
    const NAME: &'static str;
    /// Converts, or `None` when the value is not this type.
    fn from_config(v: &ConfigValue) -> Option<Self>;
}

macro_rules! int_from_config {
    ($($t:ty),*) => {$(
        impl FromConfig for $t {
            const NAME: &'static str = stringify!($t);
            fn from_config(v: &ConfigValue) -> Option<Self> {
                match v {
                    ConfigValue::Int(i) => <$t>::try_from(*i).ok(),
                    _ => None,
                }
            }
        }
    )*};
}
int_from_config!(i64, i32, u64, u32, u16, u8, usize);

impl FromConfig for bool {
    const NAME: &'static str = "bool";
    fn from_config(v: &ConfigValue) -> Option<Self> {
        match v {
            ConfigValue::Bool(b) => Some(*b),
            _ => None,
        }
    }
}

impl FromConfig for f64 {
    const NAME: &'static str = "f64";
    fn from_config(v: &ConfigValue) -> Option<Self> {
        match v {
            ConfigValue::Float(x) => Some(*x),
            ConfigValue::Int(i) => Some(*i as f64),
            _ => None,
        }
    }
}

impl FromConfig for f32 {
    const NAME: &'static str = "f32";
    fn from_config(v: &ConfigValue) -> Option<Self> {
        f64::from_config(v).map(|x| x as f32)
    }
}

impl FromConfig for Duration {
    const NAME: &'static str = "Duration";
    fn from_config(v: &ConfigValue) -> Option<Self> {
        f64::from_config(v).and_then(|s| Duration::try_from_secs_f64(s).ok())
    }
}

impl FromConfig for String {
    const NAME: &'static str = "String";
    fn from_config(v: &ConfigValue) -> Option<Self> {
        match v {
            ConfigValue::Text(s) => Some(s.clone()),
            _ => None,
        }
    }
}

impl<T: FromConfig> FromConfig for Vec<T> {
    const NAME: &'static str = "Vec";
    fn from_config(v: &ConfigValue) -> Option<Self> {
        match v {
            ConfigValue::List(items) => items.iter().map(T::from_config).collect(),
            _ => None,
        }
    }
}

impl Config {
    /// A store over `schema` with `base` values (already validated by the loader).
    pub fn new(schema: Arc<Schema>, side: Side, base: BTreeMap<String, ConfigValue>) -> Self {
        Self {
            schema,
            side,
            base,
            runtime: BTreeMap::new(),
            overrides: BTreeMap::new(),
            version: 1,
            history: VecDeque::new(),
            unseen: Vec::new(),
            stats: ConfigStats {
                schema_compliance: 1.0,
                ..Default::default()
            },
        }
    }

    /// The schema.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Which side this store serves.
    pub fn side(&self) -> Side {
        self.side
    }

    /// Bumped on every effective change.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Recorded changes, oldest first (bounded).
    pub fn history(&self) -> impl Iterator<Item = &Change> {
        self.history.iter()
    }

    /// Counters.
    pub fn stats(&self) -> ConfigStats {
        ConfigStats {
            active_overrides: self.overrides.len(),
            ..self.stats.clone()
        }
    }

    fn key(&self, path: &str) -> Result<&Key, ConfigError> {
        let key = self
            .schema
            .key(path)
            .ok_or_else(|| ConfigError::UnknownKey(path.to_string()))?;
        if self.side == Side::Client && key.spec.tier == Tier::ServerOnly {
            return Err(ConfigError::ServerOnly(path.to_string()));
        }
        Ok(key)
    }

    fn effective_unchecked(&self, key: &Key) -> ConfigValue {
        let p = key.spec.path.as_str();
        self.overrides
            .get(p)
            .map(|o| &o.value)
            .or_else(|| self.runtime.get(p))
            .or_else(|| self.base.get(p))
            .unwrap_or(&key.default)
            .clone()
    }

    /// The effective value at `path`, tier-checked.
    pub fn value(&self, path: &str) -> Result<ConfigValue, ConfigError> {
        let key = self.key(path)?;
        Ok(self.effective_unchecked(key))
    }

    /// Typed get: `config.get::<u32>("security.sessionTimeout")`.
    pub fn get<T: FromConfig>(&self, path: &str) -> Result<T, ConfigError> {
        let v = self.value(path)?;
        T::from_config(&v).ok_or_else(|| ConfigError::WrongType {
            path: path.to_string(),
            wanted: T::NAME,
            found: v.to_string(),
        })
    }

    fn snapshot_of(&self, key: &Key) -> ConfigValue {
        self.effective_unchecked(key)
    }

    fn record(&mut self, path: &str, old: ConfigValue, actor: &str, reason: &str, now: Duration) {
        let Some(key) = self.schema.key(path) else {
            return;
        };
        let new = self.snapshot_of(key);
        if new == old {
            return;
        }
        self.version += 1;
        self.stats.changes += 1;
        let change = Change {
            version: self.version,
            path: path.to_string(),
            actor: actor.to_string(),
            at: now,
            old,
            new,
            reason: reason.to_string(),
        };
        if self.history.len() == HISTORY_CAPACITY {
            self.history.pop_front();
        }
        self.history.push_back(change.clone());
        self.unseen.push(change);
    }

    fn validated(&mut self, path: &str, value: &ConfigValue) -> Result<ConfigValue, ConfigError> {
        let key = self.key(path)?;
        match key.accept_value(value) {
            Ok(v) => Ok(v),
            Err(reason) => {
                self.stats.validation_failures += 1;
                Err(ConfigError::Invalid {
                    path: path.to_string(),
                    reason,
                })
            }
        }
    }

    /// Sets a value, validated. On a client only ClientSafe keys (the player's own preferences).
    pub fn set(
        &mut self,
        path: &str,
        value: ConfigValue,
        actor: &str,
        reason: &str,
        now: Duration,
    ) -> Result<u64, ConfigError> {
        let v = self.validated(path, &value)?;
        let key = self.key(path)?;
        if self.side == Side::Client && key.spec.tier != Tier::ClientSafe {
            return Err(ConfigError::Forbidden {
                path: path.to_string(),
                reason: "only ClientSafe keys can be set on a client; Shared keys are changed by the server".into(),
            });
        }
        let old = self.snapshot_of(key);
        self.runtime.insert(path.to_string(), v);
        self.record(path, old, actor, reason, now);
        Ok(self.version)
    }

    /// Puts `value` in force for `ttl`; when it lapses the previous value returns by itself.
    pub fn override_for(
        &mut self,
        path: &str,
        value: ConfigValue,
        ttl: Duration,
        actor: &str,
        now: Duration,
    ) -> Result<u64, ConfigError> {
        let v = self.validated(path, &value)?;
        let key = self.key(path)?;
        if self.side == Side::Client {
            return Err(ConfigError::Forbidden {
                path: path.to_string(),
                reason: "timed overrides are set on the server".into(),
            });
        }
        let old = self.snapshot_of(key);
        self.overrides.insert(
            path.to_string(),
            Override {
                value: v,
                expires_at: now + ttl,
                actor: actor.to_string(),
            },
        );
        self.stats.overrides_used += 1;
        self.record(path, old, actor, &format!("override for {ttl:?}"), now);
        Ok(self.version)
    }

    /// The overrides in force.
    pub fn overrides(&self) -> impl Iterator<Item = (&String, &Override)> {
        self.overrides.iter()
    }

    /// Lapses the overrides whose time is up; returns how many.
    pub fn expire_overrides(&mut self, now: Duration) -> usize {
        let due: Vec<String> = self
            .overrides
            .iter()
            .filter(|(_, o)| o.expires_at <= now)
            .map(|(p, _)| p.clone())
            .collect();
        for path in &due {
            let Some(key) = self.schema.key(path) else {
                continue;
            };
            let old = self.snapshot_of(key);
            let actor = self
                .overrides
                .remove(path)
                .map(|o| o.actor)
                .unwrap_or_default();
            self.stats.overrides_expired += 1;
            self.record(path, old, &actor, "override expired", now);
        }
        due.len()
    }

    /// Replaces the base layer (hot reload on the server; snapshot or delta on a client, with
    /// `replace` false for a delta). Values must already be validated.
    pub fn apply_base(
        &mut self,
        values: BTreeMap<String, ConfigValue>,
        replace: bool,
        actor: &str,
        reason: &str,
        now: Duration,
    ) {
        // Each key once: a key in the old base and the new values is one change, not two.
        let touched: std::collections::BTreeSet<String> = if replace {
            self.base.keys().chain(values.keys()).cloned().collect()
        } else {
            values.keys().cloned().collect()
        };
        let before: Vec<(String, ConfigValue)> = touched
            .iter()
            .filter_map(|p| self.schema.key(p).map(|k| (p.clone(), self.snapshot_of(k))))
            .collect();
        if replace {
            self.base = values;
        } else {
            self.base.extend(values);
        }
        for (path, old) in before {
            self.record(&path, old, actor, reason, now);
        }
    }

    /// Changes not yet handed out (for the plugin's messages).
    pub fn take_changes(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.unseen)
    }

    /// Re-validates every effective value against the schema.
    pub fn validate_all(&mut self) -> ValidationReport {
        let mut report = ValidationReport::default();
        for key in self.schema.keys() {
            if self.side == Side::Client && key.spec.tier == Tier::ServerOnly {
                continue;
            }
            report.checked += 1;
            let v = self.effective_unchecked(key);
            if let Err(reason) = key.accept_value(&v) {
                report.failures.push((key.spec.path.clone(), reason));
            }
        }
        self.stats.schema_compliance = if report.checked == 0 {
            1.0
        } else {
            (report.checked - report.failures.len()) as f64 / report.checked as f64
        };
        report
    }

    /// Every replicated (ClientSafe and Shared) value: what a client receives at join.
    pub fn snapshot(&self) -> ConfigSnapshot {
        ConfigSnapshot {
            version: self.version,
            values: self
                .schema
                .keys()
                .filter(|k| k.spec.tier.replicated())
                .map(|k| (k.spec.path.clone(), self.effective_unchecked(k)))
                .collect(),
        }
    }

    /// The current values of the replicated keys among `paths` (a delta).
    pub fn delta(&self, paths: &[String]) -> ConfigSnapshot {
        ConfigSnapshot {
            version: self.version,
            values: paths
                .iter()
                .filter_map(|p| self.schema.key(p))
                .filter(|k| k.spec.tier.replicated())
                .map(|k| (k.spec.path.clone(), self.effective_unchecked(k)))
                .collect(),
        }
    }

    /// Validates a snapshot from the server against the local schema: ServerOnly or unknown
    /// keys and invalid values are dropped and reported, the rest returned.
    pub fn accept_snapshot(
        &mut self,
        snap: &ConfigSnapshot,
    ) -> (BTreeMap<String, ConfigValue>, Vec<String>) {
        let mut good = BTreeMap::new();
        let mut bad = Vec::new();
        for (path, v) in &snap.values {
            match self.schema.key(path) {
                Some(k) if k.spec.tier.replicated() => match k.accept_value(v) {
                    Ok(v) => {
                        good.insert(path.clone(), v);
                    }
                    Err(e) => {
                        self.stats.validation_failures += 1;
                        bad.push(format!("{path}: {e}"));
                    }
                },
                Some(_) => bad.push(format!("{path}: ServerOnly key in a snapshot")),
                None => bad.push(format!("{path}: unknown key")),
            }
        }
        (good, bad)
    }

    /// The runtime values of ClientSafe keys (a player's own preferences, to persist).
    pub fn preferences(&self) -> BTreeMap<String, ConfigValue> {
        self.runtime
            .iter()
            .filter(|(p, _)| {
                self.schema
                    .key(p)
                    .is_some_and(|k| k.spec.tier == Tier::ClientSafe)
            })
            .map(|(p, v)| (p.clone(), v.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = r#"[
        (path: "graphics.fpsCap", tier: ClientSafe, type: Int, default: 60, min: Some(15.0), max: Some(240.0), description: ""),
        (path: "network.messageTimeout", tier: Shared, type: Duration, default: 30, description: ""),
        (path: "security.sessionTimeout", tier: ServerOnly, type: Duration, default: 3600, description: ""),
    ]"#;

    fn store(side: Side) -> Config {
        Config::new(
            Arc::new(Schema::parse("s", SCHEMA).unwrap()),
            side,
            BTreeMap::new(),
        )
    }

    #[test]
    fn typed_get_and_tiers() {
        let server = store(Side::Server);
        assert_eq!(server.get::<u32>("graphics.fpsCap"), Ok(60));
        assert_eq!(
            server.get::<Duration>("security.sessionTimeout"),
            Ok(Duration::from_secs(3600))
        );
        assert!(matches!(
            server.get::<bool>("graphics.fpsCap"),
            Err(ConfigError::WrongType { .. })
        ));
        assert!(matches!(
            server.get::<u32>("graphics.nope"),
            Err(ConfigError::UnknownKey(_))
        ));
        let client = store(Side::Client);
        assert_eq!(
            client.get::<Duration>("security.sessionTimeout"),
            Err(ConfigError::ServerOnly("security.sessionTimeout".into()))
        );
        assert!(
            client
                .snapshot()
                .values
                .iter()
                .all(|(p, _)| p != "security.sessionTimeout")
        );
    }

    #[test]
    fn set_validates_records_and_bumps_version() {
        let mut c = store(Side::Server);
        let v0 = c.version();
        assert!(matches!(
            c.set(
                "graphics.fpsCap",
                ConfigValue::Int(5),
                "op",
                "",
                Duration::ZERO
            ),
            Err(ConfigError::Invalid { .. })
        ));
        assert_eq!(c.stats().validation_failures, 1);
        c.set(
            "graphics.fpsCap",
            ConfigValue::Int(120),
            "op",
            "faster",
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(c.version(), v0 + 1);
        let h: Vec<_> = c.history().collect();
        assert_eq!(h.len(), 1);
        assert_eq!(
            (h[0].old.clone(), h[0].new.clone()),
            (ConfigValue::Int(60), ConfigValue::Int(120))
        );
        assert_eq!(
            (h[0].actor.as_str(), h[0].reason.as_str()),
            ("op", "faster")
        );
        // Same value again: no change, no version bump.
        c.set(
            "graphics.fpsCap",
            ConfigValue::Int(120),
            "op",
            "",
            Duration::from_secs(2),
        )
        .unwrap();
        assert_eq!(c.version(), v0 + 1);
    }

    #[test]
    fn overrides_expire_and_restore() {
        let mut c = store(Side::Server);
        c.set(
            "graphics.fpsCap",
            ConfigValue::Int(100),
            "op",
            "",
            Duration::ZERO,
        )
        .unwrap();
        c.override_for(
            "graphics.fpsCap",
            ConfigValue::Int(30),
            Duration::from_secs(10),
            "event",
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(c.get::<u32>("graphics.fpsCap"), Ok(30));
        assert_eq!(c.expire_overrides(Duration::from_secs(14)), 0);
        assert_eq!(c.stats().active_overrides, 1);
        assert_eq!(c.expire_overrides(Duration::from_secs(15)), 1);
        assert_eq!(c.get::<u32>("graphics.fpsCap"), Ok(100));
        let s = c.stats();
        assert_eq!(
            (s.active_overrides, s.overrides_used, s.overrides_expired),
            (0, 1, 1)
        );
        assert_eq!(c.history().last().unwrap().reason, "override expired");
    }

    #[test]
    fn clients_set_only_their_own_preferences() {
        let mut c = store(Side::Client);
        c.set(
            "graphics.fpsCap",
            ConfigValue::Int(144),
            "player",
            "",
            Duration::ZERO,
        )
        .unwrap();
        assert!(matches!(
            c.set(
                "network.messageTimeout",
                ConfigValue::Float(5.0),
                "player",
                "",
                Duration::ZERO
            ),
            Err(ConfigError::Forbidden { .. })
        ));
        assert_eq!(c.preferences().len(), 1);
    }

    #[test]
    fn history_is_bounded() {
        let mut c = store(Side::Server);
        for i in 0..(HISTORY_CAPACITY as i64 + 10) {
            c.set(
                "graphics.fpsCap",
                ConfigValue::Int(20 + i % 100),
                "op",
                "",
                Duration::ZERO,
            )
            .unwrap();
        }
        assert_eq!(c.history().count(), HISTORY_CAPACITY);
    }
}
