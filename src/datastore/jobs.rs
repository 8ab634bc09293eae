//! The store's work off the tick: each kind of job is spawned on the IO task pool by one
//! function here and, when it lands, handled by one function here that moves the profile to its
//! next [`Phase`] (see `live.rs`). The tick never waits on a disk.

use std::sync::Arc;
use std::time::Duration;

use bevy::prelude::*;
use bevy::tasks::IoTaskPool;

use super::PlayerData;
use super::live::{DataStoreState, LiveProfile, Phase, profile_checksum};
use super::{
    BackupError, BackupRecord, InboxDelivered, Loaded, LockOwner, MergeOutcome, Outgoing, Profile,
    ProfileLoaded, SaveRequest, Saved, Store, StoreError, VersionRestored,
};
use crate::clock::now_ms;
use crate::config::Config;
use crate::reconcile::{PendingConflict, Reconciled, Reconciler};
use crate::transport::KickRequested;

/// One profile's outcome in a group commit.
pub(super) struct SavedItem<D: PlayerData> {
    player: u64,
    owner: LockOwner,
    result: Result<Saved<D>, StoreError>,
    profile: Profile<D>,
    base: Profile<D>,
    /// The messages the save carried.
    sends: Vec<Outgoing<D::Offline>>,
    /// Checksum of `profile` (computed in the task).
    checksum: String,
    /// The version the save expected, and the leaderboard name it wrote (kept for a final
    /// save to retry).
    expected_version: u64,
    name: String,
}

/// A job that landed.
// A few jobs are in flight at a time; boxing the large ones would buy nothing.
#[allow(clippy::large_enum_variant)]
pub(super) enum Job<D: PlayerData> {
    Load {
        client: u64,
        player: u64,
        owner: LockOwner,
        /// The player's name (the leaderboard's).
        name: String,
        /// The loaded profile and its checksum.
        result: Result<(Loaded<D>, String), StoreError>,
    },
    Saves {
        final_save: bool,
        /// Saved together or not at all (see [`save_together`]).
        together: bool,
        items: Vec<SavedItem<D>>,
    },
    Merge {
        player: u64,
        /// The snapshot whose save lost (ours).
        ours: Profile<D>,
        base: Profile<D>,
        /// The messages the lost save carried (they go with the merge).
        sends: Vec<Outgoing<D::Offline>>,
        /// The outcome, with the checksum of a merged profile.
        result: Result<(MergeOutcome<D>, String), StoreError>,
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
    /// A lock released (a session ended with nothing to save, or a conflict held it).
    Released,
    Restored {
        player: u64,
        result: Result<u64, StoreError>,
    },
    Backup {
        result: Result<BackupRecord, BackupError>,
    },
}

/// What landed jobs read (the store, reconciliation's strategy, the config, the time) and the
/// messages they leave for the system to write.
pub(super) struct Landing<'a> {
    pub store: &'a Arc<Store>,
    pub reconciler: &'a Reconciler,
    pub config: &'a Config,
    pub now: Duration,
    pub loaded: Vec<ProfileLoaded>,
    pub restored: Vec<VersionRestored>,
    pub kicks: Vec<KickRequested>,
    pub reconciled: Vec<Reconciled>,
}

impl Landing<'_> {
    fn kick(&mut self, client: u64, reason: String) {
        self.kicks.push(KickRequested { client, reason });
    }
}

/// Exponential backoff for a write that failed `retries` times in a row: 0.5 s doubling to at
/// most 30 s, with ±25% jitter from the player id and attempt.
pub(super) fn backoff(retries: u32, player: u64) -> Duration {
    let base = Duration::from_millis(500)
        .saturating_mul(1u32 << retries.min(6))
        .min(Duration::from_secs(30));
    let j = (player ^ u64::from(retries)).wrapping_mul(0x2545_F491_4F6C_DD1D) >> 54;
    base.mul_f64(0.75 + (j as f64 / 1024.0) * 0.5)
}

