//! The server's netcode transport with a gate in front: connection requests from one address
//! over `security.connectAttemptsPerSecond` are dropped before netcode decrypts them.
//!
//! This is renet_netcode's `NetcodeServerTransport` loop (socket → `NetcodeServer` → renet)
//! with one check added; owning the loop is the only way to see packets before netcode does.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use bevy::prelude::*;
use bevy_renet::{RenetReceive, RenetSend, RenetServer, RenetServerPlugin};
use renetcode::{NETCODE_MAX_PACKET_BYTES, NETCODE_USER_DATA_BYTES, NetcodeServer, ServerResult};

use crate::security::detect::AddressGate;

/// netcode's packet type in the low four bits of a packet's first byte: 0 is a connection
/// request (the only packet an unknown address may send that costs the server a decryption).
const CONNECTION_REQUEST: u8 = 0;

/// The server's UDP socket, netcode server and connection gate.
#[derive(Resource)]
pub struct GatedServerTransport {
    socket: UdpSocket,
    netcode: NetcodeServer,
    buffer: Box<[u8; NETCODE_MAX_PACKET_BYTES]>,
    gate: AddressGate,
    clock: Duration,
    reported: u64,
}

impl GatedServerTransport {
    /// Wraps a bound socket.
    pub fn new(
        config: renetcode::ServerConfig,
        socket: UdpSocket,
        gate: AddressGate,
    ) -> io::Result<Self> {
        socket.set_nonblocking(true)?;
        Ok(Self {
            socket,
            netcode: NetcodeServer::new(config),
            buffer: Box::new([0; NETCODE_MAX_PACKET_BYTES]),
            gate,
            clock: Duration::ZERO,
            reported: 0,
        })
    }

    /// The identity data of a connected client's token.
    pub fn user_data(&self, client: u64) -> Option<[u8; NETCODE_USER_DATA_BYTES]> {
        self.netcode.user_data(client)
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

    /// Advances netcode and reads every waiting datagram.
    pub fn update(&mut self, dt: Duration, server: &mut RenetServer) -> io::Result<()> {
        self.clock += dt;
        self.netcode.update(dt);
        loop {
            match self.socket.recv_from(&mut self.buffer[..]) {
                Ok((len, addr)) => {
                    let packet = &mut self.buffer[..len];
                    if packet
                        .first()
                        .is_some_and(|b| b & 0x0F == CONNECTION_REQUEST)
                        && !self.gate.allow(addr.ip(), self.clock)
                    {
                        continue;
                    }
                    let result = self.netcode.process_packet(addr, packet);
                    handle(result, &self.socket, server);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => break,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => continue,
                Err(e) => return Err(e),
            }
        }
        for client in self.netcode.clients_id() {
            let result = self.netcode.update_client(client);
            handle(result, &self.socket, server);
        }
        for client in server.disconnections_id() {
            let result = self.netcode.disconnect(client);
            handle(result, &self.socket, server);
        }
        Ok(())
    }

    /// Sends renet's packets for every client.
    pub fn send_packets(&mut self, server: &mut RenetServer) {
        'clients: for client in server.clients_id() {
            let Ok(packets) = server.get_packets_to_send(client) else {
                continue;
            };
            for packet in packets {
                match self.netcode.generate_payload_packet(client, &packet) {
                    Ok((addr, payload)) => {
                        if let Err(e) = self.socket.send_to(payload, addr) {
                            debug!(client, "send to {addr} failed: {e}");
                            continue 'clients;
                        }
                    }
                    Err(e) => {
                        debug!(client, "cannot seal a payload packet: {e}");
                        continue 'clients;
                    }
                }
            }
        }
    }

    /// Disconnects every client at once (exit).
    pub fn disconnect_all(&mut self, server: &mut RenetServer) {
        for client in self.netcode.clients_id() {
            let result = self.netcode.disconnect(client);
            handle(result, &self.socket, server);
        }
    }
}

fn handle(result: ServerResult, socket: &UdpSocket, server: &mut RenetServer) {
    let send = |packet: &[u8], addr: SocketAddr| {
        if let Err(e) = socket.send_to(packet, addr) {
            debug!("send to {addr} failed: {e}");
        }
    };
    match result {
        ServerResult::None => {}
        ServerResult::PacketToSend { payload, addr } => send(payload, addr),
        ServerResult::Payload { client_id, payload } => {
            if let Err(e) = server.process_packet_from(payload, client_id) {
                debug!(client_id, "bad renet packet: {e}");
            }
        }
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
}

/// Runs the gated transport where bevy_renet's netcode plugin would run its own.
pub struct GatedServerPlugin;

impl Plugin for GatedServerPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(
            PreUpdate,
            receive
                .in_set(RenetReceive)
                .run_if(resource_exists::<GatedServerTransport>)
                .run_if(resource_exists::<RenetServer>)
                .after(RenetServerPlugin::update_system)
                .before(RenetServerPlugin::emit_server_events_system),
        )
        .add_systems(
            PostUpdate,
            send.in_set(RenetSend)
                .run_if(resource_exists::<GatedServerTransport>)
                .run_if(resource_exists::<RenetServer>),
        )
        .add_systems(
            Last,
            disconnect_on_exit
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
