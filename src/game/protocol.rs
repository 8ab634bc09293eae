//! The aquarium's remote messages, registered like any game's ([`register`]): the shop, feeding,
//! gifts and visits (sealed functions), the player's state (a sealed event), the leaderboard (an
//! event) and its own admin command, `GrantCoins`.

use bevy::prelude::App;
use serde::{Deserialize, Serialize};

use crate::protocol::{Delivery, Remote, RemoteFunction};
use crate::transport::RemoteApp;

/// Most items of one kind bought in one purchase.
pub const MAX_PURCHASE_QUANTITY: u32 = 20;
/// Most fish species the protocol can name.
pub const MAX_SPECIES: u8 = 32;
/// Decoration kinds the protocol allows (the catalog may sell fewer).
pub const MAX_DECORATION_KINDS: u8 = 16;
/// The largest gift, in coins.
pub const MAX_GIFT: i64 = 1_000_000;
/// Most fish one side of a trade gives.
pub const MAX_TRADE_FISH: usize = 20;
/// Most decorations one side of a trade gives.
pub const MAX_TRADE_DECORATIONS: usize = 12;
/// Largest coin grant (either sign).
pub const MAX_GRANT: i64 = 1_000_000_000;

/// Registers the aquarium's messages (the server's and the client's App alike).
pub fn register(app: &mut App) {
    app.add_remote_function::<Purchase>()
        .add_remote_function::<Sell>()
        .add_remote_function::<Feed>()
        .add_remote_function::<Gift>()
        .add_remote_function::<Visit>()
        .add_remote_function::<GrantCoins>()
        .add_remote_event::<StateUpdate>()
        .add_remote_event::<Leaderboard>()
        .add_remote_event::<YourRank>()
        .add_remote_event::<WelcomeBack>()
        .add_remote_event::<GiftReceived>()
        .add_remote_function::<TradeOffer>()
        .add_remote_function::<TradeAct>()
        .add_remote_event::<TradeUpdate>()
        .add_remote_function::<ReverseTrade>()
        .add_remote_function::<ClaimDaily>();
}

/// A player's own game state as the server holds it (authoritative), with the last of the
/// client's operations it reflects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlayerState {
    /// Coins.
    pub coins: i64,
    /// Tank level 1..=5.
    pub tank_level: u8,
    /// The fish: id, species, hunger.
    pub fish: Vec<FishState>,
    /// Decorations in the tank, by kind, in the order they were bought.
    #[serde(default)]
    pub decorations: Vec<u8>,
    /// The last client operation id applied (0: none yet this session).
    pub last_op: u64,
}

impl PlayerState {
    /// The newest fish (the highest id), of `species` if given.
    pub fn newest_fish(&self, species: Option<u8>) -> Option<&FishState> {
        self.fish
            .iter()
            .filter(|f| species.is_none_or(|s| s == f.species))
            .max_by_key(|f| f.id)
    }
}

/// One fish as the client sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FishState {
    /// Unique within the profile.
    pub id: u64,
    /// Species index.
    pub species: u8,
    /// 0 (fed) .. 100 (starving).
    pub hunger: f32,
}

/// Something the shop sells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShopItem {
    /// A fish of a species (index into `game.fishPrices`).
    Fish {
        /// Species index.
        species: u8,
    },
    /// The next tank level.
    TankUpgrade,
    /// A decoration (index into `game.decorationPrices`: 0 rock, 1 plant, 2 castle, ...).
    Decoration {
        /// Decoration kind.
        kind: u8,
    },
}

/// The answer to a game operation that went through: the authoritative state after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Applied {
    /// The client's operation id.
    pub op_id: u64,
    /// The state after it.
    pub state: PlayerState,
}

/// Buy from the shop with coins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Purchase {
    /// The client's id for this operation (for its prediction).
    pub op_id: u64,
    /// What.
    pub item: ShopItem,
    /// How many (1..=[`MAX_PURCHASE_QUANTITY`]; tank upgrades: 1).
    pub quantity: u32,
}

