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
    self, AnyMessage, ClientMessage, DecodeRefusal, Delivery, PROTOCOL_VERSION, RemoteError,
    RemoteShape, RemoteTable, RequestId, SealedClientMessage, SealedServerMessage, ServerMessage,
    SessionId, channel,
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

/// What a client sent, decoded by its registered type and validated, for the security gate.
pub struct Inbound {
    /// Sender.
    pub client: u64,
    /// The registered kind.
    pub kind: u32,
    /// The call's id (`None`: an event).
    pub id: Option<RequestId>,
    /// Arrived sealed.
    pub sealed: bool,
    /// The decoded value (of the kind's registered type).
    pub body: AnyMessage,
}

impl std::fmt::Debug for Inbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbound")
            .field("client", &self.client)
            .field("kind", &format_args!("{:#010x}", self.kind))
            .field("id", &self.id)
            .field("sealed", &self.sealed)
            .finish()
    }
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
    channel: u8,
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
    /// The time of the latest receive (answers' latency is measured against it).
    now: Duration,
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
            now: Duration::ZERO,
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
            channel: channel::RELIABLE_ORDERED,
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

    /// Reads every waiting message of every session, decoding each by its type in `table`.
    pub fn receive(
        &mut self,
        server: &mut RenetServer,
        table: &RemoteTable,
        now: Duration,
    ) -> Vec<Inbound> {
        let clients = server.clients_id();
        self.receive_from(server, table, now, &clients)
    }

    /// Like [`Self::receive`], from `clients` only (between ticks: those heard from).
    pub fn receive_from(
        &mut self,
        server: &mut RenetServer,
        table: &RemoteTable,
        now: Duration,
        clients: &[u64],
    ) -> Vec<Inbound> {
        self.now = now;
        let mut inbound = Vec::new();
        for &client in clients {
            for ch in [
                channel::UNRELIABLE,
                channel::RELIABLE_UNORDERED,
                channel::RELIABLE_ORDERED,
            ] {
                while let Some(bytes) = server.receive_message(client, ch) {
                    if let Some(msg) = self.handle_bytes(client, ch, &bytes, now, table) {
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

    /// Decodes, validates and dispatches one message. Bad input is dropped, counted and
    /// signalled; a refused call is answered with the reason.
    pub fn handle_bytes(
        &mut self,
        client: u64,
        ch: u8,
        bytes: &[u8],
        now: Duration,
        table: &RemoteTable,
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
        let (id, kind, payload, sealed) = match msg {
            ClientMessage::Event { kind, payload } => (None, kind, payload, false),
            ClientMessage::Request { id, kind, payload } => (Some(id), kind, payload, false),
            ClientMessage::Sealed(envelope) => {
                if ch != channel::RELIABLE_ORDERED {
                    self.signal(
                        client,
                        SignalKind::Invalid,
                        format!("sealed message on channel {ch}"),
                    );
                    return None;
                }
                let session = self.sessions.get_mut(&client)?;
                let plain = match session.crypto.opener.open(&envelope) {
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
                    Ok(SealedClientMessage::Event { kind, payload }) => (None, kind, payload, true),
                    Ok(SealedClientMessage::Request { id, kind, payload }) => {
                        (Some(id), kind, payload, true)
                    }
                    Err(e) => {
                        self.signal(
                            client,
                            SignalKind::Undecodable,
                            format!("inside envelope: {e}"),
                        );
                        return None;
                    }
                }
            }
        };
        let refuse = |core: &mut Self, kind: SignalKind, why: String| {
            core.signal(client, kind, why.clone());
            if let Some(id) = id {
                core.respond_raw(client, id, sealed, Err(RemoteError::Rejected(why)));
            }
            None
        };
        let Some(entry) = table.get(kind) else {
            return refuse(
                self,
                SignalKind::Invalid,
                format!("unknown message kind {kind:#010x}"),
            );
        };
        let shape = if id.is_some() {
            RemoteShape::Function
        } else {
            RemoteShape::Event
        };
        if entry.shape != shape {
            return refuse(
                self,
                SignalKind::Invalid,
                format!(
                    "{} sent as a {shape:?}, registered as a {:?}",
                    entry.name, entry.shape
                ),
            );
        }
        if entry.sealed != sealed {
            return refuse(
                self,
                SignalKind::Invalid,
                format!(
                    "{} must travel {}",
                    entry.name,
                    if entry.sealed { "sealed" } else { "in clear" }
                ),
            );
        }
        if entry.delivery.channel() != ch {
            return refuse(
                self,
                SignalKind::Invalid,
                format!("{} on channel {ch}", entry.name),
            );
        }
        let body = match entry.decode(&payload) {
            Ok(body) => body,
            Err(DecodeRefusal::TooLarge(n)) => {
                return refuse(
                    self,
                    SignalKind::Oversized,
                    format!("{n}-byte {}", entry.name),
                );
            }
            Err(DecodeRefusal::Malformed(why)) => {
                return refuse(self, SignalKind::Undecodable, why);
            }
            Err(DecodeRefusal::Invalid(why)) => return refuse(self, SignalKind::Invalid, why),
        };
        let name = entry.name;
        self.stats.total.received(name);
        if let Some(p) = self.stats.peers.get_mut(&client) {
            p.received(name);
        }
        if let Some(id) = id {
            self.note_request(client, id, now);
        }
        Some(Inbound {
            client,
            kind,
            id,
            sealed,
            body,
        })
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

    /// Answers call `id` of `client` with encoded bytes (sealed when the call was), recording
    /// its latency. Handlers use the typed [`ServerCore::reply`].
    pub fn respond_raw(
        &mut self,
        client: u64,
        id: RequestId,
        sealed: bool,
        result: Result<Vec<u8>, RemoteError>,
    ) {
        let now = self.now;
        self.answered(client, id, Some(now));
        let message = if sealed {
            OutgoingBody::Sealed(SealedServerMessage::Response { id, result })
        } else {
            OutgoingBody::Plain(ServerMessage::Response { id, result })
        };
        self.outbox.push(Outgoing {
            client: Some(client),
            channel: channel::RELIABLE_ORDERED,
            message,
        });
    }

    /// Queues an encoded event of `kind` for one client or (`None`) every client in session.
    /// Handlers use the typed [`ServerCore::send`] and [`ServerCore::broadcast`].
    pub fn event_raw(
        &mut self,
        client: Option<u64>,
        kind: u32,
        sealed: bool,
        delivery: Delivery,
        payload: Vec<u8>,
    ) {
        let message = if sealed {
            OutgoingBody::Sealed(SealedServerMessage::Event { kind, payload })
        } else {
            OutgoingBody::Plain(ServerMessage::Event { kind, payload })
        };
        self.outbox.push(Outgoing {
            client,
            channel: if sealed {
                channel::RELIABLE_ORDERED
            } else {
                delivery.channel()
            },
            message,
        });
    }

    /// Sends a blob signed with the client's session signing key (the client verifies it).
    pub fn send_signed(&mut self, client: u64, purpose: &str, blob: Vec<u8>) {
        self.outbox.push(Outgoing {
            client: Some(client),
            channel: channel::RELIABLE_ORDERED,
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
            channel: channel::RELIABLE_ORDERED,
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

    /// Encodes, seals and hands every queued message to renet; returns the clients given one,
    /// each once (between ticks, the only clients to send datagrams to). A message that does not
    /// fit its channel is dropped and counted rather than overflowing the channel (which would
    /// disconnect the client).
    pub fn flush(&mut self, server: &mut RenetServer) -> Vec<u64> {
        let mut sent_to = Vec::new();
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
                        let signature = session.sign(purpose, blob);
                        // A blob over one part goes as leading parts, then the last part with
                        // the signature over the whole.
                        let mut rest: &[u8] = blob;
                        while rest.len() > protocol::SIGNED_PART_BYTES {
                            let (part, tail) = rest.split_at(protocol::SIGNED_PART_BYTES);
                            let message = ServerMessage::SignedPart {
                                purpose: purpose.clone(),
                                bytes: part.to_vec(),
                            };
                            if self.send_now(server, client, out.channel, &message) {
                                sent_to.push(client);
                            }
                            rest = tail;
                        }
                        ServerMessage::Signed {
                            purpose: purpose.clone(),
                            signature,
                            blob: rest.to_vec(),
                        }
                    }
                };
                if self.send_now(server, client, out.channel, &message) {
                    sent_to.push(client);
                }
            }
        }
        sent_to.sort_unstable();
        sent_to.dedup();
        sent_to
    }

    /// Counts one tick off each kick's grace (the frames its message has to leave before the
    /// connection ends) and disconnects those that are due. Once per tick, never between ticks.
    pub fn count_down_kicks(&mut self, server: &mut RenetServer) {
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

    /// Hands one message to renet; false if it was dropped (and counted).
    fn send_now(
        &mut self,
        server: &mut RenetServer,
        client: u64,
        ch: u8,
        message: &ServerMessage,
    ) -> bool {
        let kind = message.label();
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
        ok
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
    use crate::protocol::{Remote, builtin};
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

    /// Between ticks the server flushes many times; a kick's grace is counted in ticks only,
    /// and a flush names the clients it sent to.
    #[test]
    fn a_kick_waits_its_grace_in_ticks_not_in_flushes() {
        let (mut core, _) = core_with_client();
        let mut server = RenetServer::new(renet::ConnectionConfig::default());
        server.add_connection(5);
        core.kick(5, "testing");
        assert_eq!(core.flush(&mut server), vec![5]);
        for _ in 0..9 {
            assert!(core.flush(&mut server).is_empty());
        }
        assert!(server.is_connected(5));
        for _ in 1..KICK_GRACE_FRAMES {
            core.count_down_kicks(&mut server);
        }
        assert!(server.is_connected(5));
        core.count_down_kicks(&mut server);
        assert!(!server.is_connected(5));
    }

    #[test]
    fn garbage_is_rejected_and_signalled() {
        let (mut core, _) = core_with_client();
        assert!(
            core.handle_bytes(5, 2, &[0xFF; 9], Duration::ZERO, &table())
                .is_none()
        );
        assert!(
            core.handle_bytes(
                5,
                2,
                &vec![0; protocol::MAX_MESSAGE_BYTES + 1],
                Duration::ZERO,
                &table()
            )
            .is_none()
        );
        assert!(
            core.handle_bytes(6, 2, &[0], Duration::ZERO, &table())
                .is_none()
        );
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
        let t = table();
        for (round, bytes) in
            crate::transport::noise(0x2545_F491_4F6C_DD1D, 20_000, 131).enumerate()
        {
            let _ = core.handle_bytes(5, (round % 3) as u8, &bytes, Duration::ZERO, &t);
        }
        assert!(core.stats.total.rejected > 0);
    }

    fn table() -> RemoteTable {
        let mut t = RemoteTable::default();
        t.add_function::<builtin::ServerStats>();
        t.add_function::<builtin::SecureEcho>();
        t
    }

    #[test]
    fn wrong_channel_unknown_kind_and_clear_sealed_kinds_are_invalid() {
        let (mut core, _) = core_with_client();
        let t = table();
        let stats = builtin::ServerStats { recent_ticks: 0 };
        let bytes = protocol::encode(&ClientMessage::Request {
            id: 1,
            kind: builtin::ServerStats::KIND,
            payload: protocol::encode(&stats).unwrap(),
        })
        .unwrap();
        assert!(
            core.handle_bytes(5, channel::UNRELIABLE, &bytes, Duration::ZERO, &t)
                .is_none()
        );
        assert_eq!(core.take_signals()[0].kind, SignalKind::Invalid);
        let got = core.handle_bytes(5, channel::RELIABLE_ORDERED, &bytes, Duration::ZERO, &t);
        assert!(matches!(got, Some(Inbound { id: Some(1), .. })));
        assert_eq!(
            got.unwrap()
                .body
                .downcast::<builtin::ServerStats>()
                .ok()
                .map(|b| *b),
            Some(stats)
        );
        // A kind nobody registered, and a sealed kind sent in clear.
        for (kind, payload) in [
            (0xDEAD_BEEF, vec![]),
            (
                builtin::SecureEcho::KIND,
                protocol::encode(&builtin::SecureEcho { payload: vec![] }).unwrap(),
            ),
        ] {
            let bytes = protocol::encode(&ClientMessage::Request {
                id: 2,
                kind,
                payload,
            })
            .unwrap();
            assert!(
                core.handle_bytes(5, channel::RELIABLE_ORDERED, &bytes, Duration::ZERO, &t)
                    .is_none()
            );
            assert_eq!(core.take_signals()[0].kind, SignalKind::Invalid);
        }
    }

    #[test]
    fn sealed_request_round_trip_and_replay() {
        let (mut core, sid) = core_with_client();
        let t = table();
        let mut client = SessionCrypto::client(&SessionMaterial([2; 32]), sid, 1000);
        let plain = protocol::encode(&SealedClientMessage::Request {
            id: 9,
            kind: builtin::SecureEcho::KIND,
            payload: protocol::encode(&builtin::SecureEcho {
                payload: b"hi".to_vec(),
            })
            .unwrap(),
        })
        .unwrap();
        let sealed = client.sealer.seal(&plain).unwrap();
        let bytes = protocol::encode(&ClientMessage::Sealed(sealed)).unwrap();
        assert!(matches!(
            core.handle_bytes(5, 2, &bytes, Duration::ZERO, &t),
            Some(Inbound {
                id: Some(9),
                sealed: true,
                ..
            })
        ));
        assert!(
            core.handle_bytes(5, 2, &bytes, Duration::ZERO, &t)
                .is_none()
        );
        assert_eq!(core.take_signals()[0].kind, SignalKind::Replayed);
    }
}
