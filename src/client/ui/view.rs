//! What the panels show, in plain data: the rows of each panel (a line of text and its buttons),
//! the actions a button or a key asks for, and the keys' meanings. No `World` here; the systems
//! in the module above turn rows into nodes and actions into calls.

use crate::game::protocol::{PlayerState, TradeAction, TradeStage, TradeView};
use crate::game::{Catalog, DECORATION_KEYS, DECORATIONS, SPECIES, Species, TradeBook};

/// Coins one gift gives (G, or a Gift button).
pub const GIFT_COINS: i64 = 10;

/// How many other players the leaderboard and trade panels list.
pub const LISTED_PLAYERS: usize = 6;

/// Which panel is open.
#[derive(bevy::prelude::Resource, Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Panel {
    /// None.
    #[default]
    Closed,
    /// Prices and buy buttons.
    Shop,
    /// What the player has.
    Inventory,
    /// The player's settings.
    Settings,
    /// Trades: open ones, offers to make.
    Trade,
    /// Who is online, by coins; visit and gift.
    Leaderboard,
}

impl Panel {
    /// Every panel, in the order Tab walks them (then closed again).
    pub const ALL: [Panel; 5] = [
        Panel::Shop,
        Panel::Inventory,
        Panel::Settings,
        Panel::Trade,
        Panel::Leaderboard,
    ];

    /// The next one for Tab.
    pub fn next(self) -> Panel {
        match Self::ALL.iter().position(|p| *p == self) {
            Some(i) if i + 1 < Self::ALL.len() => Self::ALL[i + 1],
            Some(_) => Panel::Closed,
            None => Panel::Shop,
        }
    }

    /// Its name on the bar's button and in the state dump.
    pub fn name(self) -> &'static str {
        match self {
            Panel::Closed => "Closed",
            Panel::Shop => "Shop",
            Panel::Inventory => "Inventory",
            Panel::Settings => "Settings",
            Panel::Trade => "Trade",
            Panel::Leaderboard => "Leaderboard",
        }
    }
}

/// Something a button or a key asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UiAction {
    /// Opens this panel, or closes it when it is open.
    Toggle(Panel),
    /// Tab: the next panel.
    NextPanel,
    /// Buys a fish of a species.
    BuyFish(u8),
    /// Buys a decoration of a kind.
    BuyDecoration(u8),
    /// Buys the next tank level.
    UpgradeTank,
    /// Sells the newest fish.
    SellNewest,
    /// Sells the newest fish of a species.
    SellSpecies(u8),
    /// Feeds every fish.
    FeedAll,
    /// Gives [`GIFT_COINS`] to the player being visited, else the first other player online.
    GiftAny,
    /// Gives [`GIFT_COINS`] to a player.
    GiftTo(u64),
    /// Visits the next other player online.
    VisitNext,
    /// Visits a player.
    VisitPlayer(u64),
    /// Back to the player's own aquarium.
    GoHome,
    /// Quality level one step down (-1) or up (+1).
    Quality(i8),
    /// Frame cap 15 lower (-1) or higher (+1).
    FpsCap(i8),
    /// The next particle quality.
    Particles,
    /// Shadows on or off.
    Shadows,
    /// Master volume a tenth down (-1) or up (+1).
    Volume(i8),
    /// The F3 overlay on or off.
    Overlay,
    /// The coins asked for the newest fish in a trade offer, 10 less (-1) or more (+1).
    AskCoins(i8),
    /// Offers a player the newest fish for the coins asked.
    OfferTrade(u64),
    /// Acts on an open trade.
    Trade(u64, TradeAction),
}