/// A profile's first auto-save visit, at a fixed fraction of the interval per player, so
/// auto-saves do not all land on one tick.
pub(super) fn spread(player: u64, interval: Duration) -> Duration {
    let frac = (player.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as f64 / (1u64 << 24) as f64;
    interval.mul_f64(frac)
}

// ---- spawning ------------------------------------------------------------------------------

/// Loads `player`'s profile under a session lock for `client`: the profile is `Loading`.
pub(super) fn spawn_load<D: PlayerData>(
    state: &mut DataStoreState<D>,
    store: &Arc<Store>,
    (client, player, session): (u64, u64, u128),
    name: String,
) {
    let owner = LockOwner {
        server_id: state.server_id.clone(),
        session,
    };
    state.loading.insert(
        player,
        super::live::Loading {
            session,
            ended: false,
        },
    );
    let store = store.clone();
    state.tasks.push(IoTaskPool::get().spawn(async move {
        let result = store.load(player, &owner, now_ms()).map(|l| {
            let sum = profile_checksum(&l.profile);
            (l, sum)
        });
        Job::Load {
            client,
            player,
            owner,
            name,
            result,
        }
    }));
}

/// Saves the given live profiles that have no write in flight in one group commit (one fsync
/// for all of them): each becomes `Saving`. A final save also releases each lock it saved.
pub(super) fn spawn_saves<D: PlayerData>(
    state: &mut DataStoreState<D>,
    store: &Arc<Store>,
    players: &[u64],
    final_save: bool,
) {
    spawn_batch(state, store, players, final_save, false);
}

/// Saves the given live profiles all together or not at all (a trade): `false`, and nothing
/// spawned, when one of them is not live here or has a write in flight (try again later).
pub(super) fn save_together<D: PlayerData>(
    state: &mut DataStoreState<D>,
    store: &Arc<Store>,
    players: &[u64],
) -> bool {
    let ready = players.iter().all(|p| {
        state
            .live
            .get(p)
            .is_some_and(|l| matches!(l.phase, Phase::Live | Phase::Retrying { .. }))
    });
    if ready {
        spawn_batch(state, store, players, false, true);
    }
    ready
}

fn spawn_batch<D: PlayerData>(
    state: &mut DataStoreState<D>,
    store: &Arc<Store>,
    players: &[u64],
    final_save: bool,
    together: bool,
) {
    let mut reqs = Vec::new();
    for p in players {
        if let Some(live) = state.live.get_mut(p)
            && live.phase != Phase::Saving
        {
            live.phase = Phase::Saving;
            live.inbox_waiting = false;
            reqs.push((
                SaveRequest {
                    profile: live.profile.clone(),
                    expected_version: live.version,
                    owner: live.owner.clone(),
                    sends: std::mem::take(&mut live.outbox),
                    name: Some(live.name.clone()),
                },
                live.base.clone(),
            ));
        }
    }
    spawn_requests(state, store, reqs, final_save, together);
}

/// The final saves of players who left whose first attempt failed, when due: one group commit,
/// each releasing its lock when it lands.
pub(super) fn spawn_orphan_saves<D: PlayerData>(
    state: &mut DataStoreState<D>,
    store: &Arc<Store>,
    now: Duration,
) {
    let mut reqs = Vec::new();
    for (player, o) in state.orphans.iter_mut() {
        if o.saving || o.due > now {
            continue;
        }
        o.saving = true;
        info!(
            player,
            retry = o.retries,
            "saving a departed player's profile again"
        );
        reqs.push((
            SaveRequest {
                profile: o.profile.clone(),
                expected_version: o.version,
                owner: o.owner.clone(),
                sends: std::mem::take(&mut o.sends),
                name: Some(o.name.clone()),
            },
            o.base.clone(),
        ));
    }
    spawn_requests(state, store, reqs, true, false);
}

fn spawn_requests<D: PlayerData>(
    state: &mut DataStoreState<D>,
    store: &Arc<Store>,
    reqs: Vec<(SaveRequest<D>, Profile<D>)>,
    final_save: bool,
    together: bool,
) {
    if reqs.is_empty() {
        return;
    }
    let store = store.clone();
    state.pending_saves += reqs.len();
    state.tasks.push(IoTaskPool::get().spawn(async move {
        let (reqs, bases): (Vec<SaveRequest<D>>, Vec<Profile<D>>) = reqs.into_iter().unzip();
        let results = if together {
            store.save_together(&reqs, now_ms())
        } else {
            store.save_batch(&reqs, true, now_ms())
        };
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
                    sends: req.sends,
                    expected_version: req.expected_version,
                    name: req.name.unwrap_or_default(),
                }
            })
            .collect();
        Job::Saves {
            final_save,
            together,
            items,
        }
    }));
}

