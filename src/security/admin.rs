//! Admin commands: sealed remote functions ([`AdminCommand`]), each behind its own permission
//! ([`AdminCommand::permission`]). A refusal is a strike and an audit record; every command
//! carried out is audited with its actor.

use bevy::ecs::system::SystemParam;
use bevy::prelude::*;
use bevy::tasks::{IoTaskPool, Task, block_on, futures_lite::future};

use super::{AuditKind, Security};
use crate::config::{Config, ConfigSource};
use crate::datastore::{DataStore, DataStoreState, OfflineMessage};
use crate::protocol::{AdminCommand, RemoteError, RequestId, SealedRequest, SealedResponse};
use crate::transport::{SealedRequestReceived, ServerNet};

/// Admin work finishing off the tick (gifts to offline players are durable writes).
#[derive(Resource, Default)]
pub struct AdminTasks(Vec<Task<Answer>>);

/// The answer to one admin request: client, request id, result, and what to do after.
type Answer = (u64, RequestId, Result<SealedResponse, RemoteError>, After);

/// State to update once an admin task has finished.
enum After {
    Nothing,
    /// A conflict was settled by writing `profile` as `version`.
    Settled {
        player: u64,
        version: u64,
        profile: Box<crate::datastore::Profile>,
    },
    /// Settling failed: the conflict goes back into the queue.
    Requeue(Box<crate::reconcile::PendingConflict>),
}

/// What the admin handler reaches besides security and the network.
#[derive(SystemParam)]
pub struct AdminWorld<'w> {
    store: Option<Res<'w, DataStore>>,
    profiles: Option<ResMut<'w, DataStoreState>>,
    config: Option<ResMut<'w, Config>>,
    source: Option<ResMut<'w, ConfigSource>>,
    reconciler: Option<ResMut<'w, crate::reconcile::Reconciler>>,
    health: Option<ResMut<'w, Messages<crate::health::HealthCheckRequested>>>,
    tasks: ResMut<'w, AdminTasks>,
}

fn rejected(why: impl Into<String>) -> Result<SealedResponse, RemoteError> {
    Err(RemoteError::Rejected(why.into()))
}

fn done(detail: String) -> Result<SealedResponse, RemoteError> {
    Ok(SealedResponse::AdminDone { detail })
}

/// Answers admin commands.
pub fn answer_admin(
    mut requests: MessageReader<SealedRequestReceived>,
    security: Option<ResMut<Security>>,
    net: Option<ResMut<ServerNet>>,
    mut world: AdminWorld,
    time: Res<Time<Real>>,
) {
    let (Some(mut security), Some(mut net)) = (security, net) else {
        return;
    };
    for r in requests.read() {
        let SealedRequest::Admin(cmd) = &r.body else {
            continue;
        };
        let Some(actor) = net.session(r.client).map(|s| s.player_id) else {
            continue;
        };
        let permission = cmd.permission();
        if !security.has_permission(actor, permission) {
            net.respond_sealed(
                r.client,
                r.id,
                rejected(format!("permission denied: {permission}")),
            );
            security.strike(
                &mut net,
                r.client,
                actor,
                &format!("admin command without {permission}"),
                time.elapsed(),
            );
            continue;
        }
        let who = format!("player {actor}");
        let at = Request {
            client: r.client,
            id: r.id,
            actor,
            now: time.elapsed(),
        };
        let result = run(cmd, &mut security, &mut net, &mut world, &who, at);
        if let Some(result) = result {
            net.respond_sealed(r.client, r.id, result);
        }
    }
}

/// Who asked, under which request, and when.
#[derive(Clone, Copy)]
struct Request {
    client: u64,
    id: RequestId,
    actor: u64,
    now: std::time::Duration,
}

