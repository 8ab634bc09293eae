//! One function per mode builds the App from the plugin groups. `main.rs` only parses the command
//! line and calls [`run`].

use std::time::Duration;

use bevy::app::{AppExit, PluginGroupBuilder, ScheduleRunnerPlugin};
use bevy::asset::AssetPlugin;
use bevy::log::LogPlugin;
use bevy::prelude::*;
use bevy::state::app::StatesPlugin;

use crate::cli::{Cli, ClientArgs, Command, GlobalArgs, PlayArgs, ScreenshotArgs, ServerArgs};
use crate::client::ClientCorePlugin;
use crate::definition::Game;
use crate::game::AquariumGame;
use crate::process::{Paths, RunMode, absolute};
use crate::server::{ServerCorePlugin, ServerSettings};
use crate::shutdown::ShutdownPlugin;
use crate::tools;
use crate::transport::{
    ClientCredentials, IssuedToken, ProtocolPlugin, TransportClientPlugin, TransportError,
    TransportServerPlugin,
};

/// Frame rate of a headless client's loop.
const HEADLESS_CLIENT_HZ: f64 = 60.0;

/// What the process around the App provides. Tests build many apps in one process, so they turn
/// both off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessOptions {
    /// Add Bevy's `LogPlugin` (at most once per process).
    pub log: bool,
    /// React to SIGINT/SIGTERM (the handler is installed by [`run`]).
    pub os_signals: bool,
}

impl ProcessOptions {
    /// The real binary.
    pub const PROCESS: Self = Self {
        log: true,
        os_signals: true,
    };
    /// Tests and embedding: no global logger, no signal handling.
    pub const EMBEDDED: Self = Self {
        log: false,
        os_signals: false,
    };
}

/// Why a mode could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A windowed mode was asked for where no X display can be reached.
    #[error("{0}")]
    NoDisplay(String),
    /// The network transport could not start (key, socket, token).
    #[error("{0}")]
    Transport(#[from] TransportError),
    /// The configuration is invalid (exit status 2).
    #[error("{0}")]
    Config(#[from] crate::config::LoadError),
    /// A setting could not be read from the configuration.
    #[error("{0}")]
    ConfigKey(#[from] crate::config::ConfigError),
    /// The data store could not open.
    #[error("{0}")]
    Store(#[from] crate::datastore::OpenError),
    /// Security settings or roles are invalid (exit status 2).
    #[error("{0}")]
    Security(#[from] crate::security::SecurityError),
    /// A client was started without a way to authenticate.
    #[error(
        "client needs --login HOST (the server's login service: register or log in there), or --token FILE (make one on the server with `bloxquarium token --player ID --name NAME --out FILE`), or --insecure-dev against an insecure server"
    )]
    NoToken,
    /// A tool subcommand failed.
    #[error("{0}")]
    Tool(String),
    /// A tool subcommand (`token`, `audit`, `datastore`, `assets`) failed.
    #[error(transparent)]
    ToolFailed(#[from] tools::ToolError),
    /// The app's remote messages cannot be honoured, or differ from what its transport speaks.
    #[error("{0}")]
    Protocol(String),
    /// The health and metrics endpoint could not open.
    #[error(transparent)]
    Metrics(#[from] crate::health::EndpointError),
    /// The login service could not start (certificate, key, port).
    #[error(transparent)]
    LoginService(#[from] crate::accounts::login::LoginStartError),
    /// Logging in at the login service failed.
    #[error("login: {0}")]
    Login(#[from] crate::accounts::login::LoginError),
    /// This binary was built without the `client` feature.
    #[error(
        "this binary was built without the `client` feature: only `server` and `--headless` clients are available"
    )]
    NoClientFeature,
}

impl StartError {
    /// The process exit status for this error: 2 for invalid configuration and for an admin
    /// command that got no answer, else 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            StartError::Config(_)
            | StartError::Security(_)
            | StartError::ToolFailed(tools::ToolError::Config(_))
            | StartError::ToolFailed(tools::ToolError::NoAnswer(_)) => 2,
            _ => 1,
        }
    }
}

/// Protocol, configuration core, health core and the shutdown phase: in every mode.
pub struct SharedPlugins {
    /// The mode, inserted as [`RunMode`].
    pub mode: RunMode,
    /// Working directories.
    pub paths: Paths,
    /// The shutdown phase's settings.
    pub shutdown: ShutdownPlugin,
}

impl PluginGroup for SharedPlugins {
    fn build(self) -> PluginGroupBuilder {
        PluginGroupBuilder::start::<Self>()
            .add(CorePlugin {
                mode: self.mode,
                paths: self.paths,
            })
            .add(self.shutdown)
    }
}

/// Inserts the [`RunMode`] and [`Paths`] resources.
struct CorePlugin {
    mode: RunMode,
    paths: Paths,
}

impl Plugin for CorePlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(self.mode)
            .insert_resource(self.paths.clone());
    }
}

