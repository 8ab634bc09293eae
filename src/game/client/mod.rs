//! The aquarium's client logic (no window): prediction of the player's own operations reconciled
//! with the server's answers and state ([`predict`]), the leaderboard, visits.

mod predict;

use std::collections::HashMap;
use std::time::Duration;

use bevy::prelude::*;

pub use predict::Predictor;

use super::Shop;
use super::protocol::{
    Applied, ClaimDaily, Feed, Gift, GiftReceived, Leaderboard as LeaderboardEvent, PlayerState,
    Purchase, Sell, StateUpdate, TradeAct, TradeAction, TradeGoods, TradeOffer, TradeStage,
    TradeUpdate, TradeView, Visit as VisitCall, Visited, WelcomeBack, YourRank,
};
use super::rules::{Catalog, GameOp};
use crate::config::ClientConfig;
use crate::protocol::{RemoteError, RequestId};
use crate::stages::ClientSystems;
use crate::transport::{Answer, ClientNet, FromServer};

fn refresh_client_shop(config: Res<ClientConfig>, mut shop: ResMut<Shop>) {
    shop.refresh(&config.0);
}

/// The client's prediction of its own game state.
#[derive(Resource, Default)]
pub struct Prediction {
    /// The predictor.
    pub predictor: Predictor,
    calls: HashMap<RequestId, u64>,
}

/// The answer to one of the client's operations, whichever call it was.
fn op_answers<'a>(
    purchases: &'a mut MessageReader<Answer<Purchase>>,
    sells: &'a mut MessageReader<Answer<Sell>>,
    feeds: &'a mut MessageReader<Answer<Feed>>,
    gifts: &'a mut MessageReader<Answer<Gift>>,
) -> Vec<(RequestId, Result<Applied, RemoteError>)> {
    let mut all = Vec::new();
    all.extend(purchases.read().map(|a| (a.id, a.result.clone())));
    all.extend(sells.read().map(|a| (a.id, a.result.clone())));
    all.extend(feeds.read().map(|a| (a.id, a.result.clone())));
    all.extend(gifts.read().map(|a| (a.id, a.result.clone())));
    all
}

impl Prediction {
    /// Predicts `op` and sends it sealed; refused at once (with the reason) if it cannot apply.
    pub fn send(
        &mut self,
        net: &mut ClientNet,
        op: GameOp,
        catalog: &Catalog,
        now: Duration,
    ) -> Result<u64, String> {
        let op_id = self.predictor.predict(op, catalog)?;
        let id = match op {
            GameOp::Purchase { item, quantity } => net.call(
                &Purchase {
                    op_id,
                    item,
                    quantity,
                },
                now,
            ),
            GameOp::Feed { fish } => net.call(&Feed { op_id, fish }, now),
            GameOp::Sell { fish } => net.call(&Sell { op_id, fish }, now),
            GameOp::Gift { to, coins } => net.call(&Gift { op_id, to, coins }, now),
        };
        self.calls.insert(id, op_id);
        Ok(op_id)
    }
}

/// The game's client plugin: prediction reconciled with the server's answers; the leaderboard.
pub struct GameClientPlugin;

impl Plugin for GameClientPlugin {
    fn build(&self, app: &mut App) {
        crate::stages::client(app);
        app.init_resource::<Prediction>()
            .init_resource::<ScriptedOps>()
            .init_resource::<Notices>()
            .init_resource::<DailyClaims>()
            .init_resource::<Leaderboard>()
            .init_resource::<Visit>()
            .init_resource::<TradeBook>()
            .init_resource::<TradeScript>()
            .init_resource::<Shop>()
            .add_systems(
                PreUpdate,
                (
                    refresh_client_shop,
                    reconcile_prediction,
                    receive_leaderboard,
                    receive_visit,
                )
                    .in_set(ClientSystems::Sync),
            )
            .add_systems(
                Update,
                (
                    run_script,
                    receive_notices,
                    record_offers,
                    receive_trades,
                    script_trades,
                    claim_daily_reward,
                )
                    .chain()
                    .in_set(ClientSystems::Handle),
            );
    }
}

/// The trades this player is part of, as the server last told them (open ones and the last
/// few that ended), by trade id.
#[derive(Resource, Debug, Default)]
pub struct TradeBook {
    /// Trade id → the latest view.
    pub trades: std::collections::BTreeMap<u64, TradeView>,
    /// Trades this client offered (from the offers' answers): the others were offered to it.
    pub offered: std::collections::BTreeSet<u64>,
}

