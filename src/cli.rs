//! The command line: one binary, three modes.
//!
//! Every flag can also come from an environment variable `BLOXQUARIUM_<FLAG>` (upper case, `-` as
//! `_`). A flag given on the command line wins over its variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::protocol::PROTOCOL_VERSION;

/// Default UDP address of the server.
pub const DEFAULT_BIND: &str = "127.0.0.1:5000";

/// [`DEFAULT_BIND`] as an address.
pub fn default_bind() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 5000))
}
/// Where a dedicated server serves `/health` and `/metrics` unless told otherwise (loopback).
pub const DEFAULT_METRICS_BIND: &str = "127.0.0.1:9464";
/// Where a dedicated server's login service listens unless told.
pub const DEFAULT_LOGIN_BIND: &str = "127.0.0.1:5001";
/// Default server tick rate in Hz.
pub const DEFAULT_TICK_HZ: u32 = 30;
/// renetcode's hard cap on clients per server.
pub const MAX_CLIENTS_LIMIT: u32 = 1024;

/// `bloxquarium [play|server|client]`: an aquarium game, its dedicated server, or both in one process.
#[derive(Debug, Clone, Parser)]
#[command(name = "bloxquarium", about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to run; `play` when none is given.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Flags that every mode takes.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Directory of the RON configuration files.
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        env = "BLOXQUARIUM_CONFIG",
        default_value = "./config"
    )]
    pub config: PathBuf,
    /// Directory for the database, backups and key files (created on first run).
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        env = "BLOXQUARIUM_DATA",
        default_value = "./data"
    )]
    pub data: PathBuf,
    /// Directory of the game's assets.
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        env = "BLOXQUARIUM_ASSETS",
        default_value = "./assets"
    )]
    pub assets: PathBuf,
    /// Log filter, `tracing` syntax (`info`, `bloxquarium=debug,wgpu=warn`). Without it RUST_LOG is
    /// used, then `info`.
    #[arg(long, global = true, value_name = "FILTER", env = "BLOXQUARIUM_LOG", value_parser = parse_log_filter)]
    pub log: Option<String>,
    /// The data store shared by many servers: `postgres://USER@HOST[:PORT]/DATABASE` (add
    /// `?sslmode=require` for TLS, verified against PGSSLROOTCERT). The password comes from
    /// PGPASSWORD or a PGPASSFILE, never from here. Without it: the embedded file under --data.
    #[arg(long, global = true, value_name = "URL", env = "BLOXQUARIUM_STORE")]
    pub store: Option<String>,
    /// Directory of the key files (netcode, data, login), created on first run; servers on one
    /// --store must share it (a copy of the same files). Default: <data>/keys.
    #[arg(long, global = true, value_name = "DIR", env = "BLOXQUARIUM_KEYS")]
    pub keys: Option<PathBuf>,
    /// Shut down gracefully after this many seconds (scripted runs).
    #[arg(long, global = true, value_name = "SECONDS", env = "BLOXQUARIUM_EXIT_AFTER", value_parser = parse_seconds, allow_negative_numbers = true)]
    pub exit_after: Option<Duration>,
}

impl GlobalArgs {
    /// The working directories these flags name, made absolute.
    pub fn paths(&self) -> crate::process::Paths {
        crate::process::Paths::new(&self.config, &self.data, &self.assets)
            .with_store(self.store.clone())
            .with_keys(self.keys.as_deref())
    }
}

/// The three modes.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Listen server and its own client in one process (the default).
    Play(PlayArgs),
    /// Dedicated headless server.
    Server(ServerArgs),
    /// Client that joins a server.
    Client(ClientArgs),
    /// Write a connect token file for a player, signed with this server's netcode key (from
    /// --keys, default <data>/keys).
    Token(TokenArgs),
    /// Run many headless clients against a running server and report throughput and latency.
    Loadtest(LoadtestArgs),
    /// Bevy's own `3d_scene` in a 1280x720 window, logging its frame times: the baseline of
    /// scripts/frame-bench.sh.
    #[command(hide = true)]
    FrameBaseline(FrameBaselineArgs),
    /// Query the audit log in <data>/audit.jsonl.
    Audit(AuditArgs),
    /// Admin commands to a running server, as an admin player (a token file of theirs).
    Admin(AdminArgs),
    /// The servers sharing this --store (PostgreSQL): id, address, players, last heartbeat.
    Servers,
    /// Data store maintenance (the embedded file: with the server stopped; with --store, while
    /// servers run).
    Datastore {
        /// What to do.
        #[command(subcommand)]
        action: DatastoreCommand,
    },
    /// The game's assets.
    Assets {
        /// What to do.
        #[command(subcommand)]
        action: AssetsCommand,
    },
}