/// The framework's authoritative half for game `G`: sessions, the security gate, configuration
/// (the framework's keys and the game's), persistence of the game's player data, health and
/// assets, speaking the framework's messages and the game's. Each plugin is built by its own
/// fallible constructor from the config and the paths; the group only assembles them. The game
/// adds its own server plugin beside it.
pub struct ServerPlugins<G: Game> {
    core: ServerCorePlugin,
    config: crate::config::ConfigServerPlugin,
    transport: TransportServerPlugin,
    datastore: crate::datastore::DataStorePlugin<G::Data>,
    security: crate::security::SecurityPlugin,
    reconcile: crate::reconcile::ReconcilePlugin,
    health: crate::health::HealthPlugin,
    assets: crate::assets::AssetsServerPlugin,
}

impl<G: Game> ServerPlugins<G> {
    /// Loads the config (refusing an invalid one), opens the socket, key and store, reads the
    /// security files and scans the assets: any failure stops start-up here.
    pub fn open(
        paths: &Paths,
        args: &ServerArgs,
        health: crate::health::HealthPlugin,
    ) -> Result<Self, StartError> {
        let config = crate::config::ConfigServerPlugin::load(paths, &G::KEYS)?;
        let max_clients = match args.max_clients {
            Some(n) => n,
            None => config
                .config
                .get::<u32>("network.maxConcurrentConnections")?,
        };
        let transport = TransportServerPlugin::open(
            &config.config,
            paths,
            (args.bind, &args.public_addr),
            max_clients as usize,
            args.insecure_dev,
            G::protocol_id(),
        )?;
        let datastore = crate::datastore::DataStorePlugin::open(&config.config, paths)?;
        let security = crate::security::SecurityPlugin::from_config(&config.config, paths)?;
        let reconcile = crate::reconcile::ReconcilePlugin::from_config(
            &config.config,
            crate::datastore::policy_of::<G::Data>(),
        )?;
        let assets = crate::assets::AssetsServerPlugin::from_config(&config.config, paths);
        Ok(Self {
            core: ServerCorePlugin {
                settings: ServerSettings {
                    bind: transport.local_addr(),
                    tick_hz: args.tick_hz,
                    max_clients,
                },
            },
            config,
            transport,
            datastore,
            security,
            reconcile,
            health,
            assets,
        })
    }

    /// The address the server bound.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.transport.local_addr()
    }

    /// The server's token issuer (`None` with `--insecure-dev`).
    pub fn issuer(&self) -> Option<&crate::transport::TokenIssuer> {
        self.transport.issuer()
    }
}

impl<G: Game> PluginGroup for ServerPlugins<G> {
    fn build(self) -> PluginGroupBuilder {
        PluginGroupBuilder::start::<Self>()
            .add(self.core)
            .add(self.transport)
            .add(ProtocolPlugin { game: G::protocol })
            .add(self.config)
            .add(crate::config_sync::ConfigSyncServerPlugin)
            .add(self.datastore)
            .add(crate::accounts::AccountsServerPlugin)
            .add(self.security)
            .add(self.reconcile)
            .add(self.health)
            .add(self.assets)
    }
}

/// The framework's client half for game `G`, with or without a window, speaking the framework's
/// messages and the game's. The game adds its own client plugin beside it.
pub struct ClientPlugins<G: Game> {
    game: std::marker::PhantomData<fn() -> G>,
    core: ClientCorePlugin,
    config: crate::config::ConfigClientPlugin,
    transport: TransportClientPlugin,
}

