//! The process-wide OS signal handler. One per process; apps that listen read the counter it
//! keeps.
//!
//! SIGINT and SIGTERM are handled even when the process inherited them as ignored (a server
//! started in the background by a script): an operator's `kill` must still shut it down
//! gracefully. SIGHUP is left alone so that `nohup` keeps working.

use std::sync::atomic::{AtomicU32, Ordering};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

static SIGNALS: AtomicU32 = AtomicU32::new(0);

/// Exit code for a second signal that ends the process at once (128 + SIGINT).
pub const IMMEDIATE_EXIT_CODE: i32 = 130;

/// How many SIGINT/SIGTERM the process has received.
pub fn os_signal_count() -> u32 {
    SIGNALS.load(Ordering::SeqCst)
}

/// What a signal does, given how many came before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalAction {
    /// The first: start the graceful shutdown phase.
    Graceful,
    /// A later one: exit at once with [`IMMEDIATE_EXIT_CODE`].
    ExitNow,
}

/// The decision for a signal that arrives after `before` others.
pub fn on_signal(before: u32) -> SignalAction {
    if before == 0 {
        SignalAction::Graceful
    } else {
        SignalAction::ExitNow
    }
}

/// Installs the handler: the first signal starts a graceful shutdown (apps see
/// [`os_signal_count`] > 0), a second one exits the process at once with code 130.
pub fn install_os_signal_handler() -> std::io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for _ in signals.forever() {
                let before = SIGNALS.fetch_add(1, Ordering::SeqCst);
                if on_signal(before) == SignalAction::ExitNow {
                    // The graceful path is already running and the operator insists.
                    std::process::exit(IMMEDIATE_EXIT_CODE);
                }
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_signal_is_graceful_later_ones_exit_now() {
        assert_eq!(on_signal(0), SignalAction::Graceful);
        assert_eq!(on_signal(1), SignalAction::ExitNow);
        assert_eq!(on_signal(7), SignalAction::ExitNow);
    }
}
