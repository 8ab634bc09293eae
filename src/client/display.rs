//! Is there an X display to open a window on? Asked before any window code runs, so that a
//! machine without one gets one clear line instead of a panic inside winit.

use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::time::Duration;

const HINT: &str = "run `bloxquarium server`, or start the client under xvfb-run";

/// Ok when `DISPLAY` names an X server that accepts a connection.
pub fn probe_x_display() -> Result<(), String> {
    let display = std::env::var("DISPLAY").unwrap_or_default();
    probe(&display)
}

fn probe(display: &str) -> Result<(), String> {
    let display = display.trim();
    if display.is_empty() {
        return Err(format!("no X display: DISPLAY is not set; {HINT}"));
    }
    let (host, rest) = display.rsplit_once(':').ok_or_else(|| {
        format!("no X display: DISPLAY={display:?} is not of the form [host]:N; {HINT}")
    })?;
    let number: u16 = rest
        .split('.')
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| {
            format!("no X display: DISPLAY={display:?} has no display number; {HINT}")
        })?;
    let reached = if host.is_empty() || host == "unix" {
        UnixStream::connect(format!("/tmp/.X11-unix/X{number}")).is_ok()
    } else {
        let port = 6000u16.saturating_add(number);
        (host, port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .is_some_and(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok())
    };
    if reached {
        Ok(())
    } else {
        Err(format!(
            "no X display: cannot connect to DISPLAY={display}; {HINT}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::probe;

    #[test]
    fn empty_display_is_refused_with_a_hint() {
        let err = probe("").unwrap_err();
        assert!(
            err.contains("DISPLAY is not set") && err.contains("xvfb-run"),
            "{err}"
        );
    }

    #[test]
    fn malformed_display_is_refused() {
        assert!(probe("nonsense").unwrap_err().contains("[host]:N"));
        assert!(probe(":x").unwrap_err().contains("display number"));
    }

    #[test]
    fn unreachable_display_is_refused() {
        assert!(probe(":65000").unwrap_err().contains("cannot connect"));
    }
}
