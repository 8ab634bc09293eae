//! The server side of the network service, as plain Rust over `renet::RenetServer`: sessions,
//! decoding and validation, envelopes, remote events and functions, statistics.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use renet::RenetServer;

use super::envelope::{EnvelopeError, SessionCrypto};
use super::stats::NetworkStats;
use super::token::TokenIdentity;
use crate::protocol::{
    self, Channeled, ClientEvent, ClientMessage, ClientRequest, PROTOCOL_VERSION, RemoteError,
    RequestId, SealedClientMessage, SealedRequest, SealedResponse, SealedServerMessage,
    ServerEvent, ServerMessage, ServerResponse, SessionId, channel,
};

/// One connected player.
pub struct Session {
    /// renet/netcode client id (the player id from the token).
    pub client_id: u64,
    /// The player.
    pub player_id: u64,
    /// Their display name.
    pub display_name: String,
    /// 128 random bits.
    pub session_id: SessionId,
    /// Server time at connect.
    pub connected_at: Duration,
    /// Server time of the last message received.
    pub last_activity: Duration,
    /// The client's address.
    pub addr: Option<SocketAddr>,
    crypto: SessionCrypto,
}

impl Session {
    /// Signs a server blob for this session's client.
    pub fn sign(&self, purpose: &str, blob: &[u8]) -> super::envelope::Signature {
        self.crypto.signer.sign(purpose, blob)
    }
}

/// What a client sent, decoded and validated, for the game's handlers.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// A one-way event.
    Event {
        /// Sender.
        client: u64,
        /// The event.
        event: ClientEvent,
    },
    /// A remote function call to answer with [`ServerCore::respond`].
    Request {
        /// Caller.
        client: u64,
        /// Request id.
        id: RequestId,
        /// What is asked.
        body: ClientRequest,
    },
    /// A sealed remote function call to answer with [`ServerCore::respond_sealed`].
    SealedRequest {
        /// Caller.
        client: u64,
        /// Request id.
        id: RequestId,
        /// What is asked.
        body: SealedRequest,
    },
}

/// Kinds of suspicious input, for the security subsystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignalKind {
    /// Bytes that do not decode.
    Undecodable,
    /// A message over the size limit.
    Oversized,
    /// Decodes, but breaks a validation rule.
    Invalid,
    /// An envelope that fails authentication.
    Tampered,
    /// An envelope counter seen before.
    Replayed,
    /// An envelope from an impossible key epoch.
    BadEpoch,
    /// A message from a client without a session.
    NoSession,
}

/// Something suspicious a client did. The transport drops the input and reports it; the security
/// subsystem decides what follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecuritySignal {
    /// The client.
    pub client: u64,
    /// What kind.
    pub kind: SignalKind,
    /// Details for the audit log.
    pub detail: String,
}

struct Outgoing {
    client: Option<u64>,
    message: OutgoingBody,
}

enum OutgoingBody {
    Plain(ServerMessage),
    Sealed(SealedServerMessage),
    Signed { purpose: String, blob: Vec<u8> },
}

/// The server's network service.
pub struct ServerCore {
    sessions: HashMap<u64, Session>,
    outbox: Vec<Outgoing>,
    /// Requests received and not yet answered: (client, id) → time received.
    unanswered: HashMap<(u64, RequestId), Duration>,
    kicks: Vec<(u64, u8)>,
    signals: Vec<SecuritySignal>,
    rekey_after: u64,
    /// Every encoded message handed to renet, when capturing (audits and the tier wire test).
    capture: Option<Vec<u8>>,
    /// When renet's link figures were last copied.
    links_refreshed: Option<Duration>,
    /// Statistics.
    pub stats: NetworkStats,
}

/// How often renet's per-client link figures (rates over a window, RTT, loss) are copied into the
/// statistics; doing it every tick cost about 3% of a loaded tick for no new information.
pub const LINK_STATS_INTERVAL: Duration = Duration::from_millis(250);

/// Frames between sending `Kicked` and cutting the connection, so the reason arrives first.
const KICK_GRACE_FRAMES: u8 = 3;
/// Most unanswered requests remembered per server (older ones lose their latency sample).
const MAX_UNANSWERED: usize = 65_536;

