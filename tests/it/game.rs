//! The game through the network: buying and selling with prediction, income, the leaderboard.

use std::time::Duration;

use bevy::prelude::*;
use bevy::time::TimeUpdateStrategy;
use bloxquarium::game::DataStoreState;
use bloxquarium::game::protocol::ShopItem;
use bloxquarium::game::{Catalog, GameOp, Leaderboard, Prediction};
use bloxquarium::transport::ClientNet;

use crate::harness::{self, Scratch, pump_until};

pub fn send(client: &mut App, op: GameOp) -> Result<u64, String> {
    let catalog = Catalog::from_config(
        &client
            .world()
            .resource::<bloxquarium::config::ClientConfig>()
            .0,
    )
    .map_err(|e| e.to_string())?;
    let t = client.world().resource::<Time<Real>>().elapsed();
    let world = client.world_mut();
    let Some(mut net) = world.remove_resource::<ClientNet>() else {
        return Err("no network".into());
    };
    let r = world
        .resource_mut::<Prediction>()
        .send(&mut net, op, &catalog, t);
    world.insert_resource(net);
    r
}

#[test]
fn buy_sell_earn_and_rank() {
    let d = Scratch::new("game-flow");
    let mut server = harness::server(&d, &[]);
    let join = |server: &mut App, player: u64, name: &str| {
        harness::join(server, &d, player, name, harness::JoinUntil::InGame)
    };
    let mut ann = join(&mut server, 1, "Ann");
    let mut bob = join(&mut server, 2, "Bob");
    // Ann buys two goldfish (10 each) and sells one back for half its price.
    send(
        &mut ann,
        GameOp::Purchase {
            item: ShopItem::Fish { species: 0 },
            quantity: 2,
        },
    )
    .unwrap();
    send(&mut ann, GameOp::Sell { fish: 2 }).unwrap();
    pump_until(
        &mut [&mut server, &mut ann, &mut bob],
        300,
        "settled",
        |a| a[1].world().resource::<Prediction>().predictor.pending() == 0,
    );
    let live = live_profile(&server, 1);
    assert_eq!(live.fish.len(), 1);
    assert!(live.stats.coins >= 85, "100 - 20 + 5 and any income since");
    let kinds: Vec<&str> = live.operations.iter().map(|o| o.kind.as_str()).collect();
    assert_eq!(
        kinds,
        vec!["purchase", "sell"],
        "operations kept with the profile"
    );
    // Selling a fish that is not there is refused before it is sent.
    assert!(send(&mut ann, GameOp::Sell { fish: 99 }).is_err());
    // The fish earns: after a while Ann has more than she had.
    let before = live.stats.coins;
    pump_until(&mut [&mut server, &mut ann, &mut bob], 900, "income", |a| {
        a[0].world()
            .resource::<DataStoreState>()
            .profile(1)
            .is_some_and(|l| l.profile.stats.coins > before)
    });
    // Both see the leaderboard, richest first.
    pump_until(
        &mut [&mut server, &mut ann, &mut bob],
        600,
        "leaderboard",
        |a| a[2].world().resource::<Leaderboard>().0.len() == 2,
    );
    let board = bob.world().resource::<Leaderboard>().0.clone();
    assert_eq!(board[0].1, "Bob", "{board:?}");
    assert_eq!(board[1].1, "Ann");
    assert_eq!(board[0].2, 100);
    assert_eq!((board[0].0, board[1].0), (2, 1));
    // No impossible-income report for the refund or the income.
    assert!(
        server
            .world()
            .resource::<bloxquarium::security::Security>()
            .suspicious
            .is_empty()
    );
}

/// [`pump_until`] over the server and every client (`a[0]` is the server).
fn pump_all(
    server: &mut App,
    clients: &mut [App],
    max: usize,
    what: &str,
    done: impl FnMut(&mut [&mut App]) -> bool,
) {
    let mut apps: Vec<&mut App> = std::iter::once(server).chain(clients.iter_mut()).collect();
    pump_until(&mut apps, max, what, done);
}

/// The last state the server sent a client.
fn authoritative(client: &App) -> bloxquarium::game::protocol::PlayerState {
    client
        .world()
        .resource::<Prediction>()
        .predictor
        .authoritative()
        .cloned()
        .expect("a state from the server")
}

/// A player's live profile on the server.
pub fn live_profile(server: &App, player: u64) -> bloxquarium::game::Profile {
    server
        .world()
        .resource::<DataStoreState>()
        .profile(player)
        .expect("the player is online")
        .profile
        .clone()
}

