//! `admin drain`: a server on a shared store hands every player to other live servers, then
//! stops. Each player's client is told to dial the live server with the most room (by the
//! server directory, counting the players already sent there) with a token made here (the
//! servers share the netcode key); the new server's load asks this one for the profile (the
//! handoff in `handoff.rs`), which saves and releases it. While draining, this server takes no
//! new players and shows no room in the directory; it stops when its last player has gone, or
//! after [`DRAIN_LIMIT`] (the shutdown's final saves keep whoever is left).

use std::net::SocketAddr;
use std::time::Duration;

use bevy::prelude::*;
use bevy::tasks::{IoTaskPool, Task};

use super::{DataStore, DataStoreState, PlayerData, ServerEntry, least_loaded};
use crate::protocol::RemoteError;
use crate::protocol::RequestId;
use crate::protocol::builtin::{Drain, MoveToServer};
use crate::security::{AuditEntry, AuditKind};
use crate::shutdown::{Shutdown, ShutdownReason};
use crate::transport::{Call, ServerNet, ServerTokens};

/// The longest a drain waits for its players to go before the server stops anyway.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(60);

type Directory = Result<Vec<ServerEntry>, String>;

/// Where this server is in a drain.
#[derive(Resource, Default)]
pub(super) struct Draining {
    /// The directory being read for the asker (client, call id, who).
    asking: Option<(Task<Directory>, u64, RequestId, String)>,
    /// Draining since (the server's elapsed time).
    pub since: Option<Duration>,
}

/// Which server each player goes to: every time the one with the most room, counting those
/// already sent. `None` for a player when no other server has room.
pub fn assign(
    mut servers: Vec<ServerEntry>,
    own_id: &str,
    players: &[u64],
) -> Vec<(u64, Option<(String, String)>)> {
    servers.retain(|s| s.id != own_id);
    players
        .iter()
        .map(|&p| {
            let Some(pick) = least_loaded(&servers).map(|e| e.id.clone()) else {
                return (p, None);
            };
            let e = servers.iter_mut().find(|e| e.id == pick);
            (
                p,
                e.map(|e| {
                    e.players += 1;
                    (e.id.clone(), e.address.clone())
                }),
            )
        })
        .collect()
}

/// Answers `admin drain`: reads the directory off the tick.
pub(super) fn answer_drains(
    mut calls: MessageReader<Call<Drain>>,
    mut net: ResMut<ServerNet>,
    store: Res<DataStore>,
    mut draining: ResMut<Draining>,
) {
    for c in calls.read() {
        let who = format!(
            "player {}",
            net.session(c.client).map_or(0, |s| s.player_id)
        );
        if store.backend().postgres().is_none() {
            net.reply(
                c,
                Err(RemoteError::Rejected(
                    "draining needs a shared store (--store postgres://…): on the embedded \
                     store there is no other server to hand players to"
                        .into(),
                )),
            );
            continue;
        }
        if draining.since.is_some() || draining.asking.is_some() {
            net.reply(
                c,
                Err(RemoteError::Rejected(
                    "this server is already draining".into(),
                )),
            );
            continue;
        }
        let store = store.0.clone();
        let task = IoTaskPool::get().spawn(async move {
            store
                .backend()
                .postgres()
                .ok_or_else(|| "no shared store".to_string())
                .and_then(|pg| pg.servers().map_err(|e| e.to_string()))
        });
        draining.asking = Some((task, c.client, c.id, who));
    }
}

