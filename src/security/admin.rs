//! Admin commands: sealed remote functions ([`AdminCommand`]), each behind its own permission
//! ([`AdminCommand::permission`]). A refusal is a strike and an audit record; every command
//! carried out is audited with its actor.
//!
//! Security carries out its own commands (kick, ban, unban, role, stats), reloads the config and
//! asks the health plugin for a check. A command about something another subsystem owns (coins,
//! conflicts) is handed on as [`AdminCommandAdmitted`] once its permission is checked; the owner
//! carries it out, audits it through [`AuditEntry`] and answers the client.

use bevy::prelude::*;

use super::{AuditKind, Security};
use crate::config::{Config, ConfigSource};
use crate::protocol::{AdminCommand, RemoteError, RequestId, SealedRequest, SealedResponse};
use crate::transport::{SealedRequestReceived, ServerNet};

/// An admin command that passed its permission check, for the subsystem that owns what it
/// changes (that subsystem answers the client).
#[derive(Message, Debug, Clone)]
pub struct AdminCommandAdmitted {
    /// The admin's client.
    pub client: u64,
    /// Its request.
    pub id: RequestId,
    /// The admin's player id.
    pub actor: u64,
    /// The command.
    pub command: AdminCommand,
}

impl AdminCommandAdmitted {
    /// How audit records name the admin.
    pub fn who(&self) -> String {
        format!("player {}", self.actor)
    }
}

/// What the admin handler reaches besides security and the network.
#[derive(bevy::ecs::system::SystemParam)]
pub struct AdminWorld<'w> {
    config: ResMut<'w, Config>,
    source: ResMut<'w, ConfigSource>,
    health: MessageWriter<'w, crate::health::HealthCheckRequested>,
    handed_on: MessageWriter<'w, AdminCommandAdmitted>,
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
    mut security: ResMut<Security>,
    mut net: ResMut<ServerNet>,
    mut world: AdminWorld,
    time: Res<Time<Real>>,
) {
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

/// Carries out a command; `None` when the answer comes later (from another plugin).
fn run(
    cmd: &AdminCommand,
    security: &mut Security,
    net: &mut ServerNet,
    world: &mut AdminWorld,
    who: &str,
    at: Request,
) -> Option<Result<SealedResponse, RemoteError>> {
    let (actor, now) = (at.actor, at.now);
    let now_ms = crate::clock::now_ms();
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
        AdminCommand::SetRole { player, role } => match security.assign_role(*player, role, who) {
            Ok(()) => done(format!("player {player} is now {role}")),
            Err(e) => rejected(e.to_string()),
        },
        AdminCommand::ReloadConfig => {
            match crate::config::reload_now(&mut world.config, &mut world.source, now) {
                Ok(()) => {
                    security.audit(
                        Some(actor),
                        AuditKind::AdminAction,
                        format!("config reloaded by {who}"),
                    );
                    done(format!(
                        "config reloaded from {}",
                        world.source.dir.display()
                    ))
                }
                Err(problems) => rejected(format!(
                    "config reload refused, the last good config stays: {}",
                    problems.join("; ")
                )),
            }
        }
        AdminCommand::Stats => Ok(SealedResponse::SecurityStats(security.stats())),
        AdminCommand::GrantCoins { .. }
        | AdminCommand::ListConflicts
        | AdminCommand::ResolveConflict { .. } => {
            // Coins are the game's, conflicts the data store's: they carry these out.
            world.handed_on.write(AdminCommandAdmitted {
                client: at.client,
                id: at.id,
                actor,
                command: cmd.clone(),
            });
            return None;
        }
        AdminCommand::Health => {
            world.health.write(crate::health::HealthCheckRequested {
                client: at.client,
                id: at.id,
            });
            return None;
        }
    };
    Some(answer)
}
