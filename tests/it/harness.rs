//! Builds headless server, client and play Apps exactly as the binary does (same mode
//! functions), with manual time, and drives them with `update()`.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use bevy::app::AppExit;
use bevy::prelude::*;
use bevy::time::TimeUpdateStrategy;
use bloxquarium::ProcessOptions;
use bloxquarium::cli::{Cli, Command as Mode};

/// One frame of manual time.
pub const FRAME: Duration = Duration::from_millis(1000 / 30);

/// Parses a command line as the binary would; panics with the parse outcome otherwise.
pub fn cli(args: &[&str]) -> Cli {
    let mut argv = vec!["bloxquarium"];
    argv.extend_from_slice(args);
    match Cli::parse_from_args(argv) {
        Ok(cli) => cli,
        Err(outcome) => panic!("command line {args:?} did not parse: {outcome:?}"),
    }
}

/// A scratch directory for `--data`, removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "bloxquarium-it-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Self(dir)
    }

    pub fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Builds the App for a command line (headless modes only), with manual time.
pub fn app(args: &[&str]) -> App {
    let cli = cli(args);
    let mut app = match cli.mode() {
        Mode::Server(a) => bloxquarium::server_app(&cli.global, &a, ProcessOptions::EMBEDDED),
        Mode::Client(a) => {
            assert!(a.headless, "tests run clients headless");
            bloxquarium::client_app(&cli.global, &a, ProcessOptions::EMBEDDED)
                .expect("headless client builds")
        }
        Mode::Play(a) => {
            assert!(a.headless, "tests run play headless");
            bloxquarium::play_app(&cli.global, &a, ProcessOptions::EMBEDDED)
                .expect("headless play builds")
        }
    };
    app.insert_resource(TimeUpdateStrategy::ManualDuration(FRAME));
    app
}

/// Runs `n` updates.
pub fn updates(app: &mut App, n: usize) {
    for _ in 0..n {
        app.update();
    }
}

/// Updates until the app asks to exit, at most `max` frames; returns the exit and frames run.
pub fn run_to_exit(app: &mut App, max: usize) -> Option<(AppExit, usize)> {
    for frame in 1..=max {
        app.update();
        if let Some(exit) = app.should_exit() {
            return Some((exit, frame));
        }
    }
    None
}

/// The real binary, for command-line and process-level tests.
pub fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bloxquarium"));
    // A clean slate: nothing from the caller's environment decides a test.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("BLOXQUARIUM_") {
            cmd.env_remove(key);
        }
    }
    cmd.env_remove("RUST_LOG").env("NO_COLOR", "1");
    cmd
}

/// Runs a command to its end, killing it after `limit`.
pub fn output_within(mut cmd: Command, limit: Duration) -> Output {
    use std::process::Stdio;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bloxquarium");
    let start = std::time::Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "bloxquarium did not exit within {limit:?}; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Stdout and stderr together, as text.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
