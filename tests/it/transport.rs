//! Transport: server and clients in one process over loopback UDP.

use std::time::Duration;

use bevy::prelude::*;
use bevy_renet::RenetClient;
use bloxquarium::clock::unix_now;
use bloxquarium::protocol::builtin::{Chat, Echo, SecureEcho, ServerStats};
use bloxquarium::protocol::{
    self, ClientMessage, PROTOCOL_VERSION, Remote, RemoteError, SealedClientMessage, channel,
    protocol_id_for,
};
use bloxquarium::transport::ConnectionState;
use bloxquarium::transport::{
    Answer, ClientNet, FromClient, FromServer, SecuritySignalRaised, ServerNet, SessionEnded,
    SessionStarted, SignalKind, TokenIssuer, TransportError,
};
use bloxquarium::{ProcessOptions, StartError};

use crate::harness::{self, JoinUntil::Connected, Scratch, pump, pump_until, state};

fn sessions(server: &App) -> usize {
    server.world().resource::<ServerNet>().session_count()
}

#[test]
fn a_valid_token_connects_and_opens_a_session() {
    let data = Scratch::new("tp-valid");
    let mut server = harness::server(&data, &[]);
    let client = harness::join(&mut server, &data, 42, "Nemo", Connected);
    let net = server.world().resource::<ServerNet>();
    let session = net.session(42).expect("session for player 42");
    assert_eq!(
        (session.player_id, session.display_name.as_str()),
        (42, "Nemo")
    );
    assert!(session.addr.is_some());
    assert_ne!(session.session_id, 0);
    let session_id = session.session_id;
    let started = harness::drain::<SessionStarted>(&mut server);
    assert_eq!(started.len(), 1);
    assert_eq!(
        client.world().resource::<ClientNet>().session(),
        Some(session_id)
    );
}

