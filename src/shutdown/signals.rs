//! The process-wide OS signal handler. One per process (the `ctrlc` crate allows one); apps that
//! listen read the counter it keeps.

use std::sync::atomic::{AtomicU32, Ordering};

static SIGNALS: AtomicU32 = AtomicU32::new(0);

/// Exit code for a second signal that ends the process at once (128 + SIGINT).
pub const IMMEDIATE_EXIT_CODE: i32 = 130;

/// How many SIGINT/SIGTERM/SIGHUP the process has received.
pub fn os_signal_count() -> u32 {
    SIGNALS.load(Ordering::SeqCst)
}

/// Installs the handler: the first signal starts a graceful shutdown (apps see
/// [`os_signal_count`] > 0), a second one exits the process at once with code 130.
/// Returns an error if another handler is already installed.
pub fn install_os_signal_handler() -> Result<(), ctrlc::Error> {
    ctrlc::try_set_handler(|| {
        let before = SIGNALS.fetch_add(1, Ordering::SeqCst);
        if before >= 1 {
            // The graceful path is already running and the operator insists.
            std::process::exit(IMMEDIATE_EXIT_CODE);
        }
    })
}
