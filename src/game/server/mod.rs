//! The aquarium's server: the shop, feeding, gifts and visits against the player's live profile
//! (each through the [`door::ProfileDoor`]), income and hunger every second, the player's
//! authoritative state pushed to them, the leaderboard, the income watch (an economy detector
//! that reports to security) and its own admin command (`GrantCoins`).

mod admin;
mod away;
mod door;
mod income;
mod mail;
mod reversal;
mod trade;

use std::collections::HashMap;
use std::time::Duration;

use bevy::prelude::*;

pub use income::IncomeWatch;

use super::data::DataStoreState;
use super::protocol::{
    Applied, Feed, Gift, Leaderboard as LeaderboardEvent, Purchase, Sell, StateUpdate,
    Visit as VisitCall, Visited, YourRank,
};
use super::rules::{self as economy, EconomyError, GameOp};
use super::{IMPOSSIBLE_INCOME, OVERSPEND, Shop};
use crate::config::Config;
use crate::datastore::{PeekProfile, Peeked, ProfileLoaded, RankRow, Standings};
use crate::protocol::{RemoteError, RequestId};
use crate::security::SuspiciousActivity;
use crate::stages::{ServerRequests, ServerSystems};
use crate::transport::{Call, ServerNet, SessionEnded};

/// How often income and hunger advance, the income watch looks, and states are pushed.
const GAME_STEP: Duration = Duration::from_secs(1);
/// Every this many steps each player gets their state even if nothing they did changed it.
const PUSH_EVERY_STEPS: u32 = 5;

/// Per-player game bookkeeping on the server (this session only).
#[derive(Resource, Default)]
pub struct GameServerState {
    /// Player → the last client operation id processed.
    last_op: HashMap<u64, u64>,
    /// Player → fraction of a coin earned and not yet paid.
    carry: HashMap<u64, f64>,
    last_step: Duration,
    steps: u32,
    /// Visits to players who are not on this server, waiting for their saved profile: the
    /// peek's tag → the call.
    far_visits: HashMap<u64, (u64, RequestId)>,
    next_tag: u64,
}

impl GameServerState {
    /// Economy steps (one per second of game time) so far.
    pub fn steps(&self) -> u64 {
        u64::from(self.steps)
    }

    /// The last operation of `player` processed this session.
    pub fn last_op(&self, player: u64) -> u64 {
        self.last_op.get(&player).copied().unwrap_or(0)
    }
}

fn refresh_shop(config: Res<Config>, mut shop: ResMut<Shop>) {
    shop.refresh(&config);
}

/// The game's server plugin.
pub struct GameServerPlugin;

impl Plugin for GameServerPlugin {
    fn build(&self, app: &mut App) {
        crate::stages::server(app);
        crate::integration::register(app, super::health::INTEGRATION);
        app.add_message::<SuspiciousActivity>()
            .init_resource::<GameServerState>()
            .init_resource::<Shop>()
            .init_resource::<admin::GrantTasks>()
            .init_resource::<mail::GiftTasks>()
            .init_resource::<trade::Trades>()
            .init_resource::<trade::Settlements>()
            .init_resource::<reversal::Reversals>()
            .init_resource::<IncomeWatch>()
            .add_message::<crate::security::AuditEntry>()
            .add_systems(
                Update,
                (
                    refresh_shop,
                    send_state_at_join,
                    away::welcome_back,
                    admin::finish_grants,
                    mail::finish_gifts,
                    mail::receive_mail,
                    trade::end_trades_of_leavers,
                    trade::answer_trade_notes,
                    trade::finish_trades,
                    trade::commit_trades,
                    trade::escrow_and_settle,
                    trade::finish_settlements,
                    trade::expire_offers,
                    reversal::finish_reversals,
                    answer_far_visits,
                    step_economy,
                    forget_left,
                )
                    .chain()
                    .in_set(ServerSystems::Handle),
            )
            // The calls: answered in the tick (before the step above) and between ticks.
            .add_systems(
                ServerRequests,
                (
                    answer_game_ops,
                    answer_visits,
                    admin::grant_coins,
                    away::answer_daily_claims,
                    trade::answer_trade_offers,
                    trade::answer_trade_acts,
                    reversal::reverse_trades,
                )
                    .chain(),
            );
    }
}

