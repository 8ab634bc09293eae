//! The economy's rules as plain functions over a [`Profile`]: prices, capacity, purchases, and
//! the most a profile can earn per second (the income detector's bound).

use crate::config::{Config, ConfigError};
use crate::game::data::{Fish, Profile};
use crate::game::protocol::ShopItem;

/// Prices and limits from `game.*`.
#[derive(Debug, Clone, PartialEq)]
pub struct Catalog {
    /// Price of each fish species.
    pub fish_prices: Vec<i64>,
    /// Coins per second per fish of each species (fed).
    pub fish_income: Vec<f64>,
    /// Price of tank levels 1..=5 (index 0 is level 1).
    pub tank_prices: Vec<i64>,
    /// Fish each tank level holds.
    pub tank_capacity: Vec<u32>,
    /// Share of a fish's price refunded when it is sold (`game.sellRefund`).
    pub sell_refund: f64,
    /// Price of each decoration kind.
    pub decoration_prices: Vec<i64>,
}

/// Decoration names by kind (the generated models `Models/Props/*` and
/// `Models/Environment/*` they show as).
pub const DECORATIONS: [&str; 3] = ["Rock", "Plant", "Castle"];

/// Decorations a tank holds per level.
pub const DECORATIONS_PER_LEVEL: usize = 4;

/// Why a purchase cannot go through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EconomyError {
    /// A species the catalog does not sell.
    #[error("no fish species {0} in the shop")]
    UnknownSpecies(u8),
    /// The tank is at its highest level.
    #[error("the tank is already at its highest level ({0})")]
    MaxTankLevel(u8),
    /// Not enough room.
    #[error("the tank holds {capacity} fish; it has {have} and {adding} more do not fit")]
    TankFull {
        /// Capacity at the current level.
        capacity: u32,
        /// Fish now.
        have: u32,
        /// Fish asked for.
        adding: u32,
    },
    /// No decoration of that kind in the shop.
    #[error("no decoration {0} in the shop")]
    UnknownDecoration(u8),
    /// No room for more decorations.
    #[error("the tank holds {0} decorations; upgrade it for more")]
    DecorationsFull(usize),
    /// A gift of nothing (or less).
    #[error("a gift is 1 coin or more")]
    GiftTooSmall,
    /// A gift to oneself.
    #[error("you cannot send a gift to yourself")]
    GiftToSelf,
    /// The recipient is not on this server now.
    #[error("player {0} is not online")]
    NotOnline(u64),
    /// No player with that id has a saved aquarium.
    #[error("there is no player {0}")]
    NoSuchPlayer(u64),
    /// No fish with that id.
    #[error("there is no fish {0} in the tank")]
    NoSuchFish(u64),
    /// The tank is empty (nothing to feed).
    #[error("there are no fish to feed")]
    NoFish,
    /// Not enough coins.
    #[error("costs {price} coins, balance is {balance}")]
    InsufficientCoins {
        /// Total price.
        price: i64,
        /// Coins held.
        balance: i64,
    },
}

/// What a purchase did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// Coins paid.
    pub paid: i64,
    /// Fish ids added (fish purchases).
    pub fish: Vec<u64>,
    /// The tank level after.
    pub tank_level: u8,
}

