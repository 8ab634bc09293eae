//! Graceful shutdown: every way out (SIGINT/SIGTERM, window close, `--exit-after`, a request from
//! code) goes through one shutdown phase that other plugins hook into to drain their work.
//!
//! The phase, in order:
//! 1. a trigger calls [`Shutdown::request`] (the first request wins; later ones are ignored);
//! 2. the [`OnShutdown`] schedule runs once, at the start of the next frame: flush, stop accepting
//!    work, start final saves;
//! 3. every frame, systems in [`ShutdownSystems::Drain`] (in `Update`) run and call
//!    [`Shutdown::hold`] while they still have work in flight;
//! 4. the first frame nobody holds, the app exits with code 0. If holds outlast the drain timeout
//!    the app exits with code 1 and logs who was still holding.
//!
//! A second OS signal exits the process at once (code 130).

mod signals;

use std::time::Duration;

use bevy::app::AppExit;
use bevy::ecs::schedule::ScheduleLabel;
use bevy::prelude::*;

use crate::stages::{ClientSystems, ServerSystems};

pub use signals::{install_os_signal_handler, os_signal_count};

/// Runs once, at the start of the frame after shutdown was requested. Order your own systems in it
/// freely; it runs with the whole world available.
#[derive(ScheduleLabel, Debug, Clone, PartialEq, Eq, Hash)]
pub struct OnShutdown;

/// System sets of the shutdown phase.
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub enum ShutdownSystems {
    /// `First`: looks at the triggers (signals, `--exit-after`) and starts the phase.
    Detect,
    /// `Update`, only while draining: put systems here that finish work and [`Shutdown::hold`]
    /// the exit until they are done.
    Drain,
    /// `Last`: exits once nobody holds.
    Finish,
}

/// Why the app is shutting down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShutdownReason {
    /// SIGINT or SIGTERM (or SIGHUP).
    Signal,
    /// The primary window was closed.
    WindowClosed,
    /// `--exit-after` ran out.
    ExitAfter,
    /// Code asked for it (a screenshot taken, an admin command, a test).
    Requested(String),
}

impl std::fmt::Display for ShutdownReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShutdownReason::Signal => f.write_str("signal"),
            ShutdownReason::WindowClosed => f.write_str("window closed"),
            ShutdownReason::ExitAfter => f.write_str("--exit-after elapsed"),
            ShutdownReason::Requested(why) => write!(f, "requested: {why}"),
        }
    }
}

/// Where the app is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownPhase {
    /// Normal operation.
    Running,
    /// Requested; [`OnShutdown`] has not run yet.
    Requested,
    /// [`OnShutdown`] ran; waiting for holds to clear.
    Draining,
    /// `AppExit` was written.
    Done,
}

/// The shutdown state of one app.
#[derive(Resource, Debug)]
pub struct Shutdown {
    phase: ShutdownPhase,
    reason: Option<ShutdownReason>,
    /// Real time (since app start) when draining began.
    drain_started: Option<Duration>,
    drain_timeout: Duration,
    /// Holds taken this frame; cleared after `Finish` looks at them.
    holds: Vec<String>,
    frames_drained: u32,
    exit_code: u8,
}

impl Shutdown {
    /// A running app whose drain may take at most `drain_timeout`.
    pub fn new(drain_timeout: Duration) -> Self {
        Self {
            phase: ShutdownPhase::Running,
            reason: None,
            drain_started: None,
            drain_timeout,
            holds: Vec::new(),
            frames_drained: 0,
            exit_code: 0,
        }
    }

    /// Starts the shutdown phase. Returns false if it had already started.
    pub fn request(&mut self, reason: ShutdownReason) -> bool {
        if self.phase != ShutdownPhase::Running {
            return false;
        }
        info!("shutdown requested ({reason})");
        self.phase = ShutdownPhase::Requested;
        self.reason = Some(reason);
        true
    }

    /// Keeps the app alive for this frame; call it every frame from a [`ShutdownSystems::Drain`]
    /// system while work is still in flight. `who` names the work in the timeout log.
    pub fn hold(&mut self, who: impl Into<String>) {
        self.holds.push(who.into());
    }

    /// True from the request until exit.
    pub fn is_shutting_down(&self) -> bool {
        self.phase != ShutdownPhase::Running
    }

    /// The current phase.
    pub fn phase(&self) -> ShutdownPhase {
        self.phase
    }

    /// Why shutdown started, once it has.
    pub fn reason(&self) -> Option<&ShutdownReason> {
        self.reason.as_ref()
    }

    /// Makes the process exit with `code` (non-zero) once the drain completes: the run failed
    /// its purpose (for example a headless client that was not connected when its time ran out).
    pub fn set_exit_code(&mut self, code: u8) {
        self.exit_code = code;
    }

    /// Frames spent draining so far.
    pub fn frames_drained(&self) -> u32 {
        self.frames_drained
    }

    /// Decides the end of one drain frame at real time `now`: `Some(exit)` when the app should
    /// exit now. Clears this frame's holds.
    fn finish_frame(&mut self, now: Duration) -> Option<AppExit> {
        if self.phase != ShutdownPhase::Draining {
            self.holds.clear();
            return None;
        }
        self.frames_drained += 1;
        let started = *self.drain_started.get_or_insert(now);
        let holds = std::mem::take(&mut self.holds);
        if holds.is_empty() {
            info!(
                "shutdown complete after {} frame(s), {:.0} ms",
                self.frames_drained,
                now.saturating_sub(started).as_secs_f64() * 1000.0
            );
            self.phase = ShutdownPhase::Done;
            return Some(match std::num::NonZeroU8::new(self.exit_code) {
                Some(code) => AppExit::Error(code),
                None => AppExit::Success,
            });
        }
        if now.saturating_sub(started) > self.drain_timeout {
            error!(
                "shutdown drain timed out after {:?}; still holding: {}",
                self.drain_timeout,
                holds.join(", ")
            );
            self.phase = ShutdownPhase::Done;
            return Some(AppExit::error());
        }
        None
    }
}

