//! The authoritative server half. Subsystem server plugins join [`crate::app::ServerPlugins`].

use std::net::SocketAddr;
use std::time::Duration;

use bevy::prelude::*;

/// The server's start-up settings, from the command line.
#[derive(Resource, Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    /// UDP address to listen on.
    pub bind: SocketAddr,
    /// Ticks per second.
    pub tick_hz: u32,
    /// Most clients at once.
    pub max_clients: u32,
}

impl ServerSettings {
    /// The length of one tick.
    pub fn tick(&self) -> Duration {
        Duration::from_secs_f64(1.0 / f64::from(self.tick_hz.max(1)))
    }
}

/// Inserts [`ServerSettings`] and announces the server.
pub struct ServerCorePlugin {
    /// Resolved settings.
    pub settings: ServerSettings,
}

impl Plugin for ServerCorePlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(self.settings.clone())
            .add_systems(Startup, announce);
    }
}

fn announce(settings: Res<ServerSettings>) {
    info!(
        "server ticking at {} Hz ({:.1} ms per tick), up to {} clients",
        settings.tick_hz,
        settings.tick().as_secs_f64() * 1000.0,
        settings.max_clients
    );
    info!("listening on udp://{}", settings.bind);
}
