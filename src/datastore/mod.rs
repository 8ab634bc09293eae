//! The data store (the seed's DataStoreManager), on redb.
//!
//! Player profiles in `<data>/bloxquarium.redb`, sealed at rest ([`seal`]), behind a small
//! [`backend::Backend`] trait. The plugin loads a profile under a session lock when a session
//! starts, auto-saves every `datastore.autosaveInterval` (spread across profiles), saves and
//! releases on leave, drains every save on shutdown, retries transient failures with exponential
//! backoff and jitter, and reports a critical state when 5 errors fall within 120 s. All disk work
//! runs on Bevy's IO task pool; the tick never waits on fsync.

mod admin;
mod backend;
mod backup;
mod health;
mod profile;
mod seal;
mod store;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bevy::prelude::*;
use bevy::tasks::{IoTaskPool, Task, block_on, futures_lite::future};

pub use backend::{Backend, BackendError, ReadOps, RedbBackend, Table, WriteOps};
pub use backup::{
    BackupError, BackupRecord, backup as back_up, backup_dir, list as list_backups,
    restore as restore_backup, store_id, verify as verify_backup,
};
pub use profile::{Fish, OpRecord, Profile, Tank};
pub use seal::{AtRest, Codec};
pub use store::{
    Datastore, ErrorWindow, Loaded, LockOwner, MergeOutcome, OfflineMessage, SaveRequest,
    StoreError, StoreSettings, StoreStats,
};

use crate::clock::now_ms;
use crate::config::Config;
use crate::reconcile::{Reconciled, Reconciler};
use crate::shutdown::{OnShutdown, Shutdown, ShutdownSystems};
use crate::stages::ServerSystems;
use crate::transport::{KickRequested, SessionEnded, SessionStarted};