/// Ends the app after a fixed real time, through the shutdown phase.
#[derive(Resource, Debug, Clone, Copy)]
pub struct ExitAfter(pub Duration);

/// Installs the shutdown phase.
#[derive(Debug, Clone)]
pub struct ShutdownPlugin {
    /// Watch the process's SIGINT/SIGTERM (install the handler with
    /// [`install_os_signal_handler`]). Off in tests, where many apps share one process.
    pub listen_to_os_signals: bool,
    /// `--exit-after`.
    pub exit_after: Option<Duration>,
    /// The longest the drain may take before the app exits with an error.
    pub drain_timeout: Duration,
}

impl Default for ShutdownPlugin {
    fn default() -> Self {
        Self {
            listen_to_os_signals: false,
            exit_after: None,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Resource)]
struct ListenToOsSignals;

impl Plugin for ShutdownPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(Shutdown::new(self.drain_timeout))
            .init_schedule(OnShutdown)
            .configure_sets(
                First,
                ShutdownSystems::Detect
                    .in_set(ServerSystems::Begin)
                    .in_set(ClientSystems::Begin),
            )
            .configure_sets(
                Update,
                ShutdownSystems::Drain
                    .run_if(draining)
                    .in_set(ServerSystems::Persist)
                    .in_set(ClientSystems::Handle),
            )
            .configure_sets(
                Last,
                ShutdownSystems::Finish
                    .in_set(ServerSystems::Report)
                    .in_set(ClientSystems::Finish),
            )
            .add_systems(
                First,
                (detect_triggers, begin_shutdown)
                    .chain()
                    .in_set(ShutdownSystems::Detect),
            )
            .add_systems(Last, finish_shutdown.in_set(ShutdownSystems::Finish));
        if let Some(after) = self.exit_after {
            app.insert_resource(ExitAfter(after));
        }
        if self.listen_to_os_signals {
            app.insert_resource(ListenToOsSignals);
        }
    }
}

/// Run condition: true while the app is shutting down.
pub fn shutting_down(shutdown: Res<Shutdown>) -> bool {
    shutdown.is_shutting_down()
}

fn draining(shutdown: Res<Shutdown>) -> bool {
    shutdown.phase == ShutdownPhase::Draining
}

fn detect_triggers(
    mut shutdown: ResMut<Shutdown>,
    time: Res<Time<Real>>,
    // Only with `--exit-after`.
    exit_after: Option<Res<ExitAfter>>,
    // Only in the real binary, which handles OS signals.
    signals: Option<Res<ListenToOsSignals>>,
) {
    if shutdown.is_shutting_down() {
        return;
    }
    if signals.is_some() && os_signal_count() > 0 {
        shutdown.request(ShutdownReason::Signal);
    } else if let Some(after) = exit_after
        && time.elapsed() >= after.0
    {
        shutdown.request(ShutdownReason::ExitAfter);
    }
}

fn begin_shutdown(world: &mut World) {
    let requested = world
        .get_resource::<Shutdown>()
        .is_some_and(|s| s.phase == ShutdownPhase::Requested);
    if !requested {
        return;
    }
    // Draining starts before the hook runs so that hook systems see `Draining`.
    if let Some(mut shutdown) = world.get_resource_mut::<Shutdown>() {
        shutdown.phase = ShutdownPhase::Draining;
    }
    let _ = world.try_run_schedule(OnShutdown);
}

fn finish_shutdown(
    mut shutdown: ResMut<Shutdown>,
    time: Res<Time<Real>>,
    mut exit: MessageWriter<AppExit>,
) {
    if let Some(code) = shutdown.finish_frame(time.elapsed()) {
        exit.write(code);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_request_wins() {
        let mut s = Shutdown::new(Duration::from_secs(1));
        assert!(s.request(ShutdownReason::Signal));
        assert!(!s.request(ShutdownReason::WindowClosed));
        assert_eq!(s.reason(), Some(&ShutdownReason::Signal));
    }

    #[test]
    fn holds_delay_exit_until_released() {
        let mut s = Shutdown::new(Duration::from_secs(10));
        s.request(ShutdownReason::ExitAfter);
        s.phase = ShutdownPhase::Draining;
        s.hold("saves");
        assert!(s.finish_frame(Duration::from_secs(1)).is_none());
        assert_eq!(
            s.finish_frame(Duration::from_secs(2)),
            Some(AppExit::Success)
        );
        assert_eq!(s.phase(), ShutdownPhase::Done);
    }

    #[test]
    fn drain_timeout_exits_with_error() {
        let mut s = Shutdown::new(Duration::from_secs(5));
        s.request(ShutdownReason::ExitAfter);
        s.phase = ShutdownPhase::Draining;
        s.hold("stuck");
        assert!(s.finish_frame(Duration::from_secs(1)).is_none());
        s.hold("stuck");
        assert_eq!(
            s.finish_frame(Duration::from_secs(7)),
            Some(AppExit::error())
        );
    }

    #[test]
    fn running_app_never_exits() {
        let mut s = Shutdown::new(Duration::from_secs(5));
        s.hold("ignored");
        assert!(s.finish_frame(Duration::from_secs(100)).is_none());
    }
}
