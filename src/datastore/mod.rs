//! The data store (the seed's DataStoreManager), on redb.
//!
//! Player profiles in `<data>/bloxquarium.redb`, sealed at rest (`seal.rs`), behind a small
//! [`Backend`] trait (`backend.rs`); versions, locks, offline messages and merges in `store.rs`;
//! backups in `backup.rs`. The plugin loads a profile under a session lock when a session
//! starts, auto-saves every `datastore.autosaveInterval` (spread across profiles), saves and
//! releases on leave, drains every save on shutdown, retries transient failures with exponential
//! backoff and jitter, and reports a critical state when 5 errors fall within 120 s. All disk work
//! runs on Bevy's IO task pool; the tick never waits on fsync.
//!
//! A profile in play is a state machine ([`Phase`], `live.rs`: loading, live, saving, retrying,
//! held, released, with each state's invariants); `jobs.rs` spawns each kind of work and hands
//! each kind that lands to one handler; `systems.rs` holds the thin systems; `admin.rs` the
//! admin commands on conflicts. The game changes a live profile only through
//! [`DataStoreState::apply_op`] (an operation, kept with the profile) or
//! [`DataStoreState::simulate`] (the simulation step).

mod admin;
mod backend;
mod backup;
mod directory;
mod drain;
mod handoff;
mod health;
mod jobs;
mod live;
mod postgres;
mod profile;
mod seal;
mod shared;
mod standings;
mod store;
mod systems;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bevy::prelude::*;

pub use backend::{
    Backend, BackendError, RankRow, ReadOps, RedbBackend, StoreBackend, Table, WriteOps,
};
pub use backup::{
    BackupError, BackupRecord, backup as back_up, backup_dir, list as list_backups,
    restore as restore_backup, store_id, verify as verify_backup,
};
pub use directory::{Directory, least_loaded};
pub use handoff::{GameNote, Note, StoreChannel, after_handoff, send_game_note};
pub use live::{DataStoreState, InboxDelivered, LiveProfile, MessageSent, Phase};
pub use postgres::{
    Leadership, MIGRATIONS, Migration, PostgresBackend, ServerEntry, check_store_url,
    schema_version,
};
pub use profile::{
    DecodeError, MAX_PROFILE_BYTES, MAX_PROFILE_OPS, OpRecord, PlayerData, Profile,
    decode as decode_profile, envelope_policy, policy_of,
};
pub use seal::{AtRest, Codec};
pub use standings::{PeekProfile, Peeked, Standings};
pub use store::{
    Datastore, Delivery, ErrorWindow, Loaded, LockOwner, MergeOutcome, Outgoing, SaveRequest,
    Saved, SentMessage, Settlement, StoreError, StoreSettings, StoreStats,
};

use crate::config::Config;
use crate::shutdown::{OnShutdown, ShutdownSystems};
use crate::stages::{ServerRequests, ServerSystems};

/// The store, on the embedded file or on PostgreSQL.
pub type Store = Datastore<StoreBackend>;

/// The [`Table::Meta`] row that names the data key the store's profiles are sealed with.
const DATA_KEY_ID: &[u8] = b"data_key_id";

/// The store file under a data dir.
pub fn store_path(data: &Path) -> PathBuf {
    data.join("bloxquarium.redb")
}

/// Why the store could not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The data key.
    #[error(transparent)]
    Key(#[from] crate::keys::KeyError),
    /// The store file.
    #[error("cannot open the data store: {0}")]
    Backend(#[from] BackendError),
    /// A setting.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// This server's data key is not the one the store's profiles are sealed with.
    #[error(
        "the data store's profiles are sealed with data key {store}, but {path} is key {ours}: \
         every server on one store needs the same key files (give them all one --keys \
         directory, or copies of it)"
    )]
    KeyMismatch {
        /// The store's key fingerprint.
        store: String,
        /// This server's.
        ours: String,
        /// This server's data key file.
        path: String,
    },
}

/// Store settings from the config, with the template of the game's data `D`.
pub fn settings_from<D: PlayerData>(
    config: &Config,
) -> Result<StoreSettings, crate::config::ConfigError> {
    let template = D::template(config)?;
    Ok(StoreSettings {
        lock_stale_after: config.get("datastore.lockStaleAfter")?,
        versions_keep: config.get("datastore.versionsKeep")?,
        versions_max_age: config.get("datastore.versionsMaxAge")?,
        caller_clock: false,
        template: serde_json::to_value(template).map_err(|e| {
            crate::config::ConfigError::Invalid {
                path: "(the game's template)".into(),
                reason: e.to_string(),
            }
        })?,
    })
}

