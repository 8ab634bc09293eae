//! Trades between two players on two servers of one shared store.
//!
//! The offerer's server **leads**: it keeps the trade's stage, applies both players' acts in
//! one order and tells the other server (the **follower**, which holds the other player) every
//! change, over the store's channel ([`GameNote`]). An offer to a player not on this server is
//! sent to every server; the one that holds them checks what they are asked for, shows them
//! the offer and answers [`TradeNote::Seen`] (or [`TradeNote::Refused`]). Their acts go to the
//! leader as [`TradeNote::Act`]s.
//!
//! When both have confirmed, each server takes its own player's goods out of the live profile
//! and saves the profile with them **held in escrow** for the trade, in one transaction (the
//! follower tells the leader with [`TradeNote::Escrowed`]). Then one store transaction settles
//! the trade ([`crate::datastore::Datastore::settle_trade`]): both sides held, both move to the
//! other's inbox; called off, whatever is held goes back to its sender. The decision is written
//! once, so the two servers can never decide differently:
//! - the leader settles when both sides are held, and calls the trade off when a side failed or
//!   `game.tradeCommitWait` passed;
//! - the follower calls it off after three times that without a word from the leader (the
//!   leader died): the call-off gives back both sides;
//! - a side saved after the call-off goes straight back to its sender;
//! - both servers gone: the store-wide jobs call it off after
//!   [`crate::datastore::STALE_ESCROW`].
//!
//! Each side's profile keeps its `trade` operation; the leader audits a settled trade.

use std::time::Duration;

use bevy::prelude::*;
use bevy::tasks::{IoTaskPool, Task};
use serde::{Deserialize, Serialize};

use super::{Open, Trades, act, fail, parcel_of, record_failure, take_out, tell};
use crate::datastore::{DataStore, Delivery, GameNote, Phase, Settlement, send_game_note};
use crate::game::data::OfflineGift;
use crate::game::protocol::{TradeAction, TradeStage, TradeView};
use crate::game::server::GameServerState;
use crate::game::server::door::ProfileDoor;
use crate::security::{AuditEntry, AuditKind};

/// How long an offer waits for the server that holds the other player to answer.
pub const OFFER_WAIT: Duration = Duration::from_secs(5);
/// How long the leader waits for both sides to be held before it calls the trade off, unless
/// `game.tradeCommitWait` says otherwise; the follower waits [`FOLLOW_FACTOR`] times as long
/// for the leader's decision.
pub const COMMIT_WAIT: Duration = Duration::from_secs(20);
/// The follower's wait, in leader's waits.
pub const FOLLOW_FACTOR: u32 = 3;
/// Between two tries of a settlement that failed (the store unreachable).
const SETTLE_RETRY: Duration = Duration::from_secs(1);

/// What one server's game tells another's about a trade between their players.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "trade_note", rename_all = "snake_case")]
pub(super) enum TradeNote {
    /// Leader → every server: an offer to a player who is not on the leader.
    Offer { view: TradeView },
    /// Follower → leader: the player offered to plays here and was shown the offer.
    Seen { trade: u64 },
    /// Follower → leader: the player offered to plays here but cannot give what is asked.
    Refused { trade: u64, reason: String },
    /// Follower → leader: the player offered to acts.
    Act {
        trade: u64,
        player: u64,
        action: TradeAction,
    },
    /// Leader → follower: where the trade is now.
    View { view: TradeView },
    /// Follower → leader: the follower's side is held in escrow, or why not.
    Escrowed {
        trade: u64,
        result: Result<(), String>,
    },
}

/// This server's part in a trade across servers.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Role {
    /// The offerer plays here; `peer` holds the other player (once it said so).
    Leads { peer: Option<String> },
    /// The other player plays here; `leader` holds the offerer.
    Follows { leader: String },
}

