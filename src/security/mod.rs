//! Security (the seed's SecurityFramework), in part: the gate every client message passes, rate
//! limits, strikes, kicks and temporary bans.
//!
//! The gate is structural. The transport only queues messages of clients in session, decoded and
//! validated by their registered types ([`crate::transport::InboundQueue`]); the only writer of
//! what handlers read (`FromClient<T>`, `Call<T>`, through [`crate::transport::Admitted`]) is
//! [`admit`], which rate-limits each message by its type's class and checks the permission its
//! value needs. A server without this plugin admits nothing.
//!
//! Roles and permissions come from `config/roles.ron`; assignments are kept in
//! `<data>/roles.json`. A session with no player action for `security.sessionTimeout` is ended.
//!
//! Detectors raise [`SuspiciousActivity`]: clock skew in heartbeats here, a game's own detectors
//! there, and connection floods from one address (the transport's `AddressGate`). Admin commands
//! ([`admin`]) are sealed remote functions, each behind the permission its type names, all
//! audited.

mod admin;
mod audit;
mod detect;
mod health;
mod rate_limit;
mod roles;
mod strikes;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use bevy::prelude::*;

pub use audit::{AuditKind, AuditLog, AuditQuery, AuditRecord, query as query_audit};
pub use detect::Suspicion;
pub use rate_limit::{FALLBACK_CLASS, Limit, RateLimiter};
pub use roles::{DEFAULT_ROLE, RoleBook, RolesError};
pub use strikes::{StrikeBook, StrikeOutcome};

use crate::config::{Config, ConfigChanged, Side, Tier};
use crate::protocol::builtin::{Heartbeat, SecurityStatsReport};
use crate::protocol::{RemoteError, SessionId};
use crate::stages::{BetweenTicks, ServerRequests, ServerSystems};
use crate::transport::{
    Admitted, FromClient, InboundQueue, RemoteRegistry, RemoteSystems, SecuritySignalRaised,
    ServerNet, SessionStarted,
};

/// Suspicious activity seen by a detector outside this plugin (the game's economy checks).
#[derive(Message, Debug, Clone)]
pub struct SuspiciousActivity {
    /// The client, when it came from one (it gets a strike).
    pub client: Option<u64>,
    /// The player, when there is one.
    pub player: Option<u64>,
    /// What kind.
    pub kind: Suspicion,
    /// Details for the audit log.
    pub detail: String,
}

/// A player's sessions on the other servers of a shared store are to end (a kick, a ban, a
/// disabled account): announced by whoever ended them here; the data store carries it over the
/// channel between servers, and each server that plays the player ends the session.
#[derive(Message, Debug, Clone)]
pub struct EndSessionsElsewhere {
    /// The player.
    pub player: u64,
    /// Shown to the player.
    pub reason: String,
}

/// A change of the bans or role assignments, as servers sharing a store pass it on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SecurityChange {
    /// Banned until (Unix ms).
    Ban {
        /// The player.
        player: u64,
        /// Until, Unix ms.
        until_ms: u64,
    },
    /// A ban lifted.
    Unban {
        /// The player.
        player: u64,
    },
    /// A role assigned.
    Role {
        /// The player.
        player: u64,
        /// The role.
        role: String,
    },
}

/// Security changed its bans or roles by an admin's command here: announced for the data store,
/// which keeps it in a shared store and passes it to the other servers.
#[derive(Message, Debug, Clone)]
pub struct SecurityChanged(pub SecurityChange);

/// A change made on another server (or kept in the shared store) for security to apply here.
#[derive(Message, Debug, Clone)]
pub struct ApplySecurityChange {
    /// The change.
    pub change: SecurityChange,
    /// Where it came from (for the audit log).
    pub from: String,
}

/// Every audit record, announced while other servers share this server's store: the data store
/// keeps them there, so the store holds every server's audit log.
#[derive(Message, Debug, Clone)]
pub struct AuditRecorded(pub AuditRecord);