impl<G: Game> ClientPlugins<G> {
    /// Loads the client's config (the schema and the player's preferences) and opens its socket
    /// towards `server`.
    pub fn open(
        paths: &Paths,
        server: std::net::SocketAddr,
        credentials: ClientCredentials,
    ) -> Result<Self, StartError> {
        let config = crate::config::ConfigClientPlugin::load(paths, &G::KEYS)?;
        let transport =
            TransportClientPlugin::open(&config.config, server, credentials, G::protocol_id())?;
        Ok(Self {
            game: std::marker::PhantomData,
            core: ClientCorePlugin { server },
            config,
            transport,
        })
    }

    /// A client that dials once it is given a token (the login screen's `Redial`); `shown` is
    /// the address the status line names until then.
    pub fn deferred(paths: &Paths, shown: std::net::SocketAddr) -> Result<Self, StartError> {
        let config = crate::config::ConfigClientPlugin::load(paths, &G::KEYS)?;
        let transport = TransportClientPlugin::deferred(&config.config, G::protocol_id())?;
        Ok(Self {
            game: std::marker::PhantomData,
            core: ClientCorePlugin { server: shown },
            config,
            transport,
        })
    }
}

impl<G: Game> PluginGroup for ClientPlugins<G> {
    fn build(self) -> PluginGroupBuilder {
        PluginGroupBuilder::start::<Self>()
            .add(self.core)
            .add(self.transport)
            .add(ProtocolPlugin { game: G::protocol })
            .add(self.config)
            .add(crate::config_sync::ConfigSyncClientPlugin)
            .add(crate::assets::AssetsClientPlugin)
    }
}

/// Window, 3D scene and UI (cargo feature `client`).
#[cfg(feature = "client")]
pub struct ClientRenderPlugins {
    /// The screenshot smoke check's settings.
    pub screenshot: ScreenshotArgs,
}

#[cfg(feature = "client")]
impl PluginGroup for ClientRenderPlugins {
    fn build(self) -> PluginGroupBuilder {
        PluginGroupBuilder::start::<Self>()
            .add(crate::client::ScenePlugin)
            .add(crate::client::ShadingPlugin)
            .add(crate::client::AquariumPlugin)
            .add(crate::client::GameUiPlugin)
            .add(crate::client::StateDumpPlugin {
                path: self.screenshot.state_dump.clone(),
            })
            .add(crate::client::FishPlugin)
            .add(crate::client::TankEffectsPlugin)
            .add(crate::client::SoundPlugin)
            .add(crate::client::WindowClosePlugin)
            .add(crate::client::ScreenshotPlugin {
                path: self.screenshot.screenshot,
                after_frames: self.screenshot.screenshot_frames,
                bench_fish: self.screenshot.bench_fish,
            })
    }
}

fn shared(mode: RunMode, global: &GlobalArgs, process: ProcessOptions) -> SharedPlugins {
    SharedPlugins {
        mode,
        paths: global.paths(),
        shutdown: ShutdownPlugin {
            listen_to_os_signals: process.os_signals,
            exit_after: global.exit_after,
            ..default()
        },
    }
}

fn log_plugin(global: &GlobalArgs) -> LogPlugin {
    // Bevy builds its filter as "<level>,<filter>" and adds RUST_LOG's directives on top. A bare
    // level in `--log` becomes the plugin's level so that it is not shadowed by the default one.
    let mut level = bevy::log::Level::INFO;
    let mut directives = vec!["wgpu=error".to_string(), "naga=warn".to_string()];
    for part in global.log.iter().flat_map(|f| f.split(',')).map(str::trim) {
        match part.parse::<bevy::log::Level>() {
            Ok(bare) => level = bare,
            Err(_) if !part.is_empty() => directives.push(part.to_string()),
            Err(_) => {}
        }
    }
    LogPlugin {
        level,
        filter: directives.join(","),
        ..default()
    }
}

