//! Configuration tiers (the seed's ConfigManager, ConfigBridge and ClientConfigBridge).
//!
//! The schema (`config/schema.ron`) gives every key a tier: ClientSafe, ServerOnly or Shared.
//! The server holds the [`Config`] resource (every tier), loaded from the layers in
//! [`load`] and hot-reloaded by polling the config dir every `config.reloadPollInterval`; every
//! change is a [`ConfigChanged`] message. (Replicating the ClientSafe and Shared values to each
//! client, as a signed snapshot at join and then signed deltas, is `config_sync`'s, above the
//! transport and security.) A client holds [`ClientConfig`]: the same API over its cache, where a
//! ServerOnly key is an error; its ClientSafe values are also the player's own preferences, kept
//! in `<data>/preferences.ron` and applied live.

mod health;
mod load;
mod schema;
mod store;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bevy::prelude::*;

pub use load::{GameKeys, LoadError, LoadProblem, Loaded, parse_layer};
pub use schema::{Key, KeySpec, Schema, Tier, ValueType, parse_duration};
pub use store::{Change, Config, ConfigError, ConfigStats, FromConfig, Side, ValidationReport};

use crate::process::Paths;
use crate::protocol::ConfigValue;
use crate::stages::{ClientSystems, ServerSystems};

/// A client's config: the same API as [`Config`], over the values the server replicated plus the
/// player's own ClientSafe preferences.
#[derive(Resource, Deref, DerefMut, Debug, Clone)]
pub struct ClientConfig(pub Config);

/// A key's effective value changed. Subscribe by reading these and filtering with
/// [`ConfigChanged::under`] for a key or a prefix.
#[derive(Message, Debug, Clone, PartialEq)]
pub struct ConfigChanged {
    /// Config version after the change.
    pub version: u64,
    /// The key.
    pub path: String,
    /// Before.
    pub old: ConfigValue,
    /// After.
    pub new: ConfigValue,
    /// Who changed it.
    pub actor: String,
    /// Why (`reload`, `client request`, ...).
    pub reason: String,
    /// Which store changed: the server's or the client's.
    pub side: Side,
}

impl ConfigChanged {
    /// True if the key is `prefix` or lies under it (`"graphics"` matches `graphics.fpsCap`).
    pub fn under(&self, prefix: &str) -> bool {
        self.path == prefix
            || (self.path.starts_with(prefix)
                && self.path.as_bytes().get(prefix.len()) == Some(&b'.'))
    }
}

/// The framework's keys at their schema defaults (unit tests of what reads them).
#[cfg(test)]
pub(crate) fn defaults_for_tests() -> Config {
    defaults_with_game_for_tests(&GameKeys::NONE)
}

/// The framework's keys and `game`'s at their schema defaults.
#[cfg(test)]
pub(crate) fn defaults_with_game_for_tests(game: &GameKeys) -> Config {
    let schema = load::load_schema(std::path::Path::new("/nonexistent"), game)
        .unwrap_or_else(|e| panic!("the embedded schema: {e}"));
    Config::new(Arc::new(schema), Side::Server, BTreeMap::new())
}

/// [`defaults_with_game_for_tests`] with `changes` set (a change the schema refuses fails the
/// test).
#[cfg(test)]
pub(crate) fn changed_for_tests(
    game: &GameKeys,
    changes: &[(&str, crate::protocol::ConfigValue)],
) -> Config {
    let mut c = defaults_with_game_for_tests(game);
    for (key, value) in changes {
        c.set(key, value.clone(), "test", "", std::time::Duration::ZERO)
            .unwrap_or_else(|e| panic!("{key}: {e}"));
    }
    c
}

/// Loads the server's config (the framework's keys and `game`'s) from `dir` and the process
/// environment; an invalid layer refuses.
pub fn load_server(dir: &std::path::Path, game: &GameKeys) -> Result<Config, LoadError> {
    let loaded = load::load(dir, std::env::vars(), game)?;
    let mut config = Config::new(Arc::new(loaded.schema), Side::Server, loaded.values);
    let report = config.validate_all();
    if !report.ok() {
        return Err(LoadError(
            report
                .failures
                .into_iter()
                .map(|(key, reason)| LoadProblem {
                    file: "effective config".into(),
                    key: Some(key),
                    line: None,
                    reason,
                })
                .collect(),
        ));
    }
    Ok(config)
}

/// A client's config: the schema from `dir` (or the embedded one) and the player's preferences
/// from `preferences` if the file exists. A damaged preferences file is reported and ignored
/// (it is the player's own, not the operator's).
pub fn load_client(
    dir: &std::path::Path,
    preferences: &std::path::Path,
    game: &GameKeys,
) -> Result<ClientConfig, LoadError> {
    let schema = load::load_schema(dir, game)?;
    let mut config = Config::new(Arc::new(schema), Side::Client, BTreeMap::new());
    if let Ok(text) = std::fs::read_to_string(preferences) {
        let mut problems = Vec::new();
        let values = load::parse_layer(
            config.schema(),
            &preferences.display().to_string(),
            &text,
            &mut problems,
        );
        for (path, v) in values {
            if let Err(e) = config.set(&path, v, "preferences", "loaded at start", Duration::ZERO) {
                warn!("ignoring preference: {e}");
            }
        }
        for p in problems {
            warn!("ignoring preference: {p}");
        }
        config.take_changes();
    }
    Ok(ClientConfig(config))
}