/// Present when other servers share this server's store (the data store inserts it): a
/// command about a player who is not here is carried to them.
#[derive(Resource, Debug, Clone, Copy)]
pub struct OtherServers;

/// An audit record another subsystem asks security to write (security owns the log).
#[derive(Message, Debug, Clone)]
pub struct AuditEntry {
    /// The player it is about.
    pub player: Option<u64>,
    /// What kind of event.
    pub kind: AuditKind,
    /// Details.
    pub details: String,
}

/// The server's security state.
#[derive(Resource)]
pub struct Security {
    /// Token buckets.
    pub limiter: RateLimiter,
    /// Strikes, kicks, bans.
    pub strikes: StrikeBook,
    /// Player → ban end (ms since the Unix epoch), persisted in `bans_file`.
    pub bans: HashMap<u64, u64>,
    bans_file: PathBuf,
    /// Kicks issued.
    pub kicks: u64,
    /// Roles and what they grant.
    pub roles: RoleBook,
    /// Player → role (players without one have [`DEFAULT_ROLE`]).
    pub assignments: HashMap<u64, String>,
    assignments_file: PathBuf,
    /// Client → time of its last admitted player action (heartbeats do not count).
    last_action: HashMap<u64, Duration>,
    session_timeout: Duration,
    /// Permission checks refused.
    pub denied: u64,
    /// The audit log.
    pub audit: AuditLog,
    /// Records also go to the shared store (see [`AuditRecorded`]): set while other servers
    /// share this server's store.
    shared_audit: bool,
    /// Records not yet announced for the shared store.
    recorded: Vec<AuditRecord>,
    /// Live player → session id (for audit records).
    sessions: HashMap<u64, SessionId>,
    /// Messages refused by the transport's validation (malformed, oversized, out of range, bad
    /// envelope).
    pub failed_validations: u64,
    /// Bans imposed (strikes and admins).
    pub bans_total: u64,
    /// Suspicious events by kind.
    pub suspicious: BTreeMap<String, u64>,
    skew: detect::SkewReports,
    max_clock_skew: Duration,
    /// Connection attempts refused by the per-address gate (mirrored from the transport).
    pub connect_refused: u64,
    /// `security.enableLogging`: audit records are written (live).
    audit_enabled: bool,
}

/// The roles file shipped in the binary, used when the config dir has none.
pub const EMBEDDED_ROLES: &str = include_str!("../../config/roles.ron");

/// Why security could not start.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// A setting.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// `roles.ron`.
    #[error(transparent)]
    Roles(#[from] RolesError),
    /// Reading or writing a file.
    #[error("{0}")]
    Io(String),
}

