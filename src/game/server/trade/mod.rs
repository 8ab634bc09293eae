//! Trades between two players: on this server here; on two servers of a shared store in
//! [`across`].
//!
//! One offers ([`TradeOffer`]: what they give, what they want); the other accepts or declines;
//! both confirm ([`TradeAct`]). Then, when neither profile has a write in flight, each side's
//! goods leave its live profile (an operation through the door, kept by both) and go into its
//! outbox as a parcel for the other, and both profiles are saved **together or not at all**:
//! the escrow is the two inbox rows, committed with both debits in one transaction. The
//! parcels arrive through the inbox like gifts, at each player's next save. If the save fails,
//! the data store gives each side's goods back to it and the trade fails with nothing moved.
//! Committed trades are audited. Both players get a [`TradeUpdate`] at every step.

mod across;

use std::collections::HashMap;

use bevy::prelude::*;

use super::GameServerState;
use super::door::{Operation, ProfileDoor};
use crate::datastore::{DataStore, Delivery, MessageSent, Phase};
use crate::game::data::OfflineGift;
use crate::game::protocol::{
    TradeAct, TradeAction, TradeGoods, TradeOffer, TradeStage, TradeUpdate, TradeView,
};
use crate::game::rules::{Parcel, take_goods};
use crate::protocol::RemoteError;
use crate::security::{AuditEntry, AuditKind};
use crate::transport::{Call, SessionEnded};

/// Open trades a player may have at once.
pub const MAX_OPEN_TRADES: usize = 4;

/// An open trade.
#[derive(Debug, Clone)]
struct Open {
    view: TradeView,
    /// Tickets of the two parcels while committing, with their outcomes as they land.
    tickets: Vec<(u64, Option<Result<Delivery, String>>)>,
    /// The goods taken out (both sides), once committing.
    parcels: Option<(Parcel, Parcel)>,
    /// A trade with a player on another server (see [`across`]).
    across: Option<across::Across>,
}

impl Open {
    fn new(view: TradeView, across: Option<across::Across>) -> Self {
        Self {
            view,
            tickets: Vec::new(),
            parcels: None,
            across,
        }
    }

    /// The trade moves on to `stage`; a trade across servers counts its wait for both sides
    /// from the moment it begins committing.
    fn advance(&mut self, stage: TradeStage, now: std::time::Duration) {
        if let Some(a) = &mut self.across
            && stage == TradeStage::Committing
            && self.view.stage != TradeStage::Committing
        {
            a.since = now;
        }
        self.view.stage = stage;
    }
}

pub(super) use across::{
    Settlements, answer_trade_notes, escrow_and_settle, expire_offers, finish_settlements,
};

/// Open trades and the parcels in flight.
#[derive(Resource, Debug, Default)]
pub(super) struct Trades {
    /// The last trade id given (ids start from the wall clock in ms × 1000, so they stay unique
    /// across restarts: the audit log and the profiles name trades by them).
    last_trade: u64,
    /// The last parcel ticket given.
    next: u64,
    open: HashMap<u64, Open>,
    /// Parcel ticket → trade.
    tickets: HashMap<u64, u64>,
}

