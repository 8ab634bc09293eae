//! The server's netcode transport with a gate in front: connection requests from one address
//! over `security.connectAttemptsPerSecond` are dropped before netcode decrypts them.
//!
//! This is renet_netcode's `NetcodeServerTransport` loop (socket → `NetcodeServer` → renet)
//! with one check added; owning the loop is the only way to see packets before netcode does. It
//! also frames renet's packets as [`wire`] describes, and hands each tick's sealed datagrams to a
//! sender thread ([`Sender`]).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use bevy::prelude::*;
use bevy_renet::{RenetReceive, RenetSend, RenetServer, RenetServerPlugin};
use renetcode::{
    NETCODE_MAX_PACKET_BYTES, NETCODE_MAX_PAYLOAD_BYTES, NETCODE_USER_DATA_BYTES, NetcodeServer,
    ServerResult,
};

use super::wire;
use crate::stages::{BetweenTicks, ServerSystems};

use super::address_gate::AddressGate;

/// netcode's packet type in the low four bits of a packet's first byte: 0 is a connection
/// request (the only packet an unknown address may send that costs the server a decryption).
const CONNECTION_REQUEST: u8 = 0;

/// Datagrams and the renet packets in them, each way, since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WireCounts {
    /// Datagrams received that netcode accepted as a client's payload.
    pub datagrams_in: u64,
    /// renet packets in those datagrams.
    pub packets_in: u64,
    /// Payload datagrams sent.
    pub datagrams_out: u64,
    /// renet packets in those datagrams.
    pub packets_out: u64,
    /// Payloads that were not well-formed batches (their clients were disconnected).
    pub malformed: u64,
}

/// Datagrams sealed in one tick, each with its address and where it ends in `bytes`.
#[derive(Default)]
struct Outbound {
    bytes: Vec<u8>,
    ends: Vec<(SocketAddr, usize)>,
}

impl Outbound {
    fn push(&mut self, addr: SocketAddr, datagram: &[u8]) {
        self.bytes.extend_from_slice(datagram);
        self.ends.push((addr, self.bytes.len()));
    }

    fn send_all(&self, socket: &UdpSocket) {
        let mut start = 0;
        for &(addr, end) in &self.ends {
            send_datagram(socket, &self.bytes[start..end], addr);
            start = end;
        }
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }
}

/// Sends one datagram; a failure is logged and otherwise ignored (UDP promises nothing more).
fn send_datagram(socket: &UdpSocket, datagram: &[u8], addr: SocketAddr) {
    if let Err(e) = socket.send_to(datagram, addr) {
        debug!("send to {addr} failed: {e}");
    }
}

/// Sends each tick's sealed datagrams on a thread of its own. On loopback or a NIC alike, a
/// `sendto` walks the kernel's UDP/IP path for every datagram; with 256 clients that was a third
/// of a loaded tick. Sealing stays on the tick (it needs netcode's per-client state); only the
/// system calls move, so the tick no longer waits for them. The thread's CPU time still counts
/// in the process's (the load test reports it). Buffers go back and forth, so nothing is
/// allocated per tick once warm.
struct Sender {
    queue: Option<mpsc::Sender<Outbound>>,
    /// Buffers the thread gave back (in a mutex only because a resource must be `Sync`).
    spare: Mutex<mpsc::Receiver<Outbound>>,
    thread: Option<JoinHandle<()>>,
}

