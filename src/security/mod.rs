//! Security (the seed's SecurityFramework), in part: the gate every client message passes, rate
//! limits, strikes, kicks and temporary bans.
//!
//! The gate is structural. The transport only queues decoded, validated messages of clients in
//! session ([`crate::transport::InboundQueue`]); the only writer of the messages that handlers
//! read (`ClientEventReceived`, `RequestReceived`, `SealedRequestReceived`) is [`admit`], which
//! rate-limits each message first. A server without this plugin admits nothing.
//!
//! Not built yet (issue #5): roles and permissions, session expiry, economy detectors, the audit
//! log store and its CLI, admin commands.

pub mod rate_limit;
pub mod strikes;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use bevy::prelude::*;

pub use rate_limit::{ActionClass, Limit, RateLimiter};
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
}

impl Security {
    /// From the `security.*` config keys; bans from `<data>/bans.json`.
    pub fn from_config(
        config: &Config,
        data: &std::path::Path,
    ) -> Result<Self, crate::config::ConfigError> {
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
        })
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
            StrikeOutcome::Counted(n) => info!(target: "audit", player, "strike {n}: {why}"),
            StrikeOutcome::Kick => {
                self.kicks += 1;
                info!(target: "audit", player, "kicked after repeated strikes: {why}");
                net.kick(
                    client,
                    &format!("kicked: too many invalid or excessive messages ({why})"),
                );
            }
            StrikeOutcome::Ban { until_ms } => {
                self.kicks += 1;
                self.bans.insert(player, until_ms);
                self.save_bans();
                info!(target: "audit", player, "banned until {until_ms} ms: {why}");
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
            (enforce_bans, admit, strike_signals)
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
        security.strike(
            &mut net,
            s.0.client,
            player,
            &format!("{:?}: {}", s.0.kind, s.0.detail),
            time.elapsed(),
        );
    }
}

fn enforce_bans(
    mut started: MessageReader<SessionStarted>,
    security: Option<Res<Security>>,
    net: Option<ResMut<ServerNet>>,
) {
    let (Some(security), Some(mut net)) = (security, net) else {
        return;
    };
    let now_ms = crate::transport::unix_now().as_millis() as u64;
    for s in started.read() {
        if let Some(until) = security.bans.get(&s.player_id)
            && *until > now_ms
        {
            info!(target: "audit", player = s.player_id, "banned player refused at connect");
            net.kick(
                s.client,
                &format!("banned for {} more seconds", (until - now_ms) / 1000 + 1),
            );
        }
    }
}