#[cfg(feature = "client")]
fn asset_plugin(global: &GlobalArgs) -> AssetPlugin {
    AssetPlugin {
        file_path: absolute(&global.assets).to_string_lossy().into_owned(),
        ..default()
    }
}

/// The headless base of `server` and of `--headless` clients: MinimalPlugins looping at `hz`,
/// log, states and assets.
fn headless_base(app: &mut App, global: &GlobalArgs, hz: f64, process: ProcessOptions) {
    let log = process.log.then(|| log_plugin(global));
    headless(app, &global.assets, hz, log);
}

/// What any headless app of a game on the framework (a dedicated server, a bot, a test) is built
/// on: MinimalPlugins looping at `hz` frames a second, Bevy's states, an asset server reading
/// `assets`, and `log` if given (at most one per process).
pub fn headless(app: &mut App, assets: &std::path::Path, hz: f64, log: Option<LogPlugin>) {
    app.add_plugins(
        MinimalPlugins.set(ScheduleRunnerPlugin::run_loop(Duration::from_secs_f64(
            1.0 / hz.max(1.0),
        ))),
    );
    if let Some(log) = log {
        app.add_plugins(log);
    }
    app.add_plugins((
        StatesPlugin,
        AssetPlugin {
            file_path: absolute(assets).to_string_lossy().into_owned(),
            ..default()
        },
    ));
}

/// The windowed base: DefaultPlugins with our window, shutdown instead of Bevy's exit paths.
#[cfg(feature = "client")]
fn windowed_base(app: &mut App, global: &GlobalArgs, title: &str, process: ProcessOptions) {
    use bevy::window::{ExitCondition, WindowPlugin};
    fewer_malloc_arenas();
    let mut plugins = DefaultPlugins
        .set(WindowPlugin {
            primary_window: Some(Window {
                title: title.to_string(),
                resolution: (1280, 720).into(),
                ..default()
            }),
            // Window close goes through the shutdown phase (see `WindowClosePlugin`).
            exit_condition: ExitCondition::DontExit,
            close_when_requested: false,
            ..default()
        })
        .set(asset_plugin(global))
        .disable::<bevy::app::TerminalCtrlCHandlerPlugin>();
    plugins = if process.log {
        plugins.set(log_plugin(global))
    } else {
        plugins.disable::<LogPlugin>()
    };
    app.add_plugins(plugins);
}

/// Caps glibc's malloc at two arenas, before the window's threads start. glibc gives threads
/// arenas of their own (up to eight per core), each keeping the memory its thread freed; the
/// client runs some twenty threads (Bevy's task pools, the renderer's, the software
/// rasterizer's, sound), and the cap keeps a few MiB of its resident memory (`play`, #20).
#[cfg(feature = "client")]
fn fewer_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a glibc malloc parameter; 2 is a valid M_ARENA_MAX.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// `bloxquarium server`: MinimalPlugins looping at the tick rate; no window, no renderer. The
/// socket is bound and the key loaded here, so a bad key or a busy port stops start-up.
pub fn server_app(
    global: &GlobalArgs,
    args: &ServerArgs,
    process: ProcessOptions,
) -> Result<App, StartError> {
    let server = ServerPlugins::<AquariumGame>::open(
        &global.paths(),
        args,
        crate::health::HealthPlugin::serving(args.metrics_bind)?,
    )?;
    let login = login_service(global, args, &server)?;
    let mut app = App::new();
    headless_base(&mut app, global, f64::from(args.tick_hz), process);
    app.add_plugins(shared(RunMode::Server, global, process))
        .add_plugins(server)
        .add_plugins(crate::game::GameServerPlugin);
    if let Some(login) = login {
        app.add_plugins(login);
    }
    check_integrations(&app)?;
    if !args.multi_threaded {
        run_tick_on_one_thread(&mut app);
    }
    // Ticks at the tick rate, and answers calls between ticks as they arrive (the headless
    // base's runner only ticks).
    if !args.calls_at_ticks_only {
        app.set_runner(crate::transport::runner::tick_runner);
    }
    Ok(app)
}