/// Flags of `frame-baseline`.
#[derive(Debug, Clone, Args)]
pub struct FrameBaselineArgs {
    /// Frames to run; the frame times of the second half are logged, then it exits.
    #[arg(long, value_name = "N", default_value_t = 120)]
    pub frames: u32,
}

/// `assets` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum AssetsCommand {
    /// Write the generated asset tree into --assets (deterministic: the same bytes every run).
    Generate,
    /// Scan --assets and print the manifest (path, category, type, size, sha256, qualities,
    /// priority).
    Manifest,
}

/// Flags of `audit`.
#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    /// Only this player.
    #[arg(long, value_name = "ID", env = "BLOXQUARIUM_PLAYER")]
    pub player: Option<u64>,
    /// Only this kind.
    #[arg(long, value_name = "K", env = "BLOXQUARIUM_KIND")]
    pub kind: Option<crate::security::AuditKind>,
    /// Only records from the last T (e.g. 30m, 2h, 90s).
    #[arg(long, value_name = "T", env = "BLOXQUARIUM_SINCE", value_parser = parse_ago)]
    pub since: Option<Duration>,
    /// One JSON object a line.
    #[arg(long, env = "BLOXQUARIUM_JSON")]
    pub json: bool,
}

fn parse_ago(s: &str) -> Result<Duration, String> {
    crate::config::parse_duration(s)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("'{s}' is not a duration (e.g. 30m, 2h, 90s)"))
}

/// `bloxquarium datastore ...`
#[derive(Debug, Clone, Subcommand)]
pub enum DatastoreCommand {
    /// Write a consistent backup to <data>/backups (keeps `datastore.backupRetention`).
    Backup,
    /// List the backups with their sizes.
    ListBackups,
    /// Check a backup's sha256, integrity and origin.
    Verify {
        /// The backup file.
        file: PathBuf,
    },
    /// Replace the store with a verified backup (the current file is kept aside).
    Restore {
        /// The backup file.
        file: PathBuf,
    },
    /// List a player's saved versions.
    Versions {
        /// The player.
        #[arg(long, value_name = "ID", env = "BLOXQUARIUM_PLAYER")]
        player: u64,
    },
    /// Print a player's profile as JSON (the current one, or --version V).
    Show {
        /// The player.
        #[arg(long, value_name = "ID", env = "BLOXQUARIUM_PLAYER")]
        player: u64,
        /// A stored version.
        #[arg(long, value_name = "V", env = "BLOXQUARIUM_VERSION")]
        version: Option<u64>,
    },
    /// Make an old version current again.
    RestoreVersion {
        /// The player.
        #[arg(long, value_name = "ID", env = "BLOXQUARIUM_PLAYER")]
        player: u64,
        /// The version.
        #[arg(long, value_name = "V", env = "BLOXQUARIUM_VERSION")]
        version: u64,
    },
    /// Remove a player's profile, versions and offline messages (audited).
    Erase {
        /// The player.
        #[arg(long, value_name = "ID", env = "BLOXQUARIUM_PLAYER")]
        player: u64,
    },
    /// Save a profile in a loop, printing each acknowledged version (crash-safety tests).
    #[command(hide = true)]
    Soak {
        /// The player.
        #[arg(long, value_name = "ID", env = "BLOXQUARIUM_PLAYER")]
        player: u64,
    },
}