impl Security {
    /// From the `security.*` config keys, `<config>/roles.ron` (or the built-in copy), and the
    /// bans and role assignments under `<data>/`.
    pub fn from_config(
        config: &Config,
        config_dir: &std::path::Path,
        data: &std::path::Path,
    ) -> Result<Self, SecurityError> {
        let roles_path = config_dir.join("roles.ron");
        let roles = match std::fs::read_to_string(&roles_path) {
            Ok(text) => RoleBook::parse(&roles_path.display().to_string(), &text)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                RoleBook::parse("<embedded roles.ron>", EMBEDDED_ROLES)?
            }
            Err(e) => return Err(SecurityError::Io(format!("{}: {e}", roles_path.display()))),
        };
        let assignments_file = data.join("roles.json");
        let assignments = std::fs::read(&assignments_file)
            .ok()
            .and_then(|b| serde_json::from_slice::<HashMap<u64, String>>(&b).ok())
            .unwrap_or_default();
        let mut limits = Vec::new();
        let classes: Vec<String> = config
            .schema()
            .keys()
            .filter_map(|k| k.spec.path.strip_prefix("security.rateLimits."))
            .map(str::to_string)
            .collect();
        for class in classes {
            let per_second: f64 = config.get(&format!("security.rateLimits.{class}"))?;
            limits.push((
                class,
                Limit {
                    per_second,
                    burst: per_second.max(1.0),
                },
            ));
        }
        let bans_file = data.join("bans.json");
        let bans = std::fs::read(&bans_file)
            .ok()
            .and_then(|b| serde_json::from_slice::<HashMap<u64, u64>>(&b).ok())
            .unwrap_or_default();
        Ok(Self {
            limiter: RateLimiter::new(limits),
            strikes: StrikeBook::new(
                config.get("security.maxFailedAttempts")?,
                config.get("security.rateLimitWindow")?,
                config.get("security.kicksBeforeBan")?,
                config.get("security.banWindow")?,
                config.get("security.banLength")?,
            ),
            bans,
            bans_file,
            kicks: 0,
            roles,
            assignments,
            assignments_file,
            last_action: HashMap::new(),
            session_timeout: config.get("security.sessionTimeout")?,
            denied: 0,
            audit: AuditLog::open(
                data,
                config.get("security.auditRetention")?,
                crate::clock::now_ms(),
            )
            .map_err(|e| SecurityError::Io(format!("audit log in {}: {e}", data.display())))?,
            sessions: HashMap::new(),
            failed_validations: 0,
            bans_total: 0,
            suspicious: BTreeMap::new(),
            skew: detect::SkewReports::default(),
            max_clock_skew: config.get("security.maxClockSkew")?,
            connect_refused: 0,
            audit_enabled: audit_logging(config.get("security.enableLogging")?),
            shared_audit: false,
            recorded: Vec::new(),
        })
    }

    /// Appends an audit record now; the player's live session id is filled in.
    pub fn audit(&mut self, player: Option<u64>, kind: AuditKind, details: String) {
        if !self.audit_enabled {
            return;
        }
        let at_ms = crate::clock::now_ms();
        let session = player
            .and_then(|p| self.sessions.get(&p))
            .map(|s| format!("{s:032x}"));
        let rec = AuditRecord {
            at_ms,
            player,
            session,
            kind,
            details,
        };
        if self.shared_audit {
            self.recorded.push(rec.clone());
        }
        self.audit.record(rec);
    }

    /// Counts and audits suspicious activity.
    pub fn suspicious(&mut self, player: Option<u64>, kind: Suspicion, detail: &str) {
        *self.suspicious.entry(kind.key().to_string()).or_default() += 1;
        warn!(?player, "suspicious activity ({}): {detail}", kind.key());
        self.audit(
            player,
            AuditKind::Suspicious,
            format!("{}: {detail}", kind.key()),
        );
    }

    /// The figures an admin sees.
    pub fn stats(&self) -> SecurityStatsReport {
        let now_ms = crate::clock::now_ms();
        SecurityStatsReport {
            failed_validations: self.failed_validations,
            rate_limited: self.limiter.refused,
            connect_attempts_refused: self.connect_refused,
            strikes: self.strikes.total_strikes,
            kicks: self.kicks,
            bans: self.bans_total,
            active_bans: self.bans.values().filter(|u| **u > now_ms).count() as u64,
            denied_permissions: self.denied,
            suspicious: self
                .suspicious
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
        }
    }

    /// Bans a player until `until_ms` (persisted, counted; the caller audits and kicks).
    pub fn ban(&mut self, player: u64, until_ms: u64) {
        self.bans.insert(player, until_ms);
        self.bans_total += 1;
        self.save_bans();
    }

    /// Lifts a ban; false if there was none in force.
    pub fn unban(&mut self, player: u64) -> bool {
        let now_ms = crate::clock::now_ms();
        let was = self.bans.remove(&player).is_some_and(|u| u > now_ms);
        self.save_bans();
        was
    }

    /// The role of a player.
    pub fn role_of(&self, player: u64) -> &str {
        self.assignments
            .get(&player)
            .map_or(DEFAULT_ROLE, String::as_str)
    }

    /// True if the player's role grants `permission`; a refusal is counted and audited.
    pub fn has_permission(&mut self, player: u64, permission: &str) -> bool {
        let role = self.role_of(player).to_string();
        let ok = self.roles.allows(&role, permission);
        if !ok {
            self.denied += 1;
            self.audit(
                Some(player),
                AuditKind::PermissionDenied,
                format!("{permission} denied (role {role})"),
            );
        }
        ok
    }

    /// Gives a player a role (persisted, audited).
    pub fn assign_role(
        &mut self,
        player: u64,
        role: &str,
        actor: &str,
    ) -> Result<(), SecurityError> {
        if !self.roles.exists(role) {
            return Err(SecurityError::Io(format!("no such role {role}")));
        }
        self.assignments.insert(player, role.to_string());
        let tmp = self.assignments_file.with_extension("json.tmp");
        serde_json::to_vec(&self.assignments)
            .map_err(std::io::Error::other)
            .and_then(|b| std::fs::write(&tmp, b))
            .and_then(|()| std::fs::rename(&tmp, &self.assignments_file))
            .map_err(|e| SecurityError::Io(format!("{}: {e}", self.assignments_file.display())))?;
        self.audit(
            Some(player),
            AuditKind::AdminAction,
            format!("role set to {role} by {actor}"),
        );
        Ok(())
    }

    fn save_bans(&self) {
        let tmp = self.bans_file.with_extension("json.tmp");
        let written = serde_json::to_vec(&self.bans)
            .map_err(std::io::Error::other)
            .and_then(|b| std::fs::write(&tmp, b))
            .and_then(|()| std::fs::rename(&tmp, &self.bans_file));
        if let Err(e) = written {
            error!("cannot persist bans to {}: {e}", self.bans_file.display());
        }
    }

    /// Counts a strike and carries out what it leads to.
    fn strike(&mut self, net: &mut ServerNet, client: u64, player: u64, why: &str, now: Duration) {
        let now_ms = crate::clock::now_ms();
        match self.strikes.strike(player, now, now_ms) {
            StrikeOutcome::Counted(n) => self.audit(
                Some(player),
                AuditKind::Strike,
                format!("strike {n}: {why}"),
            ),
            StrikeOutcome::Kick => {
                self.kicks += 1;
                self.audit(
                    Some(player),
                    AuditKind::Kick,
                    format!("kicked after repeated strikes: {why}"),
                );
                net.kick(
                    client,
                    &format!("kicked: too many invalid or excessive messages ({why})"),
                );
            }
            StrikeOutcome::Ban { until_ms } => {
                self.kicks += 1;
                self.ban(player, until_ms);
                self.audit(
                    Some(player),
                    AuditKind::Ban,
                    format!("banned until {until_ms} ms: {why}"),
                );
                net.kick(client, "banned for repeated abuse; try again later");
            }
        }
    }
}

