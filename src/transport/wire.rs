//! Framing between renet and netcode, and the client's netcode loop that uses it.
//!
//! renet hands its transport one packet per channel with something to send plus one for its
//! acknowledgements, and renet_netcode seals and sends each of them as a datagram of its own. Every
//! datagram costs a ChaCha20-Poly1305 seal and a `sendto` on one side and a `recvfrom` and an open on
//! the other, whatever its size, and those per-datagram costs are most of a busy server's tick. So
//! both ends here put every renet packet ready for one peer in the same flush into as few netcode
//! payloads as fit ([`pack`]), and split them again on arrival ([`parts`]).
//!
//! A payload holding one renet packet travels as that packet, unchanged. A payload holding several
//! starts with [`BATCH_TAG`] (a byte renet never uses as a packet type) followed by entries of a
//! little-endian `u16` length and that many bytes.

use std::io;
use std::net::UdpSocket;
use std::time::Duration;

use bevy::prelude::*;
use bevy_renet::netcode::{NetcodeDisconnectReason, NetcodeTransportError};
use bevy_renet::{RenetClientPlugin, RenetReceive, RenetSend};
use renet::RenetClient;
use renetcode::{ClientAuthentication, NETCODE_MAX_PACKET_BYTES, NetcodeClient, NetcodeError};

use crate::stages::ClientSystems;

/// The first byte of a payload that carries several renet packets. renet's packet types are
/// 0 to 6.
pub const BATCH_TAG: u8 = 0xBA;

/// Bytes of an entry's length.
const LEN_BYTES: usize = 2;

/// A payload that claims to be a batch but is not a well-formed one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Nothing at all.
    #[error("empty payload")]
    Empty,
    /// The tag and nothing after it.
    #[error("batch with no entries")]
    NoEntries,
    /// An entry's length runs past the end of the payload.
    #[error("batch entry at byte {at} runs past the end of the payload")]
    Truncated {
        /// Offset of the entry's length.
        at: usize,
    },
    /// An entry of zero bytes.
    #[error("batch entry at byte {at} is empty")]
    EmptyEntry {
        /// Offset of the entry's length.
        at: usize,
    },
}

/// Groups `packets`, in order, into payloads of at most `max` bytes and calls `emit` with each.
/// A packet too big to share a payload goes alone; so does a group of one. `buf` is scratch space
/// kept between calls. Stops at the first error `emit` returns.
pub fn pack<P: AsRef<[u8]>, E>(
    packets: &[P],
    max: usize,
    buf: &mut Vec<u8>,
    mut emit: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), E> {
    // The group being built in `buf`: how many packets, and the last (sent bare when alone).
    let mut count = 0usize;
    let mut last: &[u8] = &[];
    for packet in packets.iter().map(AsRef::as_ref).filter(|p| !p.is_empty()) {
        let alone = 1 + LEN_BYTES + packet.len() > max;
        if count > 0 && (alone || buf.len() + LEN_BYTES + packet.len() > max) {
            emit(if count == 1 { last } else { buf })?;
            count = 0;
        }
        if alone {
            emit(packet)?;
            continue;
        }
        if count == 0 {
            buf.clear();
            buf.push(BATCH_TAG);
        }
        // `packet.len() < max`, which is far below `u16::MAX`.
        buf.extend_from_slice(&(packet.len() as u16).to_le_bytes());
        buf.extend_from_slice(packet);
        count += 1;
        last = packet;
    }
    match count {
        0 => Ok(()),
        1 => emit(last),
        _ => emit(buf),
    }
}

/// True for a netcode packet too short to hold its sequence number and its MAC. renetcode 2.0
/// checks only for 2 + 16 bytes before it subtracts the MAC's length from what follows a
/// sequence of up to 8 bytes, so a datagram of 18 to 24 bytes (a truncated or forged one, from
/// a connected client's address) panics its decoder; both ends drop such datagrams before
/// netcode sees them. (Found by the network-fault test: 0.5% truncation stopped a server.)
pub fn netcode_packet_too_short(packet: &[u8]) -> bool {
    /// netcode's connection request: its own fixed layout, read without the MAC arithmetic.
    const CONNECTION_REQUEST: u8 = 0;
    /// netcode's MAC (private in renetcode).
    const MAC_BYTES: usize = 16;
    match packet.first() {
        None => true,
        Some(&prefix) if prefix & 0x0F == CONNECTION_REQUEST => false,
        Some(&prefix) => {
            let sequence_len = usize::from(prefix >> 4);
            packet.len() < 1 + sequence_len + MAC_BYTES
        }
    }
}