impl ServerCore {
    /// A service whose envelopes rekey after `rekey_after` messages.
    pub fn new(rekey_after: u64) -> Self {
        Self {
            sessions: HashMap::new(),
            outbox: Vec::new(),
            unanswered: HashMap::new(),
            kicks: Vec::new(),
            signals: Vec::new(),
            rekey_after,
            capture: None,
            links_refreshed: None,
            stats: NetworkStats::default(),
        }
    }

    /// Opens a session for a client that completed the handshake and queues its welcome.
    pub fn open_session(
        &mut self,
        client_id: u64,
        identity: TokenIdentity,
        addr: Option<SocketAddr>,
        now: Duration,
    ) -> Result<SessionId, getrandom::Error> {
        let mut id = [0u8; 16];
        getrandom::fill(&mut id)?;
        let session_id = u128::from_be_bytes(id);
        let crypto = SessionCrypto::server(&identity.material, session_id, self.rekey_after);
        self.outbox.push(Outgoing {
            client: Some(client_id),
            message: OutgoingBody::Plain(ServerMessage::Welcome {
                session_id,
                protocol_version: PROTOCOL_VERSION,
                display_name: identity.display_name.clone(),
            }),
        });
        self.sessions.insert(
            client_id,
            Session {
                client_id,
                player_id: identity.player_id,
                display_name: identity.display_name,
                session_id,
                connected_at: now,
                last_activity: now,
                addr,
                crypto,
            },
        );
        self.stats.connections += 1;
        self.stats.peers.entry(client_id).or_default();
        Ok(session_id)
    }

    /// Removes a session (disconnect by timeout, client or kick).
    pub fn close_session(&mut self, client_id: u64) -> Option<Session> {
        self.unanswered.retain(|(c, _), _| *c != client_id);
        self.kicks.retain(|(c, _)| *c != client_id);
        self.stats.peers.remove(&client_id);
        let s = self.sessions.remove(&client_id);
        if s.is_some() {
            self.stats.disconnections += 1;
        }
        s
    }

    /// The session of a client.
    pub fn session(&self, client_id: u64) -> Option<&Session> {
        self.sessions.get(&client_id)
    }

    /// All sessions.
    pub fn sessions(&self) -> impl Iterator<Item = &Session> {
        self.sessions.values()
    }

    /// Number of sessions.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Reads every waiting message of every session.
    pub fn receive(&mut self, server: &mut RenetServer, now: Duration) -> Vec<Inbound> {
        let mut inbound = Vec::new();
        let clients: Vec<u64> = server.clients_id();
        for client in clients {
            for ch in [
                channel::UNRELIABLE,
                channel::RELIABLE_UNORDERED,
                channel::RELIABLE_ORDERED,
            ] {
                while let Some(bytes) = server.receive_message(client, ch) {
                    if let Some(msg) = self.handle_bytes(client, ch, &bytes, now) {
                        inbound.push(msg);
                    }
                }
            }
        }
        inbound
    }

    fn signal(&mut self, client: u64, kind: SignalKind, detail: String) {
        tracing::warn!(client, ?kind, "{detail}");
        self.stats.total.rejected += 1;
        if let Some(p) = self.stats.peers.get_mut(&client) {
            p.rejected += 1;
        }
        self.signals.push(SecuritySignal {
            client,
            kind,
            detail,
        });
    }