/// When the directory has been read: each player is sent on; the asker is told how many went
/// where. Then, once no player is left (or after [`DRAIN_LIMIT`]), the server stops.
#[allow(clippy::too_many_arguments)]
pub(super) fn move_players<D: PlayerData>(
    mut draining: ResMut<Draining>,
    mut net: ResMut<ServerNet>,
    mut state: ResMut<DataStoreState<D>>,
    tokens: Option<Res<ServerTokens>>,
    mut shutdown: ResMut<Shutdown>,
    mut audit: MessageWriter<AuditEntry>,
    time: Res<Time<Real>>,
) {
    let now = time.elapsed();
    if let Some(since) = draining.since {
        let empty = state.live.is_empty() && state.loading.is_empty() && state.tasks.is_empty();
        if (empty || now.saturating_sub(since) >= DRAIN_LIMIT) && !shutdown.is_shutting_down() {
            info!("drained: stopping ({} player(s) left)", state.live.len());
            shutdown.request(ShutdownReason::Requested("drained".into()));
        }
        return;
    }
    let Some((task, ..)) = &mut draining.asking else {
        return;
    };
    let Some(read) = bevy::tasks::block_on(bevy::tasks::futures_lite::future::poll_once(task))
    else {
        return;
    };
    let Some((_, client, id, who)) = draining.asking.take() else {
        return;
    };
    let answer = match (read, tokens) {
        (Err(e), _) => Err(format!("the server directory cannot be read: {e}")),
        (Ok(_), None) => Err("this server makes no connect tokens".into()),
        (Ok(servers), Some(tokens)) => {
            // Everyone but the asker (an operator's command-line session ends with the answer).
            let players: Vec<u64> = state
                .live
                .iter()
                .filter(|(_, l)| l.client != client)
                .map(|(p, _)| *p)
                .collect();
            let plan = assign(servers, &state.server_id, &players);
            if !players.is_empty() && plan.iter().all(|(_, to)| to.is_none()) {
                Err("no other live server has room: nothing moved".into())
            } else {
                let (mut moved, mut stay) = (0usize, 0usize);
                let mut targets = std::collections::BTreeSet::new();
                for (player, to) in plan {
                    let sent = to.and_then(|(sid, address)| {
                        let addr: SocketAddr = address.parse().ok()?;
                        let live = state.live.get(&player)?;
                        let name = net.session(live.client)?.display_name.clone();
                        let token = tokens
                            .0
                            .for_addresses(vec![addr])
                            .issue(player, &name)
                            .ok()?;
                        net.send(
                            live.client,
                            &MoveToServer {
                                server: addr,
                                token: token.to_bytes(),
                            },
                        );
                        targets.insert(sid);
                        Some(())
                    });
                    match sent {
                        Some(()) => moved += 1,
                        None => stay += 1,
                    }
                }
                Ok(format!(
                    "sending {moved} player(s) to {} other server(s){}; this server stops when \
                     they have gone (at most {} s)",
                    targets.len(),
                    if stay > 0 {
                        format!(" ({stay} with nowhere to go stay until it stops)")
                    } else {
                        String::new()
                    },
                    DRAIN_LIMIT.as_secs()
                ))
            }
        }
    };
    if let Ok(text) = &answer {
        info!("drain asked by {who}: {text}");
        audit.write(AuditEntry {
            player: None,
            kind: AuditKind::AdminAction,
            details: format!("drain by {who}: {text}"),
        });
        draining.since = Some(now);
        state.draining = true;
    }
    net.reply_to::<Drain>(client, id, answer.map_err(RemoteError::Rejected));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, players: i32, capacity: i32) -> ServerEntry {
        ServerEntry {
            id: id.into(),
            address: format!("10.0.0.{}:5000", id.len()),
            players,
            capacity,
            heartbeat_age_ms: 0,
        }
    }

    #[test]
    fn players_are_spread_over_the_other_servers_by_room() {
        let plan = assign(
            vec![entry("me", 3, 8), entry("b", 1, 4), entry("cc", 0, 2)],
            "me",
            &[1, 2, 3, 4, 5, 6, 7],
        );
        let to = |p: u64| plan.iter().find(|x| x.0 == p).and_then(|x| x.1.clone());
        let count = |id: &str| {
            plan.iter()
                .filter(|x| x.1.as_ref().is_some_and(|t| t.0 == id))
                .count()
        };
        // Never back to itself; b ends with 4 of 4, cc with 2 of 2; the seventh has nowhere.
        assert_eq!((count("b"), count("cc"), count("me")), (3, 2, 0));
        assert_eq!(plan.iter().filter(|x| x.1.is_none()).count(), 2);
        assert!(to(1).is_some());
    }
}
