//! The framework's own remote messages: liveness, diagnostics, configuration and administration.
//! They are registered in every app (the transport's `FrameworkProtocolPlugin`) and declared like
//! any game's messages: a type with a name, a channel, a rate class, a permission and a validator.

use serde::{Deserialize, Serialize};

use super::ConfigValue;
use super::remote::{Delivery, Remote, RemoteFunction};

/// Longest chat line.
pub const MAX_CHAT_CHARS: usize = 200;
/// Largest echo payload.
pub const MAX_ECHO_BYTES: usize = 16 * 1024;
/// Longest reason text in an admin command.
pub const MAX_REASON_CHARS: usize = 200;
/// Longest ban (seconds): a year.
pub const MAX_BAN_SECONDS: u64 = 365 * 24 * 3600;
/// Longest config key path in a request.
pub const MAX_CONFIG_PATH_BYTES: usize = 128;

/// `reason` within [`MAX_REASON_CHARS`].
pub fn check_reason(reason: &str) -> Result<(), String> {
    if reason.chars().count() > MAX_REASON_CHARS {
        Err(format!("reason over {MAX_REASON_CHARS} characters"))
    } else {
        Ok(())
    }
}

/// Liveness and clock sample (client → server, unreliable): the client's wall clock in ms since
/// the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Client time.
    pub client_time_ms: u64,
}

impl Remote for Heartbeat {
    const NAME: &'static str = "bq.heartbeat";
    const DELIVERY: Delivery = Delivery::Unreliable;
    const RATE_CLASS: &'static str = "background";
    const BACKGROUND: bool = true;
}

/// A chat line (client → server).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chat {
    /// The text (at most [`MAX_CHAT_CHARS`] characters).
    pub text: String,
}

impl Remote for Chat {
    const NAME: &'static str = "bq.chat";
    const DELIVERY: Delivery = Delivery::ReliableUnordered;
    const RATE_CLASS: &'static str = "chat";
    fn validate(&self) -> Result<(), String> {
        if self.text.chars().count() > MAX_CHAT_CHARS {
            Err(format!("chat line over {MAX_CHAT_CHARS} characters"))
        } else {
            Ok(())
        }
    }
}

/// Returns the payload (diagnostics and load tests).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Echo {
    /// At most [`MAX_ECHO_BYTES`].
    pub payload: Vec<u8>,
}

impl Remote for Echo {
    const NAME: &'static str = "bq.echo";
    fn validate(&self) -> Result<(), String> {
        if self.payload.len() > MAX_ECHO_BYTES {
            Err(format!("echo payload over {MAX_ECHO_BYTES} bytes"))
        } else {
            Ok(())
        }
    }
}

impl RemoteFunction for Echo {
    type Response = Vec<u8>;
}

/// Returns the payload sealed (checks the envelope end to end).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecureEcho {
    /// At most [`MAX_ECHO_BYTES`].
    pub payload: Vec<u8>,
}

impl Remote for SecureEcho {
    const NAME: &'static str = "bq.secure_echo";
    const SEALED: bool = true;
    fn validate(&self) -> Result<(), String> {
        if self.payload.len() > MAX_ECHO_BYTES {
            Err(format!("sealed echo payload over {MAX_ECHO_BYTES} bytes"))
        } else {
            Ok(())
        }
    }
}

impl RemoteFunction for SecureEcho {
    type Response = Vec<u8>;
}

/// The server's own figures (tick time, memory, clients); tick percentiles over the most recent
/// `recent_ticks` ticks (0: all kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerStats {
    /// How many recent ticks the percentiles cover.
    pub recent_ticks: u32,
}

impl Remote for ServerStats {
    const NAME: &'static str = "bq.server_stats";
}

impl RemoteFunction for ServerStats {
    type Response = ServerStatsReport;
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
    /// Passes between ticks run since start (a dedicated server answers calls in them).
    pub between_passes: u64,
    /// Time spent in passes between ticks since start, seconds.
    pub between_seconds: f64,
    /// Recent passes between ticks, 99th percentile, ms.
    pub between_p99_ms: f64,
}

/// Ask to change a Shared configuration value (needs `config.write.shared`); answers the config
/// version after the change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetConfig {
    /// Dotted key path.
    pub path: String,
    /// The new value.
    pub value: ConfigValue,
}

impl Remote for SetConfig {
    const NAME: &'static str = "bq.set_config";
    const RATE_CLASS: &'static str = "config";
    fn validate(&self) -> Result<(), String> {
        if self.path.len() > MAX_CONFIG_PATH_BYTES {
            Err(format!(
                "config key path over {MAX_CONFIG_PATH_BYTES} bytes"
            ))
        } else {
            Ok(())
        }
    }
}

impl RemoteFunction for SetConfig {
    type Response = u64;
}