/// One side's goods on their way into escrow.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Side {
    /// Not started.
    Waiting,
    /// In the save with this ticket.
    Saving(u64),
    /// Held in escrow.
    Held,
    /// Not held (nothing of it moved), and why.
    Failed(String),
}

/// The part of an [`Open`] trade that only trades across servers have.
#[derive(Debug, Clone)]
pub(super) struct Across {
    pub role: Role,
    /// When the trade was offered, and when it began committing.
    pub since: Duration,
    /// This server's side.
    pub mine: Side,
    /// The follower's side, as it said (the leader's view).
    pub theirs: Option<Result<(), String>>,
    /// A settlement is in flight, or may be tried again from this time.
    pub settling: bool,
    pub next_try: Duration,
}

impl Across {
    fn new(role: Role, now: Duration) -> Self {
        Self {
            role,
            since: now,
            mine: Side::Waiting,
            theirs: None,
            settling: false,
            next_try: Duration::ZERO,
        }
    }

    pub fn leads(&self) -> bool {
        matches!(self.role, Role::Leads { .. })
    }

    /// The server to tell about the trade: the peer or the leader (`None`: every server, while
    /// the leader does not know the peer yet).
    pub fn other_server(&self) -> Option<&str> {
        match &self.role {
            Role::Leads { peer } => peer.as_deref(),
            Role::Follows { leader } => Some(leader),
        }
    }
}

/// This server's player in `view`, the other player, and what this server's player gives.
fn my_side(view: &TradeView, leads: bool) -> (u64, u64, &crate::game::protocol::TradeGoods) {
    if leads {
        (view.from, view.to, &view.give)
    } else {
        (view.to, view.from, &view.want)
    }
}

fn note(store: &DataStore, door: &ProfileDoor, to: Option<&str>, n: &TradeNote) {
    match serde_json::to_string(n) {
        Ok(body) => {
            let from = door.profiles().server_id.clone();
            if !send_game_note(store, &from, to, body) {
                warn!("a trade note could not be sent: the store has no channel");
            }
        }
        Err(e) => warn!("a trade note: {e}"),
    }
}

/// Starts an offer to a player on another server: kept here (this server leads) and sent to
/// every server.
pub(super) fn offer(
    trades: &mut Trades,
    store: &DataStore,
    door: &ProfileDoor,
    view: &TradeView,
    now: Duration,
) {
    info!(
        trade = view.trade,
        from = view.from,
        to = view.to,
        "trade offered to a player on another server"
    );
    let across = Across::new(Role::Leads { peer: None }, now);
    trades
        .open
        .insert(view.trade, Open::new(view.clone(), Some(across)));
    note(store, door, None, &TradeNote::Offer { view: view.clone() });
}

/// Tells the other server of `trade` where it is now (the leader, after any change).
pub(super) fn share(store: &DataStore, door: &ProfileDoor, open: &Open) {
    if let Some(across) = &open.across
        && across.leads()
    {
        let view = TradeNote::View {
            view: open.view.clone(),
        };
        note(store, door, across.other_server(), &view);
    }
}

/// The follower: `player` acts on `trade`, which another server leads. Checked here first (so
/// the player hears at once what cannot be), then sent to the leader, whose answer comes back
/// as the trade's next view. The answer is what the stage becomes if the leader agrees.
pub(super) fn act_as_follower(
    trades: &mut Trades,
    store: &DataStore,
    door: &mut ProfileDoor,
    (player, trade, action): (u64, u64, TradeAction),
) -> Result<TradeView, String> {
    let open = trades
        .open
        .get(&trade)
        .ok_or_else(|| format!("there is no open trade {trade}"))?;
    let leader = match open.across.as_ref().map(|a| &a.role) {
        Some(Role::Follows { leader }) => leader.clone(),
        _ => return Err(format!("trade {trade} is not led by another server")),
    };
    let mut view = open.view.clone();
    view.stage = act(&view, player, action)?;
    if matches!(action, TradeAction::Accept | TradeAction::Confirm) {
        parcel_of(door, player, &view.want, "you")?;
    }
    note(
        store,
        door,
        Some(&leader),
        &TradeNote::Act {
            trade,
            player,
            action,
        },
    );
    if !view.stage.is_open() {
        // Declined or withdrawn before anything moved: over here at once.
        trades.open.remove(&trade);
        tell(door, &view);
    }
    Ok(view)
}