/// Flags of `admin`.
#[derive(Debug, Clone, Args)]
pub struct AdminArgs {
    /// Token file of a player whose role grants the command (from `bloxquarium token`; netcode
    /// takes a token from one address only, so a file serves one command).
    #[arg(
        long,
        value_name = "FILE",
        env = "BLOXQUARIUM_TOKEN",
        required_unless_present = "as_player"
    )]
    pub token: Option<PathBuf>,
    /// On the server's host: act as this player, with a token made from the server's key in
    /// --data (make a player admin in <data>/roles.json before the server starts, or with
    /// `admin role`).
    #[arg(long = "as", value_name = "ID", env = "BLOXQUARIUM_AS", conflicts_with = "token",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub as_player: Option<u64>,
    /// The server (with --token: one the token names) [default: the token's first address, or
    /// 127.0.0.1:5000 with --as].
    #[arg(long, value_name = "ADDR", env = "BLOXQUARIUM_SERVER")]
    pub server: Option<SocketAddr>,
    /// Print the answer as one JSON object.
    #[arg(long, env = "BLOXQUARIUM_JSON")]
    pub json: bool,
    /// Seconds to wait for the connection, and then for the answer.
    #[arg(long, value_name = "SECONDS", env = "BLOXQUARIUM_WAIT", default_value = "10", value_parser = parse_seconds)]
    pub wait: Duration,
    /// The command.
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// The admin commands (each needs its permission: `admin.kick`, `admin.ban`, `admin.grant`,
/// `admin.accounts`,
/// `admin.role`, `admin.config.reload`, `admin.stats`, `admin.health`, `admin.reconcile`,
/// `admin.drain`).
#[derive(Debug, Clone, Subcommand)]
pub enum AdminCommand {
    /// End a player's session.
    Kick {
        /// The player.
        player: u64,
        /// Shown to the player and audited.
        #[arg(long, default_value = "kicked by an operator")]
        reason: String,
    },
    /// Ban a player for a time and end their session.
    Ban {
        /// The player.
        player: u64,
        /// How long (e.g. 30m, 2h, 7d).
        #[arg(long = "for", value_name = "T", value_parser = parse_ago)]
        length: Duration,
        /// Shown to the player and audited.
        #[arg(long, default_value = "banned by an operator")]
        reason: String,
    },
    /// Lift a ban.
    Unban {
        /// The player.
        player: u64,
    },
    /// Give coins to a player (negative: take them); an offline player gets them at the next join.
    Grant {
        /// The player.
        player: u64,
        /// Coins.
        #[arg(allow_negative_numbers = true)]
        amount: i64,
    },
    /// Reverse a committed trade between two players (both offline; one in play on this server is
    /// sent off first): what can still be returned is returned, the rest paid at shop price.
    ReverseTrade {
        /// The trade's id (in the audit log's `Trade` record).
        trade: u64,
        /// One player of the trade.
        a: u64,
        /// The other.
        b: u64,
    },
    /// Assign a role from roles.ron.
    Role {
        /// The player.
        player: u64,
        /// The role.
        role: String,
    },
    /// Disable an account: its player is kicked and refused at login.
    Disable {
        /// The account's username.
        username: String,
    },
    /// Enable a disabled account again.
    Enable {
        /// The account's username.
        username: String,
    },
    /// Reload the config dir now.
    Reload,
    /// Security figures.
    Stats,
    /// Run every health check now (exit status 1 when a check is unhealthy).
    Health,
    /// Conflicts waiting for a person.
    Conflicts,
    /// On a shared store: send every player of this server to the other live servers, then
    /// stop this one.
    Drain,
    /// Settle a waiting conflict by taking one side.
    Resolve {
        /// Its id (from `conflicts`).
        id: u64,
        /// The server's in-memory side.
        #[arg(long, conflicts_with = "theirs", required_unless_present = "theirs")]
        ours: bool,
        /// The stored side.
        #[arg(long)]
        theirs: bool,
    },
}