/// The dedicated server's login service (none with `--insecure-dev`, which issues no tokens).
fn login_service<G: Game>(
    global: &GlobalArgs,
    args: &ServerArgs,
    server: &ServerPlugins<G>,
) -> Result<Option<crate::accounts::LoginServicePlugin>, StartError> {
    let Some(issuer) = server.issuer() else {
        return Ok(None);
    };
    let mut names: Vec<String> = issuer
        .addresses()
        .iter()
        .map(|a| a.ip().to_string())
        .collect();
    if !args.login_bind.ip().is_unspecified() {
        names.push(args.login_bind.ip().to_string());
    }
    names.dedup();
    let options = crate::accounts::LoginOptions {
        bind: args.login_bind,
        keys_dir: global.paths().keys,
        cert: args.tls_cert.clone().zip(args.tls_key.clone()),
        names,
    };
    let opened = crate::accounts::OpenedLogin::open(&options)?;
    Ok(Some(crate::accounts::LoginServicePlugin::new(opened)))
}

/// Runs every schedule's systems one after another on the main thread. A dedicated server's
/// systems are small and mostly ordered one after another (receive, handle, send), so handing each
/// to a worker thread cost more in wake-ups and hand-offs than it won: with 256 clients on the
/// 2-core machine, the tick's p50 and p99 were about 10% lower on one thread (the load test, runs
/// alternated). Background work (saves, backups) still runs on the I/O task pool's threads.
fn run_tick_on_one_thread(app: &mut App) {
    let mut schedules = app
        .world_mut()
        .resource_mut::<bevy::ecs::schedule::Schedules>();
    for (_, schedule) in schedules.iter_mut() {
        schedule.set_executor(bevy::ecs::schedule::SingleThreadedExecutor::new());
    }
}

/// Every registered plugin's dependencies are there, and the app's remote messages are the ones
/// its transport speaks.
pub fn check_integrations(app: &App) -> Result<(), StartError> {
    crate::transport::check_protocol(app.world()).map_err(StartError::Protocol)?;
    match app
        .world()
        .get_resource::<crate::integration::IntegrationRegistry>()
    {
        Some(r) => r.validate().map_err(|e| StartError::Tool(e.to_string())),
        None => Ok(()),
    }
}

/// `bloxquarium client`: a window (DefaultPlugins), or the headless set with `--headless`.
pub fn client_app(
    global: &GlobalArgs,
    args: &ClientArgs,
    process: ProcessOptions,
) -> Result<App, StartError> {
    use crate::accounts::login::{LoginClient, ReconnectPlugin};
    let mut reconnect = None;
    // A window asked to log in with no account named shows the login screen, and dials only
    // once the player has logged in there.
    let mut screen = None;
    let start = if let Some(target) = &args.login {
        let (dialled, client) = if args.user.is_none() && !args.headless {
            let client =
                LoginClient::new(target, &client_dir(global), args.server_cert.as_deref())?;
            screen = Some(client.clone());
            (None, client)
        } else {
            let (token, client) = log_in(global, args, target)?;
            let server = token.dial(args.server).map_err(TransportError::from)?;
            (
                Some((ClientCredentials::Token(Box::new(token)), server)),
                client,
            )
        };
        reconnect = Some(ReconnectPlugin {
            client,
            asked: args.server,
            exit_on_giving_up: args.headless,
        });
        dialled
    } else if let Some(path) = &args.token {
        let token = IssuedToken::read_file(path).map_err(TransportError::from)?;
        // netcode dials the token's addresses: a --server it does not name is refused here
        // rather than silently ignored.
        let server = token.dial(args.server).map_err(TransportError::from)?;
        Some((ClientCredentials::Token(Box::new(token)), server))
    } else if args.insecure_dev {
        let credentials = ClientCredentials::Insecure {
            player_id: args.player,
            display_name: format!("dev-{}", args.player),
        };
        Some((
            credentials,
            args.server.unwrap_or_else(crate::cli::default_bind),
        ))
    } else {
        return Err(StartError::NoToken);
    };
    let mut app = App::new();
    crate::assets::install_verifying_source(&mut app, &absolute(&global.assets));
    if args.headless {
        headless_base(&mut app, global, HEADLESS_CLIENT_HZ, process);
    } else {
        windowed(&mut app, global, "Bloxquarium", process, &args.screenshot)?;
    }
    let client = match start {
        Some((credentials, server)) => {
            ClientPlugins::<AquariumGame>::open(&global.paths(), server, credentials)?
        }
        None => ClientPlugins::<AquariumGame>::deferred(
            &global.paths(),
            screen
                .as_ref()
                .map_or_else(crate::cli::default_bind, LoginClient::addr),
        )?,
    };
    app.add_plugins(shared(RunMode::Client, global, process))
        .add_plugins(client)
        .add_plugins(crate::game::GameClientPlugin);
    if let Some(reconnect) = reconnect {
        app.add_plugins(reconnect);
    }
    if let Some(client) = screen {
        login_screen(&mut app, client, args.server);
    }
    if !args.then.is_empty() {
        app.insert_resource(crate::game::ScriptedOps::new(args.then.clone()));
    }
    if args.trade.is_some() || args.accept_trades {
        app.insert_resource(crate::game::TradeScript::new(
            args.trade,
            args.accept_trades,
        ));
    }
    check_integrations(&app)?;
    Ok(app)
}