impl Catalog {
    /// From the `game.*` keys.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        Ok(Self {
            fish_prices: config.get("game.fishPrices")?,
            fish_income: config.get("game.fishIncomePerSecond")?,
            tank_prices: config.get("game.tankUpgradePrices")?,
            tank_capacity: config
                .get::<Vec<i64>>("game.tankCapacity")?
                .into_iter()
                .map(|c| c.clamp(0, u32::MAX as i64) as u32)
                .collect(),
            sell_refund: config.get::<f64>("game.sellRefund")?.clamp(0.0, 1.0),
            decoration_prices: config.get("game.decorationPrices")?,
        })
    }

    /// Sells a fish: it leaves the tank and `sell_refund` of its price is paid back. Returns
    /// the coins paid.
    pub fn sell(&self, profile: &mut Profile, fish: u64) -> Result<i64, EconomyError> {
        let i = profile
            .fish
            .iter()
            .position(|f| f.id == fish)
            .ok_or(EconomyError::NoSuchFish(fish))?;
        let species = profile.fish[i].species;
        let price = self
            .fish_prices
            .get(usize::from(species))
            .copied()
            .unwrap_or(0)
            .max(0);
        let refund = (price as f64 * self.sell_refund).floor() as i64;
        profile.fish.remove(i);
        profile.stats.coins = profile.stats.coins.saturating_add(refund);
        Ok(refund)
    }

    /// Fish a tank of `level` holds (0 for a level the catalog does not know).
    pub fn capacity(&self, level: u8) -> u32 {
        self.tank_capacity
            .get(usize::from(level.max(1)) - 1)
            .copied()
            .unwrap_or(0)
    }

    /// The shop price of one fish or decoration (`None` for what the shop does not sell).
    pub fn price_of(&self, item: ShopItem) -> Option<i64> {
        let list = match item {
            ShopItem::Fish { species } => self.fish_prices.get(usize::from(species)),
            ShopItem::Decoration { kind } => self
                .decoration_prices
                .get(usize::from(kind))
                .filter(|_| usize::from(kind) < DECORATIONS.len()),
            ShopItem::TankUpgrade => None,
        };
        list.map(|p| (*p).max(0))
    }

    /// The total price of `quantity` of `item` for `profile` (a negative price in the config
    /// counts as free, never as income).
    pub fn price(
        &self,
        profile: &Profile,
        item: ShopItem,
        quantity: u32,
    ) -> Result<i64, EconomyError> {
        let each = self.price_of(item);
        let times = |p: i64| p.saturating_mul(i64::from(quantity));
        match item {
            ShopItem::Fish { species } => {
                each.map(times).ok_or(EconomyError::UnknownSpecies(species))
            }
            ShopItem::TankUpgrade => {
                let level = profile.tank.level;
                self.tank_prices
                    .get(usize::from(level))
                    .map(|p| (*p).max(0))
                    .filter(|_| usize::from(level) < self.tank_capacity.len())
                    .ok_or(EconomyError::MaxTankLevel(level))
            }
            ShopItem::Decoration { kind } => {
                each.map(times).ok_or(EconomyError::UnknownDecoration(kind))
            }
        }
    }

    /// The most `profile` can earn per second: every fish fed, at its species' rate.
    pub fn max_income_per_second(&self, profile: &Profile) -> f64 {
        profile
            .fish
            .iter()
            .map(|f| {
                self.fish_income
                    .get(usize::from(f.species))
                    .copied()
                    .unwrap_or(0.0)
                    .max(0.0)
            })
            .sum()
    }

    /// Buys `quantity` of `item` for `profile`: all or nothing.
    pub fn buy(
        &self,
        profile: &mut Profile,
        item: ShopItem,
        quantity: u32,
    ) -> Result<Receipt, EconomyError> {
        let price = self.price(profile, item, quantity)?;
        if let ShopItem::Fish { .. } = item {
            let capacity = self.capacity(profile.tank.level);
            let have = profile.fish.len() as u32;
            if have.saturating_add(quantity) > capacity {
                return Err(EconomyError::TankFull {
                    capacity,
                    have,
                    adding: quantity,
                });
            }
        }
        if let ShopItem::Decoration { .. } = item {
            let room = DECORATIONS_PER_LEVEL * usize::from(profile.tank.level.max(1));
            if profile.tank.decorations.len() + quantity as usize > room {
                return Err(EconomyError::DecorationsFull(room));
            }
        }
        if price > profile.stats.coins {
            return Err(EconomyError::InsufficientCoins {
                price,
                balance: profile.stats.coins,
            });
        }
        profile.stats.coins -= price;
        let mut fish = Vec::new();
        match item {
            ShopItem::Fish { species } => {
                let mut next = profile.fish.iter().map(|f| f.id).max().unwrap_or(0);
                for _ in 0..quantity {
                    next += 1;
                    profile.fish.push(Fish {
                        id: next,
                        species,
                        name: String::new(),
                        hunger: 0.0,
                        from_trade: None,
                    });
                    fish.push(next);
                }
            }
            ShopItem::TankUpgrade => profile.tank.level += 1,
            ShopItem::Decoration { kind } => {
                for _ in 0..quantity {
                    profile
                        .tank
                        .decorations
                        .push(DECORATIONS[usize::from(kind)].to_string());
                }
            }
        }
        Ok(Receipt {
            paid: price,
            fish,
            tank_level: profile.tank.level,
        })
    }
}

