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
    // Test servers run side by side: each serves health, metrics and logins on free ports.
    if args.contains(&"server") && !args.contains(&"--metrics-bind") {
        argv.extend_from_slice(&["--metrics-bind", "127.0.0.1:0"]);
    }
    if args.contains(&"server") && !args.contains(&"--login-bind") {
        argv.extend_from_slice(&["--login-bind", "127.0.0.1:0"]);
    }
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

/// A headless client of `server` started with the token file `token`, or why it could not start
/// (`client --headless --server ADDR --token FILE`).
pub fn client_with_token_file(
    server: std::net::SocketAddr,
    token: &std::path::Path,
) -> Result<App, bloxquarium::StartError> {
    let server = server.to_string();
    let token = token.to_string_lossy();
    let cli = cli(&[
        "client",
        "--headless",
        "--server",
        &server,
        "--token",
        &token,
    ]);
    let Mode::Client(args) = cli.mode() else {
        unreachable!("a client command line")
    };
    bloxquarium::client_app(&cli.global, &args, ProcessOptions::EMBEDDED)
}

/// Builds the App for a command line (headless modes only), with manual time.
pub fn app(args: &[&str]) -> App {
    let cli = cli(args);
    let mut app = match cli.mode() {
        Mode::Server(a) => bloxquarium::server_app(&cli.global, &a, ProcessOptions::EMBEDDED)
            .unwrap_or_else(|e| panic!("server app for {args:?}: {e}")),
        Mode::Client(a) => {
            assert!(a.headless, "tests run clients headless");
            bloxquarium::client_app(&cli.global, &a, ProcessOptions::EMBEDDED)
                .unwrap_or_else(|e| panic!("client app for {args:?}: {e}"))
        }
        Mode::Play(a) => {
            assert!(a.headless, "tests run play headless");
            bloxquarium::play_app(&cli.global, &a, ProcessOptions::EMBEDDED)
                .unwrap_or_else(|e| panic!("play app for {args:?}: {e}"))
        }
        other => panic!("{other:?} is not an App mode"),
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
    // Servers started by tests run side by side: any free port for health and metrics.
    cmd.env("BLOXQUARIUM_METRICS_BIND", "127.0.0.1:0")
        .env("BLOXQUARIUM_LOGIN_BIND", "127.0.0.1:0");
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

/// A dedicated server on an ephemeral loopback port with its own data directory.
pub fn server(data: &Scratch, extra: &[&str]) -> App {
    let mut args = vec!["--data", data.path(), "server", "--bind", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    app(&args)
}

/// The address a server app actually bound.
pub fn server_addr(server: &App) -> std::net::SocketAddr {
    server
        .world()
        .resource::<bloxquarium::server::ServerSettings>()
        .bind
}

/// A token for `player` issued with the server app's own key.
pub fn issue(server: &App, player: u64, name: &str) -> bloxquarium::transport::IssuedToken {
    server
        .world()
        .resource::<bloxquarium::transport::ServerTokens>()
        .issue(player, name)
        .expect("issue token")
}

/// A headless client app that joins `addr` with `token` (through a token file, as the binary).
pub fn client(
    scratch: &Scratch,
    addr: std::net::SocketAddr,
    token: &bloxquarium::transport::IssuedToken,
) -> App {
    client_with(scratch, addr, token, &[])
}

/// A headless client with extra global arguments (`--assets DIR`, `--data DIR`).
pub fn client_with(
    scratch: &Scratch,
    addr: std::net::SocketAddr,
    token: &bloxquarium::transport::IssuedToken,
    global: &[&str],
) -> App {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let path = scratch.0.join(format!("token-{n}.bin"));
    token.write_file(&path).expect("write token");
    let addr = addr.to_string();
    let path = path.to_string_lossy().into_owned();
    let mut args: Vec<&str> = global.to_vec();
    args.extend_from_slice(&["client", "--headless", "--server", &addr, "--token", &path]);
    app(&args)
}

/// How far [`join`] goes before it returns the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinUntil {
    /// The client is connected and in session.
    Connected,
    /// The server has loaded the player's profile.
    ProfileLoaded,
    /// The client has received the server's config snapshot.
    ConfigSnapshot,
    /// The client has its authoritative game state from the server.
    InGame,
}

/// Frames a join may take before the test fails.
pub const JOIN_FRAMES: usize = 300;

/// A headless client for `player` (`name`) joins `server` with a token from the server's own
/// key; returns it once the join has gone as far as `until`.
pub fn join(server: &mut App, data: &Scratch, player: u64, name: &str, until: JoinUntil) -> App {
    let token = issue(server, player, name);
    let mut client = client(data, server_addr(server), &token);
    wait_joined(server, &mut client, player, until);
    client
}

/// Like [`join`] with `ProfileLoaded`; also returns the `ProfileLoaded` messages the server
/// wrote meanwhile.
pub fn join_loaded(
    server: &mut App,
    data: &Scratch,
    player: u64,
    name: &str,
) -> (App, Vec<bloxquarium::datastore::ProfileLoaded>) {
    let token = issue(server, player, name);
    let mut client = client(data, server_addr(server), &token);
    let mut loaded = Vec::new();
    pump_until(
        &mut [server, &mut client],
        JOIN_FRAMES,
        "profile loads",
        |a| {
            loaded.extend(drain::<bloxquarium::datastore::ProfileLoaded>(a[0]));
            loaded.iter().any(|l| l.player == player)
        },
    );
    (client, loaded)
}

/// Pumps `server` and an existing `client` (of `player`) until the join has gone as far as
/// `until`.
pub fn wait_joined(server: &mut App, client: &mut App, player: u64, until: JoinUntil) {
    pump_until(
        &mut [server, client],
        JOIN_FRAMES,
        &format!("player {player}: {until:?}"),
        |a| match until {
            JoinUntil::Connected => {
                state(a[1]) == bloxquarium::transport::ConnectionState::Connected
            }
            JoinUntil::ProfileLoaded => a[0]
                .world()
                .resource::<bloxquarium::game::DataStoreState>()
                .profile(player)
                .is_some(),
            JoinUntil::InGame => a[1]
                .world()
                .resource::<bloxquarium::game::Prediction>()
                .predictor
                .authoritative()
                .is_some(),
            JoinUntil::ConfigSnapshot => {
                a[1].world()
                    .resource::<bloxquarium::config_sync::ConfigReplication>()
                    .snapshots
                    >= 1
            }
        },
    );
}

/// Updates every app once per frame, `frames` times, with a pause for loopback delivery.
pub fn pump(apps: &mut [&mut App], frames: usize) {
    for _ in 0..frames {
        for a in apps.iter_mut() {
            a.update();
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Pumps until `done` holds (checked after each frame); panics after `max` frames.
pub fn pump_until(
    apps: &mut [&mut App],
    max: usize,
    what: &str,
    mut done: impl FnMut(&mut [&mut App]) -> bool,
) {
    for _ in 0..max {
        for a in apps.iter_mut() {
            a.update();
        }
        if done(apps) {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("{what}: not reached within {max} frames");
}

/// The client's connection state.
pub fn state(client: &App) -> bloxquarium::transport::ConnectionState {
    client
        .world()
        .resource::<bloxquarium::transport::ConnectionState>()
        .clone()
}

/// Collects the messages of type `M` written since the last call (per app and type).
pub fn drain<M: bevy::ecs::message::Message + Clone>(app: &mut App) -> Vec<M> {
    let mut cursor = app
        .world_mut()
        .remove_resource::<Cursor<M>>()
        .unwrap_or_else(|| {
            Cursor(
                app.world()
                    .resource::<bevy::ecs::message::Messages<M>>()
                    .get_cursor(),
            )
        });
    let out: Vec<M> = cursor
        .0
        .read(app.world().resource::<bevy::ecs::message::Messages<M>>())
        .cloned()
        .collect();
    app.world_mut().insert_resource(cursor);
    out
}

#[derive(Resource)]
struct Cursor<M: bevy::ecs::message::Message>(bevy::ecs::message::MessageCursor<M>);

/// A config dir under `scratch` with the shipped schema and `default.ron` = `defaults`.
pub fn config_dir(scratch: &Scratch, defaults: &str) -> String {
    let dir = scratch.0.join("config");
    std::fs::create_dir_all(&dir).expect("config dir");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/config/schema.ron"),
        dir.join("schema.ron"),
    )
    .expect("copy schema");
    std::fs::write(dir.join("default.ron"), defaults).expect("write default.ron");
    dir.to_string_lossy().into_owned()
}

/// A dedicated server on an ephemeral port with config dir `config` and data in `scratch`.
pub fn server_with_config(scratch: &Scratch, config: &str) -> App {
    server_with_config_args(scratch, config, &[])
}

/// [`server_with_config`] with extra server flags.
pub fn server_with_config_args(scratch: &Scratch, config: &str, extra: &[&str]) -> App {
    let mut args = vec![
        "--config",
        config,
        "--data",
        scratch.path(),
        "server",
        "--bind",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    app(&args)
}

/// Pumps for `wall` of real time.
pub fn pump_for(apps: &mut [&mut App], wall: Duration) {
    let end = std::time::Instant::now() + wall;
    while std::time::Instant::now() < end {
        for a in apps.iter_mut() {
            a.update();
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A typed remote call from `client`; pumps `server` and every app in `others` until it is
/// answered.
pub fn call<T: bloxquarium::protocol::RemoteFunction>(
    server: &mut App,
    client: &mut App,
    others: &mut [&mut App],
    request: T,
) -> Result<T::Response, bloxquarium::protocol::RemoteError> {
    let t = client.world().resource::<Time<Real>>().elapsed();
    let id = client
        .world_mut()
        .resource_mut::<bloxquarium::transport::ClientNet>()
        .call(&request, t);
    let mut got = None;
    for _ in 0..300 {
        server.update();
        client.update();
        for o in others.iter_mut() {
            o.update();
        }
        if let Some(c) = drain::<bloxquarium::transport::Answer<T>>(client)
            .into_iter()
            .find(|c| c.id == id)
        {
            got = Some(c.result);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    got.unwrap_or_else(|| panic!("the {} call is answered", T::NAME))
}

/// Changes a live profile on `server` as the game's simulation step does (no operation is
/// recorded); panics if it is not loaded.
pub fn edit_profile(
    server: &mut App,
    player: u64,
    f: impl FnOnce(&mut bloxquarium::game::Profile),
) {
    let mut state = server
        .world_mut()
        .resource_mut::<bloxquarium::game::DataStoreState>();
    state
        .simulate(player, f)
        .unwrap_or_else(|| panic!("profile {player} is not loaded"));
}

/// Calls `Echo` from `client` while only the client runs (nobody answers); returns the call's
/// outcome once it has one, or `None` after `frames` frames.
pub fn unanswered_echo(
    client: &mut App,
    frames: usize,
) -> Option<Result<Vec<u8>, bloxquarium::protocol::RemoteError>> {
    use bloxquarium::protocol::builtin::Echo;
    let t = client.world().resource::<Time<Real>>().elapsed();
    let id = client
        .world_mut()
        .resource_mut::<bloxquarium::transport::ClientNet>()
        .call(&Echo { payload: vec![] }, t);
    for _ in 0..frames {
        client.update();
        if let Some(a) = drain::<bloxquarium::transport::Answer<Echo>>(client)
            .into_iter()
            .find(|a| a.id == id)
        {
            return Some(a.result);
        }
    }
    None
}
