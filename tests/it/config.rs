//! Configuration tiers, headless: server and clients over loopback.

use std::time::Duration;

use bevy::prelude::*;
use bloxquarium::config::{
    ClientConfig, Config, ConfigChanged, ConfigError, ConfigSource, Side, Tier,
};
use bloxquarium::protocol::builtin::SetConfig;
use bloxquarium::protocol::{self, ConfigValue, RemoteError};
use bloxquarium::transport::{Answer, ClientNet, ServerNet};

use crate::harness::{self, JoinUntil, Scratch, pump_until};

fn client_for(scratch: &Scratch, config: &str, server: &App, player: u64) -> App {
    let token = harness::issue(server, player, "P");
    let path = scratch.0.join(format!("tok-{player}"));
    token.write_file(&path).unwrap();
    let data = scratch.0.join(format!("client-{player}"));
    harness::app(&[
        "--config",
        config,
        "--data",
        data.to_str().unwrap(),
        "client",
        "--headless",
        "--server",
        &harness::server_addr(server).to_string(),
        "--token",
        path.to_str().unwrap(),
    ])
}

fn now(app: &App) -> Duration {
    app.world().resource::<Time<Real>>().elapsed()
}

#[test]
fn tiers_are_enforced_on_both_sides() {
    let s = Scratch::new("cfg-tiers");
    let cfg = harness::config_dir(&s, r#"{"game.startingCoins": 250}"#);
    let mut server = harness::server_with_config(&s, &cfg);
    let mut client = client_for(&s, &cfg, &server, 1);
    harness::wait_joined(&mut server, &mut client, 1, JoinUntil::ConfigSnapshot);

    let sc = server.world().resource::<Config>();
    assert_eq!(
        sc.get::<Duration>("security.sessionTimeout"),
        Ok(Duration::from_secs(3600))
    );
    let cc = client.world().resource::<ClientConfig>();
    assert_eq!(
        cc.get::<Duration>("security.sessionTimeout"),
        Err(ConfigError::ServerOnly("security.sessionTimeout".into()))
    );
    assert_eq!(
        cc.get::<i64>("game.startingCoins"),
        Ok(250),
        "Shared value replicated from the server"
    );

    // A client sets its own ClientSafe preference, but not a Shared key.
    let t = now(&client);
    let mut cc = client.world_mut().resource_mut::<ClientConfig>();
    cc.set(
        "graphics.fpsCap",
        ConfigValue::Int(144),
        "player",
        "prefs",
        t,
    )
    .unwrap();
    assert!(matches!(
        cc.set("game.startingCoins", ConfigValue::Int(1), "player", "", t),
        Err(ConfigError::Forbidden { .. })
    ));

    // Asking the server to change a Shared key is denied by default, then rate limited.
    let (a, b) = {
        let mut net = client.world_mut().resource_mut::<ClientNet>();
        let body = SetConfig {
            path: "game.startingCoins".into(),
            value: ConfigValue::Int(1),
        };
        (net.call(&body, t), net.call(&body, t))
    };
    let mut answers = Vec::new();
    pump_until(
        &mut [&mut server, &mut client],
        200,
        "both answers",
        |apps| {
            answers.extend(harness::drain::<Answer<SetConfig>>(apps[1]));
            answers.len() == 2
        },
    );
    let by = |id| answers.iter().find(|r| r.id == id).unwrap().result.clone();
    assert_eq!(
        by(a),
        Err(RemoteError::Rejected(
            "permission denied: config.write.shared".into()
        ))
    );
    assert!(matches!(by(b), Err(RemoteError::Rejected(r)) if r.contains("rate limited")));
    assert_eq!(
        server
            .world()
            .resource::<Config>()
            .get::<i64>("game.startingCoins"),
        Ok(250)
    );
}

#[test]
fn invalid_config_refuses_to_start_with_file_key_line_and_reason() {
    let s = Scratch::new("cfg-invalid");
    let cfg = harness::config_dir(&s, "{\n  \"graphics.fpsCap\": 1000,\n}\n");
    let mut cmd = harness::bin();
    cmd.args([
        "--config",
        &cfg,
        "--data",
        s.path(),
        "server",
        "--bind",
        "127.0.0.1:0",
    ]);
    let out = harness::output_within(cmd, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("default.ron:2: graphics.fpsCap: 1000 is above the maximum 240"),
        "{err}"
    );
}

#[test]
fn environment_layer_wins_over_files() {
    let s = Scratch::new("cfg-env");
    let cfg = harness::config_dir(&s, r#"{"network.maxConcurrentConnections": 50}"#);
    let mut cmd = harness::bin();
    cmd.env("BLOXQUARIUM__NETWORK__MAXCONCURRENTCONNECTIONS", "7")
        .args([
            "--config",
            &cfg,
            "--data",
            s.path(),
            "--exit-after",
            "0.3",
            "server",
            "--bind",
            "127.0.0.1:0",
        ]);
    let out = harness::output_within(cmd, Duration::from_secs(30));
    let log = harness::text(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("up to 7 clients"), "{log}");
}

#[test]
fn overrides_expire_under_manual_time_and_history_records_them() {
    let s = Scratch::new("cfg-override");
    let cfg = harness::config_dir(&s, "{}");
    let mut server = harness::server_with_config(&s, &cfg);
    server.update();
    let t = now(&server);
    server
        .world_mut()
        .resource_mut::<Config>()
        .override_for(
            "game.startingCoins",
            ConfigValue::Int(999),
            Duration::from_secs(1),
            "event",
            t,
        )
        .unwrap();
    harness::updates(&mut server, 2);
    assert_eq!(
        server
            .world()
            .resource::<Config>()
            .get::<i64>("game.startingCoins"),
        Ok(999)
    );
    let mut seen = harness::drain::<ConfigChanged>(&mut server);
    // 1 s of manual time at 1/30 s a frame.
    for _ in 0..31 {
        server.update();
        seen.extend(harness::drain::<ConfigChanged>(&mut server));
    }
    let config = server.world().resource::<Config>();
    assert_eq!(
        config.get::<i64>("game.startingCoins"),
        Ok(100),
        "schema default restored"
    );
    let reasons: Vec<&str> = config.history().map(|c| c.reason.as_str()).collect();
    assert_eq!(reasons, vec!["override for 1s", "override expired"]);
    assert_eq!(config.stats().overrides_expired, 1);
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|c| c.under("game")));
}

