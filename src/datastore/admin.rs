//! The admin commands about conflicts (permission `admin.reconcile`, checked by security):
//! `ListConflicts` lists what waits for a person; `ResolveConflict` keeps the stored side at
//! once, or writes the server's side over it (a durable write, off the tick).

use bevy::prelude::*;
use bevy::tasks::{IoTaskPool, Task};

use super::PlayerData;
use super::{DataStore, DataStoreState, Profile};
use crate::protocol::builtin::{ListConflicts, ResolveConflict};
use crate::protocol::{RemoteError, RequestId};
use crate::reconcile::{PendingConflict, Reconciler};
use crate::security::{AuditEntry, AuditKind};
use crate::transport::{Call, ServerNet};

/// The answer to one admin request, and what to do after.
type Answer<D> = (u64, RequestId, Result<String, RemoteError>, After<D>);

/// State to update once a write has finished.
enum After<D: PlayerData> {
    /// The conflict was settled by writing `profile` as `version`.
    Settled {
        player: u64,
        version: u64,
        profile: Box<Profile<D>>,
    },
    /// Settling failed: the conflict goes back into the queue.
    Requeue(Box<PendingConflict>),
}

/// Settlements in flight.
#[derive(Resource)]
pub(super) struct SettleTasks<D: PlayerData>(Vec<Task<Answer<D>>>);

impl<D: PlayerData> Default for SettleTasks<D> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

fn rejected(why: impl Into<String>) -> Result<String, RemoteError> {
    Err(RemoteError::Rejected(why.into()))
}

/// Carries out admitted `ListConflicts` and `ResolveConflict` commands.
#[allow(clippy::too_many_arguments)]
pub(super) fn answer_conflict_commands<D: PlayerData>(
    mut lists: MessageReader<Call<ListConflicts>>,
    mut resolves: MessageReader<Call<ResolveConflict>>,
    mut net: ResMut<ServerNet>,
    store: Res<DataStore>,
    mut profiles: ResMut<DataStoreState<D>>,
    mut reconciler: ResMut<Reconciler>,
    mut tasks: ResMut<SettleTasks<D>>,
    mut audit: MessageWriter<AuditEntry>,
) {
    for c in lists.read() {
        net.reply(c, Ok(reconciler.report()));
    }
    for c in resolves.read() {
        let who = format!(
            "player {}",
            net.session(c.client).map_or(0, |s| s.player_id)
        );
        let ResolveConflict { id, take_ours } = c.request;
        match settle(
            &mut reconciler,
            &mut profiles,
            &store,
            (id, take_ours),
            (c.client, c.id, &who),
            &mut audit,
        ) {
            Settling::Now(answer) => net.reply(c, answer),
            Settling::Later(task) => tasks.0.push(task),
        }
    }
}

enum Settling<D: PlayerData> {
    Now(Result<String, RemoteError>),
    Later(Task<Answer<D>>),
}

/// Settles a waiting conflict: the stored side at once; the server's side by a durable write.
fn settle<D: PlayerData>(
    rc: &mut Reconciler,
    profiles: &mut DataStoreState<D>,
    store: &DataStore,
    (conflict, take_ours): (u64, bool),
    (client, id, who): (u64, RequestId, &str),
    audit: &mut MessageWriter<AuditEntry>,
) -> Settling<D> {
    let Some(c) = rc.take(conflict) else {
        return Settling::Now(rejected(format!("no conflict {conflict} is waiting")));
    };
    let player = c.player;
    let side = if take_ours {
        "the server's"
    } else {
        "the stored"
    };
    audit.write(AuditEntry {
        player: Some(player),
        kind: AuditKind::AdminAction,
        details: format!("conflict {conflict} settled by {who}: {side} side kept"),
    });
    if !take_ours {
        let theirs = match serde_json::from_value::<Profile<D>>(c.theirs.clone()) {
            Ok(p) => p,
            Err(e) => {
                rc.queue(c);
                return Settling::Now(rejected(format!(
                    "conflict {conflict}: the stored side is not a profile: {e}"
                )));
            }
        };
        rc.resolved();
        profiles.settled(player, c.theirs_version, theirs, true);
        return Settling::Now(Ok(format!(
            "conflict {conflict}: player {player} keeps the stored version {}",
            c.theirs_version
        )));
    }
    // The server's side as it is now (a live profile may have moved on while it waited).
    let profile = match profiles.profile(player) {
        Some(l) => l.profile.clone(),
        None => match serde_json::from_value::<Profile<D>>(c.ours.clone()) {
            Ok(p) => p,
            Err(e) => {
                rc.queue(c);
                return Settling::Now(rejected(format!(
                    "conflict {conflict}: the server's side is not a profile: {e}"
                )));
            }
        },
    };
    let store = store.0.clone();
    Settling::Later(IoTaskPool::get().spawn(async move {
        match store.write_over(&profile, c.theirs_version, crate::clock::now_ms()) {
            Ok(version) => (
                client,
                id,
                Ok(format!(
                    "conflict {conflict}: player {player}'s server-side profile written as version {version}"
                )),
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
    }))
}

/// Answers settlements whose write finished.
pub(super) fn finish_settlements<D: PlayerData>(
    mut tasks: ResMut<SettleTasks<D>>,
    mut net: ResMut<ServerNet>,
    mut profiles: ResMut<DataStoreState<D>>,
    mut reconciler: ResMut<Reconciler>,
) {
    for (client, id, result, after) in crate::process::take_finished(&mut tasks.0) {
        match after {
            After::Settled {
                player,
                version,
                profile,
            } => {
                reconciler.resolved();
                profiles.settled(player, version, *profile, false);
            }
            After::Requeue(c) => {
                reconciler.queue(*c);
            }
        }
        net.reply_to::<ResolveConflict>(client, id, result);
    }
}
