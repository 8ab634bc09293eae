//! The client half. [`ClientCorePlugin`] is the logic that runs with or without a window; the
//! `render` module (cargo feature `client`) adds the window, the 3D scene and the UI.

#[cfg(feature = "client")]
mod aquarium;
#[cfg(feature = "client")]
mod baseline;
#[cfg(feature = "client")]
mod display;
#[cfg(feature = "client")]
mod fish;
#[cfg(feature = "client")]
mod login;
#[cfg(feature = "client")]
mod render;
#[cfg(feature = "client")]
mod shading;
#[cfg(feature = "client")]
pub mod sound;
#[cfg(feature = "client")]
mod tank_fx;
#[cfg(feature = "client")]
pub mod ui;

#[cfg(feature = "client")]
pub use aquarium::AquariumPlugin;
#[cfg(feature = "client")]
pub use baseline::frame_baseline;
#[cfg(feature = "client")]
pub use display::probe_x_display;
#[cfg(feature = "client")]
pub use fish::FishPlugin;
#[cfg(feature = "client")]
pub use login::{LoginForm, LoginScreenPlugin};
#[cfg(feature = "client")]
pub use render::{ScenePlugin, ScreenshotPlugin, WindowClosePlugin};
#[cfg(feature = "client")]
pub use shading::ShadingPlugin;
#[cfg(feature = "client")]
pub use sound::SoundPlugin;
#[cfg(feature = "client")]
pub use tank_fx::TankEffectsPlugin;
#[cfg(feature = "client")]
pub use ui::{GameUiPlugin, StateDumpPlugin};

use std::net::SocketAddr;

use bevy::prelude::*;

use crate::process::RunMode;
use crate::shutdown::{OnShutdown, Shutdown, ShutdownReason};
use crate::transport::ConnectionState;

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
            .add_systems(Startup, announce)
            .add_systems(OnShutdown, fail_unless_connected);
    }
}

/// A client whose `--exit-after` ran out exits 1 unless it was connected then: scripts and checks
/// rely on the exit status.
fn fail_unless_connected(
    mode: Res<RunMode>,
    state: Res<ConnectionState>,
    mut shutdown: ResMut<Shutdown>,
) {
    if *mode == RunMode::Client
        && shutdown.reason() == Some(&ShutdownReason::ExitAfter)
        && *state != ConnectionState::Connected
    {
        warn!(
            "not connected when --exit-after ran out ({}): exit status 1",
            *state
        );
        shutdown.set_exit_code(1);
    }
}

fn announce(server: Res<ServerAddress>, state: Res<ConnectionState>) {
    info!("client for server {}: {}", server.0, *state);
}