impl UiAction {
    /// A short stable name (the state dump's, and the play-through script's).
    pub fn id(&self) -> String {
        match self {
            UiAction::Toggle(p) => format!("panel-{}", p.name().to_lowercase()),
            UiAction::NextPanel => "next-panel".into(),
            UiAction::BuyFish(s) => format!("buy-fish-{s}"),
            UiAction::BuyDecoration(k) => format!("buy-decoration-{k}"),
            UiAction::UpgradeTank => "upgrade".into(),
            UiAction::SellNewest => "sell".into(),
            UiAction::SellSpecies(s) => format!("sell-{s}"),
            UiAction::FeedAll => "feed".into(),
            UiAction::GiftAny => "gift".into(),
            UiAction::GiftTo(p) => format!("gift-{p}"),
            UiAction::VisitNext => "visit".into(),
            UiAction::VisitPlayer(p) => format!("visit-{p}"),
            UiAction::GoHome => "home".into(),
            UiAction::Quality(d) => format!("quality{d:+}"),
            UiAction::FpsCap(d) => format!("fps{d:+}"),
            UiAction::Particles => "particles".into(),
            UiAction::Shadows => "shadows".into(),
            UiAction::Volume(d) => format!("volume{d:+}"),
            UiAction::Overlay => "overlay".into(),
            UiAction::AskCoins(d) => format!("ask{d:+}"),
            UiAction::OfferTrade(p) => format!("offer-{p}"),
            UiAction::Trade(t, a) => format!("trade-{t}-{a:?}").to_lowercase(),
        }
    }
}

/// One line of a panel: its text and its buttons (label, action).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The line.
    pub text: String,
    /// Its buttons, right of the text.
    pub buttons: Vec<(String, UiAction)>,
}

impl Row {
    fn text(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            buttons: Vec::new(),
        }
    }

    fn with(mut self, label: impl Into<String>, action: UiAction) -> Self {
        self.buttons.push((label.into(), action));
        self
    }
}

/// The buttons along the bottom of the screen: the panels, then the everyday actions.
pub fn bar() -> Vec<(String, UiAction)> {
    let mut out: Vec<(String, UiAction)> = Panel::ALL
        .iter()
        .map(|p| (p.name().to_string(), UiAction::Toggle(*p)))
        .collect();
    out.extend([
        ("Feed (F)".to_string(), UiAction::FeedAll),
        ("Upgrade (U)".to_string(), UiAction::UpgradeTank),
        ("Visit (V)".to_string(), UiAction::VisitNext),
        ("Stats (F3)".to_string(), UiAction::Overlay),
    ]);
    out
}

/// What the panels are drawn from.
#[derive(Debug, Clone, Copy)]
pub struct ViewInputs<'a> {
    /// The shop's prices (none until the config arrived).
    pub catalog: Option<&'a Catalog>,
    /// The player's predicted state.
    pub state: Option<&'a PlayerState>,
    /// The client's config (settings).
    pub config: &'a crate::config::Config,
    /// Whose aquarium is shown, when visiting: (id, name).
    pub visiting: Option<(u64, &'a str)>,
    /// The leaderboard as the HUD ranks it: (id, name, coins), the player's own entry with the
    /// HUD's figure.
    pub board: &'a [(u64, String, i64)],
    /// The player's own rank among every player of the store, when the server has said.
    pub rank: Option<u64>,
    /// The name the server welcomed this player by.
    pub me: Option<&'a str>,
    /// The player's trades (and which of them it offered).
    pub trades: &'a TradeBook,
    /// The coins asked for the newest fish in an offer.
    pub ask: i64,
}

impl ViewInputs<'_> {
    fn others(&self) -> impl Iterator<Item = &(u64, String, i64)> {
        self.board
            .iter()
            .filter(|(_, name, _)| Some(name.as_str()) != self.me)
            .take(LISTED_PLAYERS)
    }
}

/// The rows of `panel`.
pub fn rows(panel: Panel, v: &ViewInputs) -> Vec<Row> {
    match panel {
        Panel::Closed => match v.visiting {
            Some((id, name)) => vec![
                Row::text(format!("Visiting {name}'s aquarium (read-only)")),
                Row::text("")
                    .with("Next (V)", UiAction::VisitNext)
                    .with(format!("Gift {GIFT_COINS} (G)"), UiAction::GiftTo(id))
                    .with("Home (Esc)", UiAction::GoHome),
            ],
            None => Vec::new(),
        },
        Panel::Shop => shop(v),
        Panel::Inventory => inventory(v),
        Panel::Settings => settings(v),
        Panel::Trade => trade(v),
        Panel::Leaderboard => leaderboard(v),
    }
}

fn title(s: &str) -> Row {
    Row::text(format!("{s} (Tab: next panel)"))
}

