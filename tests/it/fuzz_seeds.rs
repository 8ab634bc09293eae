//! The fuzz targets' seed corpora (`fuzz/seeds/<target>/`), made from real messages, tokens,
//! config files, the manifest and a profile, the way the tests make them. The test fails when
//! the committed seeds differ from what this makes (a protocol change); rewrite them with
//! `BLOXQUARIUM_BLESS=1 cargo test --test it fuzz_seeds`.

use std::path::Path;

use bloxquarium::game::protocol::{Purchase, ShopItem, StateUpdate};
use bloxquarium::protocol::builtin::{Chat, Echo, Heartbeat, SetConfig};
use bloxquarium::protocol::{
    ClientMessage, ConfigValue, Remote, SealedClientMessage, SealedServerMessage, ServerMessage,
    encode,
};
use bloxquarium::transport::{SessionMaterial, TokenIdentity};

const SEEDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/seeds");

fn enc<T: serde::Serialize>(v: &T) -> Vec<u8> {
    encode(v).expect("encodes")
}

fn with(first: u8, bytes: Vec<u8>) -> Vec<u8> {
    std::iter::once(first).chain(bytes).collect()
}

/// (target, seed name, bytes).
fn seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let chat = enc(&Chat {
        text: "hello tank".into(),
    });
    let purchase = enc(&Purchase {
        op_id: 3,
        item: ShopItem::Fish { species: 1 },
        quantity: 2,
    });
    let set = enc(&SetConfig {
        path: "graphics.fpsCap".into(),
        value: ConfigValue::Int(30),
    });
    let mut out = vec![
        (
            "client_message",
            "chat",
            with(
                1,
                enc(&ClientMessage::Event {
                    kind: Chat::KIND,
                    payload: chat.clone(),
                }),
            ),
        ),
        (
            "client_message",
            "heartbeat",
            with(
                0,
                enc(&ClientMessage::Event {
                    kind: Heartbeat::KIND,
                    payload: enc(&Heartbeat {
                        client_time_ms: 1_800_000_000_000,
                    }),
                }),
            ),
        ),
        (
            "client_message",
            "echo",
            with(
                2,
                enc(&ClientMessage::Request {
                    id: 7,
                    kind: Echo::KIND,
                    payload: enc(&Echo {
                        payload: vec![1, 2, 3],
                    }),
                }),
            ),
        ),
        (
            "sealed_client_message",
            "purchase",
            enc(&SealedClientMessage::Request {
                id: 9,
                kind: Purchase::KIND,
                payload: purchase,
            }),
        ),
        (
            "sealed_client_message",
            "set_config",
            enc(&SealedClientMessage::Request {
                id: 10,
                kind: SetConfig::KIND,
                payload: set,
            }),
        ),
        (
            "server_message",
            "event",
            with(
                0,
                enc(&ServerMessage::Event {
                    kind: Chat::KIND,
                    payload: chat,
                }),
            ),
        ),
        (
            "server_message",
            "sealed_response",
            with(
                1,
                enc(&SealedServerMessage::Response {
                    id: 1,
                    result: Ok(vec![5; 8]),
                }),
            ),
        ),
        (
            "server_message",
            "sealed_state",
            with(
                1,
                enc(&SealedServerMessage::Event {
                    kind: StateUpdate::KIND,
                    payload: vec![0; 16],
                }),
            ),
        ),
    ];
    // Datagrams: three packets in one payload, and one bare packet.
    let mut batch = Vec::new();
    let mut buf = Vec::new();
    let packets = [vec![1u8, 2, 3], vec![4u8; 40], vec![6u8, 0, 1]];
    bloxquarium::transport::pack_datagrams(&packets, 1200, &mut buf, |d: &[u8]| {
        batch.push(d.to_vec());
        Ok::<(), ()>(())
    })
    .unwrap();
    out.push(("datagram_batch", "three", batch.remove(0)));
    out.push(("datagram_batch", "single", vec![3, 1, 4, 1, 5]));
    // A token's identity, and a whole token file.
    let identity = TokenIdentity {
        player_id: 42,
        display_name: "Coral".into(),
        material: SessionMaterial([7; 32]),
    };
    out.push((
        "token_user_data",
        "identity",
        identity.to_user_data().unwrap().to_vec(),
    ));
    let issuer = bloxquarium::transport::TokenIssuer::new(
        [3; 32],
        <bloxquarium::game::AquariumGame as bloxquarium::definition::Game>::protocol_id(),
        vec!["127.0.0.1:5000".parse().unwrap()],
    );
    let issued = issuer
        .issue_at(42, "Coral", std::time::Duration::from_secs(1_800_000_000))
        .unwrap();
    let file = std::env::temp_dir().join(format!("bq-seed-token-{}", std::process::id()));
    issued.write_file(&file).unwrap();
    out.push((
        "token_user_data",
        "token_file",
        std::fs::read(&file).unwrap(),
    ));
    let _ = std::fs::remove_file(&file);
    // Login requests as the client sends them (the first byte: the size of each read).
    let login = |body: &str| {
        let mut bytes = vec![7u8];
        bytes.extend_from_slice(
            format!(
                "POST /v1/login HTTP/1.1\r\nHost: 10.0.0.1:5001\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
        bytes
    };
    out.push((
        "login_request",
        "login",
        login(r#"{"username":"Coral","password":"sea-shells-42"}"#),
    ));
    out.push((
        "login_request",
        "refresh",
        login(r#"{"refresh_token":"7b7d.00"}"#),
    ));
    // And an answer as the client reads it back.
    let mut answer = vec![7u8];
    let refusal = r#"{"error":"wrong username or password","reason":"wrong_credentials"}"#;
    bloxquarium::accounts::login::http::write_response(&mut answer, 401, &[], refusal.as_bytes())
        .unwrap();
    out.push(("login_request", "answer", answer));
    // Config: the shipped files and a layer of every shape.
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config");
    out.push((
        "config_layer",
        "default",
        std::fs::read(Path::new(config).join("default.ron")).unwrap(),
    ));
    out.push((
        "config_layer",
        "layer",
        br#"{"graphics.fpsCap": 30, "network": (messageTimeout: "10s"), "game.fishPrices": [1, 2], "ui.showFps": true, "assetManager.preload.high": ["Textures"]}"#.to_vec(),
    ));
    out.push((
        "config_layer",
        "schema_line",
        br#"[(path: "a.b", tier: Shared, type: Int, default: 1, min: 0, max: 9, description: "x")]"#
            .to_vec(),
    ));
    // The manifest of the committed assets.
    let preload = bloxquarium::assets::Preload::from_config(
        &bloxquarium::config::load_server(Path::new(config), &bloxquarium::game::KEYS).unwrap(),
    );
    let (mut manifest, _) = bloxquarium::assets::scan_manifest(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/assets")),
        &preload,
    );
    manifest.entries.truncate(6);
    out.push(("asset_manifest", "six", enc(&manifest)));
    // A profile document, plain and sealed both ways.
    let mut profile = bloxquarium::game::Profile::new(5, bloxquarium::game::Aquarium::new(100));
    profile.fish.push(bloxquarium::game::Fish {
        id: 1,
        species: 2,
        name: "Nemo".into(),
        hunger: 10.0,
        from_trade: None,
    });
    let json = serde_json::to_vec(&profile).unwrap();
    out.push(("profile_blob", "plain", with(0, json.clone())));
    out.push(("profile_blob", "zstd", with(1, json.clone())));
    out.push(("profile_blob", "lz4", with(2, json)));
    out
}

#[test]
fn fuzz_seeds_are_made_from_real_input() {
    let bless = std::env::var_os("BLOXQUARIUM_BLESS").is_some();
    let mut stale = Vec::new();
    for (target, name, bytes) in seeds() {
        let path = Path::new(SEEDS).join(target).join(name);
        if bless {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &bytes).unwrap();
            continue;
        }
        let Ok(committed) = std::fs::read(&path) else {
            stale.push(format!("{} (missing)", path.display()));
            continue;
        };
        // A token is sealed with a random nonce: the committed one must still read as a token.
        let same = if name == "token_file" {
            bloxquarium::transport::IssuedToken::from_bytes(&committed).is_ok()
        } else {
            committed == bytes
        };
        if !same {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "fuzz seeds differ from what the protocol makes now (BLOXQUARIUM_BLESS=1 cargo test --test it fuzz_seeds rewrites them): {stale:?}"
    );
}
