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
    assert_eq!(defaults.strikes.strike(1, s(1), 0), StrikeOutcome::Counted(2));
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
                .save(
                    &SaveRequest {
                        profile: l.profile.clone(),
                        expected_version: v,
                        owner: o.clone(),
                    },
                    at(i),
                )
                .unwrap();
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