fn send_state_at_join(
    mut loaded: MessageReader<ProfileLoaded>,
    mut net: ResMut<ServerNet>,
    profiles: Res<DataStoreState>,
    game: Res<GameServerState>,
) {
    for l in loaded.read() {
        if let Some(live) = profiles.profile(l.player) {
            let state = economy::state_of(&live.profile, game.last_op(l.player));
            net.send(l.client, &StateUpdate(state));
        }
    }
}

/// The four operations' calls, read together.
#[derive(bevy::ecs::system::SystemParam)]
struct GameOpCalls<'w, 's> {
    purchases: MessageReader<'w, 's, Call<Purchase>>,
    sells: MessageReader<'w, 's, Call<Sell>>,
    feeds: MessageReader<'w, 's, Call<Feed>>,
    gifts: MessageReader<'w, 's, Call<Gift>>,
}

impl GameOpCalls<'_, '_> {
    /// Every call: (client, id, op id, op).
    fn drain(&mut self) -> Vec<(u64, RequestId, u64, GameOp)> {
        let mut ops = Vec::new();
        for c in self.purchases.read() {
            let Purchase {
                op_id,
                item,
                quantity,
            } = c.request;
            ops.push((c.client, c.id, op_id, GameOp::Purchase { item, quantity }));
        }
        for c in self.sells.read() {
            let Sell { op_id, fish } = c.request;
            ops.push((c.client, c.id, op_id, GameOp::Sell { fish }));
        }
        for c in self.feeds.read() {
            let Feed { op_id, fish } = c.request;
            ops.push((c.client, c.id, op_id, GameOp::Feed { fish }));
        }
        for c in self.gifts.read() {
            let Gift { op_id, to, coins } = c.request;
            ops.push((c.client, c.id, op_id, GameOp::Gift { to, coins }));
        }
        // Each client's calls in the order it made them (ids rise per connection).
        ops.sort_by_key(|(client, id, ..)| (*client, *id));
        ops
    }
}

/// Answers a game operation with the response type of its own call.
fn reply_op(
    net: &mut ServerNet,
    (client, id): (u64, RequestId),
    op: GameOp,
    result: Result<Applied, RemoteError>,
) {
    match op {
        GameOp::Purchase { .. } => net.reply_to::<Purchase>(client, id, result),
        GameOp::Sell { .. } => net.reply_to::<Sell>(client, id, result),
        GameOp::Feed { .. } => net.reply_to::<Feed>(client, id, result),
        GameOp::Gift { .. } => net.reply_to::<Gift>(client, id, result),
    }
}