/// The sender's side of a gift: the coins leave the balance (the server credits the recipient).
pub fn give(profile: &mut Profile, coins: i64) -> Result<(), EconomyError> {
    if coins < 1 {
        return Err(EconomyError::GiftTooSmall);
    }
    if coins > profile.stats.coins {
        return Err(EconomyError::InsufficientCoins {
            price: coins,
            balance: profile.stats.coins,
        });
    }
    profile.stats.coins -= coins;
    Ok(())
}

/// Decoration kinds of a tank, in order (names the catalog does not know are left out).
pub fn decoration_kinds(profile: &Profile) -> Vec<u8> {
    profile
        .tank
        .decorations
        .iter()
        .filter_map(|d| DECORATIONS.iter().position(|n| n == d).map(|k| k as u8))
        .collect()
}

/// Feeds one fish, or all: hunger back to 0.
pub fn feed(profile: &mut Profile, fish: Option<u64>) -> Result<usize, EconomyError> {
    match fish {
        Some(id) => {
            let f = profile
                .fish
                .iter_mut()
                .find(|f| f.id == id)
                .ok_or(EconomyError::NoSuchFish(id))?;
            f.hunger = 0.0;
            Ok(1)
        }
        None if profile.fish.is_empty() => Err(EconomyError::NoFish),
        None => {
            for f in &mut profile.fish {
                f.hunger = 0.0;
            }
            Ok(profile.fish.len())
        }
    }
}

impl Catalog {
    /// What `profile` earns per second now: each fish at its species' rate, scaled by how fed
    /// it is (a starving fish earns nothing).
    pub fn income_per_second(&self, profile: &Profile) -> f64 {
        profile
            .fish
            .iter()
            .map(|f| {
                let rate = self
                    .fish_income
                    .get(usize::from(f.species))
                    .copied()
                    .unwrap_or(0.0)
                    .max(0.0);
                rate * f64::from((100.0 - f.hunger.clamp(0.0, 100.0)) / 100.0)
            })
            // From +0.0: a float sum starts at -0.0, and no fish printed as "-0.0 coins/s".
            .fold(0.0, |sum, r| sum + r)
    }
}

