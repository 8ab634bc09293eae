//! A second game on the Bloxquarium framework, built only from its public API: a shared room
//! where players chat, each with a counter that persists between sessions, and one admin command
//! of its own.
//!
//! What it gives the framework (the `Game` trait):
//! - its player data, [`RoomData`] (a `PlayerData`: schema version, template from its own config
//!   keys, validation, merge rules, what an offline player can be sent);
//! - its own config keys (`keys.ron`: `room.bumpStep`, `room.startCounter`, `room.welcome`);
//! - its remote messages ([`protocol`]): `Say` (an event in), `Said` and `CounterNow` (events
//!   out, the second sealed), `Bump` (a function) and `ResetCounter` (a sealed admin function
//!   behind the permission `room.reset`).
//!
//! The framework does the rest: sessions, the security gate (rate limits, permissions, strikes),
//! configuration, loading and saving profiles under session locks, health and metrics.

use std::net::SocketAddr;
use std::path::Path;

use bevy::prelude::*;
use serde::{Deserialize, Serialize};

use bloxquarium::config::{Config, ConfigError, GameKeys};
use bloxquarium::datastore::{DataStoreState, OpRecord, PlayerData, ProfileLoaded};
use bloxquarium::definition::Game;
use bloxquarium::health::HealthPlugin;
use bloxquarium::reconcile::{Reconciler, Rule};
use bloxquarium::transport::{
    Answer, Call, ClientCredentials, ClientNet, FromClient, FromServer, IssuedToken, ServerNet,
};
use bloxquarium::{
    ClientPlugins, Paths, RunMode, ServerPlugins, SharedPlugins, StartError, prelude::*,
};

/// The room's remote messages.
pub mod protocol {
    use bevy::prelude::App;
    use bloxquarium::protocol::{Remote, RemoteFunction};
    use bloxquarium::transport::RemoteApp;
    use serde::{Deserialize, Serialize};

    /// Longest line a player may say.
    pub const MAX_LINE_CHARS: usize = 120;

    /// Registers the room's messages (server and client alike).
    pub fn register(app: &mut App) {
        app.add_remote_event::<Say>()
            .add_remote_event::<Said>()
            .add_remote_event::<CounterNow>()
            .add_remote_function::<Bump>()
            .add_remote_function::<ResetCounter>();
    }

    /// A line a player says to the room (client → server).
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Say {
        /// The line.
        pub text: String,
    }

    impl Remote for Say {
        const NAME: &'static str = "room.say";
        const RATE_CLASS: &'static str = "chat";
        fn validate(&self) -> Result<(), String> {
            let n = self.text.chars().count();
            if n == 0 || n > MAX_LINE_CHARS {
                Err(format!(
                    "a line is 1..={MAX_LINE_CHARS} characters, not {n}"
                ))
            } else {
                Ok(())
            }
        }
        fn permission(&self) -> Option<&'static str> {
            Some("chat.send")
        }
    }

    /// A line said in the room (server → every client).
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Said {
        /// Who said it.
        pub from: String,
        /// What.
        pub text: String,
    }

    impl Remote for Said {
        const NAME: &'static str = "room.said";
    }

    /// The player's own counter (server → that player, sealed): at join and after an admin's
    /// reset.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub struct CounterNow(pub i64);

    impl Remote for CounterNow {
        const NAME: &'static str = "room.counter_now";
        const SEALED: bool = true;
    }

    /// Adds `room.bumpStep` to the caller's counter; answers the counter after.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Bump;

    impl Remote for Bump {
        const NAME: &'static str = "room.bump";
    }

    impl RemoteFunction for Bump {
        type Response = i64;
    }

    /// Sets a player's counter back to `room.startCounter` (needs `room.reset`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ResetCounter {
        /// Whose.
        pub player: u64,
    }

    impl Remote for ResetCounter {
        const NAME: &'static str = "room.admin.reset_counter";
        const SEALED: bool = true;
        fn permission(&self) -> Option<&'static str> {
            Some("room.reset")
        }
    }

    impl RemoteFunction for ResetCounter {
        type Response = String;
    }
}

use protocol::{Bump, CounterNow, ResetCounter, Said, Say};

/// What the room keeps for each player.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomData {
    /// The player's counter.
    pub counter: i64,
    /// Lines said, ever.
    #[serde(default)]
    pub lines_said: u64,
}

impl PlayerData for RoomData {
    const SCHEMA_VERSION: u32 = 1;
    /// Added to the counter at the player's next load.
    type Offline = i64;

    fn template(config: &Config) -> Result<Self, ConfigError> {
        Ok(Self {
            counter: config.get("room.startCounter")?,
            lines_said: 0,
        })
    }

