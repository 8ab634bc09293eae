//! The client side of the network service, as plain Rust over `renet::RenetClient`: remote events
//! and functions with timeouts, envelopes, statistics. The load test drives many of these without
//! Bevy; the client plugin drives one.

use std::collections::BTreeMap;
use std::time::Duration;

use renet::RenetClient;

use super::envelope::{SessionCrypto, SessionMaterial};
use super::stats::NetworkStats;
use crate::protocol::{
    self, ClientMessage, Delivery, RemoteError, RequestId, SealedClientMessage,
    SealedServerMessage, ServerMessage, SessionId, channel,
};

/// What the server told the client, for the game.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientNotice {
    /// The session started.
    Welcomed {
        /// Its id.
        session_id: SessionId,
        /// The name the server knows us by.
        display_name: String,
    },
    /// A remote event of a registered kind (decoded by the client plugin's typed delivery).
    Event {
        /// The kind.
        kind: u32,
        /// Arrived sealed.
        sealed: bool,
        /// The encoded value.
        payload: Vec<u8>,
    },
    /// A remote function finished: the encoded answer, or why there is none.
    Rpc {
        /// The call.
        id: RequestId,
        /// Its kind.
        kind: u32,
        /// Its result.
        result: Result<Vec<u8>, RemoteError>,
    },
    /// A server-signed blob whose signature verified.
    Signed {
        /// What it is.
        purpose: String,
        /// The blob.
        blob: Vec<u8>,
    },
    /// The server ended the session.
    Kicked {
        /// Why.
        reason: String,
    },
    /// Input from the server that was refused (undecodable, tampered, replayed).
    Refused {
        /// Why.
        reason: String,
    },
}

struct Pending {
    sent_at: Duration,
    sealed: bool,
    kind: u32,
}

/// The client's network service.
pub struct ClientCore {
    material: SessionMaterial,
    crypto: Option<SessionCrypto>,
    session: Option<SessionId>,
    /// The name the server welcomed us by.
    pub welcomed_as: Option<String>,
    next_id: RequestId,
    pending: BTreeMap<RequestId, Pending>,
    outbox: Vec<(u8, ClientMessage)>,
    /// Calls that failed before they were sent (reported by the next [`Self::expire`]).
    failed_early: Vec<ClientNotice>,
    /// Sealed messages waiting for the session id (the envelope's additional data needs it).
    sealed_queue: Vec<SealedClientMessage>,
    timeout: Duration,
    rekey_after: u64,
    kicked: Option<String>,
    /// Leading parts of signed blobs, by purpose, until their signed last part arrives.
    signed_parts: BTreeMap<String, Vec<u8>>,
    /// Statistics (the one peer is keyed 0).
    pub stats: NetworkStats,
}

impl ClientCore {
    /// A client holding `material` (from its token file), timing calls out after `timeout`.
    pub fn new(material: SessionMaterial, timeout: Duration, rekey_after: u64) -> Self {
        let mut stats = NetworkStats::default();
        stats.peers.insert(0, Default::default());
        Self {
            material,
            crypto: None,
            session: None,
            welcomed_as: None,
            next_id: 1,
            pending: BTreeMap::new(),
            outbox: Vec::new(),
            failed_early: Vec::new(),
            sealed_queue: Vec::new(),
            timeout,
            rekey_after,
            kicked: None,
            signed_parts: BTreeMap::new(),
            stats,
        }
    }

    /// Messages after which the session's keys are rotated.
    pub fn rekey_after(&self) -> u64 {
        self.rekey_after
    }

    /// How long a remote function may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Changes the remote function timeout (config updates, tests).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// The session id, once welcomed.
    pub fn session(&self) -> Option<SessionId> {
        self.session
    }

    /// The kick reason, if the server kicked us.
    pub fn kicked(&self) -> Option<&str> {
        self.kicked.as_deref()
    }