impl Sender {
    fn spawn(socket: UdpSocket) -> io::Result<Self> {
        let (queue, work) = mpsc::channel::<Outbound>();
        let (give_back, spare) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("bloxquarium-net-send".into())
            .spawn(move || {
                yield_to_the_tick();
                while let Ok(mut out) = work.recv() {
                    out.send_all(&socket);
                    out.clear();
                    if give_back.send(out).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Self {
            queue: Some(queue),
            spare: Mutex::new(spare),
            thread: Some(thread),
        })
    }

    fn buffer(&self) -> Outbound {
        self.spare
            .lock()
            .ok()
            .and_then(|spare| spare.try_recv().ok())
            .unwrap_or_default()
    }

    /// Queues `out`; hands it back if the thread is gone.
    fn send(&self, out: Outbound) -> Result<(), Outbound> {
        match &self.queue {
            Some(queue) => queue.send(out).map_err(|e| e.0),
            None => Err(out),
        }
    }
}

/// Marks the calling thread SCHED_BATCH: woken with datagrams to send, it waits for a free core
/// instead of preempting the tick that woke it.
fn yield_to_the_tick() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: plain system call on the calling thread (pid 0) with a valid parameter.
        let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
        if rc != 0 {
            debug!(
                "sender thread stays at the default policy: {}",
                io::Error::last_os_error()
            );
        }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        // Closing the queue ends the thread once it has sent what was queued.
        self.queue.take();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            warn!("the sender thread panicked");
        }
    }
}

/// The server's UDP socket, netcode server and connection gate.
#[derive(Resource)]
pub struct GatedServerTransport {
    socket: UdpSocket,
    sender: Option<Sender>,
    netcode: NetcodeServer,
    buffer: Box<[u8; NETCODE_MAX_PACKET_BYTES]>,
    batch: Vec<u8>,
    gate: AddressGate,
    counts: WireCounts,
    clock: Duration,
    reported: u64,
    /// Clients whose packets went to renet since the last tick or [`Self::take_heard`].
    heard: Vec<u64>,
}

impl GatedServerTransport {
    /// Wraps a bound socket.
    pub fn new(
        config: renetcode::ServerConfig,
        socket: UdpSocket,
        gate: AddressGate,
    ) -> io::Result<Self> {
        socket.set_nonblocking(true)?;
        // Without a thread the tick sends for itself.
        let sender = match socket.try_clone().and_then(Sender::spawn) {
            Ok(sender) => Some(sender),
            Err(e) => {
                warn!("no sender thread ({e}); the tick sends its own datagrams");
                None
            }
        };
        Ok(Self {
            socket,
            sender,
            netcode: NetcodeServer::new(config),
            buffer: Box::new([0; NETCODE_MAX_PACKET_BYTES]),
            batch: Vec::with_capacity(NETCODE_MAX_PACKET_BYTES),
            gate,
            counts: WireCounts::default(),
            clock: Duration::ZERO,
            reported: 0,
            heard: Vec::new(),
        })
    }

    /// The identity data of a connected client's token.
    pub fn user_data(&self, client: u64) -> Option<[u8; NETCODE_USER_DATA_BYTES]> {
        self.netcode.user_data(client)
    }

    /// Datagrams and renet packets each way since start.
    pub fn counts(&self) -> WireCounts {
        self.counts
    }

    /// A connected client's address.
    pub fn client_addr(&self, client: u64) -> Option<SocketAddr> {
        self.netcode.client_addr(client)
    }

    /// Connection attempts refused so far, and the addresses refused since the last call.
    pub fn take_connect_refusals(&mut self) -> (u64, Vec<(std::net::IpAddr, u64)>) {
        let flooders = if self.gate.refused > self.reported {
            self.reported = self.gate.refused;
            self.gate.take_flooders()
        } else {
            Vec::new()
        };
        (self.gate.refused, flooders)
    }

    /// Advances netcode and reads every waiting datagram; then netcode's per-client upkeep
    /// (timeouts, keep-alives, disconnections).
    pub fn update(&mut self, dt: Duration, server: &mut RenetServer) -> io::Result<()> {
        self.clock += dt;
        self.netcode.update(dt);
        self.read_datagrams(server)?;
        // The tick reads every client's messages.
        self.heard.clear();
        for client in self.netcode.clients_id() {
            let result = self.netcode.update_client(client);
            let _ = handle(result, &self.socket, server, &mut self.counts);
        }
        for client in server.disconnections_id() {
            let result = self.netcode.disconnect(client);
            let _ = handle(result, &self.socket, server, &mut self.counts);
        }
        Ok(())
    }

    /// The clients whose packets went to renet since the last tick or call, each once: between
    /// ticks, the only clients with messages to read.
    pub fn take_heard(&mut self) -> Vec<u64> {
        let mut clients = std::mem::take(&mut self.heard);
        clients.sort_unstable();
        clients.dedup();
        clients
    }