/// A trade across servers that ends here before anything moved (a player left): the other
/// server is told.
pub(super) fn ended_here(store: &DataStore, door: &mut ProfileDoor, open: &Open, player: u64) {
    let Some(across) = &open.across else {
        return;
    };
    match &across.role {
        Role::Leads { .. } => share(store, door, open),
        Role::Follows { leader } => note(
            store,
            door,
            Some(leader),
            &TradeNote::Act {
                trade: open.view.trade,
                player,
                action: TradeAction::Cancel,
            },
        ),
    }
}

/// Reads the other servers' trade notes.
pub(in crate::game::server) fn answer_trade_notes(
    mut notes: MessageReader<GameNote>,
    mut trades: ResMut<Trades>,
    store: Res<DataStore>,
    mut door: ProfileDoor,
    (game, time): (Res<GameServerState>, Res<Time<Real>>),
) {
    let now = time.elapsed();
    for GameNote { from, body } in notes.read() {
        let n = match serde_json::from_str::<TradeNote>(body) {
            Ok(n) => n,
            Err(e) => {
                debug!("a game note that is not a trade's ({e})");
                continue;
            }
        };
        match n {
            TradeNote::Offer { view } => offered(&mut trades, &store, &mut door, view, from, now),
            TradeNote::Seen { trade } => {
                if let Some(Some(a)) = trades.open.get_mut(&trade).map(|o| o.across.as_mut())
                    && let Role::Leads { peer } = &mut a.role
                    && peer.is_none()
                {
                    *peer = Some(from.clone());
                }
            }
            TradeNote::Refused { trade, reason } => {
                if from_peer(&trades, trade, from)
                    && let Some(mut open) = trades.open.remove(&trade)
                {
                    open.view.stage = TradeStage::Failed { reason };
                    tell(&mut door, &open.view);
                }
            }
            TradeNote::Act {
                trade,
                player,
                action,
            } => {
                if !from_peer(&trades, trade, from) {
                    continue;
                }
                let Some(open) = trades.open.get_mut(&trade) else {
                    continue;
                };
                if player != open.view.to {
                    warn!(
                        trade,
                        player, "server {from} acts for a player not in the trade"
                    );
                    continue;
                }
                match act(&open.view, player, action) {
                    Ok(stage) => {
                        info!(trade, player, "trade (across servers): {stage:?}");
                        open.advance(stage, now);
                    }
                    // Crossed with a change here: the follower gets the stage as it is.
                    Err(why) => debug!(trade, "an act from server {from} came too late: {why}"),
                }
                let open = open.clone();
                share(&store, &door, &open);
                tell(&mut door, &open.view);
                if !open.view.stage.is_open() {
                    trades.open.remove(&trade);
                }
            }
            TradeNote::View { view } => {
                let last_op = game.last_op(view.to);
                followed(&mut trades, &mut door, view, (from, last_op), now);
            }
            TradeNote::Escrowed { trade, result } => {
                if from_peer(&trades, trade, from)
                    && let Some(Some(a)) = trades.open.get_mut(&trade).map(|o| o.across.as_mut())
                {
                    a.theirs = Some(result);
                }
            }
        }
    }
}

/// This server leads `trade` and `from` is its peer (or the peer is not known yet).
fn from_peer(trades: &Trades, trade: u64, from: &str) -> bool {
    match trades.open.get(&trade).and_then(|o| o.across.as_ref()) {
        Some(Across {
            role: Role::Leads { peer },
            ..
        }) => peer.as_deref().is_none_or(|p| p == from),
        _ => false,
    }
}

