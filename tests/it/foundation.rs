//! The foundation: each mode's App, the shutdown phase, the command line.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use bevy::app::AppExit;
use bevy::prelude::*;
use bloxquarium::cli::{Cli, ParseOutcome};
use bloxquarium::server::ServerSettings;
use bloxquarium::shutdown::{OnShutdown, Shutdown, ShutdownPhase, ShutdownReason, ShutdownSystems};
use bloxquarium::transport::ConnectionState;
use bloxquarium::{Paths, RunMode};

use crate::harness::{self, Scratch, bin, output_within, text};

#[test]
fn server_app_builds_and_runs_ten_updates() {
    let data = Scratch::new("server10");
    let mut app = harness::server(&data, &["--tick-hz", "20", "--max-clients", "7"]);
    harness::updates(&mut app, 10);
    let world = app.world();
    assert_eq!(*world.resource::<RunMode>(), RunMode::Server);
    let settings = world.resource::<ServerSettings>();
    assert_eq!((settings.tick_hz, settings.max_clients), (20, 7));
    assert_eq!(world.resource::<bevy::diagnostic::FrameCount>().0, 10);
    assert!(
        world.get_resource::<ConnectionState>().is_none(),
        "a server has no client half"
    );
    assert!(app.should_exit().is_none());
}

#[test]
fn headless_client_app_builds_and_runs_ten_updates() {
    let mut app = harness::app(&[
        "client",
        "--headless",
        "--insecure-dev",
        "--server",
        "10.1.2.3:4567",
    ]);
    harness::updates(&mut app, 10);
    let world = app.world();
    assert_eq!(*world.resource::<RunMode>(), RunMode::Client);
    assert!(
        world.get_resource::<ServerSettings>().is_none(),
        "a client has no server half"
    );
    assert_eq!(
        world
            .resource::<bloxquarium::client::ServerAddress>()
            .0
            .to_string(),
        "10.1.2.3:4567"
    );
    assert_eq!(
        *world.resource::<ConnectionState>(),
        ConnectionState::Connecting
    );
    assert_eq!(world.resource::<bevy::diagnostic::FrameCount>().0, 10);
}

#[test]
fn headless_play_app_has_both_halves() {
    let data = Scratch::new("play10");
    let mut app = harness::app(&[
        "--data",
        data.path(),
        "play",
        "--headless",
        "--bind",
        "127.0.0.1:0",
    ]);
    harness::updates(&mut app, 10);
    let world = app.world();
    assert_eq!(*world.resource::<RunMode>(), RunMode::Play);
    let port = world.resource::<ServerSettings>().bind.port();
    assert_ne!(port, 0);
    // The client half joins its own server, with a token issued in-process.
    assert_eq!(
        world
            .resource::<bloxquarium::client::ServerAddress>()
            .0
            .port(),
        port
    );
    assert_eq!(world.resource::<bevy::diagnostic::FrameCount>().0, 10);
    harness::pump_until(
        &mut [&mut app],
        300,
        "play client connects to its own server",
        |a| *a[0].world().resource::<ConnectionState>() == ConnectionState::Connected,
    );
}

#[test]
fn paths_are_absolute() {
    let app = harness::app(&[
        "--config",
        "cfg",
        "--data",
        "d",
        "--assets",
        "a",
        "client",
        "--headless",
        "--insecure-dev",
    ]);
    let paths = app.world().resource::<Paths>();
    for p in [&paths.config, &paths.data, &paths.assets] {
        assert!(p.is_absolute(), "{p:?}");
    }
    assert!(paths.data.ends_with("d"));
}

/// Counts what the shutdown hook and the drain did.
#[derive(Resource, Default)]
struct Drained {
    hook_runs: u32,
    drain_frames: u32,
    pending_saves: u32,
}

