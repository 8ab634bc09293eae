//! Reconciliation: two servers racing on one profile, a client's rejected purchase rolled back,
//! the integrity sweep catching a record altered behind the server's back.

use bloxquarium::game::Aquarium;
use std::time::Duration;

use bevy::prelude::*;
use bloxquarium::datastore::DataStore;
use bloxquarium::game::DataStoreState;
use bloxquarium::game::protocol::ShopItem;
use bloxquarium::game::{Catalog, GameOp, Prediction};
use bloxquarium::reconcile::Reconciler;
use bloxquarium::transport::ClientNet;
use bloxquarium::transport::ConnectionState;

use crate::harness::{self, JoinUntil::ProfileLoaded, Scratch, pump_until};

fn coins(server: &App, player: u64) -> i64 {
    server
        .world()
        .resource::<DataStoreState>()
        .profile(player)
        .map_or(-1, |l| l.profile.stats.coins)
}

fn leave(client: &mut App) {
    client
        .world_mut()
        .resource_mut::<bloxquarium::shutdown::Shutdown>()
        .request(bloxquarium::shutdown::ShutdownReason::Requested(
            "leave".into(),
        ));
}

#[test]
fn two_servers_racing_on_one_profile_lose_nothing() {
    let d = Scratch::new("rc-race-a");
    let d2 = Scratch::new("rc-race-b");
    let settings = r#"{"datastore.lockStaleAfter": 5, "datastore.autosaveInterval": 5}"#;
    let cfg = harness::config_dir(&d, settings);
    let cfg2 = harness::config_dir(&d2, settings);
    let mut a = harness::server_with_config(&d, &cfg);
    let mut b = harness::server_with_config(&d2, &cfg2);
    // Both servers write one store (as two processes would a shared backend).
    let shared = a.world().resource::<DataStore>().clone();
    b.world_mut().insert_resource(shared.clone());

    // Server A has player 7 and earns them 50 coins it has not saved yet...
    let mut on_a = harness::join(&mut a, &d, 7, "p7", ProfileLoaded);
    harness::edit_profile(&mut a, 7, |p| p.stats.coins += 50);
    // ...then stalls (no frames) past datastore.lockStaleAfter.
    std::thread::sleep(Duration::from_millis(5_500));
    // Server B takes the stale lock over, adds 30 coins, and saves when the player leaves.
    let mut on_b = harness::join(&mut b, &d2, 7, "p7", ProfileLoaded);
    assert_eq!(coins(&b, 7), 100);
    harness::edit_profile(&mut b, 7, |p| p.stats.coins += 30);
    leave(&mut on_b);
    pump_until(&mut [&mut b, &mut on_b], 300, "B saved", |apps| {
        apps[0]
            .world()
            .resource::<DataStoreState>()
            .profile(7)
            .is_none()
            && apps[0].world().resource::<DataStoreState>().busy() == 0
    });
    assert_eq!(
        shared.peek::<Aquarium>(7).unwrap().unwrap().1.stats.coins,
        130
    );
    // A wakes up: its lock is gone, so its session ends (fencing), and its unsaved 50 coins are
    // merged into B's save instead of overwriting it or being lost.
    pump_until(&mut [&mut a, &mut on_a], 600, "A reconciled", |apps| {
        apps[0]
            .world()
            .resource::<Reconciler>()
            .stats
            .resolved_conflicts
            == 1
            && apps[0].world().resource::<DataStoreState>().busy() == 0
    });
    assert!(
        matches!(harness::state(&on_a), ConnectionState::Disconnected { .. })
            || a.world().resource::<DataStoreState>().profile(7).is_none()
    );
    let (_, stored) = shared.peek::<Aquarium>(7).unwrap().unwrap();
    assert_eq!(stored.stats.coins, 180, "100 + 50 (A) + 30 (B)");
    let rc = a.world().resource::<Reconciler>();
    assert_eq!(rc.stats.pending_conflicts, 0);
    assert!(rc.stats.total_snapshots >= 1);
}

