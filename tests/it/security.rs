//! Security gate: rate limits, strikes, kicks, bans; a well-behaved client is unaffected.

use bevy::prelude::*;
use bloxquarium::game::Aquarium;
use bloxquarium::protocol::builtin::{Chat, Echo, SetConfig};
use bloxquarium::security::Security;
use bloxquarium::transport::ConnectionState;
use bloxquarium::transport::{Answer, ClientNet, FromClient};

use crate::harness::{self, JoinUntil::Connected, Scratch, pump_until};

fn flood_chat(client: &mut App, n: usize) {
    let mut net = client.world_mut().resource_mut::<ClientNet>();
    for i in 0..n {
        net.send(&Chat {
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
    let mut spammer = harness::join(&mut server, &d, 1, "p1", Connected);
    let mut good = harness::join(&mut server, &d, 2, "p2", Connected);
    harness::drain::<FromClient<Chat>>(&mut server);

    flood_chat(&mut spammer, 20);
    let t = good.world().resource::<Time<Real>>().elapsed();
    let id = good.world_mut().resource_mut::<ClientNet>().call(
        &Echo {
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
            admitted.extend(harness::drain::<FromClient<Chat>>(a[0]));
            answers.extend(harness::drain::<Answer<Echo>>(a[2]));
            kicked_reason(a[1]).is_some() && !answers.is_empty()
        },
    );
    let chats = admitted.iter().filter(|e| e.client == 1).count();
    assert_eq!(
        chats, 2,
        "the burst of security.rateLimits.chat = 2 gets through, the rest is dropped"
    );
    let reason = kicked_reason(&spammer).unwrap();
    assert!(reason.contains("kicked"), "{reason}");
    assert_eq!(answers[0].id, id);
    assert_eq!(answers[0].result, Ok(b"fine".to_vec()));
    assert_eq!(harness::state(&good), ConnectionState::Connected);
    // The audit log has the strikes and the kick, and the CLI finds them.
    use bloxquarium::security::{AuditKind, AuditQuery};
    let q = |kind| {
        bloxquarium::security::query_audit(
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
        bloxquarium::security::query_audit(
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
    let mut good = harness::join(&mut server, &d, 10, "p10", Connected);
    for round in 0..3 {
        let mut c = harness::join(&mut server, &d, 9, "p9", Connected);
        flood_chat(&mut c, 20);
        pump_until(&mut [&mut server, &mut c, &mut good], 300, "kicked", |a| {
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
    {
        use bloxquarium::security::{AuditKind, AuditQuery};
        let q = |kind| {
            bloxquarium::security::query_audit(
                &d.0,
                &AuditQuery {
                    player: Some(9),
                    kind: Some(kind),
                    since_ms: None,
                },
            )
            .unwrap()
        };
        assert_eq!(q(AuditKind::Kick).len(), 2);
        assert_eq!(q(AuditKind::Ban).len(), 1);
        assert_eq!(q(AuditKind::BanEnforced).len(), 1);
    }
    harness::pump(&mut [&mut server, &mut good], 5);
    assert_eq!(harness::state(&good), ConnectionState::Connected);
    // The ban is persisted: a new server on the same data dir knows it (once the old one has
    // finished the store work the ended sessions left: it holds the store file till then).
    drop(c);
    pump_until(&mut [&mut server], 300, "the store's work done", |a| {
        a[0].world()
            .resource::<bloxquarium::game::DataStoreState>()
            .busy()
            == 0
    });
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
    let mut player = harness::join(&mut server, &d, 1, "p1", Connected);
    let mut admin = harness::join(&mut server, &d, 2, "p2", Connected);
    server
        .world_mut()
        .resource_mut::<Security>()
        .assign_role(2, "admin", "test")
        .unwrap();
    let ask = |client: &mut App, coins: i64| {
        let t = client.world().resource::<Time<Real>>().elapsed();
        client.world_mut().resource_mut::<ClientNet>().call(
            &SetConfig {
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
            p_ans.extend(harness::drain::<Answer<SetConfig>>(a[1]));
            a_ans.extend(harness::drain::<Answer<SetConfig>>(a[2]));
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
    assert!(a_ans[0].result.is_ok(), "{:?}", a_ans[0].result);
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
        use bloxquarium::security::{AuditKind, AuditQuery};
        let q = |player, kind| {
            bloxquarium::security::query_audit(
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
    let mut idle = harness::join(&mut server, &d, 5, "p5", Connected);
    let mut busy = harness::join(&mut server, &d, 6, "p6", Connected);
    // 60 s at 1/30 s a frame: the idle client stays connected and sends heartbeats, but no
    // action; the busy one chats every 10 s.
    let mut frame = 0;
    pump_until(
        &mut [&mut server, &mut idle, &mut busy],
        2100,
        "expired",
        |a| {
            frame += 1;
            if frame % 300 == 0 {
                a[2].world_mut().resource_mut::<ClientNet>().send(&Chat {
                    text: "still here".into(),
                });
            }
            kicked_reason(a[1]).is_some()
        },
    );
    let reason = kicked_reason(&idle).unwrap();
    assert!(reason.contains("session expired"), "{reason}");
    assert_eq!(harness::state(&busy), ConnectionState::Connected);
    use bloxquarium::security::{AuditKind, AuditQuery};
    let expired = |p| {
        bloxquarium::security::query_audit(
            &d.0,
            &AuditQuery {
                player: Some(p),
                kind: Some(AuditKind::SessionExpired),
                since_ms: None,
            },
        )
        .unwrap()
    };
    assert_eq!(expired(5).len(), 1);
    assert!(expired(5)[0].session.is_some());
    assert!(expired(6).is_empty());
}

// ---- The adversarial harness ------------------------------------------------------------------

use bloxquarium::game::protocol::{GrantCoins, Purchase, ShopItem};
use bloxquarium::protocol::builtin::{
    Ban, Heartbeat, Kick, ReloadConfig, SecureEcho, SecurityStats, SetRole, Unban,
};
use bloxquarium::protocol::{ClientMessage, Remote, RemoteError, SealedClientMessage, channel};
use bloxquarium::security::{AuditKind, AuditQuery, AuditRecord};

fn audit_of(d: &Scratch, player: Option<u64>, kind: AuditKind) -> Vec<AuditRecord> {
    bloxquarium::security::query_audit(
        &d.0,
        &AuditQuery {
            player,
            kind: Some(kind),
            since_ms: None,
        },
    )
    .unwrap()
}

/// The well-behaved client still gets answers and stays connected.
fn still_fine(server: &mut App, good: &mut App) {
    let r = harness::call(
        server,
        good,
        &mut [],
        SecureEcho {
            payload: b"ok".to_vec(),
        },
    );
    assert_eq!(r, Ok(b"ok".to_vec()));
    assert_eq!(harness::state(good), ConnectionState::Connected);
}

/// Waits until the server has loaded `player`'s profile.
fn loaded(server: &mut App, clients: &mut [&mut App], player: u64) {
    for _ in 0..300 {
        server.update();
        for c in clients.iter_mut() {
            c.update();
        }
        if server
            .world()
            .resource::<bloxquarium::game::DataStoreState>()
            .profile(player)
            .is_some()
        {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    panic!("profile {player} not loaded");
}

#[test]
fn out_of_range_fields_are_refused_with_a_reason_a_strike_and_an_audit_record() {
    let d = Scratch::new("sec-range");
    let mut server = harness::server(&d, &[]);
    let mut bad = harness::join(&mut server, &d, 31, "p31", Connected);
    let mut good = harness::join(&mut server, &d, 32, "p32", Connected);
    fn refused<R: std::fmt::Debug>(r: Result<R, RemoteError>, why: &str) {
        match r {
            Err(RemoteError::Rejected(reason)) => assert!(reason.contains(why), "{reason}"),
            other => panic!("expected a rejection, got {other:?}"),
        }
    }
    for (body, why) in [
        (
            Purchase {
                op_id: 1,
                item: ShopItem::Fish { species: 0 },
                quantity: 0,
            },
            "quantity 0 is not 1..=20",
        ),
        (
            Purchase {
                op_id: 2,
                item: ShopItem::Fish { species: 200 },
                quantity: 1,
            },
            "species 200 is not 0..32",
        ),
    ] {
        refused(
            harness::call(&mut server, &mut bad, &mut [&mut good], body),
            why,
        );
    }
    refused(
        harness::call(
            &mut server,
            &mut bad,
            &mut [&mut good],
            GrantCoins {
                player: 31,
                amount: i64::MAX,
            },
        ),
        "grant of",
    );
    // An over-long chat line is dropped (events have no answer) and struck.
    bad.world_mut().resource_mut::<ClientNet>().send(&Chat {
        text: "x".repeat(500),
    });
    pump_until(
        &mut [&mut server, &mut bad, &mut good],
        300,
        "4 strikes",
        |a| a[0].world().resource::<Security>().failed_validations >= 4,
    );
    let strikes = audit_of(&d, Some(31), AuditKind::Strike);
    assert_eq!(strikes.len(), 4, "{strikes:?}");
    assert!(strikes.iter().all(|s| s.session.is_some()), "{strikes:?}");
    assert!(
        strikes[3].details.contains("chat line over 200"),
        "{strikes:?}"
    );
    // The fifth strike kicks.
    let _ = harness::call(
        &mut server,
        &mut bad,
        &mut [&mut good],
        Purchase {
            op_id: 3,
            item: ShopItem::TankUpgrade,
            quantity: 2,
        },
    );
    pump_until(
        &mut [&mut server, &mut bad, &mut good],
        300,
        "kicked",
        |a| kicked_reason(a[1]).is_some(),
    );
    still_fine(&mut server, &mut good);
    assert!(audit_of(&d, Some(32), AuditKind::Strike).is_empty());
}

#[test]
fn permission_escalation_is_denied_struck_and_audited() {
    let d = Scratch::new("sec-escalate");
    let mut server = harness::server(&d, &[]);
    let mut bad = harness::join(&mut server, &d, 41, "p41", Connected);
    let mut good = harness::join(&mut server, &d, 42, "p42", Connected);
    loaded(&mut server, &mut [&mut bad, &mut good], 41);
    fn denied<T: bloxquarium::protocol::RemoteFunction>(
        server: &mut App,
        bad: &mut App,
        good: &mut App,
        cmd: T,
    ) {
        let perm = cmd.permission().unwrap();
        let r = harness::call(server, bad, &mut [good], cmd).map(|_| ());
        assert_eq!(
            r,
            Err(RemoteError::Rejected(format!("permission denied: {perm}")))
        );
    }
    denied(
        &mut server,
        &mut bad,
        &mut good,
        GrantCoins {
            player: 41,
            amount: 1_000_000,
        },
    );
    denied(
        &mut server,
        &mut bad,
        &mut good,
        SetRole {
            player: 41,
            role: "admin".into(),
        },
    );
    denied(
        &mut server,
        &mut bad,
        &mut good,
        Kick {
            player: 42,
            reason: "mine".into(),
        },
    );
    denied(&mut server, &mut bad, &mut good, SecurityStats);
    let denied = audit_of(&d, Some(41), AuditKind::PermissionDenied);
    assert_eq!(denied.len(), 4);
    assert!(
        denied[1]
            .details
            .contains("admin.role denied (role player)")
    );
    assert_eq!(audit_of(&d, Some(41), AuditKind::Strike).len(), 4);
    let sec = server.world().resource::<Security>();
    assert_eq!(sec.role_of(41), "player");
    assert_eq!(sec.denied, 4);
    let coins = server
        .world()
        .resource::<bloxquarium::game::DataStoreState>()
        .profile(41)
        .unwrap()
        .profile
        .stats
        .coins;
    assert_eq!(coins, 100, "no coins were granted");
    still_fine(&mut server, &mut good);
}

#[test]
fn a_replayed_envelope_is_dropped_counted_and_audited() {
    let d = Scratch::new("sec-replay");
    let mut server = harness::server(&d, &[]);
    let mut bad = harness::join(&mut server, &d, 51, "p51", Connected);
    let mut good = harness::join(&mut server, &d, 52, "p52", Connected);
    let plain = bloxquarium::protocol::encode(&SealedClientMessage::Request {
        id: 9_000,
        kind: SecureEcho::KIND,
        payload: bloxquarium::protocol::encode(&SecureEcho {
            payload: b"once".to_vec(),
        })
        .unwrap(),
    })
    .unwrap();
    let env = bad
        .world_mut()
        .resource_mut::<ClientNet>()
        .seal_raw(&plain)
        .unwrap();
    let bytes = bloxquarium::protocol::encode(&ClientMessage::Sealed(env)).unwrap();
    for _ in 0..2 {
        bad.world_mut()
            .resource_mut::<bevy_renet::RenetClient>()
            .send_message(channel::RELIABLE_ORDERED, bytes.clone());
    }
    pump_until(
        &mut [&mut server, &mut bad, &mut good],
        300,
        "replay seen",
        |a| a[0].world().resource::<Security>().failed_validations >= 1,
    );
    let fails = audit_of(&d, Some(51), AuditKind::AuthFailure);
    assert_eq!(fails.len(), 1, "{fails:?}");
    assert!(fails[0].details.contains("Replayed"), "{fails:?}");
    assert!(fails[0].session.is_some());
    let stats = server.world().resource::<Security>().stats();
    assert_eq!(stats.suspicious, vec![("envelope_replayed".to_string(), 1)]);
    assert_eq!(
        harness::state(&bad),
        ConnectionState::Connected,
        "one strike only"
    );
    still_fine(&mut server, &mut good);
}

#[test]
fn overspending_impossible_income_and_clock_skew_are_suspicious() {
    let d = Scratch::new("sec-detect");
    let mut server = harness::server(&d, &[]);
    let mut bad = harness::join(&mut server, &d, 61, "p61", Connected);
    let mut good = harness::join(&mut server, &d, 62, "p62", Connected);
    loaded(&mut server, &mut [&mut bad, &mut good], 61);
    // A purchase the client knows it cannot afford (100 coins, tank upgrade costs 500).
    let r = harness::call(
        &mut server,
        &mut bad,
        &mut [&mut good],
        Purchase {
            op_id: 7,
            item: ShopItem::TankUpgrade,
            quantity: 1,
        },
    );
    assert_eq!(
        r,
        Err(RemoteError::Rejected(
            "costs 500 coins, balance is 100".into()
        ))
    );
    // A fair one goes through.
    let r = harness::call(
        &mut server,
        &mut bad,
        &mut [&mut good],
        Purchase {
            op_id: 8,
            item: ShopItem::Fish { species: 0 },
            quantity: 2,
        },
    );
    match r {
        Ok(bloxquarium::game::protocol::Applied { op_id, state }) => {
            assert_eq!(op_id, 8);
            assert_eq!(state.coins, 80);
            assert_eq!(state.fish.len(), 2);
            assert_eq!(state.tank_level, 1);
            assert_eq!(state.last_op, 8);
        }
        other => panic!("{other:?}"),
    }
    // Coins appearing from nowhere (a handler bug or an exploit on the server side), after the
    // income watch (every second) has seen the balance.
    harness::pump_for(
        &mut [&mut server, &mut bad, &mut good],
        std::time::Duration::from_millis(1300),
    );
    harness::edit_profile(&mut server, 61, |p| p.stats.coins += 50_000);
    // A clock an hour off.
    let skewed = bloxquarium::clock::unix_now().as_millis() as u64 - 3_600_000;
    bad.world_mut()
        .resource_mut::<ClientNet>()
        .send(&Heartbeat {
            client_time_ms: skewed,
        });
    pump_until(
        &mut [&mut server, &mut bad, &mut good],
        300,
        "three kinds of suspicion",
        |a| a[0].world().resource::<Security>().suspicious.len() >= 3,
    );
    let stats = server.world().resource::<Security>().stats();
    assert_eq!(
        stats.suspicious,
        vec![
            ("clock_skew".to_string(), 1),
            ("impossible_income".to_string(), 1),
            ("overspend".to_string(), 1)
        ]
    );
    let recs = audit_of(&d, Some(61), AuditKind::Suspicious);
    assert!(recs.iter().any(|r| r.details.starts_with("overspend")));
    assert!(
        recs.iter()
            .any(|r| r.details.starts_with("impossible_income: coins rose from")),
        "{recs:?}"
    );
    assert!(recs.iter().any(|r| r.details.starts_with("clock_skew")));
    assert!(audit_of(&d, Some(62), AuditKind::Suspicious).is_empty());
    still_fine(&mut server, &mut good);
}

#[test]
fn admin_commands_work_for_an_admin_and_are_audited() {
    use bloxquarium::datastore::DataStore;
    use bloxquarium::game::DataStoreState;
    let d = Scratch::new("sec-admin");
    let mut server = harness::server(&d, &[]);
    let mut admin = harness::join(&mut server, &d, 71, "p71", Connected);
    let mut target = harness::join(&mut server, &d, 72, "p72", Connected);
    loaded(&mut server, &mut [&mut admin, &mut target], 72);
    server
        .world_mut()
        .resource_mut::<Security>()
        .assign_role(71, "admin", "test")
        .unwrap();
    fn run<T: bloxquarium::protocol::RemoteFunction>(
        server: &mut App,
        admin: &mut App,
        target: &mut App,
        cmd: T,
    ) -> Result<T::Response, RemoteError> {
        harness::call(server, admin, &mut [target], cmd)
    }
    // Grant to a live player.
    let r = run(
        &mut server,
        &mut admin,
        &mut target,
        GrantCoins {
            player: 72,
            amount: 900,
        },
    );
    assert_eq!(r, Ok("player 72 now has 1000 coins".to_string()));
    // Taking more than they have is refused.
    let r = run(
        &mut server,
        &mut admin,
        &mut target,
        GrantCoins {
            player: 72,
            amount: -5000,
        },
    );
    assert!(
        matches!(r, Err(RemoteError::Rejected(ref w)) if w.contains("below zero")),
        "{r:?}"
    );
    // A grant is credited: the income watch does not flag it.
    harness::pump_for(
        &mut [&mut server, &mut admin, &mut target],
        std::time::Duration::from_millis(2200),
    );
    assert!(server.world().resource::<Security>().suspicious.is_empty());
    // Set a role.
    let r = run(
        &mut server,
        &mut admin,
        &mut target,
        SetRole {
            player: 72,
            role: "moderator".into(),
        },
    );
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(
        server.world().resource::<Security>().role_of(72),
        "moderator"
    );
    // Reload config and stats.
    let r = run(&mut server, &mut admin, &mut target, ReloadConfig);
    assert!(
        matches!(r, Ok(ref detail) if detail.starts_with("config reloaded")),
        "{r:?}"
    );
    // Kick, then ban (the player is gone), then unban.
    let r = run(
        &mut server,
        &mut admin,
        &mut target,
        Kick {
            player: 72,
            reason: "testing".into(),
        },
    );
    assert!(r.is_ok(), "{r:?}");
    pump_until(
        &mut [&mut server, &mut admin, &mut target],
        300,
        "kicked",
        |a| kicked_reason(a[2]).is_some(),
    );
    assert!(
        kicked_reason(&target)
            .unwrap()
            .contains("kicked by a moderator: testing")
    );
    let r = run(
        &mut server,
        &mut admin,
        &mut target,
        Ban {
            player: 72,
            seconds: 600,
            reason: "cheating".into(),
        },
    );
    assert!(r.is_ok(), "{r:?}");
    // Saved on leave with the granted coins.
    pump_until(&mut [&mut server, &mut admin], 300, "saved on leave", |a| {
        a[0].world()
            .resource::<DataStoreState>()
            .profile(72)
            .is_none()
            && a[0].world().resource::<DataStoreState>().busy() == 0
    });
    let mut back = harness::client(
        &d,
        harness::server_addr(&server),
        &harness::issue(&server, 72, "p72"),
    );
    pump_until(
        &mut [&mut server, &mut admin, &mut back],
        300,
        "refused",
        |a| kicked_reason(a[2]).is_some(),
    );
    assert!(kicked_reason(&back).unwrap().contains("banned"));
    let r = run(&mut server, &mut admin, &mut back, Unban { player: 72 });
    assert!(r.is_ok(), "{r:?}");
    let r = run(&mut server, &mut admin, &mut back, Unban { player: 72 });
    assert_eq!(
        r,
        Err(RemoteError::Rejected("player 72 is not banned".into()))
    );
    // An offline grant waits for the next join.
    let r = run(
        &mut server,
        &mut admin,
        &mut back,
        GrantCoins {
            player: 72,
            amount: 5,
        },
    );
    assert!(
        matches!(r, Ok(ref detail) if detail.contains("offline")),
        "{r:?}"
    );
    let (_, p) = server
        .world()
        .resource::<DataStore>()
        .peek::<Aquarium>(72)
        .unwrap()
        .unwrap();
    assert_eq!(p.stats.coins, 1000);
    let mut again = harness::join(&mut server, &d, 72, "p72", Connected);
    loaded(&mut server, &mut [&mut admin, &mut again], 72);
    let coins = server
        .world()
        .resource::<DataStoreState>()
        .profile(72)
        .unwrap()
        .profile
        .stats
        .coins;
    assert_eq!(coins, 1005);
    // Stats.
    let r = run(&mut server, &mut admin, &mut again, SecurityStats);
    let Ok(stats) = r else { panic!("{r:?}") };
    assert_eq!(stats.bans, 1);
    assert_eq!(stats.active_bans, 0);
    assert_eq!(
        stats.kicks, 1,
        "the admin kick (the ban found the player gone): {stats:?}"
    );
    // Every action is in the audit log with its actor.
    let actions = audit_of(&d, Some(72), AuditKind::AdminAction);
    for what in [
        "900 coins granted by player 71",
        "role set to moderator by player 71",
        "unbanned by player 71",
        "5 coins sent to offline player by player 71",
    ] {
        assert!(
            actions.iter().any(|r| r.details.contains(what)),
            "{what}: {actions:?}"
        );
    }
    assert!(
        audit_of(&d, Some(72), AuditKind::Ban)[0]
            .details
            .contains("by player 71: cheating")
    );
    assert!(
        audit_of(&d, Some(71), AuditKind::AdminAction)
            .iter()
            .any(|r| r.details.contains("config reloaded"))
    );
}

#[test]
fn connection_floods_from_one_address_are_refused_while_others_connect() {
    let d = Scratch::new("sec-connflood");
    let cfg = harness::config_dir(
        &d,
        r#"{"security.connectAttemptsPerSecond": 1, "security.connectAttemptsBurst": 5}"#,
    );
    let mut server = harness::server_with_config(&d, &cfg);
    let addr = harness::server_addr(&server);
    // 127.0.0.2 is loopback too, but another address than the real client's 127.0.0.1.
    let flooder = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
    let mut request = vec![0u8; 1078];
    request[0] = 0; // netcode packet type 0: connection request.
    for _ in 0..50 {
        flooder.send_to(&request, addr).unwrap();
    }
    harness::pump(&mut [&mut server], 5);
    let good = harness::join(&mut server, &d, 81, "p81", Connected);
    pump_until(&mut [&mut server], 60, "flood reported", |a| {
        a[0].world().resource::<Security>().connect_refused >= 45
    });
    let sec = server.world().resource::<Security>();
    assert_eq!(sec.connect_refused, 45, "50 attempts, a burst of 5");
    assert_eq!(
        sec.stats().suspicious,
        vec![("connect_flood".to_string(), 1)]
    );
    let recs = audit_of(&d, None, AuditKind::Suspicious);
    assert!(recs[0].details.contains("127.0.0.2"), "{recs:?}");
    assert_eq!(harness::state(&good), ConnectionState::Connected);
}

/// `security.enableLogging: false` writes no audit records; switching it on live writes them
/// again, and both switches are themselves recorded.
#[test]
fn the_audit_log_can_be_switched_off_and_on_live() {
    use bloxquarium::config::Config;
    use bloxquarium::protocol::ConfigValue;
    let d = Scratch::new("sec-audit-switch");
    let cfg = harness::config_dir(&d, r#"{"security.enableLogging": false}"#);
    let mut server = harness::server_with_config(&d, &cfg);
    harness::pump(&mut [&mut server], 3);
    let actions = |d: &Scratch| audit_of(d, Some(5), AuditKind::AdminAction).len();
    let role = |server: &mut App, role: &str| {
        server
            .world_mut()
            .resource_mut::<Security>()
            .assign_role(5, role, "test")
            .unwrap();
    };
    let switch = |server: &mut App, on: bool| {
        let t = server.world().resource::<Time<Real>>().elapsed();
        server
            .world_mut()
            .resource_mut::<Config>()
            .set(
                "security.enableLogging",
                ConfigValue::Bool(on),
                "op",
                "test",
                t,
            )
            .unwrap();
        harness::pump(&mut [server], 3);
    };
    role(&mut server, "moderator");
    assert_eq!(actions(&d), 0, "logging is off");
    switch(&mut server, true);
    role(&mut server, "admin");
    assert_eq!(actions(&d), 1, "logging is on again");
    switch(&mut server, false);
    role(&mut server, "player");
    assert_eq!(actions(&d), 1, "off again");
    let switches = audit_of(&d, None, AuditKind::ConfigChange)
        .into_iter()
        .filter(|r| r.details.contains("security.enableLogging"))
        .count();
    assert_eq!(
        switches, 2,
        "switching on and switching off are both recorded"
    );
}

/// Runs `bloxquarium admin AS ARGS` while `server` (and `others`) keep running; `who` is
/// `--token FILE` or `--as ID --data DIR --server ADDR`.
pub(crate) fn admin_cli(
    server: &mut App,
    others: &mut [&mut App],
    who: &[&str],
    args: &[&str],
) -> std::process::Output {
    use std::process::Stdio;
    let mut cmd = harness::bin();
    cmd.args(["admin", "--wait", "5"])
        .args(who)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn bloxquarium admin");
    let start = std::time::Instant::now();
    while child.try_wait().expect("wait").is_none() {
        server.update();
        for o in others.iter_mut() {
            o.update();
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
        if start.elapsed() > std::time::Duration::from_secs(60) {
            let _ = child.kill();
            panic!("bloxquarium admin {args:?} did not exit");
        }
    }
    child.wait_with_output().expect("output")
}

/// The admin command line: an operator with an admin's token file runs each command against a
/// running server; human output or JSON; exit 0 done, 1 refused, 2 no answer.
#[test]
fn operators_run_admin_commands_from_the_command_line() {
    let d = Scratch::new("sec-admin-cli");
    let mut server = harness::server(&d, &[]);
    let mut target = harness::join(&mut server, &d, 72, "p72", Connected);
    loaded(&mut server, &mut [&mut target], 72);
    server
        .world_mut()
        .resource_mut::<Security>()
        .assign_role(71, "admin", "test")
        .unwrap();
    // The operator on the server's host acts as admin 71 (a token made with the server's key).
    let addr = harness::server_addr(&server).to_string();
    let ops: &[&str] = &["--as", "71", "--data", d.path(), "--server", &addr];
    // A player's token file.
    let file = d.0.join("player.token");
    harness::issue(&server, 73, "Nobody")
        .write_file(&file)
        .unwrap();
    let file = file.to_string_lossy().into_owned();
    let nobody: &[&str] = &["--token", &file];
    fn run(
        server: &mut App,
        target: &mut App,
        who: &[&str],
        args: &[&str],
    ) -> (Option<i32>, String, String) {
        let out = admin_cli(server, &mut [target], who, args);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    }
    let (code, out, err) = run(&mut server, &mut target, ops, &["stats"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("kicks 0"), "{out}");
    let (code, out, err) = run(
        &mut server,
        &mut target,
        ops,
        &["--json", "grant", "72", "900"],
    );
    assert_eq!(code, Some(0), "{out}{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["command"], "grant");
    assert_eq!(json["answer"], "player 72 now has 1000 coins");
    let (code, out, _) = run(&mut server, &mut target, ops, &["health"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("overall "), "{out}");
    assert!(out.contains("datastore: healthy"), "{out}");
    let (code, out, _) = run(&mut server, &mut target, ops, &["role", "72", "moderator"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        server.world().resource::<Security>().role_of(72),
        "moderator"
    );
    let (code, out, _) = run(&mut server, &mut target, ops, &["conflicts"]);
    assert_eq!((code, out.as_str()), (Some(0), "no conflicts waiting"));
    // Draining needs other servers on a shared store: refused on the embedded one.
    let (code, _, err) = run(&mut server, &mut target, ops, &["drain"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("shared store"), "{err}");
    let (code, _, err) = run(&mut server, &mut target, ops, &["resolve", "99", "--ours"]);
    assert_eq!(code, Some(1), "{err}");
    let (code, out, _) = run(&mut server, &mut target, ops, &["reload"]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out, _) = run(
        &mut server,
        &mut target,
        ops,
        &["kick", "72", "--reason", "cli test"],
    );
    assert_eq!(code, Some(0), "{out}");
    pump_until(&mut [&mut server, &mut target], 120, "kicked", |a| {
        kicked_reason(a[1]).is_some()
    });
    assert!(kicked_reason(&target).unwrap().contains("cli test"));
    let (code, out, _) = run(&mut server, &mut target, ops, &["ban", "72", "--for", "1h"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(server.world().resource::<Security>().bans.contains_key(&72));
    let (code, out, _) = run(&mut server, &mut target, ops, &["unban", "72"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(!server.world().resource::<Security>().bans.contains_key(&72));
    // A player without the permission: refused, exit 1.
    let (code, _, err) = run(&mut server, &mut target, nobody, &["stats"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("permission denied: admin.stats"), "{err}");
    // Each command is audited under the admin.
    let actions: Vec<_> = audit_of(&d, None, AuditKind::AdminAction)
        .into_iter()
        .filter(|r| r.details.contains("player 71"))
        .collect();
    assert_eq!(actions.len(), 4, "grant, role, reload, unban: {actions:?}");
    assert_eq!(audit_of(&d, Some(72), AuditKind::Kick).len(), 1);
    assert_eq!(audit_of(&d, Some(72), AuditKind::Ban).len(), 1);
    // No server at the token's address: exit 2, saying so.
    let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent = port.local_addr().unwrap();
    drop(port);
    let elsewhere = d.0.join("elsewhere.token");
    let mut cmd = harness::bin();
    cmd.args([
        "--data",
        d.path(),
        "token",
        "--player",
        "71",
        "--name",
        "Ops",
        "--out",
        &elsewhere.to_string_lossy(),
        "--server",
        &silent.to_string(),
    ]);
    let out = harness::output_within(cmd, std::time::Duration::from_secs(30));
    assert!(out.status.success(), "{}", harness::text(&out));
    let mut cmd = harness::bin();
    cmd.args([
        "admin",
        "--token",
        &elsewhere.to_string_lossy(),
        "--wait",
        "1",
        "stats",
    ]);
    let out = harness::output_within(cmd, std::time::Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2), "{}", harness::text(&out));
    assert!(
        harness::text(&out).contains("within"),
        "{}",
        harness::text(&out)
    );
}

/// An admin disables an account: its player is kicked, the account is refused at login, and the
/// act is audited; a player without `admin.accounts` is refused; enabling lets it log in again.
#[test]
fn an_admin_disables_an_account_and_its_player_is_kicked() {
    use bloxquarium::accounts::{self, AccountError, HashParams};
    use bloxquarium::datastore::DataStore;
    use bloxquarium::protocol::builtin::SetAccountDisabled;
    let cheap = HashParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };
    let d = Scratch::new("sec-disable");
    let mut server = harness::server(&d, &[]);
    let store = server.world().resource::<DataStore>().0.clone();
    let nemo = accounts::register(store.backend(), &cheap, "Nemo", "a fine password", 0).unwrap();
    let mut admin = harness::join(&mut server, &d, 71, "p71", Connected);
    let mut player = harness::join(&mut server, &d, nemo.player_id, "Nemo", Connected);
    let disable = |disabled| SetAccountDisabled {
        username: "NEMO".into(),
        disabled,
    };
    // Not an admin yet: refused.
    let r = harness::call(&mut server, &mut admin, &mut [&mut player], disable(true));
    assert!(
        matches!(r, Err(RemoteError::Rejected(ref w)) if w.contains("admin.accounts")),
        "{r:?}"
    );
    server
        .world_mut()
        .resource_mut::<Security>()
        .assign_role(71, "admin", "test")
        .unwrap();
    let r = harness::call(&mut server, &mut admin, &mut [&mut player], disable(true));
    assert_eq!(
        r,
        Ok(format!(
            "account Nemo (player {}) disabled; 1 session(s) ended",
            nemo.player_id
        ))
    );
    pump_until(
        &mut [&mut server, &mut admin, &mut player],
        300,
        "kicked",
        |a| harness::state(a[2]) != ConnectionState::Connected,
    );
    assert!(matches!(
        accounts::log_in(store.backend(), &cheap, "nemo", "a fine password"),
        Err(AccountError::Disabled)
    ));
    let audited = audit_of(&d, Some(nemo.player_id), AuditKind::AdminAction);
    assert!(
        audited
            .iter()
            .any(|r| r.details == "account Nemo disabled by player 71"),
        "{audited:?}"
    );
    // Enabled again: back in.
    let r = harness::call(&mut server, &mut admin, &mut [], disable(false));
    assert_eq!(
        r,
        Ok(format!(
            "account Nemo (player {}) enabled; 0 session(s) ended",
            nemo.player_id
        ))
    );
    assert!(accounts::log_in(store.backend(), &cheap, "nemo", "a fine password").is_ok());
    // An unknown account is refused with its name.
    let r = harness::call(
        &mut server,
        &mut admin,
        &mut [],
        SetAccountDisabled {
            username: "nobody".into(),
            disabled: true,
        },
    );
    assert_eq!(
        r,
        Err(RemoteError::Rejected("no account named nobody".into()))
    );
}
