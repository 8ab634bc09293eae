//! Health and metrics: the HTTP endpoint with a real HTTP client, a degrading subsystem moving
//! the status and the status code, Prometheus text with every subsystem's figures, the
//! optimisation rules firing and settling, missing dependencies, the on-demand check.

use std::time::Duration;

use bevy::prelude::*;
use bloxquarium::datastore::DataStore;
use bloxquarium::game::{Aquarium, DataStoreState, OfflineGift};
use bloxquarium::health::MetricsEndpoint;
use bloxquarium::integration::{HealthStatus, IntegrationRegistry};
use bloxquarium::reconcile::Reconciler;

use crate::harness::{self, Scratch, pump_until};

/// GET `path` from the server's endpoint: status and body.
fn get(server: &App, path: &str) -> (u16, String) {
    let addr = server.world().resource::<MetricsEndpoint>().addr;
    match ureq::get(&format!("http://{addr}{path}"))
        .timeout(Duration::from_secs(5))
        .call()
    {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => panic!("GET {path}: {e}"),
    }
}

/// Checks the Prometheus text exposition format line by line; returns (name, labels, value).
fn parse_prometheus(text: &str) -> Vec<(String, String, f64)> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            let rest = rest.trim_start();
            assert!(
                rest.starts_with("TYPE ") || rest.starts_with("HELP "),
                "bad comment line: {line}"
            );
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("series and value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => {
                assert!(l.ends_with('}'), "bad labels in {line}");
                (n.to_string(), l.trim_end_matches('}').to_string())
            }
            None => (series.to_string(), String::new()),
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line}"
        );
        out.push((name, labels, value));
    }
    out
}

fn value(series: &[(String, String, f64)], name: &str) -> Option<f64> {
    series.iter().find(|(n, _, _)| n == name).map(|s| s.2)
}

#[test]
fn health_and_metrics_over_http_follow_a_degrading_data_store() {
    let d = Scratch::new("health-http");
    let cfg = harness::config_dir(
        &d,
        r#"{"health.checkInterval": 1, "datastore.autosaveInterval": 5, "security.adminContact": "pager +1 555 0100"}"#,
    );
    // A 5 Hz tick (200 ms budget): a test machine busy with other tests never degrades the
    // transport, so only what the test does moves the status.
    let mut server = harness::server_with_config_args(&d, &cfg, &["--tick-hz", "5"]);
    let token = harness::issue(&server, 5, "Finn");
    let mut client = harness::client(&d, harness::server_addr(&server), &token);
    pump_until(
        &mut [&mut server, &mut client],
        300,
        "loaded and checked",
        |a| {
            a[0].world()
                .resource::<DataStoreState>()
                .profile(5)
                .is_some()
                && a[0]
                    .world()
                    .resource::<IntegrationRegistry>()
                    .last
                    .is_some()
        },
    );
    harness::pump(&mut [&mut server, &mut client], 40);
    let (code, body) = get(&server, "/health");
    assert_eq!(code, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["overall"]["status"], "Healthy", "{json}");
    assert_eq!(json["system_count"], 8);
    assert_eq!(
        json["admin_contact"], "pager +1 555 0100",
        "security.adminContact"
    );
    let names: Vec<&str> = json["systems"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    for n in [
        "transport",
        "config",
        "datastore",
        "security",
        "reconcile",
        "game",
        "health",
    ] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    let (code, text) = get(&server, "/metrics");
    assert_eq!(code, 200);
    let series = parse_prometheus(&text);
    for prefix in [
        "bloxquarium_network_",
        "bloxquarium_security_",
        "bloxquarium_config_",
        "bloxquarium_reconcile_",
        "bloxquarium_datastore_",
        "bloxquarium_process_",
        "bloxquarium_tick_",
        "bloxquarium_health_",
        "bloxquarium_assets_",
    ] {
        assert!(
            series.iter().any(|(n, _, _)| n.starts_with(prefix)),
            "no {prefix}* in:\n{text}"
        );
    }
    assert_eq!(value(&series, "bloxquarium_network_sessions"), Some(1.0));
    assert_eq!(value(&series, "bloxquarium_datastore_critical"), Some(0.0));
    assert!(value(&series, "bloxquarium_assets_manifest_entries").is_some_and(|n| n >= 30.0));
    assert_eq!(get(&server, "/nothing").0, 404);

    // The store starts failing: five errors within 120 s put it in its critical state.
    harness::edit_profile(&mut server, 5, |p| p.stats.coins = 555);
    server
        .world()
        .resource::<DataStore>()
        .backend()
        .inject_write_failures(6);
    pump_until(&mut [&mut server, &mut client], 3000, "unready", |a| {
        a[0].world()
            .resource::<IntegrationRegistry>()
            .last
            .as_ref()
            .is_some_and(|r| matches!(r.overall, HealthStatus::Unready(_)))
    });
    harness::pump(&mut [&mut server, &mut client], 40);
    // Alive (its players keep playing, their saves are retried), but taking no new players.
    let (code, body) = get(&server, "/health");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("datastore: critical"), "{body}");
    let (code, body) = get(&server, "/ready");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("datastore: critical"), "{body}");
    let series = parse_prometheus(&get(&server, "/metrics").1);
    assert_eq!(value(&series, "bloxquarium_datastore_critical"), Some(1.0));
}