#[test]
fn exit_after_runs_the_shutdown_hook_and_drains_before_exit() {
    // 0.5 s at 1/30 s a frame: the request comes on frame 16.
    let data = Scratch::new("exit-after");
    let mut app = harness::app(&[
        "--exit-after",
        "0.5",
        "--data",
        data.path(),
        "server",
        "--bind",
        "127.0.0.1:0",
    ]);
    app.init_resource::<Drained>()
        .add_systems(OnShutdown, |mut d: ResMut<Drained>| {
            d.hook_runs += 1;
            d.pending_saves = 3;
        })
        .add_systems(
            Update,
            (|mut d: ResMut<Drained>, mut s: ResMut<Shutdown>| {
                d.drain_frames += 1;
                if d.pending_saves > 0 {
                    d.pending_saves -= 1;
                    s.hold("test saves");
                }
            })
            .in_set(ShutdownSystems::Drain),
        );

    harness::updates(&mut app, 10);
    assert_eq!(
        app.world().resource::<Drained>().hook_runs,
        0,
        "nothing before the time"
    );

    let (exit, frames) = harness::run_to_exit(&mut app, 100).expect("the app exits");
    assert_eq!(exit, AppExit::Success);
    let d = app.world().resource::<Drained>();
    assert_eq!(d.hook_runs, 1, "the hook runs exactly once");
    assert_eq!(d.pending_saves, 0, "every pending save drained before exit");
    assert_eq!(d.drain_frames, 4, "three held frames, then one free frame");
    let shutdown = app.world().resource::<Shutdown>();
    assert_eq!(shutdown.reason(), Some(&ShutdownReason::ExitAfter));
    assert_eq!(shutdown.phase(), ShutdownPhase::Done);
    assert!(frames >= 5, "exit took {frames} more frames");
}

#[test]
fn a_request_from_code_goes_through_the_same_phase() {
    let mut app = harness::app(&["client", "--headless", "--insecure-dev"]);
    app.init_resource::<Drained>()
        .add_systems(OnShutdown, |mut d: ResMut<Drained>| d.hook_runs += 1);
    harness::updates(&mut app, 3);
    assert!(
        app.world_mut()
            .resource_mut::<Shutdown>()
            .request(ShutdownReason::Requested("test".into()))
    );
    let (exit, _) = harness::run_to_exit(&mut app, 5).expect("exits");
    assert_eq!(exit, AppExit::Success);
    assert_eq!(app.world().resource::<Drained>().hook_runs, 1);
}

#[test]
fn parse_errors_are_one_line_naming_the_flag() {
    for (args, flag) in [
        (&["server", "--tick-hz", "0"][..], "--tick-hz"),
        (&["server", "--tick-hz", "fast"][..], "--tick-hz"),
        (&["server", "--max-clients", "5000"][..], "--max-clients"),
        (&["server", "--bind", "not-an-address"][..], "--bind"),
        (&["client", "--server", "localhost"][..], "--server"),
        (&["--exit-after", "-3", "server"][..], "--exit-after"),
        (&["--exit-after", "0", "server"][..], "--exit-after"),
        (&["server", "--tick-hz", "-1"][..], "--tick-hz"),
        (&["--log", "bloxquarium=loud", "server"][..], "--log"),
    ] {
        let mut argv = vec!["bloxquarium"];
        argv.extend_from_slice(args);
        match Cli::parse_from_args(argv) {
            Err(ParseOutcome::Error(line)) => {
                assert!(!line.contains('\n'), "{line}");
                assert!(line.contains(flag), "{args:?}: {line}");
            }
            other => panic!("{args:?} should fail to parse, got {other:?}"),
        }
    }
}

#[test]
fn no_subcommand_means_play_with_defaults() {
    let cli = harness::cli(&[]);
    match cli.mode() {
        bloxquarium::cli::Command::Play(p) => {
            assert_eq!(p.server.bind.to_string(), "127.0.0.1:5000");
            assert_eq!((p.server.tick_hz, p.server.max_clients), (30, None));
            assert!(!p.headless);
        }
        other => panic!("expected play, got {other:?}"),
    }
}