fn shop(v: &ViewInputs) -> Vec<Row> {
    let Some(c) = v.catalog else {
        return vec![title("SHOP"), Row::text("the shop is closed")];
    };
    let mut out = vec![title("SHOP")];
    for (i, sp) in SPECIES.iter().enumerate() {
        let price = c.fish_prices.get(i).copied().unwrap_or(0);
        let income = c.fish_income.get(i).copied().unwrap_or(0.0);
        out.push(
            Row::text(format!("{} {price} coins, +{income}/s", sp.display_name()))
                .with(format!("Buy ({})", sp.key), UiAction::BuyFish(i as u8)),
        );
    }
    for ((i, name), key) in DECORATIONS.iter().enumerate().zip(DECORATION_KEYS) {
        let price = c.decoration_prices.get(i).copied().unwrap_or(0);
        out.push(
            Row::text(format!("{name} {price} coins"))
                .with(format!("Buy ({key})"), UiAction::BuyDecoration(i as u8)),
        );
    }
    let level = v.state.map_or(1, |s| s.tank_level);
    match c.tank_prices.get(usize::from(level)) {
        Some(p) if usize::from(level) < c.tank_capacity.len() => out.push(
            Row::text(format!(
                "Tank Lv{} {p} coins (holds {} fish)",
                level + 1,
                c.capacity(level + 1)
            ))
            .with("Upgrade (U)", UiAction::UpgradeTank),
        ),
        _ => out.push(Row::text("The tank is at its highest level")),
    }
    out.push(
        Row::text("")
            .with("Sell newest (S)", UiAction::SellNewest)
            .with("Feed all (F)", UiAction::FeedAll),
    );
    out
}

fn inventory(v: &ViewInputs) -> Vec<Row> {
    let (Some(st), Some(c)) = (v.state, v.catalog) else {
        return vec![title("INVENTORY"), Row::text("loading...")];
    };
    let mut out = vec![title("INVENTORY")];
    for (i, sp) in SPECIES.iter().enumerate() {
        let fish: Vec<_> = st
            .fish
            .iter()
            .filter(|f| usize::from(f.species) == i)
            .collect();
        if fish.is_empty() {
            continue;
        }
        let hunger = fish.iter().map(|f| f.hunger).sum::<f32>() / fish.len() as f32;
        out.push(
            Row::text(format!(
                "{} x{}, hunger {hunger:.0}%",
                sp.display_name(),
                fish.len()
            ))
            .with("Sell one", UiAction::SellSpecies(i as u8)),
        );
    }
    for (k, name) in DECORATIONS.iter().enumerate() {
        let n = st
            .decorations
            .iter()
            .filter(|d| usize::from(**d) == k)
            .count();
        if n > 0 {
            out.push(Row::text(format!("{name} x{n}")));
        }
    }
    if st.fish.is_empty() && st.decorations.is_empty() {
        out.push(Row::text("Nothing yet: the shop sells fish"));
    }
    out.push(
        Row::text(format!(
            "Tank Lv{}: {} of {} fish, earning {:.1} coins/s",
            st.tank_level,
            st.fish.len(),
            c.capacity(st.tank_level),
            c.income_per_second(&crate::game::to_profile(st))
        ))
        .with("Feed all (F)", UiAction::FeedAll),
    );
    out
}

fn settings(v: &ViewInputs) -> Vec<Row> {
    // Text values without their quotes ("HIGH", not "\"HIGH\"").
    let get = |k: &str| {
        v.config.value(k).map_or_else(
            |_| "?".into(),
            |v| format!("{v}").trim_matches('"').to_string(),
        )
    };
    vec![
        Row::text("SETTINGS (saved as your preferences)"),
        Row::text(format!("Quality level {}", get("graphics.qualityLevel")))
            .with("- ([)", UiAction::Quality(-1))
            .with("+ (])", UiAction::Quality(1)),
        Row::text(format!("Frame cap {}", get("graphics.fpsCap")))
            .with("- (-)", UiAction::FpsCap(-1))
            .with("+ (=)", UiAction::FpsCap(1)),
        Row::text(format!("Particles {}", get("graphics.particleQuality")))
            .with("Next (P)", UiAction::Particles),
        Row::text(format!("Shadows {}", get("graphics.shadows")))
            .with("Switch (H)", UiAction::Shadows),
        Row::text(format!("Volume {}", get("audio.masterVolume")))
            .with("- (,)", UiAction::Volume(-1))
            .with("+ (.)", UiAction::Volume(1)),
    ]
}

