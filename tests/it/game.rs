//! The game through the network: buying and selling with prediction, income, the leaderboard.

use bevy::prelude::*;
use bloxquarium::datastore::DataStoreState;
use bloxquarium::game::{Catalog, GameOp, Leaderboard, Prediction};
use bloxquarium::protocol::ShopItem;
use bloxquarium::transport::ClientNet;

use crate::harness::{self, Scratch, pump_until};

fn send(client: &mut App, op: GameOp) -> Result<u64, String> {
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
        let token = harness::issue(server, player, name);
        let mut c = harness::client(&d, harness::server_addr(server), &token);
        pump_until(&mut [server, &mut c], 300, "in the game", |a| {
            a[1].world()
                .resource::<Prediction>()
                .predictor
                .authoritative()
                .is_some()
        });
        c
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
    let live = server
        .world()
        .resource::<DataStoreState>()
        .profile(1)
        .unwrap()
        .profile
        .clone();
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
    assert_eq!(board[0].0, "Bob", "{board:?}");
    assert_eq!(board[1].0, "Ann");
    assert_eq!(board[0].1, 100);
    // No impossible-income report for the refund or the income.
    assert!(
        server
            .world()
            .resource::<bloxquarium::security::Security>()
            .suspicious
            .is_empty()
    );
}