/// An offer from server `leader`: shown to the player offered to, if they play here.
fn offered(
    trades: &mut Trades,
    store: &DataStore,
    door: &mut ProfileDoor,
    view: TradeView,
    leader: &str,
    now: Duration,
) {
    let trade = view.trade;
    if door.profiles().profile(view.to).is_none() || trades.open.contains_key(&trade) {
        return;
    }
    let checked = if trades.of(view.to) >= super::MAX_OPEN_TRADES {
        Err(format!(
            "player {} has {} open trades already",
            view.to,
            super::MAX_OPEN_TRADES
        ))
    } else {
        parcel_of(door, view.to, &view.want, "they").map(|_| ())
    };
    let answer = match checked {
        Err(reason) => TradeNote::Refused { trade, reason },
        Ok(()) => {
            info!(
                trade,
                from = view.from,
                to = view.to,
                "trade offered from server {leader}"
            );
            tell(door, &view);
            let role = Role::Follows {
                leader: leader.to_string(),
            };
            trades
                .open
                .insert(trade, Open::new(view, Some(Across::new(role, now))));
            TradeNote::Seen { trade }
        }
    };
    note(store, door, Some(leader), &answer);
}

/// The leader's view of a trade this server follows.
fn followed(
    trades: &mut Trades,
    door: &mut ProfileDoor,
    view: TradeView,
    (from, last_op): (&str, u64),
    now: Duration,
) {
    let trade = view.trade;
    let Some(open) = trades.open.get_mut(&trade) else {
        return;
    };
    let Some(across) = &mut open.across else {
        return;
    };
    if across.role
        != (Role::Follows {
            leader: from.to_string(),
        })
    {
        return;
    }
    // Notes may arrive out of order: a stage never goes back.
    if progress(&view.stage) < progress(&open.view.stage) {
        return;
    }
    let settled = matches!(view.stage, TradeStage::Done | TradeStage::Failed { .. });
    if matches!(view.stage, TradeStage::Failed { .. }) && across.mine != Side::Waiting {
        record_failure(door, trade, view.to, last_op);
    }
    open.advance(view.stage.clone(), now);
    tell(door, &view);
    if !view.stage.is_open() {
        if settled {
            info!(trade, "trade across servers: {:?}", view.stage);
        }
        trades.open.remove(&trade);
    }
}

/// How far a trade has come (stages only move forward).
fn progress(stage: &TradeStage) -> u8 {
    match stage {
        TradeStage::Offered => 0,
        TradeStage::Accepted {
            from_confirmed,
            to_confirmed,
        } => 1 + u8::from(*from_confirmed) + u8::from(*to_confirmed),
        TradeStage::Committing => 4,
        _ => 5,
    }
}

/// A settlement finished: the trade, how, and the players whose inboxes got goods.
type Settled = (u64, Result<(Settlement, Vec<u64>), String>);

/// Settlements in flight.
#[derive(Resource, Default)]
pub(in crate::game::server) struct Settlements(Vec<Task<Settled>>);

