//! The accounts' admin command on the server: `SetAccountDisabled` (permission `admin.accounts`,
//! checked by security). The store write runs off the tick; when it is done, a disabled
//! account's sessions are ended (the transport's `KickRequested`), the command is audited and
//! answered.

use bevy::prelude::*;
use bevy::tasks::{IoTaskPool, Task};

use super::{Account, AccountError, set_disabled};
use crate::datastore::DataStore;
use crate::protocol::builtin::SetAccountDisabled;
use crate::protocol::{RemoteError, RequestId};
use crate::security::{AuditEntry, AuditKind};
use crate::stages::{ServerRequests, ServerSystems};
use crate::transport::{Call, KickRequested, ServerNet};

/// What a finished write answers: the asking client, its request, who asked, the outcome.
type Done = (u64, RequestId, u64, Result<Account, AccountError>);

/// Disable/enable writes in flight.
#[derive(Resource, Default)]
struct Writes(Vec<Task<Done>>);

/// The accounts' server side: the admin command.
pub struct AccountsServerPlugin;

impl Plugin for AccountsServerPlugin {
    fn build(&self, app: &mut App) {
        crate::stages::server(app);
        app.init_resource::<Writes>()
            .add_message::<KickRequested>()
            .add_message::<AuditEntry>()
            .add_message::<crate::security::EndSessionsElsewhere>()
            .add_systems(ServerRequests, start_writes)
            .add_systems(Update, finish_writes.in_set(ServerSystems::Handle));
    }
}

fn start_writes(
    mut calls: MessageReader<Call<SetAccountDisabled>>,
    net: Res<ServerNet>,
    store: Option<Res<DataStore>>,
    mut writes: ResMut<Writes>,
) {
    for c in calls.read() {
        let actor = net.session(c.client).map_or(0, |s| s.player_id);
        let (client, id) = (c.client, c.id);
        let SetAccountDisabled { username, disabled } = c.request.clone();
        let Some(store) = store.as_ref().map(|s| s.0.clone()) else {
            continue;
        };
        writes.0.push(IoTaskPool::get().spawn(async move {
            (
                client,
                id,
                actor,
                set_disabled(store.backend(), &username, disabled),
            )
        }));
    }
}

fn finish_writes(
    mut writes: ResMut<Writes>,
    mut net: ResMut<ServerNet>,
    mut kicks: MessageWriter<KickRequested>,
    mut audit: MessageWriter<AuditEntry>,
    mut elsewhere: MessageWriter<crate::security::EndSessionsElsewhere>,
) {
    for (client, id, actor, result) in crate::process::take_finished(&mut writes.0) {
        let answer = match result {
            Ok(account) => {
                let sessions: Vec<u64> = net
                    .sessions()
                    .filter(|s| s.player_id == account.player_id)
                    .map(|s| s.client_id)
                    .collect();
                if account.disabled {
                    for &s in &sessions {
                        kicks.write(KickRequested {
                            client: s,
                            reason: "this account is disabled".into(),
                        });
                    }
                    // And wherever else on the store the player plays.
                    elsewhere.write(crate::security::EndSessionsElsewhere {
                        player: account.player_id,
                        reason: "this account is disabled".into(),
                    });
                }
                let (what, ended) = if account.disabled {
                    ("disabled", sessions.len())
                } else {
                    ("enabled", 0)
                };
                audit.write(AuditEntry {
                    player: Some(account.player_id),
                    kind: AuditKind::AdminAction,
                    details: format!("account {} {what} by player {actor}", account.username),
                });
                Ok(format!(
                    "account {} (player {}) {what}; {ended} session(s) ended",
                    account.username, account.player_id
                ))
            }
            Err(e) => Err(RemoteError::Rejected(e.to_string())),
        };
        net.reply_to::<SetAccountDisabled>(client, id, answer);
    }
}