/// The registered optimisation rule called `name`.
fn rule(server: &App, name: &str) -> bloxquarium::integration::OptimisationRule {
    server
        .world()
        .resource::<IntegrationRegistry>()
        .rule(name)
        .map(|r| r.rule.clone())
        .unwrap_or_else(|| panic!("no rule {name} registered"))
}

fn sweep_rule(server: &App) -> bloxquarium::integration::OptimisationRule {
    rule(server, "reconcile.sweep")
}

#[test]
fn the_optimisation_rules_fire_and_settle() {
    let d = Scratch::new("health-rules");
    let cfg = harness::config_dir(
        &d,
        r#"{"health.checkInterval": 1, "reconcile.interval": 5}"#,
    );
    // A 5 Hz tick (200 ms budget): a test machine busy with other tests never degrades the
    // transport, so only what the test does moves the status.
    let mut server = harness::server_with_config_args(&d, &cfg, &["--tick-hz", "5"]);
    harness::pump(&mut [&mut server], 40);
    let base = Duration::from_secs(5);
    assert_eq!(server.world().resource::<Reconciler>().interval, base);
    // Conflicts come fast: the integrity sweep slows down.
    server
        .world_mut()
        .resource_mut::<Reconciler>()
        .stats
        .resolved_conflicts += 50;
    pump_until(&mut [&mut server], 200, "sweep slowed", |a| {
        a[0].world().resource::<Reconciler>().interval == base * 4
    });
    assert_eq!(sweep_rule(&server).fired, 1);
    // None since: it settles.
    pump_until(&mut [&mut server], 200, "sweep restored", |a| {
        a[0].world().resource::<Reconciler>().interval == base
    });
    assert_eq!(sweep_rule(&server).settled, 1);

    // The store fails most operations: auto-saves are spaced out.
    let store = server.world().resource::<DataStore>().clone();
    store.backend().inject_write_failures(10);
    for _ in 0..10 {
        assert!(
            store
                .send_offline::<Aquarium>(9, &OfflineGift::Coins { amount: 1, from: 1 })
                .is_err()
        );
    }
    pump_until(&mut [&mut server], 200, "autosave slowed", |a| {
        a[0].world().resource::<DataStoreState>().autosave_slowdown == 2
    });
    // Health says so.
    pump_until(&mut [&mut server], 200, "degraded", |a| {
        a[0].world()
            .resource::<IntegrationRegistry>()
            .last
            .as_ref()
            .is_some_and(|r| matches!(r.overall, HealthStatus::Degraded(_)))
    });
    // It recovers: the rule settles.
    for _ in 0..20 {
        store
            .send_offline::<Aquarium>(9, &OfflineGift::Coins { amount: 1, from: 1 })
            .unwrap();
    }
    pump_until(&mut [&mut server], 200, "autosave restored", |a| {
        a[0].world().resource::<DataStoreState>().autosave_slowdown == 1
    });
    let autosave = rule(&server, "datastore.autosave");
    assert_eq!((autosave.fired, autosave.settled), (1, 1));
}

#[test]
fn a_missing_dependency_names_both_plugins() {
    let d = Scratch::new("health-missing-dep");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let paths = bloxquarium::Paths::new(&root.join("config"), &d.0, &root.join("assets"));
    let config = bloxquarium::config::load_server(&paths.config, &bloxquarium::game::KEYS).unwrap();
    let mut app = App::new();
    app.add_plugins(MinimalPlugins).add_plugins(
        bloxquarium::datastore::DataStorePlugin::<bloxquarium::game::Aquarium>::open(
            &config, &paths,
        )
        .unwrap(),
    );
    let err = app
        .world()
        .resource::<IntegrationRegistry>()
        .validate()
        .unwrap_err();
    assert_eq!(err.plugin, "datastore");
    assert_eq!(err.missing, "transport");
    assert!(
        err.to_string()
            .contains("plugin datastore needs plugin transport")
    );
}

