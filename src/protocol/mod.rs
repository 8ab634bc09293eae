//! Every wire type lives here: the message enums, their channels, and the codec.
//!
//! Messages are serde types encoded with bincode 2 (standard config) under a decode size limit.
//! The protocol version is folded into netcode's protocol id, so a build speaking another version
//! cannot complete the handshake; the client compares the id in its token with its own first and
//! says so clearly.

use serde::{Deserialize, Serialize};

/// Version of the wire protocol. Bump it on any incompatible change to a wire type or to the
/// framing (version 2: several renet packets per datagram, see `transport::wire`).
pub const PROTOCOL_VERSION: u16 = 2;

/// `"BLXQ"` in the top 32 bits marks our protocol ids; the low 16 bits carry the version.
const PROTOCOL_MAGIC: u64 = 0x424C_5851_0000_0000;

/// netcode protocol id of this build.
pub const PROTOCOL_ID: u64 = protocol_id_for(PROTOCOL_VERSION);

/// The netcode protocol id for a protocol version.
pub const fn protocol_id_for(version: u16) -> u64 {
    PROTOCOL_MAGIC | version as u64
}

/// The protocol version inside a netcode protocol id, if the id is one of ours.
pub fn protocol_version_of(protocol_id: u64) -> Option<u16> {
    (protocol_id & 0xFFFF_FFFF_0000_0000 == PROTOCOL_MAGIC && protocol_id & 0xFFFF_0000 == 0)
        .then_some((protocol_id & 0xFFFF) as u16)
}

/// Largest encoded message accepted by [`decode`] (bytes). Larger input is refused before any
/// allocation.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// renet channels (the default `ConnectionConfig` layout).
pub mod channel {
    /// Unreliable: state snapshots that a newer one replaces.
    pub const UNRELIABLE: u8 = 0;
    /// Reliable, unordered: one-way events.
    pub const RELIABLE_UNORDERED: u8 = 1;
    /// Reliable, ordered: RPCs, sealed envelopes, session control.
    pub const RELIABLE_ORDERED: u8 = 2;
}

/// Opaque 128-bit session identifier.
pub type SessionId = u128;
/// Identifier of one remote function call, unique per client connection.
pub type RequestId = u64;

/// A configuration value as it travels (and as the config store holds it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ConfigValue {
    /// `bool`.
    Bool(bool),
    /// Integers.
    Int(i64),
    /// Floats, and durations in seconds.
    Float(f64),
    /// Strings and enum names.
    Text(String),
    /// Lists.
    List(Vec<ConfigValue>),
}

impl std::fmt::Display for ConfigValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigValue::Bool(b) => write!(f, "{b}"),
            ConfigValue::Int(i) => write!(f, "{i}"),
            ConfigValue::Float(x) => write!(f, "{x}"),
            ConfigValue::Text(s) => write!(f, "{s:?}"),
            ConfigValue::List(items) => {
                f.write_str("[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
        }
    }
}

/// Client-visible configuration: the ClientSafe and Shared values (never a ServerOnly one).
/// Travels as a signed blob with purpose [`CONFIG_SNAPSHOT`] at join, then as deltas with purpose
/// [`CONFIG_DELTA`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigSnapshot {
    /// The server's config version.
    pub version: u64,
    /// Path and value of every replicated key (a delta: only the changed ones).
    pub values: Vec<(String, ConfigValue)>,
}

/// Signed-blob purpose of a full config snapshot.
pub const CONFIG_SNAPSHOT: &str = "config";
/// Signed-blob purpose of a config delta.
pub const CONFIG_DELTA: &str = "config-delta";

/// Signed-blob purpose of the asset manifest.
pub const ASSET_MANIFEST: &str = "asset-manifest";

/// The server's asset manifest, sent signed at join.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AssetManifest {
    /// Every asset, by professional path.
    pub entries: Vec<AssetEntry>,
}

