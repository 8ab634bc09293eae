//! The data store's logic over any [`Backend`]: session locks with fencing, compare-and-swap
//! saves, multi-profile transactions, versions, offline messages, erasure, stats.
//! Plain Rust and blocking; the plugin runs it on Bevy's IO task pool.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::backend::{Backend, BackendError, RankRow, ReadOps, Table, WriteOps};
use super::profile::{self, MAX_PROFILE_BYTES, PlayerData, Profile};
use super::seal::{AtRest, SealError};
use crate::clock::{LatencyWindow, now_ms};

/// Who holds a profile: a server and one of its sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockOwner {
    /// The server's id (one per server process).
    pub server_id: String,
    /// The session the profile is loaded for.
    pub session: u128,
}

/// A profile's session lock. The row outlives a release (marked released) so that its fencing
/// token keeps rising: every take of the lock writes the previous token + 1, and every write
/// under the lock checks, in its own transaction, that the row still names its owner (and so
/// its token).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LockRow {
    owner: LockOwner,
    /// The last heartbeat, by the lease clock (see [`StoreSettings::caller_clock`]).
    heartbeat_ms: u64,
    /// The fencing token of this take of the lock.
    #[serde(default)]
    token: u64,
    /// Released by its owner: free to take.
    #[serde(default)]
    released: bool,
}

impl LockRow {
    fn encode(&self) -> Result<Vec<u8>, StoreError> {
        serde_json::to_vec(self).map_err(|e| StoreError::Aborted(e.to_string()))
    }
}

/// Why a data store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Another server holds a fresh lock on the profile.
    #[error(
        "player {player}'s profile is in use by server {holder} (lock heartbeat {age_ms} ms old)"
    )]
    Locked {
        /// The player.
        player: u64,
        /// The holding server.
        holder: String,
        /// Age of its heartbeat.
        age_ms: u64,
    },
    /// This session no longer holds the lock: the save is refused (fencing).
    #[error("player {player}: session lock lost (taken over by {holder}); save refused")]
    LockLost {
        /// The player.
        player: u64,
        /// Who holds it now (empty: nobody).
        holder: String,
    },
    /// The stored version moved since it was read (compare-and-swap failed).
    #[error("player {player}: version conflict (expected {expected}, stored {found})")]
    VersionConflict {
        /// The player.
        player: u64,
        /// The version the writer read.
        expected: u64,
        /// The version stored now.
        found: u64,
    },
    /// The stored profile cannot be read; it is left untouched.
    #[error("player {player}'s profile is corrupt: {reason}")]
    Corrupt {
        /// The player.
        player: u64,
        /// What is wrong.
        reason: String,
    },
    /// The profile does not pass validation; the previous version stays.
    #[error("player {player}: save rejected: {reason}")]
    Invalid {
        /// The player.
        player: u64,
        /// What is wrong.
        reason: String,
    },
    /// No such profile or version.
    #[error("player {player}: {what} not found")]
    NotFound {
        /// The player.
        player: u64,
        /// What.
        what: String,
    },
    /// A transaction's own logic refused (insufficient funds, an injected failure).
    #[error("transaction aborted: {0}")]
    Aborted(String),
    /// Not written: saved together with another profile whose save was refused. Nothing is
    /// wrong with this one; it is worth saving again.
    #[error("player {player}: not saved, because {refused} was refused: {reason}")]
    Together {
        /// This profile's player.
        player: u64,
        /// The player whose save was refused.
        refused: u64,
        /// Why.
        reason: String,
    },
    /// The backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

impl StoreError {
    /// Worth retrying (I/O trouble), as opposed to a decision (lock, conflict, invalid).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Backend(_) | StoreError::Together { .. })
    }
}

/// Meta key of the next blob sequence number.
const NEXT_SEQ: &[u8] = b"next_seq";
/// Meta key of the storage layout version (2: versions indexed, blobs by sequence number).
const LAYOUT: &[u8] = b"layout";

/// A version index entry: blob sequence number ‖ saved-at.
fn index_entry(seq: u64, saved_at: u64) -> [u8; 16] {
    let mut index = [0u8; 16];
    index[..8].copy_from_slice(&seq.to_be_bytes());
    index[8..].copy_from_slice(&saved_at.to_be_bytes());
    index
}

/// The saved-at time in a version index entry.
fn saved_at(index: &[u8]) -> u64 {
    index.get(8..16).map_or(0, be_u64)
}

/// Brings a store written by an older build to the current layout, in one transaction: each
/// version row (saved-at ‖ blob, keyed by player and version) moves to the blob table under a
/// sequence number and leaves an index entry. Nothing else changes; a store already current is
/// left alone.
pub fn upgrade_layout<B: Backend>(backend: &B) -> Result<usize, StoreError> {
    let current = |ops: &dyn ReadOps| -> Result<bool, StoreError> {
        Ok(ops
            .get(Table::Meta, LAYOUT)?
            .is_some_and(|v| v == 2u64.to_be_bytes()))
    };
    // The usual case, a current store, costs a read, not a durable (fsynced) write.
    if backend.read(|ops| current(ops))? {
        return Ok(0);
    }
    backend.write(true, |ops| {
        if current(ops)? {
            return Ok(0);
        }
        let mut seq = ops.get(Table::Meta, NEXT_SEQ)?.map_or(1, |v| be_u64(&v));
        let mut moved = 0;
        for (k, v) in ops.scan(Table::Versions, &[])? {
            if v.len() == 16 {
                continue;
            }
            // An old row is saved-at ‖ blob; a row too short for that keeps saved-at 0 (the
            // blob's own check reports it when it is read).
            let index = index_entry(seq, v.get(..8).map_or(0, be_u64));
            ops.put(Table::Blobs, &seq.to_be_bytes(), &v)?;
            ops.put(Table::Versions, &k, &index)?;
            seq += 1;
            moved += 1;
        }
        ops.put(Table::Meta, NEXT_SEQ, &seq.to_be_bytes())?;
        ops.put(Table::Meta, LAYOUT, &2u64.to_be_bytes())?;
        if moved > 0 {
            tracing::info!("data store upgraded to layout 2: {moved} version(s) moved");
        }
        Ok(moved)
    })
}

/// What [`Datastore::merge_into`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum MergeOutcome<D> {
    /// Resolved and written as `version`.
    Merged {
        /// The new version.
        version: u64,
        /// The merged profile.
        profile: Profile<D>,
        /// The messages the merged save sent.
        sent: Vec<SentMessage>,
    },
    /// Fields no rule settles; nothing was written.
    Conflicts {
        /// The stored version.
        version: u64,
        /// The stored profile.
        theirs: Profile<D>,
        /// The fields.
        conflicts: Vec<crate::reconcile::Conflict>,
    },
}

/// A loaded profile and the version it was read at.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<D: PlayerData> {
    /// The profile.
    pub profile: Profile<D>,
    /// Its stored version (0: new, never saved).
    pub version: u64,
    /// Offline messages applied during this load.
    pub applied: Vec<D::Offline>,
    /// The lock's fencing token for this load (higher than any earlier take of this player's
    /// lock).
    pub token: u64,
}