/// The buttons of an open trade for this player: accept or decline an offer made to them,
/// confirm an accepted one they have not confirmed, cancel their own offer or an accepted one.
fn trade_buttons(t: &TradeView, mine: bool) -> Vec<(String, UiAction)> {
    let act = |label: &str, a: TradeAction| (label.to_string(), UiAction::Trade(t.trade, a));
    match &t.stage {
        TradeStage::Offered if mine => vec![act("Cancel", TradeAction::Cancel)],
        TradeStage::Offered => vec![
            act("Accept", TradeAction::Accept),
            act("Decline", TradeAction::Decline),
        ],
        TradeStage::Accepted {
            from_confirmed,
            to_confirmed,
        } => {
            let confirmed = if mine { *from_confirmed } else { *to_confirmed };
            let mut b = Vec::new();
            if !confirmed {
                b.push(act("Confirm", TradeAction::Confirm));
            }
            b.push(act("Cancel", TradeAction::Cancel));
            b
        }
        _ => Vec::new(),
    }
}

fn stage_words(s: &TradeStage) -> String {
    match s {
        TradeStage::Offered => "offered".into(),
        TradeStage::Accepted {
            from_confirmed,
            to_confirmed,
        } => match (from_confirmed, to_confirmed) {
            (false, false) => "accepted: both confirm".into(),
            _ => "one side confirmed".into(),
        },
        TradeStage::Committing => "saving".into(),
        TradeStage::Done => "done".into(),
        TradeStage::Declined => "declined".into(),
        TradeStage::Cancelled { reason } => format!("cancelled ({reason})"),
        TradeStage::Failed { reason } => format!("failed ({reason})"),
    }
}

fn trade(v: &ViewInputs) -> Vec<Row> {
    let name = |id: u64| {
        v.board
            .iter()
            .find(|(p, ..)| *p == id)
            .map_or_else(|| format!("player {id}"), |(_, n, _)| n.clone())
    };
    let mut out = vec![title("TRADES")];
    let open: Vec<&TradeView> = v.trades.open().collect();
    for t in &open {
        let mine = v.trades.offered.contains(&t.trade);
        let (to_from, other, gives, gets) = if mine {
            ("To", t.to, "your", "their")
        } else {
            ("From", t.from, "their", "your")
        };
        let text = format!(
            "{to_from} {}: {gives} {} for {gets} {}, {}",
            name(other),
            crate::game::client::goods_text(&t.give),
            crate::game::client::goods_text(&t.want),
            stage_words(&t.stage)
        );
        out.push(Row {
            text,
            buttons: trade_buttons(t, mine),
        });
    }
    // The last two that ended, for the record.
    let ended: Vec<&TradeView> = v
        .trades
        .trades
        .values()
        .filter(|t| !t.stage.is_open())
        .collect();
    for t in ended.iter().rev().take(2) {
        out.push(Row::text(format!(
            "Trade with {}: {}",
            name(if v.trades.offered.contains(&t.trade) {
                t.to
            } else {
                t.from
            }),
            stage_words(&t.stage)
        )));
    }
    let newest = v.state.and_then(|s| s.newest_fish(None)).map(|f| {
        SPECIES
            .get(usize::from(f.species))
            .map_or_else(|| "fish".to_string(), Species::display_name)
    });
    match newest {
        Some(species) => {
            out.push(
                Row::text(format!(
                    "Offer your newest fish ({species}) for {} coins",
                    v.ask
                ))
                .with("-10", UiAction::AskCoins(-1))
                .with("+10", UiAction::AskCoins(1)),
            );
            let mut any = false;
            for (id, other, _) in v.others() {
                any = true;
                out.push(
                    Row::text(format!("  to {other}")).with("Offer", UiAction::OfferTrade(*id)),
                );
            }
            if !any {
                out.push(Row::text("Nobody else is online to trade with"));
            }
        }
        None => out.push(Row::text("Buy a fish to offer it in a trade")),
    }
    out
}