/// Where the config lives and how often to poll it (server).
#[derive(Resource, Debug, Clone)]
pub struct ConfigSource {
    /// The config dir.
    pub dir: PathBuf,
    /// The game's own keys (read again on every reload).
    pub game: GameKeys,
    fingerprint: Vec<(PathBuf, u64, Option<std::time::SystemTime>)>,
    last_poll: Duration,
    /// Reloads applied.
    pub reloads: u64,
    /// Reloads refused (the last good config stayed).
    pub reload_failures: u64,
    /// The last reload was refused.
    pub last_reload_failed: bool,
}

impl ConfigSource {
    /// Watches `dir`, whose layers set the framework's keys and `game`'s.
    pub fn new(dir: PathBuf, game: GameKeys) -> Self {
        let fingerprint = load::fingerprint(&dir);
        Self {
            dir,
            game,
            fingerprint,
            last_poll: Duration::ZERO,
            reloads: 0,
            reload_failures: 0,
            last_reload_failed: false,
        }
    }
}

/// Where a client keeps the player's preferences.
#[derive(Resource, Debug, Clone)]
pub struct PreferencesFile(pub PathBuf);

/// The server half: overrides, change messages, hot reload. (Replication to clients and their
/// change requests are `config_sync`'s.) `build` inserts the [`Config`] and its
/// [`ConfigSource`].
pub struct ConfigServerPlugin {
    /// The server's config, as loaded.
    pub config: Config,
    /// Where it came from (the dir hot reload polls).
    pub source: ConfigSource,
}

impl ConfigServerPlugin {
    /// Loads `paths.config` and the environment; an invalid layer refuses.
    pub fn load(paths: &Paths, game: &GameKeys) -> Result<Self, LoadError> {
        Ok(Self {
            config: load_server(&paths.config, game)?,
            source: ConfigSource::new(paths.config.clone(), *game),
        })
    }
}

impl Plugin for ConfigServerPlugin {
    fn build(&self, app: &mut App) {
        crate::stages::server(app);
        crate::integration::register(app, health::INTEGRATION);
        app.insert_resource(self.config.clone())
            .insert_resource(self.source.clone())
            .add_message::<ConfigChanged>()
            .add_systems(First, server_tick.in_set(ServerSystems::Begin))
            .add_systems(Update, hot_reload.in_set(ServerSystems::Handle));
    }
}

/// The client half: change messages, preferences persisted. (The server's snapshot and deltas
/// arrive through `config_sync`.) `build` inserts the [`ClientConfig`] and its
/// [`PreferencesFile`].
pub struct ConfigClientPlugin {
    /// The client's config: the schema and the player's preferences.
    pub config: ClientConfig,
    /// Where the preferences are kept (`<data>/preferences.ron`).
    pub preferences: PreferencesFile,
}

impl ConfigClientPlugin {
    /// The schema from `paths.config` (or the embedded one) with `game`'s keys, and the
    /// preferences under `paths.data`.
    pub fn load(paths: &Paths, game: &GameKeys) -> Result<Self, LoadError> {
        let preferences = paths.data.join("preferences.ron");
        Ok(Self {
            config: load_client(&paths.config, &preferences, game)?,
            preferences: PreferencesFile(preferences),
        })
    }
}

impl Plugin for ConfigClientPlugin {
    fn build(&self, app: &mut App) {
        crate::stages::client(app);
        app.insert_resource(self.config.clone())
            .insert_resource(self.preferences.clone())
            .add_message::<ConfigChanged>()
            .add_systems(First, client_tick.in_set(ClientSystems::Begin))
            .add_systems(Update, persist_preferences.in_set(ClientSystems::Handle));
    }
}

fn emit(changes: Vec<Change>, side: Side, out: &mut MessageWriter<ConfigChanged>) {
    for c in changes {
        out.write(ConfigChanged {
            version: c.version,
            path: c.path,
            old: c.old,
            new: c.new,
            actor: c.actor,
            reason: c.reason,
            side,
        });
    }
}

fn server_tick(
    mut config: ResMut<Config>,
    time: Res<Time<Real>>,
    mut out: MessageWriter<ConfigChanged>,
) {
    config.expire_overrides(time.elapsed());
    let changes = config.take_changes();
    emit(changes, Side::Server, &mut out);
}

fn client_tick(mut config: ResMut<ClientConfig>, mut out: MessageWriter<ConfigChanged>) {
    let changes = config.take_changes();
    emit(changes, Side::Client, &mut out);
}

