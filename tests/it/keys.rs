//! Configuration keys that no other test changes: each test here sets a key away from its
//! default and observes what that changes. `key_effects.rs` maps every key to its test.

use std::path::Path;
use std::time::Duration;

use bloxquarium::config::Config;
use bloxquarium::security::{AuditKind, AuditQuery, AuditRecord, Security, StrikeOutcome};

use crate::harness::{self, Scratch};

/// The server's config from a config dir whose `default.ron` is `ron`.
fn config(d: &Scratch, ron: &str) -> (String, Config) {
    let dir = harness::config_dir(d, ron);
    let config = bloxquarium::config::load_server(Path::new(&dir), &bloxquarium::game::KEYS)
        .unwrap_or_else(|e| panic!("{ron}: {e}"));
    (dir, config)
}

fn security(tag: &str, ron: &str) -> (Scratch, Security) {
    let d = Scratch::new(tag);
    let (dir, config) = config(&d, ron);
    let s = Security::from_config(&config, Path::new(&dir), &d.0).expect("security");
    (d, s)
}

/// Messages of `class` that one player gets through at once at `t`.
fn burst(s: &mut Security, class: &'static str, t: Duration) -> usize {
    (0..100_000)
        .take_while(|_| s.limiter.allow(1, class, t))
        .count()
}

/// `security.rateLimits.*`: each class's rate is its burst and its refill per second.
#[test]
fn each_rate_limit_key_sets_its_classes_rate() {
    let classes = ["chat", "config", "call", "background", "purchase"];
    let (_d, mut defaults) = security("keys-rate-defaults", "{}");
    let got: Vec<usize> = classes
        .iter()
        .map(|c| burst(&mut defaults, c, Duration::ZERO))
        .collect();
    assert_eq!(got, [2, 1, 30, 10, 5]);
    let (_d, mut changed) = security(
        "keys-rate-changed",
        r#"{"security.rateLimits.chat": 7, "security.rateLimits.config": 3, "security.rateLimits.call": 50,
            "security.rateLimits.background": 4, "security.rateLimits.purchase": 9}"#,
    );
    let got: Vec<usize> = classes
        .iter()
        .map(|c| burst(&mut changed, c, Duration::ZERO))
        .collect();
    assert_eq!(got, [7, 3, 50, 4, 9]);
    // One second later each bucket has refilled by its rate.
    let got: Vec<usize> = classes
        .iter()
        .map(|c| burst(&mut changed, c, Duration::from_secs(1)))
        .collect();
    assert_eq!(got, [7, 3, 50, 4, 9]);
}

