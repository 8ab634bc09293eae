//! The profiles in play on this server, each an explicit state machine.
//!
//! ```text
//!   SessionStarted ──► Loading ──load ok──► Live ◄──────────── save ok / merge ok / settled
//!                         │                  │ ▲  ╲ save due (dirty)
//!             load failed │    save failed   │ │   ╲
//!            (kicked)     ▼    transiently   ▼ │    ► Saving ──lost to another writer──► (merge)
//!                       gone      Retrying ◄─────┘      │                                  │
//!                                  (at backoff)         └──────── merge: conflicts ──► Held
//!   SessionEnded (any state) ──► Released: the final save or the release is in flight; the
//!   profile is no longer served and leaves this server when the store answers.
//! ```
//!
//! Only [`DataStoreState`] changes a phase; the jobs in `jobs.rs` and the systems in
//! `systems.rs` ask it to, one transition at a time.

use std::collections::HashMap;
use std::time::Duration;

use bevy::prelude::*;
use bevy::tasks::Task;

use super::PlayerData;
use super::jobs::Job;
use super::{ErrorWindow, LockOwner, OpRecord, Profile};

/// Where a profile in play is in its life on this server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// In play, no write in flight. It may be dirty; the auto-save visits it at its next turn
    /// (a save if it changed, else a heartbeat on its lock).
    Live,
    /// Exactly one write about it is in flight (a group-commit save, or the merge of a save
    /// another writer won). Changes made meanwhile keep it dirty and go out with the next save.
    Saving,
    /// The last write failed transiently; no write is in flight; it is saved again at `at`
    /// (exponential backoff with jitter), or earlier if its auto-save turn comes first.
    Retrying {
        /// When the retry is due (app time).
        at: Duration,
    },
    /// A conflict about it waits for a person (reconciliation's queue): nothing is written
    /// until an admin settles it, which returns it to `Live`.
    Held,
}

/// A profile in play on this server.
#[derive(Debug, Clone)]
pub struct LiveProfile<D: PlayerData> {
    /// renet client id of its session.
    pub client: u64,
    /// The lock owner (this server and the session).
    pub owner: LockOwner,
    /// The profile.
    pub profile: Profile<D>,
    /// Stored version it is based on.
    pub version: u64,
    /// Changed since the last save.
    pub dirty: bool,
    /// The profile as stored at `version` (the base of a three-way merge).
    pub base: Profile<D>,
    /// Checksum of `base` (the integrity sweep compares the stored copy with it).
    pub(super) base_checksum: String,
    /// Where it is in its life here.
    pub(super) phase: Phase,
    pub(super) next_autosave: Duration,
    pub(super) last_saved: Duration,
    /// Writes that failed in a row (the backoff's exponent); 0 after a success.
    pub(super) retries: u32,
}

impl<D: PlayerData> LiveProfile<D> {
    /// Where it is in its life here.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// A conflict about it waits for a person: no saves until it is settled.
    pub fn is_held(&self) -> bool {
        self.phase == Phase::Held
    }
}

/// A load in flight: the profile is not in play yet.
#[derive(Debug, Clone, Copy)]
pub(super) struct Loading {
    /// The session it is for.
    pub session: u128,
    /// The session ended while the load was in flight: release the profile when it arrives.
    pub ended: bool,
}

/// The plugin's state: profiles in play, loads and tasks in flight, health.
#[derive(Resource)]
pub struct DataStoreState<D: PlayerData> {
    /// This server's id in session locks.
    pub server_id: String,
    pub(super) live: HashMap<u64, LiveProfile<D>>,
    pub(super) loading: HashMap<u64, Loading>,
    pub(super) tasks: Vec<Task<Job<D>>>,
    pub(super) errors: ErrorWindow,
    /// Saves and releases in flight.
    pub pending_saves: usize,
    /// Backups in flight.
    pub pending_backups: usize,
    /// Backups made and failed.
    pub backups_ok: u64,
    /// Backups that failed.
    pub backups_failed: u64,
    pub(super) next_backup: Option<Duration>,
    /// Critical: 5 or more errors within 120 s.
    pub critical: bool,
    /// Saves that failed transiently; each is retried with backoff while its player is live.
    pub save_retries: u64,
    /// Errors of any kind (saves, loads, heartbeats, backups).
    pub errors_total: u64,
    /// Auto-save interval multiplier: 2 while the `datastore.autosave` optimisation rule is
    /// engaged (storage fails often; see [`super::AutosavePace`]), else 1.
    pub autosave_slowdown: u32,
}

impl<D: PlayerData> DataStoreState<D> {
    /// A state for server `server_id`.
    pub fn new(server_id: String) -> Self {
        Self {
            server_id,
            live: HashMap::new(),
            loading: HashMap::new(),
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
    pub fn profile(&self, player: u64) -> Option<&LiveProfile<D>> {
        self.live.get(&player)
    }

    /// An operation on a live profile, all or nothing: `change` runs on a copy; if it succeeds
    /// the copy replaces the profile, which is marked dirty and keeps the operation `op` makes
    /// from the outcome. `None` when the player has no live profile here. (This is the only
    /// way to change a live profile besides [`Self::simulate`].)
    pub fn apply_op<R, E>(
        &mut self,
        player: u64,
        change: impl FnOnce(&mut Profile<D>) -> Result<R, E>,
        op: impl FnOnce(&Profile<D>, &R) -> OpRecord,
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
    pub fn simulate<R>(
        &mut self,
        player: u64,
        step: impl FnOnce(&mut Profile<D>) -> R,
    ) -> Option<R> {
        self.live.get_mut(&player).map(|l| {
            l.dirty = true;
            step(&mut l.profile)
        })
    }

    /// Players loaded here.
    pub fn players(&self) -> impl Iterator<Item = u64> + '_ {
        self.live.keys().copied()
    }

    /// A conflict about `player` was settled: `stored` is now the stored profile at `version`.
    /// With `replace`, the live profile becomes `stored` (the stored side won); otherwise the
    /// live profile stays and is saved again if it differs. Held → Live.
    pub fn settled(&mut self, player: u64, version: u64, stored: Profile<D>, replace: bool) {
        if let Some(l) = self.live.get_mut(&player) {
            l.version = version;
            l.phase = Phase::Live;
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

    pub(super) fn record_error(&mut self, now: Duration) {
        self.errors.record(now);
        self.errors_total += 1;
    }
}

/// The checksum of a profile's canonical encoding (computed in the IO tasks, off the tick).
pub(super) fn profile_checksum<D: PlayerData>(profile: &Profile<D>) -> String {
    serde_json::to_value(profile)
        .map(|v| crate::reconcile::checksum(&v))
        .unwrap_or_default()
}