/// Flags of `token`.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// The player's id (non-zero).
    #[arg(long, value_name = "ID", env = "BLOXQUARIUM_PLAYER", value_parser = clap::value_parser!(u64).range(1..))]
    pub player: u64,
    /// The player's display name (1 to 64 bytes).
    #[arg(long, value_name = "NAME", env = "BLOXQUARIUM_NAME")]
    pub name: String,
    /// Where to write the token file (mode 0600).
    #[arg(long, value_name = "FILE", env = "BLOXQUARIUM_OUT")]
    pub out: PathBuf,
    /// The server address the token is for.
    #[arg(long, value_name = "ADDR", env = "BLOXQUARIUM_SERVER", default_value = DEFAULT_BIND)]
    pub server: SocketAddr,
}

/// Flags of `loadtest`.
#[derive(Debug, Clone, Args)]
pub struct LoadtestArgs {
    /// The running server (its netcode key is read from --keys to issue the clients' tokens).
    #[arg(long, value_name = "ADDR", env = "BLOXQUARIUM_SERVER", default_value = DEFAULT_BIND)]
    pub server: SocketAddr,
    /// Number of clients.
    #[arg(long, value_name = "N", env = "BLOXQUARIUM_CLIENTS", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..=MAX_CLIENTS_LIMIT as i64), allow_negative_numbers = true)]
    pub clients: u32,
    /// Seconds of load after every client connected (or gave up).
    #[arg(long, value_name = "SECONDS", env = "BLOXQUARIUM_DURATION", default_value = "10", value_parser = parse_seconds, allow_negative_numbers = true)]
    pub duration: Duration,
    /// Messages per second per client.
    #[arg(long, value_name = "R", env = "BLOXQUARIUM_RATE", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..=10_000), allow_negative_numbers = true)]
    pub rate: u32,
    /// Print one JSON object on the last line.
    #[arg(long, env = "BLOXQUARIUM_JSON")]
    pub json: bool,
    /// Share of datagrams each bot's link drops, each way (e.g. 5%).
    #[arg(long, value_name = "SHARE", value_parser = crate::transport::faults::parse_share)]
    pub loss: Option<f64>,
    /// Delay each bot's link adds, each way, with optional jitter (e.g. 60ms±20ms or 60ms+-20ms).
    #[arg(long, value_name = "D[±J]", value_parser = crate::transport::faults::parse_delay)]
    pub delay: Option<(Duration, Duration)>,
    /// Share of datagrams sent twice (e.g. 1%).
    #[arg(long, value_name = "SHARE", value_parser = crate::transport::faults::parse_share)]
    pub duplicate: Option<f64>,
    /// Share of datagrams held back so later ones overtake them (e.g. 1%).
    #[arg(long, value_name = "SHARE", value_parser = crate::transport::faults::parse_share)]
    pub reorder: Option<f64>,
    /// Share of datagrams cut short (e.g. 0.5%).
    #[arg(long, value_name = "SHARE", value_parser = crate::transport::faults::parse_share)]
    pub truncate: Option<f64>,
    /// Also log in at this login service during the load (`HOST[:PORT]`), as one load-test
    /// account, at --login-rate.
    #[arg(long, value_name = "HOST[:PORT]")]
    pub login: Option<String>,
    /// Logins per second with --login (more than the service can do measures what it can).
    #[arg(long, value_name = "R", default_value_t = 20.0)]
    pub login_rate: f64,
    /// Calls wait for the bots' send pacer like any message (as before calls were sent at
    /// once): for measuring the difference side by side.
    #[arg(long, hide = true)]
    pub paced_calls: bool,
    /// The bots' player ids start here (several load generators against servers on one store
    /// need ranges of their own).
    #[arg(long, value_name = "ID", default_value_t = 1_000_000_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub first_player: u64,
    /// Each bot buys a fish (the game's cheapest) when the load begins: its income then
    /// changes its profile every second, so auto-saves write it (the data store under load).
    #[arg(long)]
    pub buy_fish: bool,
}

impl LoadtestArgs {
    /// The faults asked for (none by default).
    pub fn faults(&self) -> crate::transport::faults::Faults {
        let (delay, jitter) = self.delay.unwrap_or_default();
        crate::transport::faults::Faults {
            loss: self.loss.unwrap_or(0.0),
            delay,
            jitter,
            duplicate: self.duplicate.unwrap_or(0.0),
            reorder: self.reorder.unwrap_or(0.0),
            truncate: self.truncate.unwrap_or(0.0),
        }
    }
}