#[test]
fn binary_bad_value_exits_2_with_one_line() {
    let mut cmd = bin();
    cmd.args(["server", "--bind", "nowhere"]);
    let out = output_within(cmd, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("--bind"), "{err}");
}

#[test]
fn binary_bad_env_value_exits_2_naming_the_flag() {
    let mut cmd = bin();
    cmd.env("BLOXQUARIUM_TICK_HZ", "many").arg("server");
    let out = output_within(cmd, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("--tick-hz"), "{err}");
}

#[test]
fn binary_version_and_help() {
    let mut cmd = bin();
    cmd.arg("--version");
    let out = output_within(cmd, Duration::from_secs(30));
    assert!(out.status.success());
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(
        version.contains(&format!("protocol {}", bloxquarium::PROTOCOL_VERSION)),
        "{version}"
    );
    let id = <bloxquarium::game::AquariumGame as bloxquarium::definition::Game>::protocol_id();
    let set = bloxquarium::protocol::protocol_fingerprint_of(id).unwrap();
    assert!(
        version.contains(&format!("message set {set:08x}")),
        "{version}"
    );

    let mut cmd = bin();
    cmd.args(["server", "--help"]);
    let out = output_within(cmd, Duration::from_secs(30));
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--bind",
        "--tick-hz",
        "--max-clients",
        "--exit-after",
        "BLOXQUARIUM_BIND",
    ] {
        assert!(help.contains(flag), "help lacks {flag}:\n{help}");
    }
}

#[test]
fn binary_server_exits_0_after_exit_after_and_logs_its_tick_rate() {
    let data = Scratch::new("bin-exit-after");
    let mut cmd = bin();
    // Env-var flags: the tick rate and the exit timer come from the environment.
    cmd.env("BLOXQUARIUM_TICK_HZ", "45")
        .env("BLOXQUARIUM_EXIT_AFTER", "0.5")
        .args(["--data", data.path(), "server", "--bind", "127.0.0.1:0"]);
    let out = output_within(cmd, Duration::from_secs(60));
    let log = text(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(log.contains("server ticking at 45 Hz"), "{log}");
    assert!(
        log.contains("shutdown requested (--exit-after elapsed)"),
        "{log}"
    );
    assert!(log.contains("shutdown complete"), "{log}");
}

#[test]
fn binary_flag_wins_over_env() {
    let data = Scratch::new("flag-wins");
    let mut cmd = bin();
    cmd.env("BLOXQUARIUM_TICK_HZ", "45").args([
        "--exit-after",
        "0.2",
        "--data",
        data.path(),
        "server",
        "--tick-hz",
        "12",
        "--bind",
        "127.0.0.1:0",
    ]);
    let out = output_within(cmd, Duration::from_secs(60));
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("server ticking at 12 Hz"), "{log}");
}

#[test]
fn binary_sigterm_shuts_down_gracefully() {
    let data = Scratch::new("sigterm");
    let mut child = bin()
        .args(["--data", data.path(), "server", "--bind", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn server");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !log.contains("server ticking") {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
            .unwrap_or_else(|_| panic!("server never announced itself:\n{log}"));
        log.push_str(&line);
        log.push('\n');
    }
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let start = std::time::Instant::now();
    let code = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status.code();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(2)) {
        log.push_str(&line);
        log.push('\n');
    }
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("shutdown requested (signal)"), "{log}");
    assert!(log.contains("shutdown complete"), "{log}");
}

#[cfg(feature = "client")]
#[test]
fn binary_windowed_modes_without_display_exit_1_with_one_line() {
    for mode in [&["play"][..], &["client", "--insecure-dev"][..]] {
        let mut cmd = bin();
        cmd.env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .args(mode);
        let out = output_within(cmd, Duration::from_secs(30));
        assert_eq!(out.status.code(), Some(1), "{mode:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{mode:?}: {err}");
        assert!(
            err.contains("no X display") && err.contains("xvfb-run"),
            "{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}