/// The security plugin (server). [`Self::from_config`] reads the settings, roles, bans and role
/// assignments (a bad one stops start-up); `build` inserts [`Security`].
pub struct SecurityPlugin {
    security: crate::process::Carried<Security>,
}

impl SecurityPlugin {
    /// From the `security.*` keys, `<config>/roles.ron` and the files under `<data>`.
    pub fn from_config(
        config: &Config,
        paths: &crate::process::Paths,
    ) -> Result<Self, SecurityError> {
        Ok(Self {
            security: crate::process::Carried::new(Security::from_config(
                config,
                &paths.config,
                &paths.data,
            )?),
        })
    }
}

impl Plugin for SecurityPlugin {
    fn build(&self, app: &mut App) {
        crate::stages::server(app);
        crate::process::insert_carried(app, "the security plugin", &self.security);
        crate::integration::register(app, health::INTEGRATION);
        app.add_message::<SuspiciousActivity>()
            .add_message::<ConfigChanged>()
            .add_message::<AuditEntry>()
            .add_message::<EndSessionsElsewhere>()
            .add_message::<SecurityChanged>()
            .add_message::<ApplySecurityChange>()
            .add_message::<AuditRecorded>()
            .configure_sets(
                PreUpdate,
                RemoteSystems::Gate.before(RemoteSystems::Deliver),
            )
            .add_systems(
                PreUpdate,
                (
                    enforce_bans,
                    admit,
                    strike_signals,
                    expire_sessions,
                    connection_floods,
                )
                    .chain()
                    .in_set(RemoteSystems::Gate)
                    .in_set(ServerSystems::Admit),
            )
            .add_systems(
                Update,
                (
                    clock_skew,
                    audit_config_changes,
                    apply_changes_from_elsewhere,
                    announce_audit.run_if(resource_exists::<OtherServers>),
                )
                    .in_set(ServerSystems::Handle),
            )
            .add_systems(ServerRequests, admin::answer_admin)
            // Between ticks, only the gate itself: strikes, bans and expiries read messages and
            // clocks the tick keeps.
            .add_systems(
                BetweenTicks,
                admit
                    .in_set(RemoteSystems::Gate)
                    .in_set(ServerSystems::Admit),
            )
            // After every handler has run, before anything is sent: what the handlers saw is
            // audited (and struck: a kick goes out this tick).
            .add_systems(
                Update,
                (suspicious_activity, record_audit_entries).in_set(ServerSystems::Persist),
            );
    }
}