#[test]
fn a_rejected_purchase_is_rolled_back_with_its_reason() {
    let d = Scratch::new("rc-predict");
    let mut server = harness::server(&d, &[]);
    let mut client = harness::join(&mut server, &d, 8, "p8", ProfileLoaded);
    let catalog = Catalog::from_config(
        &client
            .world()
            .resource::<bloxquarium::config::ClientConfig>()
            .0,
    )
    .unwrap();
    pump_until(&mut [&mut server, &mut client], 300, "state at join", |a| {
        a[1].world()
            .resource::<Prediction>()
            .predictor
            .authoritative()
            .is_some()
    });
    // A purchase predicted at once, then acknowledged.
    let send = |client: &mut App, op| {
        let t = client.world().resource::<Time<Real>>().elapsed();
        let world = client.world_mut();
        let mut net = world.remove_resource::<ClientNet>().unwrap();
        let r = world
            .resource_mut::<Prediction>()
            .send(&mut net, op, &catalog, t);
        world.insert_resource(net);
        r
    };
    let buy = GameOp::Purchase {
        item: ShopItem::Fish { species: 0 },
        quantity: 2,
    };
    send(&mut client, buy).unwrap();
    let p = client.world().resource::<Prediction>();
    assert_eq!(p.predictor.predicted(&catalog).unwrap().coins, 80);
    assert_eq!(p.predictor.pending(), 1);
    pump_until(&mut [&mut server, &mut client], 300, "acknowledged", |a| {
        a[1].world().resource::<Prediction>().predictor.pending() == 0
    });
    let p = client.world().resource::<Prediction>();
    assert_eq!(p.predictor.acknowledged, 1);
    assert_eq!(p.predictor.authoritative().unwrap().fish.len(), 2);
    // The server takes coins away (an admin, say); the client does not know yet and predicts a
    // purchase it can no longer afford.
    harness::edit_profile(&mut server, 8, |p| p.stats.coins = 5);
    let op = send(&mut client, buy).unwrap();
    assert_eq!(
        client
            .world()
            .resource::<Prediction>()
            .predictor
            .predicted(&catalog)
            .unwrap()
            .fish
            .len(),
        4
    );
    pump_until(&mut [&mut server, &mut client], 300, "rejected", |a| {
        !a[1]
            .world()
            .resource::<Prediction>()
            .predictor
            .rejections
            .is_empty()
    });
    let p = &client.world().resource::<Prediction>().predictor;
    assert_eq!(p.pending(), 0);
    assert_eq!(p.rejections[0].0, op);
    assert!(
        p.rejections[0].1.contains("costs 20 coins, balance is 5"),
        "{:?}",
        p.rejections
    );
    // Rolled back: the prediction is the last authoritative state again.
    assert_eq!(p.predicted(&catalog).unwrap().fish.len(), 2);
    // The next state from the server brings the client in line with it.
    pump_until(&mut [&mut server, &mut client], 600, "converged", |a| {
        a[1].world()
            .resource::<Prediction>()
            .predictor
            .authoritative()
            .is_some_and(|s| s.coins < 10)
    });
    let server_coins = coins(&server, 8);
    let p = &client.world().resource::<Prediction>().predictor;
    assert!((p.predicted(&catalog).unwrap().coins - server_coins).abs() <= 1);
    assert_eq!(p.predicted(&catalog).unwrap().fish.len(), 2);
}

#[test]
fn the_integrity_sweep_catches_a_record_altered_behind_the_servers_back() {
    let d = Scratch::new("rc-integrity");
    let cfg = harness::config_dir(
        &d,
        r#"{"reconcile.interval": 1, "datastore.autosaveInterval": 5}"#,
    );
    let mut server = harness::server_with_config(&d, &cfg);
    let mut client = harness::join(&mut server, &d, 9, "p9", ProfileLoaded);
    // A first save so a stored copy exists.
    harness::edit_profile(&mut server, 9, |p| p.stats.coins = 321);
    pump_until(&mut [&mut server, &mut client], 600, "saved", |a| {
        a[0].world()
            .resource::<DataStoreState>()
            .profile(9)
            .is_some_and(|l| !l.dirty && l.version > 0)
    });
    let store = server.world().resource::<DataStore>().clone();
    let (version, mut stored) = store.peek::<Aquarium>(9).unwrap().unwrap();
    // Someone edits the stored record in place, keeping its version number.
    stored.stats.coins = 1_000_000;
    store.tamper_current::<Aquarium>(&stored).unwrap();
    pump_until(
        &mut [&mut server, &mut client],
        600,
        "caught and repaired",
        |a| {
            a[0].world()
                .resource::<Reconciler>()
                .stats
                .integrity_failures
                == 1
                && store
                    .peek::<Aquarium>(9)
                    .ok()
                    .flatten()
                    .is_some_and(|(v, p)| v > version && p.stats.coins == 321)
        },
    );
    assert_eq!(coins(&server, 9), 321, "the server's copy stands");
}