impl Remote for Purchase {
    const NAME: &'static str = "aquarium.purchase";
    const SEALED: bool = true;
    const RATE_CLASS: &'static str = "purchase";
    fn validate(&self) -> Result<(), String> {
        let quantity = self.quantity;
        if !(1..=MAX_PURCHASE_QUANTITY).contains(&quantity) {
            return Err(format!(
                "quantity {quantity} is not 1..={MAX_PURCHASE_QUANTITY}"
            ));
        }
        match self.item {
            ShopItem::Fish { species } if species >= MAX_SPECIES => {
                Err(format!("species {species} is not 0..{MAX_SPECIES}"))
            }
            ShopItem::TankUpgrade if quantity != 1 => {
                Err("a tank upgrade is bought one level at a time".into())
            }
            ShopItem::Decoration { kind } if kind >= MAX_DECORATION_KINDS => Err(format!(
                "decoration {kind} is not 0..{MAX_DECORATION_KINDS}"
            )),
            _ => Ok(()),
        }
    }
}

impl RemoteFunction for Purchase {
    type Response = Applied;
}

/// Sell one fish for `game.sellRefund` of its price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sell {
    /// The client's id for this operation (for its prediction).
    pub op_id: u64,
    /// The fish.
    pub fish: u64,
}

impl Remote for Sell {
    const NAME: &'static str = "aquarium.sell";
    const SEALED: bool = true;
    const RATE_CLASS: &'static str = "purchase";
}

impl RemoteFunction for Sell {
    type Response = Applied;
}

/// Feed fish (hunger back to 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Feed {
    /// The client's id for this operation (for its prediction).
    pub op_id: u64,
    /// One fish, or every fish (`None`).
    pub fish: Option<u64>,
}

impl Remote for Feed {
    const NAME: &'static str = "aquarium.feed";
    const SEALED: bool = true;
}

impl RemoteFunction for Feed {
    type Response = Applied;
}

/// Give coins to another player who is online now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gift {
    /// The client's id for this operation (for its prediction).
    pub op_id: u64,
    /// The recipient's player id.
    pub to: u64,
    /// Coins, 1..=[`MAX_GIFT`].
    pub coins: i64,
}

impl Remote for Gift {
    const NAME: &'static str = "aquarium.gift";
    const SEALED: bool = true;
    const RATE_CLASS: &'static str = "purchase";
    fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_GIFT).contains(&self.coins) {
            Err(format!(
                "a gift of {} coins is not 1..={MAX_GIFT}",
                self.coins
            ))
        } else if self.to == 0 {
            Err("a gift needs a recipient".into())
        } else {
            Ok(())
        }
    }
}

impl RemoteFunction for Gift {
    type Response = Applied;
}

/// Look at another online player's aquarium (read-only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Visit {
    /// Whose.
    pub player: u64,
}

impl Remote for Visit {
    const NAME: &'static str = "aquarium.visit";
    const SEALED: bool = true;
}

impl RemoteFunction for Visit {
    type Response = Visited;
}

/// Another player's aquarium, read-only (the answer to [`Visit`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Visited {
    /// Whose.
    pub player: u64,
    /// Their display name.
    pub name: String,
    /// Their tank, fish and decorations (coins included: the leaderboard shows them).
    pub state: PlayerState,
}

/// Give (or, negative, take) coins; an offline player gets them at next join (needs
/// `admin.grant`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantCoins {
    /// The player.
    pub player: u64,
    /// Coins (non-zero, |amount| <= [`MAX_GRANT`]).
    pub amount: i64,
}

impl Remote for GrantCoins {
    const NAME: &'static str = "aquarium.admin.grant_coins";
    const SEALED: bool = true;
    fn validate(&self) -> Result<(), String> {
        if self.amount == 0 || self.amount.unsigned_abs() > MAX_GRANT as u64 {
            Err(format!(
                "grant of {} is not non-zero within ±{MAX_GRANT}",
                self.amount
            ))
        } else {
            Ok(())
        }
    }
    fn permission(&self) -> Option<&'static str> {
        Some("admin.grant")
    }
}