/// The security gate: the only way from the transport's queue to handlers. Each decoded message
/// is rate-limited by its type's class and checked against the permission its value needs; what
/// passes is admitted and becomes a typed message (`FromClient<T>`, `Call<T>`). A refused call is
/// answered with the reason; every refusal is a strike.
#[allow(clippy::too_many_arguments)]
pub fn admit(
    mut queue: ResMut<InboundQueue>,
    mut security: ResMut<Security>,
    mut net: ResMut<ServerNet>,
    registry: Res<RemoteRegistry>,
    time: Res<Time<Real>>,
    mut admitted: ResMut<Admitted>,
) {
    let inbound = queue.drain();
    let now = time.elapsed();
    for msg in inbound {
        let client = msg.client;
        let Some(player) = net.session(client).map(|s| s.player_id) else {
            continue;
        };
        if net.is_being_kicked(client) {
            // Already on the way out: dropped without further strikes.
            continue;
        }
        let Some(entry) = registry.get(msg.kind) else {
            continue;
        };
        let class = entry.rate_class;
        if !security.limiter.allow(player, class, now) {
            if let Some(id) = msg.id {
                net.respond_raw(
                    client,
                    id,
                    msg.sealed,
                    Err(RemoteError::Rejected(format!("rate limited: {class}"))),
                );
            }
            security.strike(
                &mut net,
                client,
                player,
                &format!("over the {class} rate limit"),
                now,
            );
            continue;
        }
        if !entry.background {
            security.last_action.insert(client, now);
        }
        if let Some(permission) = entry.permission(msg.body.as_ref())
            && !security.has_permission(player, permission)
        {
            if let Some(id) = msg.id {
                net.respond_raw(
                    client,
                    id,
                    msg.sealed,
                    Err(RemoteError::Rejected(format!(
                        "permission denied: {permission}"
                    ))),
                );
            }
            security.strike(
                &mut net,
                client,
                player,
                &format!("{} without {permission}", entry.name),
                now,
            );
            continue;
        }
        admitted.admit(msg.kind, client, msg.id, msg.body);
    }
}