    /// The envelope key epochs in use, sending and receiving (`None` before the welcome):
    /// each side moves to the next after `network.rekeyAfter` messages.
    pub fn key_epochs(&self) -> Option<(u32, u32)> {
        self.crypto
            .as_ref()
            .map(|c| (c.sealer.epoch(), c.opener.epoch()))
    }

    /// Calls in flight.
    pub fn pending_calls(&self) -> usize {
        self.pending.len()
    }

    /// Queues an encoded event of `kind`. Games use the typed [`ClientCore::send`].
    pub fn event_raw(&mut self, kind: u32, sealed: bool, delivery: Delivery, payload: Vec<u8>) {
        if sealed {
            self.sealed_queue
                .push(SealedClientMessage::Event { kind, payload });
        } else {
            self.outbox
                .push((delivery.channel(), ClientMessage::Event { kind, payload }));
        }
    }

    /// Queues a call of `kind` with its encoded request. Games use the typed
    /// [`ClientCore::call`].
    pub fn call_raw(
        &mut self,
        kind: u32,
        sealed: bool,
        payload: Result<Vec<u8>, String>,
        now: Duration,
    ) -> RequestId {
        let id = self.next_id;
        self.next_id += 1;
        let payload = match payload {
            Ok(p) => p,
            Err(why) => {
                tracing::error!("cannot encode a call: {why}");
                self.failed_early.push(ClientNotice::Rpc {
                    id,
                    kind,
                    result: Err(RemoteError::Rejected(format!(
                        "cannot encode the call: {why}"
                    ))),
                });
                return id;
            }
        };
        self.pending.insert(
            id,
            Pending {
                sent_at: now,
                sealed,
                kind,
            },
        );
        if sealed {
            self.sealed_queue
                .push(SealedClientMessage::Request { id, kind, payload });
        } else {
            self.outbox.push((
                channel::RELIABLE_ORDERED,
                ClientMessage::Request { id, kind, payload },
            ));
        }
        id
    }

    /// Reads every waiting message.
    pub fn receive(&mut self, client: &mut RenetClient, now: Duration) -> Vec<ClientNotice> {
        let mut notices = Vec::new();
        for ch in [
            channel::UNRELIABLE,
            channel::RELIABLE_UNORDERED,
            channel::RELIABLE_ORDERED,
        ] {
            while let Some(bytes) = client.receive_message(ch) {
                notices.extend(self.handle_bytes(&bytes, now));
            }
        }
        let info = client.network_info();
        if let Some(peer) = self.stats.peers.get_mut(&0) {
            peer.rtt_ms = info.rtt;
            peer.packet_loss = info.packet_loss;
            peer.bytes_in_per_s = info.bytes_received_per_second;
            peer.bytes_out_per_s = info.bytes_sent_per_second;
        }
        self.stats.refresh_totals();
        notices
    }

    fn refuse(&mut self, reason: String) -> Option<ClientNotice> {
        tracing::warn!("refused input from the server: {reason}");
        self.stats.total.rejected += 1;
        Some(ClientNotice::Refused { reason })
    }

    fn complete(&mut self, id: RequestId, now: Duration) -> bool {
        match self.pending.remove(&id) {
            Some(p) => {
                self.stats.rpc_latency.record(now.saturating_sub(p.sent_at));
                true
            }
            None => false,
        }
    }

    /// The answer to call `id`, if that call waits for an answer that travels this way.
    fn answer(
        &mut self,
        id: RequestId,
        sealed: bool,
        result: Result<Vec<u8>, RemoteError>,
        now: Duration,
    ) -> Option<ClientNotice> {
        let kind = self.pending.get(&id).filter(|p| p.sealed == sealed)?.kind;
        // Late (already timed out) or unknown: nothing waits for it.
        self.complete(id, now)
            .then_some(ClientNotice::Rpc { id, kind, result })
    }