/// Purchases, sales, feedings and gifts against the player's live profile, each through the
/// [`door::ProfileDoor`]. A purchase over the balance is suspicious (the client predicts with its
/// balance), but not a strike: a prediction can race the server's own changes.
fn answer_game_ops(
    mut calls: GameOpCalls,
    shop: Res<Shop>,
    mut door: door::ProfileDoor,
    (mut game, mut gifts): (ResMut<GameServerState>, ResMut<mail::GiftTasks>),
    mut suspicious: MessageWriter<SuspiciousActivity>,
) {
    for (client, id, op_id, op) in calls.drain() {
        let Some(player) = door.net().session(client).map(|s| s.player_id) else {
            continue;
        };
        let Some(catalog) = shop.catalog() else {
            reply_op(
                door.net(),
                (client, id),
                op,
                Err(RemoteError::Rejected("the shop is closed".into())),
            );
            continue;
        };
        let loading = || {
            Err(RemoteError::Rejected(
                "your profile is still loading; try again in a moment".into(),
            ))
        };
        if door.profiles().profile(player).is_none() {
            reply_op(door.net(), (client, id), op, loading());
            continue;
        }
        let last = game.last_op.entry(player).or_default();
        *last = (*last).max(op_id);
        let last = *last;
        // A gift goes to anyone but the sender, online or not (see `mail`).
        let gift_check = match op {
            GameOp::Gift { to, .. } if to == player => Err(EconomyError::GiftToSelf),
            _ => Ok(()),
        };
        let (kind, payload) = match op {
            GameOp::Purchase { item, quantity } => (
                "purchase",
                serde_json::json!({"item": format!("{item:?}"), "quantity": quantity}),
            ),
            GameOp::Feed { fish } => ("feed", serde_json::json!({ "fish": fish })),
            GameOp::Sell { fish } => ("sell", serde_json::json!({ "fish": fish })),
            GameOp::Gift { to, coins } => {
                ("gift_sent", serde_json::json!({ "to": to, "coins": coins }))
            }
        };
        let applied = gift_check.and_then(|()| {
            let operation = door::Operation {
                player,
                actor: player,
                kind,
                payload,
                last_op: last,
                push: false,
            };
            door.change(operation, |profile| {
                // A refund is income the fish did not earn: the income watch is told.
                let before = profile.stats.coins;
                economy::apply(profile, op, catalog)?;
                Ok(profile.stats.coins - before)
            })
            // Live: checked above, within this system run.
            .unwrap_or(Err(EconomyError::NotOnline(player)))
        });
        let result = match applied {
            Ok(_) if let GameOp::Gift { to, coins } = op => {
                // Answered when the debit and the recipient's inbox row have committed.
                let call = (client, id, op_id);
                if mail::send_gift(&mut door, &mut gifts, call, (player, to, coins)) {
                    continue;
                }
                Err(RemoteError::Rejected(
                    EconomyError::NotOnline(player).to_string(),
                ))
            }
            Ok(state) => Ok(Applied { op_id, state }),
            Err(why) => {
                if let (
                    EconomyError::InsufficientCoins { price, balance },
                    GameOp::Purchase { item, quantity },
                ) = (&why, op)
                {
                    suspicious.write(SuspiciousActivity {
                        client: None,
                        player: Some(player),
                        kind: OVERSPEND,
                        detail: format!(
                            "asked to buy {quantity} x {item:?} for {price} with {balance} coins"
                        ),
                    });
                }
                Err(RemoteError::Rejected(why.to_string()))
            }
        };
        reply_op(door.net(), (client, id), op, result);
    }
}

/// Another player's aquarium, read-only: as it is now for a player on this server; as last
/// saved for anyone else (on another server, or offline), answered when the store has read it.
fn answer_visits(
    mut requests: MessageReader<Call<VisitCall>>,
    mut net: ResMut<ServerNet>,
    profiles: Res<DataStoreState>,
    mut game: ResMut<GameServerState>,
    mut peeks: MessageWriter<PeekProfile>,
) {
    for r in requests.read() {
        let player = r.request.player;
        let Some(live) = profiles.profile(player) else {
            game.next_tag += 1;
            let tag = game.next_tag;
            game.far_visits.insert(tag, (r.client, r.id));
            peeks.write(PeekProfile { player, tag });
            continue;
        };
        let answer = Ok(Visited {
            player,
            name: net
                .session(live.client)
                .map_or_else(|| format!("player {player}"), |s| s.display_name.clone()),
            state: economy::state_of(&live.profile, 0),
        });
        net.reply(r, answer);
    }
}

/// Visits to players not on this server: answered with their last saved tank.
fn answer_far_visits(
    mut peeked: MessageReader<Peeked<super::Aquarium>>,
    mut net: ResMut<ServerNet>,
    mut game: ResMut<GameServerState>,
) {
    for p in peeked.read() {
        let Some((client, id)) = game.far_visits.remove(&p.tag) else {
            continue;
        };
        let player = p.player;
        let answer = match &p.result {
            Ok(Some((profile, row))) => Ok(Visited {
                player,
                name: row
                    .as_ref()
                    .map_or_else(|| format!("player {player}"), |r| r.name.clone()),
                state: economy::state_of(profile, 0),
            }),
            Ok(None) => Err(RemoteError::Rejected(
                EconomyError::NoSuchPlayer(player).to_string(),
            )),
            Err(e) => Err(RemoteError::Rejected(format!(
                "player {player}'s aquarium cannot be read now: {e}"
            ))),
        };
        net.reply_to::<VisitCall>(client, id, answer);
    }
}