/// One asset (all its quality variants).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssetEntry {
    /// Professional path: `Models/Aquariums/Aquarium_Lv1` (no extension, no quality suffix).
    pub path: String,
    /// Category: a model subcategory (Aquariums, Characters, ...) or a type (Textures, ...).
    pub category: String,
    /// Type by extension: model, texture, sound, font, data, document.
    pub kind: String,
    /// Load priority: critical, high, medium or low.
    pub priority: String,
    /// The files: quality (empty: the only one), file path, size, sha256.
    pub variants: Vec<AssetVariant>,
}

/// One file of an asset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssetVariant {
    /// LOW, MEDIUM, HIGH, ULTRA, PROFESSIONAL, or empty.
    pub quality: String,
    /// Path under the assets dir.
    pub file: String,
    /// Bytes.
    pub size: u64,
    /// Hex sha256.
    pub sha256: String,
}

/// An AES-256-GCM envelope as it travels (see `transport::envelope`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// Key epoch (bumped on rekey).
    pub epoch: u32,
    /// Per-direction message counter within the epoch; with the epoch it forms the nonce.
    pub counter: u64,
    /// Ciphertext and tag.
    pub ciphertext: Vec<u8>,
}

/// Client → server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ClientMessage {
    /// A one-way remote event.
    Event(ClientEvent),
    /// A remote function call.
    Request {
        /// Echoed in the response.
        id: RequestId,
        /// What is asked.
        body: ClientRequest,
    },
    /// A sensitive message ([`SealedClientMessage`]) in an envelope.
    Sealed(Sealed),
}

/// One-way events a client sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ClientEvent {
    /// Liveness and clock sample: the client's wall clock in ms since the Unix epoch.
    Heartbeat {
        /// Client time.
        client_time_ms: u64,
    },
    /// A chat line.
    Chat {
        /// The text (at most [`MAX_CHAT_CHARS`] characters).
        text: String,
    },
}

/// Longest chat line.
pub const MAX_CHAT_CHARS: usize = 200;
/// Largest echo payload.
pub const MAX_ECHO_BYTES: usize = 16 * 1024;

/// Remote functions a client may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ClientRequest {
    /// Returns the payload (diagnostics and load tests).
    Echo {
        /// At most [`MAX_ECHO_BYTES`].
        payload: Vec<u8>,
    },
    /// Ask to change a Shared configuration value (needs `config.write.shared`).
    SetConfig {
        /// Dotted key path.
        path: String,
        /// The new value.
        value: ConfigValue,
    },
    /// The server's own figures (tick time, memory, clients); tick percentiles over the most
    /// recent `recent_ticks` ticks (0: all kept).
    ServerStats {
        /// How many recent ticks the percentiles cover.
        recent_ticks: u32,
    },
}

/// Sensitive client messages: only ever sent inside an envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SealedClientMessage {
    /// A remote function call whose request and response travel sealed.
    Request {
        /// Echoed in the sealed response.
        id: RequestId,
        /// What is asked.
        body: SealedRequest,
    },
}

/// Sensitive remote functions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SealedRequest {
    /// Returns the payload sealed (checks the envelope end to end).
    SecureEcho {
        /// At most [`MAX_ECHO_BYTES`].
        payload: Vec<u8>,
    },
    /// Buy from the shop with coins.
    Purchase {
        /// The client's id for this operation (for its prediction).
        op_id: u64,
        /// What.
        item: ShopItem,
        /// How many (1..=[`MAX_PURCHASE_QUANTITY`]; tank upgrades: 1).
        quantity: u32,
    },
    /// Sell one fish for `game.sellRefund` of its price.
    Sell {
        /// The client's id for this operation (for its prediction).
        op_id: u64,
        /// The fish.
        fish: u64,
    },
    /// Feed fish (hunger back to 0).
    Feed {
        /// The client's id for this operation (for its prediction).
        op_id: u64,
        /// One fish, or every fish (`None`).
        fish: Option<u64>,
    },
    /// Give coins to another player who is online now.
    Gift {
        /// The client's id for this operation (for its prediction).
        op_id: u64,
        /// The recipient's player id.
        to: u64,
        /// Coins, 1..=[`MAX_GIFT`].
        coins: i64,
    },
    /// Look at another online player's aquarium (read-only).
    Visit {
        /// Whose.
        player: u64,
    },
    /// An administrative command; each needs its own permission (see [`AdminCommand::permission`]).
    Admin(AdminCommand),
}