    /// Decodes and dispatches one message from the server.
    pub fn handle_bytes(&mut self, bytes: &[u8], now: Duration) -> Option<ClientNotice> {
        let msg: ServerMessage = match protocol::decode(bytes) {
            Ok(m) => m,
            Err(e) => return self.refuse(e.to_string()),
        };
        self.stats.total.received(msg.label());
        match msg {
            ServerMessage::Welcome {
                session_id,
                protocol_version,
                display_name,
            } => {
                if protocol_version != protocol::PROTOCOL_VERSION {
                    return self.refuse(format!(
                        "server speaks protocol {protocol_version}, this client {}",
                        protocol::PROTOCOL_VERSION
                    ));
                }
                self.session = Some(session_id);
                self.welcomed_as = Some(display_name.clone());
                self.crypto = Some(SessionCrypto::client(
                    &self.material,
                    session_id,
                    self.rekey_after,
                ));
                Some(ClientNotice::Welcomed {
                    session_id,
                    display_name,
                })
            }
            ServerMessage::Event { kind, payload } => Some(ClientNotice::Event {
                kind,
                sealed: false,
                payload,
            }),
            ServerMessage::Response { id, result } => self.answer(id, false, result, now),
            ServerMessage::Sealed(sealed) => {
                let Some(crypto) = self.crypto.as_mut() else {
                    return self.refuse("sealed message before the session started".into());
                };
                let plain = match crypto.opener.open(&sealed) {
                    Ok(p) => p,
                    Err(e) => return self.refuse(e.to_string()),
                };
                match protocol::decode::<SealedServerMessage>(&plain) {
                    Ok(SealedServerMessage::Response { id, result }) => {
                        self.answer(id, true, result, now)
                    }
                    Ok(SealedServerMessage::Event { kind, payload }) => Some(ClientNotice::Event {
                        kind,
                        sealed: true,
                        payload,
                    }),
                    Err(e) => self.refuse(format!("inside envelope: {e}")),
                }
            }
            ServerMessage::SignedPart { purpose, bytes } => {
                if self.crypto.is_none() {
                    return self.refuse("signed blob part before the session started".into());
                }
                let held: usize = self.signed_parts.values().map(Vec::len).sum();
                if held + bytes.len() > protocol::MAX_SIGNED_BLOB_BYTES {
                    self.signed_parts.remove(&purpose);
                    return self.refuse(format!(
                        "signed blob parts over {} bytes",
                        protocol::MAX_SIGNED_BLOB_BYTES
                    ));
                }
                self.signed_parts
                    .entry(purpose)
                    .or_default()
                    .extend_from_slice(&bytes);
                None
            }
            ServerMessage::Signed {
                purpose,
                blob,
                signature,
            } => {
                let Some(crypto) = self.crypto.as_ref() else {
                    return self.refuse("signed blob before the session started".into());
                };
                // The parts that came before, then this last one: verified whole.
                let blob = match self.signed_parts.remove(&purpose) {
                    Some(mut whole) => {
                        whole.extend_from_slice(&blob);
                        whole
                    }
                    None => blob,
                };
                if crypto.signer.verify(&purpose, &blob, &signature) {
                    Some(ClientNotice::Signed { purpose, blob })
                } else {
                    self.refuse(format!("bad signature on the {purpose:?} blob"))
                }
            }
            ServerMessage::Kicked { reason } => {
                self.kicked = Some(reason.clone());
                Some(ClientNotice::Kicked { reason })
            }
        }
    }

    /// Times out calls older than the timeout (and reports calls that failed before sending).
    pub fn expire(&mut self, now: Duration) -> Vec<ClientNotice> {
        let timeout = self.timeout;
        let expired: Vec<(RequestId, u32)> = self
            .pending
            .iter()
            .filter(|(_, p)| now.saturating_sub(p.sent_at) >= timeout)
            .map(|(id, p)| (*id, p.kind))
            .collect();
        let ms = timeout.as_millis() as u64;
        let mut notices = std::mem::take(&mut self.failed_early);
        notices.extend(expired.into_iter().map(|(id, kind)| {
            self.pending.remove(&id);
            self.stats.rpc_timeouts += 1;
            ClientNotice::Rpc {
                id,
                kind,
                result: Err(RemoteError::Timeout(ms)),
            }
        }));
        notices
    }