/// Every second of game time (virtual time: it follows the wall clock, but a stalled server does
/// not pay a burst of catch-up income): income and hunger advance for every live profile, the income watch looks at
/// every balance, and every few seconds each player gets their state.
#[allow(clippy::too_many_arguments)]
fn step_economy(
    config: Res<Config>,
    shop: Res<Shop>,
    mut profiles: ResMut<DataStoreState>,
    mut income: ResMut<IncomeWatch>,
    mut net: ResMut<ServerNet>,
    mut game: ResMut<GameServerState>,
    (time, standings): (Res<Time>, Res<Standings>),
    mut suspicious: MessageWriter<SuspiciousActivity>,
) {
    let now = time.elapsed();
    if now.saturating_sub(game.last_step) < GAME_STEP {
        return;
    }
    let secs = now.saturating_sub(game.last_step).as_secs_f64().min(10.0);
    game.last_step = now;
    game.steps += 1;
    let push = game.steps.is_multiple_of(PUSH_EVERY_STEPS);
    let Some(catalog) = shop.catalog() else {
        return;
    };
    let hunger: f64 = config.get("game.hungerPerMinute").unwrap_or(0.0);
    let now_ms = crate::clock::now_ms();
    let board = if push {
        let board = leaderboard(&profiles, &net, &standings, 10);
        net.broadcast(&LeaderboardEvent(board.clone()));
        board
    } else {
        Vec::new()
    };
    for player in profiles.players().collect::<Vec<_>>() {
        let has_fish = profiles
            .profile(player)
            .is_some_and(|l| !l.profile.fish.is_empty());
        if has_fish {
            let carry = game.carry.entry(player).or_default();
            profiles.simulate(player, |profile| {
                // What earnings while away count from (players without fish earn nothing).
                profile.away.last_seen_ms = now_ms;
                economy::advance(profile, catalog, hunger, secs, carry)
            });
        }
        let Some(profile) = profiles.profile(player).map(|l| &l.profile) else {
            continue;
        };
        let (coins, rate) = (profile.stats.coins, catalog.max_income_per_second(profile));
        if let Some(detail) = income.observe(player, coins, rate, now) {
            suspicious.write(SuspiciousActivity {
                client: None,
                player: Some(player),
                kind: IMPOSSIBLE_INCOME,
                detail,
            });
        }
        if push && let Some(live) = profiles.profile(player) {
            let state = economy::state_of(&live.profile, game.last_op(player));
            net.send(live.client, &StateUpdate(state));
            // On the board: its place there; else its rank among every player of the store.
            let rank = match board.iter().position(|r| r.0 == player) {
                Some(i) => Some(i as u64 + 1),
                None => standings.ranks.get(&player).copied(),
            };
            if let Some(rank) = rank {
                net.send(live.client, &YourRank(rank));
            }
        }
    }
}

/// The richest players of every server on the store, richest first: the store-wide board as
/// last read, with this server's players at the coins they have now.
pub fn leaderboard(
    profiles: &DataStoreState,
    net: &ServerNet,
    standings: &Standings,
    top: usize,
) -> Vec<(u64, String, i64)> {
    let live: Vec<RankRow> = profiles
        .players()
        .filter_map(|p| {
            let live = profiles.profile(p)?;
            let name = net
                .session(live.client)
                .map_or_else(|| format!("player {p}"), |s| s.display_name.clone());
            Some(RankRow {
                player: p,
                name,
                score: live.profile.stats.coins,
            })
        })
        .collect();
    standings
        .merged(&live, top)
        .into_iter()
        .map(|r| (r.player, r.name, r.score))
        .collect()
}

fn forget_left(
    mut ended: MessageReader<SessionEnded>,
    mut game: ResMut<GameServerState>,
    mut income: ResMut<IncomeWatch>,
) {
    for e in ended.read() {
        game.last_op.remove(&e.player_id);
        game.carry.remove(&e.player_id);
        income.forget(e.player_id);
    }
}