/// Settings, from the `datastore.*` config keys.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// `datastore.lockStaleAfter`.
    pub lock_stale_after: Duration,
    /// Versions kept per player (at most).
    pub versions_keep: usize,
    /// Versions older than this are pruned (the newest always stays).
    pub versions_max_age: Duration,
    /// The game's template data as JSON (a new player's data; missing fields of stored
    /// documents are filled from it).
    pub template: serde_json::Value,
    /// Lease times (lock heartbeats and their age) by the caller's `now` even on a backend
    /// with a clock of its own. Off by default: on PostgreSQL every server times leases by the
    /// database's clock, so servers' clocks need not agree. Tests that script time turn it on.
    pub caller_clock: bool,
}

/// Counters (the seed's getDataStoreStats and more).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreStats {
    /// Operations attempted.
    pub operations: u64,
    /// Operations that failed.
    pub failed: u64,
    /// Transactions rolled back.
    pub rollbacks: u64,
    /// Plain bytes saved.
    pub bytes_plain: u64,
    /// Stored (compressed, sealed) bytes.
    pub bytes_stored: u64,
    /// Profiles saved (each save of a group commit counts).
    pub profiles_saved: u64,
    /// Save latency, median ms.
    pub save_p50_ms: f64,
    /// Save latency, 99th percentile ms.
    pub save_p99_ms: f64,
    /// Every save's latency, in buckets.
    pub save_durations: crate::clock::Histogram,
}

impl StoreStats {
    /// Successful share of operations.
    pub fn success_rate(&self) -> f64 {
        if self.operations == 0 {
            1.0
        } else {
            1.0 - self.failed as f64 / self.operations as f64
        }
    }

    /// Plain bytes over stored bytes.
    pub fn compression_ratio(&self) -> f64 {
        if self.bytes_stored == 0 {
            1.0
        } else {
            self.bytes_plain as f64 / self.bytes_stored as f64
        }
    }
}

#[derive(Default)]
struct Counters {
    operations: u64,
    failed: u64,
    rollbacks: u64,
    bytes_plain: u64,
    bytes_stored: u64,
    profiles_saved: u64,
    save_latency: LatencyWindow,
}

/// The leaderboard's first rows, and (player, rank) for the players asked about.
pub type Board = (Vec<RankRow>, Vec<(u64, u64)>);

/// A player's last saved profile and leaderboard row.
pub type Glimpse<D> = (Profile<D>, Option<RankRow>);

/// One save in a batch.
#[derive(Debug, Clone)]
pub struct SaveRequest<D: PlayerData> {
    /// The profile (its `player_id` names the row).
    pub profile: Profile<D>,
    /// The version the saver read (compare-and-swap).
    pub expected_version: u64,
    /// The session that must still hold the lock.
    pub owner: LockOwner,
    /// Messages to other players' inboxes (a gift, a trade's goods), written in the same
    /// transaction as this profile: the profile's side of the change (the debit) and the
    /// message commit together or not at all.
    pub sends: Vec<Outgoing<D::Offline>>,
    /// The name the leaderboard shows (`None` keeps the one it has).
    pub name: Option<String>,
}

impl<D: PlayerData> SaveRequest<D> {
    /// A save of `profile` read at `expected_version`, under `owner`'s lock, sending nothing.
    pub fn new(profile: Profile<D>, expected_version: u64, owner: LockOwner) -> Self {
        Self {
            profile,
            expected_version,
            owner,
            sends: Vec::new(),
            name: None,
        }
    }
}

/// A message a save sends to another player's inbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing<M> {
    /// The recipient.
    pub to: u64,
    /// The sender's own reference (the game's: which request it answers).
    pub ticket: u64,
    /// The message.
    pub message: M,
    /// `Some(trade)`: the message is one side's goods of a trade between players on two
    /// servers. It is held in escrow (not in the recipient's inbox) until
    /// [`Datastore::settle_trade`] decides the trade, or goes back to the sender at once when
    /// the trade was decided already (see [`Delivery::Held`]).
    pub hold: Option<u64>,
}

impl<M> Outgoing<M> {
    /// A message for `to`'s inbox.
    pub fn new(to: u64, ticket: u64, message: M) -> Self {
        Self {
            to,
            ticket,
            message,
            hold: None,
        }
    }
}

/// Where a sent message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// In the recipient's inbox as message `id`: applied at their next save or load, once.
    Queued {
        /// The message id.
        id: u64,
    },
    /// The recipient has no profile (and no session): the message went back to the sender's
    /// own inbox as message `id` (a refund).
    Returned {
        /// The message id.
        id: u64,
    },
    /// In escrow for trade `trade` ([`Outgoing::hold`]): [`Datastore::settle_trade`] moves it
    /// to the recipient's inbox when both sides are in escrow, or back to the sender's when
    /// the trade is called off.
    Held {
        /// The trade.
        trade: u64,
    },
}

/// What [`Datastore::settle_trade`] found or decided for a trade held in escrow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// Not decided: not every side is in escrow yet (and calling off was not asked).
    Pending,
    /// Both sides' goods moved from escrow to the other side's inbox, in one transaction.
    Done,
    /// Called off: whatever was in escrow went back to its sender's inbox, in one
    /// transaction; a side escrowed later goes straight back to its sender.
    Void,
}

/// `escrow/` ‖ trade ‖ sender: one side of a trade in escrow (recipient ‖ time ‖ message).
const ESCROW: &[u8] = b"escrow/";
/// `trade/` ‖ trade: a settled trade's decision (written once, never changed).
const DECIDED: &[u8] = b"trade/";
const DONE: &[u8] = b"done";
const VOID: &[u8] = b"void";

/// The escrow rows of `trade`: this prefix ‖ sender.
fn escrow_prefix(trade: u64) -> Vec<u8> {
    let mut k = ESCROW.to_vec();
    k.extend_from_slice(&trade.to_be_bytes());
    k
}

fn escrow_key(trade: u64, from: u64) -> Vec<u8> {
    let mut k = escrow_prefix(trade);
    k.extend_from_slice(&from.to_be_bytes());
    k
}

fn decided_key(trade: u64) -> Vec<u8> {
    let mut k = DECIDED.to_vec();
    k.extend_from_slice(&trade.to_be_bytes());
    k
}

/// A held side of a trade, read back.
struct EscrowRow {
    trade: u64,
    from: u64,
    to: u64,
    /// Held since (ms).
    at: u64,
    body: Vec<u8>,
}

fn decode_escrow(key: &[u8], value: &[u8]) -> Option<EscrowRow> {
    let field = |bytes: &[u8], at: usize| bytes.get(at..at + 8).map(be_u64);
    Some(EscrowRow {
        trade: field(key, ESCROW.len())?,
        from: field(key, ESCROW.len() + 8)?,
        to: field(value, 0)?,
        at: field(value, 8)?,
        body: value.get(16..)?.to_vec(),
    })
}

/// A stored decision ([`DECIDED`] row) read back.
fn decision_of(value: &[u8]) -> Settlement {
    if value == DONE {
        Settlement::Done
    } else {
        Settlement::Void
    }
}

/// One sent message of a committed save.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentMessage {
    /// The sender's reference ([`Outgoing::ticket`]).
    pub ticket: u64,
    /// The recipient asked for.
    pub to: u64,
    /// Where it went.
    pub delivery: Delivery,
}

/// A committed save.
#[derive(Debug, Clone, PartialEq)]
pub struct Saved<D: PlayerData> {
    /// The new version.
    pub version: u64,
    /// The messages it sent.
    pub sent: Vec<SentMessage>,
    /// Messages that waited in the player's inbox, applied in this save (id, message): each
    /// applied once, its row deleted in the same transaction.
    pub delivered: Vec<(u64, D::Offline)>,
    /// The profile as committed, when messages were delivered (the request's plus them).
    pub committed: Option<Profile<D>>,
}