impl TradeBook {
    /// Trades still open (offered, accepted or committing).
    pub fn open(&self) -> impl Iterator<Item = &TradeView> {
        self.trades.values().filter(|v| v.stage.is_open())
    }
}

/// A trade's goods in words ("1 fish + 20 coins", "nothing").
pub fn goods_text(g: &TradeGoods) -> String {
    let mut parts = Vec::new();
    if !g.fish.is_empty() {
        parts.push(format!("{} fish", g.fish.len()));
    }
    if !g.decorations.is_empty() {
        parts.push(format!("{} decorations", g.decorations.len()));
    }
    if g.coins > 0 {
        parts.push(format!("{} coins", g.coins));
    }
    if parts.is_empty() {
        "nothing".into()
    } else {
        parts.join(" + ")
    }
}

/// The answers to this client's offers: the trade ids it offered (a refusal is logged).
fn record_offers(mut answers: MessageReader<Answer<TradeOffer>>, mut book: ResMut<TradeBook>) {
    for a in answers.read() {
        match &a.result {
            Ok(v) => {
                book.offered.insert(v.trade);
            }
            Err(e) => warn!("trade offer refused: {e}"),
        }
    }
}

/// Trade updates: kept in the [`TradeBook`] (the last 16 ended ones too), each told as a notice.
fn receive_trades(
    mut updates: MessageReader<FromServer<TradeUpdate>>,
    mut book: ResMut<TradeBook>,
    mut notices: ResMut<Notices>,
) {
    for FromServer(TradeUpdate(v)) in updates.read() {
        let what = format!(
            "player {} gives {} for {}",
            v.from,
            goods_text(&v.give),
            goods_text(&v.want)
        );
        let text = match &v.stage {
            TradeStage::Offered => format!("Trade {} offered: {what}", v.trade),
            TradeStage::Accepted {
                from_confirmed: false,
                to_confirmed: false,
            } => format!("Trade {} accepted: both confirm to do it", v.trade),
            TradeStage::Accepted { .. } => format!("Trade {}: one side confirmed", v.trade),
            TradeStage::Committing => format!("Trade {}: both confirmed, saving", v.trade),
            TradeStage::Done => format!("Trade {} done: {what}", v.trade),
            TradeStage::Declined => format!("Trade {} declined", v.trade),
            TradeStage::Cancelled { reason } => format!("Trade {} cancelled: {reason}", v.trade),
            TradeStage::Failed { reason } => format!("Trade {} failed: {reason}", v.trade),
        };
        info!("{text}");
        notices.0.push(text);
        book.trades.insert(v.trade, v.clone());
        if !v.stage.is_open() {
            // Keep the last 16 that ended (trade ids rise: the oldest go first).
            let ended: Vec<u64> = book
                .trades
                .values()
                .filter(|v| !v.stage.is_open())
                .map(|v| v.trade)
                .collect();
            for t in ended.iter().take(ended.len().saturating_sub(16)) {
                book.trades.remove(t);
                book.offered.remove(t);
            }
        }
    }
}

/// A scripted client's trading (`client --trade PLAYER:COINS`, `--accept-trades`): offer the
/// newest fish once the scripted operations are acknowledged, confirm it when accepted; accept
/// and confirm what others offer.
#[derive(Resource, Debug, Default)]
pub struct TradeScript {
    offer: Option<(u64, i64)>,
    accept: bool,
    offered: bool,
    /// (trade, action) already asked.
    asked: std::collections::BTreeSet<(u64, u8)>,
}

impl TradeScript {
    /// Offer `offer` (player, coins) once in game; accept others' offers if `accept`.
    pub fn new(offer: Option<(u64, i64)>, accept: bool) -> Self {
        Self {
            offer,
            accept,
            ..Self::default()
        }
    }
}

