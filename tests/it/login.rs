//! The login service over real HTTPS: register, log in, join and play; refusals; the abuse
//! limits; certificate pinning; refresh tokens.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bevy::prelude::*;
use bloxquarium::accounts::login::tls::{self, PinVerifier};
use bloxquarium::accounts::login::{Credentials, LoginClient, LoginError, LoginService, http};
use bloxquarium::accounts::{self, FIRST_ACCOUNT_PLAYER, HashParams};
use bloxquarium::datastore::DataStore;
use bloxquarium::game::protocol::ShopItem;
use bloxquarium::game::{GameOp, Prediction};
use bloxquarium::security::{AuditKind, AuditQuery};

use crate::harness::{self, JoinUntil, Scratch, pump_until};

/// Cheap hashing for tests (the shipped parameters take ~20 ms a hash).
const CHEAP: &str = r#""login.argon2MemoryKiB": 64, "login.argon2Iterations": 1"#;

/// A second address of this host: the loopback network answers on all of 127/8.
const OTHER: &str = "127.0.0.2";

/// A dedicated server with the login service, config `keys` added to cheap hashing; the
/// service's address.
fn login_server(d: &Scratch, keys: &str, extra: &[&str]) -> (App, SocketAddr) {
    let cfg = harness::config_dir(d, &format!("{{{CHEAP}{keys}}}"));
    let mut args = vec!["--config", cfg.as_str(), "--data", d.path(), "server"];
    if !extra.contains(&"--bind") {
        args.extend(["--bind", "127.0.0.1:0"]);
    }
    args.extend_from_slice(extra);
    let mut server = harness::app(&args);
    server.update();
    let addr = server
        .world()
        .get_resource::<LoginService>()
        .and_then(|s| s.local_addr)
        .expect("the login service runs");
    (server, addr)
}

fn creds(username: &str, password: &str) -> Credentials {
    Credentials {
        username: username.into(),
        password: password.into(),
        friend: None,
    }
}

fn client(addr: SocketAddr, dir: &Scratch) -> LoginClient {
    LoginClient::new(&addr.to_string(), &dir.0.join("client"), None).expect("a login client")
}

