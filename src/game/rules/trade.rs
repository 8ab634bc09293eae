//! Trades as plain rules: what one side offers ([`TradeGoods`], ids and kinds as the client
//! names them), taking it out of a profile all or nothing ([`take`]) as the [`Parcel`] that
//! travels through the inbox, putting a parcel into a profile ([`put`]), and an admin's
//! reversal ([`reverse`]).

use serde::{Deserialize, Serialize};

use super::economy::{Catalog, DECORATIONS};
use crate::game::data::{Aquarium, Fish, Profile};
use crate::game::protocol::{ShopItem, TradeGoods};

/// Goods on their way: the fish themselves and the decorations by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Parcel {
    /// Coins.
    pub coins: i64,
    /// The fish.
    pub fish: Vec<Fish>,
    /// Decoration names.
    pub decorations: Vec<String>,
}

/// Why a trade's goods cannot be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TradeError {
    /// Goods outside the protocol's limits.
    #[error("{0}")]
    Goods(String),
    /// Not enough coins.
    #[error("{who} has {balance} coins, not {coins}")]
    NotEnoughCoins {
        /// Whose.
        who: String,
        /// Asked.
        coins: i64,
        /// Held.
        balance: i64,
    },
    /// No such fish.
    #[error("{who} has no fish {fish}")]
    NoFish {
        /// Whose.
        who: String,
        /// The fish.
        fish: u64,
    },
    /// Not enough decorations of a kind.
    #[error("{who} has too few {kind} decorations")]
    NoDecoration {
        /// Whose.
        who: String,
        /// The kind.
        kind: String,
    },
}

/// Takes `goods` out of `profile` (all or nothing) as a parcel; `who` names the side in errors.
pub fn take(profile: &mut Profile, goods: &TradeGoods, who: &str) -> Result<Parcel, TradeError> {
    goods.check().map_err(TradeError::Goods)?;
    let mut next = profile.data.clone();
    if goods.coins > next.stats.coins {
        return Err(TradeError::NotEnoughCoins {
            who: who.into(),
            coins: goods.coins,
            balance: next.stats.coins,
        });
    }
    next.stats.coins -= goods.coins;
    let mut parcel = Parcel {
        coins: goods.coins,
        ..Default::default()
    };
    for id in &goods.fish {
        let i = next
            .fish
            .iter()
            .position(|f| f.id == *id)
            .ok_or_else(|| TradeError::NoFish {
                who: who.into(),
                fish: *id,
            })?;
        parcel.fish.push(next.fish.remove(i));
    }
    for kind in &goods.decorations {
        let name = DECORATIONS
            .get(usize::from(*kind))
            .ok_or_else(|| TradeError::NoDecoration {
                who: who.into(),
                kind: format!("#{kind}"),
            })?;
        let i = next
            .tank
            .decorations
            .iter()
            .position(|d| d == name)
            .ok_or_else(|| TradeError::NoDecoration {
                who: who.into(),
                kind: (*name).to_string(),
            })?;
        parcel.decorations.push(next.tank.decorations.remove(i));
    }
    profile.data = next;
    Ok(parcel)
}

/// Puts a parcel from trade `trade` into `data`: coins added, fish given fresh ids where
/// theirs are taken and marked as arrived by that trade, decorations placed.
pub fn put(data: &mut Aquarium, parcel: &Parcel, trade: u64) {
    data.stats.coins = data.stats.coins.saturating_add(parcel.coins.max(0));
    let mut next = data.fish.iter().map(|f| f.id).max().unwrap_or(0);
    for f in &parcel.fish {
        let mut fish = f.clone();
        if data.fish.iter().any(|x| x.id == fish.id) {
            next += 1;
            fish.id = next;
        }
        next = next.max(fish.id);
        fish.from_trade = Some(trade);
        data.fish.push(fish);
    }
    data.tank
        .decorations
        .extend(parcel.decorations.iter().cloned());
}

/// What a reversal did for one side: what came back and the coins paid for what could not.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Returned {
    /// Coins returned by the other side.
    pub coins: i64,
    /// Fish returned.
    pub fish: usize,
    /// Decorations returned.
    pub decorations: usize,
    /// Coins paid (at shop prices) for what the other side no longer had.
    pub compensation: i64,
}