#[test]
fn under_manual_a_conflict_waits_for_an_admin_who_settles_it_over_the_network() {
    use bloxquarium::protocol::builtin::{ListConflicts, ResolveConflict};
    use bloxquarium::security::Security;
    let d = Scratch::new("rc-manual");
    let cfg = harness::config_dir(
        &d,
        r#"{"reconcile.strategy.profile": "Manual", "datastore.autosaveInterval": 5}"#,
    );
    let mut server = harness::server_with_config(&d, &cfg);
    let mut player = harness::join(&mut server, &d, 11, "p11", ProfileLoaded);
    let mut admin = harness::join(&mut server, &d, 12, "p12", ProfileLoaded);
    server
        .world_mut()
        .resource_mut::<Security>()
        .assign_role(12, "admin", "test")
        .unwrap();
    let store = server.world().resource::<DataStore>().clone();
    let server_id = server
        .world()
        .resource::<DataStoreState>()
        .server_id
        .clone();
    // A first save, so a stored version exists.
    harness::edit_profile(&mut server, 11, |p| p.stats.coins = 120);
    pump_until(
        &mut [&mut server, &mut player, &mut admin],
        600,
        "saved",
        |a| {
            a[0].world()
                .resource::<DataStoreState>()
                .profile(11)
                .is_some_and(|l| !l.dirty && l.version > 0)
        },
    );
    // The live session changes the profile...
    harness::edit_profile(&mut server, 11, |p| p.stats.coins = 150);
    // ...while a transaction on this server writes it from the same base (a trade, say).
    store
        .transact::<Aquarium>(&[11], &server_id, bloxquarium::clock::now_ms(), |ps| {
            if let Some(p) = ps.get_mut(&11) {
                p.stats.coins = 90;
            }
            Ok(())
        })
        .unwrap();
    pump_until(
        &mut [&mut server, &mut player, &mut admin],
        600,
        "conflict queued",
        |a| {
            a[0].world()
                .resource::<Reconciler>()
                .stats
                .pending_conflicts
                == 1
        },
    );
    assert!(
        server
            .world()
            .resource::<DataStoreState>()
            .profile(11)
            .unwrap()
            .is_held()
    );
    let listed = harness::call(&mut server, &mut admin, &mut [&mut player], ListConflicts);
    let Ok(list) = listed else {
        panic!("{listed:?}")
    };
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].key, 11);
    // A player may not settle conflicts.
    let denied = harness::call(&mut server, &mut player, &mut [&mut admin], ListConflicts);
    assert!(denied.is_err(), "{denied:?}");
    let r = harness::call(
        &mut server,
        &mut admin,
        &mut [&mut player],
        ResolveConflict {
            id: list[0].id,
            take_ours: true,
        },
    );
    assert!(r.is_ok(), "{r:?}");
    let (_, stored) = store.peek::<Aquarium>(11).unwrap().unwrap();
    assert_eq!(stored.stats.coins, 150, "the server's side was kept");
    let rc = server.world().resource::<Reconciler>();
    assert_eq!(rc.stats.pending_conflicts, 0);
    assert_eq!(rc.stats.resolved_conflicts, 1);
    assert!(
        !server
            .world()
            .resource::<DataStoreState>()
            .profile(11)
            .unwrap()
            .is_held()
    );
}
