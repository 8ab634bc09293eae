//! `bloxquarium admin …`: the admin commands for operators, sent to a running server as the
//! sealed admin requests a client would send, authenticated by a token file of a player whose
//! role grants them. Human output, or one JSON object with `--json`. Exit status: 0 done; 1 the
//! server refused or failed it (a missing permission, an unknown player; `health`: a check is
//! Unhealthy or Unready); 2 no answer (bad token file, cannot connect, timed out).

use std::time::{Duration, Instant};

use serde::Serialize;

use super::ToolError;
use crate::cli::{AdminArgs, AdminCommand};
use crate::protocol::builtin::{
    Ban, ConflictReport, Drain, Health, HealthReport, Kick, ListConflicts, ReloadConfig,
    ResolveConflict, SecurityStats, SecurityStatsReport, SetRole, Unban,
};
use crate::protocol::{RemoteError, RemoteFunction, decode_response};
use crate::transport::{
    ClientCore, ClientCredentials, ClientNotice, IssuedToken, TransportSettings, open_client,
};

/// Loop period while waiting: a client's 60 Hz frame.
const STEP: Duration = Duration::from_millis(16);

/// Runs one admin command; returns what to print.
pub fn run(global: &crate::cli::GlobalArgs, args: &AdminArgs) -> Result<String, ToolError> {
    let paths = global.paths();
    // The client's own network settings (rekeying); the server's are not known before joining.
    let settings = crate::config::load_server(&paths.config, &crate::game::KEYS)
        .ok()
        .and_then(|c| TransportSettings::from_config(&c).ok());
    let rekey_after = settings.map_or(1 << 20, |s| s.rekey_after);
    let mut link = Link::open(args, &paths, rekey_after)?;
    let json = args.json;
    match &args.command {
        AdminCommand::Kick { player, reason } => said(
            json,
            "kick",
            link.ask(&Kick {
                player: *player,
                reason: reason.clone(),
            }),
        ),
        AdminCommand::Ban {
            player,
            length,
            reason,
        } => said(
            json,
            "ban",
            link.ask(&Ban {
                player: *player,
                seconds: length.as_secs().max(1),
                reason: reason.clone(),
            }),
        ),
        AdminCommand::Unban { player } => said(json, "unban", link.ask(&Unban { player: *player })),
        AdminCommand::Grant { player, amount } => said(
            json,
            "grant",
            link.ask(&crate::game::protocol::GrantCoins {
                player: *player,
                amount: *amount,
            }),
        ),
        AdminCommand::ReverseTrade { trade, a, b } => said(
            json,
            "reverse-trade",
            link.ask(&crate::game::protocol::ReverseTrade {
                trade: *trade,
                players: (*a, *b),
            }),
        ),
        AdminCommand::Role { player, role } => said(
            json,
            "role",
            link.ask(&SetRole {
                player: *player,
                role: role.clone(),
            }),
        ),
        AdminCommand::Disable { username } | AdminCommand::Enable { username } => {
            let disabled = matches!(args.command, AdminCommand::Disable { .. });
            said(
                json,
                if disabled { "disable" } else { "enable" },
                link.ask(&crate::protocol::builtin::SetAccountDisabled {
                    username: username.clone(),
                    disabled,
                }),
            )
        }
        AdminCommand::Reload => said(json, "reload", link.ask(&ReloadConfig)),
        AdminCommand::Stats => {
            let report = link.ask(&SecurityStats)?;
            Ok(if json {
                to_json("stats", &report)
            } else {
                stats_text(&report)
            })
        }
        AdminCommand::Health => {
            let report = link.ask(&Health)?;
            let text = if json {
                to_json("health", &report)
            } else {
                health_text(&report)
            };
            if report.overall == "unhealthy" || report.overall == "unready" {
                Err(ToolError::Refused(text))
            } else {
                Ok(text)
            }
        }
        AdminCommand::Drain => said(json, "drain", link.ask(&Drain)),
        AdminCommand::Conflicts => {
            let list = link.ask(&ListConflicts)?;
            Ok(if json {
                to_json("conflicts", &list)
            } else {
                conflicts_text(&list)
            })
        }
        AdminCommand::Resolve { id, ours, .. } => said(
            json,
            "resolve",
            link.ask(&ResolveConflict {
                id: *id,
                take_ours: *ours,
            }),
        ),
    }
}

/// The answer, or the tool's error for a refusal (exit 1) or no answer (exit 2).
fn answered<T>(r: Result<T, RemoteError>) -> Result<T, ToolError> {
    r.map_err(|e| match e {
        RemoteError::Rejected(why) => ToolError::Refused(format!("refused: {why}")),
        RemoteError::Malformed(why) => ToolError::Refused(format!("malformed answer: {why}")),
        other => ToolError::NoAnswer(other.to_string()),
    })
}

/// A command whose answer is a sentence.
fn said(json: bool, command: &str, r: Result<String, ToolError>) -> Result<String, ToolError> {
    let text = r?;
    Ok(if json { to_json(command, &text) } else { text })
}

fn to_json(command: &str, answer: &impl Serialize) -> String {
    serde_json::json!({ "command": command, "ok": true, "answer": answer }).to_string()
}

fn stats_text(r: &SecurityStatsReport) -> String {
    let mut out = format!(
        "failed validations {}\nrate-limited {}\nconnection attempts refused {}\nstrikes {}\nkicks {}\nbans {} ({} active)\npermissions denied {}",
        r.failed_validations,
        r.rate_limited,
        r.connect_attempts_refused,
        r.strikes,
        r.kicks,
        r.bans,
        r.active_bans,
        r.denied_permissions
    );
    for (kind, n) in &r.suspicious {
        out.push_str(&format!("\nsuspicious {kind}: {n}"));
    }
    out
}

