//! The dedicated server's loop. A tick runs every `1 / tick_hz` seconds (the whole frame:
//! receive, admit, requests, the game, saves, send, health). Between two ticks the loop does not
//! sleep blind: it waits on the socket, and whenever datagrams arrive it runs one pass of
//! [`BetweenTicks`] (receive, admit, the [`ServerRequests`] schedule, send), so a call is
//! answered as soon as it arrives instead of at the next tick. Passes are timed apart from ticks
//! ([`TickTimes::between`]): a tick's figures stay the tick's.
//!
//! Only a dedicated server runs this loop; `play` (a window's loop) and the tests (which call
//! `app.update()`) answer calls in the tick's `Requests` stage.
//!
//! [`ServerRequests`]: crate::stages::ServerRequests

use std::time::{Duration, Instant};

use bevy::app::{App, AppExit, PluginsState};

use super::{GatedServerTransport, TickTimes};
use crate::server::ServerSettings;
use crate::stages::BetweenTicks;

/// Shortest time from the end of one pass to the start of the next: datagrams that arrive
/// within it are read by one pass, so a crowd's calls do not cost a pass each.
pub const PASS_GAP: Duration = Duration::from_micros(500);

/// The runner: ticks at the server's tick rate ([`ServerSettings::tick`]), passes between them
/// (see the module).
pub fn tick_runner(mut app: App) -> AppExit {
    if app.plugins_state() != PluginsState::Cleaned {
        while app.plugins_state() == PluginsState::Adding {
            bevy::tasks::tick_global_task_pools_on_main_thread();
        }
        app.finish();
        app.cleanup();
    }
    let Some(tick) = app
        .world()
        .get_resource::<ServerSettings>()
        .map(ServerSettings::tick)
    else {
        bevy::log::error!("the tick runner runs a server app: it has no ServerSettings");
        return AppExit::error();
    };
    loop {
        let start = Instant::now();
        app.update();
        if let Some(exit) = app.should_exit() {
            return exit;
        }
        between_ticks(&mut app, start + tick);
    }
}

/// Runs a pass of [`BetweenTicks`] each time datagrams arrive, until `deadline`; returns the
/// passes run. An app without a server transport just waits.
pub fn between_ticks(app: &mut App, deadline: Instant) -> u64 {
    let mut passes = 0;
    loop {
        let now = Instant::now();
        if now >= deadline {
            return passes;
        }
        let arrived = match app.world().get_resource::<GatedServerTransport>() {
            Some(transport) => transport.wait_for_datagrams(deadline - now),
            None => {
                std::thread::sleep(deadline - now);
                return passes;
            }
        };
        if !arrived {
            continue;
        }
        let began = Instant::now();
        app.world_mut().run_schedule(BetweenTicks);
        let took = began.elapsed();
        passes += 1;
        if let Some(mut times) = app.world_mut().get_resource_mut::<TickTimes>() {
            times.record_pass(took);
        }
        let gap = deadline
            .saturating_duration_since(Instant::now())
            .min(PASS_GAP);
        if !gap.is_zero() {
            std::thread::sleep(gap);
        }
    }
}
