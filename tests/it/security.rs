//! Security gate: rate limits, strikes, kicks, bans; a well-behaved client is unaffected.

use bevy::prelude::*;
use bloxquarium::client::ConnectionState;
use bloxquarium::protocol::{ClientEvent, ClientRequest, ServerResponse};
use bloxquarium::security::Security;
use bloxquarium::transport::{ClientEventReceived, ClientNet, RpcCompleted};

use crate::harness::{self, Scratch, pump_until};

fn connect(server: &mut App, d: &Scratch, player: u64) -> App {
    let token = harness::issue(server, player, &format!("p{player}"));
    let mut client = harness::client(d, harness::server_addr(server), &token);
    pump_until(&mut [server, &mut client], 300, "connects", |a| {
        harness::state(a[1]) == ConnectionState::Connected
    });
    client
}

fn flood_chat(client: &mut App, n: usize) {
    let mut net = client.world_mut().resource_mut::<ClientNet>();
    for i in 0..n {
        net.send_event(ClientEvent::Chat {
            text: format!("spam {i}"),
        });
    }
}

fn kicked_reason(client: &App) -> Option<String> {
    match harness::state(client) {
        ConnectionState::Disconnected { reason } => Some(reason),
        _ => None,
    }
}

#[test]
fn a_chat_flood_is_dropped_struck_and_kicked_while_others_play_on() {
    let d = Scratch::new("sec-flood");
    let mut server = harness::server(&d, &[]);
    let mut spammer = connect(&mut server, &d, 1);
    let mut good = connect(&mut server, &d, 2);
    harness::drain::<ClientEventReceived>(&mut server);

    flood_chat(&mut spammer, 20);
    let t = good.world().resource::<Time<Real>>().elapsed();
    let id = good.world_mut().resource_mut::<ClientNet>().call(
        ClientRequest::Echo {
            payload: b"fine".to_vec(),
        },
        t,
    );
    let mut admitted = Vec::new();
    let mut answers = Vec::new();
    pump_until(
        &mut [&mut server, &mut spammer, &mut good],
        300,
        "spammer kicked, good answered",
        |a| {
            admitted.extend(harness::drain::<ClientEventReceived>(a[0]));
            answers.extend(harness::drain::<RpcCompleted>(a[2]));
            kicked_reason(a[1]).is_some() && !answers.is_empty()
        },
    );
    let chats = admitted
        .iter()
        .filter(|e| e.client == 1 && matches!(e.event, ClientEvent::Chat { .. }))
        .count();
    assert_eq!(
        chats, 2,
        "the burst of security.rateLimits.chat = 2 gets through, the rest is dropped"
    );
    let reason = kicked_reason(&spammer).unwrap();
    assert!(reason.contains("kicked"), "{reason}");
    assert_eq!(answers[0].id, id);
    assert_eq!(
        answers[0].result,
        Ok(ServerResponse::Echo {
            payload: b"fine".to_vec()
        })
    );
    assert_eq!(harness::state(&good), ConnectionState::Connected);
    // The audit log has the strikes and the kick, and the CLI finds them.
    use bloxquarium::security::{AuditKind, AuditQuery, audit};
    let q = |kind| {
        audit::query(
            &d.0,
            &AuditQuery {
                player: Some(1),
                kind: Some(kind),
                since_ms: None,
            },
        )
        .unwrap()
    };
    assert!(q(AuditKind::Strike).len() >= 4);
    assert_eq!(q(AuditKind::Kick).len(), 1);
    assert!(
        audit::query(
            &d.0,
            &AuditQuery {
                player: Some(2),
                ..Default::default()
            }
        )
        .unwrap()
        .is_empty()
    );
    let mut cmd = harness::bin();
    cmd.args([
        "--data",
        d.path(),
        "audit",
        "--player",
        "1",
        "--kind",
        "kick",
        "--since",
        "1h",
    ]);
    let out = harness::output_within(cmd, std::time::Duration::from_secs(30));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("Kick player=1"),
        "{}",
        harness::text(&out)
    );
    let sec = server.world().resource::<Security>();
    assert!(
        sec.limiter.refused >= 5 && sec.kicks == 1,
        "refused {}, kicks {}",
        sec.limiter.refused,
        sec.kicks
    );
}