/// A player's own game state as the server holds it (authoritative), with the last of the
/// client's operations it reflects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlayerState {
    /// Coins.
    pub coins: i64,
    /// Tank level 1..=5.
    pub tank_level: u8,
    /// The fish: id, species, hunger.
    pub fish: Vec<FishState>,
    /// Decorations in the tank, by kind, in the order they were bought.
    #[serde(default)]
    pub decorations: Vec<u8>,
    /// The last client operation id applied (0: none yet this session).
    pub last_op: u64,
}

/// One fish as the client sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FishState {
    /// Unique within the profile.
    pub id: u64,
    /// Species index.
    pub species: u8,
    /// 0 (fed) .. 100 (starving).
    pub hunger: f32,
}

/// Most items of one kind bought in one purchase.
pub const MAX_PURCHASE_QUANTITY: u32 = 20;
/// Most fish species the protocol can name.
pub const MAX_SPECIES: u8 = 32;

/// Decoration kinds the protocol allows (the catalog may sell fewer).
pub const MAX_DECORATION_KINDS: u8 = 16;

/// The largest gift, in coins.
pub const MAX_GIFT: i64 = 1_000_000;
/// Longest reason text in an admin command.
pub const MAX_REASON_CHARS: usize = 200;
/// Longest ban (seconds): a year.
pub const MAX_BAN_SECONDS: u64 = 365 * 24 * 3600;
/// Largest coin grant (either sign).
pub const MAX_GRANT: i64 = 1_000_000_000;

/// Something the shop sells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShopItem {
    /// A fish of a species (index into `game.fishPrices`).
    Fish {
        /// Species index.
        species: u8,
    },
    /// The next tank level.
    TankUpgrade,
    /// A decoration (index into `game.decorationPrices`: 0 rock, 1 plant, 2 castle, ...).
    Decoration {
        /// Decoration kind.
        kind: u8,
    },
}

/// Administrative remote functions (sealed, permission-gated, audited).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AdminCommand {
    /// End a player's session (needs `admin.kick`).
    Kick {
        /// The player.
        player: u64,
        /// Shown to the player.
        reason: String,
    },
    /// Ban a player for a time and end their session (needs `admin.ban`).
    Ban {
        /// The player.
        player: u64,
        /// How long (1..=[`MAX_BAN_SECONDS`]).
        seconds: u64,
        /// Recorded and shown.
        reason: String,
    },
    /// Lift a ban (needs `admin.ban`).
    Unban {
        /// The player.
        player: u64,
    },
    /// Give (or, negative, take) coins; an offline player gets them at next join (needs
    /// `admin.grant`).
    GrantCoins {
        /// The player.
        player: u64,
        /// Coins (non-zero, |amount| <= [`MAX_GRANT`]).
        amount: i64,
    },
    /// Assign a role (needs `admin.role`).
    SetRole {
        /// The player.
        player: u64,
        /// A role defined in `roles.ron`.
        role: String,
    },
    /// Reload the config dir now (needs `admin.config.reload`).
    ReloadConfig,
    /// Security figures (needs `admin.stats`).
    Stats,
    /// Run every health check now (needs `admin.health`).
    Health,
    /// Conflicts waiting for a person (needs `admin.reconcile`).
    ListConflicts,
    /// Settle a waiting conflict by taking one side (needs `admin.reconcile`).
    ResolveConflict {
        /// Its id from [`AdminCommand::ListConflicts`].
        id: u64,
        /// True: the server's in-memory side ("ours"); false: the stored side ("theirs").
        take_ours: bool,
    },
}