    /// Fails every call in flight: the connection ended.
    pub fn fail_all(&mut self) -> Vec<ClientNotice> {
        self.sealed_queue.clear();
        self.outbox.clear();
        let mut notices = std::mem::take(&mut self.failed_early);
        notices.extend(
            std::mem::take(&mut self.pending)
                .into_iter()
                .map(|(id, p)| ClientNotice::Rpc {
                    id,
                    kind: p.kind,
                    result: Err(RemoteError::Disconnected),
                }),
        );
        notices
    }

    /// Hands queued messages to renet. Sealed messages wait for the session to start. True when
    /// a call or a sealed message went: the caller has the transport send it now
    /// (`BatchedClientTransport::expedite`), not at its next paced send.
    pub fn flush(&mut self, client: &mut RenetClient) -> bool {
        let mut urgent = false;
        if let Some(crypto) = self.crypto.as_mut() {
            for m in std::mem::take(&mut self.sealed_queue) {
                match protocol::encode(&m)
                    .map_err(|e| e.to_string())
                    .and_then(|p| crypto.sealer.seal(&p).map_err(|e| e.to_string()))
                {
                    Ok(sealed) => self
                        .outbox
                        .push((channel::RELIABLE_ORDERED, ClientMessage::Sealed(sealed))),
                    Err(e) => tracing::error!("cannot seal a message: {e}"),
                }
            }
        }
        if !client.is_connected() {
            return false;
        }
        for (ch, m) in std::mem::take(&mut self.outbox) {
            match protocol::encode(&m) {
                Ok(bytes) if client.can_send_message(ch, bytes.len()) => {
                    urgent |= matches!(m, ClientMessage::Request { .. } | ClientMessage::Sealed(_));
                    client.send_message(ch, bytes);
                    self.stats.total.sent(m.label());
                }
                Ok(_) => self.stats.total.dropped += 1,
                Err(e) => {
                    tracing::error!("cannot encode {}: {e}", m.label());
                    self.stats.total.dropped += 1;
                }
            }
        }
        urgent
    }

    /// Queues raw bytes as if they were a message (tests of the server's defences).
    pub fn send_raw(client: &mut RenetClient, ch: u8, bytes: Vec<u8>) {
        client.send_message(ch, bytes);
    }

