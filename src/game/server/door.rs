//! The one door through which the game changes a player's live profile with an operation (a
//! purchase, a sale, a feeding, a gift sent or received, an admin's grant): the change is all or
//! nothing; the operation goes into the reconciliation log and is kept with the profile; coins
//! the fish did not earn are told to the income watch; and the player's client gets its new
//! state. No caller can do one without the others.

use bevy::ecs::system::SystemParam;
use bevy::prelude::*;

use super::income::IncomeWatch;
use crate::datastore::OpRecord;
use crate::game::data::{DataStoreState, Profile};
use crate::game::protocol::{PlayerState, StateUpdate};
use crate::game::rules as predict;
use crate::reconcile::Reconciler;
use crate::transport::ServerNet;

/// One operation on a profile.
pub(super) struct Operation {
    /// Whose profile.
    pub player: u64,
    /// Who did it (a player id: the player, a gift's sender, an admin).
    pub actor: u64,
    /// What kind (`purchase`, `gift_received`, `admin_grant`, ...).
    pub kind: &'static str,
    /// Its details.
    pub payload: serde_json::Value,
    /// The player's last acknowledged operation id (for the state).
    pub last_op: u64,
    /// Push the new state to the player's client (the requester gets it in its answer instead).
    pub push: bool,
}

/// Live profiles, the operation log, the income watch and the network, reached together.
#[derive(SystemParam)]
pub(super) struct ProfileDoor<'w> {
    profiles: ResMut<'w, DataStoreState>,
    reconciler: ResMut<'w, Reconciler>,
    income: ResMut<'w, IncomeWatch>,
    net: ResMut<'w, ServerNet>,
}

impl ProfileDoor<'_> {
    /// The profiles, to read.
    pub fn profiles(&self) -> &DataStoreState {
        &self.profiles
    }

    /// Changes a live profile outside any operation (what time does: the clock it was seen at,
    /// hunger), as the economy's step does.
    pub fn simulate<R>(&mut self, player: u64, step: impl FnOnce(&mut Profile) -> R) -> Option<R> {
        self.profiles.simulate(player, step)
    }

    /// Sends `message` from `from`'s live profile to `to`'s inbox with `from`'s next save (see
    /// [`crate::datastore::DataStoreState::send`]); `false` when `from` is not live here.
    pub fn send(
        &mut self,
        from: u64,
        to: u64,
        ticket: u64,
        message: crate::game::data::OfflineGift,
    ) -> bool {
        self.profiles.send(from, to, (ticket, message))
    }

    /// Sends `message` as [`send`](Self::send) does, held in escrow for `trade` (see
    /// [`crate::datastore::DataStoreState::send_held`]).
    pub fn send_held(
        &mut self,
        from: u64,
        to: u64,
        (ticket, trade): (u64, u64),
        message: crate::game::data::OfflineGift,
    ) -> bool {
        self.profiles.send_held(from, to, (ticket, message), trade)
    }

    /// A message waits in the store for `player` (a trade settled): delivered at once here,
    /// or on the server they play on.
    pub fn message_waits(&mut self, store: &crate::datastore::DataStore, player: u64) {
        self.profiles.message_waits(store, player);
    }

    /// Saves `players` together or not at all, at once, with their outboxes (see
    /// [`crate::datastore::DataStoreState::save_together`]).
    pub fn save_together(&mut self, store: &crate::datastore::DataStore, players: &[u64]) -> bool {
        self.profiles.save_together(store, players)
    }

    /// The network, to answer requests.
    pub fn net(&mut self) -> &mut ServerNet {
        &mut self.net
    }

    /// Runs `change` (which returns the coins it credited that the fish did not earn) on the
    /// player's live profile; on success the operation is logged and kept, the credit told to
    /// the income watch, and the new state returned (and pushed if `op.push`). `None` when the
    /// player has no live profile here.
    pub fn change<E>(
        &mut self,
        op: Operation,
        change: impl FnOnce(&mut Profile) -> Result<i64, E>,
    ) -> Option<Result<PlayerState, E>> {
        let at_ms = crate::clock::now_ms();
        let reconciler = &mut self.reconciler;
        let (kind, payload, actor) = (op.kind, op.payload, op.actor);
        let outcome = self.profiles.apply_op(op.player, change, |profile, _| {
            OpRecord::logged(reconciler, (profile.player_id, actor), kind, payload, at_ms)
        })?;
        let credited = match outcome {
            Ok(credited) => credited,
            Err(e) => return Some(Err(e)),
        };
        if credited > 0 {
            self.income.credit(op.player, credited);
        }
        // Present: `apply_op` has just changed it.
        let live = self.profiles.profile(op.player)?;
        let state = predict::state_of(&live.profile, op.last_op);
        if op.push {
            self.net.send(live.client, &StateUpdate(state.clone()));
        }
        Some(Ok(state))
    }
}