/// Flags of the server side.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// UDP address the server listens on.
    #[arg(long, value_name = "ADDR", env = "BLOXQUARIUM_BIND", default_value = DEFAULT_BIND)]
    pub bind: SocketAddr,
    /// The address players reach this server at, put in connect tokens and checked by netcode
    /// (an IP and a port; repeatable). Needed when --bind is 0.0.0.0 or ::, and behind NAT or a
    /// load balancer [default: the --bind address].
    #[arg(
        long = "public-addr",
        value_name = "IP:PORT",
        env = "BLOXQUARIUM_PUBLIC_ADDR",
        value_delimiter = ','
    )]
    pub public_addr: Vec<SocketAddr>,
    /// Server ticks per second.
    #[arg(long, value_name = "N", env = "BLOXQUARIUM_TICK_HZ", default_value_t = DEFAULT_TICK_HZ,
          value_parser = clap::value_parser!(u32).range(1..=1000), allow_negative_numbers = true)]
    pub tick_hz: u32,
    /// Most clients connected at once [default: config `network.maxConcurrentConnections`].
    #[arg(long, value_name = "N", env = "BLOXQUARIUM_MAX_CLIENTS",
          value_parser = clap::value_parser!(u32).range(1..=MAX_CLIENTS_LIMIT as i64), allow_negative_numbers = true)]
    pub max_clients: Option<u32>,
    /// Accept clients without token authentication. Development only; logs a warning at start.
    #[arg(long, env = "BLOXQUARIUM_INSECURE_DEV")]
    pub insecure_dev: bool,
    /// TCP address of the HTTP health and metrics endpoint (`/health`, `/metrics`) of a
    /// dedicated server (port 0: any free port, logged at start).
    #[arg(long, value_name = "ADDR", env = "BLOXQUARIUM_METRICS_BIND", default_value = DEFAULT_METRICS_BIND)]
    pub metrics_bind: SocketAddr,
    /// TCP address of the HTTPS login service of a dedicated server (register, log in; port 0:
    /// any free port, logged at start). To let players on other hosts log in, bind a public
    /// address or 0.0.0.0.
    #[arg(long, value_name = "ADDR", env = "BLOXQUARIUM_LOGIN_BIND", default_value = DEFAULT_LOGIN_BIND)]
    pub login_bind: SocketAddr,
    /// The login service's certificate chain (PEM) [default: a self-signed one made at first
    /// start under <data>/keys, which clients pin on first use]. Give --tls-key with it.
    #[arg(
        long,
        value_name = "FILE",
        env = "BLOXQUARIUM_TLS_CERT",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The login service's private key (PEM), with --tls-cert.
    #[arg(
        long,
        value_name = "FILE",
        env = "BLOXQUARIUM_TLS_KEY",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// Run the tick's systems on Bevy's multi-threaded executor instead of one after another on
    /// the main thread (the default: cheaper for this server's many small systems).
    #[arg(long, env = "BLOXQUARIUM_MULTI_THREADED")]
    pub multi_threaded: bool,
    /// Answer calls only in ticks: sleep between them instead of answering calls as they
    /// arrive (for side-by-side measurements of the load test).
    #[arg(long, hide = true)]
    pub calls_at_ticks_only: bool,
}

impl Default for ServerArgs {
    fn default() -> Self {
        Self {
            bind: default_bind(),
            tick_hz: DEFAULT_TICK_HZ,
            max_clients: None,
            insecure_dev: false,
            metrics_bind: SocketAddr::from(([127, 0, 0, 1], 9464)),
            login_bind: SocketAddr::from(([127, 0, 0, 1], 5001)),
            tls_cert: None,
            tls_key: None,
            multi_threaded: false,
            calls_at_ticks_only: false,
            public_addr: Vec::new(),
        }
    }
}

