//! Security (the seed's SecurityFramework), in part: the gate every client message passes, rate
//! limits, strikes, kicks and temporary bans.
//!
//! The gate is structural. The transport only queues decoded, validated messages of clients in
//! session ([`crate::transport::InboundQueue`]); the only writer of the messages that handlers
//! read (`ClientEventReceived`, `RequestReceived`, `SealedRequestReceived`) is [`admit`], which
//! rate-limits each message first. A server without this plugin admits nothing.
//!
//! Roles and permissions come from `config/roles.ron`; assignments are kept in
//! `<data>/roles.json`. A session with no player action for `security.sessionTimeout` is ended.
//!
//! Not built yet (issue #5): economy and clock-skew detectors, a per-address connection limit,
//! the audit log store and its CLI, admin commands.

pub mod audit;
pub mod rate_limit;
pub mod roles;
pub mod strikes;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use bevy::prelude::*;

pub use audit::{AuditKind, AuditLog, AuditQuery, AuditRecord};
pub use rate_limit::{ActionClass, Limit, RateLimiter};
pub use roles::{DEFAULT_ROLE, RoleBook, RolesError};
pub use strikes::{StrikeBook, StrikeOutcome};

use crate::config::Config;
use crate::protocol::{ClientEvent, ClientRequest, RemoteError};
use crate::transport::{
    ClientEventReceived, Inbound, InboundQueue, RequestReceived, SealedRequestReceived,
    SecuritySignalRaised, ServerNet, SessionStarted, TransportSystems,
};

/// The action class of a message.
pub fn classify(inbound: &Inbound) -> ActionClass {
    match inbound {
        Inbound::Event {
            event: ClientEvent::Chat { .. },
            ..
        } => ActionClass::Chat,
        Inbound::Event {
            event: ClientEvent::Heartbeat { .. },
            ..
        } => ActionClass::Background,
        Inbound::Request {
            body: ClientRequest::SetConfig { .. },
            ..
        } => ActionClass::ConfigRequest,
        Inbound::Request { .. } | Inbound::SealedRequest { .. } => ActionClass::Call,
    }
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
        for class in [
            ActionClass::Chat,
            ActionClass::Purchase,
            ActionClass::ConfigRequest,
            ActionClass::Call,
            ActionClass::Background,
        ] {
            let per_second: f64 = config.get(&format!("security.rateLimits.{}", class.key()))?;
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
                crate::transport::unix_now().as_millis() as u64,
            )
            .map_err(|e| SecurityError::Io(format!("audit log in {}: {e}", data.display())))?,
        })
    }

    /// Appends an audit record now.
    pub fn audit(&mut self, player: Option<u64>, kind: AuditKind, details: String) {
        let at_ms = crate::transport::unix_now().as_millis() as u64;
        self.audit.record(AuditRecord {
            at_ms,
            player,
            session: None,
            kind,
            details,
        });
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
        let now_ms = crate::transport::unix_now().as_millis() as u64;
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
                self.bans.insert(player, until_ms);
                self.save_bans();
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

/// The security plugin (server).
pub struct SecurityPlugin;

impl Plugin for SecurityPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(
            PreUpdate,
            (enforce_bans, admit, strike_signals, expire_sessions)
                .chain()
                .after(TransportSystems::Receive),
        );
    }
}

/// Rate-limits every queued message and hands the admitted ones to the handlers.
#[allow(clippy::too_many_arguments)]
pub fn admit(
    mut queue: ResMut<InboundQueue>,
    security: Option<ResMut<Security>>,
    net: Option<ResMut<ServerNet>>,
    time: Res<Time<Real>>,
    mut events: MessageWriter<ClientEventReceived>,
    mut requests: MessageWriter<RequestReceived>,
    mut sealed: MessageWriter<SealedRequestReceived>,
) {
    let inbound = queue.drain();
    let (Some(mut security), Some(mut net)) = (security, net) else {
        return;
    };
    let now = time.elapsed();
    for msg in inbound {
        let client = match &msg {
            Inbound::Event { client, .. }
            | Inbound::Request { client, .. }
            | Inbound::SealedRequest { client, .. } => *client,
        };
        let Some(player) = net.session(client).map(|s| s.player_id) else {
            continue;
        };
        if net.is_being_kicked(client) {
            // Already on the way out: dropped without further strikes.
            continue;
        }
        let class = classify(&msg);
        if !security.limiter.allow(player, class, now) {
            match &msg {
                Inbound::Request { id, .. } => {
                    net.respond(
                        client,
                        *id,
                        Err(RemoteError::Rejected(format!(
                            "rate limited: {}",
                            class.key()
                        ))),
                    );
                }
                Inbound::SealedRequest { id, .. } => {
                    net.respond_sealed(
                        client,
                        *id,
                        Err(RemoteError::Rejected(format!(
                            "rate limited: {}",
                            class.key()
                        ))),
                    );
                }
                Inbound::Event { .. } => {}
            }
            security.strike(
                &mut net,
                client,
                player,
                &format!("over the {} rate limit", class.key()),
                now,
            );
            continue;
        }
        if class != ActionClass::Background {
            security.last_action.insert(client, now);
        }
        match msg {
            Inbound::Event { client, event } => {
                events.write(ClientEventReceived { client, event });
            }
            Inbound::Request { client, id, body } => {
                requests.write(RequestReceived { client, id, body });
            }
            Inbound::SealedRequest { client, id, body } => {
                sealed.write(SealedRequestReceived { client, id, body });
            }
        }
    }
}

fn strike_signals(
    mut signals: MessageReader<SecuritySignalRaised>,
    security: Option<ResMut<Security>>,
    net: Option<ResMut<ServerNet>>,
    time: Res<Time<Real>>,
) {
    let (Some(mut security), Some(mut net)) = (security, net) else {
        return;
    };
    for s in signals.read() {
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
    security: Option<ResMut<Security>>,
    net: Option<ResMut<ServerNet>>,
    mut ended: MessageReader<crate::transport::SessionEnded>,
    time: Res<Time<Real>>,
) {
    let (Some(mut security), Some(mut net)) = (security, net) else {
        return;
    };
    for e in ended.read() {
        security.last_action.remove(&e.client);
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
    security: Option<ResMut<Security>>,
    net: Option<ResMut<ServerNet>>,
    time: Res<Time<Real>>,
) {
    let (Some(mut security), Some(mut net)) = (security, net) else {
        return;
    };
    let now_ms = crate::transport::unix_now().as_millis() as u64;
    for s in started.read() {
        security.last_action.insert(s.client, time.elapsed());
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