impl RemoteFunction for GrantCoins {
    type Response = String;
}

/// The player's authoritative game state (at join, after changes, and periodically), sealed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateUpdate(pub PlayerState);

impl Remote for StateUpdate {
    const NAME: &'static str = "aquarium.state";
    const SEALED: bool = true;
}

/// On return: how long the player was away and what the fish earned meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WelcomeBack {
    /// Seconds away (on the server's clock).
    pub away_secs: u64,
    /// Coins the fish earned.
    pub coins: i64,
}

impl Remote for WelcomeBack {
    const NAME: &'static str = "aquarium.welcome_back";
}

/// Coins another player sent arrived (committed to the player's profile).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GiftReceived {
    /// The sender's player id.
    pub from: u64,
    /// Coins.
    pub coins: i64,
    /// A gift of the player's own that came back (its recipient does not exist).
    pub returned: bool,
}

impl Remote for GiftReceived {
    const NAME: &'static str = "aquarium.gift_received";
}

/// Claims today's daily reward (once a day; refused with when the next one comes otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimDaily;

impl Remote for ClaimDaily {
    const NAME: &'static str = "aquarium.claim_daily";
    const SEALED: bool = true;
}

impl RemoteFunction for ClaimDaily {
    type Response = DailyReward;
}

/// Today's daily reward, credited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailyReward {
    /// Coins.
    pub coins: i64,
    /// Days in a row.
    pub streak: u32,
}

/// The richest players of every server on the store: player id, name and coins, richest
/// first (players on the sending server at their coins now, others as last saved).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Leaderboard(pub Vec<(u64, String, i64)>);

impl Remote for Leaderboard {
    const NAME: &'static str = "aquarium.leaderboard";
    const DELIVERY: Delivery = Delivery::ReliableUnordered;
}

/// The player's own rank among every player of the store (1 is the richest), sent with the
/// leaderboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct YourRank(pub u64);

impl Remote for YourRank {
    const NAME: &'static str = "aquarium.rank";
    const DELIVERY: Delivery = Delivery::ReliableUnordered;
}

/// What one side of a trade gives, as the client names it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TradeGoods {
    /// Coins, 0..=[`MAX_GIFT`].
    pub coins: i64,
    /// Fish ids (distinct), at most [`MAX_TRADE_FISH`].
    pub fish: Vec<u64>,
    /// Decoration kinds (one entry per decoration), at most [`MAX_TRADE_DECORATIONS`].
    pub decorations: Vec<u8>,
}

impl TradeGoods {
    /// Nothing.
    pub fn is_empty(&self) -> bool {
        self.coins == 0 && self.fish.is_empty() && self.decorations.is_empty()
    }