/// Flags of the client side.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// Server address to join (with --token: one the token names) [default: the token's first
    /// address, or 127.0.0.1:5000 with --insecure-dev].
    #[arg(long, value_name = "ADDR", env = "BLOXQUARIUM_SERVER")]
    pub server: Option<SocketAddr>,
    /// Run the same client logic without a window (bots, load tests, CI).
    #[arg(long, env = "BLOXQUARIUM_HEADLESS")]
    pub headless: bool,
    /// Token file from `bloxquarium token` (bots, tests; players use --login).
    #[arg(
        long,
        value_name = "FILE",
        env = "BLOXQUARIUM_TOKEN",
        conflicts_with = "login"
    )]
    pub token: Option<PathBuf>,
    /// Log in at this login service (`HOST[:PORT]`, port 5001 by default) and join the game
    /// server it names.
    #[arg(long, value_name = "HOST[:PORT]", env = "BLOXQUARIUM_LOGIN")]
    pub login: Option<String>,
    /// The username to log in with (with --password-file; without them the window asks).
    #[arg(
        long,
        value_name = "NAME",
        env = "BLOXQUARIUM_USER",
        requires = "login"
    )]
    pub user: Option<String>,
    /// With --login: play on the server this friend (a username) plays on, when servers share
    /// a store and it has room.
    #[arg(long, value_name = "NAME", requires = "login")]
    pub friend: Option<String>,
    /// A file holding the password (its first line).
    #[arg(
        long,
        value_name = "FILE",
        env = "BLOXQUARIUM_PASSWORD_FILE",
        requires = "user"
    )]
    pub password_file: Option<PathBuf>,
    /// Register the account first.
    #[arg(long, requires = "password_file")]
    pub register: bool,
    /// Game operations to perform once in game, in order (scripted checks, bots):
    /// `buy-fish:SPECIES`, `buy-decoration:KIND`, `upgrade-tank`, `feed`. The tank is logged on
    /// joining and once they are acknowledged.
    #[arg(long, value_name = "OP", value_delimiter = ',', value_parser = parse_op)]
    pub then: Vec<crate::game::GameOp>,
    /// Once in game (after `--then`), offer player PLAYER this player's newest fish for COINS
    /// of theirs, and confirm it when they accept (scripted checks, bots).
    #[arg(long, value_name = "PLAYER:COINS", value_parser = parse_trade)]
    pub trade: Option<(u64, i64)>,
    /// Accept and confirm every trade another player offers (scripted checks, bots).
    #[arg(long)]
    pub accept_trades: bool,
    /// Pin the login service's certificate (PEM) instead of trusting it on first use.
    #[arg(
        long,
        value_name = "FILE",
        env = "BLOXQUARIUM_SERVER_CERT",
        requires = "login"
    )]
    pub server_cert: Option<PathBuf>,
    /// Connect without a token to a server started with --insecure-dev. Development only.
    #[arg(long, env = "BLOXQUARIUM_INSECURE_DEV")]
    pub insecure_dev: bool,
    /// Player id to claim with --insecure-dev.
    #[arg(long, value_name = "ID", env = "BLOXQUARIUM_PLAYER", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub player: u64,
    #[command(flatten)]
    pub screenshot: ScreenshotArgs,
}

fn parse_trade(text: &str) -> Result<(u64, i64), String> {
    let bad = || format!("{text:?}: expected PLAYER:COINS, such as 2:30");
    let (player, coins) = text.split_once(':').ok_or_else(bad)?;
    let player = player.parse::<u64>().map_err(|_| bad())?;
    let coins = coins.parse::<i64>().map_err(|_| bad())?;
    if player == 0 || !(0..=crate::game::protocol::MAX_GIFT).contains(&coins) {
        return Err(bad());
    }
    Ok((player, coins))
}

fn parse_op(text: &str) -> Result<crate::game::GameOp, String> {
    use crate::game::GameOp;
    use crate::game::protocol::ShopItem;
    let index = |n: &str| {
        n.parse::<u8>()
            .map_err(|_| format!("{text:?}: {n:?} is not a number from 0 to 255"))
    };
    let item = match text.split_once(':') {
        Some(("buy-fish", n)) => ShopItem::Fish { species: index(n)? },
        Some(("buy-decoration", n)) => ShopItem::Decoration { kind: index(n)? },
        None if text == "upgrade-tank" => ShopItem::TankUpgrade,
        None if text == "feed" => return Ok(GameOp::Feed { fish: None }),
        _ => {
            return Err(format!(
                "{text:?}: expected buy-fish:SPECIES, buy-decoration:KIND, upgrade-tank or feed"
            ));
        }
    };
    Ok(GameOp::Purchase { item, quantity: 1 })
}