    fn validate(&self) -> Result<(), String> {
        if self.counter.unsigned_abs() > 1_000_000_000 {
            Err(format!("counter {} is out of range", self.counter))
        } else {
            Ok(())
        }
    }

    fn apply_offline(&mut self, delta: &i64) {
        self.counter = self.counter.saturating_add(*delta);
    }

    fn merge_policy() -> Vec<(&'static str, Rule)> {
        vec![("counter", Rule::Counter), ("lines_said", Rule::Counter)]
    }
}

/// The room, as the framework sees it.
pub struct RoomGame;

impl Game for RoomGame {
    const NAME: &'static str = "room";
    const KEYS: GameKeys = GameKeys::plain(
        "room keys (examples/room/keys.ron)",
        include_str!("keys.ron"),
    );
    type Data = RoomData;

    fn protocol(app: &mut App) {
        protocol::register(app);
    }
}

/// The room's server logic.
pub struct RoomServerPlugin;

impl Plugin for RoomServerPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(Update, (welcome, relay_lines).in_set(ServerSystems::Handle))
            // Calls are answered in the requests schedule: in the tick, and between ticks as they
            // arrive.
            .add_systems(ServerRequests, (answer_bumps, answer_resets));
    }
}

/// Changes a live profile as one operation (logged for reconciliation, kept with the profile).
fn change(
    profiles: &mut DataStoreState<RoomData>,
    reconciler: &mut Reconciler,
    (player, actor, kind): (u64, u64, &'static str),
    f: impl FnOnce(&mut RoomData) -> i64,
) -> Option<i64> {
    let at_ms = bloxquarium::clock::now_ms();
    let outcome = profiles.apply_op(
        player,
        |p| Ok::<i64, std::convert::Infallible>(f(&mut p.data)),
        |p, after| {
            OpRecord::logged(
                reconciler,
                (p.player_id, actor),
                kind,
                serde_json::json!({ "counter": after }),
                at_ms,
            )
        },
    )?;
    outcome.ok()
}

fn welcome(
    mut loaded: MessageReader<ProfileLoaded>,
    profiles: Res<DataStoreState<RoomData>>,
    config: Res<Config>,
    mut net: ResMut<ServerNet>,
) {
    let text: String = config.get("room.welcome").unwrap_or_default();
    for l in loaded.read() {
        if let Some(live) = profiles.profile(l.player) {
            net.send(l.client, &CounterNow(live.profile.counter));
            net.send(
                l.client,
                &Said {
                    from: "room".into(),
                    text: text.clone(),
                },
            );
        }
    }
}

fn relay_lines(
    mut lines: MessageReader<FromClient<Say>>,
    mut profiles: ResMut<DataStoreState<RoomData>>,
    mut reconciler: ResMut<Reconciler>,
    mut net: ResMut<ServerNet>,
) {
    for line in lines.read() {
        let Some((player, name)) = net
            .session(line.client)
            .map(|s| (s.player_id, s.display_name.clone()))
        else {
            continue;
        };
        change(
            &mut profiles,
            &mut reconciler,
            (player, player, "say"),
            |d| {
                d.lines_said += 1;
                d.counter
            },
        );
        net.broadcast(&Said {
            from: name,
            text: line.message.text.clone(),
        });
    }
}

fn answer_bumps(
    mut calls: MessageReader<Call<Bump>>,
    mut profiles: ResMut<DataStoreState<RoomData>>,
    mut reconciler: ResMut<Reconciler>,
    config: Res<Config>,
    mut net: ResMut<ServerNet>,
) {
    let step: i64 = config.get("room.bumpStep").unwrap_or(1);
    for c in calls.read() {
        let Some(player) = net.session(c.client).map(|s| s.player_id) else {
            continue;
        };
        let after = change(
            &mut profiles,
            &mut reconciler,
            (player, player, "bump"),
            |d| {
                d.counter = d.counter.saturating_add(step);
                d.counter
            },
        );
        net.reply(
            c,
            after.ok_or_else(|| {
                RemoteError::Rejected("your counter is still loading; try again".into())
            }),
        );
    }
}

fn answer_resets(
    mut calls: MessageReader<Call<ResetCounter>>,
    mut profiles: ResMut<DataStoreState<RoomData>>,
    mut reconciler: ResMut<Reconciler>,
    config: Res<Config>,
    mut net: ResMut<ServerNet>,
) {
    let start: i64 = config.get("room.startCounter").unwrap_or(0);
    for c in calls.read() {
        let actor = net.session(c.client).map_or(0, |s| s.player_id);
        let player = c.request.player;
        let reset = change(
            &mut profiles,
            &mut reconciler,
            (player, actor, "reset"),
            |d| {
                d.counter = start;
                start
            },
        );
        let answer = match (reset, profiles.profile(player)) {
            (Some(value), Some(live)) => {
                net.send(live.client, &CounterNow(value));
                Ok(format!("player {player}'s counter is {value} again"))
            }
            _ => Err(RemoteError::Rejected(format!(
                "player {player} is not in the room"
            ))),
        };
        net.reply(c, answer);
    }
}

/// What a client has seen of the room.
#[derive(Resource, Debug, Default, Clone, PartialEq)]
pub struct RoomView {
    /// Lines said while here: who, what.
    pub lines: Vec<(String, String)>,
    /// The player's counter, as the server last said.
    pub counter: Option<i64>,
}

/// The room's client logic (no window).
pub struct RoomClientPlugin;

impl Plugin for RoomClientPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<RoomView>()
            .add_systems(PreUpdate, watch_the_room.in_set(ClientSystems::Sync));
    }
}