/// Opens the embedded store of a data dir for the game's data `D`: the data key (created 0600
/// on first use) and the redb file.
pub fn open<D: PlayerData>(data: &Path, config: &Config) -> Result<Store, OpenError> {
    open_on::<D>(embedded(data)?, &data.join("keys"), config)
}

/// The redb file under a data dir (one process at a time).
fn embedded(data: &Path) -> Result<StoreBackend, BackendError> {
    let backend = RedbBackend::open(&store_path(data))
        .map_err(|e| BackendError(format!("{} (is another server using this data dir?)", e.0)))?;
    Ok(StoreBackend::Redb(backend))
}

/// Opens the store `paths` name for the game's data `D`: PostgreSQL at `paths.store` when set
/// (its schema brought up to date), else the embedded file under `paths.data`.
pub fn open_at<D: PlayerData>(
    paths: &crate::process::Paths,
    config: &Config,
) -> Result<Store, OpenError> {
    let backend = match &paths.store {
        Some(url) => StoreBackend::Postgres(Box::new(PostgresBackend::connect(url)?)),
        None => embedded(&paths.data)?,
    };
    open_on::<D>(backend, &paths.keys, config)
}

/// Opens a store on `backend`, with the data key in `keys` (created on first use). The store
/// keeps the key's fingerprint: a server with another key is refused.
pub fn open_on<D: PlayerData>(
    backend: StoreBackend,
    keys: &Path,
    config: &Config,
) -> Result<Store, OpenError> {
    let key_file = crate::keys::data_key_path(keys);
    let key = crate::keys::load_or_create_at(&key_file)?;
    backup::store_id(&backend)?;
    let ours = crate::keys::fingerprint(&key);
    let stored = backend.write(true, |ops| match ops.get(Table::Meta, DATA_KEY_ID)? {
        Some(id) => Ok(String::from_utf8_lossy(&id).into_owned()),
        None => {
            ops.put(Table::Meta, DATA_KEY_ID, ours.as_bytes())?;
            Ok::<_, BackendError>(ours.clone())
        }
    })?;
    if stored != ours {
        return Err(OpenError::KeyMismatch {
            store: stored,
            ours,
            path: key_file.display().to_string(),
        });
    }
    store::upgrade_layout(&backend).map_err(|e| BackendError(e.to_string()))?;
    Ok(Datastore::new(
        backend,
        AtRest::new(&key, Codec::Zstd),
        settings_from::<D>(config)?,
    ))
}

/// The store, shared with the IO tasks.
#[derive(Resource, Clone, Deref)]
pub struct DataStore(pub Arc<Store>);

impl DataStore {
    /// Many servers share this store (PostgreSQL, with its channel between servers); the
    /// embedded one belongs to one server.
    pub fn is_shared(&self) -> bool {
        self.0.backend().postgres().is_some()
    }
}

/// A profile finished loading for a session.
#[derive(Message, Debug, Clone)]
pub struct ProfileLoaded {
    /// renet client id.
    pub client: u64,
    /// The player.
    pub player: u64,
    /// Offline messages applied at this load.
    pub applied: usize,
}

/// The `datastore.autosave` optimisation rule changed state: auto-saves are spaced ×2 while it
/// is engaged. Sent by the rule engine; the data store owns the pace.
#[derive(Message, Debug, Clone, Copy, PartialEq, Eq)]
pub struct AutosavePace {
    /// Spaced out (engaged) or back to normal (released).
    pub slowed: bool,
}

/// Makes an old version of a player's profile current again. If the player is playing on this
/// server, their session is ended first (unsaved changes are discarded: the restore replaces
/// them) and their lock released.
#[derive(Message, Debug, Clone)]
pub struct RestoreVersion {
    /// The player.
    pub player: u64,
    /// The version to restore.
    pub version: u64,
}

/// The outcome of a [`RestoreVersion`].
#[derive(Message, Debug, Clone)]
pub struct VersionRestored {
    /// The player.
    pub player: u64,
    /// The new current version, or why not.
    pub result: Result<u64, StoreError>,
}

