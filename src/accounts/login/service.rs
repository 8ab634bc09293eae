//! The login service's threads: one accepts, one per open connection serves it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bevy::prelude::*;
use serde::de::DeserializeOwned;

use super::backoff::{Failures, Verdict};
use super::http::{self, Request};
use super::refresh::{RefreshKey, password_tag};
use super::{Credentials, Grant, LoginPolicy, RefreshRequest, Refusal};
use crate::accounts::{self, Account, AccountError};
use crate::datastore::DataStore;
use crate::security::{AuditEntry, AuditKind};
use crate::transport::TokenIssuer;

/// How often the accepting thread looks at the stop flag.
const STOP_POLL_MS: i32 = 100;
/// How long, and for how many bytes, a closing connection reads what the peer still sends.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 64 * 1024;
/// The longest a response may take to write.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the service needs.
pub(super) struct Parts {
    pub listener: TcpListener,
    pub tls: Arc<rustls::ServerConfig>,
    pub store: DataStore,
    pub issuer: TokenIssuer,
    pub refresh: RefreshKey,
    pub policy: Arc<RwLock<LoginPolicy>>,
    pub audit: Sender<AuditEntry>,
}

/// Password hashes running at once, at most.
struct Permits {
    free: Mutex<usize>,
    freed: Condvar,
}

impl Permits {
    fn run<T>(&self, work: impl FnOnce() -> T) -> T {
        {
            let Ok(mut free) = self.free.lock() else {
                return work();
            };
            while *free == 0 {
                free = match self.freed.wait(free) {
                    Ok(f) => f,
                    Err(_) => return work(),
                };
            }
            *free -= 1;
        }
        let out = work();
        if let Ok(mut free) = self.free.lock() {
            *free += 1;
        }
        self.freed.notify_one();
        out
    }
}

struct Shared {
    parts: Parts,
    failures: Mutex<Failures>,
    open: Mutex<HashMap<IpAddr, u32>>,
    hashing: Permits,
}