fn watch_the_room(
    mut view: ResMut<RoomView>,
    mut said: MessageReader<FromServer<Said>>,
    mut counters: MessageReader<FromServer<CounterNow>>,
    mut bumps: MessageReader<Answer<Bump>>,
) {
    for FromServer(s) in said.read() {
        view.lines.push((s.from.clone(), s.text.clone()));
    }
    for FromServer(CounterNow(n)) in counters.read() {
        view.counter = Some(*n);
    }
    for a in bumps.read() {
        match &a.result {
            Ok(n) => view.counter = Some(*n),
            Err(e) => warn!("bump refused: {e}"),
        }
    }
}

/// Says a line to the room.
pub fn say(client: &mut App, text: &str) {
    client.world_mut().resource_mut::<ClientNet>().send(&Say {
        text: text.to_string(),
    });
}

/// Bumps the player's counter; the answer updates [`RoomView`].
pub fn bump(client: &mut App) -> u64 {
    let now = client.world().resource::<Time<Real>>().elapsed();
    client
        .world_mut()
        .resource_mut::<ClientNet>()
        .call(&Bump, now)
}

/// A headless room server on `bind`, with its config in `paths.config` (the framework's keys and
/// the room's), its store and keys in `paths.data`. `process`: the real binary (a logger, OS
/// signals), not a test.
pub fn server_app(
    paths: &Paths,
    bind: SocketAddr,
    hz: u32,
    process: bool,
) -> Result<App, StartError> {
    let args = bloxquarium::cli::ServerArgs {
        bind,
        tick_hz: hz,
        max_clients: Some(64),
        insecure_dev: false,
        metrics_bind: "127.0.0.1:0"
            .parse()
            .map_err(|_| StartError::Tool("bad address".into()))?,
        ..Default::default()
    };
    let server = ServerPlugins::<RoomGame>::open(paths, &args, HealthPlugin::default())?;
    let mut app = App::new();
    let log = process.then(bevy::log::LogPlugin::default);
    bloxquarium::app::headless(&mut app, &paths.assets, f64::from(hz), log);
    app.add_plugins(shared(RunMode::Server, paths, process))
        .add_plugins(server)
        .add_plugins(RoomServerPlugin);
    bloxquarium::app::check_integrations(&app)?;
    // The framework's server loop: ticks, and calls answered between them as they arrive.
    app.set_runner(bloxquarium::transport::runner::tick_runner);
    Ok(app)
}

/// A headless room client joining `server` with `token`.
pub fn client_app(
    paths: &Paths,
    server: SocketAddr,
    token: IssuedToken,
    signals: bool,
) -> Result<App, StartError> {
    let client =
        ClientPlugins::<RoomGame>::open(paths, server, ClientCredentials::Token(Box::new(token)))?;
    let mut app = App::new();
    bloxquarium::app::headless(&mut app, &paths.assets, 60.0, None);
    app.add_plugins(shared(RunMode::Client, paths, signals))
        .add_plugins(client)
        .add_plugins(RoomClientPlugin);
    bloxquarium::app::check_integrations(&app)?;
    Ok(app)
}

fn shared(mode: RunMode, paths: &Paths, signals: bool) -> SharedPlugins {
    SharedPlugins {
        mode,
        paths: paths.clone(),
        shutdown: bloxquarium::shutdown::ShutdownPlugin {
            listen_to_os_signals: signals,
            ..default()
        },
    }
}

/// The working directories of a room under `base`: `config`, `data` and an (empty) `assets`.
pub fn room_paths(base: &Path) -> Paths {
    Paths::new(
        &base.join("config"),
        &base.join("data"),
        &base.join("assets"),
    )
}
