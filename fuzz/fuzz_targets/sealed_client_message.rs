//! What sits behind the envelope's tag: the input is sealed under the session's client-to-server
//! key first, so the fuzzer reaches the decoding of the sealed message and of its payload (the
//! typed message, its validation and permission) rather than stopping at the tag.
#![no_main]

use std::sync::LazyLock;
use std::time::Duration;

use bloxquarium::definition::Game;
use bloxquarium::protocol::{ClientMessage, RemoteTable, encode};
use bloxquarium::transport::{
    EnvelopeDirection, Sealer, ServerCore, SessionMaterial, TokenIdentity, protocol_table,
};
use libfuzzer_sys::fuzz_target;

static TABLE: LazyLock<RemoteTable> =
    LazyLock::new(|| protocol_table(bloxquarium::game::AquariumGame::protocol));

fuzz_target!(|data: &[u8]| {
    let material = SessionMaterial([7; 32]);
    let mut core = ServerCore::new(1 << 20);
    let identity = TokenIdentity {
        player_id: 1,
        display_name: "fuzz".into(),
        material: material.clone(),
    };
    let Ok(session) = core.open_session(1, identity, None, Duration::ZERO) else {
        return;
    };
    let mut sealer = Sealer::new(
        &material,
        session,
        EnvelopeDirection::ClientToServer,
        1 << 20,
    );
    let Ok(sealed) = sealer.seal(data) else {
        return;
    };
    let Ok(bytes) = encode(&ClientMessage::Sealed(sealed)) else {
        return;
    };
    // Reliable-ordered: the only channel sealed messages may use.
    let _ = core.handle_bytes(1, 2, &bytes, Duration::ZERO, &TABLE);
    let _ = core.take_signals();
});