/// The renet packets in one payload, checked whole before any is handed out.
pub fn parts(payload: &[u8]) -> Result<Parts<'_>, WireError> {
    match payload.first() {
        None => Err(WireError::Empty),
        Some(&BATCH_TAG) => {
            let entries = &payload[1..];
            if entries.is_empty() {
                return Err(WireError::NoEntries);
            }
            let mut at = 0;
            while at < entries.len() {
                let len = entry_len(entries, at).ok_or(WireError::Truncated { at: at + 1 })?;
                if len == 0 {
                    return Err(WireError::EmptyEntry { at: at + 1 });
                }
                if at + LEN_BYTES + len > entries.len() {
                    return Err(WireError::Truncated { at: at + 1 });
                }
                at += LEN_BYTES + len;
            }
            Ok(Parts {
                single: None,
                batch: entries,
            })
        }
        Some(_) => Ok(Parts {
            single: Some(payload),
            batch: &[],
        }),
    }
}

fn entry_len(entries: &[u8], at: usize) -> Option<usize> {
    let bytes = entries.get(at..at + LEN_BYTES)?;
    Some(usize::from(u16::from_le_bytes([bytes[0], bytes[1]])))
}

/// Iterator over the renet packets of a checked payload.
pub struct Parts<'a> {
    single: Option<&'a [u8]>,
    batch: &'a [u8],
}

impl<'a> Iterator for Parts<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if let Some(single) = self.single.take() {
            return Some(single);
        }
        let len = entry_len(self.batch, 0)?;
        let part = self.batch.get(LEN_BYTES..LEN_BYTES + len)?;
        self.batch = &self.batch[LEN_BYTES + len..];
        Some(part)
    }
}

/// Paces sends to one per interval on average. A send may come up to half a frame early (so
/// 33 ms frames still send at 30 Hz, not every other frame), and the early part is owed to the next
/// one; after a stall it starts over rather than catching up.
#[derive(Debug, Clone, Default)]
pub struct SendPacer {
    /// Nanoseconds per send.
    interval: i64,
    /// Nanoseconds since the last send was due (negative: it went early).
    since: i64,
    /// The last frame's length, nanoseconds.
    frame: i64,
}

impl SendPacer {
    /// One send per `interval` (zero: every time it is asked).
    pub fn new(interval: Duration) -> Self {
        let interval = nanos(interval);
        Self {
            interval,
            since: interval,
            frame: 0,
        }
    }

    /// Changes the interval.
    pub fn set_interval(&mut self, interval: Duration) {
        self.interval = nanos(interval);
    }

    /// Shifts the next send to `phase` into the interval (clients started together are not in
    /// step, and their sends should not be either).
    pub fn set_phase(&mut self, phase: Duration) {
        self.since = self.interval - nanos(phase).clamp(0, self.interval);
    }

    /// A frame of `dt` passed.
    pub fn advance(&mut self, dt: Duration) {
        self.frame = nanos(dt);
        self.since = self.since.saturating_add(self.frame);
    }

    /// Whether to send now; a yes counts as the send.
    pub fn due(&mut self) -> bool {
        if self.since.saturating_add(self.frame / 2) < self.interval {
            return false;
        }
        self.since -= self.interval;
        if self.since > self.interval {
            self.since = 0;
        }
        // The slack is for this frame's one send.
        self.frame = 0;
        true
    }
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX / 4)
}

/// The client's UDP socket and netcode client: renet_netcode's client loop with the framing above,
/// and an optional floor on the time between sends (the client's network rate).
#[derive(Resource)]
pub struct BatchedClientTransport {
    socket: UdpSocket,
    netcode: NetcodeClient,
    buffer: Box<[u8; NETCODE_MAX_PACKET_BYTES]>,
    batch: Vec<u8>,
    pacer: SendPacer,
    /// Injected network faults (load tests), and the time they are measured on.
    faults: Option<super::faults::FaultLink>,
    clock: Duration,
    /// The next send goes whatever the pacer says (a call is waiting).
    expedite: bool,
}

/// Sends `datagram` now, or hands it to the fault link, which sends it when it is due.
fn emit(
    socket: &UdpSocket,
    faults: &mut Option<super::faults::FaultLink>,
    clock: Duration,
    datagram: &[u8],
    addr: std::net::SocketAddr,
) -> io::Result<()> {
    match faults {
        Some(link) => {
            link.outgoing.offer(clock, datagram);
            flush_faulty(socket, link, clock, addr)
        }
        None => socket.send_to(datagram, addr).map(|_| ()),
    }
}