    /// Decodes, validates and dispatches one message. Bad input is dropped, counted and signalled.
    pub fn handle_bytes(
        &mut self,
        client: u64,
        ch: u8,
        bytes: &[u8],
        now: Duration,
    ) -> Option<Inbound> {
        let Some(session) = self.sessions.get_mut(&client) else {
            self.signal(
                client,
                SignalKind::NoSession,
                "message from a client without a session".into(),
            );
            return None;
        };
        session.last_activity = now;
        let msg: ClientMessage = match protocol::decode(bytes) {
            Ok(m) => m,
            Err(protocol::CodecError::TooLarge(n)) => {
                self.signal(client, SignalKind::Oversized, format!("{n}-byte message"));
                return None;
            }
            Err(e) => {
                self.signal(client, SignalKind::Undecodable, e.to_string());
                return None;
            }
        };
        if msg.channel() != ch {
            self.signal(
                client,
                SignalKind::Invalid,
                format!("{} on channel {ch}", msg.kind()),
            );
            return None;
        }
        if let Err(why) = protocol::validate_client_message(&msg) {
            self.signal(client, SignalKind::Invalid, why.clone());
            if let ClientMessage::Request { id, .. } = msg {
                self.respond(client, id, Err(RemoteError::Rejected(why)));
            }
            return None;
        }
        let kind = msg.kind();
        self.stats.total.received(kind);
        if let Some(p) = self.stats.peers.get_mut(&client) {
            p.received(kind);
        }
        match msg {
            ClientMessage::Event(event) => Some(Inbound::Event { client, event }),
            ClientMessage::Request { id, body } => {
                self.note_request(client, id, now);
                Some(Inbound::Request { client, id, body })
            }
            ClientMessage::Sealed(sealed) => {
                let session = self.sessions.get_mut(&client)?;
                let plain = match session.crypto.opener.open(&sealed) {
                    Ok(p) => p,
                    Err(e) => {
                        let kind = match e {
                            EnvelopeError::Replayed { .. } => SignalKind::Replayed,
                            EnvelopeError::BadEpoch { .. } => SignalKind::BadEpoch,
                            _ => SignalKind::Tampered,
                        };
                        self.signal(client, kind, e.to_string());
                        return None;
                    }
                };
                match protocol::decode::<SealedClientMessage>(&plain) {
                    Ok(SealedClientMessage::Request { id, body }) => {
                        if let Err(why) = protocol::validate_sealed_request(&body) {
                            self.signal(client, SignalKind::Invalid, why.clone());
                            self.respond_sealed(client, id, Err(RemoteError::Rejected(why)));
                            return None;
                        }
                        self.note_request(client, id, now);
                        Some(Inbound::SealedRequest { client, id, body })
                    }
                    Err(e) => {
                        self.signal(
                            client,
                            SignalKind::Undecodable,
                            format!("inside envelope: {e}"),
                        );
                        None
                    }
                }
            }
        }
    }

    fn note_request(&mut self, client: u64, id: RequestId, now: Duration) {
        if self.unanswered.len() < MAX_UNANSWERED {
            self.unanswered.insert((client, id), now);
        }
    }

    fn answered(&mut self, client: u64, id: RequestId, now: Option<Duration>) {
        if let (Some(at), Some(now)) = (self.unanswered.remove(&(client, id)), now) {
            self.stats.rpc_latency.record(now.saturating_sub(at));
        }
    }

    /// Takes the security signals raised since the last call.
    pub fn take_signals(&mut self) -> Vec<SecuritySignal> {
        std::mem::take(&mut self.signals)
    }

    /// Sends a remote event to one client.
    pub fn send_event(&mut self, client: u64, event: ServerEvent) {
        self.outbox.push(Outgoing {
            client: Some(client),
            message: OutgoingBody::Plain(ServerMessage::Event(event)),
        });
    }

    /// Sends a remote event to every client in session.
    pub fn broadcast(&mut self, event: ServerEvent) {
        self.outbox.push(Outgoing {
            client: None,
            message: OutgoingBody::Plain(ServerMessage::Event(event)),
        });
    }

    /// Answers a remote function call.
    pub fn respond(
        &mut self,
        client: u64,
        id: RequestId,
        result: Result<ServerResponse, RemoteError>,
    ) {
        self.respond_at(client, id, result, None);
    }

    /// Answers a remote function call, recording its latency against `now`.
    pub fn respond_at(
        &mut self,
        client: u64,
        id: RequestId,
        result: Result<ServerResponse, RemoteError>,
        now: Option<Duration>,
    ) {
        self.answered(client, id, now);
        self.outbox.push(Outgoing {
            client: Some(client),
            message: OutgoingBody::Plain(ServerMessage::Response { id, result }),
        });
    }

    /// Answers a sealed remote function call, sealed.
    pub fn respond_sealed(
        &mut self,
        client: u64,
        id: RequestId,
        result: Result<SealedResponse, RemoteError>,
    ) {
        self.respond_sealed_at(client, id, result, None);
    }

    /// Answers a sealed call, recording its latency against `now`.
    pub fn respond_sealed_at(
        &mut self,
        client: u64,
        id: RequestId,
        result: Result<SealedResponse, RemoteError>,
        now: Option<Duration>,
    ) {
        self.answered(client, id, now);
        self.outbox.push(Outgoing {
            client: Some(client),
            message: OutgoingBody::Sealed(SealedServerMessage::Response { id, result }),
        });
    }