/// Reverses trade `trade` in which `a` sent `sent_a` and `b` sent `sent_b`: each side gets back
/// what the other still has of it (coins up to the other's balance, fish that arrived by this
/// trade, decorations of the same name), and the shop price of the rest. Returns what each
/// side got back.
pub fn reverse(
    (a, sent_a): (&mut Aquarium, &Parcel),
    (b, sent_b): (&mut Aquarium, &Parcel),
    trade: u64,
    catalog: &Catalog,
) -> (Returned, Returned) {
    let to_a = give_back(b, a, sent_a, trade, catalog);
    let to_b = give_back(a, b, sent_b, trade, catalog);
    (to_a, to_b)
}

/// `holder` gives back to `owner` what it still has of `parcel`; the rest is paid at shop price.
fn give_back(
    holder: &mut Aquarium,
    owner: &mut Aquarium,
    parcel: &Parcel,
    trade: u64,
    catalog: &Catalog,
) -> Returned {
    let mut r = Returned::default();
    let coins = parcel.coins.max(0);
    r.coins = coins.min(holder.stats.coins.max(0));
    holder.stats.coins -= r.coins;
    owner.stats.coins = owner.stats.coins.saturating_add(r.coins);
    r.compensation += coins - r.coins;
    let mut back = Parcel::default();
    for f in &parcel.fish {
        let here = holder
            .fish
            .iter()
            .position(|x| x.from_trade == Some(trade) && x.species == f.species);
        match here {
            Some(i) => {
                let mut fish = holder.fish.remove(i);
                fish.from_trade = None;
                back.fish.push(fish);
                r.fish += 1;
            }
            None => {
                let price = catalog
                    .price_of(ShopItem::Fish { species: f.species })
                    .unwrap_or(0);
                r.compensation += price;
            }
        }
    }
    for d in &parcel.decorations {
        match holder.tank.decorations.iter().position(|x| x == d) {
            Some(i) => {
                back.decorations.push(holder.tank.decorations.remove(i));
                r.decorations += 1;
            }
            None => {
                let kind = DECORATIONS.iter().position(|n| n == d).unwrap_or(0) as u8;
                r.compensation += catalog.price_of(ShopItem::Decoration { kind }).unwrap_or(0);
            }
        }
    }
    // Fish coming home are not "from a trade" any more.
    put(owner, &back, trade);
    for f in owner
        .fish
        .iter_mut()
        .filter(|f| f.from_trade == Some(trade))
    {
        f.from_trade = None;
    }
    owner.stats.coins = owner.stats.coins.saturating_add(r.compensation);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        Catalog::from_config(&crate::config::defaults_with_game_for_tests(
            &crate::game::KEYS,
        ))
        .unwrap()
    }

    fn with(coins: i64, fish: &[(u64, u8)], decorations: &[&str]) -> Profile {
        let mut p = Profile::new(1, Aquarium::new(coins));
        for (id, species) in fish {
            p.fish.push(Fish {
                id: *id,
                species: *species,
                name: String::new(),
                hunger: 0.0,
                from_trade: None,
            });
        }
        p.tank.decorations = decorations.iter().map(|d| d.to_string()).collect();
        p
    }

    #[test]
    fn take_is_all_or_nothing() {
        let mut p = with(50, &[(1, 0), (2, 1)], &["Rock"]);
        let before = p.clone();
        let too_much = TradeGoods {
            coins: 10,
            fish: vec![1, 9],
            decorations: vec![],
        };
        assert!(matches!(
            take(&mut p, &too_much, "Ann"),
            Err(TradeError::NoFish { fish: 9, .. })
        ));
        assert_eq!(p, before);
        let twice = TradeGoods {
            coins: 0,
            fish: vec![1, 1],
            decorations: vec![],
        };
        assert!(matches!(
            take(&mut p, &twice, "Ann"),
            Err(TradeError::Goods(_))
        ));
        let castle = TradeGoods {
            decorations: vec![2],
            ..Default::default()
        };
        assert!(matches!(
            take(&mut p, &castle, "Ann"),
            Err(TradeError::NoDecoration { .. })
        ));
        let ok = TradeGoods {
            coins: 10,
            fish: vec![2],
            decorations: vec![0],
        };
        let parcel = take(&mut p, &ok, "Ann").unwrap();
        assert_eq!(parcel.coins, 10);
        assert_eq!(parcel.fish.len(), 1);
        assert_eq!(parcel.decorations, vec!["Rock".to_string()]);
        assert_eq!(p.stats.coins, 40);
        assert_eq!(p.fish.len(), 1);
        assert!(p.tank.decorations.is_empty());
        assert!(TradeGoods::default().is_empty());
        let neg = TradeGoods {
            coins: -1,
            ..Default::default()
        };
        assert!(neg.check().is_err());
    }

    #[test]
    fn put_gives_clashing_fish_fresh_ids() {
        let mut p = with(0, &[(1, 0), (2, 0)], &[]);
        let parcel = Parcel {
            coins: 5,
            fish: with(0, &[(2, 3), (7, 4)], &[]).fish.clone(),
            decorations: vec!["Plant".into()],
        };
        put(&mut p.data, &parcel, 11);
        let ids: Vec<u64> = p.fish.iter().map(|f| f.id).collect();
        assert_eq!(ids, vec![1, 2, 3, 7]);
        assert!(p.fish[2..].iter().all(|f| f.from_trade == Some(11)));
        assert_eq!(p.stats.coins, 5);
        assert_eq!(p.tank.decorations, vec!["Plant".to_string()]);
    }

    /// Ann gave Bob a clownfish and 20 coins for his castle; Bob since sold the clownfish and
    /// spent all but 5 coins. Reversed: Ann gets 5 coins back, 15 and the clownfish's shop
    /// price as compensation; Bob gets his castle back.
    #[test]
    fn reversal_returns_what_is_left_and_pays_for_the_rest() {
        let c = catalog();
        let mut ann = with(100, &[(1, 1)], &[]);
        let mut bob = with(30, &[], &["Castle"]);
        let give_a = TradeGoods {
            coins: 20,
            fish: vec![1],
            decorations: vec![],
        };
        let give_b = TradeGoods {
            decorations: vec![2],
            ..Default::default()
        };
        let sent_a = take(&mut ann, &give_a, "Ann").unwrap();
        let sent_b = take(&mut bob, &give_b, "Bob").unwrap();
        put(&mut bob.data, &sent_a, 4);
        put(&mut ann.data, &sent_b, 4);
        assert_eq!((ann.stats.coins, bob.stats.coins), (80, 50));
        // Bob sells the fish and spends 45 coins.
        bob.fish.clear();
        bob.stats.coins = 5;
        let (to_ann, to_bob) = reverse((&mut ann.data, &sent_a), (&mut bob.data, &sent_b), 4, &c);
        let clownfish = c.price_of(ShopItem::Fish { species: 1 }).unwrap();
        assert_eq!(
            to_ann,
            Returned {
                coins: 5,
                fish: 0,
                decorations: 0,
                compensation: 15 + clownfish,
            }
        );
        assert_eq!(
            to_bob,
            Returned {
                decorations: 1,
                ..Default::default()
            }
        );
        assert_eq!(ann.stats.coins, 80 + 5 + 15 + clownfish);
        assert_eq!(bob.stats.coins, 0);
        assert_eq!(bob.tank.decorations, vec!["Castle".to_string()]);
        assert!(ann.tank.decorations.is_empty());

        // Had Bob kept it all, everything goes home and nobody is paid.
        let mut ann = with(100, &[(1, 1)], &[]);
        let mut bob = with(30, &[(1, 0)], &["Castle"]);
        let sent_a = take(&mut ann, &give_a, "Ann").unwrap();
        let sent_b = take(&mut bob, &give_b, "Bob").unwrap();
        put(&mut bob.data, &sent_a, 5);
        put(&mut ann.data, &sent_b, 5);
        let (to_ann, to_bob) = reverse((&mut ann.data, &sent_a), (&mut bob.data, &sent_b), 5, &c);
        assert_eq!((to_ann.compensation, to_bob.compensation), (0, 0));
        assert_eq!((ann.stats.coins, bob.stats.coins), (100, 30));
        assert_eq!(ann.fish.len(), 1);
        assert_eq!(ann.fish[0].from_trade, None);
        assert_eq!(bob.fish.len(), 1);
        assert_eq!(bob.tank.decorations.len(), 1);
    }
}
