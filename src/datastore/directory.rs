//! The server directory and the store-wide jobs, on a shared store: each server registers
//! itself (id, public address, players, capacity) every [`BEAT`] and leaves on shutdown; the
//! one server elected to run the store-wide jobs (see `postgres::Leadership`) expires entries
//! silent for [`EXPIRE_AFTER`] and makes the scheduled backups. On the embedded store there is
//! one server: it runs the jobs and keeps no directory.

use std::time::Duration;

use bevy::prelude::*;
use bevy::tasks::IoTaskPool;

use super::postgres::Leadership;
use super::{DataStore, DataStoreState, PlayerData, Store};

/// Between two heartbeats of a server's directory entry.
pub const BEAT: Duration = Duration::from_secs(5);
/// A directory entry this long without a heartbeat is a dead server's, and is removed.
pub const EXPIRE_AFTER: Duration = Duration::from_secs(30);

/// Between two runs of the store-wide pruning jobs (version pruning, audit retention).
pub const JOBS_EVERY: Duration = Duration::from_secs(3600);

/// This server's place in the directory and in the election for the store-wide jobs.
#[derive(Resource)]
pub struct Directory {
    leadership: Option<Leadership>,
    next_beat: Duration,
    /// When the pruning jobs run next (a minute after start, then every [`JOBS_EVERY`]).
    next_jobs: Duration,
}

impl Directory {
    /// Stands for the store-wide jobs on a shared store.
    pub fn open(store: &Store) -> Self {
        Self {
            leadership: store.backend().postgres().map(|pg| pg.campaign()),
            next_beat: Duration::ZERO,
            next_jobs: Duration::from_secs(60),
        }
    }

    /// This server runs the store-wide jobs (always, on the embedded store).
    pub fn runs_store_jobs(&self) -> bool {
        self.leadership.as_ref().is_none_or(Leadership::is_leader)
    }
}

/// The live server with the most room, for a new player: its entry beat within the last three
/// [`BEAT`]s and it is not full; the smallest share of its capacity taken first, then the
/// fewest players, then the lowest id.
pub fn least_loaded(entries: &[super::ServerEntry]) -> Option<&super::ServerEntry> {
    let fresh = (BEAT * 3).as_millis() as i64;
    entries
        .iter()
        .filter(|e| e.heartbeat_age_ms < fresh && e.players < e.capacity.max(1))
        .min_by(|a, b| {
            // players / capacity, compared without division.
            let (sa, sb) = (
                i64::from(a.players) * i64::from(b.capacity.max(1)),
                i64::from(b.players) * i64::from(a.capacity.max(1)),
            );
            sa.cmp(&sb)
                .then(a.players.cmp(&b.players))
                .then(a.id.cmp(&b.id))
        })
}

/// Where players reach this server: the first address its tokens name, else its bind address.
fn address(world_tokens: Option<&crate::transport::ServerTokens>, bind: Option<String>) -> String {
    world_tokens
        .and_then(|t| t.0.addresses().first().map(ToString::to_string))
        .or(bind)
        .unwrap_or_default()
}

/// Every [`BEAT`]: refreshes this server's entry; the elected server also expires dead ones.
pub(super) fn beat<D: PlayerData>(
    mut directory: ResMut<Directory>,
    store: Res<DataStore>,
    state: Res<DataStoreState<D>>,
    settings: Option<Res<crate::server::ServerSettings>>,
    tokens: Option<Res<crate::transport::ServerTokens>>,
    time: Res<Time<Real>>,
) {
    let now = time.elapsed();
    if now < directory.next_beat || store.backend().postgres().is_none() {
        return;
    }
    directory.next_beat = now + BEAT;
    let id = state.server_id.clone();
    let address = address(
        tokens.as_deref(),
        settings.as_ref().map(|s| s.bind.to_string()),
    );
    let players = state.live.len() as u32;
    // A draining server shows no room: nobody is sent to it.
    let capacity = if state.draining {
        0
    } else {
        settings.as_ref().map_or(0, |s| s.max_clients)
    };
    let expire = directory.runs_store_jobs();
    let store = store.0.clone();
    IoTaskPool::get()
        .spawn(async move {
            let Some(pg) = store.backend().postgres() else {
                return;
            };
            if let Err(e) = pg.register_server(&id, &address, players, capacity) {
                warn!("server directory: {e}");
            }
            if expire {
                match pg.expire_servers(EXPIRE_AFTER) {
                    Ok(0) => {}
                    Ok(n) => info!("server directory: removed {n} dead server(s)"),
                    Err(e) => warn!("server directory: {e}"),
                }
            }
        })
        .detach();
}