/// Server game steps so far.
fn steps(server: &App) -> u64 {
    server
        .world()
        .resource::<bloxquarium::game::GameServerState>()
        .steps()
}

fn coins_on_server(server: &App, player: u64) -> i64 {
    server
        .world()
        .resource::<DataStoreState>()
        .profile(player)
        .map_or(i64::MIN, |l| l.profile.stats.coins)
}

/// What a client told its player so far (toasts; headless clients log them).
fn notices_of(client: &App) -> Vec<String> {
    client
        .world()
        .resource::<bloxquarium::game::Notices>()
        .0
        .clone()
}

fn set_game_time(server: &mut App, per_frame: Duration) {
    server.insert_resource(TimeUpdateStrategy::ManualDuration(per_frame));
}

#[test]
fn three_players_buy_earn_gift_leave_and_come_back_after_a_restart() {
    let d = Scratch::new("game-e2e");
    // Whole-coin income and no hunger, so the totals are exact: goldfish 1/s, clownfish 3/s.
    let cfg = harness::config_dir(
        &d,
        r#"{"game.fishIncomePerSecond": [1.0, 3.0, 5.0, 8.0, 13.0, 21.0], "game.hungerPerMinute": 0.0}"#,
    );
    let mut server = harness::server_with_config(&d, &cfg);
    // Game time stands still while everyone joins and buys.
    set_game_time(&mut server, Duration::ZERO);
    let players = [(1u64, "Ann"), (2, "Bob"), (3, "Cid")];
    let join = |server: &mut App, (id, name): (u64, &str)| {
        let mut c = harness::join(server, &d, id, name, harness::JoinUntil::InGame);
        pump_until(&mut [server, &mut c], 600, "playing", |a| {
            a[1].world()
                .resource::<State<bloxquarium::assets::AssetPhase>>()
                .get()
                == &bloxquarium::assets::AssetPhase::Playing
        });
        // The critical assets are loaded, not replaced by the fallback.
        let s = c
            .world()
            .resource::<bloxquarium::assets::AssetStreamer>()
            .stats();
        assert_eq!(s.loads.fallbacks, 0);
        assert!(s.loads.loaded >= 10, "{s:?}");
        c
    };
    let mut clients: Vec<App> = players.iter().map(|p| join(&mut server, *p)).collect();

    // Ann 2 goldfish, Bob 1 clownfish, Cid 3 goldfish: predicted at once, then acknowledged.
    let buys = [(0u8, 2u32), (1, 1), (0, 3)];
    for (c, (species, quantity)) in clients.iter_mut().zip(buys) {
        send(
            c,
            GameOp::Purchase {
                item: ShopItem::Fish { species },
                quantity,
            },
        )
        .unwrap();
        let p = &c.world().resource::<Prediction>().predictor;
        assert_eq!(p.pending(), 1);
        let catalog =
            Catalog::from_config(&c.world().resource::<bloxquarium::config::ClientConfig>().0)
                .unwrap();
        assert_eq!(p.predicted(&catalog).unwrap().fish.len(), quantity as usize);
    }
    pump_all(&mut server, &mut clients, 600, "acknowledged", |a| {
        a[1..].iter().all(|c| {
            let p = &c.world().resource::<Prediction>().predictor;
            p.pending() == 0 && p.acknowledged == 1
        })
    });
    assert_eq!(coins_on_server(&server, 1), 80);
    assert_eq!(coins_on_server(&server, 2), 75);
    assert_eq!(coins_on_server(&server, 3), 70);

    // Ten seconds of game time: 40 server frames of 250 ms, one economy step per second.
    let before = steps(&server);
    set_game_time(&mut server, Duration::from_millis(250));
    for _ in 0..40 {
        server.update();
        for c in clients.iter_mut() {
            c.update();
        }
    }
    set_game_time(&mut server, Duration::ZERO);
    assert_eq!(steps(&server) - before, 10);
    assert_eq!(coins_on_server(&server, 1), 80 + 2 * 10);
    assert_eq!(coins_on_server(&server, 2), 75 + 3 * 10);
    assert_eq!(coins_on_server(&server, 3), 70 + 3 * 10);

    // Ann gifts Bob 7 coins (answered once the debit and Bob's inbox row have committed, and
    // delivered to Bob by his next save); more than she has is refused, and a gift to a player
    // nobody knows comes back.
    send(&mut clients[0], GameOp::Gift { to: 2, coins: 7 }).unwrap();
    assert!(
        send(
            &mut clients[0],
            GameOp::Gift {
                to: 2,
                coins: 10_000
            }
        )
        .is_err()
    );
    send(&mut clients[0], GameOp::Gift { to: 42, coins: 1 }).unwrap();
    pump_all(&mut server, &mut clients, 600, "gift settled", |a| {
        let ann = &a[1].world().resource::<Prediction>().predictor;
        ann.pending() == 0
            && ann.authoritative().is_some_and(|s| s.coins == 93)
            && a[2]
                .world()
                .resource::<Prediction>()
                .predictor
                .authoritative()
                .is_some_and(|s| s.coins == 112)
    });
    let ann = &clients[0].world().resource::<Prediction>().predictor;
    assert!(
        ann.rejections
            .iter()
            .any(|(_, why)| why.contains("there is no player 42")),
        "{:?}",
        ann.rejections
    );
    let bob_heard = notices_of(&clients[1]);
    assert!(
        bob_heard
            .iter()
            .any(|n| n == "A gift from player 1: +7 coins"),
        "{bob_heard:?}"
    );
    let ann_heard = notices_of(&clients[0]);
    assert!(
        ann_heard
            .iter()
            .any(|n| n == "Your gift came back (no such player): +1 coins"),
        "the coins of the gift to nobody came back: {ann_heard:?}"
    );
    let expected = [(1u64, 93i64), (2, 112), (3, 100)];
    for (player, coins) in expected {
        assert_eq!(coins_on_server(&server, player), coins, "player {player}");
    }
    // Cid visits Ann's aquarium (read-only): her two goldfish.
    {
        let t = clients[2].world().resource::<Time<Real>>().elapsed();
        let world = clients[2].world_mut();
        let mut net = world.remove_resource::<ClientNet>().unwrap();
        world
            .resource_mut::<bloxquarium::game::Visit>()
            .request(&mut net, 1, t);
        world.insert_resource(net);
    }
    pump_all(&mut server, &mut clients, 300, "visit", |a| {
        a[3].world()
            .resource::<bloxquarium::game::Visit>()
            .showing
            .is_some()
    });
    let (who, name, state) = clients[2]
        .world()
        .resource::<bloxquarium::game::Visit>()
        .showing
        .clone()
        .unwrap();
    assert_eq!((who, name.as_str(), state.fish.len()), (1, "Ann", 2));

    // Everyone leaves; the server saves them and stops; a new server opens the same data.
    for c in clients.iter_mut() {
        c.world_mut()
            .resource_mut::<bloxquarium::shutdown::Shutdown>()
            .request(bloxquarium::shutdown::ShutdownReason::Requested(
                "bye".into(),
            ));
    }
    pump_all(&mut server, &mut clients, 600, "all left", |a| {
        a[0].world().resource::<DataStoreState>().players().count() == 0
    });
    drop(clients);
    server
        .world_mut()
        .resource_mut::<bloxquarium::shutdown::Shutdown>()
        .request(bloxquarium::shutdown::ShutdownReason::Requested(
            "restart".into(),
        ));
    assert!(
        harness::run_to_exit(&mut server, 600).is_some(),
        "server stopped"
    );
    drop(server);

    let mut server = harness::server_with_config(&d, &cfg);
    set_game_time(&mut server, Duration::ZERO);
    let clients: Vec<App> = players.iter().map(|p| join(&mut server, *p)).collect();
    let fish = [2usize, 1, 3];
    for ((c, (player, coins)), n) in clients.iter().zip(expected).zip(fish) {
        let s = authoritative(c);
        assert_eq!(s.coins, coins, "player {player} after the restart");
        assert_eq!(s.fish.len(), n, "player {player}'s fish");
        assert_eq!(coins_on_server(&server, player), coins);
    }
    let ann = live_profile(&server, 1);
    let kinds: Vec<&str> = ann.operations.iter().map(|o| o.kind.as_str()).collect();
    // Her gift to nobody came back as a message of her own.
    assert_eq!(
        kinds,
        vec!["purchase", "gift_sent", "gift_sent", "gift_received"]
    );
    let bob = live_profile(&server, 2);
    let kinds: Vec<&str> = bob.operations.iter().map(|o| o.kind.as_str()).collect();
    assert_eq!(kinds, vec!["purchase", "gift_received"]);
}