#[test]
fn repeated_kicks_ban_and_the_ban_holds_at_reconnect_and_restart() {
    let d = Scratch::new("sec-ban");
    let mut server = harness::server(&d, &[]);
    for round in 0..3 {
        let mut c = connect(&mut server, &d, 9);
        flood_chat(&mut c, 20);
        pump_until(&mut [&mut server, &mut c], 300, "kicked", |a| {
            kicked_reason(a[1]).is_some()
        });
        let reason = kicked_reason(&c).unwrap();
        if round < 2 {
            assert!(reason.contains("kicked"), "{reason}");
        } else {
            assert!(reason.contains("banned"), "{reason}");
        }
        harness::pump(&mut [&mut server], 5);
    }
    assert!(server.world().resource::<Security>().bans.contains_key(&9));
    // Reconnecting is refused with the ban's remaining time.
    let token = harness::issue(&server, 9, "p9");
    let mut c = harness::client(&d, harness::server_addr(&server), &token);
    pump_until(&mut [&mut server, &mut c], 300, "refused", |a| {
        kicked_reason(a[1]).is_some()
    });
    assert!(kicked_reason(&c).unwrap().contains("banned for"));
    // The ban is persisted: a new server on the same data dir knows it.
    drop(c);
    drop(server);
    let server = harness::server(&d, &[]);
    assert!(server.world().resource::<Security>().bans.contains_key(&9));
}

#[test]
fn only_a_role_that_grants_it_may_change_shared_config() {
    use bloxquarium::config::Config;
    use bloxquarium::protocol::{ConfigValue, RemoteError};
    let d = Scratch::new("sec-roles");
    let mut server = harness::server(&d, &[]);
    let mut player = connect(&mut server, &d, 1);
    let mut admin = connect(&mut server, &d, 2);
    server
        .world_mut()
        .resource_mut::<Security>()
        .assign_role(2, "admin", "test")
        .unwrap();
    let ask = |client: &mut App, coins: i64| {
        let t = client.world().resource::<Time<Real>>().elapsed();
        client.world_mut().resource_mut::<ClientNet>().call(
            ClientRequest::SetConfig {
                path: "game.startingCoins".into(),
                value: ConfigValue::Int(coins),
            },
            t,
        )
    };
    let p_id = ask(&mut player, 1);
    let a_id = ask(&mut admin, 777);
    let (mut p_ans, mut a_ans) = (Vec::new(), Vec::new());
    pump_until(
        &mut [&mut server, &mut player, &mut admin],
        300,
        "answers",
        |a| {
            p_ans.extend(harness::drain::<RpcCompleted>(a[1]));
            a_ans.extend(harness::drain::<RpcCompleted>(a[2]));
            !p_ans.is_empty() && !a_ans.is_empty()
        },
    );
    assert_eq!(p_ans[0].id, p_id);
    assert_eq!(
        p_ans[0].result,
        Err(RemoteError::Rejected(
            "permission denied: config.write.shared".into()
        ))
    );
    assert_eq!(a_ans[0].id, a_id);
    assert!(
        matches!(a_ans[0].result, Ok(ServerResponse::ConfigSet { .. })),
        "{:?}",
        a_ans[0].result
    );
    assert_eq!(
        server
            .world()
            .resource::<Config>()
            .get::<i64>("game.startingCoins"),
        Ok(777)
    );
    assert_eq!(server.world().resource::<Security>().denied, 1);
    // Changes are audited at the start of the next server frame.
    harness::pump(&mut [&mut server], 2);
    {
        use bloxquarium::security::{AuditKind, AuditQuery, audit};
        let q = |player, kind| {
            audit::query(
                &d.0,
                &AuditQuery {
                    player,
                    kind: Some(kind),
                    since_ms: None,
                },
            )
            .unwrap()
        };
        assert_eq!(q(Some(1), AuditKind::PermissionDenied).len(), 1);
        assert_eq!(
            q(Some(2), AuditKind::AdminAction).len(),
            1,
            "the role change"
        );
        let changes = q(None, AuditKind::ConfigChange);
        assert!(changes.iter().any(|r| r.details.contains("game.startingCoins") && r.details.contains("player 2")), "{changes:?}");
    }
    // The assignment is persisted.
    drop((player, admin, server));
    let server = harness::server(&d, &[]);
    assert_eq!(server.world().resource::<Security>().role_of(2), "admin");
    assert_eq!(server.world().resource::<Security>().role_of(1), "player");
}

#[test]
fn an_idle_session_expires_even_with_heartbeats() {
    let d = Scratch::new("sec-expiry");
    let cfg = harness::config_dir(&d, r#"{"security.sessionTimeout": 60}"#);
    let mut server = harness::server_with_config(&d, &cfg);
    let mut idle = connect(&mut server, &d, 5);
    // 60 s at 1/30 s a frame: the client stays connected and sends heartbeats, but no action.
    pump_until(&mut [&mut server, &mut idle], 2100, "expired", |a| {
        kicked_reason(a[1]).is_some()
    });
    let reason = kicked_reason(&idle).unwrap();
    assert!(reason.contains("session expired"), "{reason}");
}