/// Each frame, for each trade across servers that both confirmed: this server's side goes into
/// escrow (when its player's profile has no write in flight); the leader settles or calls off;
/// the follower calls off when the leader is silent too long.
pub(in crate::game::server) fn escrow_and_settle(
    mut trades: ResMut<Trades>,
    store: Res<DataStore>,
    game: Res<GameServerState>,
    mut door: ProfileDoor,
    mut settlements: ResMut<Settlements>,
    (time, config): (Res<Time<Real>>, Res<crate::config::Config>),
) {
    let due: Vec<u64> = trades
        .open
        .values()
        .filter(|o| o.view.stage == TradeStage::Committing && o.across.is_some())
        .map(|o| o.view.trade)
        .collect();
    if due.is_empty() {
        return;
    }
    let now = time.elapsed();
    let commit_wait = config
        .get::<Duration>("game.tradeCommitWait")
        .unwrap_or(COMMIT_WAIT);
    for trade in due {
        let Some(open) = trades.open.get(&trade).cloned() else {
            continue;
        };
        let Some(across) = open.across else {
            continue;
        };
        let leads = across.leads();
        let (me, other, goods) = my_side(&open.view, leads);
        if across.mine == Side::Waiting {
            let phase = door.profiles().profile(me).map(|l| l.phase());
            if matches!(phase, Some(Phase::Saving | Phase::Held)) {
                continue; // a write in flight: next frame
            }
            let mine = match parcel_of(&door, me, goods, &format!("player {me}")) {
                Err(why) => Side::Failed(why),
                Ok(parcel) => {
                    let last_op = game.last_op(me);
                    take_out(&mut door, (me, other, trade), (goods, &parcel), last_op);
                    let ticket = trades.ticket();
                    let gift = OfflineGift::Parcel {
                        from: me,
                        trade,
                        parcel,
                    };
                    door.send_held(me, other, (ticket, trade), gift);
                    door.save_together(&store, &[me]);
                    trades.tickets.insert(ticket, trade);
                    Side::Saving(ticket)
                }
            };
            side_is(&mut trades, (&store, &door), trade, mine);
            continue;
        }
        if across.settling || now < across.next_try {
            continue;
        }
        let saving = matches!(across.mine, Side::Saving(_));
        let waited = now.saturating_sub(across.since);
        let call_off = if leads {
            let failed = matches!(across.mine, Side::Failed(_))
                || matches!(across.theirs, Some(Err(_)))
                || waited >= commit_wait;
            if !saving && failed {
                Some(true)
            } else if across.mine == Side::Held && across.theirs == Some(Ok(())) {
                Some(false)
            } else {
                None
            }
        } else {
            (!saving && waited >= commit_wait * FOLLOW_FACTOR).then_some(true)
        };
        let Some(call_off) = call_off else {
            continue;
        };
        if !leads {
            warn!(
                trade,
                "no word from the leading server: calling the trade off"
            );
        }
        if let Some(Some(a)) = trades.open.get_mut(&trade).map(|o| o.across.as_mut()) {
            a.settling = true;
        }
        let store = store.0.clone();
        let sides = [open.view.from, open.view.to];
        settlements.0.push(IoTaskPool::get().spawn(async move {
            let r = store.settle_trade(trade, &sides, call_off);
            (trade, r.map_err(|e| e.to_string()))
        }));
    }
}

/// This server's side of `trade` is now `mine`. A side that failed is logged; the follower tells
/// the leader when its side is held or failed.
fn side_is(trades: &mut Trades, (store, door): (&DataStore, &ProfileDoor), trade: u64, mine: Side) {
    let Some(Some(across)) = trades.open.get_mut(&trade).map(|o| o.across.as_mut()) else {
        return;
    };
    let result = match &mine {
        Side::Failed(why) => {
            warn!(trade, "this server's side of the trade failed: {why}");
            Some(Err(why.clone()))
        }
        Side::Held => Some(Ok(())),
        Side::Waiting | Side::Saving(_) => None,
    };
    across.mine = mine;
    if let Some(result) = result
        && !across.leads()
    {
        let escrowed = TradeNote::Escrowed { trade, result };
        note(store, door, across.other_server(), &escrowed);
    }
}

/// This server's side of `trade` landed (`ticket`'s save): held, or not (nothing of it moved:
/// a failed save gave the goods back to the live profile; a trade called off before the save
/// sent them back to the player's inbox).
pub(super) fn side_landed(
    trades: &mut Trades,
    store: &DataStore,
    door: &ProfileDoor,
    (trade, ticket): (u64, u64),
    result: &Result<Delivery, String>,
) {
    let saving = trades
        .open
        .get(&trade)
        .and_then(|o| o.across.as_ref())
        .is_some_and(|a| a.mine == Side::Saving(ticket));
    if !saving {
        return;
    }
    let mine = match result {
        Ok(Delivery::Held { .. }) => Side::Held,
        Ok(Delivery::Returned { .. } | Delivery::Queued { .. }) => {
            Side::Failed("the trade was called off before this side was saved".into())
        }
        Err(why) => Side::Failed(format!("this side was not saved: {why}")),
    };
    side_is(trades, (store, door), trade, mine);
}