#[cfg(feature = "client")]
fn login_screen(
    app: &mut App,
    client: crate::accounts::login::LoginClient,
    asked: Option<std::net::SocketAddr>,
) {
    app.add_plugins(crate::client::LoginScreenPlugin { client, asked });
}

#[cfg(not(feature = "client"))]
fn login_screen(
    _app: &mut App,
    _client: crate::accounts::login::LoginClient,
    _asked: Option<std::net::SocketAddr>,
) {
    // Unreachable: a windowed client fails to start without the `client` feature.
}

/// Logs in at the login service with `--user` and `--password-file` (registering first with
/// `--register`); the connect token it grants, and the service's client (to log in again after a
/// lost link).
fn log_in(
    global: &GlobalArgs,
    args: &ClientArgs,
    target: &str,
) -> Result<(IssuedToken, crate::accounts::login::LoginClient), StartError> {
    use crate::accounts::login::{Credentials, LoginClient, client::token_of};
    let (Some(user), Some(password_file)) = (&args.user, &args.password_file) else {
        return Err(StartError::Tool(
            "a headless client logs in with --user NAME and --password-file FILE (a window asks on its login screen)"
                .into(),
        ));
    };
    let password = std::fs::read_to_string(password_file).map_err(|e| {
        StartError::Tool(format!("--password-file {}: {e}", password_file.display()))
    })?;
    let credentials = Credentials {
        username: user.clone(),
        password: password.lines().next().unwrap_or_default().to_string(),
        friend: args.friend.clone(),
    };
    let client = LoginClient::new(target, &client_dir(global), args.server_cert.as_deref())?;
    let grant = if args.register {
        client.register(&credentials)?
    } else {
        client.log_in(&credentials)?
    };
    info!(
        "logged in at {} as {} (player {}); joining {}",
        client.host(),
        grant.username,
        grant.player_id,
        grant.server
    );
    client.save_refresh(&grant)?;
    Ok((token_of(&grant)?, client))
}

/// The client's own directory: the login service's known-hosts file and refresh tokens.
pub fn client_dir(global: &GlobalArgs) -> std::path::PathBuf {
    global.paths().data.join("client")
}

/// The local player of `play` mode.
pub const PLAY_PLAYER_ID: u64 = 1;