/// Drives a bare netcode client (no checks of ours) against the server for `frames` frames;
/// returns whether it ever connected.
fn raw_client_connects(
    server: &mut App,
    auth: renet_netcode::ClientAuthentication,
    frames: usize,
) -> bool {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let mut transport = renet_netcode::NetcodeClientTransport::new(unix_now(), auth, socket)
        .expect("raw transport");
    let mut client = renet::RenetClient::new(renet::ConnectionConfig::default());
    let step = Duration::from_millis(33);
    for _ in 0..frames {
        client.update(step);
        let _ = transport.update(step, &mut client);
        if client.is_connected() {
            return true;
        }
        let _ = transport.send_packets(&mut client);
        server.update();
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

#[test]
fn forged_expired_and_wrong_protocol_tokens_are_refused() {
    let data = Scratch::new("tp-refused");
    let mut server = harness::server(&data, &[]);
    let addr = harness::server_addr(&server);

    // Forged: signed with some other key.
    let protocol_id =
        <bloxquarium::game::AquariumGame as bloxquarium::definition::Game>::protocol_id();
    let forged = TokenIssuer::new([9; 32], protocol_id, vec![addr])
        .issue(5, "Mallory")
        .unwrap();
    assert!(!raw_client_connects(
        &mut server,
        renet_netcode::ClientAuthentication::Secure {
            connect_token: forged.token
        },
        90
    ));

    // Expired: the server's own key, issued long ago.
    let real = server
        .world()
        .resource::<bloxquarium::transport::ServerTokens>()
        .0
        .clone();
    let old = real
        .issue_at(6, "Old", unix_now() - Duration::from_secs(3600))
        .unwrap();
    assert!(!raw_client_connects(
        &mut server,
        renet_netcode::ClientAuthentication::Secure {
            connect_token: old.token
        },
        90
    ));

    // Wrong protocol: the server's own key, but another protocol version.
    let key = bloxquarium::keys::load(&bloxquarium::keys::key_path(&data.0.join("keys"))).unwrap();
    let fingerprint = protocol::protocol_fingerprint_of(protocol_id).unwrap();
    let other = TokenIssuer::new(key, protocol_id_for(99, fingerprint), vec![addr])
        .issue(7, "Future")
        .unwrap();
    assert!(!raw_client_connects(
        &mut server,
        renet_netcode::ClientAuthentication::Secure {
            connect_token: other.token.clone()
        },
        90
    ));
    assert_eq!(sessions(&server), 0, "no refused token opened a session");

    // Our client refuses such a token up front, and says why.
    let path = data.0.join("future.token");
    other.write_file(&path).unwrap();
    match harness::client_with_token_file(addr, &path) {
        Err(StartError::Transport(e @ TransportError::ProtocolMismatch { .. })) => {
            let text = e.to_string();
            assert!(
                text.contains("protocol 99")
                    && text.contains(&format!("protocol {}", bloxquarium::PROTOCOL_VERSION)),
                "{text}"
            );
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a wrong-protocol token must be refused"),
    }

    // Another game (or another build registering other messages) on the same framing version:
    // the server refuses the handshake, and our client says why before trying.
    let another_game = TokenIssuer::new(
        key,
        protocol_id_for(PROTOCOL_VERSION, fingerprint ^ 1),
        vec![addr],
    )
    .issue(9, "Elsewhere")
    .unwrap();
    assert!(!raw_client_connects(
        &mut server,
        renet_netcode::ClientAuthentication::Secure {
            connect_token: another_game.token.clone()
        },
        90
    ));
    another_game.write_file(&path).unwrap();
    match harness::client_with_token_file(addr, &path) {
        Err(StartError::Transport(e @ TransportError::MessageSetMismatch { .. })) => {
            let text = e.to_string();
            assert!(
                text.contains("remote messages differ")
                    && text.contains(&format!("{:08x}", fingerprint ^ 1))
                    && text.contains(&format!("{fingerprint:08x}")),
                "{text}"
            );
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a token for another message set must be refused"),
    }
    assert_eq!(sessions(&server), 0);

    // And a valid token still works beside all that.
    let _ok = harness::join(&mut server, &data, 8, "Dory", Connected);
    assert_eq!(sessions(&server), 1);
}

#[test]
fn remote_functions_round_trip_plain_and_sealed() {
    let data = Scratch::new("tp-rpc");
    let mut server = harness::server(&data, &[]);
    let mut client = harness::join(&mut server, &data, 1, "A", Connected);
    let t = client.world().resource::<Time<Real>>().elapsed();
    let (echo, stats, sealed) = {
        let mut net = client.world_mut().resource_mut::<ClientNet>();
        (
            net.call(
                &Echo {
                    payload: b"ping".to_vec(),
                },
                t,
            ),
            net.call(&ServerStats { recent_ticks: 0 }, t),
            net.call(
                &SecureEcho {
                    payload: b"secret".to_vec(),
                },
                t,
            ),
        )
    };
    let (mut echoes, mut reports, mut secure) = (Vec::new(), Vec::new(), Vec::new());
    pump_until(
        &mut [&mut server, &mut client],
        200,
        "answers arrive",
        |a| {
            echoes.extend(harness::drain::<Answer<Echo>>(a[1]));
            reports.extend(harness::drain::<Answer<ServerStats>>(a[1]));
            secure.extend(harness::drain::<Answer<SecureEcho>>(a[1]));
            echoes.len() == 1 && reports.len() == 1 && secure.len() == 1
        },
    );
    assert_eq!(echoes[0].id, echo);
    assert_eq!(echoes[0].result, Ok(b"ping".to_vec()));
    assert_eq!(reports[0].id, stats);
    match &reports[0].result {
        Ok(s) => {
            assert_eq!(s.clients, 1);
            assert!(s.ticks > 0);
            assert!(s.rss_mb > 0.0);
        }
        other => panic!("stats: {other:?}"),
    }
    assert_eq!(secure[0].id, sealed);
    assert_eq!(secure[0].result, Ok(b"secret".to_vec()));
    let server_stats = &server.world().resource::<ServerNet>().stats;
    assert_eq!(server_stats.rpc_latency.len(), 3);
    assert_eq!(
        server_stats.total.messages_in.get(SecureEcho::NAME),
        Some(&1)
    );
    let client_stats = &client.world().resource::<ClientNet>().stats;
    assert_eq!(client_stats.rpc_latency.len(), 3);
    assert!(client_stats.rpc_p99_ms() >= client_stats.rpc_p50_ms());
    // The three calls went out on two channels in one frame, and their answers came back in one
    // tick: each way, renet's packets shared datagrams.
    let wire = server
        .world()
        .resource::<bloxquarium::transport::GatedServerTransport>()
        .counts();
    assert!(wire.packets_in > wire.datagrams_in, "{wire:?}");
    assert!(wire.packets_out > wire.datagrams_out, "{wire:?}");
    assert_eq!(wire.malformed, 0);
}

/// Between ticks a dedicated server's runner waits on the socket and answers calls as they
/// arrive (plain and sealed): no tick runs, and each pass is counted apart from the ticks.
#[test]
fn calls_are_answered_between_ticks_as_they_arrive() {
    use bloxquarium::transport::{TickTimes, runner};
    let d = Scratch::new("between-ticks");
    let mut server = harness::server(&d, &[]);
    let mut client = harness::join(&mut server, &d, 7, "Ann", Connected);
    let ticks = server.world().resource::<TickTimes>().ticks;
    let t = client.world().resource::<Time<Real>>().elapsed();
    let (plain, sealed) = {
        let mut net = client.world_mut().resource_mut::<ClientNet>();
        (
            net.call(
                &Echo {
                    payload: vec![1, 2],
                },
                t,
            ),
            net.call(&SecureEcho { payload: vec![3] }, t),
        )
    };
    client.update();
    let deadline = std::time::Instant::now() + Duration::from_millis(300);
    let passes = runner::between_ticks(&mut server, deadline);
    assert!(passes >= 1);
    let times = server.world().resource::<TickTimes>();
    assert_eq!(times.ticks, ticks, "no tick ran");
    assert_eq!(times.passes, passes);
    let (mut got_plain, mut got_sealed) = (None, None);
    pump_until(&mut [&mut client], 100, "both answers", |a| {
        for x in harness::drain::<Answer<Echo>>(a[0]) {
            if x.id == plain {
                got_plain = Some(x.result);
            }
        }
        for x in harness::drain::<Answer<SecureEcho>>(a[0]) {
            if x.id == sealed {
                got_sealed = Some(x.result);
            }
        }
        got_plain.is_some() && got_sealed.is_some()
    });
    assert_eq!(got_plain, Some(Ok(vec![1, 2])));
    assert_eq!(got_sealed, Some(Ok(vec![3])));
    // Nothing arrives (once what the client's last frame sent is read): the runner waits out
    // the time without a pass.
    runner::between_ticks(
        &mut server,
        std::time::Instant::now() + Duration::from_millis(50),
    );
    let deadline = std::time::Instant::now() + Duration::from_millis(100);
    assert_eq!(runner::between_ticks(&mut server, deadline), 0);
    assert!(std::time::Instant::now() >= deadline);
}

#[test]
fn remote_events_flow_both_ways_and_broadcast() {
    let data = Scratch::new("tp-events");
    let mut server = harness::server(&data, &[]);
    let mut a = harness::join(&mut server, &data, 1, "A", Connected);
    let mut b = harness::join(&mut server, &data, 2, "B", Connected);
    a.world_mut().resource_mut::<ClientNet>().send(&Chat {
        text: "hello tank".into(),
    });
    {
        let mut net = server.world_mut().resource_mut::<ServerNet>();
        net.broadcast(&Chat {
            text: "feeding time".into(),
        });
        net.send(
            2,
            &Chat {
                text: "just for B".into(),
            },
        );
    }
    let (mut at_server, mut at_a, mut at_b) = (Vec::new(), Vec::new(), Vec::new());
    pump_until(
        &mut [&mut server, &mut a, &mut b],
        200,
        "events arrive",
        |apps| {
            at_server.extend(harness::drain::<FromClient<Chat>>(apps[0]));
            at_a.extend(harness::drain::<FromServer<Chat>>(apps[1]));
            at_b.extend(harness::drain::<FromServer<Chat>>(apps[2]));
            !at_server.is_empty() && !at_a.is_empty() && at_b.len() >= 2
        },
    );
    assert_eq!(at_server[0].client, 1);
    assert_eq!(at_server[0].message.text, "hello tank");
    assert_eq!(at_a.len(), 1, "A gets the broadcast only");
    assert_eq!(at_a[0].0.text, "feeding time");
    assert!(at_b.iter().any(|e| e.0.text == "just for B"));
    let stats = &server.world().resource::<ServerNet>().stats;
    assert_eq!(stats.peers[&1].messages_in.get(Chat::NAME), Some(&1));
    assert!(stats.total.messages_out.get("event").copied().unwrap_or(0) >= 3);
}

#[test]
fn signed_blobs_reach_the_client_verified() {
    let data = Scratch::new("tp-signed");
    let mut server = harness::server(&data, &[]);
    let mut client = harness::join(&mut server, &data, 3, "C", Connected);
    server.world_mut().resource_mut::<ServerNet>().send_signed(
        3,
        "manifest",
        b"Models/Aquariums/Aquarium_Lv1".to_vec(),
    );
    let mut got = Vec::new();
    pump_until(
        &mut [&mut server, &mut client],
        200,
        "signed blob arrives",
        |a| {
            got.extend(harness::drain::<bloxquarium::transport::SignedBlobReceived>(a[1]));
            got.iter().any(|b| b.purpose == "manifest")
        },
    );
    let manifest = got.iter().find(|b| b.purpose == "manifest").unwrap();
    assert_eq!(manifest.blob, b"Models/Aquariums/Aquarium_Lv1");
    // A blob larger than one message travels in parts and is verified whole.
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    assert!(big.len() > 3 * bloxquarium::protocol::SIGNED_PART_BYTES);
    server
        .world_mut()
        .resource_mut::<ServerNet>()
        .send_signed(3, "big", big.clone());
    got.clear();
    pump_until(
        &mut [&mut server, &mut client],
        300,
        "the big blob arrives",
        |a| {
            got.extend(harness::drain::<bloxquarium::transport::SignedBlobReceived>(a[1]));
            got.iter().any(|b| b.purpose == "big")
        },
    );
    assert_eq!(got.len(), 1, "one blob, not its parts");
    assert_eq!(got[0].blob, big);
}

#[test]
fn a_remote_function_times_out_when_the_server_is_silent() {
    let data = Scratch::new("tp-timeout");
    let mut server = harness::server(&data, &[]);
    let mut client = harness::join(&mut server, &data, 1, "A", Connected);
    let timeout = client.world().resource::<ClientNet>().timeout();
    assert_eq!(
        timeout,
        Duration::from_secs(30),
        "network.messageTimeout default"
    );
    client
        .world_mut()
        .resource_mut::<ClientNet>()
        .set_timeout(Duration::from_secs(1));
    // Only the client runs: nobody answers. 1 s at 1/30 s a frame.
    assert_eq!(
        harness::unanswered_echo(&mut client, 60),
        Some(Err(RemoteError::Timeout(1000)))
    );
    assert_eq!(client.world().resource::<ClientNet>().stats.rpc_timeouts, 1);
}

fn send_raw(client: &mut App, ch: u8, bytes: Vec<u8>) {
    client
        .world_mut()
        .resource_mut::<RenetClient>()
        .send_message(ch, bytes);
}

#[test]
fn bad_input_is_rejected_and_counted_while_a_good_client_keeps_working() {
    let data = Scratch::new("tp-bad");
    let mut server = harness::server(&data, &[]);
    let mut bad = harness::join(&mut server, &data, 66, "Mallory", Connected);
    let mut good = harness::join(&mut server, &data, 7, "Dory", Connected);
    harness::drain::<SecuritySignalRaised>(&mut server);

    // Random bytes.
    send_raw(
        &mut bad,
        channel::RELIABLE_ORDERED,
        vec![0xde, 0xad, 0xbe, 0xef, 0xff, 0xff, 0xff],
    );
    // Oversized.
    send_raw(
        &mut bad,
        channel::RELIABLE_ORDERED,
        vec![0; protocol::MAX_MESSAGE_BYTES + 10],
    );
    // A valid envelope, tampered.
    let plain = protocol::encode(&SealedClientMessage::Request {
        id: 1,
        kind: SecureEcho::KIND,
        payload: protocol::encode(&SecureEcho {
            payload: b"x".to_vec(),
        })
        .unwrap(),
    })
    .unwrap();
    let mut tampered = bad
        .world_mut()
        .resource_mut::<ClientNet>()
        .seal_raw(&plain)
        .unwrap();
    tampered.ciphertext[0] ^= 0x80;
    send_raw(
        &mut bad,
        channel::RELIABLE_ORDERED,
        protocol::encode(&ClientMessage::Sealed(tampered)).unwrap(),
    );
    // A valid envelope, sent twice: the copy is a replay.
    let genuine = bad
        .world_mut()
        .resource_mut::<ClientNet>()
        .seal_raw(&plain)
        .unwrap();
    let bytes = protocol::encode(&ClientMessage::Sealed(genuine)).unwrap();
    send_raw(&mut bad, channel::RELIABLE_ORDERED, bytes.clone());
    send_raw(&mut bad, channel::RELIABLE_ORDERED, bytes);
    // A sealed kind sent in clear, and a kind nobody registered.
    for kind in [SecureEcho::KIND, 0x0BAD_C0DE] {
        send_raw(
            &mut bad,
            channel::RELIABLE_ORDERED,
            protocol::encode(&ClientMessage::Request {
                id: 2,
                kind,
                payload: protocol::encode(&SecureEcho {
                    payload: b"x".to_vec(),
                })
                .unwrap(),
            })
            .unwrap(),
        );
    }

    let t = good.world().resource::<Time<Real>>().elapsed();
    let id = good.world_mut().resource_mut::<ClientNet>().call(
        &Echo {
            payload: b"still here".to_vec(),
        },
        t,
    );
    let mut signals = Vec::new();
    let mut answers = Vec::new();
    pump_until(
        &mut [&mut server, &mut bad, &mut good],
        300,
        "signals and the good answer",
        |a| {
            signals.extend(harness::drain::<SecuritySignalRaised>(a[0]));
            answers.extend(harness::drain::<Answer<Echo>>(a[2]));
            signals.len() >= 6 && !answers.is_empty()
        },
    );
    let kinds: Vec<SignalKind> = signals.iter().map(|s| s.0.kind).collect();
    for k in [
        SignalKind::Undecodable,
        SignalKind::Oversized,
        SignalKind::Tampered,
        SignalKind::Replayed,
    ] {
        assert!(kinds.contains(&k), "{k:?} missing from {kinds:?}");
    }
    let invalid: Vec<&str> = signals
        .iter()
        .filter(|s| s.0.kind == SignalKind::Invalid)
        .map(|s| s.0.detail.as_str())
        .collect();
    assert!(
        invalid
            .iter()
            .any(|d| d.contains("bq.secure_echo must travel sealed"))
            && invalid
                .iter()
                .any(|d| d.contains("unknown message kind 0x0badc0de")),
        "{invalid:?}"
    );
    assert!(
        signals.iter().all(|s| s.0.client == 66),
        "only the bad client is blamed"
    );
    let stats = &server.world().resource::<ServerNet>().stats;
    assert_eq!(stats.total.rejected, 6);
    assert_eq!(stats.peers[&66].rejected, 6);
    assert_eq!(stats.peers[&7].rejected, 0);
    assert_eq!(answers[0].id, id);
    assert_eq!(answers[0].result, Ok(b"still here".to_vec()));
    // The genuine envelope itself was served once.
    assert_eq!(
        sessions(&server),
        2,
        "nobody was disconnected by the transport"
    );
}

#[test]
fn leaving_and_kicks_end_sessions_with_a_message() {
    let data = Scratch::new("tp-leave");
    let mut server = harness::server(&data, &[]);
    let mut leaver = harness::join(&mut server, &data, 1, "Leaver", Connected);
    let mut kicked = harness::join(&mut server, &data, 2, "Kicked", Connected);
    harness::drain::<SessionEnded>(&mut server);

    leaver
        .world_mut()
        .resource_mut::<bloxquarium::shutdown::Shutdown>()
        .request(bloxquarium::shutdown::ShutdownReason::Requested(
            "test".into(),
        ));
    server
        .world_mut()
        .resource_mut::<ServerNet>()
        .kick(2, "too many fish");
    let mut ended = Vec::new();
    pump_until(
        &mut [&mut server, &mut leaver, &mut kicked],
        300,
        "both sessions end",
        |a| {
            ended.extend(harness::drain::<SessionEnded>(a[0]));
            ended.len() == 2 && matches!(state(a[2]), ConnectionState::Disconnected { .. })
        },
    );
    let mut players: Vec<u64> = ended.iter().map(|e| e.player_id).collect();
    players.sort();
    assert_eq!(players, vec![1, 2]);
    assert_eq!(sessions(&server), 0);
    match state(&kicked) {
        ConnectionState::Disconnected { reason } => {
            assert!(reason.contains("too many fish"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn max_clients_is_enforced() {
    let data = Scratch::new("tp-max");
    let mut server = harness::server(&data, &["--max-clients", "1"]);
    let _first = harness::join(&mut server, &data, 1, "First", Connected);
    let token = harness::issue(&server, 2, "Second");
    let mut second = harness::client(&data, harness::server_addr(&server), &token);
    pump_until(
        &mut [&mut server, &mut second],
        harness::JOIN_FRAMES,
        "second is refused",
        |a| matches!(state(a[1]), ConnectionState::Disconnected { .. }),
    );
    match state(&second) {
        ConnectionState::Disconnected { reason } => assert!(reason.contains("full"), "{reason}"),
        other => panic!("{other:?}"),
    }
    pump(&mut [&mut server], 2);
    assert_eq!(sessions(&server), 1);
}

#[test]
fn server_refuses_a_key_file_others_can_read() {
    use std::os::unix::fs::PermissionsExt;
    let data = Scratch::new("tp-key");
    drop(harness::server(&data, &[]));
    let key = bloxquarium::keys::key_path(&data.0.join("keys"));
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cli = harness::cli(&["--data", data.path(), "server", "--bind", "127.0.0.1:0"]);
    let bloxquarium::cli::Command::Server(args) = cli.mode() else {
        unreachable!()
    };
    match bloxquarium::server_app(&cli.global, &args, ProcessOptions::EMBEDDED) {
        Err(e) => assert!(e.to_string().contains("chmod 600"), "{e}"),
        Ok(_) => panic!("a readable key must stop the server"),
    }
}

#[test]
fn binary_token_and_headless_client_exit_status() {
    use std::process::Stdio;
    let data = Scratch::new("tp-bin");
    let port = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let mut server = harness::bin()
        .args([
            "--data",
            data.path(),
            "--exit-after",
            "60",
            "server",
            "--bind",
            &addr,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The key exists once the server started.
    let key = bloxquarium::keys::key_path(&data.0.join("keys"));
    let start = std::time::Instant::now();
    while !key.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "server never created its key"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let token = data.0.join("t.bin");
    let mut cmd = harness::bin();
    cmd.args([
        "--data",
        data.path(),
        "token",
        "--player",
        "5",
        "--name",
        "Bubbles",
        "--server",
        &addr,
        "--out",
    ])
    .arg(&token);
    let out = harness::output_within(cmd, Duration::from_secs(30));
    assert!(out.status.success(), "{}", harness::text(&out));

    let mut cmd = harness::bin();
    cmd.args([
        "--exit-after",
        "2",
        "client",
        "--headless",
        "--server",
        &addr,
        "--token",
    ])
    .arg(&token);
    let out = harness::output_within(cmd, Duration::from_secs(60));
    let log = harness::text(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "connected client exits 0:\n{log}"
    );
    assert!(log.contains("connected as Bubbles"), "{log}");

    // The load test against the same server: its last line is the JSON report.
    let mut cmd = harness::bin();
    cmd.args([
        "--data",
        data.path(),
        "loadtest",
        "--server",
        &addr,
        "--clients",
        "4",
        "--duration",
        "2",
        "--rate",
        "10",
        "--json",
    ]);
    let out = harness::output_within(cmd, Duration::from_secs(60));
    assert!(out.status.success(), "{}", harness::text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("a JSON last line");
    for key in [
        "clients",
        "connected",
        "duration_s",
        "msgs_per_s",
        "rpc_p50_ms",
        "rpc_p99_ms",
        "server_tick_p50_ms",
        "server_tick_p99_ms",
        "server_rss_mb",
        "bytes_per_client_per_s",
        "errors",
        "server_cpu_pct",
        "loadgen_cpu_pct",
    ] {
        assert!(report.get(key).is_some(), "{key} missing: {report}");
    }
    assert_eq!(report["clients"], 4, "{report}");
    assert_eq!(report["connected"], 4, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    let figure = |key: &str| report[key].as_f64().unwrap_or(0.0);
    assert!(figure("msgs_per_s") > 20.0, "{report}");
    assert!(figure("rpc_p99_ms") >= figure("rpc_p50_ms"), "{report}");
    assert!(figure("rpc_p50_ms") > 0.0, "{report}");
    assert!(figure("server_tick_p99_ms") > 0.0, "{report}");
    assert!(figure("server_rss_mb") > 0.0, "{report}");
    assert!(figure("server_cpu_pct") > 0.0, "{report}");
    let _ = server.kill();
    let _ = server.wait();

    // Nobody listening: not connected when the time runs out, exit 1.
    let mut cmd = harness::bin();
    cmd.args([
        "--exit-after",
        "1",
        "client",
        "--headless",
        "--server",
        &addr,
        "--token",
    ])
    .arg(&token);
    let out = harness::output_within(cmd, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(1), "{}", harness::text(&out));
}

#[test]
fn binary_client_without_token_says_how_to_get_one() {
    let mut cmd = harness::bin();
    cmd.args(["client", "--headless"]);
    let out = harness::output_within(cmd, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--login HOST")
            && err.contains("--token")
            && err.contains("bloxquarium token"),
        "{err}"
    );
}

/// One frame of a bare netcode client: its own packets out, the server's in.
fn raw_netcode_step(
    raw: &mut renetcode::NetcodeClient,
    socket: &std::net::UdpSocket,
    buf: &mut [u8; renetcode::NETCODE_MAX_PACKET_BYTES],
) {
    if let Some((packet, addr)) = raw.update(Duration::from_millis(10)) {
        let _ = socket.send_to(packet, addr);
    }
    while let Ok((len, _)) = socket.recv_from(buf) {
        let _ = raw.process_packet(&mut buf[..len]);
    }
}

/// Echo round trip from `client`, pumping `server`.
fn echo(server: &mut App, client: &mut App, payload: &[u8]) -> Result<Vec<u8>, RemoteError> {
    harness::call(
        server,
        client,
        &mut [],
        Echo {
            payload: payload.to_vec(),
        },
    )
}

/// A bare netcode client of `player` (a real token from `server`, no renet or framing of ours
/// above it), not yet connected; with its non-blocking socket.
fn unconnected_netcode_client(
    server: &App,
    player: u64,
    name: &str,
) -> (renetcode::NetcodeClient, std::net::UdpSocket) {
    let issued = harness::issue(server, player, name);
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_nonblocking(true).unwrap();
    let raw = renetcode::NetcodeClient::new(
        unix_now(),
        renetcode::ClientAuthentication::Secure {
            connect_token: issued.token,
        },
    )
    .unwrap();
    (raw, socket)
}

/// A bare netcode client of `player` (see [`unconnected_netcode_client`]), connected to `server`
/// beside `good`; with its socket.
fn bare_netcode_client(
    server: &mut App,
    good: &mut App,
    player: u64,
) -> (renetcode::NetcodeClient, std::net::UdpSocket) {
    let (mut raw, socket) = unconnected_netcode_client(server, player, "Bare");
    let mut buf = [0u8; renetcode::NETCODE_MAX_PACKET_BYTES];
    let before = sessions(server);
    for _ in 0..300 {
        raw_netcode_step(&mut raw, &socket, &mut buf);
        server.update();
        good.update();
        if raw.is_connected() && sessions(server) == before + 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(
        sessions(server),
        before + 1,
        "the bare client has a session"
    );
    (raw, socket)
}

#[test]
fn a_malformed_batch_ends_only_its_sender() {
    use bloxquarium::transport::BATCH_TAG;
    let data = Scratch::new("tp-batch");
    let mut server = harness::server(&data, &[]);
    let mut good = harness::join(&mut server, &data, 7, "Dory", Connected);
    // A bare netcode client with a real token: netcode accepts its payloads, so only our framing
    // stands between them and renet.
    let (mut raw, socket) = bare_netcode_client(&mut server, &mut good, 9);

    // A batch whose only entry claims 9 bytes and carries 3.
    let (addr, packet) = raw
        .generate_payload_packet(&[BATCH_TAG, 9, 0, 1, 2, 3])
        .unwrap();
    socket.send_to(packet, addr).unwrap();
    pump_until(
        &mut [&mut server, &mut good],
        300,
        "the garbled client is disconnected",
        |a| sessions(a[0]) == 1,
    );
    let wire = server
        .world()
        .resource::<bloxquarium::transport::GatedServerTransport>()
        .counts();
    assert_eq!(wire.malformed, 1, "{wire:?}");
    assert!(server.world().resource::<ServerNet>().session(7).is_some());
    assert_eq!(
        echo(&mut server, &mut good, b"unbothered"),
        Ok(b"unbothered".to_vec())
    );
}

#[test]
fn the_multi_threaded_executor_serves_too() {
    let data = Scratch::new("tp-multi");
    let mut server = harness::server(&data, &["--multi-threaded"]);
    let mut client = harness::join(&mut server, &data, 3, "Gill", Connected);
    assert_eq!(
        echo(&mut server, &mut client, b"ping"),
        Ok(b"ping".to_vec())
    );
}

/// 16 bots play for 60 s through 5% loss, 60 ± 20 ms delay, 1% duplication, 1% reordering and
/// 0.5% truncation, each way: every call gets its outcome (an answer, or a typed error), the
/// server stays up and healthy, renet measures each bot's loss, and every bot's profile is whole
/// in the store afterwards.
#[test]
fn bots_play_through_loss_delay_duplication_reordering_and_truncation() {
    use std::process::Stdio;
    let d = Scratch::new("tp-faults");
    let free_udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = free_udp.local_addr().unwrap().to_string();
    drop(free_udp);
    let free_tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let metrics = free_tcp.local_addr().unwrap().to_string();
    drop(free_tcp);
    let mut server = harness::bin()
        .env("BLOXQUARIUM_METRICS_BIND", &metrics)
        .args(["--data", d.path(), "server", "--bind", &addr])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the server");
    let health = || {
        ureq::get(&format!("http://{metrics}/health"))
            .timeout(Duration::from_secs(5))
            .call()
            .map(|r| r.status())
            .unwrap_or_else(|e| match e {
                ureq::Error::Status(code, _) => code,
                _ => 0,
            })
    };
    let up = std::time::Instant::now();
    while health() != 200 {
        assert!(
            up.elapsed() < Duration::from_secs(60),
            "the server did not come up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut load = harness::bin();
    load.args([
        "--data",
        d.path(),
        "loadtest",
        "--server",
        &addr,
        "--clients",
        "16",
        "--duration",
        "60",
        "--loss",
        "5%",
        "--delay",
        "60ms±20ms",
        "--duplicate",
        "1%",
        "--reorder",
        "1%",
        "--truncate",
        "0.5%",
        "--json",
    ]);
    let out = harness::output_within(load, Duration::from_secs(180));
    let text = harness::text(&out);
    assert!(out.status.success(), "{text}");
    let json: serde_json::Value = serde_json::from_str(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or_default(),
    )
    .unwrap_or_else(|e| panic!("{e}: {text}"));
    let n = |k: &str| json[k].as_u64().unwrap_or_else(|| panic!("{k} in {json}"));
    assert_eq!(n("connected"), 16, "{text}");
    assert!(n("calls") > 10_000, "{text}");
    assert_eq!(
        n("calls_unresolved"),
        0,
        "every call has its outcome: {text}"
    );
    assert_eq!(
        n("calls"),
        n("calls_answered") + n("calls_refused") + n("calls_timed_out") + n("calls_disconnected"),
        "{text}"
    );
    assert_eq!(n("bots_disconnected"), 0, "{text}");
    let faults = &json["faults"];
    for k in ["dropped", "duplicated", "reordered", "truncated"] {
        assert!(faults[k].as_u64().unwrap_or(0) > 0, "{k}: {text}");
    }
    let loss = json["client_loss_pct_mean"].as_f64().unwrap();
    assert!(
        (2.0..=12.0).contains(&loss),
        "renet measured {loss}% loss: {text}"
    );
    // The server is up and healthy, then stops cleanly.
    assert_eq!(health(), 200);
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &server.id().to_string()])
            .status()
            .expect("kill")
            .success()
    );
    let stop = std::time::Instant::now();
    let code = loop {
        if let Some(s) = server.try_wait().expect("wait") {
            break s.code();
        }
        assert!(
            stop.elapsed() < Duration::from_secs(30),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, Some(0));
    // Every bot's profile is in the store, whole.
    let config = bloxquarium::config::load_server(
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/config")),
        &bloxquarium::game::KEYS,
    )
    .unwrap();
    let store = bloxquarium::datastore::open::<bloxquarium::game::Aquarium>(&d.0, &config).unwrap();
    for i in 0..16u64 {
        let (_, p) = store
            .peek::<bloxquarium::game::Aquarium>(1_000_000_000 + i)
            .unwrap_or_else(|e| panic!("bot {i}: {e}"))
            .unwrap_or_else(|| panic!("bot {i} has no profile"));
        p.validate().unwrap_or_else(|e| panic!("bot {i}: {e}"));
    }
}

/// Regression (the network-fault test): a netcode packet long enough for renetcode's first
/// length check but too short for its sequence and MAC, from a connected client's address,
/// panicked the server's decoder. Now it is dropped and counted; the server plays on.
#[test]
fn a_packet_too_short_for_its_sequence_and_mac_is_dropped() {
    let data = Scratch::new("tp-short");
    let mut server = harness::server(&data, &[]);
    let mut good = harness::join(&mut server, &data, 7, "Dory", Connected);
    let (_raw, socket) = bare_netcode_client(&mut server, &mut good, 9);
    // A payload packet (type 5) with an 8-byte sequence, then 9 bytes: 18 in all.
    let mut packet = vec![(8 << 4) | 5];
    packet.extend_from_slice(&[0; 17]);
    socket
        .send_to(&packet, harness::server_addr(&server))
        .unwrap();
    harness::pump(&mut [&mut server, &mut good], 5);
    let wire = server
        .world()
        .resource::<bloxquarium::transport::GatedServerTransport>()
        .counts();
    assert_eq!(wire.malformed, 1, "{wire:?}");
    assert_eq!(
        echo(&mut server, &mut good, b"still here"),
        Ok(b"still here".to_vec())
    );
}

/// A crowd that finishes its handshakes at once (here between ticks, where no session opens)
/// is welcomed `JOINS_PER_TICK` a tick, first come first served, so no one tick carries every
/// join's welcome, manifest, config snapshot and profile load.
#[test]
fn a_crowd_joining_at_once_gets_its_sessions_a_tick_at_a_time() {
    use bloxquarium::transport::{JOINS_PER_TICK, runner};
    let data = Scratch::new("tp-crowd");
    // The crowd dials from one address: let it.
    let config = harness::config_dir(&data, r#"{"security.connectAttemptsBurst": 100}"#);
    let mut server = harness::server_with_config(&data, &config);
    let n = JOINS_PER_TICK + 5;
    let mut crowd: Vec<_> = (0..n as u64)
        .map(|i| unconnected_netcode_client(&server, 500 + i, "Crowd"))
        .collect();
    let mut buf = [0u8; renetcode::NETCODE_MAX_PACKET_BYTES];
    for _ in 0..300 {
        for (raw, socket) in crowd.iter_mut() {
            raw_netcode_step(raw, socket, &mut buf);
        }
        runner::between_ticks(
            &mut server,
            std::time::Instant::now() + Duration::from_millis(3),
        );
        if crowd.iter().all(|(raw, _)| raw.is_connected()) {
            break;
        }
    }
    assert!(crowd.iter().all(|(raw, _)| raw.is_connected()));
    assert_eq!(sessions(&server), 0, "no session opens between ticks");
    server.update();
    assert_eq!(sessions(&server), JOINS_PER_TICK);
    server.update();
    assert_eq!(sessions(&server), n);
    let started = harness::drain::<SessionStarted>(&mut server);
    assert_eq!(started.len(), n);
}

/// A server bound to every address refuses to start without a public address; with one, its
/// tokens name it and a client joins through it. A client given a `--server` its token does not
/// name refuses to start, saying so, instead of dialling the token's address.
#[test]
fn public_addresses_and_a_token_for_another_server() {
    use bloxquarium::cli::Command as Mode;
    let data = Scratch::new("tp-public");
    let cli = harness::cli(&["--data", data.path(), "server", "--bind", "0.0.0.0:0"]);
    let Mode::Server(args) = cli.mode() else {
        unreachable!("a server command line")
    };
    let Err(e) = bloxquarium::server_app(&cli.global, &args, ProcessOptions::EMBEDDED) else {
        panic!("a server bound to 0.0.0.0 without --public-addr started");
    };
    let e = e.to_string();
    assert!(e.contains("add --public-addr IP:PORT"), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");

    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port();
    let public: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let bind = format!("0.0.0.0:{port}");
    let public_arg = public.to_string();
    let mut server = harness::app(&[
        "--data",
        data.path(),
        "server",
        "--bind",
        &bind,
        "--public-addr",
        &public_arg,
    ]);
    let token = harness::issue(&server, 9, "Pub");
    assert_eq!(token.servers(), vec![public]);
    let mut client = harness::client(&data, public, &token);
    harness::wait_joined(&mut server, &mut client, 9, Connected);

    let file = std::path::Path::new(data.path()).join("pub.token");
    token.write_file(&file).unwrap();
    let other: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
    let Err(e) = harness::client_with_token_file(other, &file) else {
        panic!("a client dialled a server its token does not name");
    };
    assert_eq!(
        e.to_string(),
        format!(
            "the token is for {public}, not {other}: make one for {other} with `bloxquarium token \
             --server {other}`, or leave --server out"
        )
    );
}