/// A conflict waiting for a person, as an admin sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConflictReport {
    /// Its id.
    pub id: u64,
    /// The record's type ("profile").
    pub record: String,
    /// The record's key (the player id).
    pub key: u64,
    /// Fields in conflict: path, base, ours, theirs (JSON text).
    pub fields: Vec<(String, String, String, String)>,
}

impl AdminCommand {
    /// The permission the command needs.
    pub fn permission(&self) -> &'static str {
        match self {
            AdminCommand::Kick { .. } => "admin.kick",
            AdminCommand::Ban { .. } | AdminCommand::Unban { .. } => "admin.ban",
            AdminCommand::GrantCoins { .. } => "admin.grant",
            AdminCommand::SetRole { .. } => "admin.role",
            AdminCommand::ReloadConfig => "admin.config.reload",
            AdminCommand::Stats => "admin.stats",
            AdminCommand::Health => "admin.health",
            AdminCommand::ListConflicts | AdminCommand::ResolveConflict { .. } => "admin.reconcile",
        }
    }
}

/// Security figures, as an admin sees them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SecurityStatsReport {
    /// Messages refused by validation (malformed, oversized, out of range, bad envelope).
    pub failed_validations: u64,
    /// Messages over a rate limit.
    pub rate_limited: u64,
    /// Connection attempts refused by the per-address limit.
    pub connect_attempts_refused: u64,
    /// Strikes counted.
    pub strikes: u64,
    /// Kicks (strikes, admins, expiry).
    pub kicks: u64,
    /// Bans imposed.
    pub bans: u64,
    /// Bans in force now.
    pub active_bans: u64,
    /// Permission checks refused.
    pub denied_permissions: u64,
    /// Suspicious events by kind.
    pub suspicious: Vec<(String, u64)>,
}

/// Server → client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ServerMessage {
    /// First message of a session.
    Welcome {
        /// The session's id.
        session_id: SessionId,
        /// The server's protocol version.
        protocol_version: u16,
        /// The name from the token, as the server knows it.
        display_name: String,
    },
    /// A one-way remote event.
    Event(ServerEvent),
    /// The answer to a [`ClientMessage::Request`].
    Response {
        /// The request's id.
        id: RequestId,
        /// The result.
        result: Result<ServerResponse, RemoteError>,
    },
    /// A sensitive message ([`SealedServerMessage`]) in an envelope.
    Sealed(Sealed),
    /// A server-signed blob (asset manifest, config snapshot) with its detached HMAC-SHA256
    /// signature under the session's signing key; the client verifies before use.
    Signed {
        /// What the blob is ("manifest", "config"); part of the signed data.
        purpose: String,
        /// The blob.
        blob: Vec<u8>,
        /// HMAC-SHA256 over purpose and blob.
        signature: [u8; 32],
    },
    /// The server is ending the session; the client shows the reason.
    Kicked {
        /// Why.
        reason: String,
    },
}

/// One-way events the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ServerEvent {
    /// A chat line from a player.
    Chat {
        /// Who said it.
        from: String,
        /// What was said.
        text: String,
    },
    /// An announcement to everyone.
    Notice {
        /// The text.
        text: String,
    },
    /// The richest players on this server now: player id, name and coins, richest first.
    Leaderboard(Vec<(u64, String, i64)>),
}

/// Answers to [`ClientRequest`]s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ServerResponse {
    /// The echoed payload.
    Echo {
        /// Same bytes as sent.
        payload: Vec<u8>,
    },
    /// The server's figures.
    ServerStats(ServerStatsReport),
    /// A config change was applied; the new version.
    ConfigSet {
        /// Config version after the change.
        version: u64,
    },
}