    /// Sends a sealed event to one client.
    pub fn send_sealed_event(&mut self, client: u64, event: protocol::SealedServerEvent) {
        self.outbox.push(Outgoing {
            client: Some(client),
            message: OutgoingBody::Sealed(SealedServerMessage::Event(event)),
        });
    }

    /// Sends a blob signed with the client's session signing key (the client verifies it).
    pub fn send_signed(&mut self, client: u64, purpose: &str, blob: Vec<u8>) {
        self.outbox.push(Outgoing {
            client: Some(client),
            message: OutgoingBody::Signed {
                purpose: purpose.to_string(),
                blob,
            },
        });
    }

    /// Ends a session with a reason the client shows.
    pub fn kick(&mut self, client: u64, reason: &str) {
        if self.kicks.iter().any(|(c, _)| *c == client) {
            return;
        }
        tracing::info!(client, "kicking: {reason}");
        self.outbox.push(Outgoing {
            client: Some(client),
            message: OutgoingBody::Plain(ServerMessage::Kicked {
                reason: reason.to_string(),
            }),
        });
        self.kicks.push((client, KICK_GRACE_FRAMES));
    }

    /// Starts recording every encoded message sent (before netcode's packet encryption).
    pub fn start_capture(&mut self) {
        self.capture = Some(Vec::new());
    }

    /// Stops recording and returns what was sent.
    pub fn take_capture(&mut self) -> Vec<u8> {
        self.capture.take().unwrap_or_default()
    }

    /// True while `client` is being kicked (its messages no longer count).
    pub fn is_being_kicked(&self, client: u64) -> bool {
        self.kicks.iter().any(|(c, _)| *c == client)
    }

    /// True while kicked clients are still being disconnected.
    pub fn kicks_pending(&self) -> bool {
        !self.kicks.is_empty()
    }

    /// Encodes, seals and hands every queued message to renet; disconnects kicked clients whose
    /// grace ran out. A message that does not fit its channel is dropped and counted rather than
    /// overflowing the channel (which would disconnect the client).
    pub fn flush(&mut self, server: &mut RenetServer) {
        for out in std::mem::take(&mut self.outbox) {
            let targets: Vec<u64> = match out.client {
                Some(c) => vec![c],
                None => self.sessions.keys().copied().collect(),
            };
            for client in targets {
                let message = match &out.message {
                    OutgoingBody::Plain(m) => m.clone(),
                    OutgoingBody::Sealed(m) => {
                        let Some(session) = self.sessions.get_mut(&client) else {
                            continue;
                        };
                        let sealed =
                            protocol::encode(m)
                                .map_err(|e| e.to_string())
                                .and_then(|plain| {
                                    session
                                        .crypto
                                        .sealer
                                        .seal(&plain)
                                        .map_err(|e| e.to_string())
                                });
                        match sealed {
                            Ok(s) => ServerMessage::Sealed(s),
                            Err(e) => {
                                tracing::error!(client, "cannot seal a message: {e}");
                                self.stats.total.dropped += 1;
                                continue;
                            }
                        }
                    }
                    OutgoingBody::Signed { purpose, blob } => {
                        let Some(session) = self.sessions.get(&client) else {
                            continue;
                        };
                        ServerMessage::Signed {
                            purpose: purpose.clone(),
                            signature: session.sign(purpose, blob),
                            blob: blob.clone(),
                        }
                    }
                };
                self.send_now(server, client, &message);
            }
        }
        let mut due = Vec::new();
        self.kicks.retain_mut(|(c, frames)| {
            *frames = frames.saturating_sub(1);
            if *frames == 0 {
                due.push(*c);
                false
            } else {
                true
            }
        });
        for c in due {
            server.disconnect(c);
        }
    }

    fn send_now(&mut self, server: &mut RenetServer, client: u64, message: &ServerMessage) {
        let ch = message.channel();
        let kind = message.kind();
        let ok = match protocol::encode(message) {
            Ok(bytes)
                if server.is_connected(client)
                    && server.can_send_message(client, ch, bytes.len()) =>
            {
                if let Some(capture) = self.capture.as_mut() {
                    capture.extend_from_slice(&bytes);
                }
                server.send_message(client, ch, bytes);
                true
            }
            Ok(_) => false,
            Err(e) => {
                tracing::error!(client, "cannot encode {kind}: {e}");
                false
            }
        };
        if ok {
            self.stats.total.sent(kind);
            if let Some(p) = self.stats.peers.get_mut(&client) {
                p.sent(kind);
            }
        } else {
            self.stats.total.dropped += 1;
            if let Some(p) = self.stats.peers.get_mut(&client) {
                p.dropped += 1;
            }
        }
    }

