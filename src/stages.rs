//! The frame's stages: one chain of system sets for the server and one for the client. Every
//! system of ours that runs each frame is in one of them (`tests/it/schedule.rs` walks the
//! schedules and fails on one that is not), so "what runs before what" is read here, not pieced
//! together from `before`/`after` across plugins.
//!
//! Server, one tick: `Begin` (First: the tick's clock, config expiry, shutdown triggers) →
//! `Receive` (PreUpdate: the netcode loop, decoding) → `Admit` (the security gate) → `Requests`
//! (Update: the [`ServerRequests`] schedule, where calls are answered) → `Handle` (events, the
//! game) → `Persist` (the data store's loads, saves and tasks) → `Send` (PostUpdate: encoding,
//! the netcode loop) → `Report` (Last: health, metrics) → `End` (the tick's duration taken, after
//! everything else it did).
//!
//! Server, between ticks: a dedicated server does not leave a call waiting for the next tick.
//! Whenever datagrams arrive between two ticks, its runner runs the [`BetweenTicks`] schedule:
//! `Receive` → `Admit` → `Requests` → `Send`, the same stages as the tick's and the same
//! [`ServerRequests`] schedule (one copy of each handler, so a call is read once, whichever runs
//! it). Everything else (the game's step, saves, health) waits for the tick.
//!
//! Client, one frame: `Begin` → `Receive` → `Sync` (what the server sent: config, manifest,
//! state, prediction) → `Handle` (input, loading, game logic) → `Present` (scene, HUD, panels) →
//! `Send` → `Finish` (frame pacing).
//!
//! Each chain is configured once per App, by the first plugin that needs it ([`server`],
//! [`client`]); schedules run in Bevy's order (First, PreUpdate, Update, PostUpdate, Last), and
//! within each the sets that belong there are chained.

use bevy::ecs::schedule::ScheduleLabel;
use bevy::prelude::*;

/// The server's request handlers: every system that answers a client's call (reads `Call<T>`)
/// belongs here. The schedule runs once in each tick (the [`ServerSystems::Requests`] stage) and
/// in each pass of [`BetweenTicks`].
#[derive(ScheduleLabel, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServerRequests;

/// What a dedicated server runs between two ticks when datagrams arrive: the `Receive`,
/// `Admit`, `Requests` and `Send` stages, chained.
#[derive(ScheduleLabel, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BetweenTicks;

/// The server's stages, in order.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerSystems {
    /// First: the tick's clock, config expiry, shutdown triggers.
    Begin,
    /// PreUpdate: datagrams in, decoded and queued.
    Receive,
    /// PreUpdate: the security gate admits queued messages to the handlers.
    Admit,
    /// Update: calls answered (the [`ServerRequests`] schedule runs here).
    Requests,
    /// Update: events handled, the game simulated.
    Handle,
    /// Update: the data store's loads, saves and background tasks.
    Persist,
    /// PostUpdate: replies and pushes encoded and sent.
    Send,
    /// Last: health checks, metrics.
    Report,
    /// Last, after everything: the tick's duration is taken.
    End,
}

/// The client's stages, in order.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientSystems {
    /// First: config changes, shutdown triggers.
    Begin,
    /// PreUpdate: datagrams in, decoded.
    Receive,
    /// PreUpdate: what the server sent applied (config, manifest, state, prediction).
    Sync,
    /// Update: input, asset loading, game logic.
    Handle,
    /// Update: scene, HUD and panels drawn from the state.
    Present,
    /// PostUpdate: calls and events sent.
    Send,
    /// Last: frame pacing.
    Finish,
}

/// Configures the server's chain in `app` (once: later calls find the plugin added).
pub fn server(app: &mut App) {
    if !app.is_plugin_added::<ServerStagesPlugin>() {
        app.add_plugins(ServerStagesPlugin);
    }
}

/// Configures the client's chain in `app` (once: later calls find the plugin added).
pub fn client(app: &mut App) {
    if !app.is_plugin_added::<ClientStagesPlugin>() {
        app.add_plugins(ClientStagesPlugin);
    }
}

struct ServerStagesPlugin;

impl Plugin for ServerStagesPlugin {
    fn build(&self, app: &mut App) {
        app.configure_sets(First, ServerSystems::Begin)
            .configure_sets(
                PreUpdate,
                (ServerSystems::Receive, ServerSystems::Admit).chain(),
            )
            .configure_sets(
                Update,
                (
                    ServerSystems::Requests,
                    ServerSystems::Handle,
                    ServerSystems::Persist,
                )
                    .chain(),
            )
            .configure_sets(PostUpdate, ServerSystems::Send)
            .configure_sets(Last, (ServerSystems::Report, ServerSystems::End).chain())
            .init_schedule(ServerRequests)
            .init_schedule(BetweenTicks)
            .configure_sets(
                BetweenTicks,
                (
                    ServerSystems::Receive,
                    ServerSystems::Admit,
                    ServerSystems::Requests,
                    ServerSystems::Send,
                )
                    .chain(),
            )
            .add_systems(Update, run_requests.in_set(ServerSystems::Requests))
            .add_systems(BetweenTicks, run_requests.in_set(ServerSystems::Requests));
    }
}

/// Runs the [`ServerRequests`] schedule (in the tick, and between ticks).
fn run_requests(world: &mut World) {
    // Initialised with the chain; absent only if someone removed it, and then there is nothing
    // to run.
    let _ = world.try_run_schedule(ServerRequests);
}

struct ClientStagesPlugin;

impl Plugin for ClientStagesPlugin {
    fn build(&self, app: &mut App) {
        app.configure_sets(First, ClientSystems::Begin)
            .configure_sets(
                PreUpdate,
                (ClientSystems::Receive, ClientSystems::Sync).chain(),
            )
            .configure_sets(
                Update,
                (ClientSystems::Handle, ClientSystems::Present).chain(),
            )
            .configure_sets(PostUpdate, ClientSystems::Send)
            .configure_sets(Last, ClientSystems::Finish);
    }
}