fn script_trades(
    mut script: ResMut<TradeScript>,
    book: Res<TradeBook>,
    prediction: Res<Prediction>,
    ops: Res<ScriptedOps>,
    net: Option<ResMut<ClientNet>>,
    time: Res<Time<Real>>,
) {
    // Most clients trade by hand (or not at all): nothing to script.
    if script.offer.is_none() && !script.accept {
        return;
    }
    let Some(mut net) = net else {
        return;
    };
    let now = time.elapsed();
    let settled = prediction.predictor.pending() == 0 && (ops.ops.is_empty() || ops.sent);
    if let (Some((to, coins)), false, true) = (script.offer, script.offered, settled)
        && let Some(newest) = prediction
            .predictor
            .authoritative()
            .and_then(|s| s.newest_fish(None))
            .map(|f| f.id)
    {
        script.offered = true;
        let offer = TradeOffer::fish_for_coins(to, newest, coins);
        info!("offering player {to} fish {newest} for {coins} coins");
        net.call(&offer, now);
    }
    for v in book.open() {
        let mine = book.offered.contains(&v.trade);
        let action = match &v.stage {
            TradeStage::Offered if !mine && script.accept => Some((0u8, TradeAction::Accept)),
            TradeStage::Accepted {
                from_confirmed,
                to_confirmed,
            } if (mine && !from_confirmed) || (!mine && script.accept && !to_confirmed) => {
                Some((1, TradeAction::Confirm))
            }
            _ => None,
        };
        if let Some((n, action)) = action
            && script.asked.insert((v.trade, n))
        {
            net.call(
                &TradeAct {
                    trade: v.trade,
                    action,
                },
                now,
            );
        }
    }
}

/// What the server told the player on coming back ("while you were away: +N coins", the daily
/// reward), newest last; the window shows each as a toast.
#[derive(Resource, Debug, Default)]
pub struct Notices(pub Vec<String>);

fn receive_notices(
    mut away: MessageReader<FromServer<WelcomeBack>>,
    mut gifts: MessageReader<FromServer<GiftReceived>>,
    mut daily: MessageReader<Answer<ClaimDaily>>,
    mut notices: ResMut<Notices>,
) {
    for FromServer(w) in away.read() {
        let away = if w.away_secs < 3600 {
            format!("{} min", w.away_secs / 60)
        } else {
            format!("{:.1} h", w.away_secs as f64 / 3600.0)
        };
        let text = format!("While you were away ({away}): +{} coins", w.coins);
        info!("{text}");
        notices.0.push(text);
    }
    for FromServer(g) in gifts.read() {
        let text = if g.returned {
            format!("Your gift came back (no such player): +{} coins", g.coins)
        } else {
            format!("A gift from player {}: +{} coins", g.from, g.coins)
        };
        info!("{text}");
        notices.0.push(text);
    }
    for a in daily.read() {
        match &a.result {
            Ok(d) => {
                let text = format!(
                    "Daily reward: +{} coins (day {} in a row)",
                    d.coins, d.streak
                );
                info!("{text}");
                notices.0.push(text);
            }
            Err(e) => info!("daily reward: {e}"),
        }
    }
}

/// The window claims the daily reward by itself: once in game, and again each hour (a day may
/// have started meanwhile; the server refuses a second claim the same day).
#[derive(Resource, Debug, Default)]
pub struct DailyClaims {
    /// Claim by itself (the window; headless clients and tests call `ClaimDaily` themselves).
    pub auto: bool,
    last: Option<Duration>,
}

impl DailyClaims {
    /// Claims by itself (the window).
    pub fn automatic() -> Self {
        Self {
            auto: true,
            last: None,
        }
    }
}

/// How often the window asks for the daily reward.
const DAILY_CLAIM_EVERY: Duration = Duration::from_secs(3600);

fn claim_daily_reward(
    mut claims: ResMut<DailyClaims>,
    prediction: Res<Prediction>,
    net: Option<ResMut<ClientNet>>,
    time: Res<Time<Real>>,
) {
    let now = time.elapsed();
    let due = claims
        .last
        .is_none_or(|t| now.saturating_sub(t) >= DAILY_CLAIM_EVERY);
    // In game: the server has sent the state.
    if !claims.auto || !due || prediction.predictor.authoritative().is_none() {
        return;
    }
    if let Some(mut net) = net {
        claims.last = Some(now);
        net.call(&ClaimDaily, now);
    }
}

/// Operations a client performs once it is in game (`client --then OP`: scripted checks and
/// bots), and its reports: the tank when the game state first arrives, and again when the
/// operations are acknowledged.
#[derive(Resource, Debug, Default)]
pub struct ScriptedOps {
    /// The operations, in order.
    pub ops: Vec<GameOp>,
    sent: bool,
    reported: u8,
}

impl ScriptedOps {
    /// Performs `ops` once in game.
    pub fn new(ops: Vec<GameOp>) -> Self {
        Self {
            ops,
            ..Self::default()
        }
    }
}

fn report(state: &PlayerState, when: &str) {
    info!(
        "tank {when}: {} fish, {} decorations, {} coins, tank level {}",
        state.fish.len(),
        state.decorations.len(),
        state.coins,
        state.tank_level
    );
}

