//! The admin command about coins (`GrantCoins`, permission `admin.grant`, checked by security):
//! a live profile gets the coins at once, like a gift (kept with the profile as an operation,
//! the income watch told, the player's state pushed); an offline player gets them as an offline
//! message at their next join (a durable write, off the tick).

use bevy::prelude::*;
use bevy::tasks::{IoTaskPool, Task, block_on, futures_lite::future};

use super::{GameServerState, predict, record_op};
use crate::datastore::{DataStore, DataStoreState, OfflineMessage};
use crate::protocol::{AdminCommand, RemoteError, RequestId, SealedResponse, SealedServerEvent};
use crate::reconcile::Reconciler;
use crate::security::{AdminCommandAdmitted, AuditEntry, AuditKind, Security};
use crate::transport::ServerNet;

/// The answer to a grant: client, request, outcome.
type Answer = (u64, RequestId, Result<SealedResponse, RemoteError>);

/// Grants to offline players in flight.
#[derive(Resource, Default)]
pub(super) struct GrantTasks(Vec<Task<Answer>>);

fn rejected(why: impl Into<String>) -> Result<SealedResponse, RemoteError> {
    Err(RemoteError::Rejected(why.into()))
}

/// Carries out admitted `GrantCoins` commands.
#[allow(clippy::too_many_arguments)]
pub(super) fn grant_coins(
    mut admitted: MessageReader<AdminCommandAdmitted>,
    net: Option<ResMut<ServerNet>>,
    profiles: Option<ResMut<DataStoreState>>,
    store: Option<Res<DataStore>>,
    reconciler: Option<ResMut<Reconciler>>,
    security: Option<ResMut<Security>>,
    game: Res<GameServerState>,
    mut tasks: ResMut<GrantTasks>,
    mut audit: MessageWriter<AuditEntry>,
) {
    let Some(mut net) = net else { return };
    let (mut profiles, mut reconciler, mut security) = (profiles, reconciler, security);
    for a in admitted.read() {
        let AdminCommand::GrantCoins { player, amount } = a.command else {
            continue;
        };
        let who = a.who();
        let live = profiles.as_mut().and_then(|p| p.profile_mut(player));
        let answer = if let Some(profile) = live {
            let after = profile.stats.coins.saturating_add(amount);
            if after < 0 {
                rejected(format!(
                    "player {player} has {} coins; taking {} would go below zero",
                    profile.stats.coins, -amount
                ))
            } else {
                profile.stats.coins = after;
                let payload = serde_json::json!({ "by": a.actor, "coins": amount });
                record_op(
                    reconciler.as_deref_mut(),
                    profile,
                    a.actor,
                    ("admin_grant", payload),
                    crate::clock::now_ms(),
                );
                let state = predict::state_of(profile, game.last_op(player));
                if let Some(sec) = security.as_mut() {
                    sec.income.credit(player, amount);
                }
                if let Some(client) = profiles
                    .as_ref()
                    .and_then(|p| p.profile(player))
                    .map(|l| l.client)
                {
                    net.send_sealed_event(client, SealedServerEvent::State(state));
                }
                audit.write(AuditEntry {
                    player: Some(player),
                    kind: AuditKind::AdminAction,
                    details: format!("{amount} coins granted by {who}; balance {after}"),
                });
                Ok(SealedResponse::AdminDone {
                    detail: format!("player {player} now has {after} coins"),
                })
            }
        } else if amount < 0 {
            rejected(format!(
                "player {player} is offline; coins can only be taken from a player who is online"
            ))
        } else if let Some(store) = store.as_ref() {
            audit.write(AuditEntry {
                player: Some(player),
                kind: AuditKind::AdminAction,
                details: format!("{amount} coins sent to offline player by {who}"),
            });
            let store = store.0.clone();
            let (client, id) = (a.client, a.id);
            tasks.0.push(IoTaskPool::get().spawn(async move {
                let result = store
                    .send_offline(
                        player,
                        &OfflineMessage::Coins {
                            amount,
                            from: client,
                        },
                    )
                    .map(|_| SealedResponse::AdminDone {
                        detail: format!(
                            "player {player} is offline; {amount} coins wait for their next join"
                        ),
                    })
                    .map_err(|e| RemoteError::Rejected(format!("cannot store the gift: {e}")));
                (client, id, result)
            }));
            continue;
        } else {
            rejected("this server has no data store")
        };
        net.respond_sealed(a.client, a.id, answer);
    }
}

/// Answers grants whose durable write finished.
pub(super) fn finish_grants(mut tasks: ResMut<GrantTasks>, net: Option<ResMut<ServerNet>>) {
    let Some(mut net) = net else { return };
    tasks
        .0
        .retain_mut(|t| match block_on(future::poll_once(t)) {
            Some((client, id, result)) => {
                net.respond_sealed(client, id, result);
                false
            }
            None => true,
        });
}