/// Carries out a command; `None` when the answer comes later (from a task or another plugin).
fn run(
    cmd: &AdminCommand,
    security: &mut Security,
    net: &mut ServerNet,
    world: &mut AdminWorld,
    who: &str,
    at: Request,
) -> Option<Result<SealedResponse, RemoteError>> {
    let (actor, now) = (at.actor, at.now);
    let now_ms = crate::transport::unix_now().as_millis() as u64;
    let answer = match cmd {
        AdminCommand::Kick { player, reason } => {
            if net.session(*player).is_none() {
                rejected(format!("player {player} is not online"))
            } else {
                net.kick(*player, &format!("kicked by a moderator: {reason}"));
                security.kicks += 1;
                security.audit(
                    Some(*player),
                    AuditKind::Kick,
                    format!("by {who}: {reason}"),
                );
                done(format!("kicked player {player}"))
            }
        }
        AdminCommand::Ban {
            player,
            seconds,
            reason,
        } => {
            let until = now_ms.saturating_add(seconds.saturating_mul(1000));
            security.ban(*player, until);
            security.audit(
                Some(*player),
                AuditKind::Ban,
                format!("banned for {seconds} s by {who}: {reason}"),
            );
            if net.session(*player).is_some() {
                net.kick(*player, &format!("banned for {seconds} s: {reason}"));
                security.kicks += 1;
            }
            done(format!("banned player {player} for {seconds} s"))
        }
        AdminCommand::Unban { player } => {
            if security.unban(*player) {
                security.audit(
                    Some(*player),
                    AuditKind::AdminAction,
                    format!("unbanned by {who}"),
                );
                done(format!("unbanned player {player}"))
            } else {
                rejected(format!("player {player} is not banned"))
            }
        }
        AdminCommand::GrantCoins { player, amount } => {
            return grant(security, world, (*player, *amount), who, (at.client, at.id));
        }
        AdminCommand::SetRole { player, role } => match security.assign_role(*player, role, who) {
            Ok(()) => done(format!("player {player} is now {role}")),
            Err(e) => rejected(e.to_string()),
        },
        AdminCommand::ReloadConfig => match (world.config.as_mut(), world.source.as_mut()) {
            (Some(config), Some(source)) => match crate::config::reload_now(config, source, now) {
                Ok(()) => {
                    security.audit(
                        Some(actor),
                        AuditKind::AdminAction,
                        format!("config reloaded by {who}"),
                    );
                    done(format!("config reloaded from {}", source.dir.display()))
                }
                Err(problems) => rejected(format!(
                    "config reload refused, the last good config stays: {}",
                    problems.join("; ")
                )),
            },
            _ => rejected("this server has no config dir to reload"),
        },
        AdminCommand::Stats => Ok(SealedResponse::SecurityStats(security.stats())),
        AdminCommand::ListConflicts => match world.reconciler.as_ref() {
            Some(rc) => Ok(SealedResponse::Conflicts(rc.report())),
            None => rejected("this server does not reconcile"),
        },
        AdminCommand::ResolveConflict { id, take_ours } => {
            return settle(security, world, (*id, *take_ours), who, (at.client, at.id));
        }
        AdminCommand::Health => match world.health.as_mut() {
            Some(m) => {
                m.write(crate::health::HealthCheckRequested {
                    client: at.client,
                    id: at.id,
                });
                return None;
            }
            None => rejected("this server runs no health checks"),
        },
    };
    Some(answer)
}

/// Coins to a live profile at once; to an offline one as an offline message (a durable write,
/// off the tick: the answer comes from [`finish_admin_tasks`], and this returns `None`).
fn grant(
    security: &mut Security,
    world: &mut AdminWorld,
    (player, amount): (u64, i64),
    who: &str,
    (client, id): (u64, RequestId),
) -> Option<Result<SealedResponse, RemoteError>> {
    if let Some(profiles) = world.profiles.as_mut()
        && profiles.profile(player).is_some()
    {
        let Some(profile) = profiles.profile_mut(player) else {
            return Some(rejected("profile vanished"));
        };
        let after = profile.stats.coins.saturating_add(amount);
        if after < 0 {
            return Some(rejected(format!(
                "player {player} has {} coins; taking {} would go below zero",
                profile.stats.coins, -amount
            )));
        }
        profile.stats.coins = after;
        security.income.credit(player, amount);
        security.audit(
            Some(player),
            AuditKind::AdminAction,
            format!("{amount} coins granted by {who}; balance {after}"),
        );
        return Some(done(format!("player {player} now has {after} coins")));
    }
    if amount < 0 {
        return Some(rejected(format!(
            "player {player} is offline; coins can only be taken from a player who is online"
        )));
    }
    let Some(store) = world.store.as_ref() else {
        return Some(rejected("this server has no data store"));
    };
    security.audit(
        Some(player),
        AuditKind::AdminAction,
        format!("{amount} coins sent to offline player by {who}"),
    );
    let store = store.0.clone();
    let from = client;
    world.tasks.0.push(IoTaskPool::get().spawn(async move {
        let result = store
            .send_offline(player, &OfflineMessage::Coins { amount, from })
            .map(|_| SealedResponse::AdminDone {
                detail: format!(
                    "player {player} is offline; {amount} coins wait for their next join"
                ),
            })
            .map_err(|e| RemoteError::Rejected(format!("cannot store the gift: {e}")));
        (client, id, result, After::Nothing)
    }));
    None
}