/// The server's own figures, for the load test and operators.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerStatsReport {
    /// Clients connected now.
    pub clients: u32,
    /// Tick time, median, ms.
    pub tick_p50_ms: f64,
    /// Tick time, 99th percentile, ms.
    pub tick_p99_ms: f64,
    /// Ticks measured.
    pub ticks: u64,
    /// Resident set size, MiB.
    pub rss_mb: f64,
    /// Messages received since start.
    pub messages_in: u64,
    /// Messages rejected or dropped since start.
    pub rejected: u64,
    /// CPU time the server process used since start, all threads, seconds.
    pub cpu_seconds: f64,
}

/// Sensitive server messages: only ever sent inside an envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SealedServerMessage {
    /// The answer to a [`SealedClientMessage::Request`].
    Response {
        /// The request's id.
        id: RequestId,
        /// The result.
        result: Result<SealedResponse, RemoteError>,
    },
    /// A server-initiated sensitive event.
    Event(SealedServerEvent),
}

/// Sensitive one-way events from the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SealedServerEvent {
    /// The player's authoritative game state (at join, after changes, and periodically).
    State(PlayerState),
}

/// Answers to [`SealedRequest`]s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SealedResponse {
    /// Another player's aquarium, read-only (the answer to [`SealedRequest::Visit`]).
    Visit {
        /// Whose.
        player: u64,
        /// Their display name.
        name: String,
        /// Their tank, fish and decorations (coins included: the leaderboard shows them).
        state: PlayerState,
    },
    /// The echoed payload.
    SecureEcho {
        /// Same bytes as sent.
        payload: Vec<u8>,
    },
    /// A game operation (purchase, feeding) went through; the authoritative state after it.
    Applied {
        /// The client's operation id.
        op_id: u64,
        /// The state after it.
        state: PlayerState,
    },
    /// The answer to [`AdminCommand::Health`].
    Health {
        /// healthy, degraded or unhealthy.
        overall: String,
        /// Each system: name, status, reason.
        systems: Vec<(String, String, String)>,
    },
    /// The answer to [`AdminCommand::ListConflicts`].
    Conflicts(Vec<ConflictReport>),
    /// An admin command was carried out.
    AdminDone {
        /// What was done.
        detail: String,
    },
    /// The answer to [`AdminCommand::Stats`].
    SecurityStats(SecurityStatsReport),
}

/// Why a remote function failed, as the caller sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RemoteError {
    /// No answer within `network.messageTimeout`.
    #[error("timed out after {0} ms")]
    Timeout(u64),
    /// The server refused the request.
    #[error("rejected: {0}")]
    Rejected(String),
    /// The connection ended before an answer came.
    #[error("disconnected before an answer")]
    Disconnected,
}

/// A message that knows its channel. Each kind has a fixed channel.
pub trait Channeled {
    /// The renet channel this message travels on.
    fn channel(&self) -> u8;
    /// A short stable name for statistics.
    fn kind(&self) -> &'static str;
}

impl Channeled for ClientMessage {
    fn channel(&self) -> u8 {
        match self {
            ClientMessage::Event(ClientEvent::Heartbeat { .. }) => channel::UNRELIABLE,
            ClientMessage::Event(_) => channel::RELIABLE_UNORDERED,
            ClientMessage::Request { .. } | ClientMessage::Sealed(_) => channel::RELIABLE_ORDERED,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            ClientMessage::Event(ClientEvent::Heartbeat { .. }) => "heartbeat",
            ClientMessage::Event(ClientEvent::Chat { .. }) => "chat",
            ClientMessage::Request {
                body: ClientRequest::Echo { .. },
                ..
            } => "echo",
            ClientMessage::Request {
                body: ClientRequest::ServerStats { .. },
                ..
            } => "server_stats",
            ClientMessage::Request {
                body: ClientRequest::SetConfig { .. },
                ..
            } => "set_config",
            ClientMessage::Sealed(_) => "sealed",
        }
    }
}