/// Releases a player's lock.
pub(super) fn spawn_release<D: PlayerData>(
    state: &mut DataStoreState<D>,
    store: &Arc<Store>,
    player: u64,
    owner: LockOwner,
) {
    let store = store.clone();
    state.pending_saves += 1;
    state.tasks.push(IoTaskPool::get().spawn(async move {
        let _ = store.release(player, &owner);
        Job::Released
    }));
}

/// Merges `ours` (a save another writer won) into the stored profile under the reconcile
/// strategy: a profile still in play is `Saving` until it lands.
pub(super) fn spawn_merge<D: PlayerData>(
    state: &mut DataStoreState<D>,
    store: &Arc<Store>,
    rc: &Reconciler,
    player: u64,
    (base, ours): (Profile<D>, Profile<D>),
    sends: Vec<Outgoing<D::Offline>>,
) {
    let (strategy, policy) = (rc.strategy, rc.policy.clone());
    let store = store.clone();
    if let Some(l) = state.live.get_mut(&player) {
        l.phase = Phase::Saving;
    }
    state.pending_saves += 1;
    state.tasks.push(IoTaskPool::get().spawn(async move {
        let result = store
            .merge_into(player, &base, &ours, strategy, &policy, (&sends, now_ms()))
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
            sends,
            result,
        }
    }));
}

/// Renews `player`'s lock.
pub(super) fn spawn_heartbeat<D: PlayerData>(
    state: &mut DataStoreState<D>,
    store: &Arc<Store>,
    player: u64,
) {
    let Some(owner) = state.live.get(&player).map(|l| l.owner.clone()) else {
        return;
    };
    let store = store.clone();
    state.tasks.push(IoTaskPool::get().spawn(async move {
        let result = store.heartbeat(player, &owner, now_ms());
        Job::Heartbeat { player, result }
    }));
}

/// Backs the store up under `data`, keeping `retention` backups.
pub(super) fn spawn_backup<D: PlayerData>(
    state: &mut DataStoreState<D>,
    store: &Arc<Store>,
    data: std::path::PathBuf,
    retention: usize,
) {
    let store = store.clone();
    state.pending_backups += 1;
    state.tasks.push(IoTaskPool::get().spawn(async move {
        Job::Backup {
            result: super::back_up(store.backend(), &data, retention, now_ms()),
        }
    }));
}

/// Makes `version` of `player`'s profile current again, releasing `owner`'s lock first when
/// the player was in play here.
pub(super) fn spawn_restore<D: PlayerData>(
    state: &mut DataStoreState<D>,
    store: &Arc<Store>,
    (player, version): (u64, u64),
    owner: Option<LockOwner>,
) {
    let store = store.clone();
    state.tasks.push(IoTaskPool::get().spawn(async move {
        if let Some(owner) = owner {
            let _ = store.release(player, &owner);
        }
        Job::Restored {
            player,
            result: store.restore_version::<D>(player, version, now_ms()),
        }
    }));
}

/// Reads the stored copy of `player`'s profile at `version` for the integrity sweep.
pub(super) fn spawn_integrity<D: PlayerData>(
    state: &mut DataStoreState<D>,
    store: &Arc<Store>,
    player: u64,
    version: u64,
) {
    let store = store.clone();
    state.tasks.push(IoTaskPool::get().spawn(async move {
        Job::Integrity {
            player,
            version,
            result: store
                .peek::<D>(player)
                .map(|found| found.map(|(v, p)| (v, profile_checksum(&p)))),
        }
    }));
}

