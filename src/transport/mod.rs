//! Secure transport and the network service (the seed's NetworkService and SecureCommunication).
//!
//! renet 2 over renet_netcode with secure connect tokens, driven by bevy_renet 5. The logic lives
//! in plain types ([`ServerCore`], [`ClientCore`], [`envelope`], [`token`], [`keys`]); the plugins
//! here are thin adapters that move bytes between renet and Bevy messages.
//!
//! Messages are typed ([`remote`]): a game registers its types with [`RemoteApp`]; handlers read
//! [`FromClient<T>`] and [`Call<T>`] and answer with [`ServerCore::reply`] through [`ServerNet`];
//! on the client, send and call through [`ClientNet`] and read [`FromServer<T>`] and
//! [`Answer<T>`]. The transport names no game message.

mod address_gate;
pub mod faults;
mod client;
mod envelope;
mod gate;
mod health;
mod remote;
pub mod runner;
mod server;
mod stats;
mod token;
mod wire;

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use bevy::prelude::*;
use bevy_renet::netcode::{ClientAuthentication, ServerAuthentication, ServerConfig};
use bevy_renet::renet::{ConnectionConfig, ServerEvent};
use bevy_renet::{
    RenetClient, RenetClientPlugin, RenetReceive, RenetSend, RenetServer, RenetServerEvent,
    RenetServerPlugin,
};

pub use address_gate::AddressGate;
pub use client::{ClientCore, ClientNotice};
pub use envelope::SessionMaterial;
pub use envelope::{Direction as EnvelopeDirection, Opener, Sealer, Signer};
pub use gate::{GatedServerPlugin, GatedServerTransport, WireCounts};
pub use remote::{
    Admitted, Answer, Call, ClientInbox, FromClient, FromServer, ProtocolPlugin, RegisterProtocol,
    RemoteApp, RemoteRegistry, RemoteSystems, protocol_table,
};
pub use server::{Inbound, SecuritySignal, ServerCore, Session, SignalKind};
pub use stats::NetworkStats;
pub use token::{IssuedToken, TokenError, TokenIdentity, TokenIssuer};
pub use wire::{
    BATCH_TAG, BatchedClientPlugin, BatchedClientTransport, pack as pack_datagrams,
    parts as datagram_parts,
};

use crate::clock::{LatencyWindow, unix_now};
use crate::keys;
use crate::process::{Carried, Paths};
use crate::protocol::builtin::{Echo, Heartbeat, SecureEcho, ServerStats, ServerStatsReport};
use crate::protocol::{self, PROTOCOL_VERSION, SessionId};
use crate::shutdown::{OnShutdown, Shutdown, ShutdownSystems};
use crate::stages::{BetweenTicks, ClientSystems, ServerRequests, ServerSystems};

/// Transport settings, read from the `network.*` config keys.
#[derive(Debug, Clone)]
pub struct TransportSettings {
    /// `network.messageTimeout`: how long a remote function may take.
    pub message_timeout: Duration,
    /// Envelope messages per direction before rekeying.
    pub rekey_after: u64,
    /// Seconds a connect token may be used.
    pub token_expire_secs: u64,
    /// Seconds without packets before netcode drops a connection.
    pub token_timeout_secs: i32,
    /// Connection requests per second from one address (`security.connectAttemptsPerSecond`).
    pub connect_attempts_per_second: f64,
    /// Burst of connection requests from one address (`security.connectAttemptsBurst`).
    pub connect_attempts_burst: f64,
    /// Least time between a client's sends (`network.clientSendRate`).
    pub client_send_interval: Duration,
}

/// The least time between a client's sends at `rate` datagrams per second (0: no floor).
pub fn client_send_interval(rate: i64) -> Duration {
    if rate <= 0 {
        Duration::ZERO
    } else {
        Duration::from_secs(1) / rate.min(1000) as u32
    }
}

impl TransportSettings {
    /// From `network.messageTimeout`, `network.rekeyAfter`, `network.tokenExpiry`,
    /// `network.connectionTimeout`, `network.clientSendRate` and the connection gate's keys.
    pub fn from_config(config: &crate::config::Config) -> Result<Self, crate::config::ConfigError> {
        Ok(Self {
            message_timeout: config.get("network.messageTimeout")?,
            rekey_after: config.get("network.rekeyAfter")?,
            token_expire_secs: config.get::<Duration>("network.tokenExpiry")?.as_secs(),
            token_timeout_secs: config
                .get::<Duration>("network.connectionTimeout")?
                .as_secs()
                .min(i32::MAX as u64) as i32,
            connect_attempts_per_second: config.get("security.connectAttemptsPerSecond")?,
            connect_attempts_burst: config.get("security.connectAttemptsBurst")?,
            client_send_interval: client_send_interval(config.get("network.clientSendRate")?),
        })
    }
}