/// Settles a waiting conflict: the stored side at once; the server's side by a durable write
/// off the tick (the answer comes from [`finish_admin_tasks`]).
fn settle(
    security: &mut Security,
    world: &mut AdminWorld,
    (conflict, take_ours): (u64, bool),
    who: &str,
    (client, id): (u64, RequestId),
) -> Option<Result<SealedResponse, RemoteError>> {
    let Some(rc) = world.reconciler.as_mut() else {
        return Some(rejected("this server does not reconcile"));
    };
    let Some(c) = rc.take(conflict) else {
        return Some(rejected(format!("no conflict {conflict} is waiting")));
    };
    let player = c.player;
    let side = if take_ours {
        "the server's"
    } else {
        "the stored"
    };
    security.audit(
        Some(player),
        AuditKind::AdminAction,
        format!("conflict {conflict} settled by {who}: {side} side kept"),
    );
    if !take_ours {
        rc.resolved();
        if let Some(profiles) = world.profiles.as_mut() {
            profiles.settled(player, c.theirs_version, c.theirs.clone(), true);
        }
        return Some(done(format!(
            "conflict {conflict}: player {player} keeps the stored version {}",
            c.theirs_version
        )));
    }
    let Some(store) = world.store.as_ref() else {
        rc.queue(c);
        return Some(rejected("this server has no data store"));
    };
    // The server's side as it is now (a live profile may have moved on while it waited).
    let profile = world
        .profiles
        .as_ref()
        .and_then(|p| p.profile(player))
        .map_or_else(|| c.ours.clone(), |l| l.profile.clone());
    let store = store.0.clone();
    world.tasks.0.push(IoTaskPool::get().spawn(async move {
        match store.write_over(&profile, c.theirs_version, crate::datastore::now_ms()) {
            Ok(version) => (
                client,
                id,
                Ok(SealedResponse::AdminDone {
                    detail: format!(
                        "conflict {conflict}: player {player}'s server-side profile written as version {version}"
                    ),
                }),
                After::Settled {
                    player,
                    version,
                    profile: Box::new(profile),
                },
            ),
            Err(e) => (
                client,
                id,
                Err(RemoteError::Rejected(format!(
                    "conflict {conflict} not settled: {e}"
                ))),
                After::Requeue(Box::new(c)),
            ),
        }
    }));
    None
}

/// Answers admin commands whose work finished off the tick.
pub fn finish_admin_tasks(
    mut tasks: ResMut<AdminTasks>,
    net: Option<ResMut<ServerNet>>,
    mut profiles: Option<ResMut<DataStoreState>>,
    mut reconciler: Option<ResMut<crate::reconcile::Reconciler>>,
) {
    let Some(mut net) = net else { return };
    let mut i = 0;
    while i < tasks.0.len() {
        if let Some((client, id, result, after)) = block_on(future::poll_once(&mut tasks.0[i])) {
            drop(tasks.0.swap_remove(i));
            match after {
                After::Nothing => {}
                After::Settled {
                    player,
                    version,
                    profile,
                } => {
                    if let Some(rc) = reconciler.as_mut() {
                        rc.resolved();
                    }
                    if let Some(p) = profiles.as_mut() {
                        p.settled(player, version, *profile, false);
                    }
                }
                After::Requeue(c) => {
                    if let Some(rc) = reconciler.as_mut() {
                        rc.queue(*c);
                    }
                }
            }
            net.respond_sealed(client, id, result);
        } else {
            i += 1;
        }
    }
}