fn health_text(r: &HealthReport) -> String {
    let mut out = format!("overall {}", r.overall);
    for (name, status, reason) in &r.systems {
        out.push_str(&format!("\n  {name}: {status}"));
        if !reason.is_empty() {
            out.push_str(&format!(" ({reason})"));
        }
    }
    out
}

fn conflicts_text(list: &[ConflictReport]) -> String {
    if list.is_empty() {
        return "no conflicts waiting".into();
    }
    let mut out = Vec::new();
    for c in list {
        out.push(format!("conflict {}: {} {}", c.id, c.record, c.key));
        for (field, base, ours, theirs) in &c.fields {
            out.push(format!(
                "  {field}: base {base}, ours {ours}, theirs {theirs}"
            ));
        }
    }
    out.push("settle one with `bloxquarium admin resolve ID --ours|--theirs`".into());
    out.join("\n")
}

/// One client connection to the server, for one command.
struct Link {
    client: renet::RenetClient,
    transport: crate::transport::BatchedClientTransport,
    core: ClientCore,
    start: Instant,
    last: Instant,
    wait: Duration,
    server: std::net::SocketAddr,
}

impl Link {
    /// Reads the token file (or makes a token with the server's key) and connects, waiting up
    /// to `--wait` for the server's welcome.
    fn open(
        args: &AdminArgs,
        paths: &crate::process::Paths,
        rekey_after: u64,
    ) -> Result<Self, ToolError> {
        let protocol_id = <crate::game::AquariumGame as crate::definition::Game>::protocol_id();
        let (token, server) = match (&args.token, args.as_player) {
            (Some(file), _) => {
                let token = IssuedToken::read_file(file).map_err(|e| {
                    ToolError::NoAnswer(format!("token file {}: {e}", file.display()))
                })?;
                let server = token
                    .dial(args.server)
                    .map_err(|e| ToolError::NoAnswer(e.to_string()))?;
                (token, server)
            }
            (None, Some(player)) => {
                let server = args.server.unwrap_or_else(crate::cli::default_bind);
                let key = crate::keys::load(&crate::keys::key_path(&paths.keys)).map_err(|e| {
                    ToolError::NoAnswer(format!(
                        "--as needs the server's key (run on its host with its --data): {e}"
                    ))
                })?;
                let token = crate::transport::TokenIssuer::new(key, protocol_id, vec![server])
                    .issue(player, "operator")
                    .map_err(|e| ToolError::NoAnswer(e.to_string()))?;
                (token, server)
            }
            (None, None) => {
                return Err(ToolError::NoAnswer(
                    "give --token FILE or --as PLAYER".into(),
                ));
            }
        };
        let opened = open_client(
            server,
            ClientCredentials::Token(Box::new(token)),
            protocol_id,
        )
        .map_err(|e| ToolError::NoAnswer(e.to_string()))?;
        let now = Instant::now();
        let mut link = Self {
            client: opened.client.0,
            transport: opened.transport,
            core: ClientCore::new(opened.material, args.wait, rekey_after),
            start: now,
            last: now,
            wait: args.wait,
            server,
        };
        let deadline = now + args.wait;
        loop {
            for n in link.step()? {
                if let ClientNotice::Welcomed { .. } = n {
                    return Ok(link);
                }
            }
            if Instant::now() > deadline {
                let hint = if args.token.is_some() {
                    " (a token file connects once: netcode refuses it from a second address; \
                     make a new one, or use --as on the server's host)"
                } else {
                    ""
                };
                return Err(ToolError::NoAnswer(format!(
                    "no welcome from {} within {:?}: is the server running there?{hint}",
                    link.server, link.wait
                )));
            }
            std::thread::sleep(STEP);
        }
    }

    /// One frame: netcode, renet, the core; the notices that arrived.
    fn step(&mut self) -> Result<Vec<ClientNotice>, ToolError> {
        let dt = self.last.elapsed();
        self.last = Instant::now();
        let now = self.start.elapsed();
        self.client.update(dt);
        if let Err(e) = self.transport.update(dt, &mut self.client) {
            let why = match self.transport.disconnect_reason() {
                Some(r) => crate::transport::describe_disconnect(Some(r)),
                None => e.to_string(),
            };
            return Err(ToolError::NoAnswer(format!(
                "connection to {} ended: {why}",
                self.server
            )));
        }
        let mut notices = Vec::new();
        if self.client.is_connected() {
            notices = self.core.receive(&mut self.client, now);
            notices.extend(self.core.expire(now));
        }
        for n in &notices {
            match n {
                ClientNotice::Kicked { reason } => {
                    return Err(ToolError::Refused(format!(
                        "the server ended the session: {reason}"
                    )));
                }
                ClientNotice::Refused { reason } => {
                    tracing::warn!("input from the server refused: {reason}");
                }
                _ => {}
            }
        }
        self.core.flush(&mut self.client);
        self.transport
            .send_packets(&mut self.client)
            .map_err(|e| ToolError::NoAnswer(format!("sending to {}: {e}", self.server)))?;
        Ok(notices)
    }

    /// Sends `request` and waits for its answer (the core times it out after `--wait`).
    fn ask<T: RemoteFunction>(&mut self, request: &T) -> Result<T::Response, ToolError> {
        let id = self.core.call(request, self.start.elapsed());
        let answer = loop {
            let notices = match self.step() {
                Ok(n) => n,
                Err(e) => break Err(e),
            };
            if let Some(result) = notices.into_iter().find_map(|n| match n {
                ClientNotice::Rpc {
                    id: got, result, ..
                } if got == id => Some(result),
                _ => None,
            }) {
                break answered(decode_response::<T>(result));
            }
            std::thread::sleep(STEP);
        };
        self.transport.disconnect();
        answer
    }
}