impl Channeled for ServerMessage {
    fn channel(&self) -> u8 {
        match self {
            ServerMessage::Event(_) => channel::RELIABLE_UNORDERED,
            _ => channel::RELIABLE_ORDERED,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            ServerMessage::Welcome { .. } => "welcome",
            ServerMessage::Event(_) => "event",
            ServerMessage::Response { .. } => "response",
            ServerMessage::Sealed(_) => "sealed",
            ServerMessage::Signed { .. } => "signed",
            ServerMessage::Kicked { .. } => "kicked",
        }
    }
}

/// Decoding failures. None of them panics; all of them are counted by the transport.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Input larger than [`MAX_MESSAGE_BYTES`].
    #[error("message of {0} bytes is over the {MAX_MESSAGE_BYTES}-byte limit")]
    TooLarge(usize),
    /// Not a valid encoding of the expected type.
    #[error("undecodable message: {0}")]
    Malformed(String),
    /// Valid prefix followed by extra bytes.
    #[error("{0} trailing bytes after the message")]
    Trailing(usize),
    /// Encoding failed (a value over the limit).
    #[error("cannot encode: {0}")]
    Encode(String),
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_MESSAGE_BYTES>()
}

/// Encodes a message.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, CodecError> {
    let bytes = bincode::serde::encode_to_vec(msg, config())
        .map_err(|e| CodecError::Encode(e.to_string()))?;
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(CodecError::TooLarge(bytes.len()));
    }
    Ok(bytes)
}

/// Decodes a message, refusing oversized input, malformed input and trailing bytes.
pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, CodecError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(CodecError::TooLarge(bytes.len()));
    }
    let (msg, used) = bincode::serde::decode_from_slice(bytes, config())
        .map_err(|e| CodecError::Malformed(e.to_string()))?;
    if used != bytes.len() {
        return Err(CodecError::Trailing(bytes.len() - used));
    }
    Ok(msg)
}

/// Validation beside the types: limits a well-formed message must also respect.
pub fn validate_client_message(msg: &ClientMessage) -> Result<(), String> {
    match msg {
        ClientMessage::Event(ClientEvent::Chat { text })
            if text.chars().count() > MAX_CHAT_CHARS =>
        {
            Err(format!("chat line over {MAX_CHAT_CHARS} characters"))
        }
        ClientMessage::Request {
            body: ClientRequest::Echo { payload },
            ..
        } if payload.len() > MAX_ECHO_BYTES => {
            Err(format!("echo payload over {MAX_ECHO_BYTES} bytes"))
        }
        ClientMessage::Request {
            body: ClientRequest::SetConfig { path, .. },
            ..
        } if path.len() > 128 => Err("config key path over 128 bytes".into()),
        _ => Ok(()),
    }
}

