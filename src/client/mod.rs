//! The client half. [`ClientCorePlugin`] is the logic that runs with or without a window; the
//! `render` module (cargo feature `client`) adds the window, the 3D scene and the UI.

#[cfg(feature = "client")]
pub mod display;
#[cfg(feature = "client")]
pub mod render;

use std::net::SocketAddr;

use bevy::prelude::*;

/// The client's link to its server.
#[derive(Resource, Debug, Clone, PartialEq, Eq)]
pub enum ConnectionState {
    /// No transport exists to connect with (the transport issue builds it).
    Offline {
        /// Why the client is not connected.
        reason: String,
    },
    /// Handshake in progress.
    Connecting,
    /// Connected and in session.
    Connected,
    /// The server ended the session or the link timed out.
    Disconnected {
        /// What the server or the transport said.
        reason: String,
    },
}

impl std::fmt::Display for ConnectionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectionState::Offline { reason } => write!(f, "offline ({reason})"),
            ConnectionState::Connecting => f.write_str("connecting"),
            ConnectionState::Connected => f.write_str("connected"),
            ConnectionState::Disconnected { reason } => write!(f, "disconnected ({reason})"),
        }
    }
}

/// The server the client joins.
#[derive(Resource, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerAddress(pub SocketAddr);

/// Client logic that needs no window.
pub struct ClientCorePlugin {
    /// Where to connect.
    pub server: SocketAddr,
}

impl Plugin for ClientCorePlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(ServerAddress(self.server))
            .insert_resource(ConnectionState::Offline {
                reason: "network transport not implemented yet".to_string(),
            })
            .add_systems(Startup, announce);
    }
}

fn announce(server: Res<ServerAddress>, state: Res<ConnectionState>) {
    info!("client for server {}: {}", server.0, *state);
}