#[test]
fn a_decoration_is_bought_through_the_network_and_kept() {
    let d = Scratch::new("game-decor");
    let mut server = harness::server(&d, &[]);
    let token = harness::issue(&server, 9, "Dot");
    let mut c = harness::client(&d, harness::server_addr(&server), &token);
    pump_until(&mut [&mut server, &mut c], 300, "in the game", |a| {
        a[1].world()
            .resource::<Prediction>()
            .predictor
            .authoritative()
            .is_some()
    });
    let plant = GameOp::Purchase {
        item: ShopItem::Decoration { kind: 1 },
        quantity: 1,
    };
    send(&mut c, plant).unwrap();
    pump_until(&mut [&mut server, &mut c], 300, "acknowledged", |a| {
        a[1].world().resource::<Prediction>().predictor.pending() == 0
    });
    let live = live_profile(&server, 9);
    assert_eq!(live.tank.decorations, vec!["Plant".to_string()]);
    assert!(live.stats.coins >= 60, "100 - 40 and any income since");
    let client_state = authoritative(&c);
    assert_eq!(client_state.decorations, vec![1]);
}

/// `game.hungerPerMinute`: fish get hungrier by that much per minute of server time.
#[test]
fn fish_get_hungry_at_the_configured_rate() {
    let d = Scratch::new("game-hunger");
    let cfg = harness::config_dir(&d, r#"{"game.hungerPerMinute": 60.0}"#);
    let mut server = harness::server_with_config(&d, &cfg);
    let mut c = harness::join(&mut server, &d, 9, "Dot", harness::JoinUntil::InGame);
    let goldfish = GameOp::Purchase {
        item: ShopItem::Fish { species: 0 },
        quantity: 1,
    };
    send(&mut c, goldfish).unwrap();
    pump_until(&mut [&mut server, &mut c], 300, "acknowledged", |a| {
        a[1].world().resource::<Prediction>().predictor.pending() == 0
    });
    // About ten one-second game steps (virtual time moves at most 250 ms a frame): 60 a minute
    // is one a second.
    set_game_time(&mut server, Duration::from_millis(250));
    let hunger = |s: &App| live_profile(s, 9).fish[0].hunger;
    // The first step under manual time also covers what went before it.
    let first = steps(&server);
    while steps(&server) == first {
        server.update();
    }
    let (h0, s0) = (hunger(&server), steps(&server));
    for _ in 0..40 {
        server.update();
    }
    let (h1, s1) = (hunger(&server), steps(&server));
    assert!(s1 - s0 >= 9, "{s0} -> {s1}");
    assert!(
        ((h1 - h0) - (s1 - s0) as f32).abs() < 0.01,
        "hunger {h0} -> {h1} over {} one-second steps (5 a minute by default: 1/12 a step)",
        s1 - s0
    );
}

/// A dedicated server answers a game call between ticks (its runner's passes): the purchase is
/// applied and answered before the next tick, and that tick does not apply it again (the tick and
/// the passes run one copy of each handler, so a call is read once).
#[test]
fn a_purchase_is_answered_between_ticks_and_applied_once() {
    use bloxquarium::transport::{TickTimes, runner};
    let d = Scratch::new("game-between-ticks");
    let mut server = harness::server(&d, &[]);
    let mut client = harness::join(&mut server, &d, 1, "Ann", harness::JoinUntil::InGame);
    let coins = coins_on_server(&server, 1);
    let ticks = server.world().resource::<TickTimes>().ticks;
    send(
        &mut client,
        GameOp::Purchase {
            item: ShopItem::Fish { species: 0 },
            quantity: 1,
        },
    )
    .unwrap();
    client.update();
    let deadline = std::time::Instant::now() + Duration::from_millis(300);
    let passes = runner::between_ticks(&mut server, deadline);
    assert!(passes >= 1, "no pass ran");
    assert_eq!(server.world().resource::<TickTimes>().ticks, ticks);
    assert_eq!(server.world().resource::<TickTimes>().passes, passes);
    let price = coins - coins_on_server(&server, 1);
    assert!(price > 0, "the purchase was applied between ticks");
    assert_eq!(live_profile(&server, 1).fish.len(), 1);
    // The client has its answer without the server ticking.
    pump_until(&mut [&mut client], 100, "acknowledged", |a| {
        a[0].world().resource::<Prediction>().predictor.pending() == 0
    });
    // Ticks after it leave it alone.
    harness::pump(&mut [&mut server, &mut client], 10);
    assert_eq!(coins_on_server(&server, 1), coins - price);
    assert_eq!(live_profile(&server, 1).fish.len(), 1);
}

/// The player quits; the server saves and unloads the profile.
fn leave(server: &mut App, mut client: App) {
    client
        .world_mut()
        .resource_mut::<bloxquarium::shutdown::Shutdown>()
        .request(bloxquarium::shutdown::ShutdownReason::Requested(
            "bye".into(),
        ));
    pump_until(&mut [server, &mut client], 600, "left and saved", |a| {
        a[0].world().resource::<DataStoreState>().players().count() == 0
    });
}

fn claim_daily(server: &mut App, client: &mut App) -> Result<String, String> {
    use bloxquarium::game::protocol::ClaimDaily;
    let r = harness::call(server, client, &mut [], ClaimDaily);
    r.map(|d| format!("+{} day {}", d.coins, d.streak))
        .map_err(|e| e.to_string())
}

#[test]
fn coming_back_pays_what_the_fish_earned_and_the_daily_reward() {
    let d = Scratch::new("game-away");
    let cfg = harness::config_dir(
        &d,
        r#"{"game.hungerPerMinute": 0.0, "game.dailyRewards": [50, 80]}"#,
    );
    let mut server = harness::server_with_config(&d, &cfg);
    let notices = notices_of;
    // The first visit: nothing earned away; the first day's reward, once.
    let mut client = harness::join(&mut server, &d, 7, "Ann", harness::JoinUntil::InGame);
    assert_eq!(
        claim_daily(&mut server, &mut client),
        Ok("+50 day 1".into())
    );
    let again = claim_daily(&mut server, &mut client).unwrap_err();
    assert!(
        again.contains("today's reward is claimed: the next one in"),
        "{again}"
    );
    assert_eq!(coins_on_server(&server, 7), 150);
    pump_until(&mut [&mut server, &mut client], 100, "the notice", |a| {
        !notices(a[1]).is_empty()
    });
    assert_eq!(
        notices(&client),
        vec!["Daily reward: +50 coins (day 1 in a row)"]
    );
    send(
        &mut client,
        GameOp::Purchase {
            item: ShopItem::Fish { species: 0 },
            quantity: 1,
        },
    )
    .unwrap();
    pump_until(&mut [&mut server, &mut client], 100, "bought", |a| {
        a[1].world().resource::<Prediction>().predictor.pending() == 0
    });
    // The player was last seen two hours ago, and claimed yesterday's reward; then leaves.
    set_game_time(&mut server, Duration::ZERO);
    harness::edit_profile(&mut server, 7, |p| {
        p.away.last_seen_ms = bloxquarium::clock::now_ms() - 2 * 3600 * 1000;
        p.away.daily_day -= 1;
    });
    let before = coins_on_server(&server, 7);
    leave(&mut server, client);
    // Back: two hours of one fish's income at once, and day two of the streak when claimed.
    let mut client = harness::join(&mut server, &d, 7, "Ann", harness::JoinUntil::InGame);
    pump_until(&mut [&mut server, &mut client], 100, "welcomed back", |a| {
        !notices(a[1]).is_empty()
    });
    let rate = 0.2; // game.fishIncomePerSecond[0]
    let earned = (rate * 7200.0) as i64;
    assert_eq!(
        notices(&client),
        vec![format!("While you were away (2.0 h): +{earned} coins")]
    );
    assert_eq!(coins_on_server(&server, 7), before + earned);
    assert_eq!(
        claim_daily(&mut server, &mut client),
        Ok("+80 day 2".into())
    );
    assert_eq!(coins_on_server(&server, 7), before + earned + 80);
    let ops: Vec<String> = live_profile(&server, 7)
        .operations
        .iter()
        .map(|o| o.kind.clone())
        .collect();
    assert!(
        ops.ends_with(&["earned_while_away".into(), "daily_reward".into()]),
        "{ops:?}"
    );
    // Back again at once: a reconnect is not being away.
    leave(&mut server, client);
    let coins = coins_on_server_after_join(&mut server, &d);
    assert_eq!(coins, before + earned + 80);
}

fn coins_on_server_after_join(server: &mut App, d: &Scratch) -> i64 {
    let mut client = harness::join(server, d, 7, "Ann", harness::JoinUntil::InGame);
    harness::pump(&mut [server, &mut client], 10);
    assert!(
        client
            .world()
            .resource::<bloxquarium::game::Notices>()
            .0
            .is_empty()
    );
    coins_on_server(server, 7)
}

/// The trade updates a client has heard so far, as (trade, stage) pairs.
fn trade_updates(client: &mut App) -> Vec<bloxquarium::game::protocol::TradeView> {
    harness::drain::<bloxquarium::transport::FromServer<bloxquarium::game::protocol::TradeUpdate>>(
        client,
    )
    .into_iter()
    .map(|u| u.0.0)
    .collect()
}

#[test]
fn two_players_trade_fish_and_coins_for_a_decoration_together_or_not_at_all() {
    use bloxquarium::game::protocol::{TradeAct, TradeAction, TradeGoods, TradeOffer, TradeStage};
    let d = Scratch::new("game-trade");
    let cfg = harness::config_dir(&d, r#"{"game.hungerPerMinute": 0.0}"#);
    let mut server = harness::server_with_config(&d, &cfg);
    set_game_time(&mut server, Duration::ZERO);
    let mut ann = harness::join(&mut server, &d, 1, "Ann", harness::JoinUntil::InGame);
    let mut bob = harness::join(&mut server, &d, 2, "Bob", harness::JoinUntil::InGame);
    for (c, item) in [
        (&mut ann, ShopItem::Fish { species: 1 }),
        (&mut bob, ShopItem::Decoration { kind: 0 }),
    ] {
        send(c, GameOp::Purchase { item, quantity: 1 }).unwrap();
    }
    pump_until(&mut [&mut server, &mut ann, &mut bob], 600, "bought", |a| {
        a[1..]
            .iter()
            .all(|c| c.world().resource::<Prediction>().predictor.pending() == 0)
    });
    let (ann0, bob0) = (live_profile(&server, 1), live_profile(&server, 2));
    let fish = ann0.fish[0].id;
    let offer = TradeOffer {
        to: 2,
        give: TradeGoods {
            coins: 10,
            fish: vec![fish],
            decorations: vec![],
        },
        want: TradeGoods {
            decorations: vec![0],
            ..Default::default()
        },
    };
    // Asking for what the other does not have is refused at once.
    let greedy = TradeOffer {
        want: TradeGoods {
            fish: vec![99],
            ..Default::default()
        },
        ..offer.clone()
    };
    let no = harness::call(&mut server, &mut ann, &mut [&mut bob], greedy).unwrap_err();
    assert!(no.to_string().contains("they has no fish 99"), "{no}");

    let trade_with = |server: &mut App, ann: &mut App, bob: &mut App| {
        let view = harness::call(server, ann, &mut [&mut *bob], offer.clone()).unwrap();
        let t = view.trade;
        assert_eq!(view.stage, TradeStage::Offered);
        // Ann cannot accept her own offer; Bob accepts; both confirm.
        let own = harness::call(
            server,
            ann,
            &mut [&mut *bob],
            TradeAct {
                trade: t,
                action: TradeAction::Accept,
            },
        );
        assert!(own.is_err());
        let act = |server: &mut App, who: &mut App, other: &mut App, action| {
            harness::call(server, who, &mut [other], TradeAct { trade: t, action }).unwrap()
        };
        act(server, bob, ann, TradeAction::Accept);
        let v = act(server, ann, bob, TradeAction::Confirm);
        assert_eq!(
            v.stage,
            TradeStage::Accepted {
                from_confirmed: true,
                to_confirmed: false
            }
        );
        let v = act(server, bob, ann, TradeAction::Confirm);
        assert_eq!(v.stage, TradeStage::Committing);
        t
    };

    // First attempt: the store fails the joint save; nothing moves and both are told.
    server
        .world()
        .resource::<bloxquarium::datastore::DataStore>()
        .0
        .backend()
        .inject_write_failures(1);
    let t = trade_with(&mut server, &mut ann, &mut bob);
    let failed = t;
    let mut heard = Vec::new();
    pump_until(&mut [&mut server, &mut ann, &mut bob], 600, "failed", |a| {
        heard.extend(trade_updates(a[2]));
        heard
            .iter()
            .any(|v| v.trade == t && matches!(v.stage, TradeStage::Failed { .. }))
    });
    for _ in 0..5 {
        harness::pump(&mut [&mut server, &mut ann, &mut bob], 5);
    }
    let (a1, b1) = (live_profile(&server, 1), live_profile(&server, 2));
    assert_eq!(a1.stats.coins, ann0.stats.coins);
    assert_eq!(a1.fish.len(), 1);
    assert!(a1.tank.decorations.is_empty());
    assert_eq!(b1.stats.coins, bob0.stats.coins);
    assert!(b1.fish.is_empty());
    assert_eq!(b1.tank.decorations, vec!["Rock".to_string()]);

    // Second attempt: committed together, then each parcel arrives by the other's next save.
    let fish = a1.fish[0].id;
    let offer = TradeOffer {
        give: TradeGoods {
            fish: vec![fish],
            ..offer.give.clone()
        },
        ..offer.clone()
    };
    let t = {
        let offer = offer.clone();
        let view = harness::call(&mut server, &mut ann, &mut [&mut bob], offer).unwrap();
        let t = view.trade;
        for (who, action) in [
            (1, TradeAction::Accept),
            (0, TradeAction::Confirm),
            (1, TradeAction::Confirm),
        ] {
            let r = if who == 0 {
                harness::call(
                    &mut server,
                    &mut ann,
                    &mut [&mut bob],
                    TradeAct { trade: t, action },
                )
            } else {
                harness::call(
                    &mut server,
                    &mut bob,
                    &mut [&mut ann],
                    TradeAct { trade: t, action },
                )
            };
            r.unwrap();
        }
        t
    };
    let mut heard = Vec::new();
    pump_until(
        &mut [&mut server, &mut ann, &mut bob],
        600,
        "done and delivered",
        |a| {
            heard.extend(trade_updates(a[1]));
            let done = heard
                .iter()
                .any(|v| v.trade == t && v.stage == TradeStage::Done);
            let state = |c: &App| {
                c.world()
                    .resource::<Prediction>()
                    .predictor
                    .authoritative()
                    .cloned()
            };
            done && state(a[1]).is_some_and(|s| s.decorations == vec![0])
                && state(a[2]).is_some_and(|s| s.fish.len() == 1)
        },
    );
    // Each client keeps the trade and told its player.
    let book = &bob
        .world()
        .resource::<bloxquarium::game::TradeBook>()
        .trades;
    assert_eq!(book.get(&t).map(|v| &v.stage), Some(&TradeStage::Done));
    let heard = notices_of(&bob);
    let offered = format!("Trade {t} offered: player 1 gives 1 fish + 10 coins for 1 decorations");
    assert!(heard.contains(&offered), "{heard:?}");
    let (a2, b2) = (live_profile(&server, 1), live_profile(&server, 2));
    assert_eq!(a2.stats.coins, ann0.stats.coins - 10);
    assert!(a2.fish.is_empty());
    assert_eq!(a2.tank.decorations, vec!["Rock".to_string()]);
    assert_eq!(b2.stats.coins, bob0.stats.coins + 10);
    assert_eq!(b2.fish.len(), 1);
    assert_eq!(b2.fish[0].species, 1);
    assert_eq!(b2.fish[0].from_trade, Some(t));
    assert!(b2.tank.decorations.is_empty());
    for p in [&a2, &b2] {
        let kinds: Vec<&str> = p.operations.iter().map(|o| o.kind.as_str()).collect();
        assert!(
            kinds.ends_with(&["trade", "trade_received"]),
            "both keep the operation: {kinds:?}"
        );
        assert!(kinds.contains(&"trade_failed"), "{kinds:?}");
    }
    // What was committed is what the store holds once both have left.
    for c in [&mut ann, &mut bob] {
        c.world_mut()
            .resource_mut::<bloxquarium::shutdown::Shutdown>()
            .request(bloxquarium::shutdown::ShutdownReason::Requested(
                "bye".into(),
            ));
    }
    pump_until(
        &mut [&mut server, &mut ann, &mut bob],
        600,
        "both left",
        |a| a[0].world().resource::<DataStoreState>().players().count() == 0,
    );
    let store = server
        .world()
        .resource::<bloxquarium::datastore::DataStore>()
        .0
        .clone();
    let stored = |p| {
        store
            .peek::<bloxquarium::game::Aquarium>(p)
            .unwrap()
            .unwrap()
            .1
    };
    assert_eq!(stored(1).stats.coins, a2.stats.coins);
    assert_eq!(stored(1).tank.decorations.len(), 1);
    assert_eq!(stored(2).fish.len(), 1);
    assert_eq!(stored(2).stats.coins, b2.stats.coins);

    // An admin reverses it: Bob still has the fish and the coins, Ann the decoration, so
    // everything goes home and nobody is paid for anything.
    use bloxquarium::game::protocol::ReverseTrade;
    let mut admin = harness::join(&mut server, &d, 9, "Ada", harness::JoinUntil::InGame);
    server
        .world_mut()
        .resource_mut::<bloxquarium::security::Security>()
        .assign_role(9, "admin", "test")
        .unwrap();
    let reverse = ReverseTrade {
        trade: t,
        players: (1, 2),
    };
    let done = harness::call(&mut server, &mut admin, &mut [], reverse).unwrap();
    assert!(done.starts_with(&format!("trade {t} reversed")), "{done}");
    assert!(
        done.contains("player 1 got 10 coins, 1 fish and 0 decorations back, and 0 coins"),
        "{done}"
    );
    let (a3, b3) = (stored(1), stored(2));
    assert_eq!(a3.stats.coins, ann0.stats.coins);
    assert_eq!(a3.fish.len(), 1);
    assert_eq!(a3.fish[0].from_trade, None);
    assert!(a3.tank.decorations.is_empty());
    assert_eq!(b3.stats.coins, bob0.stats.coins);
    assert!(b3.fish.is_empty());
    assert_eq!(b3.tank.decorations, vec!["Rock".to_string()]);
    for p in [&a3, &b3] {
        assert_eq!(
            p.operations.last().map(|o| o.kind.as_str()),
            Some("trade_reversed")
        );
    }
    let again = harness::call(&mut server, &mut admin, &mut [], reverse).unwrap_err();
    assert!(again.to_string().contains("reversed already"), "{again}");
    // The first attempt failed and moved nothing: there is nothing to reverse (giving back
    // what each side's `trade` record says it sent would make goods out of nothing).
    let never = ReverseTrade {
        trade: failed,
        players: (1, 2),
    };
    let no = harness::call(&mut server, &mut admin, &mut [], never).unwrap_err();
    assert!(no.to_string().contains("nothing to reverse"), "{no}");
    // A player in play is sent off first, and the admin asked to call again.
    let mut ann = harness::join(&mut server, &d, 1, "Ann", harness::JoinUntil::InGame);
    let busy = harness::call(&mut server, &mut admin, &mut [&mut ann], reverse).unwrap_err();
    assert!(
        busy.to_string().contains("player 1 was in play here"),
        "{busy}"
    );
    pump_until(
        &mut [&mut server, &mut admin, &mut ann],
        600,
        "Ann sent off",
        |a| {
            a[0].world()
                .resource::<DataStoreState>()
                .profile(1)
                .is_none()
        },
    );
    use bloxquarium::security::{AuditKind, AuditQuery};
    for kind in [AuditKind::Trade, AuditKind::TradeReversed] {
        let found = bloxquarium::security::query_audit(
            &d.0,
            &AuditQuery {
                player: Some(1),
                kind: Some(kind),
                since_ms: None,
            },
        )
        .unwrap();
        assert!(
            found.iter().any(|r| r.details.contains(&t.to_string())),
            "{kind:?} audited: {found:?}"
        );
    }
}

/// Two scripted clients trade as bots do (`client --trade 2:5` and `--accept-trades`): the
/// offer goes out once the scripted purchase is acknowledged, is accepted and confirmed by
/// both, and each client's book ends with the trade done.
#[test]
fn scripted_clients_trade_a_fish_for_coins() {
    use bloxquarium::game::TradeScript;
    use bloxquarium::game::protocol::TradeStage;
    let d = Scratch::new("game-trade-script");
    let mut server = harness::server(&d, &[]);
    let mut ann = harness::join(&mut server, &d, 1, "Ann", harness::JoinUntil::InGame);
    let mut bob = harness::join(&mut server, &d, 2, "Bob", harness::JoinUntil::InGame);
    bob.insert_resource(TradeScript::new(None, true));
    ann.insert_resource(bloxquarium::game::ScriptedOps::new(vec![
        GameOp::Purchase {
            item: ShopItem::Fish { species: 0 },
            quantity: 1,
        },
    ]));
    ann.insert_resource(TradeScript::new(Some((2, 5)), false));
    let done = |c: &App| {
        c.world()
            .resource::<bloxquarium::game::TradeBook>()
            .trades
            .values()
            .any(|v| v.stage == TradeStage::Done)
    };
    pump_until(
        &mut [&mut server, &mut ann, &mut bob],
        1200,
        "traded",
        |a| done(a[1]) && done(a[2]),
    );
    pump_until(
        &mut [&mut server, &mut ann, &mut bob],
        600,
        "delivered",
        |a| {
            a[0].world()
                .resource::<DataStoreState>()
                .profile(2)
                .is_some_and(|l| l.profile.fish.len() == 1)
                && a[0]
                    .world()
                    .resource::<DataStoreState>()
                    .profile(1)
                    .is_some_and(|l| l.profile.fish.is_empty() && l.profile.stats.coins == 95)
        },
    );
}