#[test]
fn an_admin_runs_the_checks_on_demand() {
    use bloxquarium::protocol::RemoteError;
    use bloxquarium::protocol::builtin::{Health, HealthReport};
    let d = Scratch::new("health-admin");
    let mut server = harness::server(&d, &["--tick-hz", "5"]);
    let mut clients: Vec<App> = [21u64, 22]
        .iter()
        .map(|p| {
            let t = harness::issue(&server, *p, "x");
            harness::client(&d, harness::server_addr(&server), &t)
        })
        .collect();
    server
        .world_mut()
        .resource_mut::<bloxquarium::security::Security>()
        .assign_role(21, "admin", "test")
        .unwrap();
    let (a, b) = clients.split_at_mut(1);
    let (admin, player) = (&mut a[0], &mut b[0]);
    pump_until(&mut [&mut server, admin, player], 300, "connected", |a| {
        a[0].world()
            .resource::<bloxquarium::transport::ServerNet>()
            .session_count()
            == 2
    });
    let ask = |who: &mut App, server: &mut App, other: &mut App| {
        harness::call(server, who, &mut [other], Health)
    };
    match ask(admin, &mut server, player) {
        Ok(HealthReport { overall, systems }) => {
            assert_eq!(overall, "healthy");
            assert_eq!(systems.len(), 8);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        ask(player, &mut server, admin),
        Err(RemoteError::Rejected(
            "permission denied: admin.health".into()
        ))
    );
}

/// Every metric family of a server with a player in session follows Prometheus's conventions:
/// a `# HELP` and a `# TYPE` line, counters named `_total`, base units (no `ms`, `mib` …),
/// histograms with cumulative buckets up to `+Inf`. Where `promtool` is installed (`.ci/run`
/// installs it), `promtool check metrics` reports nothing either.
#[test]
fn metrics_follow_prometheus_conventions() {
    let d = Scratch::new("health-promtool");
    let cfg = harness::config_dir(&d, r#"{"health.checkInterval": 1}"#);
    let mut server = harness::server_with_config_args(&d, &cfg, &["--tick-hz", "5"]);
    let mut client = harness::join(
        &mut server,
        &d,
        6,
        "Pike",
        harness::JoinUntil::ProfileLoaded,
    );
    // A checks round and a publish (every second of real time) with the player in session.
    harness::pump_for(&mut [&mut server, &mut client], Duration::from_millis(2500));
    let (code, text) = get(&server, "/metrics");
    assert_eq!(code, 200);
    let mut help = std::collections::BTreeSet::new();
    let mut types = std::collections::BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, words) = rest.split_once(' ').expect("HELP name text");
            assert!(!words.trim().is_empty(), "empty help: {line}");
            help.insert(name.to_string());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            types.insert(name.to_string(), kind.to_string());
        }
    }
    let series = parse_prometheus(&text);
    assert!(series.len() > 50, "{text}");
    for (name, labels, _) in &series {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| types.get(*f).is_some_and(|t| t == "histogram"))
            })
            .unwrap_or(name);
        assert!(help.contains(family), "{family} has no HELP line");
        let kind = types
            .get(family)
            .unwrap_or_else(|| panic!("{family} has no TYPE line"));
        assert_eq!(
            kind == "counter",
            family.ends_with("_total"),
            "{family} ({kind}): counters, and only counters, end in _total"
        );
        for part in family.split('_') {
            assert!(
                ![
                    "ms", "us", "ns", "mib", "kib", "mb", "kb", "gb", "sec", "secs", "millis"
                ]
                .contains(&part),
                "{family}: use base units (seconds, bytes)"
            );
        }
        if name.ends_with("_bucket") {
            assert!(labels.contains("le=\""), "{name}{{{labels}}}");
        }
    }
    for (family, kind) in &types {
        if kind == "histogram" {
            assert!(
                series
                    .iter()
                    .any(|(n, l, _)| *n == format!("{family}_bucket") && l.contains("le=\"+Inf\"")),
                "{family} has no +Inf bucket"
            );
        }
    }
    assert!(types.values().any(|k| k == "histogram"), "{types:?}");
    // The real linter, where it is installed.
    if let Ok(mut child) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("promtool's stdin")
            .write_all(text.as_bytes())
            .expect("write to promtool");
        let out = child.wait_with_output().expect("promtool runs");
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && said.trim().is_empty(),
            "promtool check metrics: {said}"
        );
    }
}