impl Trades {
    fn ticket(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// A new trade id: the wall clock in ms × 1000, plus this server's own offset (from its
    /// id) so that two servers of a shared store making a trade in the same millisecond do not
    /// share an id (the escrow and its decision are kept by trade id), then counting up.
    fn new_trade(&mut self, server_id: &str) -> u64 {
        let offset = server_id
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
            % 1000;
        let now = crate::clock::now_ms().saturating_mul(1000) + offset;
        self.last_trade = (self.last_trade + 1).max(now);
        self.last_trade
    }

    fn of(&self, player: u64) -> usize {
        self.open
            .values()
            .filter(|o| o.view.from == player || o.view.to == player)
            .count()
    }
}

/// Tells both players where a trade is.
fn tell(door: &mut ProfileDoor, view: &TradeView) {
    for p in [view.from, view.to] {
        if let Some(client) = door.profiles().profile(p).map(|l| l.client) {
            door.net().send(client, &TradeUpdate(view.clone()));
        }
    }
}

/// The parcel `goods` would make out of `player`'s live profile now (taken from a copy), or
/// why they cannot be taken.
fn parcel_of(
    door: &ProfileDoor,
    player: u64,
    goods: &TradeGoods,
    who: &str,
) -> Result<Parcel, String> {
    let live = door
        .profiles()
        .profile(player)
        .ok_or_else(|| format!("player {player} is not online here"))?;
    let mut copy = live.profile.clone();
    take_goods(&mut copy, goods, who).map_err(|e| e.to_string())
}

pub(super) fn answer_trade_offers(
    mut calls: MessageReader<Call<TradeOffer>>,
    mut trades: ResMut<Trades>,
    mut door: ProfileDoor,
    (store, time): (Res<DataStore>, Res<Time<Real>>),
) {
    for call in calls.read() {
        let Some(from) = door.net().session(call.client).map(|s| s.player_id) else {
            continue;
        };
        let offer = &call.request;
        // The player offered to plays on another server of the shared store: that server
        // checks their side.
        let elsewhere = door.profiles().profile(offer.to).is_none() && store.is_shared();
        let checked = if offer.to == from {
            Err("you cannot trade with yourself".to_string())
        } else if trades.of(from) >= MAX_OPEN_TRADES || trades.of(offer.to) >= MAX_OPEN_TRADES {
            Err(format!(
                "at most {MAX_OPEN_TRADES} open trades per player; finish one first"
            ))
        } else if elsewhere {
            parcel_of(&door, from, &offer.give, "you").map(|_| ())
        } else {
            parcel_of(&door, from, &offer.give, "you")
                .and_then(|_| parcel_of(&door, offer.to, &offer.want, "they"))
                .map(|_| ())
        };
        let answer = match checked {
            Err(why) => Err(RemoteError::Rejected(why)),
            Ok(()) => {
                let view = TradeView {
                    trade: trades.new_trade(&door.profiles().server_id),
                    from,
                    to: offer.to,
                    give: offer.give.clone(),
                    want: offer.want.clone(),
                    stage: TradeStage::Offered,
                };
                if elsewhere {
                    across::offer(&mut trades, &store, &door, &view, time.elapsed());
                } else {
                    info!(trade = view.trade, from, to = offer.to, "trade offered");
                    trades
                        .open
                        .insert(view.trade, Open::new(view.clone(), None));
                }
                tell(&mut door, &view);
                Ok(view)
            }
        };
        door.net().reply(call, answer);
    }
}

/// The next stage of `view` when `player` does `action`, or why not.
fn act(view: &TradeView, player: u64, action: TradeAction) -> Result<TradeStage, String> {
    let is_to = player == view.to;
    if player != view.from && !is_to {
        return Err(format!("trade {} is not yours", view.trade));
    }
    match (action, &view.stage) {
        (TradeAction::Accept, TradeStage::Offered) if is_to => Ok(TradeStage::Accepted {
            from_confirmed: false,
            to_confirmed: false,
        }),
        (TradeAction::Decline, TradeStage::Offered) if is_to => Ok(TradeStage::Declined),
        (
            TradeAction::Confirm,
            TradeStage::Accepted {
                from_confirmed,
                to_confirmed,
            },
        ) => {
            let (f, t) = (*from_confirmed || !is_to, *to_confirmed || is_to);
            Ok(if f && t {
                TradeStage::Committing
            } else {
                TradeStage::Accepted {
                    from_confirmed: f,
                    to_confirmed: t,
                }
            })
        }
        (TradeAction::Cancel, TradeStage::Offered | TradeStage::Accepted { .. }) => {
            Ok(TradeStage::Cancelled {
                reason: format!("withdrawn by player {player}"),
            })
        }
        (action, stage) => Err(format!(
            "trade {} is {stage:?}: you cannot {action:?} it now",
            view.trade
        )),
    }
}

pub(super) fn answer_trade_acts(
    mut calls: MessageReader<Call<TradeAct>>,
    mut trades: ResMut<Trades>,
    mut door: ProfileDoor,
    (store, time): (Res<DataStore>, Res<Time<Real>>),
) {
    for call in calls.read() {
        let Some(player) = door.net().session(call.client).map(|s| s.player_id) else {
            continue;
        };
        let TradeAct { trade, action } = call.request;
        let follows = trades
            .open
            .get(&trade)
            .and_then(|o| o.across.as_ref())
            .is_some_and(|a| !a.leads());
        if follows {
            let answer =
                across::act_as_follower(&mut trades, &store, &mut door, (player, trade, action));
            door.net()
                .reply(call, answer.map_err(RemoteError::Rejected));
            continue;
        }
        let next = match trades.open.get(&trade) {
            None => Err(format!("there is no open trade {trade}")),
            Some(open) => act(&open.view, player, action).map(|stage| (open.view.clone(), stage)),
        };
        let answer = match next {
            Err(why) => Err(RemoteError::Rejected(why)),
            Ok((mut view, stage)) => {
                view.stage = stage;
                info!(trade, player, "trade: {:?}", view.stage);
                if let Some(open) = trades.open.get_mut(&trade) {
                    open.advance(view.stage.clone(), time.elapsed());
                    across::share(&store, &door, open);
                }
                if !view.stage.is_open() {
                    trades.open.remove(&trade);
                }
                tell(&mut door, &view);
                Ok(view)
            }
        };
        door.net().reply(call, answer);
    }
}

/// Both confirmed: when neither profile has a write in flight, the goods leave both live
/// profiles into their outboxes and both are saved together.
pub(super) fn commit_trades(
    mut trades: ResMut<Trades>,
    store: Res<DataStore>,
    game: Res<GameServerState>,
    mut door: ProfileDoor,
) {
    let due: Vec<u64> = trades
        .open
        .values()
        .filter(|o| o.view.stage == TradeStage::Committing && o.parcels.is_none())
        .filter(|o| o.across.is_none())
        .map(|o| o.view.trade)
        .collect();
    for trade in due {
        let Some(view) = trades.open.get(&trade).map(|o| o.view.clone()) else {
            continue;
        };
        let (a, b) = (view.from, view.to);
        let phases = [a, b].map(|p| door.profiles().profile(p).map(|l| l.phase()));
        if phases
            .iter()
            .any(|p| matches!(p, Some(Phase::Saving | Phase::Held)))
        {
            continue; // a write in flight: next frame
        }
        let parcels = if phases.iter().any(Option::is_none) {
            Err("a player left before the trade was saved".to_string())
        } else {
            parcel_of(&door, a, &view.give, &format!("player {a}")).and_then(|pa| {
                parcel_of(&door, b, &view.want, &format!("player {b}")).map(|pb| (pa, pb))
            })
        };
        let (pa, pb) = match parcels {
            Ok(p) => p,
            Err(reason) => {
                fail(&mut trades, &mut door, trade, reason);
                continue;
            }
        };
        // The same goods out of the live profiles, each side's record keeping the parcel it
        // sent (a reversal reads it back).
        for (me, other, goods, sent) in [(a, b, &view.give, &pa), (b, a, &view.want, &pb)] {
            take_out(
                &mut door,
                (me, other, trade),
                (goods, sent),
                game.last_op(me),
            );
        }
        let (ta, tb) = (trades.ticket(), trades.ticket());
        let to_b = OfflineGift::Parcel {
            from: a,
            trade,
            parcel: pa.clone(),
        };
        let to_a = OfflineGift::Parcel {
            from: b,
            trade,
            parcel: pb.clone(),
        };
        door.send(a, b, ta, to_b);
        door.send(b, a, tb, to_a);
        door.save_together(&store, &[a, b]);
        trades.tickets.insert(ta, trade);
        trades.tickets.insert(tb, trade);
        if let Some(open) = trades.open.get_mut(&trade) {
            open.tickets = vec![(ta, None), (tb, None)];
            open.parcels = Some((pa, pb));
        }
    }
}

/// Takes `goods` out of `me`'s live profile for `trade` with `other`, as an operation whose
/// record keeps the parcel `sent` (a reversal reads it back).
fn take_out(
    door: &mut ProfileDoor,
    (me, other, trade): (u64, u64, u64),
    (goods, sent): (&TradeGoods, &Parcel),
    last_op: u64,
) {
    let op = Operation {
        player: me,
        actor: me,
        kind: "trade",
        payload: serde_json::json!({ "trade": trade, "with": other, "sent": sent }),
        last_op,
        push: false,
    };
    door.change(op, |p| take_goods(p, goods, "").map(|_| 0));
}

/// Keeps a `trade_failed` record in `player`'s profile (a reversal refuses such a trade).
fn record_failure(door: &mut ProfileDoor, trade: u64, player: u64, last_op: u64) {
    let op = Operation {
        player,
        actor: player,
        kind: "trade_failed",
        payload: serde_json::json!({ "trade": trade }),
        last_op,
        push: true,
    };
    door.change(op, |_| Ok::<i64, std::convert::Infallible>(0));
}

fn fail(trades: &mut Trades, door: &mut ProfileDoor, trade: u64, reason: String) {
    if let Some(mut open) = trades.open.remove(&trade) {
        warn!(trade, "trade failed: {reason}");
        open.view.stage = TradeStage::Failed { reason };
        tell(door, &open.view);
    }
}

/// Both parcels committed (with both debits, together): done and audited. Or the save failed
/// (the data store gave each side its goods back): failed.
pub(super) fn finish_trades(
    mut sent: MessageReader<MessageSent>,
    mut trades: ResMut<Trades>,
    (game, store): (Res<GameServerState>, Res<DataStore>),
    mut door: ProfileDoor,
    mut audit: MessageWriter<AuditEntry>,
) {
    for s in sent.read() {
        let Some(trade) = trades.tickets.remove(&s.ticket) else {
            continue;
        };
        if trades.open.get(&trade).is_some_and(|o| o.across.is_some()) {
            let landed = (trade, s.ticket);
            across::side_landed(&mut trades, &store, &door, landed, &s.result);
            continue;
        }
        let Some(open) = trades.open.get_mut(&trade) else {
            continue;
        };
        if let Some(slot) = open.tickets.iter_mut().find(|(t, _)| *t == s.ticket) {
            slot.1 = Some(s.result.clone());
        }
        if open.tickets.iter().any(|(_, r)| r.is_none()) {
            continue;
        }
        let Some(mut open) = trades.open.remove(&trade) else {
            continue;
        };
        let failure = open.tickets.iter().find_map(|(_, r)| match r {
            Some(Err(why)) => Some(why.clone()),
            _ => None,
        });
        let (a, b) = (open.view.from, open.view.to);
        match failure {
            None => {
                open.view.stage = TradeStage::Done;
                info!(trade, a, b, "trade committed");
                let (pa, pb) = open.parcels.clone().unwrap_or_default();
                audit.write(AuditEntry {
                    player: Some(a),
                    kind: AuditKind::Trade,
                    details: serde_json::json!({
                        "trade": trade, "from": a, "to": b, "from_gave": pa, "to_gave": pb,
                    })
                    .to_string(),
                });
            }
            Some(reason) => {
                warn!(trade, "trade not saved: {reason}");
                for p in [a, b] {
                    record_failure(&mut door, trade, p, game.last_op(p));
                }
                open.view.stage = TradeStage::Failed {
                    reason: format!("nothing moved: {reason}"),
                };
            }
        }
        tell(&mut door, &open.view);
    }
}

/// A player left: their trades not yet committing end.
pub(super) fn end_trades_of_leavers(
    mut left: MessageReader<SessionEnded>,
    mut trades: ResMut<Trades>,
    mut door: ProfileDoor,
    store: Res<DataStore>,
) {
    for l in left.read() {
        let gone: Vec<u64> = trades
            .open
            .values()
            .filter(|o| o.view.from == l.player_id || o.view.to == l.player_id)
            .filter(|o| o.view.stage != TradeStage::Committing)
            .map(|o| o.view.trade)
            .collect();
        for trade in gone {
            if let Some(mut open) = trades.open.remove(&trade) {
                open.view.stage = TradeStage::Cancelled {
                    reason: format!("player {} left", l.player_id),
                };
                across::ended_here(&store, &mut door, &open, l.player_id);
                tell(&mut door, &open.view);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two servers of one store making a trade in the same millisecond get different ids; one
    /// server's ids only grow.
    #[test]
    fn trade_ids_differ_between_servers_and_grow() {
        let (mut a, mut b) = (Trades::default(), Trades::default());
        let (ta, tb) = (
            a.new_trade("server-7748-388018e5"),
            b.new_trade("server-7750-9c01d2aa"),
        );
        assert_ne!(ta % 1000, tb % 1000, "each server its own offset");
        assert_ne!(ta, tb);
        let next = a.new_trade("server-7748-388018e5");
        assert!(next > ta);
    }
}
