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
use super::{Delivery, ErrorWindow, LockOwner, OpRecord, Outgoing, Profile};

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
    /// The player's name, as the leaderboard shows it.
    pub name: String,
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
    /// Messages to other players that go out with the next save (see [`DataStoreState::send`]).
    pub(super) outbox: Vec<Outgoing<D::Offline>>,
    /// A message waits for it in the store: the next save (due at once) delivers it.
    pub(super) inbox_waiting: bool,
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

/// The profile of a player who left before their final save could land (storage down): kept
/// and saved again with backoff, so their last play is not lost; not in play.
pub(super) struct Orphan<D: PlayerData> {
    pub owner: LockOwner,
    pub name: String,
    pub profile: Profile<D>,
    pub base: Profile<D>,
    /// Stored version it is based on.
    pub version: u64,
    /// Messages that go with its save.
    pub sends: Vec<Outgoing<D::Offline>>,
    pub retries: u32,
    /// When to save again.
    pub due: Duration,
    /// A save is in flight.
    pub saving: bool,
}

/// A session whose load waits for the player's orphaned final save to land.
pub(super) struct Deferred {
    pub client: u64,
    pub player: u64,
    pub session: u128,
    pub name: String,
}

/// A load in flight: the profile is not in play yet.
#[derive(Debug, Clone, Copy)]
pub(super) struct Loading {
    /// The session it is for.
    pub session: u128,
    /// The session ended while the load was in flight: release the profile when it arrives.
    pub ended: bool,
}

/// What became of a message a live profile sent (see [`DataStoreState::send`]).
#[derive(Message, Debug, Clone, PartialEq, Eq)]
pub struct MessageSent {
    /// The sender.
    pub from: u64,
    /// The sender's reference.
    pub ticket: u64,
    /// The recipient asked for.
    pub to: u64,
    /// Committed (with the sender's profile, in one transaction), or why not. A message that
    /// was not committed took none of the sender's changes with it: either the profile left
    /// this server (or was replaced by the stored one) with those changes unsaved, or — a save
    /// together that failed — the message was given back to the sender's live profile at once
    /// (`apply_offline`), so nothing is lost.
    pub result: Result<Delivery, String>,
}