impl Shared {
    fn policy(&self) -> LoginPolicy {
        match self.parts.policy.read() {
            Ok(p) => *p,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    fn audit(&self, player: Option<u64>, kind: AuditKind, details: String) {
        let _ = self.parts.audit.send(AuditEntry {
            player,
            kind,
            details,
        });
    }

    /// Takes a connection slot for `ip`, if both caps allow.
    fn admit(self: &Arc<Self>, ip: IpAddr, policy: &LoginPolicy) -> Option<Slot> {
        let mut open = self.open.lock().ok()?;
        let total: u32 = open.values().sum();
        let mine = open.get(&ip).copied().unwrap_or(0);
        if total >= policy.max_connections || mine >= policy.max_per_address {
            return None;
        }
        *open.entry(ip).or_insert(0) += 1;
        Some(Slot {
            shared: self.clone(),
            ip,
        })
    }
}

/// An open connection's place under the caps, given back when it closes.
struct Slot {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.shared.open.lock()
            && let Some(n) = open.get_mut(&self.ip)
        {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// The running service; dropping it stops the accepting thread (connections being served
/// finish within their deadline).
#[derive(Resource)]
pub struct LoginService {
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// The address it listens on.
    pub local_addr: Option<SocketAddr>,
}

impl LoginService {
    pub(super) fn spawn(parts: Parts) -> std::io::Result<Self> {
        parts.listener.set_nonblocking(true)?;
        let local_addr = parts.listener.local_addr().ok();
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let shared = Arc::new(Shared {
            parts,
            failures: Mutex::new(Failures::default()),
            open: Mutex::new(HashMap::new()),
            hashing: Permits {
                free: Mutex::new(cores.saturating_sub(1).max(1)),
                freed: Condvar::new(),
            },
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, accepting) = (stop.clone(), shared.clone());
        let thread = std::thread::Builder::new()
            .name("login-accept".into())
            .spawn(move || accept_loop(&accepting, &flag))?;
        Ok(Self {
            shared,
            stop,
            thread: Some(thread),
            local_addr,
        })
    }
}

impl LoginService {
    /// Connections open now (being served or lingering).
    pub fn open_connections(&self) -> u32 {
        self.shared.open.lock().map_or(0, |o| o.values().sum())
    }
}

impl Drop for LoginService {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(shared: &Arc<Shared>, stop: &AtomicBool) {
    let fd = shared.parts.listener.as_raw_fd();
    while !stop.load(Ordering::Relaxed) {
        let mut poll = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the listener, which outlives the call.
        unsafe { libc::poll(&mut poll, 1, STOP_POLL_MS) };
        loop {
            let (tcp, peer) = match shared.parts.listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    debug!("login service: accept: {e}");
                    break;
                }
            };
            let policy = shared.policy();
            // Over a cap: closed at once, before any TLS work.
            let Some(slot) = shared.admit(peer.ip(), &policy) else {
                debug!("login service: {peer} refused: too many open connections");
                continue;
            };
            let conn_shared = shared.clone();
            let spawned = std::thread::Builder::new()
                .name("login-conn".into())
                .spawn(move || {
                    let _slot = slot;
                    yield_to_the_tick();
                    serve(&conn_shared, tcp, peer, policy);
                });
            if let Err(e) = spawned {
                warn!("login service: cannot start a connection thread: {e}");
            }
        }
    }
}

/// Lowers this thread's scheduling priority (nice 10): a connection's TLS and password hashing
/// take the CPU the tick leaves, so a burst of logins does not stretch ticks on a busy machine.
/// Linux sets nice per thread; raising it needs no privilege.
fn yield_to_the_tick() {
    // SAFETY: gettid has no preconditions; setpriority on this thread's own id only lowers its
    // priority.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        if libc::setpriority(libc::PRIO_PROCESS, tid, LOGIN_NICE) != 0 {
            debug!("login service: could not lower a connection thread's priority");
        }
    }
}

/// The nice value of connection threads.
const LOGIN_NICE: libc::c_int = 10;

/// An answer: status, extra headers, JSON body.
type Answer = (u16, Vec<(&'static str, String)>, Vec<u8>);

fn refusal(status: u16, reason: &str, error: impl Into<String>) -> Answer {
    let body = Refusal {
        error: error.into(),
        reason: reason.into(),
        retry_after_ms: None,
    };
    (
        status,
        Vec::new(),
        serde_json::to_vec(&body).unwrap_or_default(),
    )
}

fn serve(shared: &Shared, tcp: TcpStream, peer: SocketAddr, policy: LoginPolicy) {
    let deadline = Instant::now() + policy.deadline;
    if tcp.set_nonblocking(false).is_err() {
        return;
    }
    let Ok(conn) = rustls::ServerConnection::new(shared.parts.tls.clone()) else {
        return;
    };
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    let read = http::read_request(&mut Deadline {
        stream: &mut stream,
        deadline,
    });
    let (status, headers, body) = match read {
        Ok(request) => handle(shared, &request, peer.ip(), &policy),
        // No answer can be sent before the handshake is done: the connection is just closed.
        Err(_) if stream.conn.is_handshaking() => return,
        Err(e) => match e.status() {
            Some(status) => refusal(status, "bad_request", e.to_string()),
            None => return,
        },
    };
    let _ = stream.sock.set_write_timeout(Some(WRITE_TIMEOUT));
    let _ = stream.sock.set_read_timeout(Some(WRITE_TIMEOUT));
    let _ = http::write_response(&mut stream, status, &headers, &body);
    stream.conn.send_close_notify();
    let _ = stream.conn.complete_io(&mut stream.sock);
    linger(&mut stream.sock);
}

/// Closes after the peer has had the answer: stops sending, then reads and drops what the peer
/// is still sending (the rest of a refused body) for a moment. Closing with unread bytes would
/// reset the connection, and the peer could lose the answer to the reset.
fn linger(sock: &mut TcpStream) {
    let _ = sock.shutdown(std::net::Shutdown::Write);
    let _ = sock.set_read_timeout(Some(LINGER));
    let until = Instant::now() + LINGER;
    let mut sink = [0u8; 4096];
    let mut left = LINGER_BYTES;
    while left > 0 && Instant::now() < until {
        match std::io::Read::read(sock, &mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
}

/// Reads the TLS stream against one deadline for the whole request (the handshake included):
/// before each read the socket's timeout is set to what is left of it.
struct Deadline<'a> {
    stream: &'a mut rustls::StreamOwned<rustls::ServerConnection, TcpStream>,
    deadline: Instant,
}

impl std::io::Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        self.stream.sock.set_read_timeout(Some(left))?;
        self.stream.read(buf)
    }
}

fn parse<T: DeserializeOwned>(request: &Request) -> Result<T, Answer> {
    serde_json::from_slice(&request.body).map_err(|e| {
        refusal(
            400,
            "malformed",
            format!("the body is not the JSON this request takes: {e}"),
        )
    })
}

fn handle(shared: &Shared, request: &Request, ip: IpAddr, policy: &LoginPolicy) -> Answer {
    let path = request.head.path.as_str();
    let known = matches!(path, "/v1/register" | "/v1/login" | "/v1/refresh");
    if !known {
        return refusal(
            404,
            "not_found",
            "not found: POST /v1/register, /v1/login or /v1/refresh",
        );
    }
    if request.head.method != "POST" {
        return refusal(405, "method", format!("{path} takes POST"));
    }
    let outcome = match path {
        "/v1/register" => {
            parse::<Credentials>(request).and_then(|c| register(shared, &c, ip, policy))
        }
        "/v1/login" => parse::<Credentials>(request).and_then(|c| log_in(shared, &c, ip, policy)),
        _ => parse::<RefreshRequest>(request).and_then(|r| refresh(shared, &r, ip, policy)),
    };
    match outcome {
        Ok((status, grant)) => (
            status,
            Vec::new(),
            serde_json::to_vec(&grant).unwrap_or_default(),
        ),
        Err(answer) => answer,
    }
}

fn now_ms() -> u64 {
    crate::clock::now_ms()
}

/// The issuer for the server a player is sent to: on a shared store, the live server with the
/// most room in the server directory (the tokens are good there: the servers share the netcode
/// key); else, or when the directory cannot be read, this server.
fn issuer_for_new_player(shared: &Shared, friend: Option<&str>) -> TokenIssuer {
    let own = &shared.parts.issuer;
    let Some(pg) = shared.parts.store.backend().postgres() else {
        return own.clone();
    };
    let entries = match pg.servers() {
        Ok(e) => e,
        Err(e) => {
            warn!("login service: the server directory cannot be read ({e}); sending players here");
            return own.clone();
        }
    };
    // The friend's server, if the friend plays now and it has room (a live entry that is not
    // full); else the one with the most room.
    let friends = friend
        .and_then(|name| {
            accounts::find(shared.parts.store.backend(), name)
                .ok()
                .flatten()
        })
        .and_then(|a| shared.parts.store.holder_of(a.player_id).ok().flatten())
        .and_then(|id| {
            let e = entries.iter().find(|e| e.id == id)?;
            crate::datastore::least_loaded(std::slice::from_ref(e))
        });
    match friends
        .or_else(|| crate::datastore::least_loaded(&entries))
        .map(|e| (e, e.address.parse::<SocketAddr>()))
    {
        Some((_, Ok(addr))) if own.addresses().first() == Some(&addr) => own.clone(),
        Some((e, Ok(addr))) => {
            debug!(
                "login service: sending a player to server {} at {addr}",
                e.id
            );
            own.for_addresses(vec![addr])
        }
        Some((e, Err(err))) => {
            warn!(
                "login service: server {} has an unusable address {:?} ({err}); sending players here",
                e.id, e.address
            );
            own.clone()
        }
        None => own.clone(),
    }
}

fn grant(
    shared: &Shared,
    account: &Account,
    policy: &LoginPolicy,
    friend: Option<&str>,
) -> Result<Grant, Answer> {
    let issued = issuer_for_new_player(shared, friend)
        .issue(account.player_id, &account.username)
        .map_err(|e| refusal(503, "token", format!("cannot issue a connect token: {e}")))?;
    let server = issued
        .dial(None)
        .map_err(|e| refusal(503, "token", e.to_string()))?;
    let expires = now_ms().saturating_add(policy.refresh_life.as_millis() as u64);
    Ok(Grant {
        player_id: account.player_id,
        username: account.username.clone(),
        server,
        token: hex::encode(issued.to_bytes()),
        refresh_token: shared.parts.refresh.issue(account, expires),
        refresh_expires_ms: expires,
    })
}

fn store_failed(e: &AccountError) -> Answer {
    error!("login service: {e}");
    refusal(
        503,
        "unavailable",
        "the login service cannot use its store; try again later",
    )
}

fn register(
    shared: &Shared,
    c: &Credentials,
    ip: IpAddr,
    policy: &LoginPolicy,
) -> Result<(u16, Grant), Answer> {
    let backend = shared.parts.store.backend();
    let made = shared
        .hashing
        .run(|| accounts::register(backend, &policy.hash, &c.username, &c.password, now_ms()));
    match made {
        Ok(account) => {
            shared.audit(
                Some(account.player_id),
                AuditKind::Registration,
                format!("account {} registered from {ip}", account.username),
            );
            Ok((201, grant(shared, &account, policy, c.friend.as_deref())?))
        }
        Err(e @ AccountError::BadUsername(_)) => Err(refusal(400, "bad_username", e.to_string())),
        Err(e @ AccountError::BadPassword(_)) => Err(refusal(400, "bad_password", e.to_string())),
        Err(e @ AccountError::Taken) => Err(refusal(409, "taken", e.to_string())),
        Err(e) => Err(store_failed(&e)),
    }
}

/// The back-off key of a username as typed (a name that breaks the rules still counts).
fn account_key(username: &str) -> String {
    username
        .chars()
        .take(32)
        .collect::<String>()
        .to_ascii_lowercase()
}

fn log_in(
    shared: &Shared,
    c: &Credentials,
    ip: IpAddr,
    policy: &LoginPolicy,
) -> Result<(u16, Grant), Answer> {
    let key = account_key(&c.username);
    let verdict = match shared.failures.lock() {
        Ok(f) => f.check(&policy.backoff, &key, ip, Instant::now()),
        Err(_) => {
            return Err(refusal(
                503,
                "unavailable",
                "the login service is restarting",
            ));
        }
    };
    let delay = match verdict {
        Verdict::Wait { retry_after } => {
            let ms = retry_after.as_millis() as u64;
            shared.audit(
                None,
                AuditKind::LoginBackoff,
                format!("login to {key} from {ip} refused: backing off for {ms} ms more"),
            );
            let body = Refusal {
                error: format!(
                    "too many failed logins from this address: try again in {} s",
                    ms.div_ceil(1000)
                ),
                reason: "backoff".into(),
                retry_after_ms: Some(ms),
            };
            return Err((
                429,
                vec![("Retry-After", ms.div_ceil(1000).to_string())],
                serde_json::to_vec(&body).unwrap_or_default(),
            ));
        }
        Verdict::Go { delay } => delay,
    };
    if !delay.is_zero() {
        std::thread::sleep(delay);
    }
    let backend = shared.parts.store.backend();
    let checked = shared
        .hashing
        .run(|| accounts::log_in(backend, &policy.hash, &c.username, &c.password));
    match checked {
        Ok(account) => {
            if let Ok(mut f) = shared.failures.lock() {
                f.succeeded(&key, ip);
            }
            Ok((200, grant(shared, &account, policy, c.friend.as_deref())?))
        }
        Err(e @ AccountError::WrongCredentials) => {
            let backoff = shared
                .failures
                .lock()
                .map(|mut f| f.failed(&policy.backoff, &key, ip, Instant::now()))
                .unwrap_or_default();
            shared.audit(
                None,
                AuditKind::LoginFailure,
                format!("failed login to {key} from {ip}"),
            );
            if !backoff.is_zero() {
                shared.audit(
                    None,
                    AuditKind::LoginBackoff,
                    format!("{ip} backs off from {key} for {} ms", backoff.as_millis()),
                );
            }
            Err(refusal(401, "wrong_credentials", e.to_string()))
        }
        Err(e @ AccountError::Disabled) => {
            shared.audit(
                None,
                AuditKind::LoginFailure,
                format!("login to disabled account {key} from {ip}"),
            );
            Err(refusal(403, "disabled", e.to_string()))
        }
        Err(e) => Err(store_failed(&e)),
    }
}

fn refresh(
    shared: &Shared,
    r: &RefreshRequest,
    ip: IpAddr,
    policy: &LoginPolicy,
) -> Result<(u16, Grant), Answer> {
    let refused = |why: &str| {
        shared.audit(
            None,
            AuditKind::LoginFailure,
            format!("refresh from {ip} refused: {why}"),
        );
        refusal(
            401,
            "bad_refresh",
            format!("{why}: log in with your password"),
        )
    };
    let claims = shared
        .parts
        .refresh
        .check(&r.refresh_token, now_ms())
        .map_err(|e| refused(&e.to_string()))?;
    let account = match accounts::find(shared.parts.store.backend(), &claims.account) {
        Ok(Some(a)) => a,
        Ok(None) => return Err(refused("the account no longer exists")),
        Err(e) => return Err(store_failed(&e)),
    };
    if account.player_id != claims.player_id
        || password_tag(&account.password_hash) != claims.password_tag
    {
        return Err(refused(
            "the password changed since this refresh token was issued",
        ));
    }
    if account.disabled {
        shared.audit(
            Some(account.player_id),
            AuditKind::LoginFailure,
            format!("refresh for disabled account {} from {ip}", claims.account),
        );
        return Err(refusal(403, "disabled", AccountError::Disabled.to_string()));
    }
    Ok((200, grant(shared, &account, policy, None)?))
}
