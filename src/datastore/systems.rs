//! The data store's systems, thin: each reads what happened this tick and asks `jobs.rs` to
//! spawn work or `live.rs`'s state to move a profile on.

use std::time::Duration;

use bevy::prelude::*;

use super::PlayerData;
use super::jobs::{self, Landing};
use super::live::{DataStoreState, Phase};
use super::{
    AutosavePace, DataStore, InboxDelivered, MessageSent, ProfileLoaded, RestoreVersion,
    VersionRestored,
};
use crate::config::Config;
use crate::reconcile::{Reconciled, Reconciler};
use crate::shutdown::Shutdown;
use crate::transport::{KickRequested, SessionEnded, SessionStarted};

/// The `datastore.autosave` rule's pace.
pub(super) fn pace_autosaves<D: PlayerData>(
    mut paces: MessageReader<AutosavePace>,
    mut state: ResMut<DataStoreState<D>>,
) {
    if let Some(p) = paces.read().last() {
        state.autosave_slowdown = if p.slowed { 2 } else { 1 };
    }
}

/// A session started: its profile starts `Loading`; or, while `datastore.saveQueueMax`
/// profiles wait for a failed save, the player is refused; or, while the player's own last
/// save (from a session that ended) waits, the load waits for it.
pub(super) fn start_loads<D: PlayerData>(
    mut started: MessageReader<SessionStarted>,
    store: Res<DataStore>,
    mut state: ResMut<DataStoreState<D>>,
    config: Res<Config>,
    mut kicks: MessageWriter<KickRequested>,
) {
    // In the schema and validated at start.
    state.save_queue_max = config
        .get::<usize>("datastore.saveQueueMax")
        .unwrap_or(usize::MAX);
    for s in started.read() {
        if state.draining {
            kicks.write(KickRequested {
                client: s.client,
                reason: "this server is closing; log in again to be sent to another".into(),
            });
            continue;
        }
        let waiting = state.unsaved();
        if waiting >= state.save_queue_max {
            state.joins_refused += 1;
            warn!(
                player = s.player_id,
                "join refused: {waiting} profiles wait for the storage (datastore.saveQueueMax)"
            );
            kicks.write(KickRequested {
                client: s.client,
                reason: "the server cannot save right now and is catching up; try again in a \
                         minute"
                    .into(),
            });
            continue;
        }
        state.deferred.push(super::live::Deferred {
            client: s.client,
            player: s.player_id,
            session: s.session_id,
            name: s.display_name.clone(),
        });
    }
    // A load starts once no earlier save of the same player waits here.
    let ready: Vec<super::live::Deferred> = {
        let state = &mut *state;
        let (ready, wait) = std::mem::take(&mut state.deferred)
            .into_iter()
            .partition(|d| !state.orphans.contains_key(&d.player));
        state.deferred = wait;
        ready
    };
    for d in ready {
        jobs::spawn_load(
            &mut state,
            &store.0,
            (d.client, d.player, d.session),
            d.name,
        );
    }
}

/// A session ended: its profile is released (after a final save if it changed); a profile
/// still loading is released when it arrives; one with a save in flight is released when the
/// save lands.
pub(super) fn finish_releases<D: PlayerData>(
    mut ended: MessageReader<SessionEnded>,
    store: Res<DataStore>,
    mut state: ResMut<DataStoreState<D>>,
) {
    for e in ended.read() {
        state
            .waiting
            .retain(|w| !(w.player == e.player_id && w.session == e.session_id));
        state
            .deferred
            .retain(|d| !(d.player == e.player_id && d.session == e.session_id));
        if let Some(loading) = state.loading.get_mut(&e.player_id)
            && loading.session == e.session_id
        {
            loading.ended = true;
        }
        let Some(live) = state.live.get(&e.player_id) else {
            continue;
        };
        if live.owner.session != e.session_id {
            continue;
        }
        match live.phase {
            // The save in flight releases the lock when it lands (see `jobs::saved`).
            Phase::Saving => {}
            // A conflict waits for an admin: the profile stays as stored; the lock goes.
            Phase::Held => {
                let owner = live.owner.clone();
                jobs::spawn_release(&mut state, &store.0, e.player_id, owner);
            }
            Phase::Live | Phase::Retrying { .. } if live.dirty || live.version == 0 => {
                jobs::spawn_saves(&mut state, &store.0, &[e.player_id], true);
            }
            Phase::Live | Phase::Retrying { .. } => {
                let owner = live.owner.clone();
                jobs::spawn_release(&mut state, &store.0, e.player_id, owner);
            }
        }
        state.drop_live(
            e.player_id,
            "the session ended before the message was saved",
        );
    }
}

/// Each profile with no write in flight is visited every period: saved if it changed and its
/// last save is an interval old (or its retry is due), else its lock gets a heartbeat.
pub(super) fn autosave<D: PlayerData>(
    config: Res<Config>,
    store: Res<DataStore>,
    mut state: ResMut<DataStoreState<D>>,
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
    // The period stays well under `datastore.lockStaleAfter` so no other server can take a
    // live profile's lock.
    let interval = interval * state.autosave_slowdown.max(1);
    let period = interval.min(stale / 3);
    let due: Vec<(u64, bool)> = state
        .live
        .iter()
        .filter(|(_, l)| match l.phase {
            Phase::Live => l.next_autosave <= now,
            Phase::Retrying { at } => l.next_autosave <= now || at <= now,
            Phase::Saving | Phase::Held => false,
        })
        .map(|(p, l)| {
            let retry = matches!(l.phase, Phase::Retrying { .. });
            // Mail does not wait for the interval: a message out goes with its sender's next
            // save, and one waiting in the store is delivered by the recipient's.
            let mail = !l.outbox.is_empty() || l.inbox_waiting;
            let save = retry || mail || (l.dirty && now.saturating_sub(l.last_saved) >= interval);
            (*p, save)
        })
        .collect();
    let mut batch = Vec::new();
    for (player, save) in due {
        if let Some(l) = state.live.get_mut(&player) {
            l.next_autosave = now + period;
            l.phase = Phase::Live;
            // The interval runs from when the saved state was taken, not from when its save
            // landed (that would push every other auto-save a whole period later).
            if save {
                l.last_saved = now;
            }
        }
        if save {
            batch.push(player);
        } else {
            jobs::spawn_heartbeat(&mut state, &store.0, player);
        }
    }
    // Every profile due this frame goes out in one group commit.
    jobs::spawn_saves(&mut state, &store.0, &batch, false);
    jobs::spawn_orphan_saves(&mut state, &store.0, now);
}

