//! The room: a second game on the Bloxquarium framework (see `room.rs`).
//!
//! ```text
//! cargo run --example room -- server [DIR] [ADDR]     # a room server; writes tokens for players 1-3 under DIR/tokens
//! cargo run --example room -- client TOKEN ADDR [LINE] [BUMPS]
//!                                                     # joins, says LINE, bumps BUMPS times, prints the room and leaves
//! ```

mod room;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bevy::prelude::*;
use bloxquarium::transport::{ConnectionState, IssuedToken, ServerTokens};

const DEFAULT_ADDR: &str = "127.0.0.1:5700";

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.first().map(String::as_str) {
        Some("server") => serve(&args[1..]),
        Some("client") => join(&args[1..]),
        _ => Err("usage: room server [DIR] [ADDR] | room client TOKEN ADDR [LINE] [BUMPS]".into()),
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("room: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn addr(arg: Option<&String>) -> Result<SocketAddr, String> {
    arg.map_or(DEFAULT_ADDR, String::as_str)
        .parse()
        .map_err(|e| format!("bad address: {e}"))
}

fn serve(args: &[String]) -> Result<(), String> {
    let base = PathBuf::from(args.first().map_or("room-data", String::as_str));
    let paths = room::room_paths(&base);
    let mut app =
        room::server_app(&paths, addr(args.get(1))?, 30, true).map_err(|e| e.to_string())?;
    bloxquarium::shutdown::install_os_signal_handler().map_err(|e| e.to_string())?;
    let tokens = base.join("tokens");
    std::fs::create_dir_all(&tokens).map_err(|e| e.to_string())?;
    let issuer = app.world().resource::<ServerTokens>().0.clone();
    for (player, name) in [(1, "Ada"), (2, "Ben"), (3, "Cy")] {
        let path = tokens.join(format!("{name}.token"));
        issuer
            .issue(player, name)
            .and_then(|t| t.write_file(&path))
            .map_err(|e| e.to_string())?;
        println!("token for {name} (player {player}): {}", path.display());
    }
    println!("room server on {}; Ctrl-C stops it", addr(args.get(1))?);
    app.run();
    Ok(())
}

fn join(args: &[String]) -> Result<(), String> {
    let token = IssuedToken::read_file(&PathBuf::from(
        args.first().ok_or("client needs a token file")?,
    ))
    .map_err(|e| e.to_string())?;
    let server = addr(args.get(1))?;
    let line = args.get(2).cloned();
    let bumps: u32 = args
        .get(3)
        .map_or(Ok(1), |b| b.parse())
        .map_err(|e| format!("bumps: {e}"))?;
    let scratch = std::env::temp_dir().join(format!("room-client-{}", std::process::id()));
    let mut app = room::client_app(&room::room_paths(&scratch), server, token, false)
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    let frame = || std::thread::sleep(Duration::from_millis(16));
    while start.elapsed() < Duration::from_secs(10) {
        app.update();
        if app.world().resource::<room::RoomView>().counter.is_some() {
            break;
        }
        if let ConnectionState::Disconnected { reason } = app.world().resource::<ConnectionState>()
        {
            return Err(format!("disconnected: {reason}"));
        }
        frame();
    }
    if let Some(line) = &line {
        room::say(&mut app, line);
    }
    for _ in 0..bumps {
        room::bump(&mut app);
    }
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(2) {
        app.update();
        frame();
    }
    let view = app.world().resource::<room::RoomView>().clone();
    for (from, text) in &view.lines {
        println!("{from}: {text}");
    }
    match view.counter {
        Some(n) => println!("your counter: {n}"),
        None => println!(
            "no answer from the room ({}); a token joins from one address only: use a fresh one",
            app.world().resource::<ConnectionState>()
        ),
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}
