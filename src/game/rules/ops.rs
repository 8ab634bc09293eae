//! The game's operations (buy, sell, feed, gift) and how each changes a profile, and the
//! profile's view as the client sees it ([`state_of`]) and back ([`to_profile`]).

use serde::{Deserialize, Serialize};

use super::economy::{self, Catalog, EconomyError};
use crate::game::data::{Aquarium, Fish, Profile};
use crate::game::protocol::{FishState, PlayerState, ShopItem};

/// A game operation the client predicts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum GameOp {
    /// Buy from the shop.
    Purchase {
        /// What.
        item: ShopItem,
        /// How many.
        quantity: u32,
    },
    /// Sell one fish.
    Sell {
        /// The fish.
        fish: u64,
    },
    /// Feed one fish or all.
    Feed {
        /// The fish (`None`: all).
        fish: Option<u64>,
    },
    /// Give coins to another online player.
    Gift {
        /// The recipient.
        to: u64,
        /// Coins.
        coins: i64,
    },
}

/// The state as a profile, to run the economy's rules on it.
pub fn to_profile(state: &PlayerState) -> Profile {
    let mut p = Profile::new(0, Aquarium::new(state.coins));
    p.tank.level = state.tank_level;
    p.tank.decorations = state
        .decorations
        .iter()
        .filter_map(|k| economy::DECORATIONS.get(usize::from(*k)))
        .map(|n| n.to_string())
        .collect();
    p.fish = state
        .fish
        .iter()
        .map(|f| Fish {
            id: f.id,
            species: f.species,
            name: String::new(),
            hunger: f.hunger,
            from_trade: None,
        })
        .collect();
    p
}

/// A profile's game state as the client sees it.
pub fn state_of(profile: &Profile, last_op: u64) -> PlayerState {
    PlayerState {
        coins: profile.stats.coins,
        tank_level: profile.tank.level,
        fish: profile
            .fish
            .iter()
            .map(|f| FishState {
                id: f.id,
                species: f.species,
                hunger: f.hunger,
            })
            .collect(),
        decorations: economy::decoration_kinds(profile),
        last_op,
    }
}

/// Applies an operation to a profile with the economy's rules (the server and the client use
/// this same function).
pub fn apply(profile: &mut Profile, op: GameOp, catalog: &Catalog) -> Result<(), EconomyError> {
    match op {
        GameOp::Purchase { item, quantity } => catalog.buy(profile, item, quantity).map(|_| ()),
        GameOp::Sell { fish } => catalog.sell(profile, fish).map(|_| ()),
        GameOp::Feed { fish } => economy::feed(profile, fish).map(|_| ()),
        GameOp::Gift { coins, .. } => economy::give(profile, coins),
    }
}