/// Every `reconcile.interval`, each clean live profile's stored copy is read off the tick and
/// compared with the checksum of what this server last saved.
pub(super) fn integrity_sweep<D: PlayerData>(
    store: Res<DataStore>,
    reconciler: Res<Reconciler>,
    mut state: ResMut<DataStoreState<D>>,
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
        .filter(|(_, l)| l.phase == Phase::Live && !l.dirty && l.version > 0)
        .map(|(p, l)| (*p, l.version))
        .collect();
    for (player, version) in due {
        jobs::spawn_integrity(&mut state, &store.0, player, version);
    }
}

/// A backup every `datastore.backupInterval`, keeping `datastore.backupRetention`.
pub(super) fn scheduled_backup<D: PlayerData>(
    config: Res<Config>,
    store: Res<DataStore>,
    paths: Res<crate::process::Paths>,
    mut state: ResMut<DataStoreState<D>>,
    (time, directory): (Res<Time<Real>>, Res<super::Directory>),
) {
    // On a shared store one elected server makes the backups.
    if !directory.runs_store_jobs() {
        return;
    }
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
    jobs::spawn_backup(&mut state, &store.0, paths.data.clone(), retention);
}

/// Restores asked for: a player in play here is kicked first (unsaved changes are discarded:
/// the restore replaces them) and their lock released.
pub(super) fn restore_versions<D: PlayerData>(
    mut requests: MessageReader<RestoreVersion>,
    store: Res<DataStore>,
    mut state: ResMut<DataStoreState<D>>,
    mut kicks: MessageWriter<KickRequested>,
) {
    for r in requests.read() {
        let live = state.drop_live(r.player, "the profile is being restored");
        if let Some(l) = &live {
            kicks.write(KickRequested {
                client: l.client,
                reason: "your data is being restored to an earlier version; rejoin in a moment"
                    .into(),
            });
        }
        let owner = live.map(|l| l.owner);
        jobs::spawn_restore(&mut state, &store.0, (r.player, r.version), owner);
    }
}

/// Hands every job that landed to its handler; then the critical state follows the errors.
#[allow(clippy::too_many_arguments)]
pub(super) fn poll_jobs<D: PlayerData>(
    mut state: ResMut<DataStoreState<D>>,
    store: Res<DataStore>,
    config: Res<Config>,
    reconciler: Res<Reconciler>,
    time: Res<Time<Real>>,
    mut loaded: MessageWriter<ProfileLoaded>,
    mut restored: MessageWriter<VersionRestored>,
    mut kicks: MessageWriter<KickRequested>,
    mut reconciled: MessageWriter<Reconciled>,
    (mut sent, mut delivered): (
        MessageWriter<MessageSent>,
        MessageWriter<InboxDelivered<D::Offline>>,
    ),
) {
    let now = time.elapsed();
    let done = crate::process::take_finished(&mut state.tasks);
    let mut landing = Landing {
        store: &store.0,
        reconciler: &reconciler,
        config: &config,
        now,
        loaded: Vec::new(),
        restored: Vec::new(),
        kicks: Vec::new(),
        reconciled: Vec::new(),
    };
    for job in done {
        jobs::land(&mut state, job, &mut landing);
    }
    loaded.write_batch(landing.loaded);
    restored.write_batch(landing.restored);
    kicks.write_batch(landing.kicks);
    reconciled.write_batch(landing.reconciled);
    sent.write_batch(std::mem::take(&mut state.sent));
    delivered.write_batch(std::mem::take(&mut state.delivered));
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

/// Shutdown: every profile in play gets its final save.
pub(super) fn save_everything<D: PlayerData>(
    store: Res<DataStore>,
    mut state: ResMut<DataStoreState<D>>,
) {
    let players: Vec<u64> = state.live.keys().copied().collect();
    jobs::spawn_saves(&mut state, &store.0, &players, true);
    // Departed players' saves still waiting get one more try now.
    for o in state.orphans.values_mut() {
        o.due = Duration::ZERO;
    }
    jobs::spawn_orphan_saves(&mut state, &store.0, Duration::MAX);
}

/// Shutdown waits while any store work is in flight.
pub(super) fn hold_while_busy<D: PlayerData>(
    state: Res<DataStoreState<D>>,
    mut shutdown: ResMut<Shutdown>,
    mut told: Local<bool>,
) {
    if !state.tasks.is_empty() {
        shutdown.hold(format!(
            "datastore: {} save(s) and task(s) in flight",
            state.tasks.len()
        ));
    } else if !state.orphans.is_empty() && !*told {
        *told = true;
        let players: Vec<u64> = state.orphans.keys().copied().collect();
        error!(
            "the storage did not take the last save of {} departed player(s) {players:?}: their \
             play since their previous save is lost",
            players.len()
        );
    }
}
