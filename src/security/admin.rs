//! The admin commands security carries out itself: kick, ban, unban, role, config reload and its
//! figures. Each is a sealed remote function whose type names its permission
//! (`protocol::builtin`); the gate ([`super::admit`]) refuses a caller without it (a strike and an
//! audit record) before any handler here sees the call. Every command carried out is audited
//! with its actor. Commands about what another subsystem owns (health, conflicts, a game's own)
//! are answered by that owner, which audits through [`super::AuditEntry`].

use bevy::prelude::*;

use super::{AuditKind, Security};
use crate::config::{Config, ConfigSource};
use crate::protocol::RemoteError;
use crate::protocol::builtin::{Ban, Kick, ReloadConfig, SecurityStats, SetRole, Unban};
use crate::transport::{Call, ServerNet};

/// The calls security answers.
#[derive(bevy::ecs::system::SystemParam)]
pub(super) struct AdminCalls<'w, 's> {
    kick: MessageReader<'w, 's, Call<Kick>>,
    ban: MessageReader<'w, 's, Call<Ban>>,
    unban: MessageReader<'w, 's, Call<Unban>>,
    role: MessageReader<'w, 's, Call<SetRole>>,
    reload: MessageReader<'w, 's, Call<ReloadConfig>>,
    stats: MessageReader<'w, 's, Call<SecurityStats>>,
}

fn who(net: &ServerNet, client: u64) -> (u64, String) {
    let actor = net.session(client).map_or(0, |s| s.player_id);
    (actor, format!("player {actor}"))
}

fn rejected<T>(why: impl Into<String>) -> Result<T, RemoteError> {
    Err(RemoteError::Rejected(why.into()))
}

/// Carries out the admitted admin commands security owns.
pub(super) fn answer_admin(
    mut calls: AdminCalls,
    mut security: ResMut<Security>,
    mut net: ResMut<ServerNet>,
    mut config: ResMut<Config>,
    mut source: ResMut<ConfigSource>,
    time: Res<Time<Real>>,
    (mut elsewhere, others, mut changed): (
        MessageWriter<super::EndSessionsElsewhere>,
        Option<Res<super::OtherServers>>,
        MessageWriter<super::SecurityChanged>,
    ),
) {
    let now_ms = crate::clock::now_ms();
    for c in calls.kick.read() {
        let (_, who) = who(&net, c.client);
        let Kick { player, reason } = &c.request;
        let answer = if net.session(*player).is_none() && others.is_some() {
            // Maybe on another server of the store: it ends the session there.
            elsewhere.write(super::EndSessionsElsewhere {
                player: *player,
                reason: format!("kicked by a moderator: {reason}"),
            });
            security.audit(
                Some(*player),
                AuditKind::Kick,
                format!("by {who}, on the other servers: {reason}"),
            );
            Ok(format!(
                "player {player} is not on this server: the other servers end their session"
            ))
        } else if net.session(*player).is_none() {
            rejected(format!("player {player} is not online"))
        } else {
            net.kick(*player, &format!("kicked by a moderator: {reason}"));
            security.kicks += 1;
            security.audit(
                Some(*player),
                AuditKind::Kick,
                format!("by {who}: {reason}"),
            );
            Ok(format!("kicked player {player}"))
        };
        net.reply(c, answer);
    }
    for c in calls.ban.read() {
        let (_, who) = who(&net, c.client);
        let Ban {
            player,
            seconds,
            reason,
        } = &c.request;
        let until = now_ms.saturating_add(seconds.saturating_mul(1000));
        security.ban(*player, until);
        changed.write(super::SecurityChanged(super::SecurityChange::Ban {
            player: *player,
            until_ms: until,
        }));
        security.audit(
            Some(*player),
            AuditKind::Ban,
            format!("banned for {seconds} s by {who}: {reason}"),
        );
        if net.session(*player).is_some() {
            net.kick(*player, &format!("banned for {seconds} s: {reason}"));
        } else if others.is_some() {
            elsewhere.write(super::EndSessionsElsewhere {
                player: *player,
                reason: format!("banned for {seconds} s: {reason}"),
            });
            security.kicks += 1;
        }
        net.reply(c, Ok(format!("banned player {player} for {seconds} s")));
    }
    for c in calls.unban.read() {
        let (_, who) = who(&net, c.client);
        let player = c.request.player;
        changed.write(super::SecurityChanged(super::SecurityChange::Unban {
            player,
        }));
        let answer = if security.unban(player) {
            security.audit(
                Some(player),
                AuditKind::AdminAction,
                format!("unbanned by {who}"),
            );
            Ok(format!("unbanned player {player}"))
        } else {
            rejected(format!("player {player} is not banned"))
        };
        net.reply(c, answer);
    }
    for c in calls.role.read() {
        let (_, who) = who(&net, c.client);
        let SetRole { player, role } = &c.request;
        let answer = match security.assign_role(*player, role, &who) {
            Ok(()) => {
                changed.write(super::SecurityChanged(super::SecurityChange::Role {
                    player: *player,
                    role: role.clone(),
                }));
                Ok(format!("player {player} is now {role}"))
            }
            Err(e) => rejected(e.to_string()),
        };
        net.reply(c, answer);
    }
    for c in calls.reload.read() {
        let (actor, who) = who(&net, c.client);
        let answer = match crate::config::reload_now(&mut config, &mut source, time.elapsed()) {
            Ok(()) => {
                security.audit(
                    Some(actor),
                    AuditKind::AdminAction,
                    format!("config reloaded by {who}"),
                );
                Ok(format!("config reloaded from {}", source.dir.display()))
            }
            Err(problems) => rejected(format!(
                "config reload refused, the last good config stays: {}",
                problems.join("; ")
            )),
        };
        net.reply(c, answer);
    }
    for c in calls.stats.read() {
        let report = security.stats();
        net.reply(c, Ok(report));
    }
}