/// Why the transport could not start.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The netcode key is missing, malformed or too open.
    #[error(transparent)]
    Key(#[from] keys::KeyError),
    /// The UDP socket could not be opened.
    #[error("cannot open UDP socket on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What failed.
        source: std::io::Error,
    },
    /// The token was made by a build speaking another protocol.
    #[error(
        "this token is for protocol {theirs} but this client speaks protocol {ours}: use a client of the server's version, or a token from this server"
    )]
    ProtocolMismatch {
        /// The token's protocol version (`None`: not a Bloxquarium token).
        theirs: String,
        /// Ours.
        ours: u16,
    },
    /// The token was made by a server of the same protocol version that registers another set
    /// of remote messages (another game, or another build of this one).
    #[error(
        "this token is for a server whose remote messages differ from this client's (message set {theirs:08x}, this client's {ours:08x}): use a client built for that server's game and version"
    )]
    MessageSetMismatch {
        /// The token's message-set fingerprint.
        theirs: u32,
        /// Ours.
        ours: u32,
    },
    /// Token trouble.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// Bound to every address, with no public address to put in tokens.
    #[error(
        "the server is bound to {0}, which no client can dial: add --public-addr IP:PORT (the address players reach this server at; repeatable, or BLOXQUARIUM_PUBLIC_ADDR=IP:PORT,IP:PORT) or bind a specific IP"
    )]
    UnspecifiedBind(SocketAddr),
    /// A public address no client can dial.
    #[error(
        "--public-addr {0} is not an address a client can dial: give an IP and a port, such as 203.0.113.7:5000"
    )]
    BadPublicAddr(SocketAddr),
    /// More public addresses than a connect token holds.
    #[error("at most {max} public addresses fit in a connect token, {given} were given")]
    TooManyPublicAddrs {
        /// Given.
        given: usize,
        /// netcode's limit.
        max: usize,
    },
    /// netcode refused the setup.
    #[error("netcode: {0}")]
    Netcode(String),
    /// A `network.*` setting could not be read.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// The server's network service as a resource.
#[derive(Resource, Deref, DerefMut)]
pub struct ServerNet(pub ServerCore);

/// The client's network service as a resource.
#[derive(Resource, Deref, DerefMut)]
pub struct ClientNet(pub ClientCore);

/// Issues tokens with this server's key (play mode, the load test, admin tools).
#[derive(Resource, Clone, Deref)]
pub struct ServerTokens(pub TokenIssuer);

/// Decoded, validated messages of clients in session, waiting for the security gate
/// (`security::admit`), which alone turns them into the messages handlers read.
#[derive(Resource, Default)]
pub struct InboundQueue(Vec<Inbound>);

impl InboundQueue {
    /// Takes everything queued.
    pub fn drain(&mut self) -> Vec<Inbound> {
        std::mem::take(&mut self.0)
    }
}

/// Most sessions opened in one tick. A join costs the tick its welcome, the signed manifest and
/// config snapshot (sealed into some twenty datagrams) and the start of a profile load; 256
/// clients that connected within a tick once made it take 11–15 ms of CPU, so connections past
/// this many wait for the next tick (at 30 Hz, 256 joins spread over 8 ticks, 0.27 s).
pub const JOINS_PER_TICK: usize = 32;

/// Connected clients whose session is not open yet, first come first served (see
/// [`JOINS_PER_TICK`]).
#[derive(Resource, Debug, Default)]
pub struct JoinQueue(std::collections::VecDeque<u64>);

impl JoinQueue {
    /// A client finished the handshake.
    pub fn push(&mut self, client: u64) {
        self.0.push_back(client);
    }

    /// A client left before its session opened; true if it was waiting.
    pub fn remove(&mut self, client: u64) -> bool {
        let before = self.0.len();
        self.0.retain(|c| *c != client);
        self.0.len() != before
    }

    /// The next clients whose sessions open now, at most `n`.
    pub fn take(&mut self, n: usize) -> Vec<u64> {
        let n = n.min(self.0.len());
        self.0.drain(..n).collect()
    }
}

/// A session started.
#[derive(Message, Debug, Clone)]
pub struct SessionStarted {
    /// renet client id.
    pub client: u64,
    /// The player.
    pub player_id: u64,
    /// The session.
    pub session_id: SessionId,
    /// The name the player's token carries.
    pub display_name: String,
}

/// A session ended (timeout, client left, kick). Save and release locks on this.
#[derive(Message, Debug, Clone)]
pub struct SessionEnded {
    /// renet client id.
    pub client: u64,
    /// The player.
    pub player_id: u64,
    /// The session.
    pub session_id: SessionId,
    /// Why.
    pub reason: String,
}

/// Suspicious input seen by the transport, for the security subsystem.
#[derive(Message, Debug, Clone)]
pub struct SecuritySignalRaised(pub SecuritySignal);

/// A server-signed blob whose signature the client verified.
#[derive(Message, Debug, Clone)]
pub struct SignedBlobReceived {
    /// What it is ("manifest", "config").
    pub purpose: String,
    /// The blob.
    pub blob: Vec<u8>,
}

/// Another subsystem asks the transport to end a client's session, saying why (the transport
/// owns the sessions: it sends the reason, then disconnects after a short grace).
#[derive(Message, Debug, Clone)]
pub struct KickRequested {
    /// The client.
    pub client: u64,
    /// What the player is told.
    pub reason: String,
}

fn kick_requested(mut asked: MessageReader<KickRequested>, mut net: ResMut<ServerNet>) {
    for k in asked.read() {
        net.kick(k.client, &k.reason);
    }
}

/// Server tick durations, for the stats RPC and the load test; and the passes between ticks
/// (see [`runner`]), which are not ticks and are counted apart.
#[derive(Resource, Default)]
pub struct TickTimes {
    started: Option<Instant>,
    /// Recent tick durations.
    pub window: LatencyWindow,
    /// Ticks measured.
    pub ticks: u64,
    /// Recent durations of passes between ticks.
    pub between: LatencyWindow,
    /// Passes between ticks run.
    pub passes: u64,
    /// Time spent in passes between ticks, all together.
    pub between_total: Duration,
}

impl TickTimes {
    /// Counts one pass between ticks that took `took`.
    pub fn record_pass(&mut self, took: Duration) {
        self.between.record(took);
        self.passes += 1;
        self.between_total += took;
    }
}