// ---- landing -------------------------------------------------------------------------------

/// Hands a landed job to its handler.
pub(super) fn land<D: PlayerData>(state: &mut DataStoreState<D>, job: Job<D>, l: &mut Landing<'_>) {
    match job {
        Job::Load {
            client,
            player,
            owner,
            name,
            result,
        } => loaded(state, (client, player, owner, name), result, l),
        Job::Saves {
            final_save,
            together,
            items,
        } => {
            for mut item in items {
                if together && item.result.is_err() {
                    unsend_together(state, &mut item);
                }
                saved(state, final_save, item, l);
            }
        }
        Job::Merge {
            player,
            ours,
            base,
            sends,
            result,
        } => merged(state, player, (ours, base, sends), result, l),
        Job::Integrity {
            player,
            version,
            result,
        } => checked(state, (player, version), result, l),
        Job::Heartbeat { player, result } => heartbeat(state, player, result, l),
        Job::Released => state.pending_saves = state.pending_saves.saturating_sub(1),
        Job::Restored { player, result } => {
            match &result {
                Ok(v) => info!(target: "audit", player, "profile restored as version {v}"),
                Err(e) => error!(player, "restore failed: {e}"),
            }
            l.restored.push(VersionRestored { player, result });
        }
        Job::Backup { result } => backed_up(state, result, l.now),
    }
}

/// Loading → Live; or gone (the load failed: the player is told why; or the session ended
/// meanwhile: the lock is released at once).
fn loaded<D: PlayerData>(
    state: &mut DataStoreState<D>,
    (client, player, owner, name): (u64, u64, LockOwner, String),
    result: Result<(Loaded<D>, String), StoreError>,
    l: &mut Landing<'_>,
) {
    let ended = match state.loading.get(&player) {
        Some(w) if w.session == owner.session => {
            let ended = w.ended;
            state.loading.remove(&player);
            ended
        }
        _ => false,
    };
    let waited = state
        .waiting
        .iter()
        .position(|w| w.player == player && w.session == owner.session);
    // Another live server holds the profile: ask it to hand the profile over, and try again.
    if let (Err(StoreError::Locked { holder, .. }), false) = (&result, ended)
        && l.store.backend().postgres().is_some()
    {
        match waited {
            Some(i)
                if l.now.saturating_sub(state.waiting[i].since) < super::handoff::GIVE_UP_AFTER =>
            {
                state.waiting[i].due = l.now + super::handoff::RETRY;
                state.waiting[i].loading = false;
                return;
            }
            Some(_) => {}
            None => {
                info!(
                    player,
                    "profile held by live server {holder}; asking it to hand over"
                );
                super::handoff::ask_release(l.store, holder, &state.server_id, player);
                state.waiting.push(super::handoff::Waiting {
                    client,
                    player,
                    name,
                    session: owner.session,
                    holder: holder.clone(),
                    since: l.now,
                    due: l.now + super::handoff::RETRY,
                    asked: l.now,
                    loading: false,
                });
                return;
            }
        }
    }
    if let Some(i) = waited {
        let w = state.waiting.swap_remove(i);
        if result.is_ok() && !ended {
            state.handoffs += 1;
            info!(
                player,
                "profile handed over by server {} in {} ms",
                w.holder,
                l.now.saturating_sub(w.since).as_millis()
            );
        }
    }
    match result {
        Ok(_) if ended => {
            info!(
                player,
                "profile loaded after its session ended; releasing it"
            );
            spawn_release(state, l.store, player, owner);
        }
        Ok((loaded, base_checksum)) => {
            info!(player, "profile loaded (version {})", loaded.version);
            l.loaded.push(ProfileLoaded {
                client,
                player,
                applied: loaded.applied.len(),
            });
            l.reconciled.push(Reconciled::Snapshot);
            let first_visit = l
                .config
                .get::<Duration>("datastore.autosaveInterval")
                .map_or(Duration::ZERO, |i| spread(player, i));
            state.live.insert(
                player,
                LiveProfile {
                    client,
                    owner,
                    name,
                    version: loaded.version,
                    dirty: !loaded.applied.is_empty() && loaded.version == 0,
                    base: loaded.profile.clone(),
                    base_checksum,
                    phase: Phase::Live,
                    profile: loaded.profile,
                    next_autosave: l.now + first_visit,
                    last_saved: l.now,
                    retries: 0,
                    outbox: Vec::new(),
                    inbox_waiting: false,
                },
            );
        }
        Err(e) => {
            error!("profile load failed: {e}");
            state.record_error(l.now);
            let reason = match &e {
                StoreError::Locked { .. } => {
                    "your profile is open on another server; try again in a minute".to_string()
                }
                StoreError::Corrupt { .. } => "your saved data could not be read; it was left untouched and staff were alerted".to_string(),
                other => format!("your data could not be loaded: {other}"),
            };
            l.kick(client, reason);
        }
    }
}