/// Messages delivered to a player in play here: applied to the stored profile (each once, the
/// inbox row deleted in the same transaction) and then to the live one.
#[derive(Message, Debug, Clone, PartialEq)]
pub struct InboxDelivered<M: Send + Sync + 'static> {
    /// The player.
    pub player: u64,
    /// The messages, with their ids.
    pub messages: Vec<(u64, M)>,
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
    /// What became of sent messages, for the next [`MessageSent`]s.
    pub(super) sent: Vec<MessageSent>,
    /// Deliveries, for the next [`InboxDelivered`]s.
    pub(super) delivered: Vec<InboxDelivered<D::Offline>>,
    /// Loads waiting for another server to hand a profile over (see `handoff.rs`).
    pub(super) waiting: Vec<super::handoff::Waiting>,
    /// Profiles handed over to this server by another.
    pub handoffs: u64,
    /// Final saves that failed, saved again until they land (see [`Orphan`]).
    pub(super) orphans: HashMap<u64, Orphan<D>>,
    /// Loads that wait for an orphan of the same player.
    pub(super) deferred: Vec<Deferred>,
    /// `datastore.saveQueueMax`: at this many profiles waiting for a failed save, new players
    /// are refused.
    pub save_queue_max: usize,
    /// Joins refused because saves were waiting.
    pub joins_refused: u64,
    /// `admin drain`: players are being sent to other servers; no new ones.
    pub draining: bool,
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
            sent: Vec::new(),
            delivered: Vec::new(),
            waiting: Vec::new(),
            handoffs: 0,
            orphans: HashMap::new(),
            deferred: Vec::new(),
            save_queue_max: usize::MAX,
            joins_refused: 0,
            draining: false,
        }
    }

    /// Profiles waiting for a save that failed: live ones retrying, and those of players who
    /// left before their final save landed.
    pub fn unsaved(&self) -> usize {
        self.orphans.len()
            + self
                .live
                .values()
                .filter(|l| matches!(l.phase, Phase::Retrying { .. }))
                .count()
    }

    /// Sends `message` from `from` (a live profile) to another player: it goes out with
    /// `from`'s next save (due at once), in the same transaction, so whatever the game changed
    /// in `from`'s profile for it (the debit) commits with it or not at all. A
    /// [`MessageSent`] with `ticket` says when it did; the recipient gets it at their next
    /// save (at once if they play here) or load. `false` when `from` is not live here.
    pub fn send(&mut self, from: u64, to: u64, (ticket, message): (u64, D::Offline)) -> bool {
        self.post(from, Outgoing::new(to, ticket, message))
    }

    /// Sends `message` as [`send`](Self::send) does, but held in escrow for `trade` (one side
    /// of a trade between players on two servers): [`super::Datastore::settle_trade`] later
    /// moves it to `to`, or back to `from`. Its [`MessageSent`] says [`Delivery::Held`], or
    /// [`Delivery::Returned`] when the trade was settled before this save.
    pub fn send_held(
        &mut self,
        from: u64,
        to: u64,
        (ticket, message): (u64, D::Offline),
        trade: u64,
    ) -> bool {
        let mut out = Outgoing::new(to, ticket, message);
        out.hold = Some(trade);
        self.post(from, out)
    }

    fn post(&mut self, from: u64, out: Outgoing<D::Offline>) -> bool {
        let Some(live) = self.live.get_mut(&from) else {
            return false;
        };
        live.outbox.push(out);
        live.dirty = true;
        live.next_autosave = Duration::ZERO;
        true
    }

    /// Saves `players` (live here) all together or not at all, at once: their outboxes go
    /// with them (a trade: each side's debit and the message carrying its goods). `false`, and
    /// nothing started, while one of them is not live here or has a write in flight.
    pub fn save_together(&mut self, store: &super::DataStore, players: &[u64]) -> bool {
        super::jobs::save_together(self, &store.0, players)
    }

    /// A message waits in the store for `player` (put there outside a save of this server: a
    /// trade settled from escrow): their next save delivers it at once, here or, on a shared
    /// store, on the server they play on (told over the channel).
    pub fn message_waits(&mut self, store: &std::sync::Arc<super::Store>, player: u64) {
        if self.live.contains_key(&player) {
            self.deliver_soon(player);
        } else {
            super::handoff::deliver_elsewhere(store, player);
        }
    }

    /// A message waits in the store for `player`: if they play here, their next save (due at
    /// once) delivers it.
    pub(super) fn deliver_soon(&mut self, player: u64) {
        if let Some(live) = self.live.get_mut(&player) {
            live.inbox_waiting = true;
            live.next_autosave = Duration::ZERO;
        }
    }

    /// Messages that will not go out (their sender's profile was dropped or replaced, so the
    /// changes made with them are gone too).
    pub(super) fn fail_sends(&mut self, from: u64, sends: Vec<Outgoing<D::Offline>>, why: &str) {
        for s in sends {
            tracing::warn!(from, to = s.to, "message not sent: {why}");
            self.sent.push(MessageSent {
                from,
                ticket: s.ticket,
                to: s.to,
                result: Err(why.to_string()),
            });
        }
    }

    /// Messages a write did not carry: back to the front of the outbox while `from` is in play
    /// (its profile still has the changes made with them, and they go with its next save), or
    /// failed with it.
    pub(super) fn unsent(&mut self, from: u64, sends: Vec<Outgoing<D::Offline>>, why: &str) {
        match self.live.get_mut(&from) {
            Some(live) => {
                live.outbox.splice(0..0, sends);
            }
            None => self.fail_sends(from, sends, why),
        }
    }

    /// Sends that committed: reported, and each recipient gets them at once, here or on the
    /// server they play on.
    pub(super) fn sends_committed(
        &mut self,
        store: &std::sync::Arc<super::Store>,
        from: u64,
        sent: &[super::SentMessage],
    ) {
        for s in sent {
            match s.delivery {
                Delivery::Queued { .. } => self.message_waits(store, s.to),
                Delivery::Returned { .. } => self.deliver_soon(from),
                Delivery::Held { .. } => {}
            }
            self.sent.push(MessageSent {
                from,
                ticket: s.ticket,
                to: s.to,
                result: Ok(s.delivery),
            });
        }
    }

    /// Removes a live profile that leaves without a save that could carry its outbox.
    pub(super) fn drop_live(&mut self, player: u64, why: &str) -> Option<LiveProfile<D>> {
        let mut live = self.live.remove(&player)?;
        let sends = std::mem::take(&mut live.outbox);
        self.fail_sends(player, sends, why);
        Some(live)
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
        let mut dropped = Vec::new();
        if let Some(l) = self.live.get_mut(&player) {
            l.version = version;
            l.phase = Phase::Live;
            l.base_checksum = profile_checksum(&stored);
            if replace {
                l.profile = stored.clone();
                // The stored side won: what the outbox's messages were paid with is gone.
                dropped = std::mem::take(&mut l.outbox);
            }
            l.dirty = l.profile != stored;
            l.base = stored;
        }
        self.fail_sends(
            player,
            dropped,
            "the stored profile replaced the one in play",
        );
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