/// Messages encoded for their inbox rows (before a transaction writes anything).
fn encode_sends<M: Serialize>(sends: &[Outgoing<M>]) -> Result<Vec<Vec<u8>>, StoreError> {
    sends
        .iter()
        .map(|s| serde_json::to_vec(&s.message).map_err(|e| StoreError::Aborted(e.to_string())))
        .collect()
}

/// A player's inbox taken in a save: the rows to delete, the messages applied, and the
/// profile with them applied (and its sealed blob), when there were any.
struct TakenInbox<D: PlayerData> {
    rows: Vec<Vec<u8>>,
    delivered: Vec<(u64, D::Offline)>,
    committed: Option<(Profile<D>, Vec<u8>)>,
}

/// The data store.
pub struct Datastore<B: Backend> {
    backend: B,
    seal: AtRest,
    settings: StoreSettings,
    counters: Mutex<Counters>,
}

fn pkey(player: u64) -> [u8; 8] {
    player.to_be_bytes()
}

fn pair_key(player: u64, n: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&player.to_be_bytes());
    k[8..].copy_from_slice(&n.to_be_bytes());
    k
}

fn be_u64(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = bytes.len().min(8);
    b[..n].copy_from_slice(&bytes[..n]);
    u64::from_be_bytes(b)
}