/// Advances a profile by `secs`: fish get hungrier by `hunger_per_minute`, coins accrue at
/// [`Catalog::income_per_second`] (taken before the hunger rises). `carry` holds the fraction
/// of a coin between calls. Returns the coins earned.
pub fn advance(
    profile: &mut Profile,
    catalog: &Catalog,
    hunger_per_minute: f64,
    secs: f64,
    carry: &mut f64,
) -> i64 {
    let earned = catalog.income_per_second(profile) * secs + *carry;
    let whole = earned.floor();
    *carry = earned - whole;
    let whole = whole as i64;
    profile.stats.coins = profile.stats.coins.saturating_add(whole);
    let rise = (hunger_per_minute * secs / 60.0) as f32;
    for f in &mut profile.fish {
        f.hunger = (f.hunger + rise).clamp(0.0, 100.0);
    }
    whole
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        Catalog {
            fish_prices: vec![10, 25],
            fish_income: vec![0.5, 2.0],
            tank_prices: vec![0, 500, 2500],
            tank_capacity: vec![3, 6, 9],
            sell_refund: 0.5,
            decoration_prices: vec![30, 40, 150],
        }
    }

    #[test]
    fn decorations_are_bought_within_the_tanks_room() {
        let c = catalog();
        let mut p = Profile::new(1, crate::game::Aquarium::new(1000));
        let castle = ShopItem::Decoration { kind: 2 };
        let r = c.buy(&mut p, castle, 1).unwrap();
        assert_eq!(r.paid, 150);
        assert_eq!(p.tank.decorations, vec!["Castle".to_string()]);
        assert_eq!(decoration_kinds(&p), vec![2]);
        // A level-1 tank holds four; a fifth is refused and nothing is paid.
        c.buy(&mut p, ShopItem::Decoration { kind: 0 }, 3).unwrap();
        assert_eq!(p.stats.coins, 1000 - 150 - 90);
        assert_eq!(
            c.buy(&mut p, ShopItem::Decoration { kind: 1 }, 1),
            Err(EconomyError::DecorationsFull(DECORATIONS_PER_LEVEL))
        );
        assert_eq!(p.stats.coins, 760);
        // An upgrade makes room for four more.
        p.tank.level = 2;
        c.buy(&mut p, ShopItem::Decoration { kind: 1 }, 1).unwrap();
        assert_eq!(decoration_kinds(&p), vec![2, 0, 0, 0, 1]);
        // A kind the shop does not sell.
        assert_eq!(
            c.buy(&mut p, ShopItem::Decoration { kind: 9 }, 1),
            Err(EconomyError::UnknownDecoration(9))
        );
    }

    #[test]
    fn gifts_leave_the_sender_only_when_they_can() {
        let mut p = Profile::new(1, crate::game::Aquarium::new(30));
        assert_eq!(give(&mut p, 0), Err(EconomyError::GiftTooSmall));
        assert_eq!(
            give(&mut p, 31),
            Err(EconomyError::InsufficientCoins {
                price: 31,
                balance: 30
            })
        );
        give(&mut p, 12).unwrap();
        assert_eq!(p.stats.coins, 18);
    }

    #[test]
    fn buying_fish_pays_and_adds_all_or_nothing() {
        let c = catalog();
        let mut p = Profile::new(1, crate::game::Aquarium::new(100));
        let r = c.buy(&mut p, ShopItem::Fish { species: 1 }, 2).unwrap();
        assert_eq!(r.paid, 50);
        assert_eq!(r.fish, vec![1, 2]);
        assert_eq!(p.stats.coins, 50);
        assert_eq!(c.max_income_per_second(&p), 4.0);
        // Over capacity: nothing changes.
        let before = p.clone();
        assert_eq!(
            c.buy(&mut p, ShopItem::Fish { species: 0 }, 2),
            Err(EconomyError::TankFull {
                capacity: 3,
                have: 2,
                adding: 2
            })
        );
        assert_eq!(p, before);
        // Over the balance: nothing changes.
        assert_eq!(
            c.buy(&mut p, ShopItem::Fish { species: 1 }, 1)
                .and_then(|_| c.buy(&mut p, ShopItem::Fish { species: 1 }, 1)),
            Err(EconomyError::TankFull {
                capacity: 3,
                have: 3,
                adding: 1
            })
        );
        assert_eq!(p.stats.coins, 25);
        assert_eq!(
            c.buy(&mut p, ShopItem::TankUpgrade, 1),
            Err(EconomyError::InsufficientCoins {
                price: 500,
                balance: 25
            })
        );
        assert_eq!(
            c.buy(&mut p, ShopItem::Fish { species: 9 }, 1),
            Err(EconomyError::UnknownSpecies(9))
        );
    }

    #[test]
    fn income_accrues_by_hunger_and_feeding_restores_it() {
        let c = catalog();
        let mut p = Profile::new(1, crate::game::Aquarium::new(100));
        c.buy(&mut p, ShopItem::Fish { species: 1 }, 2).unwrap();
        let mut carry = 0.0;
        // 2 fish x 2.0/s, fed: 4 coins a second.
        assert_eq!(advance(&mut p, &c, 30.0, 1.0, &mut carry), 4);
        assert_eq!(p.fish[0].hunger, 0.5);
        // After 100 s at 30/min both are starving: no income at all.
        advance(&mut p, &c, 30.0, 200.0, &mut carry);
        assert_eq!(p.fish[0].hunger, 100.0);
        assert_eq!(advance(&mut p, &c, 30.0, 1.0, &mut carry), 0);
        assert_eq!(feed(&mut p, Some(2)), Ok(1));
        assert_eq!(p.fish[1].hunger, 0.0);
        assert_eq!(feed(&mut p, Some(9)), Err(EconomyError::NoSuchFish(9)));
        assert_eq!(feed(&mut p, None), Ok(2));
        // Fractions carry over.
        let mut q = Profile::new(2, crate::game::Aquarium::new(10));
        c.buy(&mut q, ShopItem::Fish { species: 0 }, 1).ok();
        let mut carry = 0.0;
        let total: i64 = (0..10)
            .map(|_| advance(&mut q, &c, 0.0, 0.5, &mut carry))
            .sum();
        assert_eq!(total, 2, "0.5/s for 5 s");
    }

    #[test]
    fn selling_refunds_part_of_the_price() {
        let c = catalog();
        let mut p = Profile::new(1, crate::game::Aquarium::new(100));
        c.buy(&mut p, ShopItem::Fish { species: 1 }, 1).unwrap();
        assert_eq!(c.sell(&mut p, 1), Ok(12));
        assert_eq!(p.stats.coins, 100 - 25 + 12);
        assert!(p.fish.is_empty());
        assert_eq!(c.sell(&mut p, 1), Err(EconomyError::NoSuchFish(1)));
    }

    #[test]
    fn tank_upgrades_stop_at_the_last_level() {
        let c = catalog();
        let mut p = Profile::new(1, crate::game::Aquarium::new(10_000));
        assert_eq!(
            c.buy(&mut p, ShopItem::TankUpgrade, 1).unwrap().tank_level,
            2
        );
        assert_eq!(
            c.buy(&mut p, ShopItem::TankUpgrade, 1).unwrap().tank_level,
            3
        );
        assert_eq!(p.stats.coins, 10_000 - 500 - 2500);
        assert_eq!(
            c.buy(&mut p, ShopItem::TankUpgrade, 1),
            Err(EconomyError::MaxTankLevel(3))
        );
        assert_eq!(c.capacity(3), 9);
    }

    /// Each `game.*` key of the catalog, changed, changes what the shop does.
    #[test]
    fn the_game_keys_set_prices_capacity_income_and_refund() {
        use crate::protocol::ConfigValue::{Float, Int, List};
        let ints = |v: &[i64]| List(v.iter().map(|i| Int(*i)).collect());
        let defaults = crate::config::defaults_with_game_for_tests(&crate::game::KEYS);
        let d = Catalog::from_config(&defaults).unwrap();
        let c = Catalog::from_config(&crate::config::changed_for_tests(
            &crate::game::KEYS,
            &[
                ("game.fishPrices", ints(&[3, 7])),
                (
                    "game.fishIncomePerSecond",
                    List(vec![Float(4.0), Float(9.0)]),
                ),
                ("game.tankUpgradePrices", ints(&[0, 11, 22])),
                ("game.tankCapacity", ints(&[1, 2, 3])),
                ("game.decorationPrices", ints(&[5, 6, 7])),
                ("game.sellRefund", Float(1.0)),
            ],
        ))
        .unwrap();
        let p = Profile::new(1, crate::game::Aquarium::new(1000));
        let fish = |s| ShopItem::Fish { species: s };
        // game.fishPrices
        assert_eq!(d.price(&p, fish(1), 2), Ok(50));
        assert_eq!(c.price(&p, fish(1), 2), Ok(14));
        // game.tankUpgradePrices
        assert_eq!(d.price(&p, ShopItem::TankUpgrade, 1), Ok(500));
        assert_eq!(c.price(&p, ShopItem::TankUpgrade, 1), Ok(11));
        // game.decorationPrices
        let castle = ShopItem::Decoration { kind: 2 };
        assert_eq!(
            (d.price(&p, castle, 1), c.price(&p, castle, 1)),
            (Ok(150), Ok(7))
        );
        // game.tankCapacity: one fish fills a level-1 tank
        let mut q = p.clone();
        assert!(c.buy(&mut q, fish(0), 1).is_ok());
        assert!(matches!(
            c.buy(&mut q, fish(0), 1),
            Err(EconomyError::TankFull { capacity: 1, .. })
        ));
        let mut r = p.clone();
        assert!(d.buy(&mut r, fish(0), 2).is_ok(), "5 fit by default");
        // game.fishIncomePerSecond
        assert_eq!(c.income_per_second(&q), 4.0);
        assert_eq!(d.income_per_second(&q), 0.2);
        // game.sellRefund: all of the price back (half by default)
        let id = q.fish[0].id;
        assert_eq!(c.sell(&mut q.clone(), id), Ok(3));
        let id = r.fish[0].id;
        assert_eq!(d.sell(&mut r, id), Ok(5));
    }
}