#[test]
fn hot_reload_applies_replicates_and_keeps_the_last_good_config() {
    let s = Scratch::new("cfg-reload");
    let cfg = harness::config_dir(&s, r#"{"config.reloadPollInterval": 0.1}"#);
    let mut server = harness::server_with_config(&s, &cfg);
    let mut client = client_for(&s, &cfg, &server, 2);
    harness::wait_joined(&mut server, &mut client, 2, JoinUntil::ConfigSnapshot);

    std::fs::write(
        std::path::Path::new(&cfg).join("zz-live.ron"),
        r#"{"game.startingCoins": 500}"#,
    )
    .unwrap();
    pump_until(
        &mut [&mut server, &mut client],
        300,
        "reload reaches the client",
        |a| {
            a[1].world()
                .resource::<ClientConfig>()
                .get::<i64>("game.startingCoins")
                == Ok(500)
        },
    );
    assert_eq!(
        server
            .world()
            .resource::<Config>()
            .get::<i64>("game.startingCoins"),
        Ok(500)
    );

    // An invalid edit: logged, refused, the last good value stays.
    std::fs::write(
        std::path::Path::new(&cfg).join("zz-live.ron"),
        r#"{"game.startingCoins": -5}"#,
    )
    .unwrap();
    pump_until(
        &mut [&mut server, &mut client],
        300,
        "the bad edit is seen",
        |a| a[0].world().resource::<ConfigSource>().reload_failures == 1,
    );
    harness::pump(&mut [&mut server, &mut client], 10);
    assert_eq!(
        server
            .world()
            .resource::<Config>()
            .get::<i64>("game.startingCoins"),
        Ok(500)
    );
    assert_eq!(
        client
            .world()
            .resource::<ClientConfig>()
            .get::<i64>("game.startingCoins"),
        Ok(500)
    );
}

#[test]
fn client_preferences_persist_and_apply_live() {
    let s = Scratch::new("cfg-prefs");
    let cfg = harness::config_dir(&s, "{}");
    let mut server = harness::server_with_config(&s, &cfg);
    let mut client = client_for(&s, &cfg, &server, 3);
    harness::wait_joined(&mut server, &mut client, 3, JoinUntil::ConfigSnapshot);
    let t = now(&client);
    client
        .world_mut()
        .resource_mut::<ClientConfig>()
        .set(
            "graphics.qualityLevel",
            ConfigValue::Int(5),
            "player",
            "settings menu",
            t,
        )
        .unwrap();
    client.update();
    let seen = harness::drain::<ConfigChanged>(&mut client);
    assert!(
        seen.iter()
            .any(|c| c.path == "graphics.qualityLevel" && c.side == Side::Client)
    );
    drop(client);
    // A new client process with the same data dir starts with the player's setting.
    let client = client_for(&s, &cfg, &server, 3);
    assert_eq!(
        client
            .world()
            .resource::<ClientConfig>()
            .get::<i64>("graphics.qualityLevel"),
        Ok(5)
    );
}

/// Sentinel values for every ServerOnly key that can hold one.
fn sentinel_layer(config: &Config) -> String {
    let mut out = String::from("{\n");
    for key in config
        .schema()
        .keys()
        .filter(|k| k.spec.tier == Tier::ServerOnly)
    {
        let p = &key.spec.path;
        let v = match (&key.spec.ty, p.as_str()) {
            (_, "security.adminContact") => "\"SENTINEL-ADMIN-7c1e@ops\"".to_string(),
            (
                bloxquarium::config::ValueType::Duration | bloxquarium::config::ValueType::Float,
                _,
            ) => {
                let lo = key.spec.min.unwrap_or(0.0);
                let hi = key.spec.max.unwrap_or(lo + 100_000.0);
                format!(
                    "{}",
                    lo + (hi - lo) * 0.37 + (p.len() as f64) * 0.000_123_456_7
                )
            }
            _ => continue,
        };
        out.push_str(&format!("    \"{p}\": {v},\n"));
    }
    out.push_str(
        "    \"game.startingCoins\": 4242,\n    \"graphics.particleQuality\": \"LOW\",\n}\n",
    );
    out
}

#[test]
fn no_server_only_value_ever_reaches_a_client() {
    let s = Scratch::new("cfg-wire");
    let probe_dir = harness::config_dir(&s, "{}");
    let probe = bloxquarium::config::load_server(
        std::path::Path::new(&probe_dir),
        &bloxquarium::game::KEYS,
    )
    .unwrap();
    let cfg = harness::config_dir(&s, &sentinel_layer(&probe));
    let mut server = harness::server_with_config(&s, &cfg);
    server
        .world_mut()
        .resource_mut::<ServerNet>()
        .start_capture();
    let mut client = client_for(&s, &cfg, &server, 4);
    harness::wait_joined(&mut server, &mut client, 4, JoinUntil::ConfigSnapshot);

    // Several changes of every tier, replicated or not.
    let t = now(&server);
    {
        let mut c = server.world_mut().resource_mut::<Config>();
        c.set("game.startingCoins", ConfigValue::Int(777), "op", "", t)
            .unwrap();
        c.set(
            "security.maxFailedAttempts",
            ConfigValue::Int(9),
            "op",
            "",
            t,
        )
        .unwrap();
        c.set(
            "security.adminContact",
            ConfigValue::Text("SENTINEL-SECOND-aa91".into()),
            "op",
            "",
            t,
        )
        .unwrap();
        c.override_for(
            "security.sessionTimeout",
            ConfigValue::Float(4_321.987_654_3),
            Duration::from_secs(60),
            "op",
            t,
        )
        .unwrap();
        c.set(
            "graphics.particleQuality",
            ConfigValue::Text("ULTRA".into()),
            "op",
            "",
            t,
        )
        .unwrap();
    }
    pump_until(&mut [&mut server, &mut client], 300, "deltas arrive", |a| {
        a[1].world()
            .resource::<ClientConfig>()
            .get::<String>("graphics.particleQuality")
            == Ok("ULTRA".into())
    });
    harness::pump(&mut [&mut server, &mut client], 5);
    let wire = server
        .world_mut()
        .resource_mut::<ServerNet>()
        .take_capture();
    let contains = |needle: &[u8]| wire.windows(needle.len()).any(|w| w == needle);

    // The capture works: replicated values are in it.
    assert!(contains(b"game.startingCoins") && contains(b"graphics.particleQuality"));
    let config = server.world().resource::<Config>();
    for key in config
        .schema()
        .keys()
        .filter(|k| k.spec.tier == Tier::ServerOnly)
    {
        let path = &key.spec.path;
        assert!(
            !contains(path.as_bytes()),
            "ServerOnly key {path} went on the wire"
        );
        let value = config.value(path).unwrap();
        if matches!(value, ConfigValue::Text(_) | ConfigValue::Float(_)) {
            let bytes = protocol::encode(&value).unwrap();
            assert!(
                !contains(&bytes),
                "ServerOnly value of {path} ({value}) went on the wire"
            );
        }
    }
    for sentinel in ["SENTINEL-ADMIN-7c1e@ops", "SENTINEL-SECOND-aa91"] {
        assert!(
            !contains(sentinel.as_bytes()),
            "{sentinel} went on the wire"
        );
    }
    let old = protocol::encode(&ConfigValue::Float(4_321.987_654_3)).unwrap();
    assert!(!contains(&old));
    assert_eq!(
        client
            .world()
            .resource::<ClientConfig>()
            .get::<i64>("game.startingCoins"),
        Ok(777)
    );
}

/// One applied change is one version step and one audit record: through an edit of a key the
/// file already set (the reload replaces the file layer), and through a Shared write a client
/// with the permission makes.
#[test]
fn one_change_is_one_version_step_and_one_audit_record() {
    use bloxquarium::security::{AuditKind, AuditQuery, Security};
    let s = Scratch::new("cfg-one-step");
    let cfg = harness::config_dir(
        &s,
        r#"{"config.reloadPollInterval": 0.1, "game.startingCoins": 100}"#,
    );
    let mut server = harness::server_with_config(&s, &cfg);
    let mut client = client_for(&s, &cfg, &server, 4);
    harness::wait_joined(&mut server, &mut client, 4, JoinUntil::ConfigSnapshot);
    let audited = |what: &str| {
        bloxquarium::security::query_audit(
            &s.0,
            &AuditQuery {
                player: None,
                kind: Some(AuditKind::ConfigChange),
                since_ms: None,
            },
        )
        .unwrap()
        .into_iter()
        .filter(|r| r.details.contains(what))
        .count()
    };
    let version = |server: &App| server.world().resource::<Config>().version();
    let before = version(&server);

    // The file sets the key already; the edit changes it.
    std::fs::write(
        std::path::Path::new(&cfg).join("default.ron"),
        r#"{"config.reloadPollInterval": 0.1, "game.startingCoins": 300}"#,
    )
    .unwrap();
    pump_until(&mut [&mut server, &mut client], 300, "reloaded", |a| {
        a[0].world()
            .resource::<Config>()
            .get::<i64>("game.startingCoins")
            == Ok(300)
    });
    harness::pump(&mut [&mut server, &mut client], 5);
    assert_eq!(version(&server), before + 1, "one edit, one version step");
    assert_eq!(audited("game.startingCoins changed by file: 100 -> 300"), 1);

    // A Shared write from a client allowed to make it.
    server
        .world_mut()
        .resource_mut::<Security>()
        .assign_role(4, "admin", "test")
        .unwrap();
    let answer = harness::call(
        &mut server,
        &mut client,
        &mut [],
        SetConfig {
            path: "game.sellRefund".into(),
            value: ConfigValue::Float(0.25),
        },
    );
    assert_eq!(answer, Ok(before + 2), "the answer is the new version");
    harness::pump(&mut [&mut server, &mut client], 5);
    assert_eq!(version(&server), before + 2);
    assert_eq!(audited("game.sellRefund changed by player 4"), 1);
}

/// README's table of every config key (the framework's and the aquarium's), as the schema says:
/// key, tier, default and what it changes.
fn config_table() -> String {
    let config = bloxquarium::config::load_server(
        std::path::Path::new("/nonexistent-bloxquarium-config"),
        &bloxquarium::game::KEYS,
    )
    .unwrap();
    let mut out = String::from("| key | tier | default | what it changes |\n|---|---|---|---|\n");
    for key in config.schema().keys() {
        let default = bloxquarium::config::ron_literal(&key.default);
        let unit = if matches!(key.spec.ty, bloxquarium::config::ValueType::Duration) {
            " s"
        } else {
            ""
        };
        out.push_str(&format!(
            "| `{}` | {:?} | `{default}`{unit} | {} |\n",
            key.spec.path,
            key.spec.tier,
            key.spec.description.replace('|', "\\|")
        ));
    }
    out
}

/// README lists every key, generated from the schema: the table between the markers must be
/// the generated one (`BLOXQUARIUM_BLESS=1 cargo test --test it readme_lists` rewrites it).
#[test]
fn readme_lists_every_config_key() {
    const START: &str = "<!-- config-table: generated from the schema; do not edit -->\n";
    const END: &str = "<!-- end of config-table -->";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let (head, rest) = readme
        .split_once(START)
        .expect("README.md has the config-table start marker");
    let (table, tail) = rest
        .split_once(END)
        .expect("README.md has the config-table end marker");
    let generated = config_table();
    if std::env::var_os("BLOXQUARIUM_BLESS").is_some() {
        std::fs::write(&path, format!("{head}{START}{generated}{END}{tail}")).unwrap();
        return;
    }
    assert!(
        table == generated,
        "README's config table differs from the schema; regenerate it with \
         BLOXQUARIUM_BLESS=1 cargo test --test it readme_lists_every_config_key"
    );
}

/// Every key of the framework's schema, the aquarium's and the room's has an entry in
/// `key_effects.rs`, no entry names a key that does not exist, and every "it" test it names
/// is in this binary (the "lib" ones are checked by the library's own tests).
#[test]
fn every_config_key_has_a_test_that_changes_it() {
    use crate::key_effects::KEY_EFFECTS;
    let mut keys = std::collections::BTreeSet::new();
    for game in [
        bloxquarium::game::KEYS,
        <crate::room::room_game::RoomGame as bloxquarium::definition::Game>::KEYS,
    ] {
        let config = bloxquarium::config::load_server(
            std::path::Path::new("/nonexistent-bloxquarium-config"),
            &game,
        )
        .unwrap();
        keys.extend(config.schema().keys().map(|k| k.spec.path.clone()));
    }
    let mapped: std::collections::BTreeSet<String> =
        KEY_EFFECTS.iter().map(|(k, _)| k.to_string()).collect();
    let unmapped: Vec<_> = keys.difference(&mapped).collect();
    assert!(
        unmapped.is_empty(),
        "keys without a test that changes them in tests/it/key_effects.rs: {unmapped:?}"
    );
    let unknown: Vec<_> = mapped.difference(&keys).collect();
    assert!(
        unknown.is_empty(),
        "key_effects.rs names keys no schema has: {unknown:?}"
    );
    let ours = crate::key_effects::tests_of_this_binary();
    let mut missing = Vec::new();
    for (key, test) in KEY_EFFECTS {
        match test.split_once(' ') {
            Some(("it", name)) if ours.contains(name) => {}
            Some(("lib", _)) => {}
            _ => missing.push(format!("{key}: {test}")),
        }
    }
    assert!(
        missing.is_empty(),
        "key_effects.rs names tests this binary does not have: {missing:?}"
    );
}