/// Settlements that finished: the players whose inboxes got goods are told (their servers save
/// them at once), both players hear the outcome, the leader audits a done trade.
pub(in crate::game::server) fn finish_settlements(
    mut settlements: ResMut<Settlements>,
    mut trades: ResMut<Trades>,
    store: Res<DataStore>,
    game: Res<GameServerState>,
    mut door: ProfileDoor,
    mut audit: MessageWriter<AuditEntry>,
    time: Res<Time<Real>>,
) {
    for (trade, result) in crate::process::take_finished(&mut settlements.0) {
        let Some(open) = trades.open.get_mut(&trade) else {
            continue;
        };
        let Some(across) = &mut open.across else {
            continue;
        };
        across.settling = false;
        let (outcome, told) = match result {
            Ok((Settlement::Pending, _)) => continue,
            Ok(done) => done,
            Err(e) => {
                warn!(trade, "settling the trade failed, trying again: {e}");
                across.next_try = time.elapsed() + SETTLE_RETRY;
                continue;
            }
        };
        let leads = across.leads();
        let mine = across.mine.clone();
        for p in told {
            door.message_waits(&store, p);
        }
        let Some(mut open) = trades.open.remove(&trade) else {
            continue;
        };
        let (a, b) = (open.view.from, open.view.to);
        let me = if leads { a } else { b };
        open.view.stage = match outcome {
            Settlement::Done => {
                info!(trade, a, b, "trade across servers settled");
                if leads {
                    audit.write(AuditEntry {
                        player: Some(a),
                        kind: AuditKind::Trade,
                        details: serde_json::json!({
                            "trade": trade, "from": a, "to": b,
                            "from_gave": open.view.give, "to_gave": open.view.want,
                            "across_servers": true,
                        })
                        .to_string(),
                    });
                }
                TradeStage::Done
            }
            _ => {
                warn!(trade, "trade across servers called off: nothing moved");
                if mine != Side::Waiting {
                    record_failure(&mut door, trade, me, game.last_op(me));
                }
                let why = match (&mine, &open.across.as_ref().and_then(|a| a.theirs.clone())) {
                    (Side::Failed(why), _) | (_, Some(Err(why))) => why.clone(),
                    _ if leads => "the other server did not answer in time".to_string(),
                    _ => "the server leading the trade did not decide in time".to_string(),
                };
                TradeStage::Failed {
                    reason: format!("nothing moved: {why}"),
                }
            }
        };
        share(&store, &door, &open);
        tell(&mut door, &open.view);
    }
}

/// Offers still unanswered after [`OFFER_WAIT`]: no server holds the player offered to.
pub(in crate::game::server) fn expire_offers(
    mut trades: ResMut<Trades>,
    mut door: ProfileDoor,
    time: Res<Time<Real>>,
) {
    let now = time.elapsed();
    let stale: Vec<u64> = trades
        .open
        .values()
        .filter(|o| o.view.stage == TradeStage::Offered)
        .filter(|o| {
            o.across.as_ref().is_some_and(|a| {
                a.role == Role::Leads { peer: None } && now.saturating_sub(a.since) >= OFFER_WAIT
            })
        })
        .map(|o| o.view.trade)
        .collect();
    for trade in stale {
        let to = trades.open.get(&trade).map_or(0, |o| o.view.to);
        fail(
            &mut trades,
            &mut door,
            trade,
            format!("player {to} is not online on any server"),
        );
    }
}