/// Saving → Live (saved; clean unless it changed meanwhile), Retrying (a transient failure),
/// Saving again (lost to another writer: merged instead), or gone (refused, or the lock was
/// lost). A save that lands after its session ended releases the lock.
fn saved<D: PlayerData>(
    state: &mut DataStoreState<D>,
    final_save: bool,
    item: SavedItem<D>,
    l: &mut Landing<'_>,
) {
    let SavedItem {
        player,
        owner,
        result,
        profile,
        base,
        checksum,
        sends,
        expected_version,
        name,
    } = item;
    let now = l.now;
    state.pending_saves = state.pending_saves.saturating_sub(1);
    // A departed player's final save: kept until it lands (transient failures), else done.
    let orphan = if final_save {
        state.orphans.remove(&player)
    } else {
        None
    };
    match result {
        Ok(saved) => {
            state.sends_committed(l.store, player, &saved.sent);
            if !final_save && !state.live.contains_key(&player) {
                // The session ended while this auto-save was in flight: release now.
                spawn_release(state, l.store, player, owner);
                return;
            }
            l.reconciled.push(Reconciled::Snapshot);
            let Some(live) = state.live.get_mut(&player) else {
                return;
            };
            live.version = saved.version;
            live.phase = Phase::Live;
            live.retries = 0;
            let committed = match saved.committed {
                Some(committed) => {
                    // Messages were delivered in this save: the live profile gets them too.
                    for (id, msg) in &saved.delivered {
                        live.profile.data.apply_offline(msg);
                        live.profile.applied_messages.insert(*id);
                    }
                    live.base_checksum = profile_checksum(&committed);
                    committed
                }
                None => {
                    live.base_checksum = checksum;
                    profile
                }
            };
            // Unchanged since this save started: clean.
            live.dirty = live.profile != committed;
            live.base = committed;
            if !saved.delivered.is_empty() {
                state.delivered.push(InboxDelivered {
                    player,
                    messages: saved.delivered,
                });
            }
        }
        Err(e) if e.is_transient() => {
            warn!(player, "save failed, will retry: {e}");
            state.record_error(now);
            state.save_retries += 1;
            if final_save && !state.live.contains_key(&player) {
                // The player left: the profile waits here (not in play) and is saved again
                // with backoff until the storage takes it.
                let retries = orphan.map_or(0, |o| o.retries) + 1;
                warn!(
                    player,
                    retries,
                    "final save failed: {e}; kept and saved again ({} profiles waiting)",
                    state.unsaved() + 1
                );
                state.orphans.insert(
                    player,
                    super::live::Orphan {
                        owner,
                        name,
                        profile,
                        base,
                        version: expected_version,
                        sends,
                        retries,
                        due: now + backoff(retries, player),
                        saving: false,
                    },
                );
                return;
            }
            state.unsent(player, sends, &format!("not saved: {e}"));
            if let Some(live) = state.live.get_mut(&player) {
                retry_later(live, player, now);
            }
        }
        Err(e @ (StoreError::VersionConflict { .. } | StoreError::LockLost { .. })) => {
            // Another writer got there first: merge our changes into theirs (the reconcile
            // strategy decides how) instead of dropping them.
            let lock_lost = matches!(e, StoreError::LockLost { .. });
            warn!(player, "save lost to another writer ({e}); reconciling");
            let mut sends = sends;
            if lock_lost && let Some(mut live) = state.live.remove(&player) {
                // Fencing: this server no longer owns the profile.
                sends.append(&mut live.outbox);
                l.kick(live.client, format!("session ended: {e}"));
            }
            spawn_merge(state, l.store, l.reconciler, player, (base, profile), sends);
        }
        Err(e) => {
            error!(player, "save refused: {e}");
            state.record_error(now);
            state.fail_sends(player, sends, &format!("save refused: {e}"));
            if let Some(live) = state.drop_live(player, "save refused") {
                l.kick(live.client, format!("session ended: {e}"));
            }
        }
    }
}