/// The client's link to its server.
#[derive(Resource, Debug, Clone, PartialEq, Eq)]
pub enum ConnectionState {
    /// Handshake in progress.
    Connecting,
    /// Connected and in session.
    Connected,
    /// The server ended the session or the link timed out.
    Disconnected {
        /// What the server or the transport said.
        reason: String,
    },
    /// Nothing dialled yet: the player has not logged in ([`TransportClientPlugin::deferred`]).
    LoggedOut,
    /// The link was lost and the client is getting a new token to dial again ([`RedialPending`]).
    Reconnecting {
        /// Which try this is, from 1.
        attempt: u32,
        /// Why the link was lost.
        reason: String,
    },
}

/// The reason a server gives the clients it ends as it shuts down: a client may come back (a
/// restart), unlike after other kicks.
pub const SHUTTING_DOWN: &str = "server shutting down";

/// Someone (the login client) is getting a new token after the link was lost: the state shows
/// "reconnecting" until [`Redial`] or [`RedialAbandoned`].
#[derive(Message, Debug, Clone)]
pub struct RedialPending {
    /// Which try this is, from 1.
    pub attempt: u32,
}

/// Dial `server` again with a fresh `token`: a new netcode client and session replace the lost
/// ones.
#[derive(Message, Debug, Clone)]
pub struct Redial {
    /// The server to dial (one the token names).
    pub server: SocketAddr,
    /// The new token.
    pub token: Box<IssuedToken>,
}

/// Reconnecting was given up: the state says why.
#[derive(Message, Debug, Clone)]
pub struct RedialAbandoned {
    /// Why.
    pub reason: String,
}

impl std::fmt::Display for ConnectionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectionState::Connecting => f.write_str("connecting"),
            ConnectionState::Connected => f.write_str("connected"),
            ConnectionState::Disconnected { reason } => write!(f, "disconnected ({reason})"),
            ConnectionState::LoggedOut => f.write_str("not logged in"),
            ConnectionState::Reconnecting { attempt, reason } => {
                write!(f, "reconnecting (try {attempt}; {reason})")
            }
        }
    }
}

/// What a server needs before its App runs: the socket is bound and the key loaded, so errors
/// surface at start-up.
pub struct ServerTransport {
    /// renet's server.
    pub server: RenetServer,
    /// netcode's transport.
    pub transport: GatedServerTransport,
    /// The address actually bound.
    pub local_addr: SocketAddr,
    /// Token issuer (`None` in insecure mode).
    pub issuer: Option<TokenIssuer>,
}

/// The addresses tokens name and netcode checks: `public` when given, else the bound address
/// when it is a specific IP. An unspecified bind (`0.0.0.0`, `::`) needs `public`.
pub fn public_addresses(
    bound: SocketAddr,
    public: &[SocketAddr],
) -> Result<Vec<SocketAddr>, TransportError> {
    const MAX: usize = 32;
    if public.len() > MAX {
        return Err(TransportError::TooManyPublicAddrs {
            given: public.len(),
            max: MAX,
        });
    }
    if let Some(bad) = public
        .iter()
        .find(|a| a.ip().is_unspecified() || a.port() == 0)
    {
        return Err(TransportError::BadPublicAddr(*bad));
    }
    match public {
        [] if bound.ip().is_unspecified() => Err(TransportError::UnspecifiedBind(bound)),
        [] => Ok(vec![bound]),
        given => Ok(given.to_vec()),
    }
}

/// Opens the server side: loads or creates the key (unless `insecure`), binds `bind`, sets up
/// netcode; tokens name `public` (see [`public_addresses`]).
pub fn open_server(
    bind: SocketAddr,
    public: &[SocketAddr],
    max_clients: usize,
    keys_dir: &Path,
    insecure: bool,
    settings: &TransportSettings,
    protocol_id: u64,
) -> Result<ServerTransport, TransportError> {
    let socket =
        UdpSocket::bind(bind).map_err(|source| TransportError::Bind { addr: bind, source })?;
    let local_addr = socket
        .local_addr()
        .map_err(|source| TransportError::Bind { addr: bind, source })?;
    let public_addresses = public_addresses(local_addr, public)?;
    grow_socket_buffers(&socket);
    let (authentication, issuer) = if insecure {
        warn!(
            "--insecure-dev: clients connect WITHOUT token authentication; never use this outside development"
        );
        (ServerAuthentication::Unsecure, None)
    } else {
        let key = keys::load_or_create(keys_dir)?;
        let mut issuer = TokenIssuer::new(key, protocol_id, public_addresses.clone());
        issuer.expire_secs = settings.token_expire_secs;
        issuer.timeout_secs = settings.token_timeout_secs;
        (
            ServerAuthentication::Secure { private_key: key },
            Some(issuer),
        )
    };
    let config = ServerConfig {
        current_time: unix_now(),
        max_clients,
        protocol_id,
        public_addresses,
        authentication,
    };
    let gate = AddressGate::new(
        settings.connect_attempts_per_second,
        settings.connect_attempts_burst,
    );
    let transport = GatedServerTransport::new(config, socket, gate)
        .map_err(|e| TransportError::Netcode(e.to_string()))?;
    Ok(ServerTransport {
        server: RenetServer::new(ConnectionConfig::default()),
        transport,
        local_addr,
        issuer,
    })
}

/// Socket buffer size the server asks for. The server reads its socket once per tick; at 30 Hz
/// with hundreds of clients the kernel's default receive buffer (~208 KiB, counted with
/// per-packet overhead) overflows between ticks and drops packets, which renet then resends after
/// 300 ms.
const SERVER_SOCKET_BUFFER: usize = 4 * 1024 * 1024;