/// Declares an admin command: sealed, behind `permission`, answered with `response`.
macro_rules! admin_command {
    ($ty:ty, $name:literal, $permission:literal, $response:ty) => {
        admin_command!($ty, $name, $permission, $response, |_c: &$ty| Ok(()));
    };
    ($ty:ty, $name:literal, $permission:literal, $response:ty, $validate:expr) => {
        impl Remote for $ty {
            const NAME: &'static str = $name;
            const SEALED: bool = true;
            fn validate(&self) -> Result<(), String> {
                let check: fn(&$ty) -> Result<(), String> = $validate;
                check(self)
            }
            fn permission(&self) -> Option<&'static str> {
                Some($permission)
            }
        }
        impl RemoteFunction for $ty {
            type Response = $response;
        }
    };
}

/// End a player's session (needs `admin.kick`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kick {
    /// The player.
    pub player: u64,
    /// Shown to the player.
    pub reason: String,
}
admin_command!(Kick, "bq.admin.kick", "admin.kick", String, |c: &Kick| {
    check_reason(&c.reason)
});

/// Disable an account (its player is kicked and refused at login) or enable it again (needs
/// `admin.accounts`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetAccountDisabled {
    /// The account's username (any case).
    pub username: String,
    /// Disable (true) or enable (false).
    pub disabled: bool,
}
admin_command!(
    SetAccountDisabled,
    "bq.admin.account_disabled",
    "admin.accounts",
    String,
    |c: &SetAccountDisabled| {
        if c.username.len() > 64 {
            return Err(format!("username of {} bytes", c.username.len()));
        }
        Ok(())
    }
);

/// Ban a player for a time and end their session (needs `admin.ban`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ban {
    /// The player.
    pub player: u64,
    /// How long (1..=[`MAX_BAN_SECONDS`]).
    pub seconds: u64,
    /// Recorded and shown.
    pub reason: String,
}
admin_command!(Ban, "bq.admin.ban", "admin.ban", String, |c: &Ban| {
    if !(1..=MAX_BAN_SECONDS).contains(&c.seconds) {
        return Err(format!(
            "ban of {} s is not 1..={MAX_BAN_SECONDS}",
            c.seconds
        ));
    }
    check_reason(&c.reason)
});

/// Lift a ban (needs `admin.ban`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unban {
    /// The player.
    pub player: u64,
}
admin_command!(Unban, "bq.admin.unban", "admin.ban", String);

/// Assign a role (needs `admin.role`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetRole {
    /// The player.
    pub player: u64,
    /// A role defined in `roles.ron`.
    pub role: String,
}
admin_command!(
    SetRole,
    "bq.admin.set_role",
    "admin.role",
    String,
    |c: &SetRole| {
        if c.role.is_empty()
            || c.role.len() > 32
            || !c
                .role
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            Err("role names are 1-32 letters, digits or '_'".into())
        } else {
            Ok(())
        }
    }
);

/// Reload the config dir now (needs `admin.config.reload`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadConfig;
admin_command!(
    ReloadConfig,
    "bq.admin.reload_config",
    "admin.config.reload",
    String
);

/// Security figures (needs `admin.stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityStats;
admin_command!(
    SecurityStats,
    "bq.admin.security_stats",
    "admin.stats",
    SecurityStatsReport
);

/// Run every health check now (needs `admin.health`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health;
admin_command!(Health, "bq.admin.health", "admin.health", HealthReport);

/// Hand every player of this server to other servers on the same store, then stop (needs
/// `admin.drain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drain;
admin_command!(Drain, "bq.admin.drain", "admin.drain", String);

/// Server → client: play on another server from now on; dial `server` with `token` (the token
/// file's bytes). Sealed: the token carries the new session's keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveToServer {
    /// The server to dial.
    pub server: std::net::SocketAddr,
    /// The connect token for it.
    pub token: Vec<u8>,
}

impl Remote for MoveToServer {
    const NAME: &'static str = "bq.move_to_server";
    const SEALED: bool = true;
    fn validate(&self) -> Result<(), String> {
        if self.token.len() > 4096 {
            return Err("a connect token over 4096 bytes".into());
        }
        Ok(())
    }
}

/// Conflicts waiting for a person (needs `admin.reconcile`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListConflicts;
admin_command!(
    ListConflicts,
    "bq.admin.list_conflicts",
    "admin.reconcile",
    Vec<ConflictReport>
);

/// Settle a waiting conflict by taking one side (needs `admin.reconcile`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolveConflict {
    /// Its id from [`ListConflicts`].
    pub id: u64,
    /// True: the server's in-memory side ("ours"); false: the stored side ("theirs").
    pub take_ours: bool,
}
admin_command!(
    ResolveConflict,
    "bq.admin.resolve_conflict",
    "admin.reconcile",
    String
);

/// The answer to [`Health`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    /// healthy, degraded or unhealthy.
    pub overall: String,
    /// Each system: name, status, reason.
    pub systems: Vec<(String, String, String)>,
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