    /// Copies renet's per-client link figures into the statistics, at most once per
    /// [`LINK_STATS_INTERVAL`].
    pub fn refresh_link_stats(&mut self, server: &RenetServer, now: Duration) {
        if self
            .links_refreshed
            .is_some_and(|t| now.saturating_sub(t) < LINK_STATS_INTERVAL)
        {
            return;
        }
        self.links_refreshed = Some(now);
        for (client, peer) in self.stats.peers.iter_mut() {
            if let Ok(info) = server.network_info(*client) {
                peer.rtt_ms = info.rtt;
                peer.packet_loss = info.packet_loss;
                peer.bytes_in_per_s = info.bytes_received_per_second;
                peer.bytes_out_per_s = info.bytes_sent_per_second;
            }
        }
        self.stats.refresh_totals();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::envelope::SessionMaterial;

    fn core_with_client() -> (ServerCore, SessionId) {
        let mut core = ServerCore::new(1000);
        let id = TokenIdentity {
            player_id: 5,
            display_name: "A".into(),
            material: SessionMaterial([2; 32]),
        };
        let sid = core.open_session(5, id, None, Duration::ZERO).unwrap();
        (core, sid)
    }

    #[test]
    fn garbage_is_rejected_and_signalled() {
        let (mut core, _) = core_with_client();
        assert!(
            core.handle_bytes(5, 2, &[0xFF; 9], Duration::ZERO)
                .is_none()
        );
        assert!(
            core.handle_bytes(
                5,
                2,
                &vec![0; protocol::MAX_MESSAGE_BYTES + 1],
                Duration::ZERO
            )
            .is_none()
        );
        assert!(core.handle_bytes(6, 2, &[0], Duration::ZERO).is_none());
        let kinds: Vec<_> = core.take_signals().into_iter().map(|s| s.kind).collect();
        assert_eq!(
            kinds,
            vec![
                SignalKind::Undecodable,
                SignalKind::Oversized,
                SignalKind::NoSession
            ]
        );
        assert_eq!(core.stats.total.rejected, 3);
    }

    #[test]
    fn random_bytes_never_panic() {
        let (mut core, _) = core_with_client();
        for (round, bytes) in
            crate::transport::noise(0x2545_F491_4F6C_DD1D, 20_000, 131).enumerate()
        {
            let _ = core.handle_bytes(5, (round % 3) as u8, &bytes, Duration::ZERO);
        }
        assert!(core.stats.total.rejected > 0);
    }

    #[test]
    fn wrong_channel_is_invalid() {
        let (mut core, _) = core_with_client();
        let bytes = protocol::encode(&ClientMessage::Request {
            id: 1,
            body: ClientRequest::ServerStats { recent_ticks: 0 },
        })
        .unwrap();
        assert!(
            core.handle_bytes(5, channel::UNRELIABLE, &bytes, Duration::ZERO)
                .is_none()
        );
        assert_eq!(core.take_signals()[0].kind, SignalKind::Invalid);
        assert!(matches!(
            core.handle_bytes(5, channel::RELIABLE_ORDERED, &bytes, Duration::ZERO),
            Some(Inbound::Request { id: 1, .. })
        ));
    }

    #[test]
    fn sealed_request_round_trip_and_replay() {
        let (mut core, sid) = core_with_client();
        let mut client = SessionCrypto::client(&SessionMaterial([2; 32]), sid, 1000);
        let plain = protocol::encode(&SealedClientMessage::Request {
            id: 9,
            body: SealedRequest::SecureEcho {
                payload: b"hi".to_vec(),
            },
        })
        .unwrap();
        let sealed = client.sealer.seal(&plain).unwrap();
        let bytes = protocol::encode(&ClientMessage::Sealed(sealed)).unwrap();
        assert!(matches!(
            core.handle_bytes(5, 2, &bytes, Duration::ZERO),
            Some(Inbound::SealedRequest { id: 9, .. })
        ));
        assert!(core.handle_bytes(5, 2, &bytes, Duration::ZERO).is_none());
        assert_eq!(core.take_signals()[0].kind, SignalKind::Replayed);
    }
}