impl<B: Backend> Datastore<B> {
    /// A store over `backend` sealing with `seal`.
    pub fn new(backend: B, seal: AtRest, settings: StoreSettings) -> Self {
        Self {
            backend,
            seal,
            settings,
            counters: Mutex::new(Counters::default()),
        }
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The settings.
    pub fn settings(&self) -> &StoreSettings {
        &self.settings
    }

    /// Times leases by the `now` each call passes, even on a backend with its own clock (see
    /// [`StoreSettings::caller_clock`]): for tests that script time.
    pub fn use_caller_clock(&mut self) {
        self.settings.caller_clock = true;
    }

    fn count<T>(&self, r: &Result<T, StoreError>) {
        if let Ok(mut c) = self.counters.lock() {
            c.operations += 1;
            if r.is_err() {
                c.failed += 1;
            }
            if matches!(
                r,
                Err(StoreError::Aborted(_) | StoreError::VersionConflict { .. })
            ) {
                c.rollbacks += 1;
            }
        }
    }

    /// Counters now.
    pub fn stats(&self) -> StoreStats {
        match self.counters.lock() {
            Ok(c) => StoreStats {
                operations: c.operations,
                failed: c.failed,
                rollbacks: c.rollbacks,
                bytes_plain: c.bytes_plain,
                bytes_stored: c.bytes_stored,
                profiles_saved: c.profiles_saved,
                save_p50_ms: c.save_latency.quantile_ms(0.5),
                save_p99_ms: c.save_latency.quantile_ms(0.99),
                save_durations: c.save_latency.histogram().clone(),
            },
            Err(_) => StoreStats::default(),
        }
    }

    /// A new player's profile: the game's template data in a fresh envelope.
    pub fn template<D: PlayerData>(&self, player: u64) -> Result<Profile<D>, StoreError> {
        serde_json::from_value::<D>(self.settings.template.clone())
            .map(|data| Profile::new(player, data))
            .map_err(|e| StoreError::Invalid {
                player,
                reason: format!("the game's template does not fit its own type: {e}"),
            })
    }

    /// Opens a sealed blob of `player`.
    fn open_blob<D: PlayerData>(&self, player: u64, blob: &[u8]) -> Result<Profile<D>, StoreError> {
        let plain = self
            .seal
            .open(player, blob, MAX_PROFILE_BYTES)
            .map_err(|e: SealError| StoreError::Corrupt {
                player,
                reason: e.to_string(),
            })?;
        let p = profile::decode::<D>(&plain, player, &self.settings.template).map_err(|e| {
            StoreError::Corrupt {
                player,
                reason: e.to_string(),
            }
        })?;
        if p.player_id != player {
            return Err(StoreError::Corrupt {
                player,
                reason: format!("row holds player {}'s profile", p.player_id),
            });
        }
        Ok(p)
    }

    /// The current version and profile of `player`. The profiles row holds only the current
    /// version number; the blob lives once, in the versions table.
    fn read_current<D: PlayerData>(
        &self,
        ops: &dyn ReadOps,
        player: u64,
    ) -> Result<Option<(u64, Profile<D>)>, StoreError> {
        let Some(row) = ops.get(Table::Profiles, &pkey(player))? else {
            return Ok(None);
        };
        if row.len() != 8 {
            return Err(StoreError::Corrupt {
                player,
                reason: format!("profile row of {} bytes, expected 8", row.len()),
            });
        }
        let version = be_u64(&row);
        let vrow = Self::version_row(ops, player, version)?.ok_or_else(|| StoreError::Corrupt {
            player,
            reason: format!("current version {version} is missing"),
        })?;
        if vrow.len() < 8 {
            return Err(StoreError::Corrupt {
                player,
                reason: "truncated version row".into(),
            });
        }
        Ok(Some((version, self.open_blob(player, &vrow[8..])?)))
    }

    fn seal_profile<D: PlayerData>(&self, p: &Profile<D>) -> Result<Vec<u8>, StoreError> {
        let plain = p.validate().map_err(|reason| StoreError::Invalid {
            player: p.player_id,
            reason,
        })?;
        let blob = self
            .seal
            .seal(p.player_id, &plain)
            .map_err(|e| StoreError::Invalid {
                player: p.player_id,
                reason: e.to_string(),
            })?;
        if let Ok(mut c) = self.counters.lock() {
            c.bytes_plain += plain.len() as u64;
            c.bytes_stored += blob.len() as u64;
        }
        Ok(blob)
    }

    /// Checks that `owner` holds the lock; returns its heartbeat.
    /// The player's lock row, released or not (an unreadable row counts as none).
    fn lock_row(ops: &dyn ReadOps, player: u64) -> Result<Option<LockRow>, StoreError> {
        Ok(ops
            .get(Table::Locks, &pkey(player))?
            .and_then(|r| serde_json::from_slice(&r).ok()))
    }

    /// The player's lock as held now (not released).
    fn held_lock(ops: &dyn ReadOps, player: u64) -> Result<Option<LockRow>, StoreError> {
        Ok(Self::lock_row(ops, player)?.filter(|l| !l.released))
    }

    /// The fence: `owner` still holds the lock (the row names it, so its token too).
    fn check_lock(
        ops: &dyn ReadOps,
        player: u64,
        owner: &LockOwner,
    ) -> Result<LockRow, StoreError> {
        match Self::held_lock(ops, player)? {
            Some(l) if &l.owner == owner => Ok(l),
            Some(l) => Err(StoreError::LockLost {
                player,
                holder: l.owner.server_id,
            }),
            None => Err(StoreError::LockLost {
                player,
                holder: String::new(),
            }),
        }
    }

    /// `Locked` while any session (of any server) holds `player`'s profile with a fresh lease.
    fn refuse_if_held(&self, ops: &dyn ReadOps, player: u64, now: u64) -> Result<(), StoreError> {
        let stale = self.settings.lock_stale_after.as_millis() as u64;
        let lease = self.lease_now(ops, now)?;
        match Self::held_lock(ops, player)? {
            Some(l) if lease.saturating_sub(l.heartbeat_ms) < stale => Err(StoreError::Locked {
                player,
                holder: l.owner.server_id,
                age_ms: lease.saturating_sub(l.heartbeat_ms),
            }),
            _ => Ok(()),
        }
    }

    /// "Now" for leases in this transaction: the backend's clock when it has one (the
    /// database's, the same for every server), else the caller's.
    fn lease_now(&self, ops: &dyn ReadOps, now: u64) -> Result<u64, StoreError> {
        if self.settings.caller_clock {
            return Ok(now);
        }
        Ok(ops.clock_ms()?.unwrap_or(now))
    }

    /// The blob row (saved-at ‖ sealed profile) of one version, through the index.
    fn version_row(
        ops: &dyn ReadOps,
        player: u64,
        version: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(index) = ops.get(Table::Versions, &pair_key(player, version))? else {
            return Ok(None);
        };
        if index.len() != 16 {
            return Err(StoreError::Corrupt {
                player,
                reason: format!("version {version} index entry of {} bytes", index.len()),
            });
        }
        Ok(ops.get(Table::Blobs, &index[..8])?)
    }

    /// Removes one version (index entry and blob).
    fn delete_version(ops: &mut dyn WriteOps, player: u64, version: u64) -> Result<(), StoreError> {
        let key = pair_key(player, version);
        if let Some(index) = ops.get(Table::Versions, &key)? {
            if index.len() >= 8 {
                ops.delete(Table::Blobs, &index[..8])?;
            }
            ops.delete(Table::Versions, &key)?;
        }
        Ok(())
    }

    fn stored_version(ops: &dyn ReadOps, player: u64) -> Result<u64, StoreError> {
        Ok(ops
            .get(Table::Profiles, &pkey(player))?
            .map_or(0, |r| be_u64(&r)))
    }

    /// Writes `blob` as version `new` of `p`'s player, records it among the versions, prunes.
    fn write_version(
        &self,
        ops: &mut dyn WriteOps,
        player: u64,
        new: u64,
        blob: &[u8],
        now: u64,
    ) -> Result<(), StoreError> {
        let mut seq = Self::next_seq(ops)?;
        self.write_version_at(ops, player, new, blob, now, &mut seq)?;
        ops.put(Table::Meta, NEXT_SEQ, &seq.to_be_bytes())?;
        Ok(())
    }

    /// The leaderboard row of a profile just written (games without a score have none).
    fn rank<D: PlayerData>(
        ops: &mut dyn WriteOps,
        profile: &Profile<D>,
        name: Option<&str>,
    ) -> Result<(), StoreError> {
        if let Some(score) = profile.data.score() {
            ops.set_rank(profile.player_id, name, score)?;
        }
        Ok(())
    }

    fn next_seq(ops: &dyn ReadOps) -> Result<u64, StoreError> {
        Ok(ops.get(Table::Meta, NEXT_SEQ)?.map_or(1, |v| be_u64(&v)))
    }

    /// [`Self::write_version`] with the blob sequence number kept by the caller (a group commit
    /// reads and stores it once).
    fn write_version_at(
        &self,
        ops: &mut dyn WriteOps,
        player: u64,
        new: u64,
        blob: &[u8],
        now: u64,
        next: &mut u64,
    ) -> Result<(), StoreError> {
        ops.put(Table::Profiles, &pkey(player), &new.to_be_bytes())?;
        let seq = *next;
        *next += 1;
        let mut vrow = Vec::with_capacity(8 + blob.len());
        vrow.extend_from_slice(&now.to_be_bytes());
        vrow.extend_from_slice(blob);
        ops.put(Table::Blobs, &seq.to_be_bytes(), &vrow)?;
        ops.put(
            Table::Versions,
            &pair_key(player, new),
            &index_entry(seq, now),
        )?;
        // Prune by count in O(1): versions are numbered without gaps, so the one that falls out
        // of the window is `new - keep`. Every 32 versions (and after a change of the settings)
        // a full pass also prunes by age.
        let keep = self.settings.versions_keep.max(1) as u64;
        if new > keep {
            Self::delete_version(ops, player, new - keep)?;
        }
        if !new.is_multiple_of(32) {
            return Ok(());
        }
        let all = ops.scan(Table::Versions, &pkey(player))?;
        let max_age = self.settings.versions_max_age.as_millis() as u64;
        let keep = keep as usize;
        let n = all.len();
        for (i, (k, v)) in all.iter().enumerate() {
            let newest = i + 1 == n;
            let too_many = n - i > keep;
            let too_old = now.saturating_sub(saved_at(v)) > max_age;
            if !newest && (too_many || too_old) {
                Self::delete_version(ops, player, be_u64(&k[8..]))?;
            }
        }
        Ok(())
    }

    /// Loads a profile for a session, taking its lock. A fresh lock held by another owner
    /// refuses; a stale one is taken over. Offline messages waiting for the player are applied
    /// exactly once, in the same transaction. A corrupt profile is reported, never replaced.
    pub fn load<D: PlayerData>(
        &self,
        player: u64,
        owner: &LockOwner,
        now: u64,
    ) -> Result<Loaded<D>, StoreError> {
        let stale = self.settings.lock_stale_after.as_millis() as u64;
        let r = self.backend.write(true, |ops| {
            let lease = self.lease_now(ops, now)?;
            let previous = Self::lock_row(ops, player)?;
            if let Some(l) = previous.as_ref().filter(|l| !l.released)
                && l.owner.server_id != owner.server_id
            {
                let age = lease.saturating_sub(l.heartbeat_ms);
                if age < stale {
                    return Err(StoreError::Locked {
                        player,
                        holder: l.owner.server_id.clone(),
                        age_ms: age,
                    });
                }
                tracing::warn!(
                    player,
                    token = l.token,
                    "taking over a stale lock of server {} ({age} ms old)",
                    l.owner.server_id
                );
            }
            let token = previous.map_or(0, |l| l.token) + 1;
            let lock = LockRow {
                owner: owner.clone(),
                heartbeat_ms: lease,
                token,
                released: false,
            };
            ops.put(Table::Locks, &pkey(player), &lock.encode()?)?;
            let (mut version, mut profile) = match self.read_current(ops, player)? {
                Some(current) => current,
                None => (0, self.template::<D>(player)?),
            };
            let inbox = self.take_inbox(ops, &profile)?;
            let applied = inbox.delivered.into_iter().map(|(_, m)| m).collect();
            if let Some((next, blob)) = inbox.committed {
                version += 1;
                self.write_version(ops, player, version, &blob, now)?;
                Self::rank(ops, &next, None)?;
                profile = next;
            }
            Ok(Loaded {
                profile,
                version,
                applied,
                token,
            })
        });
        self.count(&r);
        r
    }

    /// Refreshes the lock's heartbeat; fails if the lock was lost.
    pub fn heartbeat(&self, player: u64, owner: &LockOwner, now: u64) -> Result<(), StoreError> {
        let r = self.backend.write(false, |ops| {
            let mut lock = Self::check_lock(ops, player, owner)?;
            lock.heartbeat_ms = self.lease_now(ops, now)?;
            ops.put(Table::Locks, &pkey(player), &lock.encode()?)?;
            Ok(())
        });
        self.count(&r);
        r
    }

    /// Releases the lock if this owner holds it.
    pub fn release(&self, player: u64, owner: &LockOwner) -> Result<(), StoreError> {
        let r = self.backend.write(true, |ops| {
            // Kept, marked released: the next take's token is still higher.
            if let Ok(mut lock) = Self::check_lock(ops, player, owner) {
                lock.released = true;
                ops.put(Table::Locks, &pkey(player), &lock.encode()?)?;
            }
            Ok(())
        });
        self.count(&r);
        r
    }

    /// Saves one profile durably: validated, fenced by the lock, compare-and-swap on the
    /// version; its sends and what waited in its inbox go in the same transaction.
    pub fn save<D: PlayerData>(
        &self,
        req: &SaveRequest<D>,
        now: u64,
    ) -> Result<Saved<D>, StoreError> {
        self.save_batch(std::slice::from_ref(req), true, now)
            .pop()
            .unwrap_or_else(|| Err(StoreError::Aborted("empty batch".into())))
    }

    /// Saves many profiles in one commit (group commit). Each save is checked on its own: a
    /// refused one keeps its previous version and does not stop the others.
    pub fn save_batch<D: PlayerData>(
        &self,
        reqs: &[SaveRequest<D>],
        durable: bool,
        now: u64,
    ) -> Vec<Result<Saved<D>, StoreError>> {
        self.save_many(reqs, durable, false, now)
    }

    /// Saves profiles all together or not at all (a trade between two players: each side's
    /// debit and the message carrying its goods to the other): if any save is refused, nothing
    /// is written; that one reports why, every other [`StoreError::Together`].
    pub fn save_together<D: PlayerData>(
        &self,
        reqs: &[SaveRequest<D>],
        now: u64,
    ) -> Vec<Result<Saved<D>, StoreError>> {
        self.save_many(reqs, true, true, now)
    }

    fn save_many<D: PlayerData>(
        &self,
        reqs: &[SaveRequest<D>],
        durable: bool,
        together: bool,
        now: u64,
    ) -> Vec<Result<Saved<D>, StoreError>> {
        let started = Instant::now();
        let stale = self.settings.lock_stale_after.as_millis() as u64;
        // Serialize, validate, compress and encrypt outside the write transaction, on two threads
        // for larger batches: the transaction itself is then only B-tree work and one fsync.
        let sealed: Vec<Result<Vec<u8>, StoreError>> = if reqs.len() >= 16 {
            let (a, b) = reqs.split_at(reqs.len() / 2);
            std::thread::scope(|scope| {
                let other = scope.spawn(|| {
                    b.iter()
                        .map(|r| self.seal_profile(&r.profile))
                        .collect::<Vec<_>>()
                });
                let mut first: Vec<_> = a.iter().map(|r| self.seal_profile(&r.profile)).collect();
                match other.join() {
                    Ok(rest) => first.extend(rest),
                    Err(_) => first.extend(b.iter().map(|r| self.seal_profile(&r.profile))),
                }
                first
            })
        } else {
            reqs.iter().map(|r| self.seal_profile(&r.profile)).collect()
        };
        // Saved together: the one refused, and why (every other is `Together`).
        let mut refused = None;
        let outcome = self.backend.write(durable, |ops| {
            let mut results = Vec::with_capacity(reqs.len());
            // What every save of the batch reads, fetched in bulk (one round trip each on a
            // networked backend): locks, current versions, inboxes, the versions pruned.
            let players: Vec<Vec<u8>> = reqs
                .iter()
                .map(|r| pkey(r.profile.player_id).to_vec())
                .collect();
            ops.prefetch(Table::Locks, &players)?;
            ops.prefetch(Table::Profiles, &players)?;
            ops.prefetch_prefixes(Table::Inbox, &players)?;
            let keep = self.settings.versions_keep.max(1) as u64;
            let pruned: Vec<Vec<u8>> = reqs
                .iter()
                .filter(|r| r.expected_version + 1 > keep)
                .map(|r| pair_key(r.profile.player_id, r.expected_version + 1 - keep).to_vec())
                .collect();
            ops.prefetch(Table::Versions, &pruned)?;
            let mut seq = Self::next_seq(ops)?;
            let lease = self.lease_now(ops, now)?;
            for (req, blob) in reqs.iter().zip(&sealed) {
                let player = req.profile.player_id;
                let one = (|| -> Result<Saved<D>, StoreError> {
                    let blob = blob.as_ref().map_err(Clone::clone)?;
                    let lock = Self::check_lock(ops, player, &req.owner)?;
                    let found = Self::stored_version(ops, player)?;
                    if found != req.expected_version {
                        return Err(StoreError::VersionConflict {
                            player,
                            expected: req.expected_version,
                            found,
                        });
                    }
                    // Everything that can fail short of the backend comes first: a refused
                    // save must leave nothing of itself in the batch's transaction.
                    let bodies = encode_sends(&req.sends)?;
                    let inbox = self.take_inbox(ops, &req.profile)?;
                    let blob = match &inbox.committed {
                        Some((_, blob)) => blob.as_slice(),
                        None => blob,
                    };
                    let new = found + 1;
                    self.write_version_at(ops, player, new, blob, now, &mut seq)?;
                    let written = inbox.committed.as_ref().map_or(&req.profile, |(p, _)| p);
                    Self::rank(ops, written, req.name.as_deref())?;
                    let sent = Self::post_all(ops, player, &req.sends, &bodies, now)?;
                    // A save is also a heartbeat; rewriting the lock row only when it has aged
                    // past a quarter of the stale limit keeps a page write off most saves.
                    if lease.saturating_sub(lock.heartbeat_ms) > stale / 4 {
                        let lock = LockRow {
                            heartbeat_ms: lease,
                            ..lock
                        };
                        ops.put(Table::Locks, &pkey(player), &lock.encode()?)?;
                    }
                    Ok(Saved {
                        version: new,
                        sent,
                        delivered: inbox.delivered,
                        committed: inbox.committed.map(|(p, _)| p),
                    })
                })();
                match &one {
                    // A backend failure poisons the transaction: roll everything back.
                    Err(StoreError::Backend(e)) => return Err(StoreError::Backend(e.clone())),
                    // Saved together: one refusal refuses them all.
                    Err(e) if together => {
                        refused = Some((player, e.clone()));
                        return Err(e.clone());
                    }
                    _ => {}
                }
                results.push(one);
            }
            ops.put(Table::Meta, NEXT_SEQ, &seq.to_be_bytes())?;
            Ok::<_, StoreError>(results)
        });
        let results = match (outcome, refused) {
            (Ok(r), _) => r,
            (Err(e), Some((culprit, _))) => reqs
                .iter()
                .map(|r| match r.profile.player_id {
                    p if p == culprit => Err(e.clone()),
                    player => Err(StoreError::Together {
                        player,
                        refused: culprit,
                        reason: e.to_string(),
                    }),
                })
                .collect(),
            (Err(e), None) => reqs.iter().map(|_| Err(e.clone())).collect(),
        };
        let elapsed = started.elapsed();
        for r in &results {
            self.count(r);
        }
        if let Ok(mut c) = self.counters.lock() {
            c.save_latency.record(elapsed);
            c.profiles_saved += results.iter().filter(|r| r.is_ok()).count() as u64;
        }
        results
    }

    /// Takes the messages waiting in `profile`'s player's inbox: applied to a copy of it (each
    /// once: ids it already applied are skipped), sealed, and their rows deleted. A row that no
    /// longer decodes stays where it is (never dropped) and is reported. Fails only with the
    /// backend, so a caller may write before it.
    fn take_inbox<D: PlayerData>(
        &self,
        ops: &mut dyn WriteOps,
        profile: &Profile<D>,
    ) -> Result<TakenInbox<D>, StoreError> {
        let player = profile.player_id;
        let rows = ops.scan(Table::Inbox, &pkey(player))?;
        let mut taken = TakenInbox {
            rows: Vec::new(),
            delivered: Vec::new(),
            committed: None,
        };
        if rows.is_empty() {
            return Ok(taken);
        }
        let mut next = profile.clone();
        for (k, v) in rows {
            let id = be_u64(&k[8.min(k.len())..]);
            if next.applied_messages.contains(&id) {
                taken.rows.push(k);
                continue;
            }
            match serde_json::from_slice::<D::Offline>(&v) {
                Ok(msg) => {
                    next.data.apply_offline(&msg);
                    next.applied_messages.insert(id);
                    taken.delivered.push((id, msg));
                    taken.rows.push(k);
                }
                Err(e) => tracing::error!(player, id, "inbox message unreadable, kept: {e}"),
            }
        }
        if !taken.delivered.is_empty() {
            match self.seal_profile(&next) {
                Ok(blob) => taken.committed = Some((next, blob)),
                Err(e) => {
                    // The messages would make the profile invalid: they wait, untouched.
                    tracing::error!(player, "inbox messages not applied: {e}");
                    taken.rows.clear();
                    taken.delivered.clear();
                }
            }
        }
        for key in &taken.rows {
            ops.delete(Table::Inbox, key)?;
        }
        Ok(taken)
    }

    /// Writes `sends` (encoded as `bodies`) from `from` to their recipients' inboxes; a message
    /// to a player with neither a profile nor a session goes back to `from`'s own. A held
    /// message (a trade's side, see [`Outgoing::hold`]) goes into escrow, or back to `from` when
    /// its trade was decided already.
    fn post_all<M>(
        ops: &mut dyn WriteOps,
        from: u64,
        sends: &[Outgoing<M>],
        bodies: &[Vec<u8>],
        now: u64,
    ) -> Result<Vec<SentMessage>, StoreError> {
        let mut sent = Vec::with_capacity(sends.len());
        for (s, body) in sends.iter().zip(bodies) {
            let delivery = match s.hold {
                Some(trade) if ops.get(Table::Meta, &decided_key(trade))?.is_none() => {
                    let mut value = s.to.to_be_bytes().to_vec();
                    value.extend_from_slice(&now.to_be_bytes());
                    value.extend_from_slice(body);
                    ops.put(Table::Meta, &escrow_key(trade, from), &value)?;
                    Delivery::Held { trade }
                }
                Some(_) => Delivery::Returned {
                    id: Self::put_message(ops, from, body)?,
                },
                None => {
                    let known = s.to != from
                        && (ops.get(Table::Profiles, &pkey(s.to))?.is_some()
                            || Self::held_lock(ops, s.to)?.is_some());
                    let id = Self::put_message(ops, if known { s.to } else { from }, body)?;
                    if known {
                        Delivery::Queued { id }
                    } else {
                        Delivery::Returned { id }
                    }
                }
            };
            sent.push(SentMessage {
                ticket: s.ticket,
                to: s.to,
                delivery,
            });
        }
        Ok(sent)
    }

    /// Settles `trade`, whose sides are sent held ([`Outgoing::hold`]) by the players `sides`,
    /// in one transaction, once: when every side is in escrow (and `call_off` is false) each
    /// moves to its recipient's inbox ([`Settlement::Done`]); when `call_off` is true whatever
    /// of the trade is in escrow (from anyone) goes back to its sender's inbox
    /// ([`Settlement::Void`]); otherwise nothing
    /// changes ([`Settlement::Pending`]). The decision is written once: any later call returns
    /// it, and a side escrowed after a `Void` goes straight back to its sender. Returns the
    /// players whose inboxes got a message.
    pub fn settle_trade(
        &self,
        trade: u64,
        sides: &[u64],
        call_off: bool,
    ) -> Result<(Settlement, Vec<u64>), StoreError> {
        self.backend.write(true, |ops| {
            if let Some(v) = ops.get(Table::Meta, &decided_key(trade))? {
                return Ok((decision_of(&v), Vec::new()));
            }
            let mut held = Vec::new();
            for (key, v) in ops.scan(Table::Meta, &escrow_prefix(trade))? {
                let row = decode_escrow(&key, &v).ok_or_else(|| {
                    StoreError::Backend(BackendError(format!(
                        "an escrow row of trade {trade} is cut short"
                    )))
                })?;
                held.push((key, row));
            }
            let complete = sides
                .iter()
                .all(|p| held.iter().any(|(_, row)| row.from == *p));
            let (outcome, decision) = match (call_off, complete) {
                (true, _) => (Settlement::Void, VOID),
                (false, true) => (Settlement::Done, DONE),
                (false, false) => return Ok((Settlement::Pending, Vec::new())),
            };
            let mut told = Vec::new();
            for (key, row) in held {
                let at = if outcome == Settlement::Done {
                    row.to
                } else {
                    row.from
                };
                Self::put_message(ops, at, &row.body)?;
                ops.delete(Table::Meta, &key)?;
                told.push(at);
            }
            ops.put(Table::Meta, &decided_key(trade), decision)?;
            Ok((outcome, told))
        })
    }

    /// How `trade` was settled, if it was held in escrow and has been ([`Settlement::Done`] or
    /// [`Settlement::Void`]; written once, so a read outside any transaction stays true);
    /// `None` for a trade never settled (one between players on one server).
    pub fn trade_decision(&self, trade: u64) -> Result<Option<Settlement>, StoreError> {
        let row = self
            .backend
            .read(|ops| Ok::<_, StoreError>(ops.get(Table::Meta, &decided_key(trade))?))?;
        Ok(row.as_deref().map(decision_of))
    }

    /// Trades with a side in escrow since before `before` (ms): a store-wide job calls them off
    /// (both servers of such a trade are gone, or it would have been settled long ago).
    pub fn stale_escrows(&self, before: u64) -> Result<Vec<(u64, Vec<u64>)>, StoreError> {
        let rows = self
            .backend
            .read(|ops| Ok::<_, StoreError>(ops.scan(Table::Meta, ESCROW)?))?;
        let mut out: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for (k, v) in rows {
            let Some(row) = decode_escrow(&k, &v) else {
                tracing::error!("an escrow row is cut short: {k:?}");
                continue;
            };
            if row.at < before {
                out.entry(row.trade).or_default().push(row.from);
            }
        }
        Ok(out.into_iter().collect())
    }

    /// Writes one message to `player`'s inbox under the next message id; returns the id.
    fn put_message(ops: &mut dyn WriteOps, player: u64, body: &[u8]) -> Result<u64, StoreError> {
        let id = ops
            .get(Table::Meta, b"next_message")?
            .map_or(1, |v| be_u64(&v));
        ops.put(Table::Meta, b"next_message", &(id + 1).to_be_bytes())?;
        ops.put(Table::Inbox, &pair_key(player, id), body)?;
        Ok(id)
    }

    /// Changes several profiles atomically (an admin's trade reversal): `f` gets them by player
    /// id, with what waited in their inboxes applied, and may fail; then everything rolls back.
    /// Each must not be locked by another server (`owner_server`; a name no server uses makes
    /// any fresh lock refuse). Returns the new versions. `f` may run again on fresh profiles
    /// when a shared backend retries a conflicting transaction.
    pub fn transact<D: PlayerData>(
        &self,
        players: &[u64],
        owner_server: &str,
        now: u64,
        mut f: impl FnMut(&mut BTreeMap<u64, Profile<D>>) -> Result<(), String>,
    ) -> Result<BTreeMap<u64, (u64, Profile<D>)>, StoreError> {
        let stale = self.settings.lock_stale_after.as_millis() as u64;
        let r = self.backend.write(true, |ops| {
            let mut profiles = BTreeMap::new();
            let mut versions = BTreeMap::new();
            let lease = self.lease_now(ops, now)?;
            for &player in players {
                if let Some(l) = Self::held_lock(ops, player)?
                    && l.owner.server_id != owner_server
                    && lease.saturating_sub(l.heartbeat_ms) < stale
                {
                    return Err(StoreError::Locked {
                        player,
                        holder: l.owner.server_id,
                        age_ms: lease.saturating_sub(l.heartbeat_ms),
                    });
                }
                let (v, mut p) = match self.read_current(ops, player)? {
                    Some(current) => current,
                    None => {
                        return Err(StoreError::NotFound {
                            player,
                            what: "profile".into(),
                        });
                    }
                };
                // What waits in the inbox is part of the profile the change sees (applied
                // once, its rows deleted in this transaction).
                let inbox = self.take_inbox(ops, &p)?;
                if let Some((next, _)) = inbox.committed {
                    p = next;
                }
                profiles.insert(player, p);
                versions.insert(player, v);
            }
            f(&mut profiles).map_err(StoreError::Aborted)?;
            let mut out = BTreeMap::new();
            for (player, p) in profiles {
                let blob = self.seal_profile(&p)?;
                let new = versions.get(&player).copied().unwrap_or(0) + 1;
                self.write_version(ops, player, new, &blob, now)?;
                Self::rank(ops, &p, None)?;
                out.insert(player, (new, p));
            }
            Ok(out)
        });
        self.count(&r);
        r
    }

    /// Reconciles a write that lost the compare-and-swap: `ours` was made from `base`, the
    /// store has moved on ("theirs"). In one transaction the current version is read, the three
    /// are resolved by `strategy`, and a clean result is written as the next version. Conflicts
    /// write nothing and come back for a person to settle.
    pub fn merge_into<D: PlayerData>(
        &self,
        player: u64,
        base: &Profile<D>,
        ours: &Profile<D>,
        strategy: crate::reconcile::Strategy,
        policy: &crate::reconcile::Policy,
        (sends, now): (&[Outgoing<D::Offline>], u64),
    ) -> Result<MergeOutcome<D>, StoreError> {
        let bodies = encode_sends(sends)?;
        let r = self.backend.write(true, |ops| {
            let (version, theirs) =
                self.read_current(ops, player)?
                    .ok_or_else(|| StoreError::NotFound {
                        player,
                        what: "profile".into(),
                    })?;
            let json = |p: &Profile<D>| {
                serde_json::to_value(p).map_err(|e| StoreError::Aborted(e.to_string()))
            };
            let resolution = crate::reconcile::resolve(
                &json(base)?,
                &json(ours)?,
                &json(&theirs)?,
                strategy,
                policy,
            );
            if !resolution.is_clean() {
                return Ok(MergeOutcome::Conflicts {
                    version,
                    theirs,
                    conflicts: resolution.conflicts,
                });
            }
            let merged: Profile<D> =
                serde_json::from_value(resolution.merged).map_err(|e| StoreError::Invalid {
                    player,
                    reason: format!("merged profile does not fit the schema: {e}"),
                })?;
            let blob = self.seal_profile(&merged)?;
            let new = version + 1;
            self.write_version(ops, player, new, &blob, now)?;
            Self::rank(ops, &merged, None)?;
            let sent = Self::post_all(ops, player, sends, &bodies, now)?;
            Ok(MergeOutcome::Merged {
                version: new,
                profile: merged,
                sent,
            })
        });
        self.count(&r);
        r
    }

    /// Writes `profile` as the next version if the stored version is still `expected` (a
    /// conflict settled by a person), whoever holds the lock.
    pub fn write_over<D: PlayerData>(
        &self,
        profile: &Profile<D>,
        expected: u64,
        now: u64,
    ) -> Result<u64, StoreError> {
        let player = profile.player_id;
        let r = self.backend.write(true, |ops| {
            let found = Self::stored_version(ops, player)?;
            if found != expected {
                return Err(StoreError::VersionConflict {
                    player,
                    expected,
                    found,
                });
            }
            let blob = self.seal_profile(profile)?;
            self.write_version(ops, player, found + 1, &blob, now)?;
            Self::rank(ops, profile, None)?;
            Ok(found + 1)
        });
        self.count(&r);
        r
    }

    /// Fault injection for integrity drills and tests: replaces the stored current profile in
    /// place, keeping its version number, as a tool editing the store behind the server's back
    /// would.
    pub fn tamper_current<D: PlayerData>(&self, profile: &Profile<D>) -> Result<(), StoreError> {
        let player = profile.player_id;
        self.backend.write(true, |ops| {
            let version = Self::stored_version(ops, player)?;
            let blob = self.seal_profile(profile)?;
            let mut row = now_ms().to_be_bytes().to_vec();
            row.extend_from_slice(&blob);
            let index = ops
                .get(Table::Versions, &pair_key(player, version))?
                .ok_or_else(|| StoreError::NotFound {
                    player,
                    what: format!("version {version}"),
                })?;
            ops.put(Table::Blobs, &index[..8.min(index.len())], &row)?;
            Ok(())
        })
    }

    /// The stored versions of a player: (version, saved at ms), oldest first.
    pub fn versions(&self, player: u64) -> Result<Vec<(u64, u64)>, StoreError> {
        self.backend.read(|ops| {
            Ok(ops
                .scan(Table::Versions, &pkey(player))?
                .into_iter()
                .map(|(k, v)| (be_u64(&k[8..]), saved_at(&v)))
                .collect())
        })
    }

    /// One stored version of a player's profile.
    pub fn read_version<D: PlayerData>(
        &self,
        player: u64,
        version: u64,
    ) -> Result<Profile<D>, StoreError> {
        self.backend.read(|ops| {
            let row =
                Self::version_row(ops, player, version)?.ok_or_else(|| StoreError::NotFound {
                    player,
                    what: format!("version {version}"),
                })?;
            let plain = self
                .seal
                .open(player, &row[8.min(row.len())..], MAX_PROFILE_BYTES)
                .map_err(|e| StoreError::Corrupt {
                    player,
                    reason: e.to_string(),
                })?;
            profile::decode::<D>(&plain, player, &self.settings.template).map_err(|e| {
                StoreError::Corrupt {
                    player,
                    reason: e.to_string(),
                }
            })
        })
    }

    /// The current stored profile and version, without taking the lock (admin views).
    pub fn peek<D: PlayerData>(
        &self,
        player: u64,
    ) -> Result<Option<(u64, Profile<D>)>, StoreError> {
        self.backend.read(|ops| self.read_current(ops, player))
    }

    /// The store-wide leaderboard: its first `top` rows, and for each of `players` (with the
    /// score it has now, which may be newer than its row) its rank: 1 + how many others score
    /// more.
    pub fn standings(&self, top: usize, players: &[(u64, i64)]) -> Result<Board, StoreError> {
        self.backend.read(|ops| {
            let rows = ops.top_ranks(top)?;
            let mut ranks = Vec::with_capacity(players.len());
            for &(player, score) in players {
                let mut above = ops.ranked_above(score)?;
                // Its own stored row does not count against it.
                if ops.rank_row(player)?.is_some_and(|r| r.score > score) {
                    above = above.saturating_sub(1);
                }
                ranks.push((player, above + 1));
            }
            Ok((rows, ranks))
        })
    }

    /// A player's last saved profile and leaderboard row, without taking the lock (a visit to
    /// a player who is not on this server).
    pub fn peek_named<D: PlayerData>(&self, player: u64) -> Result<Option<Glimpse<D>>, StoreError> {
        self.backend.read(|ops| {
            Ok(match self.read_current::<D>(ops, player)? {
                Some((_, p)) => Some((p, ops.rank_row(player)?)),
                None => None,
            })
        })
    }

    /// Makes an old version current again (as a new version). The caller ends any live session
    /// of the player first; a fresh lock held by anyone refuses.
    pub fn restore_version<D: PlayerData>(
        &self,
        player: u64,
        version: u64,
        now: u64,
    ) -> Result<u64, StoreError> {
        let old = self.read_version::<D>(player, version)?;
        let r = self.backend.write(true, |ops| {
            self.refuse_if_held(ops, player, now)?;
            let blob = self.seal_profile(&old)?;
            let new = Self::stored_version(ops, player)? + 1;
            self.write_version(ops, player, new, &blob, now)?;
            Self::rank(ops, &old, None)?;
            Ok(new)
        });
        self.count(&r);
        r
    }

    /// Queues an offline message; it is applied exactly once at the player's next load.
    pub fn send_offline<D: PlayerData>(
        &self,
        player: u64,
        msg: &D::Offline,
    ) -> Result<u64, StoreError> {
        let body = serde_json::to_vec(msg).map_err(|e| StoreError::Aborted(e.to_string()))?;
        let r = self
            .backend
            .write(true, |ops| Self::put_message(ops, player, &body));
        self.count(&r);
        r
    }

    /// Removes a player's profile, versions, inbox, lock and leaderboard row; records the
    /// erasure. Refused (`Locked`) while a session holds the profile.
    pub fn erase_player(&self, player: u64, actor: &str, now: u64) -> Result<usize, StoreError> {
        self.erase_player_with(player, actor, now, |_| Ok(0))
    }

    /// [`Self::erase_player`], with `also` removing more of the player (their account) in the
    /// same transaction; its count is added to the entries removed.
    pub fn erase_player_with(
        &self,
        player: u64,
        actor: &str,
        now: u64,
        mut also: impl FnMut(&mut dyn WriteOps) -> Result<usize, BackendError>,
    ) -> Result<usize, StoreError> {
        let r = self.backend.write(true, |ops| {
            // A profile in play is not erased under its server (which would save it again):
            // its session ends first (see `after_handoff`).
            self.refuse_if_held(ops, player, now)?;
            let mut removed = also(ops)?;
            for (k, _) in ops.scan(Table::Versions, &pkey(player))? {
                Self::delete_version(ops, player, be_u64(&k[8..]))?;
                removed += 1;
            }
            for (k, _) in ops.scan(Table::Inbox, &pkey(player))? {
                ops.delete(Table::Inbox, &k)?;
                removed += 1;
            }
            if ops.get(Table::Profiles, &pkey(player))?.is_some() {
                removed += 1;
            }
            ops.delete(Table::Profiles, &pkey(player))?;
            ops.delete(Table::Locks, &pkey(player))?;
            ops.delete_rank(player)?;
            let record = serde_json::json!({"player": player, "actor": actor, "at_ms": now, "entries": removed});
            ops.put(Table::Erasures, &pair_key(now, player), record.to_string().as_bytes())?;
            Ok(removed)
        });
        if let Ok(n) = &r {
            tracing::info!(target: "audit", player, "erased by {actor}: {n} entries");
        }
        self.count(&r);
        r
    }

    /// Store-wide version pruning (a store-wide job: one elected server runs it): every
    /// player's versions beyond `datastore.versionsKeep` or older than
    /// `datastore.versionsMaxAge` go, the newest always stays, so players who stopped playing
    /// (whose own saves no longer prune) are pruned too. One transaction per player with
    /// something to prune; how many versions went.
    pub fn prune_versions(&self, now: u64) -> Result<usize, StoreError> {
        let all = self.backend.read(|ops| ops.scan(Table::Versions, &[]))?;
        let keep = self.settings.versions_keep.max(1);
        let max_age = self.settings.versions_max_age.as_millis() as u64;
        let mut by_player: BTreeMap<u64, Vec<(u64, u64)>> = BTreeMap::new();
        for (k, v) in &all {
            if k.len() == 16 {
                by_player
                    .entry(be_u64(&k[..8]))
                    .or_default()
                    .push((be_u64(&k[8..]), saved_at(v)));
            }
        }
        let mut removed = 0;
        for (player, versions) in by_player {
            let n = versions.len();
            let doomed: Vec<u64> = versions
                .iter()
                .enumerate()
                .filter(|(i, (_, at))| {
                    let newest = i + 1 == n;
                    !newest && (n - i > keep || now.saturating_sub(*at) > max_age)
                })
                .map(|(_, (v, _))| *v)
                .collect();
            if doomed.is_empty() {
                continue;
            }
            removed += self.backend.write(true, |ops| {
                for v in &doomed {
                    Self::delete_version(ops, player, *v)?;
                }
                Ok::<_, StoreError>(doomed.len())
            })?;
        }
        Ok(removed)
    }

    /// The server whose session holds `player`'s profile now (a lock neither released nor
    /// stale), if any.
    pub fn holder_of(&self, player: u64) -> Result<Option<String>, StoreError> {
        let stale = self.settings.lock_stale_after.as_millis() as u64;
        self.backend.read(|ops| {
            let lease = self.lease_now(ops, now_ms())?;
            Ok(Self::held_lock(ops, player)?
                .filter(|l| lease.saturating_sub(l.heartbeat_ms) < stale)
                .map(|l| l.owner.server_id))
        })
    }

    /// Every player with a stored profile.
    pub fn players(&self) -> Result<Vec<u64>, StoreError> {
        self.backend.read(|ops| {
            Ok(ops
                .scan(Table::Profiles, &[])?
                .into_iter()
                .map(|(k, _)| be_u64(&k))
                .collect())
        })
    }
}

/// A sliding count of errors: critical when `threshold` or more fall within `window`.
#[derive(Debug, Clone)]
pub struct ErrorWindow {
    times: VecDeque<Duration>,
    /// Errors that make the state critical.
    pub threshold: usize,
    /// The window.
    pub window: Duration,
}

impl ErrorWindow {
    /// ProfileStore's rule: 5 errors in 120 s.
    pub fn profile_store() -> Self {
        Self {
            times: VecDeque::new(),
            threshold: 5,
            window: Duration::from_secs(120),
        }
    }

    /// Records an error at `now`.
    pub fn record(&mut self, now: Duration) {
        self.times.push_back(now);
        self.trim(now);
    }

    fn trim(&mut self, now: Duration) {
        while self
            .times
            .front()
            .is_some_and(|t| now.saturating_sub(*t) > self.window)
        {
            self.times.pop_front();
        }
    }

    /// True while the threshold is met.
    pub fn critical(&mut self, now: Duration) -> bool {
        self.trim(now);
        self.times.len() >= self.threshold
    }
}