/// A save together failed: its messages must not go out on their own (the other side's did
/// not commit either), so each returns to its sender's live profile at once (what was taken
/// for it is given back by the game's own `apply_offline`) and is reported failed; the profile
/// itself is then saved, retried or reconciled like any other.
fn unsend_together<D: PlayerData>(state: &mut DataStoreState<D>, item: &mut SavedItem<D>) {
    let sends = std::mem::take(&mut item.sends);
    let why = match &item.result {
        Err(e) => format!("not saved together: {e}"),
        Ok(_) => return,
    };
    // Given back to the live profile and to the snapshot (a merge after a lost lock writes
    // the snapshot).
    for s in &sends {
        item.profile.data.apply_offline(&s.message);
    }
    if let Some(live) = state.live.get_mut(&item.player) {
        for s in &sends {
            live.profile.data.apply_offline(&s.message);
        }
        live.dirty = true;
    }
    state.fail_sends(item.player, sends, &why);
}

/// Any write failed: Retrying, at the next backoff.
fn retry_later<D: PlayerData>(live: &mut LiveProfile<D>, player: u64, now: Duration) {
    live.retries += 1;
    live.phase = Phase::Retrying {
        at: now + backoff(live.retries, player),
    };
}

/// Saving (a merge) → Live (merged; changes made meanwhile carried over), Held (conflicts no
/// rule settles wait for a person), or Retrying (the merge failed).
fn merged<D: PlayerData>(
    state: &mut DataStoreState<D>,
    player: u64,
    (ours, base, sends): (Profile<D>, Profile<D>, Vec<Outgoing<D::Offline>>),
    result: Result<(MergeOutcome<D>, String), StoreError>,
    l: &mut Landing<'_>,
) {
    let now = l.now;
    state.pending_saves = state.pending_saves.saturating_sub(1);
    let unsaved = "the profile left this server unsaved";
    match result {
        Ok((
            MergeOutcome::Merged {
                version,
                profile,
                sent,
            },
            checksum,
        )) => {
            state.sends_committed(l.store, player, &sent);
            info!(
                player,
                "reconciled with the stored profile as version {version}"
            );
            l.reconciled.push(Reconciled::Snapshot);
            l.reconciled.push(Reconciled::Resolved);
            let (strategy, policy) = (l.reconciler.strategy, &l.reconciler.policy);
            if let Some(live) = state.live.get_mut(&player) {
                live.phase = Phase::Live;
                live.version = version;
                live.base_checksum = checksum;
                live.last_saved = now;
                if live.profile == ours {
                    live.profile = profile.clone();
                    live.dirty = false;
                } else {
                    // Changed again while the merge ran: carry those changes over.
                    live.profile = rebase(&ours, &live.profile, &profile, strategy, policy);
                    live.dirty = true;
                }
                live.base = profile;
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
            if let Some(live) = state.live.get_mut(&player) {
                live.phase = Phase::Held;
            }
            state.unsent(player, sends, unsaved);
            let json = |p: &Profile<D>| serde_json::to_value(p).unwrap_or_default();
            l.reconciled
                .push(Reconciled::Conflict(Box::new(PendingConflict {
                    id: 0,
                    player,
                    base: json(&base),
                    ours: json(&ours),
                    theirs: json(&theirs),
                    theirs_version: version,
                    fields: conflicts,
                })));
        }
        Err(e) => {
            error!(player, "reconciling a lost save failed: {e}");
            state.record_error(now);
            state.unsent(player, sends, unsaved);
            if let Some(live) = state.live.get_mut(&player) {
                retry_later(live, player, now);
            }
        }
    }
}

/// Changes made to `now` since `saved` was sent, carried onto `merged`.
fn rebase<D: PlayerData>(
    saved: &Profile<D>,
    now: &Profile<D>,
    merged: &Profile<D>,
    strategy: crate::reconcile::Strategy,
    policy: &crate::reconcile::Policy,
) -> Profile<D> {
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

/// The integrity sweep's read: a stored copy that differs from what this server saved (same
/// version) is written back at once (the profile turns dirty and due).
fn checked<D: PlayerData>(
    state: &mut DataStoreState<D>,
    (player, version): (u64, u64),
    result: Result<Option<(u64, String)>, StoreError>,
    l: &mut Landing<'_>,
) {
    let now = l.now;
    match result {
        Ok(Some((stored_version, stored_sum))) => {
            let Some(live) = state.live.get_mut(&player) else {
                return;
            };
            if stored_version != version || live.version != version {
                // Moved on (a save landed, or another writer): the next save settles it.
                return;
            }
            if stored_sum != live.base_checksum {
                error!(
                    target: "audit",
                    player,
                    "integrity: the stored profile (version {version}) differs from what this server saved; writing the server's copy back"
                );
                l.reconciled.push(Reconciled::IntegrityFailure);
                live.dirty = true;
                live.next_autosave = now;
                live.last_saved = Duration::ZERO;
            }
        }
        Ok(None) => {}
        Err(e) => {
            error!(player, "integrity check could not read the profile: {e}");
            state.record_error(now);
        }
    }
}

/// A lock heartbeat that failed for good ends the session (gone); unsaved changes are merged,
/// not dropped.
fn heartbeat<D: PlayerData>(
    state: &mut DataStoreState<D>,
    player: u64,
    result: Result<(), StoreError>,
    l: &mut Landing<'_>,
) {
    let Err(e) = result else {
        return;
    };
    error!(player, "lock heartbeat failed: {e}");
    state.record_error(l.now);
    if e.is_transient() {
        return;
    }
    if let Some(live) = state.live.remove(&player) {
        l.kick(live.client, format!("session ended: {e}"));
        if live.dirty {
            warn!(player, "lock lost with unsaved changes; reconciling them");
            spawn_merge(
                state,
                l.store,
                l.reconciler,
                player,
                (live.base, live.profile),
                live.outbox,
            );
        }
    }
}

fn backed_up<D: PlayerData>(
    state: &mut DataStoreState<D>,
    result: Result<BackupRecord, BackupError>,
    now: Duration,
) {
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

#[cfg(test)]
mod tests {
    use bevy::tasks::{TaskPool, block_on};

    use super::*;
    use crate::datastore::profile::tests::Tally;

    /// A scratch store for `name` on the embedded schema's defaults (no config dir), with the
    /// IO task pool started.
    fn scratch(name: &str) -> (std::path::PathBuf, Config, Arc<Store>, Reconciler) {
        IoTaskPool::get_or_init(TaskPool::new);
        let dir = std::env::temp_dir().join(format!("bq-jobs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config =
            crate::config::load_server(&dir.join("no-config"), &crate::config::GameKeys::NONE)
                .unwrap();
        let store = Arc::new(super::super::open::<Tally>(&dir, &config).unwrap());
        let reconciler =
            Reconciler::from_config(&config, super::super::policy_of::<Tally>()).unwrap();
        (dir, config, store, reconciler)
    }

    fn landing<'a>(
        store: &'a Arc<Store>,
        reconciler: &'a Reconciler,
        config: &'a Config,
    ) -> Landing<'a> {
        Landing {
            store,
            reconciler,
            config,
            now: Duration::from_secs(1),
            loaded: Vec::new(),
            restored: Vec::new(),
            kicks: Vec::new(),
            reconciled: Vec::new(),
        }
    }

    /// Two profiles saved together, one of which lost its lock to another server: neither is
    /// written, each side's message comes back to its sender at once, the one whose lock was
    /// taken ends as any lock loss does, and the other stays in play and is saved again later.
    #[test]
    fn a_joint_save_refused_for_one_side_gives_both_their_goods_back_and_retries_the_other() {
        let (dir, config, store, reconciler) = scratch("together");
        let mut state = DataStoreState::<Tally>::new("server-a".into());
        let mut l = landing(&store, &reconciler, &config);
        for (client, player) in [(11, 1), (12, 2)] {
            spawn_load(
                &mut state,
                &store,
                (client, player, u128::from(player)),
                format!("p{player}"),
            );
            let job = block_on(state.tasks.pop().unwrap());
            land(&mut state, job, &mut l);
        }
        // Another server takes player 2's lock over (as after a long stall).
        let thief = LockOwner {
            server_id: "server-b".into(),
            session: 9,
        };
        store
            .load::<Tally>(2, &thief, now_ms() + 24 * 3600 * 1000)
            .unwrap();
        // A trade: 30 points each way, taken out of both live profiles first.
        for (from, to) in [(1, 2), (2, 1)] {
            state.live.get_mut(&from).unwrap().profile.points -= 30;
            assert!(state.send(from, to, (from, 30)));
        }
        assert!(save_together(&mut state, &store, &[1, 2]));
        let job = block_on(state.tasks.pop().unwrap());
        land(&mut state, job, &mut l);
        // Player 1: still in play, its 30 points back, saved again later.
        let one = state.profile(1).unwrap();
        assert_eq!(one.profile.points, 100);
        assert!(
            matches!(one.phase(), Phase::Retrying { .. }),
            "{:?}",
            one.phase()
        );
        assert!(one.outbox.is_empty());
        // Player 2: its lock is gone; its session ends (kicked), as any lock loss.
        assert!(state.profile(2).is_none());
        assert_eq!(
            l.kicks.iter().map(|k| k.client).collect::<Vec<_>>(),
            vec![12]
        );
        // Both messages failed, and nothing of either reached the store.
        assert_eq!(state.sent.len(), 2);
        assert!(state.sent.iter().all(|s| s.result.is_err()));
        assert_eq!(store.peek::<Tally>(1).unwrap().map(|(v, _)| v), None);
        // Player 2's unsaved changes are reconciled as after any lost lock: with its points back.
        while let Some(task) = state.tasks.pop() {
            let job = block_on(task);
            land(&mut state, job, &mut l);
        }
        if let Some((_, p)) = store.peek::<Tally>(2).unwrap() {
            assert_eq!(p.points, 100);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_profile_that_arrives_after_its_session_ended_is_released_not_served() {
        let (dir, config, store, reconciler) = scratch("late-load");
        let mut state = DataStoreState::<Tally>::new("server-a".into());
        spawn_load(&mut state, &store, (1, 42, 7), "p42".into());
        // The session ends while the load is in flight.
        state.loading.get_mut(&42).unwrap().ended = true;
        let job = block_on(state.tasks.pop().unwrap());
        let mut l = landing(&store, &reconciler, &config);
        land(&mut state, job, &mut l);
        assert!(state.profile(42).is_none(), "not served");
        assert!(l.loaded.is_empty(), "nobody is told it loaded");
        assert!(state.loading.is_empty());
        assert_eq!(
            (state.tasks.len(), state.pending_saves),
            (1, 1),
            "a release in flight"
        );
        let job = block_on(state.tasks.pop().unwrap());
        land(&mut state, job, &mut l);
        assert_eq!(state.pending_saves, 0);
        // The lock is free: another server's session loads the profile at once.
        let other = LockOwner {
            server_id: "server-b".into(),
            session: 8,
        };
        assert!(store.load::<Tally>(42, &other, now_ms()).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

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