fn grow_socket_buffers(socket: &UdpSocket) {
    let sock = socket2::SockRef::from(socket);
    let _ = sock.set_recv_buffer_size(SERVER_SOCKET_BUFFER);
    let _ = sock.set_send_buffer_size(SERVER_SOCKET_BUFFER);
    let got = sock.recv_buffer_size().unwrap_or(0);
    if got < SERVER_SOCKET_BUFFER {
        warn!(
            "UDP receive buffer is {got} bytes (asked for {SERVER_SOCKET_BUFFER}); raise net.core.rmem_max for many clients"
        );
    }
}

/// How a client proves who it is.
pub enum ClientCredentials {
    /// A token from the server's issuer (the normal way).
    Token(Box<IssuedToken>),
    /// `--insecure-dev`: no token; the identity travels in clear user data.
    Insecure {
        /// The player id to claim.
        player_id: u64,
        /// The name to claim.
        display_name: String,
    },
}

/// What a client needs before its App runs.
pub struct ClientTransport {
    /// renet's client.
    pub client: RenetClient,
    /// netcode's transport.
    pub transport: BatchedClientTransport,
    /// The session's key material.
    pub material: SessionMaterial,
}

/// Opens the client side towards `server`, speaking `protocol_id` (see
/// [`protocol::RemoteTable::protocol_id`]). A token from a build with another protocol version or
/// another set of messages is refused here, with a message saying which.
pub fn open_client(
    server: SocketAddr,
    credentials: ClientCredentials,
    protocol_id: u64,
) -> Result<ClientTransport, TransportError> {
    let (authentication, material) = match credentials {
        ClientCredentials::Token(issued) => {
            let issued = *issued;
            let theirs = issued.token.protocol_id;
            if protocol::protocol_version_of(theirs) != Some(PROTOCOL_VERSION) {
                return Err(TransportError::ProtocolMismatch {
                    theirs: protocol::protocol_version_of(theirs).map_or_else(
                        || "unknown (not a Bloxquarium token)".to_string(),
                        |v| v.to_string(),
                    ),
                    ours: PROTOCOL_VERSION,
                });
            }
            if theirs != protocol_id {
                return Err(TransportError::MessageSetMismatch {
                    theirs: protocol::protocol_fingerprint_of(theirs).unwrap_or_default(),
                    ours: protocol::protocol_fingerprint_of(protocol_id).unwrap_or_default(),
                });
            }
            (
                ClientAuthentication::Secure {
                    connect_token: issued.token,
                },
                issued.material,
            )
        }
        ClientCredentials::Insecure {
            player_id,
            display_name,
        } => {
            let material =
                SessionMaterial::random().map_err(|e| TransportError::Netcode(e.to_string()))?;
            let identity = TokenIdentity {
                player_id,
                display_name,
                material: material.clone(),
            };
            let user_data = identity.to_user_data()?;
            (
                ClientAuthentication::Unsecure {
                    protocol_id,
                    client_id: player_id,
                    server_addr: server,
                    user_data: Some(user_data),
                },
                material,
            )
        }
    };
    let local: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .map_err(|_| TransportError::Netcode("bad local address".into()))?;
    let socket = UdpSocket::bind(local).map_err(|source| TransportError::Bind {
        addr: local,
        source,
    })?;
    let transport = BatchedClientTransport::new(unix_now(), authentication, socket)
        .map_err(|e| TransportError::Netcode(e.to_string()))?;
    Ok(ClientTransport {
        client: RenetClient::new(ConnectionConfig::default()),
        transport,
        material,
    })
}

/// The server half: sessions, messages, built-in remote functions, stats. [`Self::open`] binds
/// the socket and loads the key, so a busy port or a bad key stops start-up; `build` inserts
/// `ServerNet`, renet's server, the gated netcode transport and (unless insecure) `ServerTokens`.
pub struct TransportServerPlugin {
    local_addr: SocketAddr,
    protocol_id: u64,
    issuer: Option<TokenIssuer>,
    rekey_after: u64,
    opened: Carried<(RenetServer, GatedServerTransport)>,
}