fn strike_signals(
    mut signals: MessageReader<SecuritySignalRaised>,
    mut security: ResMut<Security>,
    mut net: ResMut<ServerNet>,
    time: Res<Time<Real>>,
) {
    for s in signals.read() {
        use crate::transport::SignalKind;
        security.failed_validations += 1;
        if matches!(
            s.0.kind,
            SignalKind::Tampered | SignalKind::Replayed | SignalKind::BadEpoch
        ) {
            *security
                .suspicious
                .entry(format!("envelope_{:?}", s.0.kind).to_lowercase())
                .or_default() += 1;
        }
        let Some(player) = net.session(s.0.client).map(|x| x.player_id) else {
            continue;
        };
        if net.is_being_kicked(s.0.client) {
            continue;
        }
        security.audit(
            Some(player),
            AuditKind::AuthFailure,
            format!("{:?}: {}", s.0.kind, s.0.detail),
        );
        security.strike(
            &mut net,
            s.0.client,
            player,
            &format!("{:?}: {}", s.0.kind, s.0.detail),
            time.elapsed(),
        );
    }
}

/// Ends sessions with no player action for `security.sessionTimeout` (heartbeats do not count).
fn expire_sessions(
    mut security: ResMut<Security>,
    mut net: ResMut<ServerNet>,
    mut ended: MessageReader<crate::transport::SessionEnded>,
    time: Res<Time<Real>>,
) {
    for e in ended.read() {
        security.last_action.remove(&e.client);
        security.skew.forget(e.client);
        if security.sessions.get(&e.player_id) == Some(&e.session_id) {
            security.sessions.remove(&e.player_id);
        }
    }
    let now = time.elapsed();
    let timeout = security.session_timeout;
    let expired: Vec<u64> = security
        .last_action
        .iter()
        .filter(|(_, t)| now.saturating_sub(**t) > timeout)
        .map(|(c, _)| *c)
        .collect();
    for client in expired {
        security.last_action.remove(&client);
        let player = net.session(client).map(|s| s.player_id);
        security.audit(
            player,
            AuditKind::SessionExpired,
            format!("no activity for {timeout:?}"),
        );
        net.kick(
            client,
            "session expired after inactivity; reconnect to play",
        );
    }
}

fn enforce_bans(
    mut started: MessageReader<SessionStarted>,
    mut security: ResMut<Security>,
    mut net: ResMut<ServerNet>,
    time: Res<Time<Real>>,
) {
    let now_ms = crate::clock::now_ms();
    for s in started.read() {
        security.last_action.insert(s.client, time.elapsed());
        security.sessions.insert(s.player_id, s.session_id);
        if let Some(until) = security.bans.get(&s.player_id).copied()
            && until > now_ms
        {
            let details = format!("refused at connect, banned until {until} ms");
            security.audit(Some(s.player_id), AuditKind::BanEnforced, details);
            net.kick(
                s.client,
                &format!("banned for {} more seconds", (until - now_ms) / 1000 + 1),
            );
        }
    }
}

/// Heartbeats carry the client's wall clock: a clock far from the server's (over
/// `security.maxClockSkew`) is reported once per session.
fn clock_skew(
    mut events: MessageReader<FromClient<Heartbeat>>,
    mut security: ResMut<Security>,
    net: Res<ServerNet>,
) {
    let server_ms = crate::clock::now_ms();
    let max = security.max_clock_skew;
    for e in events.read() {
        let client_time_ms = e.message.client_time_ms;
        if let Some(skew) = detect::clock_skew(client_time_ms, server_ms, max)
            && security.skew.first(e.client)
        {
            let player = net.session(e.client).map(|s| s.player_id);
            security.suspicious(
                player,
                Suspicion::CLOCK_SKEW,
                &format!(
                    "client clock is {skew} ms off (limit {} ms)",
                    max.as_millis()
                ),
            );
        }
    }
}

/// Reports addresses the transport's connection gate refused.
fn connection_floods(
    mut security: ResMut<Security>,
    mut transport: ResMut<crate::transport::GatedServerTransport>,
) {
    let (refused, flooders) = transport.take_connect_refusals();
    security.connect_refused = refused;
    for (addr, n) in flooders {
        security.suspicious(
            None,
            Suspicion::CONNECT_FLOOD,
            &format!("{addr}: {n} connection attempts over the per-address limit"),
        );
    }
}

