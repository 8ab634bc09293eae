//! The second game (`examples/room`), built only from the framework's public API, driven
//! headless: chat through its own events, a counter through its own function that persists in
//! its own profile type, its own config keys, its own admin command behind its own permission,
//! and a protocol of its own that the aquarium's clients cannot speak.

#[allow(dead_code)]
#[path = "../../examples/room/room.rs"]
pub mod room_game;

use bevy::prelude::*;
use bloxquarium::definition::Game;
use bloxquarium::protocol::RemoteError;
use bloxquarium::transport::{ServerNet, ServerTokens, TransportError};

use crate::harness::{self, Scratch, pump_until};
use room_game as room;
use room_game::protocol::ResetCounter;
use room_game::{RoomData, RoomGame, RoomView};

fn server(d: &Scratch) -> App {
    room::server_app(
        &room::room_paths(&d.0),
        "127.0.0.1:0".parse().unwrap(),
        60,
        false,
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn join(server: &mut App, d: &Scratch, player: u64, name: &str) -> App {
    let token = server
        .world()
        .resource::<ServerTokens>()
        .0
        .issue(player, name)
        .unwrap();
    let addr = server
        .world()
        .resource::<bloxquarium::server::ServerSettings>()
        .bind;
    let mut client = room::client_app(&room::room_paths(&d.0.join(name)), addr, token, false)
        .unwrap_or_else(|e| panic!("{e}"));
    pump_until(
        &mut [server, &mut client],
        600,
        "the room says the counter",
        |a| a[1].world().resource::<RoomView>().counter.is_some(),
    );
    client
}

fn view(client: &App) -> RoomView {
    client.world().resource::<RoomView>().clone()
}

#[test]
fn a_second_game_chats_counts_persists_and_keeps_its_own_rules() {
    let d = Scratch::new("room");
    // The room's own keys, set like any key: bumps add 5, counters start at 10.
    std::fs::create_dir_all(d.0.join("config")).unwrap();
    std::fs::write(
        d.0.join("config/default.ron"),
        r#"{"room.bumpStep": 5, "room.startCounter": 10, "room.welcome": "hello, room"}"#,
    )
    .unwrap();
    let mut server = server(&d);
    let mut ada = join(&mut server, &d, 1, "Ada");
    let mut ben = join(&mut server, &d, 2, "Ben");
    assert_eq!(
        view(&ada).counter,
        Some(10),
        "the template from room.startCounter"
    );
    assert_eq!(view(&ada).lines[0], ("room".into(), "hello, room".into()));

    // Chat: Ada's line reaches both; an over-long one is refused by the type's validator.
    room::say(&mut ada, "hi all");
    room::say(&mut ada, &"x".repeat(500));
    pump_until(
        &mut [&mut server, &mut ada, &mut ben],
        600,
        "the line",
        |a| {
            a[2].world()
                .resource::<RoomView>()
                .lines
                .iter()
                .any(|l| l == &("Ada".to_string(), "hi all".to_string()))
        },
    );
    let signals = server
        .world()
        .resource::<bloxquarium::security::Security>()
        .failed_validations;
    assert_eq!(signals, 1, "the 500-character line was refused");
    assert!(view(&ada).lines.iter().all(|(_, t)| t.len() < 500));

    // The counter: two bumps of room.bumpStep = 5.
    room::bump(&mut ada);
    room::bump(&mut ada);
    pump_until(&mut [&mut server, &mut ada, &mut ben], 600, "bumped", |a| {
        a[1].world().resource::<RoomView>().counter == Some(20)
    });

    // The room's own admin command: refused without `room.reset`, done with it.
    let denied = harness::call(
        &mut server,
        &mut ben,
        &mut [&mut ada],
        ResetCounter { player: 1 },
    );
    assert_eq!(
        denied,
        Err(RemoteError::Rejected(
            "permission denied: room.reset".into()
        ))
    );
    server
        .world_mut()
        .resource_mut::<bloxquarium::security::Security>()
        .assign_role(2, "admin", "test")
        .unwrap();
    let done = harness::call(
        &mut server,
        &mut ben,
        &mut [&mut ada],
        ResetCounter { player: 1 },
    );
    assert_eq!(done, Ok("player 1's counter is 10 again".to_string()));
    pump_until(
        &mut [&mut server, &mut ada, &mut ben],
        600,
        "reset seen",
        |a| a[1].world().resource::<RoomView>().counter == Some(10),
    );
    room::bump(&mut ada);
    pump_until(
        &mut [&mut server, &mut ada, &mut ben],
        600,
        "bumped again",
        |a| a[1].world().resource::<RoomView>().counter == Some(15),
    );

    // Persistence: the server shuts down (saving every profile); a new one serves the counter.
    server
        .world_mut()
        .resource_mut::<bloxquarium::shutdown::Shutdown>()
        .request(bloxquarium::shutdown::ShutdownReason::Requested(
            "test".into(),
        ));
    for _ in 0..600 {
        server.update();
        if server.should_exit().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert!(
        server.should_exit().is_some(),
        "the server drained and exited"
    );
    drop((server, ada, ben));
    let mut server = self::server(&d);
    let ada = join(&mut server, &d, 1, "Ada");
    assert_eq!(view(&ada).counter, Some(15), "the counter persisted");
    let stored = server
        .world()
        .resource::<bloxquarium::datastore::DataStore>()
        .peek::<RoomData>(1)
        .unwrap()
        .unwrap()
        .1;
    assert_eq!(stored.lines_said, 1);
    assert!(stored.operations.iter().any(|o| o.kind == "reset"));
    assert_eq!(server.world().resource::<ServerNet>().session_count(), 1);
}

#[test]
fn the_room_and_the_aquarium_speak_different_protocols() {
    use bloxquarium::game::AquariumGame;
    assert_ne!(RoomGame::protocol_id(), AquariumGame::protocol_id());
    // A room token in the aquarium's client is refused before it dials, saying why.
    let d = Scratch::new("room-proto");
    let server = server(&d);
    let token = server
        .world()
        .resource::<ServerTokens>()
        .0
        .issue(3, "Cy")
        .unwrap();
    let path = d.0.join("cy.token");
    token.write_file(&path).unwrap();
    let addr = server
        .world()
        .resource::<bloxquarium::server::ServerSettings>()
        .bind;
    match harness::client_with_token_file(addr, &path) {
        Err(bloxquarium::StartError::Transport(TransportError::MessageSetMismatch { .. })) => {}
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("an aquarium client must refuse a room token"),
    }
}