fn leaderboard(v: &ViewInputs) -> Vec<Row> {
    let mut out = vec![title("LEADERBOARD (all servers)")];
    if v.board.is_empty() {
        out.push(Row::text("loading..."));
    }
    let listed = &v.board[..v.board.len().min(LISTED_PLAYERS + 1)];
    let me_listed = listed
        .iter()
        .any(|(_, name, _)| Some(name.as_str()) == v.me);
    for (rank, (id, name, coins)) in listed.iter().enumerate() {
        let row = Row::text(format!("{}. {name} {coins}", rank + 1));
        out.push(if Some(name.as_str()) == v.me {
            row
        } else {
            row.with("Visit", UiAction::VisitPlayer(*id))
                .with(format!("Gift {GIFT_COINS}"), UiAction::GiftTo(*id))
        });
    }
    // Below the board: where the player stands among everyone.
    if let (false, Some(rank), Some(me), Some(state)) = (me_listed, v.rank, v.me, v.state) {
        out.push(Row::text(format!("{rank}. {me} {} (you)", state.coins)));
    }
    out
}

/// The leaderboard as the HUD shows it: the player's own entry carries the coin figure the HUD
/// shows (the server's board is a few seconds old), ranked again.
pub fn ranked_with_own(
    board: &[(u64, String, i64)],
    me: Option<&str>,
    my_coins: Option<i64>,
) -> Vec<(u64, String, i64)> {
    let mut out: Vec<(u64, String, i64)> = board
        .iter()
        .map(|(id, name, coins)| match (me, my_coins) {
            (Some(me), Some(mine)) if me == name => (*id, name.clone(), mine),
            _ => (*id, name.clone(), *coins),
        })
        .collect();
    out.sort_by_key(|e| std::cmp::Reverse(e.2));
    out
}

