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

/// Installs the handler: the first signal starts a graceful shutdown (apps see
/// [`os_signal_count`] > 0), a second one exits the process at once with code 130.
pub fn install_os_signal_handler() -> std::io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for _ in signals.forever() {
                let before = SIGNALS.fetch_add(1, Ordering::SeqCst);
                if before >= 1 {
                    // The graceful path is already running and the operator insists.
                    std::process::exit(IMMEDIATE_EXIT_CODE);
                }
            }
        })?;
    Ok(())
}