/// Checks a sealed request's fields (after the envelope opened): the validator of
/// [`SealedRequest`], as [`validate_client_message`] is of [`ClientMessage`].
pub fn validate_sealed_request(req: &SealedRequest) -> Result<(), String> {
    let reason_ok = |r: &str| {
        if r.chars().count() > MAX_REASON_CHARS {
            Err(format!("reason over {MAX_REASON_CHARS} characters"))
        } else {
            Ok(())
        }
    };
    match req {
        SealedRequest::SecureEcho { payload } if payload.len() > MAX_ECHO_BYTES => {
            Err(format!("sealed echo payload over {MAX_ECHO_BYTES} bytes"))
        }
        SealedRequest::SecureEcho { .. }
        | SealedRequest::Feed { .. }
        | SealedRequest::Sell { .. }
        | SealedRequest::Visit { .. } => Ok(()),
        SealedRequest::Gift { coins, to, .. } => {
            if !(1..=MAX_GIFT).contains(coins) {
                Err(format!("a gift of {coins} coins is not 1..={MAX_GIFT}"))
            } else if *to == 0 {
                Err("a gift needs a recipient".into())
            } else {
                Ok(())
            }
        }
        SealedRequest::Purchase { item, quantity, .. } => {
            if !(1..=MAX_PURCHASE_QUANTITY).contains(quantity) {
                return Err(format!(
                    "quantity {quantity} is not 1..={MAX_PURCHASE_QUANTITY}"
                ));
            }
            match item {
                ShopItem::Fish { species } if *species >= MAX_SPECIES => {
                    Err(format!("species {species} is not 0..{MAX_SPECIES}"))
                }
                ShopItem::TankUpgrade if *quantity != 1 => {
                    Err("a tank upgrade is bought one level at a time".into())
                }
                ShopItem::Decoration { kind } if *kind >= MAX_DECORATION_KINDS => Err(format!(
                    "decoration {kind} is not 0..{MAX_DECORATION_KINDS}"
                )),
                _ => Ok(()),
            }
        }
        SealedRequest::Admin(cmd) => match cmd {
            AdminCommand::Kick { reason, .. } => reason_ok(reason),
            AdminCommand::Ban {
                seconds, reason, ..
            } => {
                if !(1..=MAX_BAN_SECONDS).contains(seconds) {
                    return Err(format!("ban of {seconds} s is not 1..={MAX_BAN_SECONDS}"));
                }
                reason_ok(reason)
            }
            AdminCommand::GrantCoins { amount, .. }
                if *amount == 0 || amount.unsigned_abs() > MAX_GRANT as u64 =>
            {
                Err(format!(
                    "grant of {amount} is not non-zero within ±{MAX_GRANT}"
                ))
            }
            AdminCommand::SetRole { role, .. }
                if role.is_empty()
                    || role.len() > 32
                    || !role.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                Err("role names are 1-32 letters, digits or '_'".into())
            }
            _ => Ok(()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_kind() {
        let msgs = vec![
            ClientMessage::Event(ClientEvent::Heartbeat { client_time_ms: 5 }),
            ClientMessage::Event(ClientEvent::Chat { text: "hi".into() }),
            ClientMessage::Request {
                id: 7,
                body: ClientRequest::Echo {
                    payload: vec![1, 2, 3],
                },
            },
            ClientMessage::Request {
                id: 8,
                body: ClientRequest::ServerStats { recent_ticks: 0 },
            },
            ClientMessage::Sealed(Sealed {
                epoch: 1,
                counter: 2,
                ciphertext: vec![9; 20],
            }),
        ];
        for m in msgs {
            let bytes = encode(&m).unwrap();
            assert_eq!(decode::<ClientMessage>(&bytes).unwrap(), m);
        }
    }

    #[test]
    fn refuses_oversized_malformed_and_trailing() {
        assert!(matches!(
            decode::<ClientMessage>(&vec![0u8; MAX_MESSAGE_BYTES + 1]),
            Err(CodecError::TooLarge(_))
        ));
        assert!(matches!(
            decode::<ClientMessage>(&[0xFF, 0xFF, 0xFF]),
            Err(CodecError::Malformed(_))
        ));
        let mut bytes = encode(&ClientMessage::Event(ClientEvent::Chat {
            text: "x".into(),
        }))
        .unwrap();
        bytes.push(0);
        assert!(matches!(
            decode::<ClientMessage>(&bytes),
            Err(CodecError::Trailing(1))
        ));
        // A length prefix that claims far more than the limit must not allocate it.
        let lie = [3u8, 0xFC, 0xFF, 0xFF, 0xFF, 0x7F];
        assert!(decode::<ClientMessage>(&lie).is_err());
    }

    #[test]
    fn protocol_id_carries_the_version() {
        assert_eq!(protocol_version_of(PROTOCOL_ID), Some(PROTOCOL_VERSION));
        assert_eq!(protocol_version_of(protocol_id_for(9)), Some(9));
        assert_eq!(protocol_version_of(12345), None);
    }

    #[test]
    fn validation_limits() {
        let long = "x".repeat(MAX_CHAT_CHARS + 1);
        assert!(
            validate_client_message(&ClientMessage::Event(ClientEvent::Chat { text: long }))
                .is_err()
        );
        assert!(
            validate_client_message(&ClientMessage::Event(ClientEvent::Chat {
                text: "ok".into()
            }))
            .is_ok()
        );
    }
}