/// `bloxquarium play`: server and client sets in one App; the client joins over loopback with a
/// token issued in-process.
pub fn play_app(
    global: &GlobalArgs,
    args: &PlayArgs,
    process: ProcessOptions,
) -> Result<App, StartError> {
    let mut app = App::new();
    crate::assets::install_verifying_source(&mut app, &absolute(&global.assets));
    if args.headless {
        headless_base(&mut app, global, f64::from(args.server.tick_hz), process);
    } else {
        windowed(&mut app, global, "Bloxquarium", process, &args.screenshot)?;
    }
    let paths = global.paths();
    let server = ServerPlugins::<AquariumGame>::open(
        &paths,
        &args.server,
        crate::health::HealthPlugin::default(),
    )?;
    let mut target = server.local_addr();
    if target.ip().is_unspecified() {
        target.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let credentials = match server.issuer() {
        Some(issuer) => ClientCredentials::Token(Box::new(
            issuer
                .issue(PLAY_PLAYER_ID, "Player")
                .map_err(TransportError::from)?,
        )),
        None => ClientCredentials::Insecure {
            player_id: PLAY_PLAYER_ID,
            display_name: "Player".to_string(),
        },
    };
    let client = ClientPlugins::<AquariumGame>::open(&paths, target, credentials)?;
    app.add_plugins(shared(RunMode::Play, global, process))
        .add_plugins(server)
        .add_plugins(client)
        .add_plugins((crate::game::GameServerPlugin, crate::game::GameClientPlugin));
    check_integrations(&app)?;
    Ok(app)
}

#[cfg(feature = "client")]
fn windowed(
    app: &mut App,
    global: &GlobalArgs,
    title: &str,
    process: ProcessOptions,
    screenshot: &ScreenshotArgs,
) -> Result<(), StartError> {
    crate::client::probe_x_display().map_err(StartError::NoDisplay)?;
    windowed_base(app, global, title, process);
    app.add_plugins(ClientRenderPlugins {
        screenshot: screenshot.clone(),
    });
    Ok(())
}

#[cfg(not(feature = "client"))]
fn windowed(
    _app: &mut App,
    _global: &GlobalArgs,
    _title: &str,
    _process: ProcessOptions,
    _screenshot: &ScreenshotArgs,
) -> Result<(), StartError> {
    Err(StartError::NoClientFeature)
}

#[cfg(feature = "client")]
fn frame_baseline(frames: u32) -> Result<App, StartError> {
    crate::client::probe_x_display().map_err(StartError::NoDisplay)?;
    Ok(crate::client::frame_baseline(frames))
}

#[cfg(not(feature = "client"))]
fn frame_baseline(_frames: u32) -> Result<App, StartError> {
    Err(StartError::NoClientFeature)
}

/// How a run ended.
#[derive(Debug)]
pub enum Finished {
    /// An App ran and exited.
    App(AppExit),
    /// A tool subcommand finished; print this to stdout.
    Report(String),
}

/// Builds the App for the parsed command line and runs it to the end.
pub fn run(cli: &Cli) -> Result<Finished, StartError> {
    let process = ProcessOptions::PROCESS;
    // A bad store URL (a password in it, a typo) is refused before anything else happens.
    if let Some(url) = &cli.global.store {
        crate::datastore::check_store_url(url)
            .map_err(|e| StartError::Store(crate::datastore::OpenError::Backend(e)))?;
    }
    let mut app = match cli.mode() {
        Command::Server(args) => server_app(&cli.global, &args, process)?,
        Command::Client(args) => client_app(&cli.global, &args, process)?,
        Command::Play(args) => play_app(&cli.global, &args, process)?,
        Command::Token(args) => {
            return Ok(Finished::Report(tools::write_token(&cli.global, &args)?));
        }
        Command::Audit(args) => {
            return Ok(Finished::Report(tools::audit_report(&cli.global, &args)?));
        }
        Command::Admin(args) => {
            return Ok(Finished::Report(tools::run_admin(&cli.global, &args)?));
        }
        Command::Servers => {
            return Ok(Finished::Report(tools::list_servers(&cli.global)?));
        }
        Command::Datastore { action } => {
            return Ok(Finished::Report(tools::run_datastore(
                &cli.global,
                &action,
            )?));
        }
        Command::Assets { action } => {
            return Ok(Finished::Report(tools::run_assets(&cli.global, &action)?));
        }
        Command::FrameBaseline(args) => frame_baseline(args.frames)?,
        Command::Loadtest(args) => {
            return crate::loadtest::run(&cli.global, &args)
                .map(Finished::Report)
                .map_err(StartError::Tool);
        }
    };
    if let Err(e) = crate::shutdown::install_os_signal_handler() {
        warn!(
            "could not install the SIGINT/SIGTERM handler ({e}); signals will not shut down gracefully"
        );
    }
    Ok(Finished::App(app.run()))
}