fn hot_reload(mut config: ResMut<Config>, mut source: ResMut<ConfigSource>, time: Res<Time<Real>>) {
    let now = time.elapsed();
    let Ok(every) = config.get::<Duration>("config.reloadPollInterval") else {
        return;
    };
    if now.saturating_sub(source.last_poll) < every {
        return;
    }
    source.last_poll = now;
    let fingerprint = load::fingerprint(&source.dir);
    if fingerprint == source.fingerprint {
        return;
    }
    source.fingerprint = fingerprint;
    let _ = reload_now(&mut config, &mut source, now);
}

/// The actor and the reason a change made by the config files' hot reload carries (on a shared
/// store such changes of Shared keys are carried to every server).
pub const RELOAD: (&str, &str) = ("file", "reload");

/// Reloads the config dir now (files and environment), as the hot reload does when a file
/// changes. A dir that fails to load or validate changes nothing; the problems are returned.
pub fn reload_now(
    config: &mut Config,
    source: &mut ConfigSource,
    now: Duration,
) -> Result<(), Vec<String>> {
    source.fingerprint = load::fingerprint(&source.dir);
    match load::load(&source.dir, std::env::vars(), &source.game) {
        Ok(loaded) => {
            source.reloads += 1;
            source.last_reload_failed = false;
            info!("config reloaded from {}", source.dir.display());
            config.apply_base(loaded.values, true, RELOAD.0, RELOAD.1, now);
            Ok(())
        }
        Err(e) => {
            source.reload_failures += 1;
            source.last_reload_failed = true;
            let problems: Vec<String> = e.0.iter().map(ToString::to_string).collect();
            for p in &problems {
                error!("config reload refused, keeping the last good config: {p}");
            }
            Err(problems)
        }
    }
}

fn persist_preferences(
    config: Res<ClientConfig>,
    file: Res<PreferencesFile>,
    mut changed: MessageReader<ConfigChanged>,
) {
    let mine = changed.read().any(|c| {
        c.side == Side::Client
            && c.actor != "server"
            && config
                .schema()
                .key(&c.path)
                .is_some_and(|k| k.spec.tier == Tier::ClientSafe)
    });
    if !mine {
        return;
    }
    let prefs = config.preferences();
    let mut text =
        String::from("// Your own settings (ClientSafe keys), written by the game.\n{\n");
    for (path, v) in &prefs {
        text.push_str(&format!("    \"{path}\": {},\n", ron_literal(v)));
    }
    text.push_str("}\n");
    if let Some(dir) = file.0.parent()
        && let Err(e) = std::fs::create_dir_all(dir)
    {
        warn!("cannot save preferences to {}: {e}", file.0.display());
        return;
    }
    // Write a sibling then rename, so a crash never leaves half a file.
    let tmp = file.0.with_extension("ron.tmp");
    if let Err(e) = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &file.0)) {
        warn!("cannot save preferences to {}: {e}", file.0.display());
    }
}

/// A value as RON text.
pub fn ron_literal(v: &ConfigValue) -> String {
    match v {
        ConfigValue::Bool(b) => b.to_string(),
        ConfigValue::Int(i) => i.to_string(),
        ConfigValue::Float(x) => format!("{x:?}"),
        ConfigValue::Text(s) => format!("{s:?}"),
        ConfigValue::List(items) => format!(
            "[{}]",
            items.iter().map(ron_literal).collect::<Vec<_>>().join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    mod key_effects {
        include!("../../tests/it/key_effects.rs");
    }

    /// Every "lib" test that `tests/it/key_effects.rs` names is in this binary (the
    /// integration test `config::every_config_key_has_a_test_that_changes_it` checks the rest).
    #[test]
    fn key_effect_tests_in_the_library_exist() {
        let ours = key_effects::tests_of_this_binary();
        let missing: Vec<_> = key_effects::KEY_EFFECTS
            .iter()
            .filter(|(_, t)| {
                t.strip_prefix("lib ")
                    .is_some_and(|name| !ours.contains(name))
            })
            .collect();
        assert!(
            missing.is_empty(),
            "named in key_effects.rs, not in the library: {missing:?}"
        );
    }

    #[test]
    fn prefix_subscription_matches_whole_segments() {
        let c = ConfigChanged {
            version: 2,
            path: "graphics.fpsCap".into(),
            old: ConfigValue::Int(1),
            new: ConfigValue::Int(2),
            actor: "x".into(),
            reason: "test".into(),
            side: Side::Server,
        };
        assert!(c.under("graphics"));
        assert!(c.under("graphics.fpsCap"));
        assert!(!c.under("graph"));
        assert!(!c.under("audio"));
    }

    #[test]
    fn ron_literals_parse_back() {
        let schema =
            load::load_schema(std::path::Path::new("/nonexistent"), &GameKeys::NONE).unwrap();
        let key = schema.key("assetManager.preload.critical").unwrap();
        let text = ron_literal(&key.default);
        assert_eq!(key.accept_text(&text).unwrap(), key.default);
    }
}