impl TransportServerPlugin {
    /// Binds `bind` for up to `max_clients` with the `network.*` settings and the key in
    /// `paths.keys` (none with `insecure`), speaking `protocol_id` (the message table's, see
    /// [`protocol_table`]; checked against the App's registrations by [`check_protocol`]).
    /// Tokens name `public` (see [`public_addresses`]).
    pub fn open(
        config: &crate::config::Config,
        paths: &Paths,
        (bind, public): (SocketAddr, &[SocketAddr]),
        max_clients: usize,
        insecure: bool,
        protocol_id: u64,
    ) -> Result<Self, TransportError> {
        let settings = TransportSettings::from_config(config)?;
        let opened = open_server(
            bind,
            public,
            max_clients,
            &paths.keys,
            insecure,
            &settings,
            protocol_id,
        )?;
        Ok(Self {
            local_addr: opened.local_addr,
            protocol_id,
            issuer: opened.issuer,
            rekey_after: settings.rekey_after,
            opened: Carried::new((opened.server, opened.transport)),
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The token issuer (`None` in insecure mode).
    pub fn issuer(&self) -> Option<&TokenIssuer> {
        self.issuer.as_ref()
    }
}

impl Plugin for TransportServerPlugin {
    fn build(&self, app: &mut App) {
        crate::stages::server(app);
        if !app.is_plugin_added::<RenetServerPlugin>() {
            app.add_plugins((RenetServerPlugin, GatedServerPlugin));
        }
        crate::integration::register(app, health::INTEGRATION);
        if let Some((server, transport)) = self.opened.take("the transport server plugin") {
            app.insert_resource(server).insert_resource(transport);
        }
        if let Some(issuer) = &self.issuer {
            app.insert_resource(ServerTokens(issuer.clone()));
        }
        app.insert_resource(ServerNet(ServerCore::new(self.rekey_after)))
            .insert_resource(SpokenProtocol(self.protocol_id))
            .init_resource::<RemoteRegistry>()
            .init_resource::<TickTimes>()
            .init_resource::<InboundQueue>()
            .init_resource::<Admitted>()
            .add_message::<SessionStarted>()
            .add_message::<SessionEnded>()
            .add_message::<SecuritySignalRaised>()
            .init_resource::<JoinQueue>()
            .add_observer(on_server_event)
            .add_systems(First, tick_start.in_set(ServerSystems::Begin))
            .add_systems(Last, tick_end.in_set(ServerSystems::End))
            .add_systems(
                PreUpdate,
                (
                    open_sessions.run_if(resource_exists::<GatedServerTransport>),
                    server_receive,
                )
                    .chain()
                    .after(RenetReceive)
                    .in_set(ServerSystems::Receive),
            )
            .add_systems(
                ServerRequests,
                (answer_echo, answer_secure_echo, answer_server_stats),
            )
            .add_message::<KickRequested>()
            .add_systems(
                PostUpdate,
                (kick_requested, server_send)
                    .chain()
                    .before(RenetSend)
                    .in_set(ServerSystems::Send),
            )
            // Between ticks, the same receive and send (they keep no state of their own: what
            // they read, they drain).
            .add_systems(
                BetweenTicks,
                (
                    receive_between_ticks
                        .after(RenetReceive)
                        .in_set(ServerSystems::Receive),
                    send_between_ticks.in_set(ServerSystems::Send),
                ),
            )
            .add_systems(OnShutdown, kick_everyone)
            .add_systems(Update, hold_for_kicks.in_set(ShutdownSystems::Drain));
    }
}

fn tick_start(mut times: ResMut<TickTimes>) {
    times.started = Some(Instant::now());
}

fn tick_end(mut times: ResMut<TickTimes>) {
    if let Some(start) = times.started.take() {
        times.window.record(start.elapsed());
        times.ticks += 1;
    }
}

fn now(time: &Time<Real>) -> Duration {
    time.elapsed()
}

/// Connections join the queue (in the tick or between ticks); disconnections end sessions.
fn on_server_event(
    event: On<RenetServerEvent>,
    mut net: ResMut<ServerNet>,
    mut joins: ResMut<JoinQueue>,
    mut ended: MessageWriter<SessionEnded>,
) {
    match &**event {
        ServerEvent::ClientConnected { client_id } => joins.push(*client_id),
        ServerEvent::ClientDisconnected { client_id, reason } => {
            if joins.remove(*client_id) {
                info!(
                    client = client_id,
                    "left before its session opened: {reason}"
                );
            }
            if let Some(session) = net.close_session(*client_id) {
                info!(client = client_id, "session ended: {reason}");
                ended.write(SessionEnded {
                    client: *client_id,
                    player_id: session.player_id,
                    session_id: session.session_id,
                    reason: reason.to_string(),
                });
            }
        }
    }
}

/// Opens the sessions of up to [`JOINS_PER_TICK`] waiting connections (once per tick).
fn open_sessions(
    mut joins: ResMut<JoinQueue>,
    mut net: ResMut<ServerNet>,
    mut server: ResMut<RenetServer>,
    transport: Res<GatedServerTransport>,
    time: Res<Time<Real>>,
    mut started: MessageWriter<SessionStarted>,
) {
    for client in joins.take(JOINS_PER_TICK) {
        let identity = transport
            .user_data(client)
            .and_then(|d| TokenIdentity::from_user_data(&d));
        let Some(identity) = identity else {
            warn!(client, "connection without valid identity data: refused");
            server.disconnect(client);
            continue;
        };
        let player_id = identity.player_id;
        let name = identity.display_name.clone();
        match net.open_session(client, identity, transport.client_addr(client), now(&time)) {
            Ok(session_id) => {
                info!(client, player_id, "session started for {name}");
                started.write(SessionStarted {
                    client,
                    player_id,
                    session_id,
                    display_name: name,
                });
            }
            Err(e) => {
                error!(client, "cannot create a session id: {e}");
                server.disconnect(client);
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn server_receive(
    mut net: ResMut<ServerNet>,
    mut server: ResMut<RenetServer>,
    registry: Res<RemoteRegistry>,
    time: Res<Time<Real>>,
    mut queue: ResMut<InboundQueue>,
    mut signals: MessageWriter<SecuritySignalRaised>,
) {
    let t = now(&time);
    let inbound = net.receive(&mut server, &registry, t);
    queue.0.extend(inbound);
    for s in net.take_signals() {
        signals.write(SecuritySignalRaised(s));
    }
    net.refresh_link_stats(&server, t);
}

fn answer_echo(mut calls: MessageReader<Call<Echo>>, mut net: ResMut<ServerNet>) {
    for c in calls.read() {
        net.reply(c, Ok(c.request.payload.clone()));
    }
}

fn answer_secure_echo(mut calls: MessageReader<Call<SecureEcho>>, mut net: ResMut<ServerNet>) {
    for c in calls.read() {
        net.reply(c, Ok(c.request.payload.clone()));
    }
}

fn answer_server_stats(
    mut calls: MessageReader<Call<ServerStats>>,
    mut net: ResMut<ServerNet>,
    ticks: Res<TickTimes>,
) {
    for c in calls.read() {
        let recent = c.request.recent_ticks as usize;
        let report = ServerStatsReport {
            clients: net.session_count() as u32,
            tick_p50_ms: ticks.window.recent_quantile_ms(recent, 0.5),
            tick_p99_ms: ticks.window.recent_quantile_ms(recent, 0.99),
            ticks: ticks.ticks,
            rss_mb: crate::process::rss_mb(),
            messages_in: net.stats.total.total_in(),
            rejected: net.stats.total.rejected,
            cpu_seconds: crate::process::cpu_seconds(),
            between_passes: ticks.passes,
            between_seconds: ticks.between_total.as_secs_f64(),
            between_p99_ms: ticks.between.quantile_ms(0.99),
        };
        net.reply(c, Ok(report));
    }
}

/// The protocol id the transport was opened with.
#[derive(Resource, Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpokenProtocol(pub u64);

/// The App's registered messages can be honoured and match the protocol id its transport speaks
/// (server or client); the reason otherwise.
pub fn check_protocol(world: &World) -> Result<(), String> {
    let Some(registry) = world.get_resource::<RemoteRegistry>() else {
        return Ok(());
    };
    if let Some(e) = registry.errors().first() {
        return Err(format!("remote messages: {e}"));
    }
    match world.get_resource::<SpokenProtocol>() {
        Some(spoken) if spoken.0 != registry.protocol_id() => Err(format!(
            "the app registers remote messages (set {:08x}) other than those its transport was opened with (set {:08x}): register every message in the game's protocol function",
            registry.fingerprint(),
            protocol::protocol_fingerprint_of(spoken.0).unwrap_or_default()
        )),
        _ => Ok(()),
    }
}

fn server_send(mut net: ResMut<ServerNet>, mut server: ResMut<RenetServer>) {
    // The tick's send (the gate's) goes to every client, so who was given a message is moot.
    net.flush(&mut server);
    net.count_down_kicks(&mut server);
}

/// Between ticks: the messages of the clients heard from in this pass, decoded and queued.
fn receive_between_ticks(
    mut net: ResMut<ServerNet>,
    mut server: ResMut<RenetServer>,
    transport: Option<ResMut<GatedServerTransport>>,
    registry: Res<RemoteRegistry>,
    time: Res<Time<Real>>,
    mut queue: ResMut<InboundQueue>,
    mut signals: MessageWriter<SecuritySignalRaised>,
) {
    let heard = transport.map(|mut t| t.take_heard()).unwrap_or_default();
    let inbound = net.receive_from(&mut server, &registry, now(&time), &heard);
    queue.0.extend(inbound);
    for s in net.take_signals() {
        signals.write(SecuritySignalRaised(s));
    }
}

/// Between ticks: what the pass queued is sent now, to the clients it was for.
fn send_between_ticks(
    mut net: ResMut<ServerNet>,
    mut server: ResMut<RenetServer>,
    transport: Option<ResMut<GatedServerTransport>>,
) {
    let answered = net.flush(&mut server);
    if let Some(mut transport) = transport {
        transport.send_packets_to(&mut server, answered);
    }
}

fn kick_everyone(mut net: ResMut<ServerNet>) {
    let clients: Vec<u64> = net.sessions().map(|s| s.client_id).collect();
    for c in clients {
        net.kick(c, SHUTTING_DOWN);
    }
}

fn hold_for_kicks(net: Res<ServerNet>, mut shutdown: ResMut<Shutdown>) {
    if net.kicks_pending() {
        shutdown.hold("transport: telling clients the server is shutting down");
    }
}

/// The client half: connection state, calls, timeouts, heartbeats.
/// [`Self::open`] opens the socket towards the server (a token from another protocol version is
/// refused there); `build` inserts `ClientNet`, renet's client and the batched netcode transport.
pub struct TransportClientPlugin {
    opened: Carried<(Option<(RenetClient, BatchedClientTransport)>, ClientNet)>,
    protocol_id: u64,
}

/// The client's calls and session state, under the client's `network.*` settings.
fn client_net(
    config: &crate::config::Config,
    material: SessionMaterial,
) -> Result<ClientNet, TransportError> {
    Ok(ClientNet(ClientCore::new(
        material,
        config.get("network.messageTimeout")?,
        config.get("network.rekeyAfter")?,
    )))
}

impl TransportClientPlugin {
    /// Opens the client side towards `server` with the client's `network.*` settings.
    pub fn open(
        config: &crate::config::Config,
        server: SocketAddr,
        credentials: ClientCredentials,
        protocol_id: u64,
    ) -> Result<Self, TransportError> {
        let mut opened = open_client(server, credentials, protocol_id)?;
        opened
            .transport
            .set_send_interval(client_send_interval(config.get("network.clientSendRate")?));
        let net = client_net(config, opened.material)?;
        Ok(Self {
            opened: Carried::new((Some((opened.client, opened.transport)), net)),
            protocol_id,
        })
    }

    /// A client that dials nothing until a [`Redial`] gives it a server and a token (a player
    /// logging in at the window's login screen). The state is [`ConnectionState::LoggedOut`]
    /// until then.
    pub fn deferred(
        config: &crate::config::Config,
        protocol_id: u64,
    ) -> Result<Self, TransportError> {
        let material =
            SessionMaterial::random().map_err(|e| TransportError::Netcode(e.to_string()))?;
        let net = client_net(config, material)?;
        Ok(Self {
            opened: Carried::new((None, net)),
            protocol_id,
        })
    }
}

impl Plugin for TransportClientPlugin {
    fn build(&self, app: &mut App) {
        crate::stages::client(app);
        if !app.is_plugin_added::<RenetClientPlugin>() {
            app.add_plugins((RenetClientPlugin, BatchedClientPlugin));
        }
        let mut state = ConnectionState::LoggedOut;
        if let Some((dialled, net)) = self.opened.take("the transport client plugin") {
            if let Some((client, transport)) = dialled {
                app.insert_resource(client).insert_resource(transport);
                state = ConnectionState::Connecting;
            }
            app.insert_resource(net);
        }
        let dialled = resource_exists::<RenetClient>;
        app.insert_resource(state)
            .insert_resource(SpokenProtocol(self.protocol_id))
            .init_resource::<RemoteRegistry>()
            .init_resource::<ClientInbox>()
            .add_message::<crate::config::ConfigChanged>()
            .add_message::<SignedBlobReceived>()
            .add_message::<RedialPending>()
            .add_message::<Redial>()
            .add_message::<RedialAbandoned>()
            .add_systems(
                PreUpdate,
                (
                    redial.before(RenetReceive).in_set(ClientSystems::Receive),
                    client_receive
                        .after(RenetReceive)
                        .before(RemoteSystems::Deliver)
                        .in_set(ClientSystems::Receive)
                        .run_if(dialled),
                    apply_network_settings
                        .in_set(ClientSystems::Sync)
                        .run_if(dialled),
                ),
            )
            .add_systems(
                Update,
                (heartbeat, follow_moves).in_set(ClientSystems::Handle),
            )
            .add_systems(
                PostUpdate,
                client_send
                    .before(RenetSend)
                    .in_set(ClientSystems::Send)
                    .run_if(dialled),
            )
            .add_systems(OnShutdown, leave_server.run_if(dialled));
    }
}

/// The server sends the player to another server (it is draining): dial it with the token it
/// gave.
fn follow_moves(
    mut moves: MessageReader<FromServer<crate::protocol::builtin::MoveToServer>>,
    mut dials: MessageWriter<Redial>,
) {
    for FromServer(m) in moves.read() {
        match IssuedToken::from_bytes(&m.token) {
            Ok(token) => {
                info!("the server sends this player to {}", m.server);
                dials.write(Redial {
                    server: m.server,
                    token: Box::new(token),
                });
            }
            Err(e) => warn!(
                "the server's move to {} has an unusable token: {e}",
                m.server
            ),
        }
    }
}

/// The client follows `network.messageTimeout` and `network.clientSendRate` live.
fn apply_network_settings(
    config: Res<crate::config::ClientConfig>,
    mut net: ResMut<ClientNet>,
    mut transport: ResMut<BatchedClientTransport>,
    mut changed: MessageReader<crate::config::ConfigChanged>,
) {
    let (mut timeout, mut send_rate) = (false, false);
    for c in changed
        .read()
        .filter(|c| c.side == crate::config::Side::Client)
    {
        timeout |= c.under("network.messageTimeout");
        send_rate |= c.under("network.clientSendRate");
    }
    if timeout && let Ok(t) = config.get::<Duration>("network.messageTimeout") {
        net.set_timeout(t);
    }
    if send_rate && let Ok(rate) = config.get::<i64>("network.clientSendRate") {
        transport.set_send_interval(client_send_interval(rate));
    }
}

/// Follows the reconnect messages: "reconnecting" while a token is fetched; a fresh netcode
/// client and session for a new token; "disconnected" with the reason when given up.
#[allow(clippy::too_many_arguments)]
fn redial(
    mut pending: MessageReader<RedialPending>,
    mut dials: MessageReader<Redial>,
    mut abandoned: MessageReader<RedialAbandoned>,
    mut state: ResMut<ConnectionState>,
    mut commands: Commands,
    mut net: ResMut<ClientNet>,
    protocol: Res<SpokenProtocol>,
    config: Res<crate::config::ClientConfig>,
) {
    for p in pending.read() {
        let reason = match &*state {
            ConnectionState::Disconnected { reason }
            | ConnectionState::Reconnecting { reason, .. } => reason.clone(),
            _ => "the link was lost".into(),
        };
        *state = ConnectionState::Reconnecting {
            attempt: p.attempt,
            reason,
        };
    }
    for d in dials.read() {
        let credentials = ClientCredentials::Token(d.token.clone());
        match open_client(d.server, credentials, protocol.0) {
            Ok(mut opened) => {
                if let Ok(rate) = config.get::<i64>("network.clientSendRate") {
                    opened
                        .transport
                        .set_send_interval(client_send_interval(rate));
                }
                commands.insert_resource(opened.client);
                commands.insert_resource(opened.transport);
                net.0 = ClientCore::new(opened.material, net.timeout(), net.rekey_after());
                info!("dialling {} again", d.server);
                *state = ConnectionState::Connecting;
            }
            Err(e) => warn!("cannot dial {} again: {e}", d.server),
        }
    }
    for a in abandoned.read() {
        warn!("gave up reconnecting: {}", a.reason);
        *state = ConnectionState::Disconnected {
            reason: a.reason.clone(),
        };
    }
}

/// Words for netcode's client-side disconnect reasons.
pub fn describe_disconnect(reason: Option<bevy_renet::netcode::NetcodeDisconnectReason>) -> String {
    use bevy_renet::netcode::NetcodeDisconnectReason as R;
    match reason {
        Some(R::ConnectTokenExpired) => "connect token expired: get a new one".into(),
        Some(R::ConnectionTimedOut) => "connection timed out".into(),
        Some(R::ConnectionResponseTimedOut) => "server stopped answering during the handshake".into(),
        Some(R::ConnectionRequestTimedOut) => {
            "no answer from the server: it is down, or refused the token (forged, expired, or another protocol version)"
                .into()
        }
        Some(R::ConnectionDenied) => "the server is full".into(),
        Some(R::DisconnectedByClient) => "left".into(),
        Some(R::DisconnectedByServer) => "disconnected by the server".into(),
        None => "disconnected".into(),
    }
}

#[allow(clippy::too_many_arguments)]
fn client_receive(
    mut net: ResMut<ClientNet>,
    mut client: ResMut<RenetClient>,
    transport: Res<BatchedClientTransport>,
    mut state: ResMut<ConnectionState>,
    time: Res<Time<Real>>,
    registry: Res<RemoteRegistry>,
    mut inbox: ResMut<ClientInbox>,
    mut signed: MessageWriter<SignedBlobReceived>,
) {
    let t = now(&time);
    let mut notices = Vec::new();
    if client.is_connected() {
        notices.extend(net.receive(&mut client, t));
    }
    if transport.disconnect_reason().is_some() || client.is_disconnected() {
        if !matches!(
            *state,
            ConnectionState::Disconnected { .. } | ConnectionState::Reconnecting { .. }
        ) {
            let reason = net
                .kicked()
                .map(|k| format!("kicked: {k}"))
                .unwrap_or_else(|| describe_disconnect(transport.disconnect_reason()));
            warn!("disconnected: {reason}");
            *state = ConnectionState::Disconnected { reason };
            notices.extend(net.fail_all());
        }
    } else {
        notices.extend(net.expire(t));
    }
    for n in notices {
        match n {
            ClientNotice::Welcomed {
                session_id,
                display_name,
            } => {
                info!("connected as {display_name} (session {session_id:032x})");
                *state = ConnectionState::Connected;
            }
            ClientNotice::Event {
                kind,
                sealed,
                payload,
            } => {
                if registry.get(kind).is_some() {
                    inbox.event(kind, sealed, payload);
                } else {
                    warn!("refused an event of unknown kind {kind:#010x} from the server");
                }
            }
            ClientNotice::Rpc { id, kind, result } => inbox.answer(kind, id, result),
            ClientNotice::Signed { purpose, blob } => {
                signed.write(SignedBlobReceived { purpose, blob });
            }
            ClientNotice::Kicked { reason } => warn!("kicked by the server: {reason}"),
            ClientNotice::Refused { .. } => {}
        }
    }
}

fn heartbeat(
    mut net: ResMut<ClientNet>,
    state: Res<ConnectionState>,
    time: Res<Time<Real>>,
    mut last: Local<Duration>,
) {
    let t = time.elapsed();
    if *state == ConnectionState::Connected && t.saturating_sub(*last) >= Duration::from_secs(1) {
        *last = t;
        net.send(&Heartbeat {
            client_time_ms: crate::clock::now_ms(),
        });
    }
}

/// Tells the server we are leaving (netcode sends its disconnect packets at once), so the server
/// ends the session now instead of after a timeout.
fn leave_server(mut transport: ResMut<BatchedClientTransport>) {
    transport.disconnect();
}

fn client_send(
    mut net: ResMut<ClientNet>,
    mut client: ResMut<RenetClient>,
    transport: Option<ResMut<BatchedClientTransport>>,
) {
    // A call leaves this frame, not at the next paced send.
    if net.flush(&mut client)
        && let Some(mut t) = transport
    {
        t.expedite();
    }
}

/// `rounds` pseudo-random byte strings of lengths 0..`max_len` (xorshift64; tests feed them to
/// the decoders).
#[cfg(test)]
pub(crate) fn noise(seed: u64, rounds: usize, max_len: usize) -> impl Iterator<Item = Vec<u8>> {
    let mut x = seed.max(1);
    (0..rounds).map(move |round| {
        (0..round % max_len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("an address")
    }

    #[test]
    fn tokens_name_the_public_addresses_or_a_specific_bind() {
        let bound = addr("192.0.2.4:5000");
        assert_eq!(public_addresses(bound, &[]).unwrap(), vec![bound]);
        let public = [addr("203.0.113.7:5000"), addr("[2001:db8::7]:5000")];
        assert_eq!(public_addresses(bound, &public).unwrap(), public.to_vec());
        // Every address, none named: refused, saying what to add.
        for any in ["0.0.0.0:5000", "[::]:5000"] {
            let e = public_addresses(addr(any), &[]).unwrap_err();
            assert!(matches!(e, TransportError::UnspecifiedBind(_)), "{e}");
            assert!(e.to_string().contains("add --public-addr IP:PORT"), "{e}");
        }
        assert_eq!(
            public_addresses(addr("0.0.0.0:5000"), &public[..1]).unwrap(),
            public[..1].to_vec()
        );
        // A public address no one can dial, or more than a token holds.
        for bad in ["0.0.0.0:5000", "203.0.113.7:0"] {
            let e = public_addresses(bound, &[addr(bad)]).unwrap_err();
            assert!(matches!(e, TransportError::BadPublicAddr(_)), "{e}");
        }
        let many: Vec<SocketAddr> = (1..=33)
            .map(|p| SocketAddr::from(([203, 0, 113, 7], 5000 + p)))
            .collect();
        let e = public_addresses(bound, &many).unwrap_err();
        assert!(
            matches!(e, TransportError::TooManyPublicAddrs { given: 33, .. }),
            "{e}"
        );
        assert_eq!(public_addresses(bound, &many[..32]).unwrap().len(), 32);
    }
}