fn refused(r: Result<impl std::fmt::Debug, LoginError>) -> (u16, String, String) {
    match r {
        Err(LoginError::Refused { status, refusal }) => (status, refusal.reason, refusal.error),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn audit(d: &Scratch, kind: AuditKind) -> Vec<String> {
    bloxquarium::security::query_audit(
        &d.0,
        &AuditQuery {
            player: None,
            kind: Some(kind),
            since_ms: None,
        },
    )
    .unwrap()
    .into_iter()
    .map(|r| r.details)
    .collect()
}

/// A headless client that registers Ann (password from a file in `home`) at `login` and joins.
fn registering_player(home: &Scratch, login: &str) -> App {
    let password = home.0.join("password");
    std::fs::write(&password, "sea-shells-42\n").unwrap();
    let password = password.to_string_lossy().into_owned();
    harness::app(&[
        "--data",
        home.path(),
        "client",
        "--headless",
        "--login",
        login,
        "--user",
        "Ann",
        "--password-file",
        &password,
        "--register",
    ])
}

#[test]
fn a_player_registers_logs_in_joins_and_buys_a_fish() {
    let d = Scratch::new("login-flow");
    let (mut server, login) = login_server(&d, "", &[]);
    let home = Scratch::new("login-flow-client");
    let mut player = registering_player(&home, &login.to_string());
    harness::wait_joined(
        &mut server,
        &mut player,
        FIRST_ACCOUNT_PLAYER,
        JoinUntil::InGame,
    );
    crate::game::send(
        &mut player,
        GameOp::Purchase {
            item: ShopItem::Fish { species: 0 },
            quantity: 1,
        },
    )
    .unwrap();
    pump_until(&mut [&mut server, &mut player], 300, "acknowledged", |a| {
        a[1].world().resource::<Prediction>().predictor.pending() == 0
    });
    assert_eq!(
        crate::game::live_profile(&server, FIRST_ACCOUNT_PLAYER)
            .fish
            .len(),
        1
    );
    // The certificate is pinned and the refresh token kept, both for the owner only.
    let known = std::fs::read_to_string(home.0.join("client/known_hosts")).unwrap();
    assert!(known.starts_with(&format!("{login} ")), "{known}");
    use std::os::unix::fs::PermissionsExt;
    let refresh = home
        .0
        .join(format!("client/refresh-127.0.0.1_{}.json", login.port()));
    let mode = std::fs::metadata(&refresh).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // Logging in again (any case) is the same player; wrong passwords and unknown names get one
    // answer; a taken name is refused.
    let service = client(login, &home);
    let again = service.log_in(&creds("ANN", "sea-shells-42")).unwrap();
    assert_eq!(again.player_id, FIRST_ACCOUNT_PLAYER);
    assert_eq!(again.username, "Ann");
    let wrong = refused(service.log_in(&creds("Ann", "sea-shells-43")));
    let unknown = refused(service.log_in(&creds("Nobody", "sea-shells-42")));
    assert_eq!(
        wrong,
        (
            401,
            "wrong_credentials".into(),
            "wrong username or password".into()
        )
    );
    assert_eq!(wrong, unknown);
    assert_eq!(
        refused(service.register(&creds("aNN", "another-one-1"))).0,
        409
    );
    assert_eq!(
        refused(service.register(&creds("x", "another-one-1"))).1,
        "bad_username"
    );
    assert_eq!(
        refused(service.register(&creds("Bob", "short"))).1,
        "bad_password"
    );
    // A refresh token logs in without the password, and the token it grants joins.
    let refreshed = service.refresh(&again.refresh_token).unwrap();
    assert_eq!(refreshed.player_id, FIRST_ACCOUNT_PLAYER);
    let token = accounts::login::client::token_of(&refreshed).unwrap();
    assert_eq!(token.servers(), vec![harness::server_addr(&server)]);
    harness::pump(&mut [&mut server], 3);
    assert!(
        audit(&d, AuditKind::Registration)
            .iter()
            .any(|r| r == "account Ann registered from 127.0.0.1")
    );
    assert_eq!(audit(&d, AuditKind::LoginFailure).len(), 2);
}

#[test]
fn failed_logins_back_off_per_address_and_the_owner_still_logs_in() {
    let d = Scratch::new("login-backoff");
    let keys = r#", "login.freeFailures": 2, "login.backoffBaseMs": 60000, "login.accountDelayMaxMs": 200"#;
    let (mut server, login) = login_server(&d, keys, &[]);
    let home = Scratch::new("login-backoff-client");
    let attacker = client(login, &home);
    attacker.register(&creds("Ann", "sea-shells-42")).unwrap();
    for _ in 0..3 {
        assert_eq!(
            refused(attacker.log_in(&creds("ann", "guess-guess"))).0,
            401
        );
    }
    // The third failure started a back-off: even the right password is refused from here,
    // without a check.
    match attacker.log_in(&creds("ann", "sea-shells-42")) {
        Err(LoginError::Refused { status, refusal }) => {
            assert_eq!((status, refusal.reason.as_str()), (429, "backoff"));
            assert!(
                refusal.retry_after_ms.is_some_and(|ms| ms > 50_000),
                "{refusal:?}"
            );
        }
        other => panic!("expected a back-off, got {other:?}"),
    }
    // Another account from the same address is not affected.
    attacker.register(&creds("Bob", "sea-shells-43")).unwrap();
    // The owner, from another address, still logs in.
    let owner = client(login, &home).from_address(OTHER.parse().unwrap());
    assert_eq!(
        owner
            .log_in(&creds("Ann", "sea-shells-42"))
            .unwrap()
            .player_id,
        FIRST_ACCOUNT_PLAYER
    );
    harness::pump(&mut [&mut server], 3);
    let failures = audit(&d, AuditKind::LoginFailure);
    assert_eq!(
        failures,
        vec!["failed login to ann from 127.0.0.1".to_string(); 3]
    );
    let backoffs = audit(&d, AuditKind::LoginBackoff);
    assert_eq!(backoffs.len(), 2, "{backoffs:?}");
    assert_eq!(backoffs[0], "127.0.0.1 backs off from ann for 60000 ms");
    assert!(backoffs[1].starts_with("login to ann from 127.0.0.1 refused: backing off"));
}

/// A TLS connection to the service that writes `bytes` and reads whatever comes back.
fn raw_tls(addr: SocketAddr, bytes: &[u8], pause: Duration) -> std::io::Result<Vec<u8>> {
    let config = tls::client_config(Arc::new(PinVerifier::new(None))).unwrap();
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let conn = rustls::ClientConnection::new(config, name).unwrap();
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    stream.write_all(bytes)?;
    stream.flush()?;
    std::thread::sleep(pause);
    let mut out = Vec::new();
    match stream.read_to_end(&mut out) {
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(out),
        other => other.map(|_| out),
    }
}

/// Whether the service closed `tcp` (rather than leaving it open past `limit`).
fn closed_by_server(tcp: &mut TcpStream, limit: Duration) -> bool {
    tcp.set_read_timeout(Some(limit)).unwrap();
    let mut byte = [0u8; 1];
    match tcp.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn oversized_malformed_and_slow_requests_are_refused() {
    let d = Scratch::new("login-abuse");
    let (_server, login) = login_server(&d, r#", "login.requestDeadlineMs": 1000"#, &[]);
    let home = Scratch::new("login-abuse-client");
    let service = client(login, &home);
    let (status, body) = service.post("/v1/login", &[b'a'; 5000]).unwrap();
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&body));
    let (status, body) = service.post("/v1/login", b"{\"username\": 7}").unwrap();
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("\"reason\":\"malformed\""));
    assert_eq!(service.post("/v1/nothing", b"{}").unwrap().0, 404);
    // A request that trickles in is cut off at the deadline for the whole request.
    let answer = raw_tls(
        login,
        b"POST /v1/login HTTP/1.1\r\n",
        Duration::from_millis(1500),
    )
    .unwrap();
    assert_eq!(http::parse_response(&answer).unwrap().0, 408);
    // A connection that never even says hello is closed.
    let mut silent = TcpStream::connect(login).unwrap();
    assert!(closed_by_server(&mut silent, Duration::from_secs(5)));
}

#[test]
fn connection_caps_keep_one_address_from_taking_every_connection() {
    let d = Scratch::new("login-caps");
    let (server, login) = login_server(&d, r#", "login.maxConnectionsPerAddress": 2"#, &[]);
    let home = Scratch::new("login-caps-client");
    client(login, &home)
        .register(&creds("Ann", "sea-shells-42"))
        .unwrap();
    let open = || server.world().resource::<LoginService>().open_connections();
    let wait_for = |n: u32| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while open() != n {
            assert!(Instant::now() < deadline, "{} open, waited for {n}", open());
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    // The registration's connection is closed; two idle ones take this address's slots.
    wait_for(0);
    let mut idle: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(login).unwrap()).collect();
    wait_for(2);
    let mut third = TcpStream::connect(login).unwrap();
    assert!(closed_by_server(&mut third, Duration::from_secs(5)));
    // Another address is served meanwhile.
    let elsewhere = client(login, &home).from_address(OTHER.parse().unwrap());
    elsewhere.log_in(&creds("Ann", "sea-shells-42")).unwrap();
    // Once the idle connections close, the first address is served again.
    for c in &mut idle {
        c.shutdown(std::net::Shutdown::Both).unwrap();
    }
    let here = client(login, &home);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match here.log_in(&creds("Ann", "sea-shells-42")) {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => {
                eprintln!("not yet: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("the slots were not given back: {e}"),
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_changed_certificate_is_refused() {
    let d = Scratch::new("login-pin");
    let bind = format!("127.0.0.1:{}", free_port());
    let (server, login) = login_server(&d, "", &["--login-bind", &bind]);
    let home = Scratch::new("login-pin-client");
    client(login, &home)
        .register(&creds("Ann", "sea-shells-42"))
        .unwrap();
    let keys = d.0.join("keys");
    let old_cert = home.0.join("old-cert.pem");
    std::fs::copy(keys.join("login-cert.pem"), &old_cert).unwrap();
    drop(server);
    // The server gets a new certificate, on the same address.
    std::fs::remove_file(keys.join("login-cert.pem")).unwrap();
    std::fs::remove_file(keys.join("login-key.pem")).unwrap();
    let (_server, again) = login_server(&d, "", &["--login-bind", &bind]);
    assert_eq!(again, login);
    let e = client(login, &home)
        .log_in(&creds("Ann", "sea-shells-42"))
        .unwrap_err();
    assert!(matches!(e, LoginError::CertificateChanged { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("known_hosts") && text.contains(&bind),
        "{text}"
    );
    // Pinned up front: the new certificate is accepted, the old one refused.
    let pin = |cert: &Path| LoginClient::new(&bind, &home.0.join("client"), Some(cert)).unwrap();
    pin(&keys.join("login-cert.pem"))
        .log_in(&creds("Ann", "sea-shells-42"))
        .unwrap();
    let e = pin(&old_cert)
        .log_in(&creds("Ann", "sea-shells-42"))
        .unwrap_err();
    assert!(e.to_string().contains("--server-cert"), "{e}");
}

#[test]
fn refresh_tokens_end_with_a_password_change_and_a_disabled_account() {
    let d = Scratch::new("login-refresh");
    let (server, login) = login_server(&d, "", &[]);
    let home = Scratch::new("login-refresh-client");
    let service = client(login, &home);
    let grant = service.register(&creds("Ann", "sea-shells-42")).unwrap();
    service.save_refresh(&grant).unwrap();
    let saved = service.saved_refresh().unwrap();
    assert_eq!(saved.username, "Ann");
    let next = service.refresh(&saved.refresh_token).unwrap();
    assert_ne!(next.refresh_token, "");
    assert_eq!(refused(service.refresh("00.00")).1, "bad_refresh");
    let store = server.world().resource::<DataStore>().0.clone();
    let cheap = HashParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };
    accounts::change_password(
        store.backend(),
        &cheap,
        "ann",
        "sea-shells-42",
        "new-shells-42",
    )
    .unwrap();
    let (status, reason, error) = refused(service.refresh(&next.refresh_token));
    assert_eq!((status, reason.as_str()), (401, "bad_refresh"));
    assert!(error.contains("password changed"), "{error}");
    let fresh = service.log_in(&creds("ann", "new-shells-42")).unwrap();
    accounts::set_disabled(store.backend(), "ann", true).unwrap();
    assert_eq!(refused(service.refresh(&fresh.refresh_token)).1, "disabled");
    assert_eq!(
        refused(service.log_in(&creds("ann", "new-shells-42"))).1,
        "disabled"
    );
}

/// Updates `apps` (sleeping a little between rounds, as reconnecting runs on real time) until
/// `done`, for at most `wall`.
fn pump_real(
    apps: &mut [&mut App],
    wall: Duration,
    what: &str,
    mut done: impl FnMut(&mut [&mut App]) -> bool,
) {
    let deadline = Instant::now() + wall;
    while !done(apps) {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        for a in apps.iter_mut() {
            a.update();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Shuts `server` down as an operator would (its clients are told) and drops it.
fn stop(mut server: App, client: &mut App) {
    server
        .world_mut()
        .resource_mut::<bloxquarium::shutdown::Shutdown>()
        .request(bloxquarium::shutdown::ShutdownReason::Requested(
            "restart".into(),
        ));
    pump_real(
        &mut [&mut server, client],
        Duration::from_secs(20),
        "the server stops",
        |a| a[0].should_exit().is_some(),
    );
}

#[test]
fn a_client_that_loses_its_server_logs_in_again_with_its_refresh_token() {
    use bloxquarium::accounts::login::Reconnect;
    use bloxquarium::transport::ConnectionState;
    let d = Scratch::new("login-reconnect");
    let game = format!(
        "127.0.0.1:{}",
        std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    );
    let bind = format!("127.0.0.1:{}", free_port());
    let flags = ["--bind", game.as_str(), "--login-bind", bind.as_str()];
    let (mut server, _) = login_server(&d, "", &flags);
    let home = Scratch::new("login-reconnect-client");
    let mut player = registering_player(&home, &bind);
    player.world_mut().resource_mut::<Reconnect>().delays = vec![Duration::from_millis(100); 50];
    harness::wait_joined(
        &mut server,
        &mut player,
        FIRST_ACCOUNT_PLAYER,
        JoinUntil::Connected,
    );

    // The server restarts: the player shows "reconnecting", logs in again and is back.
    stop(server, &mut player);
    let mut saw_reconnecting = false;
    pump_real(
        &mut [&mut player],
        Duration::from_secs(10),
        "reconnecting",
        |a| {
            saw_reconnecting |= matches!(
                a[0].world().resource::<ConnectionState>(),
                ConnectionState::Reconnecting { .. }
            );
            saw_reconnecting
        },
    );
    let (mut server, _) = login_server(&d, "", &flags);
    pump_real(
        &mut [&mut server, &mut player],
        Duration::from_secs(30),
        "back in",
        |a| *a[1].world().resource::<ConnectionState>() == ConnectionState::Connected,
    );
    harness::wait_joined(
        &mut server,
        &mut player,
        FIRST_ACCOUNT_PLAYER,
        JoinUntil::Connected,
    );

    // The server goes away for good: the headless player gives up and exits 1 with the reason.
    player.world_mut().resource_mut::<Reconnect>().delays = vec![Duration::from_millis(20); 2];
    stop(server, &mut player);
    let mut exit = None;
    pump_real(
        &mut [&mut player],
        Duration::from_secs(20),
        "gives up",
        |a| {
            exit = a[0].should_exit();
            exit.is_some()
        },
    );
    assert_eq!(exit, Some(AppExit::from_code(1)));
    match player.world().resource::<ConnectionState>() {
        ConnectionState::Disconnected { reason } => {
            assert!(
                reason.contains("cannot reach the login service")
                    && reason.contains("after 3 tries"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_operators_certificate_is_served_instead_of_a_made_one() {
    let d = Scratch::new("login-operator-cert");
    let home = Scratch::new("login-operator-cert-client");
    let (cert, key) = (home.0.join("op-cert.pem"), home.0.join("op-key.pem"));
    tls::ensure_self_signed(&cert, &key, &["127.0.0.1".into()]).unwrap();
    let (cert_text, key_text) = (
        cert.to_string_lossy().into_owned(),
        key.to_string_lossy().into_owned(),
    );
    let (_server, login) =
        login_server(&d, "", &["--tls-cert", &cert_text, "--tls-key", &key_text]);
    // Pinned up front to the operator's certificate: accepted.
    LoginClient::new(&login.to_string(), &home.0.join("client"), Some(&cert))
        .unwrap()
        .register(&creds("Ann", "sea-shells-42"))
        .unwrap();
    assert!(
        !d.0.join("keys/login-cert.pem").exists(),
        "no certificate was made"
    );
}

#[test]
fn the_total_connection_cap_holds_across_addresses() {
    let d = Scratch::new("login-total-cap");
    let (server, login) = login_server(&d, r#", "login.maxConnections": 2"#, &[]);
    let open = || server.world().resource::<LoginService>().open_connections();
    // Two idle connections from this address fill the service (under the per-address cap of 8).
    let _idle: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(login).unwrap()).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while open() != 2 {
        assert!(Instant::now() < deadline, "{} open, waited for 2", open());
        std::thread::sleep(Duration::from_millis(10));
    }
    // A connection from another address is closed at once too.
    let other = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    other
        .bind(&SocketAddr::new(OTHER.parse().unwrap(), 0).into())
        .unwrap();
    other.connect(&login.into()).unwrap();
    let mut other: TcpStream = other.into();
    assert!(closed_by_server(&mut other, Duration::from_secs(5)));
    assert_eq!(open(), 2);
}