/// The data store plugin (server) for the game's player data `D`. [`Self::open`] opens the store
/// (a bad key or a store another server holds stops start-up); `build` inserts [`DataStore`] and
/// [`DataStoreState<D>`].
pub struct DataStorePlugin<D: PlayerData> {
    store: DataStore,
    server_id: String,
    data: std::marker::PhantomData<fn() -> D>,
}

impl<D: PlayerData> DataStorePlugin<D> {
    /// Opens the store under `paths.data` with the `datastore.*` settings; this server's id in
    /// session locks is random per process.
    pub fn open(config: &Config, paths: &crate::process::Paths) -> Result<Self, OpenError> {
        let store = open_at::<D>(paths, config)?;
        let mut id = [0u8; 4];
        getrandom::fill(&mut id).map_err(|e| OpenError::Backend(BackendError(e.to_string())))?;
        Ok(Self {
            store: DataStore(Arc::new(store)),
            server_id: format!("server-{}-{}", std::process::id(), hex::encode(id)),
            data: std::marker::PhantomData,
        })
    }

    /// The store, as the plugin will insert it.
    pub fn store(&self) -> &DataStore {
        &self.store
    }
}

impl<D: PlayerData> Plugin for DataStorePlugin<D> {
    fn build(&self, app: &mut App) {
        crate::stages::server(app);
        app.insert_resource(self.store.clone())
            .insert_resource(DataStoreState::<D>::new(self.server_id.clone()))
            .insert_resource(StoreChannel::open(&self.store))
            .insert_resource(Directory::open(&self.store))
            .init_resource::<Standings>()
            .init_resource::<drain::Draining>()
            .init_resource::<shared::StoredConfig>()
            .add_message::<crate::security::EndSessionsElsewhere>()
            .add_message::<crate::security::SecurityChanged>()
            .add_message::<crate::security::ApplySecurityChange>()
            .add_message::<crate::security::AuditRecorded>()
            .add_message::<crate::config::ConfigChanged>()
            .init_resource::<standings::StandingsTasks<D>>();
        if self.store.backend().postgres().is_some() {
            app.insert_resource(crate::security::OtherServers);
        }
        crate::integration::register(app, health::integration::<D>());
        crate::integration::register_rule(app, health::autosave_rule());
        app.add_message::<ProfileLoaded>()
            .add_message::<AutosavePace>()
            .add_message::<crate::security::AuditEntry>()
            .add_message::<RestoreVersion>()
            .add_message::<VersionRestored>()
            .add_message::<MessageSent>()
            .add_message::<handoff::GameNote>()
            .add_message::<PeekProfile>()
            .add_message::<Peeked<D>>()
            .add_message::<InboxDelivered<D::Offline>>()
            .init_resource::<admin::SettleTasks<D>>()
            .add_systems(
                ServerRequests,
                (admin::answer_conflict_commands::<D>, drain::answer_drains),
            )
            .add_systems(
                Update,
                admin::finish_settlements::<D>.in_set(ServerSystems::Handle),
            )
            .add_systems(
                Update,
                (
                    systems::pace_autosaves::<D>,
                    systems::restore_versions::<D>,
                    handoff::answer_notes::<D>,
                    shared::apply_stored_config,
                    shared::forward_ends::<D>,
                    shared::forward_config::<D>,
                    shared::forward_security::<D>,
                    shared::forward_audit,
                    handoff::retry_waiting::<D>,
                    systems::start_loads::<D>,
                    systems::finish_releases::<D>,
                    systems::autosave::<D>,
                    systems::integrity_sweep::<D>,
                    directory::beat::<D>,
                    directory::store_jobs,
                    systems::scheduled_backup::<D>,
                    systems::poll_jobs::<D>,
                    standings::refresh::<D>,
                    drain::move_players::<D>,
                    standings::peek::<D>,
                )
                    .chain()
                    .in_set(ServerSystems::Persist),
            )
            .add_systems(
                OnShutdown,
                (systems::save_everything::<D>, directory::leave::<D>),
            )
            .add_systems(
                Update,
                systems::hold_while_busy::<D>.in_set(ShutdownSystems::Drain),
            );
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn critical_after_five_errors_in_120_seconds() {
        let mut w = ErrorWindow::profile_store();
        for s in 0..4 {
            w.record(Duration::from_secs(s * 10));
        }
        assert!(!w.critical(Duration::from_secs(40)));
        w.record(Duration::from_secs(50));
        assert!(w.critical(Duration::from_secs(50)));
        assert!(!w.critical(Duration::from_secs(125)), "old errors age out");
    }
}