fn run_script(
    mut script: ResMut<ScriptedOps>,
    mut prediction: ResMut<Prediction>,
    net: Option<ResMut<ClientNet>>,
    shop: Res<Shop>,
    time: Res<Time<Real>>,
) {
    // Done: the tank reported on joining, and after the operations if there were any.
    let last_report = if script.ops.is_empty() { 1 } else { 2 };
    if script.reported >= last_report {
        return;
    }
    let (Some(mut net), Some(catalog)) = (net, shop.catalog()) else {
        return;
    };
    let Some(state) = prediction.predictor.authoritative() else {
        return;
    };
    if script.reported == 0 {
        report(state, "on joining");
        script.reported = 1;
    } else if script.sent && prediction.predictor.pending() == 0 {
        report(state, "after the scripted operations");
        script.reported = 2;
    }
    if !script.ops.is_empty() && !script.sent {
        script.sent = true;
        for op in script.ops.clone() {
            if let Err(e) = prediction.send(&mut net, op, catalog, time.elapsed()) {
                warn!("scripted {op:?} refused: {e}");
            }
        }
    }
}

/// Visiting another player's aquarium (client): the request in flight and the last answer.
#[derive(Resource, Debug, Default)]
pub struct Visit {
    asked: Option<(RequestId, u64)>,
    /// Whose aquarium is shown (player id, name, state); `None`: the player's own.
    pub showing: Option<(u64, String, PlayerState)>,
}

impl Visit {
    /// Asks the server for `player`'s aquarium.
    pub fn request(&mut self, net: &mut ClientNet, player: u64, now: Duration) {
        let id = net.call(&VisitCall { player }, now);
        self.asked = Some((id, player));
    }

    /// Back to the player's own aquarium.
    pub fn leave(&mut self) {
        self.asked = None;
        self.showing = None;
    }
}

/// A visit's answer: the aquarium to show, or a refusal shown like any other.
fn receive_visit(
    mut visit: ResMut<Visit>,
    mut prediction: ResMut<Prediction>,
    mut answers: MessageReader<Answer<VisitCall>>,
) {
    for a in answers.read() {
        if visit.asked.map(|(id, _)| id) != Some(a.id) {
            continue;
        }
        visit.asked = None;
        match &a.result {
            Ok(Visited {
                player,
                name,
                state,
            }) => visit.showing = Some((*player, name.clone(), state.clone())),
            Err(e) => prediction
                .predictor
                .refuse(0, format!("visit refused: {e}")),
        }
    }
}

/// The server's latest leaderboard (client), and the player's own rank among every player.
#[derive(Resource, Debug, Default, Clone, PartialEq)]
pub struct Leaderboard(pub Vec<(u64, String, i64)>, pub Option<u64>);

fn receive_leaderboard(
    mut events: MessageReader<FromServer<LeaderboardEvent>>,
    mut ranks: MessageReader<FromServer<YourRank>>,
    mut board: ResMut<Leaderboard>,
) {
    for FromServer(LeaderboardEvent(rows)) in events.read() {
        board.0.clone_from(rows);
    }
    if let Some(FromServer(YourRank(rank))) = ranks.read().last() {
        board.1 = Some(*rank);
    }
}

#[allow(clippy::too_many_arguments)]
fn reconcile_prediction(
    mut prediction: ResMut<Prediction>,
    shop: Res<Shop>,
    mut events: MessageReader<FromServer<StateUpdate>>,
    mut purchases: MessageReader<Answer<Purchase>>,
    mut sells: MessageReader<Answer<Sell>>,
    mut feeds: MessageReader<Answer<Feed>>,
    mut gifts: MessageReader<Answer<Gift>>,
) {
    let Some(catalog) = shop.catalog() else {
        return;
    };
    for FromServer(StateUpdate(state)) in events.read() {
        prediction.predictor.on_state(state.clone(), catalog);
    }
    for (id, result) in op_answers(&mut purchases, &mut sells, &mut feeds, &mut gifts) {
        let Some(op_id) = prediction.calls.remove(&id) else {
            continue;
        };
        match &result {
            Ok(Applied { state, .. }) => {
                prediction.predictor.on_state(state.clone(), catalog);
            }
            Err(e) => {
                warn!(op_id, "the server refused an operation: {e}");
                prediction.predictor.on_rejected(op_id, e.to_string());
            }
        }
    }
}