/// Every change of the server's config is an audit record (ServerOnly values stay out of the
/// text: the log may be read by moderators).
fn audit_config_changes(
    mut changed: MessageReader<ConfigChanged>,
    mut security: ResMut<Security>,
    config: Res<Config>,
) {
    for c in changed.read().filter(|c| c.side == Side::Server) {
        let shown = |v: &crate::protocol::ConfigValue| match config
            .schema()
            .key(&c.path)
            .map(|k| k.spec.tier)
        {
            Some(Tier::ServerOnly) => "<ServerOnly>".to_string(),
            _ => v.to_string(),
        };
        let details = format!(
            "config {} changed by {}: {} -> {} ({})",
            c.path,
            c.actor,
            shown(&c.old),
            shown(&c.new),
            c.reason
        );
        // A change of the audit switch itself is always recorded: switched on before the
        // record, off after it.
        let switch = (c.path == "security.enableLogging")
            .then(|| config.get::<bool>("security.enableLogging").ok())
            .flatten();
        if switch == Some(true) {
            security.audit_enabled = audit_logging(true);
        }
        security.audit(None, AuditKind::ConfigChange, details);
        if switch == Some(false) {
            security.audit_enabled = audit_logging(false);
        }
    }
}

/// `security.enableLogging`, said loudly when off.
fn audit_logging(enabled: bool) -> bool {
    if !enabled {
        warn!(
            "security.enableLogging is false: NO AUDIT RECORDS are written (kicks, bans, admin commands, config changes, suspicious activity go unrecorded)"
        );
    }
    enabled
}

/// Writes the audit records other subsystems sent.
fn record_audit_entries(mut entries: MessageReader<AuditEntry>, mut security: ResMut<Security>) {
    for e in entries.read() {
        security.audit(e.player, e.kind, e.details.clone());
    }
}

/// Audits suspicious activity other plugins saw; activity from a client is also a strike.
fn suspicious_activity(
    mut seen: MessageReader<SuspiciousActivity>,
    mut security: ResMut<Security>,
    mut net: ResMut<ServerNet>,
    time: Res<Time<Real>>,
) {
    for s in seen.read() {
        security.suspicious(s.player, s.kind, &s.detail);
        if let (Some(client), Some(player)) = (s.client, s.player)
            && !net.is_being_kicked(client)
        {
            security.strike(&mut net, client, player, &s.detail, time.elapsed());
        }
    }
}

/// While other servers share the store: this server's audit records, announced for it.
fn announce_audit(mut security: ResMut<Security>, mut out: MessageWriter<AuditRecorded>) {
    security.shared_audit = true;
    out.write_batch(
        std::mem::take(&mut security.recorded)
            .into_iter()
            .map(AuditRecorded),
    );
}

/// Bans and role assignments made on another server of the shared store (or kept in it), applied
/// here and audited with where they came from.
fn apply_changes_from_elsewhere(
    mut changes: MessageReader<ApplySecurityChange>,
    mut security: ResMut<Security>,
) {
    for ApplySecurityChange { change, from } in changes.read() {
        match change {
            SecurityChange::Ban { player, until_ms } => {
                if security.bans.get(player) != Some(until_ms) {
                    security.ban(*player, *until_ms);
                    security.audit(
                        Some(*player),
                        AuditKind::Ban,
                        format!("banned until {until_ms} (Unix ms) on {from}"),
                    );
                }
            }
            SecurityChange::Unban { player } => {
                if security.bans.contains_key(player) {
                    security.unban(*player);
                    security.audit(
                        Some(*player),
                        AuditKind::AdminAction,
                        format!("unbanned on {from}"),
                    );
                }
            }
            SecurityChange::Role { player, role } => {
                if security.role_of(*player) != role
                    && let Err(e) = security.assign_role(*player, role, from)
                {
                    warn!(player, "role {role} from {from} not assigned here: {e}");
                }
            }
        }
    }
}
