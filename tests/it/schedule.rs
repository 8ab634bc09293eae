//! The schedule check: every system of ours that runs each frame (First, PreUpdate, Update,
//! PostUpdate, Last) is in the server's or the client's chain of stages (`bloxquarium::stages`).
//!
//! "Ours" is decided without names (Bevy is built without its `debug` feature, so systems have
//! none): a system is ours unless a baseline App, built from only the third-party plugins our
//! modes use, has a system of the same type. So a system we add is never taken for a
//! third-party one; a third-party system the baseline lacks fails loudly, never silently.
//! Bevy's own sync points (`ApplyDeferred`) are not ours. One-shot schedules (Startup, OnEnter,
//! OnShutdown) are outside the per-frame chain. The server's passes between ticks
//! (`BetweenTicks`) are checked like a frame; the request handlers' schedule (`ServerRequests`)
//! is itself the `Requests` stage, so everything in it is staged.

use std::any::TypeId;
use std::collections::HashSet;

use bevy::app::{App, First, Last, PostUpdate, PreUpdate, Update};
use bevy::asset::AssetPlugin;
use bevy::ecs::intern::Interned;
use bevy::ecs::schedule::{ScheduleLabel, Schedules, SystemSet};
use bevy::prelude::*;
use bevy::state::app::StatesPlugin;
use bevy_asset_loader::prelude::*;
use bloxquarium::assets::{AssetBytes, AssetPhase, CriticalAssets};
use bloxquarium::stages::{BetweenTicks, ClientSystems, ServerRequests, ServerSystems};
use iyes_progress::prelude::*;

use crate::harness::{self, Scratch};

fn per_frame() -> [Interned<dyn ScheduleLabel>; 7] {
    [
        First.intern(),
        PreUpdate.intern(),
        Update.intern(),
        PostUpdate.intern(),
        Last.intern(),
        BetweenTicks.intern(),
        ServerRequests.intern(),
    ]
}

/// Schedules whose every system is in a stage by being there: the request handlers.
fn staged_by_schedule() -> [Interned<dyn ScheduleLabel>; 1] {
    [ServerRequests.intern()]
}

fn stages() -> Vec<Interned<dyn SystemSet>> {
    [
        ServerSystems::Begin,
        ServerSystems::Receive,
        ServerSystems::Admit,
        ServerSystems::Requests,
        ServerSystems::Handle,
        ServerSystems::Persist,
        ServerSystems::Send,
        ServerSystems::Report,
        ServerSystems::End,
    ]
    .into_iter()
    .map(|s| s.intern())
    .chain(
        [
            ClientSystems::Begin,
            ClientSystems::Receive,
            ClientSystems::Sync,
            ClientSystems::Handle,
            ClientSystems::Present,
            ClientSystems::Send,
            ClientSystems::Finish,
        ]
        .into_iter()
        .map(|s| s.intern()),
    )
    .collect()
}

/// Builds every per-frame schedule's executable without running a frame.
fn initialize(app: &mut App) {
    app.finish();
    app.cleanup();
    let world = app.world_mut();
    for label in per_frame() {
        let Some(mut s) = world.resource_mut::<Schedules>().remove(label) else {
            continue;
        };
        s.initialize(world)
            .unwrap_or_else(|e| panic!("{label:?} does not build: {e}"));
        world.resource_mut::<Schedules>().insert(s);
    }
}

/// The types of the systems Bevy and the third-party plugins we use bring, per frame.
fn baseline() -> HashSet<TypeId> {
    let mut app = App::new();
    app.add_plugins((MinimalPlugins, StatesPlugin, AssetPlugin::default()))
        .add_plugins((bevy_renet::RenetServerPlugin, bevy_renet::RenetClientPlugin))
        .init_asset::<AssetBytes>()
        .init_state::<AssetPhase>()
        .add_plugins(
            ProgressPlugin::<AssetPhase>::new()
                .with_state_transition(AssetPhase::Loading, AssetPhase::Playing),
        )
        .add_loading_state(
            LoadingState::new(AssetPhase::Loading)
                .on_failure_continue_to_state(AssetPhase::Recovering)
                .load_collection::<CriticalAssets>(),
        );
    initialize(&mut app);
    let schedules = app.world().resource::<Schedules>();
    // The sync points Bevy inserts between ordered systems that use commands.
    let mut types = HashSet::from([TypeId::of::<bevy::ecs::schedule::ApplyDeferred>()]);
    for label in per_frame() {
        if let Some(s) = schedules.get(label)
            && let Ok(systems) = s.systems()
        {
            types.extend(systems.map(|(_, sys)| sys.system_type()));
        }
    }
    types
}

/// Per schedule: how many systems of ours there are, and how many are in no stage.
fn ours_outside_the_chain(app: &App, third_party: &HashSet<TypeId>) -> Vec<(String, usize, usize)> {
    let schedules = app.world().resource::<Schedules>();
    let mut out = Vec::new();
    for label in per_frame() {
        let Some(s) = schedules.get(label) else {
            continue;
        };
        let mut staged = HashSet::new();
        for set in stages() {
            if let Ok(keys) = s.graph().systems_in_set(set) {
                staged.extend(keys.iter().copied());
            }
        }
        let (mut ours, mut outside) = (0, 0);
        for (key, system) in s.systems().expect("initialized") {
            if third_party.contains(&system.system_type()) {
                continue;
            }
            ours += 1;
            if !staged.contains(&key) && !staged_by_schedule().contains(&label) {
                outside += 1;
            }
        }
        out.push((format!("{label:?}"), ours, outside));
    }
    out
}

fn assert_all_staged(app: &App, min_ours: usize) {
    let report = ours_outside_the_chain(app, &baseline());
    let ours: usize = report.iter().map(|r| r.1).sum();
    assert!(
        ours >= min_ours,
        "only {ours} systems of ours found per frame: {report:?}"
    );
    let outside: Vec<_> = report.iter().filter(|r| r.2 > 0).collect();
    assert!(
        outside.is_empty(),
        "systems of ours outside the stages (schedule, ours, outside): {outside:?}; every \
         per-frame `add_systems` needs `.in_set(ServerSystems::…)` or `.in_set(ClientSystems::…)`"
    );
}

#[test]
fn every_system_of_a_play_app_is_in_the_server_or_client_chain() {
    let d = Scratch::new("schedule-play");
    let mut app = harness::app(&[
        "--data",
        d.path(),
        "play",
        "--headless",
        "--bind",
        "127.0.0.1:0",
    ]);
    // The window's plugins too: their systems are only initialized here, never run.
    #[cfg(feature = "client")]
    app.add_plugins(bloxquarium::ClientRenderPlugins {
        screenshot: Default::default(),
    });
    initialize(&mut app);
    assert_all_staged(&app, 60);
}

#[test]
fn the_check_sees_a_system_outside_the_chain() {
    fn stray() {}
    let d = Scratch::new("schedule-stray");
    let mut app = harness::app(&["--data", d.path(), "server", "--bind", "127.0.0.1:0"]);
    app.add_systems(Update, stray);
    initialize(&mut app);
    let report = ours_outside_the_chain(&app, &baseline());
    let update = report
        .iter()
        .find(|r| r.0.contains("Update") && !r.0.contains("Pre") && !r.0.contains("Post"))
        .expect("an Update schedule");
    assert_eq!(update.2, 1, "{report:?}");
}
