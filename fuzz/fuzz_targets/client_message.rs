//! A client's message as the server reads it: decode, kind lookup, validation, permission and
//! dispatch (`ServerCore::handle_bytes`), through the aquarium's registered messages. The first
//! byte picks the channel.
#![no_main]

use std::sync::LazyLock;
use std::time::Duration;

use bloxquarium::definition::Game;
use bloxquarium::protocol::RemoteTable;
use bloxquarium::transport::{ServerCore, SessionMaterial, TokenIdentity, protocol_table};
use libfuzzer_sys::fuzz_target;

static TABLE: LazyLock<RemoteTable> =
    LazyLock::new(|| protocol_table(bloxquarium::game::AquariumGame::protocol));

fuzz_target!(|data: &[u8]| {
    let Some((&ch, bytes)) = data.split_first() else {
        return;
    };
    let mut core = ServerCore::new(1 << 20);
    let identity = TokenIdentity {
        player_id: 1,
        display_name: "fuzz".into(),
        material: SessionMaterial([7; 32]),
    };
    if core
        .open_session(1, identity, None, Duration::ZERO)
        .is_err()
    {
        return;
    }
    let _ = core.handle_bytes(1, ch % 3, bytes, Duration::ZERO, &TABLE);
    let _ = core.take_signals();
});