    /// Reads every waiting datagram without advancing netcode's clock or its per-client upkeep
    /// (between ticks: the next tick's [`Self::update`] does both).
    pub fn read_datagrams(&mut self, server: &mut RenetServer) -> io::Result<()> {
        loop {
            match self.socket.recv_from(&mut self.buffer[..]) {
                Ok((len, addr)) => {
                    let packet = &mut self.buffer[..len];
                    if super::wire::netcode_packet_too_short(packet) {
                        self.counts.malformed += 1;
                        continue;
                    }
                    if packet
                        .first()
                        .is_some_and(|b| b & 0x0F == CONNECTION_REQUEST)
                        && !self.gate.allow(addr.ip(), self.clock)
                    {
                        continue;
                    }
                    let result = self.netcode.process_packet(addr, packet);
                    if let Some(client) = handle(result, &self.socket, server, &mut self.counts) {
                        self.heard.push(client);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => break,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Waits up to `timeout` for a datagram to arrive; true if one is waiting (or the wait could
    /// not be made: then the caller reads and finds out).
    pub fn wait_for_datagrams(&self, timeout: Duration) -> bool {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let mut fd = libc::pollfd {
                fd: self.socket.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let timeout = libc::timespec {
                tv_sec: timeout.as_secs().min(i32::MAX as u64) as libc::time_t,
                tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
            };
            // SAFETY: one valid pollfd, for a socket this value owns, and a valid timespec, both
            // for the call's length; no signal mask.
            let rc = unsafe { libc::ppoll(&mut fd, 1, &timeout, std::ptr::null()) };
            rc != 0
        }
        #[cfg(not(target_os = "linux"))]
        {
            std::thread::sleep(timeout.min(Duration::from_millis(1)));
            true
        }
    }

    /// Seals renet's packets for every client, as few datagrams as they fit in (see [`wire`]),
    /// and hands them to the sender thread.
    pub fn send_packets(&mut self, server: &mut RenetServer) {
        let clients = server.clients_id();
        self.send_packets_to(server, clients);
    }

    /// Like [`Self::send_packets`], for `clients` only. Between ticks the server sends to the
    /// clients it answered, not to all: renet puts an acknowledgement packet in every client's
    /// packets each time it is asked, so asking for everyone's sent a datagram to every client
    /// in every pass.
    pub fn send_packets_to(&mut self, server: &mut RenetServer, clients: Vec<u64>) {
        let mut out = self
            .sender
            .as_ref()
            .map_or_else(Outbound::default, Sender::buffer);
        for client in clients {
            let Ok(packets) = server.get_packets_to_send(client) else {
                continue;
            };
            let (netcode, counts) = (&mut self.netcode, &mut self.counts);
            counts.packets_out += packets.len() as u64;
            let sealed = wire::pack(
                &packets,
                NETCODE_MAX_PAYLOAD_BYTES,
                &mut self.batch,
                |payload| {
                    let (addr, datagram) = netcode.generate_payload_packet(client, payload)?;
                    counts.datagrams_out += 1;
                    out.push(addr, datagram);
                    Ok::<(), renetcode::NetcodeError>(())
                },
            );
            if let Err(e) = sealed {
                debug!(client, "cannot seal a payload packet: {e}");
            }
        }
        if out.ends.is_empty() {
            return;
        }
        let unsent = match &self.sender {
            Some(sender) => sender.send(out).err(),
            None => Some(out),
        };
        if let Some(out) = unsent {
            if self.sender.take().is_some() {
                warn!("the sender thread is gone; the tick sends its own datagrams");
            }
            out.send_all(&self.socket);
        }
    }

    /// Disconnects every client at once (exit).
    pub fn disconnect_all(&mut self, server: &mut RenetServer) {
        for client in self.netcode.clients_id() {
            let result = self.netcode.disconnect(client);
            let _ = handle(result, &self.socket, server, &mut self.counts);
        }
    }
}

/// Acts on what netcode made of a datagram; the client whose packets went to renet, if any.
fn handle(
    result: ServerResult,
    socket: &UdpSocket,
    server: &mut RenetServer,
    counts: &mut WireCounts,
) -> Option<u64> {
    let send = |packet: &[u8], addr: SocketAddr| send_datagram(socket, packet, addr);
    match result {
        ServerResult::None => {}
        ServerResult::PacketToSend { payload, addr } => send(payload, addr),
        ServerResult::Payload { client_id, payload } => match wire::parts(payload) {
            Ok(parts) => {
                counts.datagrams_in += 1;
                for part in parts {
                    counts.packets_in += 1;
                    if let Err(e) = server.process_packet_from(part, client_id) {
                        debug!(client_id, "bad renet packet: {e}");
                    }
                }
                return Some(client_id);
            }
            // Authenticated by netcode, so it is the client's own doing: renet ends a connection
            // that sends a packet it cannot read, and so does this.
            Err(e) => {
                counts.malformed += 1;
                warn!(client_id, "malformed payload, disconnecting: {e}");
                server.disconnect(client_id);
            }
        },
        ServerResult::ClientConnected {
            client_id,
            addr,
            payload,
            ..
        } => {
            server.add_connection(client_id);
            send(payload, addr);
        }
        ServerResult::ClientDisconnected {
            client_id,
            addr,
            payload,
        } => {
            server.remove_connection(client_id);
            if let Some(payload) = payload {
                send(payload, addr);
            }
        }
    }
    None
}

/// Runs the gated transport where bevy_renet's netcode plugin would run its own.
pub struct GatedServerPlugin;

impl Plugin for GatedServerPlugin {
    fn build(&self, app: &mut App) {
        crate::stages::server(app);
        app.add_systems(
            PreUpdate,
            receive
                .in_set(RenetReceive)
                .in_set(ServerSystems::Receive)
                .run_if(resource_exists::<GatedServerTransport>)
                .run_if(resource_exists::<RenetServer>)
                .after(RenetServerPlugin::update_system)
                .before(RenetServerPlugin::emit_server_events_system),
        )
        .add_systems(
            PostUpdate,
            send.in_set(RenetSend)
                .in_set(ServerSystems::Send)
                .run_if(resource_exists::<GatedServerTransport>)
                .run_if(resource_exists::<RenetServer>),
        )
        // Between ticks: datagrams read without advancing netcode's clock or its upkeep (the
        // next tick does both), connections announced. (Sending is the transport's
        // `send_between_ticks`: to the clients answered only.)
        .add_systems(
            BetweenTicks,
            (
                receive_between_ticks,
                RenetServerPlugin::emit_server_events_system,
            )
                .chain()
                .in_set(RenetReceive)
                .in_set(ServerSystems::Receive)
                .run_if(resource_exists::<GatedServerTransport>)
                .run_if(resource_exists::<RenetServer>),
        )
        .add_systems(
            Last,
            disconnect_on_exit
                .in_set(ServerSystems::Report)
                .run_if(resource_exists::<GatedServerTransport>)
                .run_if(resource_exists::<RenetServer>),
        );
    }
}

fn receive(
    mut transport: ResMut<GatedServerTransport>,
    mut server: ResMut<RenetServer>,
    time: Res<Time<Real>>,
) {
    if let Err(e) = transport.update(time.delta(), &mut server) {
        error!("UDP receive failed: {e}");
    }
}

fn receive_between_ticks(
    mut transport: ResMut<GatedServerTransport>,
    mut server: ResMut<RenetServer>,
) {
    if let Err(e) = transport.read_datagrams(&mut server) {
        error!("UDP receive failed: {e}");
    }
}

fn send(mut transport: ResMut<GatedServerTransport>, mut server: ResMut<RenetServer>) {
    transport.send_packets(&mut server);
}

fn disconnect_on_exit(
    exit: MessageReader<AppExit>,
    mut transport: ResMut<GatedServerTransport>,
    mut server: ResMut<RenetServer>,
) {
    if !exit.is_empty() {
        transport.disconnect_all(&mut server);
    }
}