/// Flags of `play`: a server and a client in one process.
#[derive(Debug, Clone, Args, Default)]
pub struct PlayArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Run the client half without a window.
    #[arg(long, env = "BLOXQUARIUM_HEADLESS")]
    pub headless: bool,
    #[command(flatten)]
    pub screenshot: ScreenshotArgs,
}

/// The screenshot smoke check's flags (hidden from `--help`).
#[derive(Debug, Clone, Args, Default)]
pub struct ScreenshotArgs {
    /// Save a PNG of the window after `--screenshot-frames` frames, then shut down.
    #[arg(long, hide = true, value_name = "FILE", env = "BLOXQUARIUM_SCREENSHOT")]
    pub screenshot: Option<PathBuf>,
    /// Frames to let pass before the screenshot.
    #[arg(
        long,
        hide = true,
        value_name = "N",
        env = "BLOXQUARIUM_SCREENSHOT_FRAMES",
        default_value_t = 100
    )]
    pub screenshot_frames: u32,
    /// Frame-time benchmark: swim this many extra (display-only) fish in the tank and log the
    /// frame times of play when the screenshot is taken.
    #[arg(long, hide = true, value_name = "N", default_value_t = 0)]
    pub bench_fish: u32,
    /// Keep FILE up to date with the game's state as the player sees it and where each button
    /// is on screen, as JSON (for scripts that play the game).
    #[arg(long, value_name = "FILE")]
    pub state_dump: Option<PathBuf>,
}

/// How a parse ended when it did not produce a [`Cli`].
#[derive(Debug)]
pub enum ParseOutcome {
    /// `--help` or `--version`: print this to stdout and exit 0.
    Info(String),
    /// A bad flag or value: print this one line to stderr and exit 2.
    Error(String),
}

/// The version line: crate version, wire protocol version and the fingerprint of the game's
/// message set (the two halves of the netcode protocol id a token names).
/// Worked out once per process (it registers the messages on a scratch App), not at every parse.
pub fn version_line() -> String {
    use crate::definition::Game;
    static LINE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    LINE.get_or_init(|| {
        let id = crate::game::AquariumGame::protocol_id();
        format!(
            "{} (protocol {PROTOCOL_VERSION}, message set {:08x})",
            env!("CARGO_PKG_VERSION"),
            crate::protocol::protocol_fingerprint_of(id).unwrap_or_default()
        )
    })
    .clone()
}

impl Cli {
    /// Parses the given arguments (the first is the program name).
    pub fn parse_from_args<I, T>(args: I) -> Result<Cli, ParseOutcome>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let command = Cli::command().version(version_line());
        let matches = command.try_get_matches_from(args).map_err(classify)?;
        Cli::from_arg_matches(&matches).map_err(classify)
    }

    /// The mode to run, `play` when no subcommand was given.
    pub fn mode(&self) -> Command {
        self.command
            .clone()
            .unwrap_or_else(|| Command::Play(PlayArgs::default()))
    }
}

fn classify(err: clap::Error) -> ParseOutcome {
    use clap::error::ErrorKind;
    match err.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            ParseOutcome::Info(err.render().to_string())
        }
        _ => ParseOutcome::Error(one_line(&err.render().to_string())),
    }
}

/// clap renders errors over several lines (usage, tips); keep the line that says what is wrong.
fn one_line(rendered: &str) -> String {
    rendered
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("error: invalid command line")
        .to_string()
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number of seconds"))?;
    if !secs.is_finite() || secs <= 0.0 || secs > 31_536_000.0 {
        return Err(format!("{secs} must be more than 0 and at most one year"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_log_filter(s: &str) -> Result<String, String> {
    bevy::log::tracing_subscriber::EnvFilter::builder()
        .parse(s)
        .map(|_| s.to_string())
        .map_err(|e| format!("not a log filter: {e}"))
}