/// A trade's side held in escrow this long was left by both servers of the trade (each calls
/// it off itself within a minute): the store-wide jobs call it off, giving back what is held.
pub const STALE_ESCROW: Duration = Duration::from_secs(10 * 60);

/// On the elected server (always, on the embedded store): every [`JOBS_EVERY`], the store-wide
/// pruning jobs off the tick: versions past `datastore.versionsKeep` or
/// `datastore.versionsMaxAge` of every player, audit records in the store past
/// `security.auditRetention`, and trades held in escrow past [`STALE_ESCROW`] (called off).
pub(super) fn store_jobs(
    mut directory: ResMut<Directory>,
    store: Res<DataStore>,
    config: Res<crate::config::Config>,
    time: Res<Time<Real>>,
) {
    let now = time.elapsed();
    if now < directory.next_jobs || !directory.runs_store_jobs() {
        return;
    }
    directory.next_jobs = now + JOBS_EVERY;
    let retention = config
        .get::<Duration>("security.auditRetention")
        .unwrap_or(Duration::MAX);
    let store = store.0.clone();
    IoTaskPool::get()
        .spawn(async move {
            let now_ms = crate::clock::now_ms();
            match store.prune_versions(now_ms) {
                Ok(0) => {}
                Ok(n) => info!("store-wide job: pruned {n} old version(s)"),
                Err(e) => warn!("store-wide job: version pruning failed: {e}"),
            }
            call_off_stale_trades(
                &store,
                now_ms.saturating_sub(STALE_ESCROW.as_millis() as u64),
            );
            if store.backend().postgres().is_some() {
                let cutoff = now_ms.saturating_sub(retention.as_millis() as u64);
                match store.expire_audit(cutoff) {
                    Ok(0) => {}
                    Ok(n) => info!("store-wide job: {n} audit record(s) past retention removed"),
                    Err(e) => warn!("store-wide job: audit retention failed: {e}"),
                }
            }
        })
        .detach();
}

/// Calls off every trade with a side held in escrow since before `before` (ms); the players
/// who got their goods back are told over the channel (their servers save them at once).
pub(super) fn call_off_stale_trades(store: &std::sync::Arc<super::Store>, before: u64) {
    let stale = match store.stale_escrows(before) {
        Ok(s) => s,
        Err(e) => {
            warn!("store-wide job: reading the trades held in escrow failed: {e}");
            return;
        }
    };
    for (trade, sides) in stale {
        match store.settle_trade(trade, &sides, true) {
            Ok((outcome, told)) => {
                warn!(trade, "store-wide job: a trade left in escrow: {outcome:?}");
                for player in told {
                    super::handoff::deliver_elsewhere(store, player);
                }
            }
            Err(e) => warn!(trade, "store-wide job: calling off a trade failed: {e}"),
        }
    }
}

/// Shutdown: this server leaves the directory (at once: the process is about to end).
pub(super) fn leave<D: PlayerData>(store: Res<DataStore>, state: Res<DataStoreState<D>>) {
    if let Some(pg) = store.backend().postgres() {
        match pg.leave_server(&state.server_id) {
            Ok(()) => info!("left the server directory"),
            Err(e) => warn!("server directory: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datastore::ServerEntry;

    fn entry(id: &str, players: i32, capacity: i32, age_ms: i64) -> ServerEntry {
        ServerEntry {
            id: id.into(),
            address: format!("127.0.0.1:{}", 5000 + players),
            players,
            capacity,
            heartbeat_age_ms: age_ms,
        }
    }

    #[test]
    fn a_new_player_goes_to_the_live_server_with_the_most_room() {
        let pick = |e: &[ServerEntry]| least_loaded(e).map(|e| e.id.clone());
        // Share of capacity, not head count: 30 of 256 has more room than 5 of 8.
        assert_eq!(
            pick(&[entry("a", 5, 8, 0), entry("b", 30, 256, 0)]),
            Some("b".into())
        );
        // Full servers and silent ones (three beats) are passed over.
        assert_eq!(
            pick(&[
                entry("a", 8, 8, 0),
                entry("b", 0, 8, 16_000),
                entry("c", 7, 8, 4_000)
            ]),
            Some("c".into())
        );
        assert_eq!(pick(&[entry("a", 8, 8, 0)]), None);
        // Equal shares: fewer players, then the lower id.
        assert_eq!(
            pick(&[entry("b", 0, 8, 0), entry("a", 0, 8, 0)]),
            Some("a".into())
        );
    }
}