/// `security.maxFailedAttempts` and `security.rateLimitWindow`: how many strikes kick, and
/// how long a strike counts.
#[test]
fn strikes_kick_by_the_configured_count_within_the_configured_window() {
    let s = Duration::from_secs;
    let (_d, mut defaults) = security("keys-strikes-defaults", "{}");
    let (_d, mut two) = security("keys-strikes-two", r#"{"security.maxFailedAttempts": 2}"#);
    for book in [&mut defaults.strikes, &mut two.strikes] {
        assert_eq!(book.strike(1, s(0), 0), StrikeOutcome::Counted(1));
    }
    assert_eq!(
        defaults.strikes.strike(1, s(1), 0),
        StrikeOutcome::Counted(2)
    );
    assert_eq!(two.strikes.strike(1, s(1), 0), StrikeOutcome::Kick);
    // A 10 s window: a strike 11 s later starts again (within the default 60 s, it kicks).
    let (_d, mut short) = security(
        "keys-strikes-window",
        r#"{"security.maxFailedAttempts": 2, "security.rateLimitWindow": 10}"#,
    );
    assert_eq!(short.strikes.strike(1, s(0), 0), StrikeOutcome::Counted(1));
    assert_eq!(short.strikes.strike(1, s(11), 0), StrikeOutcome::Counted(1));
    assert_eq!(two.strikes.strike(2, s(0), 0), StrikeOutcome::Counted(1));
    assert_eq!(two.strikes.strike(2, s(11), 0), StrikeOutcome::Kick);
}

/// `security.kicksBeforeBan`, `security.banWindow`, `security.banLength`: which kick bans,
/// how far back kicks count, how long the ban lasts.
#[test]
fn kicks_ban_by_the_configured_count_window_and_length() {
    let s = Duration::from_secs;
    // Every strike kicks (maxFailedAttempts 1), so each call below is one kick.
    let kick = |sec: &mut Security, player, t: u64| sec.strikes.strike(player, s(t), 1_000);
    let (_d, mut defaults) = security("keys-ban-defaults", r#"{"security.maxFailedAttempts": 1}"#);
    let (_d, mut changed) = security(
        "keys-ban-changed",
        r#"{"security.maxFailedAttempts": 1, "security.kicksBeforeBan": 2, "security.banWindow": 100, "security.banLength": 30}"#,
    );
    // kicksBeforeBan: 3 by default, 2 here; banLength: 10 min by default, 30 s here.
    assert_eq!(kick(&mut defaults, 1, 0), StrikeOutcome::Kick);
    assert_eq!(kick(&mut defaults, 1, 1), StrikeOutcome::Kick);
    assert_eq!(
        kick(&mut defaults, 1, 2),
        StrikeOutcome::Ban {
            until_ms: 1_000 + 600_000
        }
    );
    assert_eq!(kick(&mut changed, 1, 0), StrikeOutcome::Kick);
    assert_eq!(
        kick(&mut changed, 1, 1),
        StrikeOutcome::Ban {
            until_ms: 1_000 + 30_000
        }
    );
    // banWindow: kicks 150 s apart do not add up under a 100 s window (they do under 1 h).
    assert_eq!(kick(&mut changed, 2, 0), StrikeOutcome::Kick);
    assert_eq!(kick(&mut changed, 2, 150), StrikeOutcome::Kick);
    let (_d, mut hour) = security(
        "keys-ban-hour",
        r#"{"security.maxFailedAttempts": 1, "security.kicksBeforeBan": 2}"#,
    );
    assert_eq!(kick(&mut hour, 2, 0), StrikeOutcome::Kick);
    assert!(matches!(kick(&mut hour, 2, 150), StrikeOutcome::Ban { .. }));
}

/// `security.auditRetention`: at start, audit records older than it are dropped.
#[test]
fn audit_records_older_than_the_retention_are_dropped_at_start() {
    let now = bloxquarium::clock::now_ms();
    let two_hours_ago = now - 2 * 3_600_000;
    let kept = |ron: &str, tag: &str| {
        let d = Scratch::new(tag);
        let mut log =
            bloxquarium::security::AuditLog::open(&d.0, Duration::from_secs(86_400), now).unwrap();
        for at_ms in [two_hours_ago, now - 60_000] {
            log.record(AuditRecord {
                at_ms,
                player: Some(1),
                session: None,
                kind: AuditKind::Kick,
                details: "test".into(),
            });
        }
        drop(log);
        let (dir, config) = config(&d, ron);
        drop(Security::from_config(&config, Path::new(&dir), &d.0).unwrap());
        bloxquarium::security::query_audit(&d.0, &AuditQuery::default())
            .unwrap()
            .len()
    };
    assert_eq!(kept("{}", "keys-audit-720h"), 2, "720 h by default");
    assert_eq!(
        kept(r#"{"security.auditRetention": "1h"}"#, "keys-audit-1h"),
        1
    );
}

/// `reconcile.maxOperations`: the operation log keeps that many.
#[test]
fn the_operation_log_keeps_the_configured_number() {
    let logged = |ron: &str, tag: &str| {
        let d = Scratch::new(tag);
        let (_, config) = config(&d, ron);
        let mut r = bloxquarium::reconcile::Reconciler::from_config(
            &config,
            bloxquarium::datastore::policy_of::<bloxquarium::game::Aquarium>(),
        )
        .unwrap();
        for i in 0..50 {
            r.record_operation("p1", "test", serde_json::json!(i), i);
        }
        r.operations_logged()
    };
    assert_eq!(logged("{}", "keys-ops-default"), 50);
    assert_eq!(
        logged(r#"{"reconcile.maxOperations": 10}"#, "keys-ops-10"),
        10
    );
}

mod store {
    use super::*;
    use bloxquarium::datastore::{self, LockOwner, SaveRequest, Store};
    use bloxquarium::game::Aquarium;

    const T0: u64 = 1_800_000_000_000;

    fn open(tag: &str, ron: &str) -> (Scratch, Store) {
        let d = Scratch::new(tag);
        let (_, config) = config(&d, ron);
        let s = datastore::open::<Aquarium>(&d.0, &config).unwrap();
        (d, s)
    }

    /// Saves player 5's profile `n` times, the i-th at `at(i)`; returns the versions kept.
    fn saved(s: &Store, n: u64, at: impl Fn(u64) -> u64) -> usize {
        let o = LockOwner {
            server_id: "srv".into(),
            session: 1,
        };
        let mut l = s.load::<Aquarium>(5, &o, T0).unwrap();
        let mut v = 0;
        for i in 1..=n {
            l.profile.stats.coins = i as i64;
            v = s
                .save(&SaveRequest::new(l.profile.clone(), v, o.clone()), at(i))
                .unwrap()
                .version;
        }
        s.versions(5).unwrap().len()
    }

    /// `datastore.versionsKeep`: saved versions kept per player.
    #[test]
    fn the_store_keeps_the_configured_number_of_versions() {
        let (_d, s) = open("keys-versions-default", "{}");
        assert_eq!(saved(&s, 25, |i| T0 + i), 20);
        let (_d, s) = open("keys-versions-5", r#"{"datastore.versionsKeep": 5}"#);
        assert_eq!(saved(&s, 25, |i| T0 + i), 5);
    }

    /// `datastore.versionsMaxAge`: older versions are pruned (the newest always stays).
    #[test]
    fn versions_older_than_the_configured_age_are_pruned() {
        // 32 saves (the age pass runs every 32nd): 31 at T0, the last 10 minutes later.
        let at = |i| if i < 32 { T0 + i } else { T0 + 600_000 };
        let (_d, s) = open("keys-age-default", r#"{"datastore.versionsKeep": 1000}"#);
        assert_eq!(saved(&s, 32, at), 32, "720 h by default");
        let (_d, s) = open(
            "keys-age-60s",
            r#"{"datastore.versionsKeep": 1000, "datastore.versionsMaxAge": 60}"#,
        );
        assert_eq!(saved(&s, 32, at), 1);
    }
}

mod network {
    use super::*;
    use crate::harness::{JoinUntil, pump, pump_until};
    use bevy::prelude::*;
    use bevy::time::TimeUpdateStrategy;
    use bloxquarium::protocol::builtin::{Chat, Echo, Heartbeat, SecureEcho};
    use bloxquarium::transport::{ClientNet, ConnectionState, ServerNet};

    fn sessions(server: &App) -> usize {
        server.world().resource::<ServerNet>().sessions().count()
    }

    /// `network.maxConcurrentConnections`: the server holds that many clients at once.
    #[test]
    fn the_server_holds_the_configured_number_of_clients() {
        let d = Scratch::new("keys-max-conn");
        let cfg = harness::config_dir(&d, r#"{"network.maxConcurrentConnections": 1}"#);
        let mut server = harness::server_with_config(&d, &cfg);
        let _first = harness::join(&mut server, &d, 1, "First", JoinUntil::Connected);
        let token = harness::issue(&server, 2, "Second");
        let mut second = harness::client(&d, harness::server_addr(&server), &token);
        pump_until(
            &mut [&mut server, &mut second],
            harness::JOIN_FRAMES,
            "second is refused",
            |a| matches!(harness::state(a[1]), ConnectionState::Disconnected { .. }),
        );
        match harness::state(&second) {
            ConnectionState::Disconnected { reason } => {
                assert!(reason.contains("full"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(sessions(&server), 1);
    }

    /// `network.tokenExpiry` is how long the server's connect tokens may be used, and
    /// `network.connectionTimeout` the silence after which netcode drops a client: a client
    /// that stops sending is gone 2 s later (15 s by default).
    #[test]
    fn tokens_expire_and_silent_clients_drop_by_the_configured_times() {
        let d = Scratch::new("keys-token-times");
        let cfg = harness::config_dir(
            &d,
            r#"{"network.tokenExpiry": 10, "network.connectionTimeout": 2}"#,
        );
        let mut server = harness::server_with_config(&d, &cfg);
        let token = harness::issue(&server, 1, "Quiet");
        assert_eq!(
            token.token.expire_timestamp - token.token.create_timestamp,
            10
        );
        assert_eq!(token.token.timeout_seconds, 2);
        let mut client = harness::client(&d, harness::server_addr(&server), &token);
        harness::wait_joined(&mut server, &mut client, 1, JoinUntil::Connected);
        assert_eq!(sessions(&server), 1);
        // Only the server runs now: 3 s at 1/30 s a frame.
        pump(&mut [&mut server], 90);
        assert_eq!(sessions(&server), 0, "dropped after 2 s of silence");
        let d = Scratch::new("keys-token-defaults");
        let mut plain = harness::server(&d, &[]);
        let token = harness::issue(&plain, 1, "Quiet");
        assert_eq!(
            token.token.expire_timestamp - token.token.create_timestamp,
            300
        );
        assert_eq!(token.token.timeout_seconds, 15);
        let mut client = harness::client(&d, harness::server_addr(&plain), &token);
        harness::wait_joined(&mut plain, &mut client, 1, JoinUntil::Connected);
        pump(&mut [&mut plain], 90);
        assert_eq!(sessions(&plain), 1, "15 s by default");
    }

    /// `security.connectAttemptsPerSecond`: how fast an address's allowance of connection
    /// requests refills (a burst of 1 here, so every request after the first waits for it).
    #[test]
    fn connection_requests_refill_at_the_configured_rate() {
        let refused_after_a_pause = |tag: &str, ron: &str| {
            let d = Scratch::new(tag);
            let cfg = harness::config_dir(&d, ron);
            let mut server = harness::server_with_config(&d, &cfg);
            let addr = harness::server_addr(&server);
            let flooder = std::net::UdpSocket::bind("127.0.0.3:0").unwrap();
            let mut request = vec![0u8; 1078];
            request[0] = 0; // netcode packet type 0: connection request.
            flooder.send_to(&request, addr).unwrap();
            pump(&mut [&mut server], 3);
            // A third of a second of server time later.
            pump(&mut [&mut server], 10);
            flooder.send_to(&request, addr).unwrap();
            pump(&mut [&mut server], 3);
            pump(&mut [&mut server], 2);
            server.world().resource::<Security>().connect_refused
        };
        assert_eq!(
            refused_after_a_pause("keys-connect-50", r#"{"security.connectAttemptsBurst": 1}"#),
            0,
            "50 a second by default: refilled"
        );
        assert_eq!(
            refused_after_a_pause(
                "keys-connect-half",
                r#"{"security.connectAttemptsBurst": 1, "security.connectAttemptsPerSecond": 0.5}"#
            ),
            1
        );
    }

    /// `network.messageTimeout` (Shared): the server's value reaches the client, whose calls
    /// then time out after it.
    #[test]
    fn calls_time_out_after_the_servers_message_timeout() {
        let d = Scratch::new("keys-msg-timeout");
        let cfg = harness::config_dir(&d, r#"{"network.messageTimeout": 2}"#);
        let mut server = harness::server_with_config(&d, &cfg);
        let mut client = harness::join(&mut server, &d, 1, "A", JoinUntil::ConfigSnapshot);
        harness::pump(&mut [&mut server, &mut client], 2);
        // Only the client runs: nobody answers. 2 s at 1/30 s a frame, then some (30 s by
        // default).
        assert_eq!(
            harness::unanswered_echo(&mut client, 90),
            Some(Err(bloxquarium::protocol::RemoteError::Timeout(2000)))
        );
    }

    /// `network.clientSendRate` (Shared): the client sends at most that many datagrams a
    /// second, so chat written every frame reaches the server in that many bursts.
    #[test]
    fn the_client_sends_at_the_servers_send_rate() {
        let bursts = |tag: &str, ron: &str| {
            let d = Scratch::new(tag);
            let cfg = harness::config_dir(&d, ron);
            let mut server = harness::server_with_config(&d, &cfg);
            let mut client = harness::join(&mut server, &d, 1, "A", JoinUntil::ConfigSnapshot);
            harness::pump(&mut [&mut server, &mut client], 5);
            harness::drain::<bloxquarium::transport::FromClient<Chat>>(&mut server);
            let (mut frames_with_chat, mut chats) = (0, 0);
            // One line a frame for 2 s (60 frames at 1/30 s), then let the last one land.
            for i in 0..75 {
                if i < 60 {
                    client.world_mut().resource_mut::<ClientNet>().send(&Chat {
                        text: format!("line {i}"),
                    });
                }
                client.update();
                std::thread::sleep(Duration::from_millis(1));
                server.update();
                let n =
                    harness::drain::<bloxquarium::transport::FromClient<Chat>>(&mut server).len();
                chats += n;
                frames_with_chat += usize::from(n > 0);
            }
            assert_eq!(chats, 60, "every line arrives");
            // A call does not wait for the pacer: it leaves in the frame it is made.
            let t = client.world().resource::<Time<Real>>().elapsed();
            let id = client.world_mut().resource_mut::<ClientNet>().call(
                &Echo {
                    payload: b"now".to_vec(),
                },
                t,
            );
            let mut frames = 0;
            let answered = loop {
                frames += 1;
                client.update();
                std::thread::sleep(Duration::from_millis(1));
                server.update();
                std::thread::sleep(Duration::from_millis(1));
                let got = harness::drain::<bloxquarium::transport::Answer<Echo>>(&mut client);
                if got.iter().any(|a| a.id == id) || frames > 60 {
                    break got.iter().any(|a| a.id == id);
                }
            };
            assert!(answered && frames <= 4, "answered after {frames} frames");
            frames_with_chat
        };
        // Chat's rate limit out of the way.
        let at_30 = bursts("keys-send-30", r#"{"security.rateLimits.chat": 100}"#);
        let at_2 = bursts(
            "keys-send-2",
            r#"{"security.rateLimits.chat": 100, "network.clientSendRate": 2}"#,
        );
        assert!(at_30 >= 40, "30 a second by default: {at_30} bursts");
        assert!((4..=6).contains(&at_2), "2 a second: {at_2} bursts");
    }

    /// `network.rekeyAfter`: the server moves its envelope key to the next epoch after that
    /// many sealed messages to a client (after 2^20 by default).
    #[test]
    fn the_server_rekeys_after_the_configured_number_of_messages() {
        let epochs_after_20_calls = |tag: &str, ron: &str| {
            let d = Scratch::new(tag);
            let cfg = harness::config_dir(&d, ron);
            let mut server = harness::server_with_config(&d, &cfg);
            let mut client = harness::join(&mut server, &d, 1, "A", JoinUntil::Connected);
            for i in 0..20u8 {
                let r = harness::call(
                    &mut server,
                    &mut client,
                    &mut [],
                    SecureEcho { payload: vec![i] },
                );
                assert_eq!(r, Ok(vec![i]));
            }
            client
                .world()
                .resource::<ClientNet>()
                .key_epochs()
                .expect("welcomed")
        };
        assert_eq!(epochs_after_20_calls("keys-rekey-default", "{}"), (0, 0));
        let (sending, receiving) =
            epochs_after_20_calls("keys-rekey-16", r#"{"network.rekeyAfter": 16}"#);
        assert_eq!(sending, 0, "the client's own value is the default");
        assert!(receiving >= 1, "the server rekeyed: epoch {receiving}");
    }

    /// `security.maxClockSkew`: a client clock a minute off is suspicious under a 5 s limit
    /// (not under the default 300 s).
    #[test]
    fn a_clock_past_the_configured_skew_is_suspicious() {
        let d = Scratch::new("keys-skew");
        let cfg = harness::config_dir(&d, r#"{"security.maxClockSkew": 5}"#);
        let mut server = harness::server_with_config(&d, &cfg);
        let mut client = harness::join(&mut server, &d, 1, "A", JoinUntil::Connected);
        let skewed = bloxquarium::clock::now_ms() - 60_000;
        client
            .world_mut()
            .resource_mut::<ClientNet>()
            .send(&Heartbeat {
                client_time_ms: skewed,
            });
        pump_until(
            &mut [&mut server, &mut client],
            120,
            "clock skew reported",
            |a| !a[0].world().resource::<Security>().suspicious.is_empty(),
        );
        let recs = bloxquarium::security::query_audit(
            &d.0,
            &AuditQuery {
                kind: Some(AuditKind::Suspicious),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(
            recs.iter()
                .any(|r| r.details.starts_with("clock_skew") && r.details.contains("limit 5000 ms")),
            "{recs:?}"
        );
    }

    /// `datastore.backupInterval` and `datastore.backupRetention`: a backup every interval of
    /// server time, the newest `retention` kept.
    #[test]
    fn backups_follow_the_configured_interval_and_retention() {
        let d = Scratch::new("keys-backups");
        let cfg = harness::config_dir(
            &d,
            r#"{"datastore.backupInterval": 60, "datastore.backupRetention": 2}"#,
        );
        let mut server = harness::server_with_config(&d, &cfg);
        // Two seconds of server time a frame.
        server.insert_resource(TimeUpdateStrategy::ManualDuration(Duration::from_secs(2)));
        let made = |s: &App| {
            s.world()
                .resource::<bloxquarium::game::DataStoreState>()
                .backups_ok
        };
        pump(&mut [&mut server], 25);
        assert_eq!(made(&server), 0, "50 s: none yet");
        // Past 60 s, then server time stands still while the backup's IO task finishes (it
        // takes real time, however fast server time runs).
        pump(&mut [&mut server], 6);
        server.insert_resource(TimeUpdateStrategy::ManualDuration(Duration::ZERO));
        pump_until(&mut [&mut server], 3000, "the first backup", |a| {
            made(a[0]) == 1
        });
        server.insert_resource(TimeUpdateStrategy::ManualDuration(Duration::from_secs(2)));
        // Three more intervals.
        pump_until(&mut [&mut server], 3000, "four backups", |a| {
            made(a[0]) >= 4
        });
        let files = bloxquarium::datastore::list_backups(&d.0).unwrap();
        assert_eq!(files.len(), 2, "{files:?}");
    }
}

mod timing {
    use super::*;
    use bevy::prelude::*;

    /// Frames (1/30 s of server time each) until an edit of the config dir is applied, with
    /// `config.reloadPollInterval` = `poll` (at most `max`).
    fn frames_until_reloaded(tag: &str, poll: &str, max: usize) -> Option<usize> {
        let d = Scratch::new(tag);
        let cfg = harness::config_dir(&d, &format!(r#"{{"config.reloadPollInterval": {poll}}}"#));
        let mut server = harness::server_with_config(&d, &cfg);
        harness::pump(&mut [&mut server], 3);
        std::fs::write(
            Path::new(&cfg).join("zz-live.ron"),
            r#"{"game.startingCoins": 500}"#,
        )
        .unwrap();
        (1..=max).find(|_| {
            server.update();
            std::thread::sleep(Duration::from_millis(1));
            server
                .world()
                .resource::<Config>()
                .get::<i64>("game.startingCoins")
                == Ok(500)
        })
    }

    /// `config.reloadPollInterval`: how often the config dir is polled for edits.
    #[test]
    fn edits_are_seen_at_the_configured_poll_interval() {
        let fast = frames_until_reloaded("keys-poll-fast", "0.1", 120);
        assert!(fast.is_some_and(|f| f <= 6), "0.1 s: {fast:?} frames");
        let slow = frames_until_reloaded("keys-poll-slow", "3", 120);
        assert!(
            slow.is_some_and(|f| (30..=95).contains(&f)),
            "3 s: {slow:?} frames"
        );
    }

    /// `health.checkInterval`: the health checks run that often (in server time).
    #[test]
    fn health_checks_run_at_the_configured_interval() {
        let checks_in_10_s = |tag: &str, ron: &str| {
            let d = Scratch::new(tag);
            let cfg = harness::config_dir(&d, ron);
            let mut server = harness::server_with_config(&d, &cfg);
            let mut seen = std::collections::BTreeSet::new();
            for _ in 0..300 {
                server.update();
                if let Some(last) = &server
                    .world()
                    .resource::<bloxquarium::integration::IntegrationRegistry>()
                    .last
                {
                    seen.insert(last.checked_at_ms);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            seen.len()
        };
        let every_2_s = checks_in_10_s("keys-checks-2", r#"{"health.checkInterval": 2}"#);
        assert!((4..=6).contains(&every_2_s), "{every_2_s} checks");
        let default = checks_in_10_s("keys-checks-10", "{}");
        assert!(default <= 2, "every 10 s by default: {default} checks");
    }

    /// `performance.logInterval`: the performance report is logged that often (a server run as
    /// a process for 3.5 s).
    #[test]
    fn the_performance_report_comes_at_the_configured_interval() {
        let reports = |tag: &str, ron: &str| {
            let d = Scratch::new(tag);
            let cfg = harness::config_dir(&d, ron);
            let mut cmd = harness::bin();
            cmd.args([
                "--config",
                &cfg,
                "--data",
                d.path(),
                "--exit-after",
                "3.5",
                "server",
                "--bind",
                "127.0.0.1:0",
            ]);
            let out = harness::output_within(cmd, Duration::from_secs(60));
            let log = harness::text(&out);
            assert!(out.status.success(), "{log}");
            log.matches("performance: tick").count()
        };
        let every_s = reports("keys-perf-1", r#"{"performance.logInterval": 1}"#);
        assert!(every_s >= 2, "{every_s} reports in 3.5 s");
        assert_eq!(reports("keys-perf-30", "{}"), 0, "every 30 s by default");
    }
}