    /// Within the limits.
    pub fn check(&self) -> Result<(), String> {
        if !(0..=MAX_GIFT).contains(&self.coins) {
            return Err(format!("a trade's coins are 0..={MAX_GIFT}"));
        }
        if self.fish.len() > MAX_TRADE_FISH || self.decorations.len() > MAX_TRADE_DECORATIONS {
            return Err(format!(
                "a trade gives at most {MAX_TRADE_FISH} fish and {MAX_TRADE_DECORATIONS} decorations"
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        if let Some(f) = self.fish.iter().find(|f| !seen.insert(**f)) {
            return Err(format!("fish {f} is named twice"));
        }
        if self.decorations.iter().any(|k| *k >= MAX_DECORATION_KINDS) {
            return Err("no such decoration kind".into());
        }
        Ok(())
    }
}

/// Offers a trade to another player on this server: `give` for `want`. The other accepts or
/// declines; then both confirm; then both sides' goods move at once, or not at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TradeOffer {
    /// The other player.
    pub to: u64,
    /// What the offerer gives.
    pub give: TradeGoods,
    /// What the offerer asks for.
    pub want: TradeGoods,
}

impl TradeOffer {
    /// Offers `to` one fish for `coins`.
    pub fn fish_for_coins(to: u64, fish: u64, coins: i64) -> Self {
        Self {
            to,
            give: TradeGoods {
                fish: vec![fish],
                ..Default::default()
            },
            want: TradeGoods {
                coins,
                ..Default::default()
            },
        }
    }
}

impl Remote for TradeOffer {
    const NAME: &'static str = "aquarium.trade_offer";
    const SEALED: bool = true;
    const RATE_CLASS: &'static str = "purchase";
    fn validate(&self) -> Result<(), String> {
        self.give.check()?;
        self.want.check()?;
        if self.to == 0 {
            Err("a trade needs another player".into())
        } else if self.give.is_empty() && self.want.is_empty() {
            Err("a trade needs something on at least one side".into())
        } else {
            Ok(())
        }
    }
}

impl RemoteFunction for TradeOffer {
    type Response = TradeView;
}

/// What a player does with an open trade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TradeAction {
    /// The one offered to takes the offer (then both confirm).
    Accept,
    /// The one offered to turns it down.
    Decline,
    /// Either side confirms an accepted trade; it happens when both have.
    Confirm,
    /// Either side withdraws before it happens.
    Cancel,
}

/// Acts on an open trade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TradeAct {
    /// The trade.
    pub trade: u64,
    /// What to do.
    pub action: TradeAction,
}

impl Remote for TradeAct {
    const NAME: &'static str = "aquarium.trade_act";
    const SEALED: bool = true;
}

impl RemoteFunction for TradeAct {
    type Response = TradeView;
}

/// Where a trade is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TradeStage {
    /// Waiting for the other player to accept or decline.
    Offered,
    /// Accepted; waiting for both confirmations.
    Accepted {
        /// The offerer confirmed.
        from_confirmed: bool,
        /// The other confirmed.
        to_confirmed: bool,
    },
    /// Both confirmed: the goods are being saved.
    Committing,
    /// Done: both sides' goods were committed and are on their way.
    Done,
    /// Declined by the one offered to.
    Declined,
    /// Withdrawn, or ended by a player leaving.
    Cancelled {
        /// Why.
        reason: String,
    },
    /// Could not happen; nothing moved.
    Failed {
        /// Why.
        reason: String,
    },
}

impl TradeStage {
    /// Still open: offered, accepted or committing (not done, declined, cancelled or failed).
    pub fn is_open(&self) -> bool {
        matches!(
            self,
            TradeStage::Offered | TradeStage::Accepted { .. } | TradeStage::Committing
        )
    }
}

/// A trade as both players see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TradeView {
    /// The trade's id.
    pub trade: u64,
    /// The offerer.
    pub from: u64,
    /// The one offered to.
    pub to: u64,
    /// What the offerer gives.
    pub give: TradeGoods,
    /// What the offerer gets.
    pub want: TradeGoods,
    /// Where it is.
    pub stage: TradeStage,
}

/// A trade changed (sent to both players).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TradeUpdate(pub TradeView);

impl Remote for TradeUpdate {
    const NAME: &'static str = "aquarium.trade";
    const SEALED: bool = true;
}

/// An admin reverses a committed trade between two players (permission `admin.grant`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReverseTrade {
    /// The trade.
    pub trade: u64,
    /// Its two players.
    pub players: (u64, u64),
}

impl Remote for ReverseTrade {
    const NAME: &'static str = "aquarium.admin.reverse_trade";
    const SEALED: bool = true;
    fn validate(&self) -> Result<(), String> {
        if self.players.0 == self.players.1 {
            Err("a trade is between two players".into())
        } else {
            Ok(())
        }
    }
    fn permission(&self) -> Option<&'static str> {
        Some("admin.grant")
    }
}

impl RemoteFunction for ReverseTrade {
    /// What each side got back.
    type Response = String;
}