/// `performance.enableMonitoring: false` collects no figures (`/metrics` says so, `/health`
/// still answers); switched on live, the figures come back.
#[test]
fn monitoring_can_be_switched_off_and_on_live() {
    let d = Scratch::new("health-monitoring");
    let cfg = harness::config_dir(&d, r#"{"performance.enableMonitoring": false}"#);
    let mut server = harness::server_with_config_args(&d, &cfg, &["--tick-hz", "20"]);
    harness::pump_for(&mut [&mut server], Duration::from_millis(1200));
    let (code, text) = get(&server, "/metrics");
    assert_eq!(code, 200);
    assert!(text.contains("monitoring is off"), "{text}");
    assert!(!text.contains("bloxquarium_"), "{text}");
    let t = server.world().resource::<Time<Real>>().elapsed();
    server
        .world_mut()
        .resource_mut::<bloxquarium::config::Config>()
        .set(
            "performance.enableMonitoring",
            bloxquarium::protocol::ConfigValue::Bool(true),
            "op",
            "test",
            t,
        )
        .unwrap();
    harness::pump_for(&mut [&mut server], Duration::from_millis(1200));
    let (_, text) = get(&server, "/metrics");
    assert!(text.contains("bloxquarium_tick_duration_seconds"), "{text}");
}

/// `/health` is liveness (200 unless a check is Unhealthy: a refused reload only degrades),
/// `/ready` readiness (503 while starting, draining or unhealthy); a healthy server says so
/// from its first frames, not after a 10 s "starting".
#[test]
fn probes_answer_as_orchestrators_expect() {
    let d = Scratch::new("health-probes");
    let cfg = harness::config_dir(
        &d,
        r#"{"config.reloadPollInterval": 0.1, "health.checkInterval": 1}"#,
    );
    let mut server = harness::server_with_config_args(&d, &cfg, &["--tick-hz", "5"]);
    harness::pump(&mut [&mut server], 2);
    let (code, body) = get(&server, "/health");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(r#""overall":{"status":"Healthy"}"#), "{body}");
    assert_eq!(get(&server, "/ready"), (200, r#"{"ready":true}"#.into()));
    // A refused config reload: degraded, still live and ready.
    std::fs::write(
        std::path::Path::new(&cfg).join("zz-bad.ron"),
        r#"{"game.startingCoins": -5}"#,
    )
    .unwrap();
    pump_until(&mut [&mut server], 200, "degraded", |a| {
        a[0].world()
            .resource::<IntegrationRegistry>()
            .last
            .as_ref()
            .is_some_and(|r| matches!(r.overall, HealthStatus::Degraded(_)))
    });
    harness::pump_for(&mut [&mut server], Duration::from_millis(1100));
    let (code, body) = get(&server, "/health");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("Degraded"), "{body}");
    assert_eq!(get(&server, "/ready").0, 200);
    // Draining: alive, no longer ready.
    server
        .world_mut()
        .resource_mut::<bloxquarium::shutdown::Shutdown>()
        .request(bloxquarium::shutdown::ShutdownReason::Requested(
            "test".into(),
        ));
    harness::pump(&mut [&mut server], 1);
    let (code, body) = get(&server, "/ready");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("draining"), "{body}");
    assert_eq!(get(&server, "/health").0, 200);
}

/// Readiness and liveness from a report, as plain functions.
#[test]
fn readiness_and_liveness_from_a_report() {
    use bloxquarium::health::{liveness, readiness};
    use bloxquarium::integration::{HealthReport, SystemHealth};
    let report = |health: HealthStatus| HealthReport {
        overall: health.clone(),
        system_count: 1,
        checked_at_ms: 0,
        systems: vec![SystemHealth {
            name: "datastore".into(),
            version: "0".into(),
            health,
        }],
    };
    assert!(readiness(None, false).unwrap_err().starts_with("starting"));
    assert!(liveness(None), "starting is alive");
    let healthy = report(HealthStatus::Healthy);
    assert_eq!(readiness(Some(&healthy), false), Ok(()));
    assert!(
        readiness(Some(&healthy), true)
            .unwrap_err()
            .starts_with("draining")
    );
    let degraded = report(HealthStatus::Degraded("slow".into()));
    assert_eq!(readiness(Some(&degraded), false), Ok(()));
    assert!(liveness(Some(&degraded)));
    let broken = report(HealthStatus::Unhealthy("broken".into()));
    assert_eq!(
        readiness(Some(&broken), false),
        Err("datastore: broken".into())
    );
    assert!(!liveness(Some(&broken)));
    // Storage failing: alive (a restart would not help), but no new players.
    let critical = report(HealthStatus::Unready("critical".into()));
    assert_eq!(
        readiness(Some(&critical), false),
        Err("datastore: critical".into())
    );
    assert!(liveness(Some(&critical)));
}