/// The embedded store over redb.
pub type Store = Datastore<RedbBackend>;

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
    #[error("cannot open the data store: {0} (is another server using this data dir?)")]
    Backend(#[from] BackendError),
    /// A setting.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// Store settings from the config.
pub fn settings_from(config: &Config) -> Result<StoreSettings, crate::config::ConfigError> {
    Ok(StoreSettings {
        lock_stale_after: config.get("datastore.lockStaleAfter")?,
        versions_keep: config.get("datastore.versionsKeep")?,
        versions_max_age: config.get("datastore.versionsMaxAge")?,
        starting_coins: config.get("game.startingCoins")?,
    })
}

/// Opens the store of a data dir: the data key (created 0600 on first use) and the redb file.
pub fn open(data: &Path, config: &Config) -> Result<Store, OpenError> {
    let key = crate::keys::load_or_create_at(&crate::keys::data_key_path(data))?;
    let backend = RedbBackend::open(&store_path(data))?;
    backup::store_id(&backend)?;
    store::upgrade_layout(&backend).map_err(|e| BackendError(e.to_string()))?;
    Ok(Datastore::new(
        backend,
        AtRest::new(&key, Codec::Zstd),
        settings_from(config)?,
    ))
}

/// The store, shared with the IO tasks.
#[derive(Resource, Clone, Deref)]
pub struct DataStore(pub Arc<Store>);

/// A profile in play on this server.
#[derive(Debug, Clone)]
pub struct LiveProfile {
    /// renet client id of its session.
    pub client: u64,
    /// The lock owner (this server and the session).
    pub owner: LockOwner,
    /// The profile.
    pub profile: Profile,
    /// Stored version it is based on.
    pub version: u64,
    /// Changed since the last save.
    pub dirty: bool,
    /// The profile as stored at `version` (the base of a three-way merge).
    pub base: Profile,
    /// Checksum of `base` (the integrity sweep compares the stored copy with it).
    base_checksum: String,
    /// A conflict about this profile waits for a person: no saves until it is settled.
    pub held: bool,
    next_autosave: Duration,
    last_saved: Duration,
    saving: bool,
    retries: u32,
    retry_at: Option<Duration>,
}

struct SavedItem {
    player: u64,
    owner: LockOwner,
    result: Result<u64, StoreError>,
    profile: Profile,
    base: Profile,
    /// Checksum of `profile` (computed in the task).
    checksum: String,
}

// A few jobs are in flight at a time; boxing the large ones would buy nothing.
#[allow(clippy::large_enum_variant)]
enum Job {
    Load {
        client: u64,
        owner: LockOwner,
        /// The loaded profile and its checksum.
        result: Result<(Loaded, String), StoreError>,
    },
    Saves {
        final_save: bool,
        items: Vec<SavedItem>,
    },
    Merge {
        player: u64,
        /// The snapshot whose save lost (ours).
        ours: Profile,
        base: Profile,
        /// The outcome, with the checksum of a merged profile.
        result: Result<(MergeOutcome, String), StoreError>,
    },
    Integrity {
        player: u64,
        version: u64,
        /// The stored version and the checksum of the stored profile.
        result: Result<Option<(u64, String)>, StoreError>,
    },
    Heartbeat {
        player: u64,
        result: Result<(), StoreError>,
    },
    Release,
    Restored {
        player: u64,
        result: Result<u64, StoreError>,
    },
    Backup {
        result: Result<backup::BackupRecord, backup::BackupError>,
    },
}

/// The plugin's state: live profiles, tasks in flight, health.
#[derive(Resource)]
pub struct DataStoreState {
    /// This server's id in session locks.
    pub server_id: String,
    live: HashMap<u64, LiveProfile>,
    tasks: Vec<Task<Job>>,
    errors: ErrorWindow,
    /// Saves and releases in flight.
    pub pending_saves: usize,
    /// Backups in flight.
    pub pending_backups: usize,
    /// Backups made and failed.
    pub backups_ok: u64,
    /// Backups that failed.
    pub backups_failed: u64,
    next_backup: Option<Duration>,
    /// Critical: 5 or more errors within 120 s.
    pub critical: bool,
    /// Saves that failed transiently; each is retried with backoff while its player is live.
    pub save_retries: u64,
    /// Errors of any kind (saves, loads, heartbeats, backups).
    pub errors_total: u64,
    /// Auto-save interval multiplier: 2 while the `datastore.autosave` optimisation rule is
    /// engaged (storage fails often; see [`AutosavePace`]), else 1.
    pub autosave_slowdown: u32,
}

impl DataStoreState {
    /// A state for server `server_id`.
    pub fn new(server_id: String) -> Self {
        Self {
            server_id,
            live: HashMap::new(),
            tasks: Vec::new(),
            errors: ErrorWindow::profile_store(),
            pending_saves: 0,
            pending_backups: 0,
            backups_ok: 0,
            backups_failed: 0,
            next_backup: None,
            critical: false,
            save_retries: 0,
            errors_total: 0,
            autosave_slowdown: 1,
        }
    }

    /// A live profile.
    pub fn profile(&self, player: u64) -> Option<&LiveProfile> {
        self.live.get(&player)
    }

    /// An operation on a live profile, all or nothing: `change` runs on a copy; if it succeeds
    /// the copy replaces the profile, which is marked dirty and keeps the operation `op` makes
    /// from the outcome. `None` when the player has no live profile here. (This is the only
    /// way to change a live profile besides [`Self::simulate`].)
    pub fn apply_op<R, E>(
        &mut self,
        player: u64,
        change: impl FnOnce(&mut Profile) -> Result<R, E>,
        op: impl FnOnce(&Profile, &R) -> OpRecord,
    ) -> Option<Result<R, E>> {
        let live = self.live.get_mut(&player)?;
        let mut next = live.profile.clone();
        Some(change(&mut next).inspect(|r| {
            let record = op(&next, r);
            next.remember(record);
            live.profile = next;
            live.dirty = true;
        }))
    }

    /// The game's simulation step on a live profile (income, hunger): not an operation, so no
    /// record is kept; marks the profile dirty.
    pub fn simulate<R>(&mut self, player: u64, step: impl FnOnce(&mut Profile) -> R) -> Option<R> {
        self.live.get_mut(&player).map(|l| {
            l.dirty = true;
            step(&mut l.profile)
        })
    }

    /// Players loaded here.
    pub fn players(&self) -> impl Iterator<Item = u64> + '_ {
        self.live.keys().copied()
    }

    fn record_error(&mut self, now: Duration) {
        self.errors.record(now);
        self.errors_total += 1;
    }

    /// A conflict about `player` was settled: `stored` is now the stored profile at `version`.
    /// With `replace`, the live profile becomes `stored` (the stored side won); otherwise the
    /// live profile stays and is saved again if it differs.
    pub fn settled(&mut self, player: u64, version: u64, stored: Profile, replace: bool) {
        if let Some(l) = self.live.get_mut(&player) {
            l.version = version;
            l.held = false;
            l.base_checksum = profile_checksum(&stored);
            if replace {
                l.profile = stored.clone();
            }
            l.dirty = l.profile != stored;
            l.base = stored;
        }
    }

    /// Tasks in flight.
    pub fn busy(&self) -> usize {
        self.tasks.len()
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
    pub applied: Vec<OfflineMessage>,
}

/// The `datastore.autosave` optimisation rule changed state: auto-saves are spaced ×2 while it
/// is engaged. Sent by the rule engine; the data store owns the pace.
#[derive(Message, Debug, Clone, Copy, PartialEq, Eq)]
pub struct AutosavePace {
    /// Spaced out (engaged) or back to normal (released).
    pub slowed: bool,
}

fn pace_autosaves(mut paces: MessageReader<AutosavePace>, mut state: ResMut<DataStoreState>) {
    if let Some(p) = paces.read().last() {
        state.autosave_slowdown = if p.slowed { 2 } else { 1 };
    }
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

fn restore_versions(
    mut requests: MessageReader<RestoreVersion>,
    store: Res<DataStore>,
    mut state: ResMut<DataStoreState>,
    mut kicks: MessageWriter<KickRequested>,
) {
    for r in requests.read() {
        let live = state.live.remove(&r.player);
        if let Some(l) = &live {
            kicks.write(KickRequested {
                client: l.client,
                reason: "your data is being restored to an earlier version; rejoin in a moment"
                    .into(),
            });
        }
        let owner = live.map(|l| l.owner);
        let (player, version) = (r.player, r.version);
        let store = store.0.clone();
        state.tasks.push(IoTaskPool::get().spawn(async move {
            if let Some(owner) = owner {
                let _ = store.release(player, &owner);
            }
            Job::Restored {
                player,
                result: store.restore_version(player, version, now_ms()),
            }
        }));
    }
}

/// The data store plugin (server). [`Self::open`] opens the store (a bad key or a store another
/// server holds stops start-up); `build` inserts [`DataStore`] and [`DataStoreState`].
pub struct DataStorePlugin {
    store: DataStore,
    server_id: String,
}

impl DataStorePlugin {
    /// Opens the store under `paths.data` with the `datastore.*` settings; this server's id in
    /// session locks is random per process.
    pub fn open(config: &Config, paths: &crate::process::Paths) -> Result<Self, OpenError> {
        let store = open(&paths.data, config)?;
        let mut id = [0u8; 4];
        getrandom::fill(&mut id).map_err(|e| OpenError::Backend(BackendError(e.to_string())))?;
        Ok(Self {
            store: DataStore(Arc::new(store)),
            server_id: format!("server-{}-{}", std::process::id(), hex::encode(id)),
        })
    }

    /// The store, as the plugin will insert it.
    pub fn store(&self) -> &DataStore {
        &self.store
    }
}

impl Plugin for DataStorePlugin {
    fn build(&self, app: &mut App) {
        crate::stages::server(app);
        app.insert_resource(self.store.clone())
            .insert_resource(DataStoreState::new(self.server_id.clone()));
        crate::integration::register(app, health::INTEGRATION);
        crate::integration::register_rule(app, health::autosave_rule());
        app.add_message::<ProfileLoaded>()
            .add_message::<AutosavePace>()
            .add_message::<crate::security::AdminCommandAdmitted>()
            .add_message::<crate::security::AuditEntry>()
            .add_message::<RestoreVersion>()
            .add_message::<VersionRestored>()
            .init_resource::<admin::SettleTasks>()
            .add_systems(
                Update,
                (admin::answer_conflict_commands, admin::finish_settlements)
                    .in_set(ServerSystems::Handle),
            )
            .add_systems(
                Update,
                (
                    pace_autosaves,
                    restore_versions,
                    start_loads,
                    finish_releases,
                    autosave,
                    integrity_sweep,
                    scheduled_backup,
                    poll_jobs,
                )
                    .chain()
                    .in_set(ServerSystems::Persist),
            )
            .add_systems(OnShutdown, save_everything)
            .add_systems(Update, hold_while_busy.in_set(ShutdownSystems::Drain));
    }
}

fn spread(player: u64, interval: Duration) -> Duration {
    // A fixed fraction of the interval per player, so auto-saves do not all land on one tick.
    let frac = (player.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as f64 / (1u64 << 24) as f64;
    interval.mul_f64(frac)
}

fn start_loads(
    mut started: MessageReader<SessionStarted>,
    store: Res<DataStore>,
    mut state: ResMut<DataStoreState>,
) {
    for s in started.read() {
        let owner = LockOwner {
            server_id: state.server_id.clone(),
            session: s.session_id,
        };
        let store = store.0.clone();
        let (client, player) = (s.client, s.player_id);
        let task = IoTaskPool::get().spawn(async move {
            let result = store.load(player, &owner, now_ms()).map(|l| {
                let sum = profile_checksum(&l.profile);
                (l, sum)
            });
            Job::Load {
                client,
                owner,
                result,
            }
        });
        state.tasks.push(task);
    }
}

/// Saves the given live profiles in one group commit (one fsync for all of them).
fn spawn_saves(state: &mut DataStoreState, store: &Arc<Store>, players: &[u64], final_save: bool) {
    let mut reqs = Vec::new();
    for p in players {
        if let Some(live) = state.live.get_mut(p)
            && !live.saving
        {
            live.saving = true;
            reqs.push((
                SaveRequest {
                    profile: live.profile.clone(),
                    expected_version: live.version,
                    owner: live.owner.clone(),
                },
                live.base.clone(),
            ));
        }
    }
    if reqs.is_empty() {
        return;
    }
    let store = store.clone();
    state.pending_saves += reqs.len();
    state.tasks.push(IoTaskPool::get().spawn(async move {
        let (reqs, bases): (Vec<SaveRequest>, Vec<Profile>) = reqs.into_iter().unzip();
        let results = store.save_batch(&reqs, true, now_ms());
        let items = reqs
            .into_iter()
            .zip(bases)
            .zip(results)
            .map(|((req, base), result)| {
                let player = req.profile.player_id;
                if final_save && result.is_ok() {
                    let _ = store.release(player, &req.owner);
                }
                SavedItem {
                    player,
                    owner: req.owner,
                    result,
                    checksum: profile_checksum(&req.profile),
                    profile: req.profile,
                    base,
                }
            })
            .collect();
        Job::Saves { final_save, items }
    }));
}

/// Releases a player's lock off the tick.
fn spawn_release(state: &mut DataStoreState, store: &Arc<Store>, player: u64, owner: LockOwner) {
    let store = store.clone();
    state.pending_saves += 1;
    state.tasks.push(IoTaskPool::get().spawn(async move {
        let _ = store.release(player, &owner);
        Job::Release
    }));
}

fn finish_releases(
    mut ended: MessageReader<SessionEnded>,
    store: Res<DataStore>,
    mut state: ResMut<DataStoreState>,
) {
    for e in ended.read() {
        let Some(live) = state.live.get(&e.player_id) else {
            continue;
        };
        if live.owner.session != e.session_id {
            continue;
        }
        if live.saving {
            // The save in flight releases the lock when it lands (see `poll_jobs`).
        } else if live.held {
            // A conflict waits for an admin: the profile stays as stored; the lock goes.
            let owner = live.owner.clone();
            spawn_release(&mut state, &store.0, e.player_id, owner);
        } else if live.dirty || live.version == 0 {
            spawn_saves(&mut state, &store.0, &[e.player_id], true);
        } else {
            let owner = live.owner.clone();
            spawn_release(&mut state, &store.0, e.player_id, owner);
        }
        state.live.remove(&e.player_id);
    }
}

fn autosave(
    config: Res<Config>,
    store: Res<DataStore>,
    mut state: ResMut<DataStoreState>,
    time: Res<Time<Real>>,
) {
    let now = time.elapsed();
    // The keys are in the schema and were validated at start, so these reads cannot fail.
    let (Ok(interval), Ok(stale)) = (
        config.get::<Duration>("datastore.autosaveInterval"),
        config.get::<Duration>("datastore.lockStaleAfter"),
    ) else {
        return;
    };
    // Each profile is visited every `period`: saved if it changed and its last save is an
    // interval old (or a retry is due), else its lock gets a heartbeat. The period stays well
    // under `datastore.lockStaleAfter` so no other server can take a live profile's lock.
    let interval = interval * state.autosave_slowdown.max(1);
    let period = interval.min(stale / 3);
    let due: Vec<(u64, bool)> = state
        .live
        .iter()
        .filter(|(_, l)| {
            !l.saving && !l.held && (l.next_autosave <= now || l.retry_at.is_some_and(|t| t <= now))
        })
        .map(|(p, l)| {
            let retry = l.retry_at.is_some();
            let save = retry || (l.dirty && now.saturating_sub(l.last_saved) >= interval);
            (*p, save)
        })
        .collect();
    let mut batch = Vec::new();
    for (player, dirty) in due {
        if let Some(l) = state.live.get_mut(&player) {
            l.next_autosave = now + period;
            l.retry_at = None;
        }
        if dirty {
            batch.push(player);
        } else if let Some(l) = state.live.get(&player) {
            let owner = l.owner.clone();
            let store = store.0.clone();
            state.tasks.push(IoTaskPool::get().spawn(async move {
                let result = store.heartbeat(player, &owner, now_ms());
                Job::Heartbeat { player, result }
            }));
        }
    }
    // Every profile due this frame goes out in one group commit.
    spawn_saves(&mut state, &store.0, &batch, false);
}

fn scheduled_backup(
    config: Res<Config>,
    store: Res<DataStore>,
    paths: Res<crate::process::Paths>,
    mut state: ResMut<DataStoreState>,
    time: Res<Time<Real>>,
) {
    let now = time.elapsed();
    let Ok(interval) = config.get::<Duration>("datastore.backupInterval") else {
        return;
    };
    let next = *state.next_backup.get_or_insert(now + interval);
    if now < next || state.pending_backups > 0 {
        return;
    }
    state.next_backup = Some(now + interval);
    let Ok(retention) = config.get::<usize>("datastore.backupRetention") else {
        return;
    };
    let data = paths.data.clone();
    let store = store.0.clone();
    state.pending_backups += 1;
    state.tasks.push(IoTaskPool::get().spawn(async move {
        Job::Backup {
            result: backup::backup(store.backend(), &data, retention, now_ms()),
        }
    }));
}

/// The checksum of a profile's canonical encoding (computed in the IO tasks, off the tick).
fn profile_checksum(profile: &Profile) -> String {
    serde_json::to_value(profile)
        .map(|v| crate::reconcile::checksum(&v))
        .unwrap_or_default()
}

/// Changes made to `now` since `saved` was sent, carried onto `merged`.
fn rebase(
    saved: &Profile,
    now: &Profile,
    merged: &Profile,
    strategy: crate::reconcile::Strategy,
    policy: &crate::reconcile::Policy,
) -> Profile {
    let (Ok(b), Ok(o), Ok(t)) = (
        serde_json::to_value(saved),
        serde_json::to_value(now),
        serde_json::to_value(merged),
    ) else {
        return now.clone();
    };
    let r = crate::reconcile::resolve(&b, &o, &t, strategy, policy);
    serde_json::from_value(r.merged).unwrap_or_else(|_| now.clone())
}

fn spawn_merge(
    state: &mut DataStoreState,
    store: &Arc<Store>,
    rc: &Reconciler,
    player: u64,
    base: Profile,
    ours: Profile,
) {
    let (strategy, policy) = (rc.strategy, rc.policy.clone());
    let store = store.clone();
    if let Some(l) = state.live.get_mut(&player) {
        l.saving = true;
    }
    state.pending_saves += 1;
    state.tasks.push(IoTaskPool::get().spawn(async move {
        let result = store
            .merge_into(player, &base, &ours, strategy, &policy, now_ms())
            .map(|m| {
                let sum = match &m {
                    MergeOutcome::Merged { profile, .. } => profile_checksum(profile),
                    MergeOutcome::Conflicts { .. } => String::new(),
                };
                (m, sum)
            });
        Job::Merge {
            player,
            ours,
            base,
            result,
        }
    }));
}

/// Every `reconcile.interval`, each clean live profile's stored copy is read off the tick and
/// compared with the checksum of what this server last saved.
fn integrity_sweep(
    store: Res<DataStore>,
    reconciler: Res<Reconciler>,
    mut state: ResMut<DataStoreState>,
    time: Res<Time<Real>>,
    mut last: Local<Duration>,
) {
    let now = time.elapsed();
    if now.saturating_sub(*last) < reconciler.interval {
        return;
    }
    *last = now;
    let due: Vec<(u64, u64)> = state
        .live
        .iter()
        .filter(|(_, l)| !l.dirty && !l.saving && !l.held && l.version > 0)
        .map(|(p, l)| (*p, l.version))
        .collect();
    for (player, version) in due {
        let store = store.0.clone();
        state.tasks.push(IoTaskPool::get().spawn(async move {
            Job::Integrity {
                player,
                version,
                result: store
                    .peek(player)
                    .map(|found| found.map(|(v, p)| (v, profile_checksum(&p)))),
            }
        }));
    }
}

fn backoff(retries: u32, player: u64) -> Duration {
    // 0.5 s doubling to at most 30 s, with ±25% jitter from the player id and attempt.
    let base = Duration::from_millis(500)
        .saturating_mul(1u32 << retries.min(6))
        .min(Duration::from_secs(30));
    let j = (player ^ u64::from(retries)).wrapping_mul(0x2545_F491_4F6C_DD1D) >> 54;
    base.mul_f64(0.75 + (j as f64 / 1024.0) * 0.5)
}

#[allow(clippy::too_many_arguments)]
fn poll_jobs(
    mut state: ResMut<DataStoreState>,
    store: Res<DataStore>,
    config: Res<Config>,
    reconciler: Res<Reconciler>,
    time: Res<Time<Real>>,
    mut loaded: MessageWriter<ProfileLoaded>,
    mut restored: MessageWriter<VersionRestored>,
    mut kicks: MessageWriter<KickRequested>,
    mut reconciled: MessageWriter<Reconciled>,
) {
    let now = time.elapsed();
    let mut done = Vec::new();
    state
        .tasks
        .retain_mut(|t| match block_on(future::poll_once(t)) {
            Some(job) => {
                done.push(job);
                false
            }
            None => true,
        });
    for job in done {
        match job {
            Job::Load {
                client,
                owner,
                result,
            } => match result {
                Ok((l, base_checksum)) => {
                    let player = l.profile.player_id;
                    info!(player, "profile loaded (version {})", l.version);
                    loaded.write(ProfileLoaded {
                        client,
                        player,
                        applied: l.applied.clone(),
                    });
                    reconciled.write(Reconciled::Snapshot);
                    state.live.insert(
                        player,
                        LiveProfile {
                            client,
                            owner,
                            version: l.version,
                            dirty: !l.applied.is_empty() && l.version == 0,
                            base: l.profile.clone(),
                            base_checksum,
                            held: false,
                            profile: l.profile,
                            // First visit at a per-player offset within the interval.
                            next_autosave: now
                                + config
                                    .get::<Duration>("datastore.autosaveInterval")
                                    .map_or(Duration::ZERO, |i| spread(player, i)),
                            last_saved: now,
                            saving: false,
                            retries: 0,
                            retry_at: None,
                        },
                    );
                }
                Err(e) => {
                    error!("profile load failed: {e}");
                    state.record_error(now);
                    let reason = match &e {
                        StoreError::Locked { .. } => "your profile is open on another server; try again in a minute".to_string(),
                        StoreError::Corrupt { .. } => "your saved data could not be read; it was left untouched and staff were alerted".to_string(),
                        other => format!("your data could not be loaded: {other}"),
                    };
                    kicks.write(KickRequested { client, reason });
                }
            },
            Job::Saves { final_save, items } => {
                for item in items {
                    let SavedItem {
                        player,
                        owner,
                        result,
                        profile,
                        base,
                        checksum,
                    } = item;
                    state.pending_saves = state.pending_saves.saturating_sub(1);
                    match result {
                        Ok(_) if !final_save && !state.live.contains_key(&player) => {
                            // The session ended while this auto-save was in flight: release now.
                            spawn_release(&mut state, &store.0, player, owner);
                        }
                        Ok(version) => {
                            reconciled.write(Reconciled::Snapshot);
                            if let Some(l) = state.live.get_mut(&player) {
                                l.version = version;
                                l.saving = false;
                                l.last_saved = now;
                                l.retries = 0;
                                l.base_checksum = checksum;
                                // Unchanged since this save started: clean.
                                if l.profile == profile {
                                    l.dirty = false;
                                }
                                l.base = profile;
                            }
                        }
                        Err(e) if e.is_transient() => {
                            warn!(player, "save failed, will retry: {e}");
                            state.record_error(now);
                            state.save_retries += 1;
                            match state.live.get_mut(&player) {
                                Some(l) => {
                                    l.saving = false;
                                    l.retries += 1;
                                    l.retry_at = Some(now + backoff(l.retries, player));
                                }
                                None if final_save => {
                                    error!(
                                        player,
                                        "final save failed: {e}; the last autosave stands"
                                    );
                                }
                                None => {}
                            }
                        }
                        Err(
                            e @ (StoreError::VersionConflict { .. } | StoreError::LockLost { .. }),
                        ) => {
                            // Another writer got there first: merge our changes into theirs
                            // (the reconcile strategy decides how) instead of dropping them.
                            let lock_lost = matches!(e, StoreError::LockLost { .. });
                            warn!(player, "save lost to another writer ({e}); reconciling");
                            if lock_lost && let Some(l) = state.live.remove(&player) {
                                // Fencing: this server no longer owns the profile.
                                kicks.write(KickRequested {
                                    client: l.client,
                                    reason: format!("session ended: {e}"),
                                });
                            }
                            spawn_merge(&mut state, &store.0, &reconciler, player, base, profile);
                        }
                        Err(e) => {
                            error!(player, "save refused: {e}");
                            state.record_error(now);
                            if let Some(l) = state.live.remove(&player) {
                                kicks.write(KickRequested {
                                    client: l.client,
                                    reason: format!("session ended: {e}"),
                                });
                            }
                        }
                    }
                }
            }
            Job::Merge {
                player,
                ours,
                base,
                result,
            } => {
                state.pending_saves = state.pending_saves.saturating_sub(1);
                match result {
                    Ok((MergeOutcome::Merged { version, profile }, checksum)) => {
                        info!(
                            player,
                            "reconciled with the stored profile as version {version}"
                        );
                        reconciled.write(Reconciled::Snapshot);
                        reconciled.write(Reconciled::Resolved);
                        let (strategy, policy) = (reconciler.strategy, reconciler.policy.clone());
                        if let Some(l) = state.live.get_mut(&player) {
                            l.saving = false;
                            l.version = version;
                            l.base_checksum = checksum;
                            l.last_saved = now;
                            if l.profile == ours {
                                l.profile = profile.clone();
                                l.dirty = false;
                            } else {
                                // Changed again while the merge ran: carry those changes over.
                                l.profile = rebase(&ours, &l.profile, &profile, strategy, &policy);
                                l.dirty = true;
                            }
                            l.base = profile;
                        }
                    }
                    Ok((
                        MergeOutcome::Conflicts {
                            version,
                            theirs,
                            conflicts,
                        },
                        _,
                    )) => {
                        if let Some(l) = state.live.get_mut(&player) {
                            l.saving = false;
                            l.held = true;
                        }
                        let json = |p: &Profile| serde_json::to_value(p).unwrap_or_default();
                        reconciled.write(Reconciled::Conflict(Box::new(
                            crate::reconcile::PendingConflict {
                                id: 0,
                                player,
                                base: json(&base),
                                ours: json(&ours),
                                theirs: json(&theirs),
                                theirs_version: version,
                                fields: conflicts,
                            },
                        )));
                    }
                    Err(e) => {
                        error!(player, "reconciling a lost save failed: {e}");
                        state.record_error(now);
                        if let Some(l) = state.live.get_mut(&player) {
                            l.saving = false;
                            l.retries += 1;
                            l.retry_at = Some(now + backoff(l.retries, player));
                        }
                    }
                }
            }
            Job::Integrity {
                player,
                version,
                result,
            } => match result {
                Ok(Some((stored_version, stored_sum))) => {
                    let Some(l) = state.live.get_mut(&player) else {
                        continue;
                    };
                    if stored_version != version || l.version != version {
                        // Moved on (a save landed, or another writer): the next save settles it.
                        continue;
                    }
                    if stored_sum != l.base_checksum {
                        error!(
                            target: "audit",
                            player,
                            "integrity: the stored profile (version {version}) differs from what this server saved; writing the server's copy back"
                        );
                        reconciled.write(Reconciled::IntegrityFailure);
                        l.dirty = true;
                        l.next_autosave = now;
                        l.last_saved = Duration::ZERO;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    error!(player, "integrity check could not read the profile: {e}");
                    state.record_error(now);
                }
            },
            Job::Heartbeat { player, result } => {
                if let Err(e) = result {
                    error!(player, "lock heartbeat failed: {e}");
                    state.record_error(now);
                    if !e.is_transient()
                        && let Some(l) = state.live.remove(&player)
                    {
                        kicks.write(KickRequested {
                            client: l.client,
                            reason: format!("session ended: {e}"),
                        });
                        // Unsaved changes of the lost session are merged, not dropped.
                        if l.dirty {
                            warn!(player, "lock lost with unsaved changes; reconciling them");
                            spawn_merge(
                                &mut state,
                                &store.0,
                                &reconciler,
                                player,
                                l.base,
                                l.profile,
                            );
                        }
                    }
                }
            }
            Job::Release => state.pending_saves = state.pending_saves.saturating_sub(1),
            Job::Restored { player, result } => {
                match &result {
                    Ok(v) => info!(target: "audit", player, "profile restored as version {v}"),
                    Err(e) => error!(player, "restore failed: {e}"),
                }
                restored.write(VersionRestored { player, result });
            }
            Job::Backup { result } => {
                state.pending_backups = state.pending_backups.saturating_sub(1);
                match result {
                    Ok(r) => {
                        state.backups_ok += 1;
                        info!(
                            "backup {} ({} bytes, sha256 {})",
                            r.file.display(),
                            r.size,
                            r.sha256
                        );
                    }
                    Err(e) => {
                        state.backups_failed += 1;
                        state.record_error(now);
                        error!("backup failed: {e}");
                    }
                }
            }
        }
    }
    let critical = state.errors.critical(now);
    if critical != state.critical {
        if critical {
            error!("data store is CRITICAL: 5 or more errors within 120 s");
        } else {
            info!("data store recovered from its critical state");
        }
        state.critical = critical;
    }
}

fn save_everything(store: Res<DataStore>, mut state: ResMut<DataStoreState>) {
    let players: Vec<u64> = state.live.keys().copied().collect();
    spawn_saves(&mut state, &store.0, &players, true);
}

fn hold_while_busy(state: Res<DataStoreState>, mut shutdown: ResMut<Shutdown>) {
    if !state.tasks.is_empty() {
        shutdown.hold(format!(
            "datastore: {} save(s) and task(s) in flight",
            state.tasks.len()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let b: Vec<Duration> = (1..=10).map(|r| backoff(r, 42)).collect();
        assert!(
            b[0] >= Duration::from_millis(750) && b[0] <= Duration::from_millis(1250),
            "{:?}",
            b[0]
        );
        assert!(b[3] > b[1]);
        assert!(b.iter().all(|d| *d <= Duration::from_secs(38)));
        assert_ne!(
            backoff(3, 1),
            backoff(3, 2),
            "jitter differs between players"
        );
    }

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

    #[test]
    fn autosave_spread_stays_within_the_interval() {
        let i = Duration::from_secs(60);
        let offsets: Vec<Duration> = (1..200).map(|p| spread(p, i)).collect();
        assert!(offsets.iter().all(|o| *o < i));
        assert!(
            offsets.iter().any(|o| *o < Duration::from_secs(20))
                && offsets.iter().any(|o| *o > Duration::from_secs(40))
        );
    }
}