/// The next other player on the leaderboard after `current` (wrapping), if any.
pub fn next_other(
    board: &[(u64, String, i64)],
    me: Option<&str>,
    current: Option<u64>,
) -> Option<u64> {
    let others: Vec<u64> = board
        .iter()
        .filter(|(_, name, _)| Some(name.as_str()) != me)
        .map(|(id, _, _)| *id)
        .collect();
    let at = current.and_then(|c| others.iter().position(|o| *o == c));
    match at {
        Some(i) => others.get((i + 1) % others.len()).copied(),
        None => others.first().copied(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::game::protocol::{FishState, TradeGoods};

    fn catalog() -> Catalog {
        Catalog::from_config(&crate::config::defaults_with_game_for_tests(
            &crate::game::KEYS,
        ))
        .expect("the shipped defaults make a catalog")
    }

    fn state() -> PlayerState {
        PlayerState {
            coins: 100,
            tank_level: 1,
            fish: vec![FishState {
                id: 7,
                species: 1,
                hunger: 20.0,
            }],
            decorations: vec![2],
            last_op: 0,
        }
    }

    /// The leaderboard's own line shows the HUD's coins, ranked again.
    #[test]
    fn the_leaderboard_shows_the_huds_own_coins() {
        let board = vec![(1, "Ann".to_string(), 90), (2, "Bob".to_string(), 80)];
        let r = ranked_with_own(&board, Some("Bob"), Some(95));
        assert_eq!(
            r,
            vec![(2, "Bob".to_string(), 95), (1, "Ann".to_string(), 90)]
        );
        let r = ranked_with_own(&board, None, Some(95));
        assert_eq!(r[0], (1, "Ann".to_string(), 90));
    }

    /// A player below the board sees where they stand among every player; one on it does not
    /// see themselves twice.
    #[test]
    fn the_leaderboard_names_the_players_own_rank_below_the_board() {
        let config = crate::config::defaults_with_game_for_tests(&crate::game::KEYS);
        let s = state();
        let book = TradeBook::default();
        let board: Vec<(u64, String, i64)> = (1..=8)
            .map(|i| (i, format!("P{i}"), 1000 - i as i64))
            .collect();
        let mut v = ViewInputs {
            catalog: None,
            state: Some(&s),
            config: &config,
            visiting: None,
            board: &board,
            rank: Some(42),
            me: Some("Me"),
            trades: &book,
            ask: 20,
        };
        let texts = |v: &ViewInputs| -> Vec<String> {
            rows(Panel::Leaderboard, v)
                .into_iter()
                .map(|r| r.text)
                .collect()
        };
        let shown = texts(&v);
        assert_eq!(shown.last().map(String::as_str), Some("42. Me 100 (you)"));
        v.me = Some("P2");
        let shown = texts(&v);
        assert!(!shown.iter().any(|t| t.contains("(you)")), "{shown:?}");
    }

    #[test]
    fn tab_walks_every_panel_then_closes() {
        let mut p = Panel::Closed;
        let mut seen = Vec::new();
        for _ in 0..6 {
            p = p.next();
            seen.push(p);
        }
        assert_eq!(&seen[..5], &Panel::ALL);
        assert_eq!(seen[5], Panel::Closed);
    }

    #[test]
    fn every_panel_has_buttons_for_what_its_keys_do() {
        let config = crate::config::defaults_with_game_for_tests(&crate::game::KEYS);
        let c = catalog();
        let s = state();
        let book = TradeBook::default();
        let board = vec![(1, "Me".to_string(), 100), (2, "Bob".to_string(), 50)];
        let v = ViewInputs {
            catalog: Some(&c),
            state: Some(&s),
            config: &config,
            visiting: None,
            board: &board,
            rank: Some(1),
            me: Some("Me"),
            trades: &book,
            ask: 20,
        };
        let actions = |p| -> Vec<UiAction> {
            rows(p, &v)
                .into_iter()
                .flat_map(|r| r.buttons.into_iter().map(|(_, a)| a))
                .collect()
        };
        let shop = actions(Panel::Shop);
        for i in 0..SPECIES.len() {
            assert!(shop.contains(&UiAction::BuyFish(i as u8)));
        }
        for k in 0..DECORATIONS.len() {
            assert!(shop.contains(&UiAction::BuyDecoration(k as u8)));
        }
        assert!(shop.contains(&UiAction::UpgradeTank));
        assert!(actions(Panel::Inventory).contains(&UiAction::SellSpecies(1)));
        let settings = actions(Panel::Settings);
        for a in [
            UiAction::Quality(1),
            UiAction::FpsCap(-1),
            UiAction::Particles,
            UiAction::Shadows,
            UiAction::Volume(1),
        ] {
            assert!(settings.contains(&a), "{a:?}");
        }
        // The player's own line has no visit or gift; Bob's has both.
        let board = actions(Panel::Leaderboard);
        assert_eq!(
            board,
            vec![UiAction::VisitPlayer(2), UiAction::GiftTo(2)],
            "only the other player's line has buttons"
        );
        assert!(actions(Panel::Trade).contains(&UiAction::OfferTrade(2)));
        let texts: Vec<String> = rows(Panel::Settings, &v)
            .into_iter()
            .map(|r| r.text)
            .collect();
        assert!(
            texts.contains(&"Particles HIGH".to_string()),
            "text settings read without quotes: {texts:?}"
        );
    }

    #[test]
    fn a_trade_shows_the_buttons_of_its_stage_and_side() {
        let t = |stage| TradeView {
            trade: 5,
            from: 1,
            to: 2,
            give: TradeGoods {
                fish: vec![7],
                ..Default::default()
            },
            want: TradeGoods {
                coins: 20,
                ..Default::default()
            },
            stage,
        };
        let acts = |v: &TradeView, mine| -> Vec<TradeAction> {
            trade_buttons(v, mine)
                .into_iter()
                .map(|(_, a)| match a {
                    UiAction::Trade(5, a) => a,
                    other => panic!("{other:?}"),
                })
                .collect()
        };
        let offered = t(TradeStage::Offered);
        assert_eq!(acts(&offered, true), vec![TradeAction::Cancel]);
        assert_eq!(
            acts(&offered, false),
            vec![TradeAction::Accept, TradeAction::Decline]
        );
        let half = t(TradeStage::Accepted {
            from_confirmed: true,
            to_confirmed: false,
        });
        assert_eq!(acts(&half, true), vec![TradeAction::Cancel]);
        assert_eq!(
            acts(&half, false),
            vec![TradeAction::Confirm, TradeAction::Cancel]
        );
        assert!(acts(&t(TradeStage::Done), false).is_empty());
    }

    #[test]
    fn action_ids_are_distinct() {
        let mut ids: Vec<String> = bar().iter().map(|(_, a)| a.id()).collect();
        ids.extend(
            [
                UiAction::BuyFish(0),
                UiAction::BuyFish(1),
                UiAction::Trade(3, TradeAction::Accept),
                UiAction::Trade(3, TradeAction::Confirm),
                UiAction::Quality(-1),
                UiAction::Quality(1),
            ]
            .iter()
            .map(UiAction::id),
        );
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n);
        assert_eq!(UiAction::Quality(-1).id(), "quality-1");
        assert_eq!(
            UiAction::Trade(3, TradeAction::Accept).id(),
            "trade-3-accept"
        );
    }
}
