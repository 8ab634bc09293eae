//! The admin command about coins (`GrantCoins`, permission `admin.grant`, checked by security):
//! a live profile gets the coins at once, like a gift (kept with the profile as an operation,
//! the income watch told, the player's state pushed); an offline player gets them as an offline
//! message at their next join (a durable write, off the tick).

use bevy::prelude::*;
use bevy::tasks::{IoTaskPool, Task};

use super::GameServerState;
use super::door::{Operation, ProfileDoor};
use crate::datastore::DataStore;
use crate::game::data::{Aquarium, OfflineGift};
use crate::game::protocol::GrantCoins;
use crate::protocol::{RemoteError, RequestId};
use crate::security::{AuditEntry, AuditKind};
use crate::transport::{Call, ServerNet};

/// The answer to a grant: client, request, outcome.
type Answer = (u64, RequestId, Result<String, RemoteError>);

/// Grants to offline players in flight.
#[derive(Resource, Default)]
pub(super) struct GrantTasks(Vec<Task<Answer>>);

fn rejected(why: impl Into<String>) -> Result<String, RemoteError> {
    Err(RemoteError::Rejected(why.into()))
}

/// Carries out admitted `GrantCoins` commands.
pub(super) fn grant_coins(
    mut calls: MessageReader<Call<GrantCoins>>,
    mut door: ProfileDoor,
    store: Res<DataStore>,
    game: Res<GameServerState>,
    mut tasks: ResMut<GrantTasks>,
    mut audit: MessageWriter<AuditEntry>,
) {
    for a in calls.read() {
        let GrantCoins { player, amount } = a.request;
        let actor = door.net().session(a.client).map_or(0, |s| s.player_id);
        let who = format!("player {actor}");
        let operation = Operation {
            player,
            actor,
            kind: "admin_grant",
            payload: serde_json::json!({ "by": actor, "coins": amount }),
            last_op: game.last_op(player),
            push: true,
        };
        let granted = door.change(operation, |profile| {
            let after = profile.stats.coins.saturating_add(amount);
            if after < 0 {
                return Err(format!(
                    "player {player} has {} coins; taking {} would go below zero",
                    profile.stats.coins, -amount
                ));
            }
            profile.stats.coins = after;
            Ok(amount)
        });
        let answer = match granted {
            Some(Ok(state)) => {
                audit.write(AuditEntry {
                    player: Some(player),
                    kind: AuditKind::AdminAction,
                    details: format!("{amount} coins granted by {who}; balance {}", state.coins),
                });
                Ok(format!("player {player} now has {} coins", state.coins))
            }
            Some(Err(why)) => rejected(why),
            None if amount < 0 => rejected(format!(
                "player {player} is offline; coins can only be taken from a player who is online"
            )),
            None => {
                audit.write(AuditEntry {
                    player: Some(player),
                    kind: AuditKind::AdminAction,
                    details: format!("{amount} coins sent to offline player by {who}"),
                });
                let store = store.0.clone();
                let (client, id) = (a.client, a.id);
                tasks.0.push(IoTaskPool::get().spawn(async move {
                    let result = store
                        .send_offline::<Aquarium>(
                            player,
                            &OfflineGift::Coins {
                                amount,
                                from: client,
                            },
                        )
                        .map(|_| {
                            format!(
                                "player {player} is offline; {amount} coins wait for their next join"
                            )
                        })
                        .map_err(|e| RemoteError::Rejected(format!("cannot store the gift: {e}")));
                    (client, id, result)
                }));
                continue;
            }
        };
        door.net().reply(a, answer);
    }
}

/// Answers grants whose durable write finished.
pub(super) fn finish_grants(mut tasks: ResMut<GrantTasks>, mut net: ResMut<ServerNet>) {
    for (client, id, result) in crate::process::take_finished(&mut tasks.0) {
        net.reply_to::<GrantCoins>(client, id, result);
    }
}
