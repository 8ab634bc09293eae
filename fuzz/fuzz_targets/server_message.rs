//! A server's message as a client reads it (`ClientCore::handle_bytes`), after a welcome: the
//! first byte picks plain bytes, or bytes sealed under the session's server-to-client key (so
//! the fuzzer reaches what sits behind the envelope's tag).
#![no_main]

use std::time::Duration;

use bloxquarium::protocol::{PROTOCOL_VERSION, ServerMessage, encode};
use bloxquarium::transport::{ClientCore, EnvelopeDirection, Sealer, SessionMaterial};
use libfuzzer_sys::fuzz_target;

const SESSION: u128 = 42;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let material = SessionMaterial([7; 32]);
    let mut core = ClientCore::new(material.clone(), Duration::from_secs(30), 1 << 20);
    let Ok(welcome) = encode(&ServerMessage::Welcome {
        session_id: SESSION,
        protocol_version: PROTOCOL_VERSION,
        display_name: "fuzz".into(),
    }) else {
        return;
    };
    let _ = core.handle_bytes(&welcome, Duration::ZERO);
    if mode % 2 == 0 {
        let _ = core.handle_bytes(rest, Duration::ZERO);
    } else {
        let mut sealer = Sealer::new(
            &material,
            SESSION,
            EnvelopeDirection::ServerToClient,
            1 << 20,
        );
        let Ok(sealed) = sealer.seal(rest) else {
            return;
        };
        let Ok(bytes) = encode(&ServerMessage::Sealed(sealed)) else {
            return;
        };
        let _ = core.handle_bytes(&bytes, Duration::ZERO);
    }
    let _ = core.expire(Duration::from_secs(60));
});