/// Sends what the fault link has due.
fn flush_faulty(
    socket: &UdpSocket,
    link: &mut super::faults::FaultLink,
    clock: Duration,
    addr: std::net::SocketAddr,
) -> io::Result<()> {
    while let Some(d) = link.outgoing.due(clock) {
        match socket.send_to(&d, addr) {
            Ok(_) => {}
            // A truncated datagram of zero bytes, a full buffer: dropped, as on a real link.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl BatchedClientTransport {
    /// Starts connecting with `authentication` over a bound socket.
    pub fn new(
        current_time: Duration,
        authentication: ClientAuthentication,
        socket: UdpSocket,
    ) -> Result<Self, NetcodeError> {
        socket.set_nonblocking(true)?;
        Ok(Self {
            socket,
            netcode: NetcodeClient::new(current_time, authentication)?,
            buffer: Box::new([0; NETCODE_MAX_PACKET_BYTES]),
            batch: Vec::with_capacity(NETCODE_MAX_PACKET_BYTES),
            pacer: SendPacer::new(Duration::ZERO),
            faults: None,
            clock: Duration::ZERO,
            expedite: false,
        })
    }

    /// The next [`Self::send_packets`] sends at once, whatever the pacer says: a call or a
    /// sealed request leaves now, while steady traffic keeps its pace. The pacer's own schedule
    /// is untouched.
    pub fn expedite(&mut self) {
        self.expedite = true;
    }

    /// Injects `faults` into this client's datagrams, both ways (`seed` picks the random
    /// choices).
    pub fn inject_faults(&mut self, faults: super::faults::Faults, seed: u64) {
        self.faults = (!faults.is_none()).then(|| super::faults::FaultLink::new(faults, seed));
    }

    /// What the injected faults did so far.
    pub fn fault_counts(&self) -> Option<super::faults::FaultCounts> {
        self.faults.as_ref().map(super::faults::FaultLink::counts)
    }

    fn process_payload(netcode: &mut NetcodeClient, packet: &mut [u8], client: &mut RenetClient) {
        if netcode_packet_too_short(packet) {
            debug!(
                "a {}-byte datagram from the server dropped: too short",
                packet.len()
            );
            return;
        }
        if let Some(payload) = netcode.process_packet(packet) {
            match parts(payload) {
                Ok(parts) => {
                    for part in parts {
                        client.process_packet(part);
                    }
                }
                Err(e) => warn!("malformed payload from the server dropped: {e}"),
            }
        }
    }

    /// Sends at most once per `interval` (zero: at every call of [`Self::send_packets`]).
    pub fn set_send_interval(&mut self, interval: Duration) {
        self.pacer.set_interval(interval);
    }

    /// Puts the next send `phase` into the interval (see [`SendPacer::set_phase`]).
    pub fn set_send_phase(&mut self, phase: Duration) {
        self.pacer.set_phase(phase);
    }

    /// Why netcode disconnected, once it has.
    pub fn disconnect_reason(&self) -> Option<NetcodeDisconnectReason> {
        self.netcode.disconnect_reason()
    }

    /// Leaves now: netcode sends its disconnect packets at once.
    pub fn disconnect(&mut self) {
        if self.netcode.is_disconnected() {
            return;
        }
        match self.netcode.disconnect() {
            Ok((addr, packet)) => {
                if let Err(e) = self.socket.send_to(packet, addr) {
                    debug!("cannot send the disconnect packet: {e}");
                }
            }
            Err(e) => debug!("cannot make the disconnect packet: {e}"),
        }
    }

    /// Advances netcode by `dt` and hands every waiting datagram's renet packets to `client`.
    pub fn update(
        &mut self,
        dt: Duration,
        client: &mut RenetClient,
    ) -> Result<(), NetcodeTransportError> {
        self.pacer.advance(dt);
        self.clock += dt;
        if let Some(reason) = self.netcode.disconnect_reason() {
            client.disconnect_due_to_transport();
            return Err(NetcodeError::Disconnected(reason).into());
        }
        if let Some(error) = client.disconnect_reason() {
            let (addr, packet) = self.netcode.disconnect()?;
            self.socket.send_to(packet, addr)?;
            return Err(error.into());
        }
        if self.netcode.is_connected() {
            client.set_connected();
        } else if self.netcode.is_connecting() {
            client.set_connecting();
        }
        let server = self.netcode.server_addr();
        loop {
            let len = match self.socket.recv_from(&mut self.buffer[..]) {
                Ok((len, addr)) if addr == server => len,
                Ok((_, addr)) => {
                    debug!("datagram from {addr}, not the server: dropped");
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => break,
                Err(e) => return Err(NetcodeTransportError::IO(e)),
            };
            match self.faults.as_mut() {
                Some(link) => link.incoming.offer(self.clock, &self.buffer[..len]),
                None => Self::process_payload(&mut self.netcode, &mut self.buffer[..len], client),
            }
        }
        // Datagrams the fault link has let through by now.
        while let Some(mut packet) = self
            .faults
            .as_mut()
            .and_then(|l| l.incoming.due(self.clock))
        {
            Self::process_payload(&mut self.netcode, &mut packet, client);
        }
        if let Some((packet, addr)) = self.netcode.update(dt) {
            emit(&self.socket, &mut self.faults, self.clock, packet, addr)?;
        }
        if let Some(link) = self.faults.as_mut() {
            flush_faulty(&self.socket, link, self.clock, server)?;
        }
        Ok(())
    }

    /// Sends what renet has for the server, batched, unless the last send was less than the send
    /// interval ago.
    pub fn send_packets(&mut self, client: &mut RenetClient) -> Result<(), NetcodeTransportError> {
        if let Some(reason) = self.netcode.disconnect_reason() {
            return Err(NetcodeError::Disconnected(reason).into());
        }
        let expedite = std::mem::take(&mut self.expedite);
        if !self.pacer.due() && !expedite {
            return Ok(());
        }
        let packets = client.get_packets_to_send();
        let Self {
            socket,
            netcode,
            batch,
            faults,
            clock,
            ..
        } = self;
        pack(
            &packets,
            renetcode::NETCODE_MAX_PAYLOAD_BYTES,
            batch,
            |payload| -> Result<(), NetcodeTransportError> {
                let (addr, datagram) = netcode.generate_payload_packet(payload)?;
                emit(socket, faults, *clock, datagram, addr)?;
                Ok(())
            },
        )
    }
}

/// Runs [`BatchedClientTransport`] where bevy_renet's netcode client plugin would run its own.
pub struct BatchedClientPlugin;

impl Plugin for BatchedClientPlugin {
    fn build(&self, app: &mut App) {
        crate::stages::client(app);
        app.add_systems(
            PreUpdate,
            receive
                .in_set(RenetReceive)
                .in_set(ClientSystems::Receive)
                .run_if(resource_exists::<BatchedClientTransport>)
                .run_if(resource_exists::<bevy_renet::RenetClient>)
                .after(RenetClientPlugin::update_system),
        )
        .add_systems(
            PostUpdate,
            send.in_set(RenetSend)
                .in_set(ClientSystems::Send)
                .run_if(resource_exists::<BatchedClientTransport>)
                .run_if(resource_exists::<bevy_renet::RenetClient>),
        )
        .add_systems(
            Last,
            disconnect_on_exit
                .in_set(ClientSystems::Finish)
                .run_if(resource_exists::<BatchedClientTransport>),
        );
    }
}

fn receive(
    mut transport: ResMut<BatchedClientTransport>,
    mut client: ResMut<bevy_renet::RenetClient>,
    time: Res<Time<Real>>,
) {
    // Once disconnected this fails every frame; the connection state says why, once.
    if let Err(e) = transport.update(time.delta(), &mut client) {
        debug!("client transport: {e}");
    }
}

fn send(
    mut transport: ResMut<BatchedClientTransport>,
    mut client: ResMut<bevy_renet::RenetClient>,
) {
    if let Err(e) = transport.send_packets(&mut client) {
        debug!("client transport: {e}");
    }
}

fn disconnect_on_exit(exit: MessageReader<AppExit>, mut transport: ResMut<BatchedClientTransport>) {
    if !exit.is_empty() {
        transport.disconnect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packed(packets: &[Vec<u8>], max: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = Vec::new();
        pack(packets, max, &mut buf, |p| -> Result<(), ()> {
            out.push(p.to_vec());
            Ok(())
        })
        .unwrap();
        out
    }

    fn unpacked(payloads: &[Vec<u8>]) -> Vec<Vec<u8>> {
        payloads
            .iter()
            .flat_map(|p| parts(p).unwrap().map(<[u8]>::to_vec).collect::<Vec<_>>())
            .collect()
    }

    #[test]
    fn packets_travel_together_and_come_back_in_order() {
        let packets: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 10 + usize::from(i)]).collect();
        let payloads = packed(&packets, 1300);
        assert_eq!(payloads.len(), 1);
        assert_eq!(payloads[0][0], BATCH_TAG);
        assert_eq!(unpacked(&payloads), packets);
    }

    #[test]
    fn a_lone_packet_travels_bare() {
        let packets = vec![vec![3u8; 40]];
        let payloads = packed(&packets, 1300);
        assert_eq!(payloads, packets);
        assert_eq!(unpacked(&payloads), packets);
    }

    #[test]
    fn payloads_never_exceed_the_limit() {
        // 1200-byte slices (renet's largest) and small acks, mixed.
        let mut packets = Vec::new();
        for i in 0..20u8 {
            packets.push(vec![
                1u8;
                if i % 3 == 0 {
                    1210
                } else {
                    30 + usize::from(i)
                }
            ]);
        }
        let payloads = packed(&packets, 1300);
        assert!(payloads.iter().all(|p| p.len() <= 1300));
        assert!(payloads.len() < packets.len());
        assert_eq!(unpacked(&payloads), packets);
        // A packet that cannot share a payload goes alone, bare.
        let big = vec![vec![2u8; 1299], vec![4u8; 10]];
        let payloads = packed(&big, 1300);
        assert_eq!(payloads, big);
    }

    #[test]
    fn malformed_batches_are_refused_whole() {
        assert_eq!(parts(&[]).err(), Some(WireError::Empty));
        assert_eq!(parts(&[BATCH_TAG]).err(), Some(WireError::NoEntries));
        assert_eq!(
            parts(&[BATCH_TAG, 5, 0, 1, 2]).err(),
            Some(WireError::Truncated { at: 1 })
        );
        assert_eq!(
            parts(&[BATCH_TAG, 1, 0, 9, 0, 0]).err(),
            Some(WireError::EmptyEntry { at: 4 })
        );
        assert_eq!(
            parts(&[BATCH_TAG, 1, 0, 9, 7]).err(),
            Some(WireError::Truncated { at: 4 })
        );
        for bytes in crate::transport::noise(11, 3000, 64) {
            let mut tagged = vec![BATCH_TAG];
            tagged.extend(bytes);
            if let Ok(parts) = parts(&tagged) {
                let total: usize = parts.map(|p| p.len() + LEN_BYTES).sum();
                assert_eq!(total + 1, tagged.len());
            }
        }
    }

    #[test]
    fn the_pacer_keeps_the_rate_whatever_the_frame_time() {
        let interval = Duration::from_secs(1) / 30;
        for frame_ms in [1u64, 7, 16, 17, 20, 33, 34, 50] {
            let mut pacer = SendPacer::new(interval);
            let frame = Duration::from_millis(frame_ms);
            let frames = 10_000 / frame_ms;
            let mut sends = 0;
            for _ in 0..frames {
                pacer.advance(frame);
                sends += u64::from(pacer.due());
            }
            // Ten seconds: 300 sends at most, or one per frame when frames are slower.
            let expected = 300.min(frames);
            assert!(
                sends.abs_diff(expected) <= expected / 20 + 1,
                "{frame_ms} ms frames: {sends} sends, expected about {expected}"
            );
        }
        // Zero interval: every frame; the first ask is always due.
        let mut every = SendPacer::new(Duration::ZERO);
        assert!((0..5).all(|_| every.due()));
        let mut first = SendPacer::new(interval);
        assert!(first.due());
        assert!(!first.due());
        // After a stall it starts over instead of sending a burst.
        first.advance(Duration::from_secs(2));
        assert!(first.due());
        assert!(!first.due());
        // A phase delays the first send by that much, and no more.
        let mut late = SendPacer::new(interval);
        late.set_phase(Duration::from_millis(20));
        let mut waited = Duration::ZERO;
        while !late.due() {
            late.advance(Duration::from_millis(1));
            waited += Duration::from_millis(1);
        }
        assert_eq!(waited, Duration::from_millis(20));
    }

    #[test]
    fn renet_refuses_a_batch_handed_to_it_whole() {
        // The tag is not one of renet's packet types: a batch mistaken for a packet fails loudly.
        let mut client = RenetClient::new(renet::ConnectionConfig::default());
        client.set_connected();
        client.process_packet(&[BATCH_TAG, 1, 0, 0]);
        assert!(client.is_disconnected());
    }
}