    /// Seals `plain` with this session's next counter without sending it (tests and tools).
    pub fn seal_raw(&mut self, plain: &[u8]) -> Option<protocol::Sealed> {
        self.crypto.as_mut()?.sealer.seal(plain).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn welcomed() -> (ClientCore, super::super::envelope::Signer) {
        let m = SessionMaterial([4; 32]);
        let mut c = ClientCore::new(m.clone(), Duration::from_secs(30), 100);
        let welcome = protocol::encode(&ServerMessage::Welcome {
            session_id: 5,
            protocol_version: protocol::PROTOCOL_VERSION,
            display_name: "x".into(),
        })
        .unwrap();
        assert!(matches!(
            c.handle_bytes(&welcome, Duration::ZERO),
            Some(ClientNotice::Welcomed { .. })
        ));
        (c, super::super::envelope::Signer::new(&m))
    }

    #[test]
    fn signed_blobs_are_verified() {
        let (mut c, signer) = welcomed();
        let good = ServerMessage::Signed {
            purpose: "manifest".into(),
            blob: b"assets".to_vec(),
            signature: signer.sign("manifest", b"assets"),
        };
        assert!(matches!(
            c.handle_bytes(&protocol::encode(&good).unwrap(), Duration::ZERO),
            Some(ClientNotice::Signed { .. })
        ));
        let forged = ServerMessage::Signed {
            purpose: "manifest".into(),
            blob: b"assets!".to_vec(),
            signature: signer.sign("manifest", b"assets"),
        };
        assert!(matches!(
            c.handle_bytes(&protocol::encode(&forged).unwrap(), Duration::ZERO),
            Some(ClientNotice::Refused { .. })
        ));
        assert_eq!(c.stats.total.rejected, 1);
    }

    /// A blob in parts is verified whole: a changed leading part fails the signature.
    #[test]
    fn signed_blobs_in_parts_are_verified_whole() {
        let (mut c, signer) = welcomed();
        let send = |c: &mut ClientCore, m: ServerMessage| {
            c.handle_bytes(&protocol::encode(&m).unwrap(), Duration::ZERO)
        };
        let part = |bytes: &[u8]| ServerMessage::SignedPart {
            purpose: "m".into(),
            bytes: bytes.to_vec(),
        };
        let last = ServerMessage::Signed {
            purpose: "m".into(),
            blob: b"C".to_vec(),
            signature: signer.sign("m", b"AABBC"),
        };
        assert!(send(&mut c, part(b"AA")).is_none());
        assert!(send(&mut c, part(b"BB")).is_none());
        match send(&mut c, last.clone()) {
            Some(ClientNotice::Signed { purpose, blob }) => {
                assert_eq!((purpose.as_str(), blob.as_slice()), ("m", &b"AABBC"[..]));
            }
            other => panic!("{other:?}"),
        }
        assert!(send(&mut c, part(b"AX")).is_none());
        assert!(send(&mut c, part(b"BB")).is_none());
        assert!(matches!(
            send(&mut c, last),
            Some(ClientNotice::Refused { .. })
        ));
    }

    #[test]
    fn random_bytes_never_panic() {
        let (mut c, _) = welcomed();
        for bytes in crate::transport::noise(0x9E37_79B9_7F4A_7C15, 20_000, 97) {
            let _ = c.handle_bytes(&bytes, Duration::ZERO);
        }
    }

    #[test]
    fn calls_time_out_and_late_answers_are_ignored() {
        use crate::protocol::Remote;
        use crate::protocol::builtin::{Echo, ServerStats};
        let mut c = ClientCore::new(SessionMaterial([1; 32]), Duration::from_secs(30), 100);
        let id = c.call(&ServerStats { recent_ticks: 0 }, Duration::from_secs(1));
        assert!(c.expire(Duration::from_secs(30)).is_empty());
        let n = c.expire(Duration::from_secs(31));
        assert_eq!(
            n,
            vec![ClientNotice::Rpc {
                id,
                kind: ServerStats::KIND,
                result: Err(RemoteError::Timeout(30_000))
            }]
        );
        let late = protocol::encode(&ServerMessage::Response {
            id,
            result: Ok(protocol::encode(&Echo { payload: vec![] }).unwrap()),
        })
        .unwrap();
        assert_eq!(c.handle_bytes(&late, Duration::from_secs(32)), None);
    }

    #[test]
    fn disconnect_fails_pending_calls() {
        use crate::protocol::Remote;
        use crate::protocol::builtin::{SecureEcho, ServerStats};
        let mut c = ClientCore::new(SessionMaterial([1; 32]), Duration::from_secs(30), 100);
        let a = c.call(&ServerStats { recent_ticks: 0 }, Duration::ZERO);
        let b = c.call(&SecureEcho { payload: vec![] }, Duration::ZERO);
        let n = c.fail_all();
        assert!(n.contains(&ClientNotice::Rpc {
            id: a,
            kind: ServerStats::KIND,
            result: Err(RemoteError::Disconnected)
        }));
        assert!(n.contains(&ClientNotice::Rpc {
            id: b,
            kind: SecureEcho::KIND,
            result: Err(RemoteError::Disconnected)
        }));
        assert_eq!(c.pending_calls(), 0);
    }
}
