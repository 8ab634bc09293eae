//! The login service: HTTPS (rustls) on `--login-bind`, beside the game's UDP port. A player
//! registers or logs in with a username and password and gets the game address to dial, a
//! connect token with its key material, and a refresh token to log in again after a lost
//! connection.
//!
//! | request | body | answer |
//! |---|---|---|
//! | `POST /v1/register` | `{"username", "password"}` | 201 + [`Grant`] |
//! | `POST /v1/login` | `{"username", "password"}` | 200 + [`Grant`] |
//! | `POST /v1/refresh` | `{"refresh_token"}` | 200 + [`Grant`] (with a new refresh token) |
//!
//! Errors are JSON [`Refusal`]s: 400 (rules, malformed), 401 (wrong username or password — one
//! message for both — or a bad refresh token), 403 (disabled), 409 (name taken), 408 (slow), 411,
//! 413 (body over 4 KiB), 429 (back-off: `Retry-After`), 503 (store or hashing unavailable).
//!
//! Abuse limits (the `login.*` keys): one deadline for reading the whole request; open
//! connections capped per address and in total (a connection over a cap is closed at once);
//! failed logins counted per (account, address) with a growing back-off ([`backoff`]); password
//! hashing on the service's own threads, at most one fewer at a time than the machine has cores,
//! never on the tick. Every failure and back-off is audited.

pub mod backoff;
pub mod client;
pub mod http;
pub mod reconnect;
pub mod refresh;
mod service;
pub mod tls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bevy::prelude::*;
use serde::{Deserialize, Serialize};

use super::HashParams;
use crate::config::{Config, ConfigError};
use crate::datastore::DataStore;
use crate::security::AuditEntry;
use crate::transport::ServerTokens;

pub use backoff::BackoffPolicy;
pub use client::{LoginClient, LoginError};
pub use reconnect::{Reconnect, ReconnectPlugin};
pub use service::LoginService;

/// The default port of the login service.
pub const DEFAULT_LOGIN_PORT: u16 = 5001;

/// A username and password (register, log in).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Credentials {
    /// The username.
    pub username: String,
    /// The password.
    pub password: String,
    /// A friend to play with (their username): on servers sharing a store, the player is sent
    /// to the server the friend plays on, if it has room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub friend: Option<String>,
}

/// A refresh request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshRequest {
    /// A refresh token from an earlier [`Grant`].
    pub refresh_token: String,
}

/// What a successful register, login or refresh answers.
#[derive(Clone, Serialize, Deserialize)]
pub struct Grant {
    /// The player id the account plays as.
    pub player_id: u64,
    /// The username as registered.
    pub username: String,
    /// The game address to dial.
    pub server: SocketAddr,
    /// The token file's bytes (connect token and key material), hex.
    pub token: String,
    /// Logs in again without the password until it expires.
    pub refresh_token: String,
    /// The refresh token's expiry, Unix ms.
    pub refresh_expires_ms: u64,
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token and the refresh token are secrets: never in a log line.
        f.debug_struct("Grant")
            .field("player_id", &self.player_id)
            .field("username", &self.username)
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// For the player.
    pub error: String,
    /// For programs: `wrong_credentials`, `backoff`, `taken`, `bad_username`, ...
    pub reason: String,
    /// With `backoff`: how long to wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

/// The service's rules, from the `login.*` keys (read again when they change).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginPolicy {
    /// Password hashing cost.
    pub hash: HashParams,
    /// Failed-login back-off.
    pub backoff: BackoffPolicy,
    /// The whole request (TLS handshake, head and body) must arrive within this.
    pub deadline: Duration,
    /// Open connections at most.
    pub max_connections: u32,
    /// Open connections from one address at most.
    pub max_per_address: u32,
    /// A refresh token's life.
    pub refresh_life: Duration,
}

impl LoginPolicy {
    /// From the `login.*` keys.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let int = |key: &str| config.get::<i64>(key).map(|v| v.max(0) as u64);
        Ok(Self {
            hash: HashParams::from_config(config)?,
            backoff: BackoffPolicy {
                free_failures: int("login.freeFailures")?.min(u64::from(u32::MAX)) as u32,
                base: Duration::from_millis(int("login.backoffBaseMs")?),
                max: Duration::from_secs(int("login.backoffMaxSeconds")?),
                account_delay_max: Duration::from_millis(int("login.accountDelayMaxMs")?),
            },
            deadline: Duration::from_millis(int("login.requestDeadlineMs")?),
            max_connections: int("login.maxConnections")?.min(u64::from(u32::MAX)) as u32,
            max_per_address: int("login.maxConnectionsPerAddress")?.min(u64::from(u32::MAX)) as u32,
            refresh_life: Duration::from_secs(int("login.refreshTokenHours")?.saturating_mul(3600)),
        })
    }
}

/// Where the login service listens and what certificate it shows.
#[derive(Debug, Clone)]
pub struct LoginOptions {
    /// The address to listen on (port 0: any free port).
    pub bind: SocketAddr,
    /// The keys directory (the made certificate and `login.key`).
    pub keys_dir: PathBuf,
    /// The operator's certificate and key (PEM), if given.
    pub cert: Option<(PathBuf, PathBuf)>,
    /// Names the made certificate carries besides `localhost` (the server's addresses).
    pub names: Vec<String>,
}

/// Why the login service could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoginStartError {
    /// The certificate or key.
    #[error("login service: {0}")]
    Tls(#[from] tls::TlsError),
    /// The refresh key.
    #[error("login service: {0}")]
    Key(#[from] crate::keys::KeyError),
    /// The port.
    #[error("cannot serve logins on {addr}: {source} (choose another --login-bind)")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What failed.
        source: std::io::Error,
    },
}

/// The listener and certificate, opened before the App is built (a busy port or a bad
/// certificate stops start-up).
pub struct OpenedLogin {
    listener: std::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    refresh: refresh::RefreshKey,
    fingerprint: tls::Fingerprint,
    cert_path: PathBuf,
}

impl OpenedLogin {
    /// Loads or makes the certificate, loads or makes `login.key`, binds.
    pub fn open(options: &LoginOptions) -> Result<Self, LoginStartError> {
        let (cert, key) = match &options.cert {
            Some(paths) => paths.clone(),
            None => {
                let (cert, key) = tls::default_paths(&options.keys_dir);
                let mut names = vec!["localhost".to_string()];
                names.extend(options.names.iter().cloned());
                if tls::ensure_self_signed(&cert, &key, &names)? {
                    info!(
                        "login service: made a self-signed certificate at {}",
                        cert.display()
                    );
                }
                (cert, key)
            }
        };
        let (config, fingerprint) = tls::server_config(&cert, &key)?;
        let refresh = refresh::RefreshKey::new(crate::keys::load_or_create_at(
            &options.keys_dir.join("login.key"),
        )?);
        let listener =
            std::net::TcpListener::bind(options.bind).map_err(|source| LoginStartError::Bind {
                addr: options.bind,
                source,
            })?;
        Ok(Self {
            listener,
            tls: config,
            refresh,
            fingerprint,
            cert_path: cert,
        })
    }

    /// The address bound.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// The certificate's fingerprint (what clients pin).
    pub fn fingerprint(&self) -> tls::Fingerprint {
        self.fingerprint
    }

    /// The certificate file (what `--server-cert` takes).
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }
}

/// Serves logins for this server: tokens for its own game address.
pub struct LoginServicePlugin {
    opened: crate::process::Carried<OpenedLogin>,
}

impl LoginServicePlugin {
    /// Serves from what [`OpenedLogin::open`] made.
    pub fn new(opened: OpenedLogin) -> Self {
        Self {
            opened: crate::process::Carried::new(opened),
        }
    }
}

/// The policy the service's threads read, kept current by [`follow_config`].
#[derive(Resource, Clone)]
struct SharedPolicy(Arc<RwLock<LoginPolicy>>);

/// Audit entries from the service's threads.
#[derive(Resource)]
struct LoginAudit(Mutex<std::sync::mpsc::Receiver<AuditEntry>>);

/// The opened listener until start-up hands it to the service.
#[derive(Resource)]
struct Pending(Mutex<Option<OpenedLogin>>);

impl Plugin for LoginServicePlugin {
    fn build(&self, app: &mut App) {
        crate::stages::server(app);
        if let Some(opened) = self.opened.take("the login service plugin") {
            app.insert_resource(Pending(Mutex::new(Some(opened))));
        }
        app.add_message::<AuditEntry>()
            .add_systems(Startup, start)
            .add_systems(
                Update,
                (follow_config, forward_audit).in_set(crate::stages::ServerSystems::Handle),
            );
    }
}

fn start(
    mut commands: Commands,
    pending: Option<Res<Pending>>,
    store: Option<Res<DataStore>>,
    tokens: Option<Res<ServerTokens>>,
    config: Res<Config>,
) {
    let Some(opened) = pending.and_then(|p| p.0.lock().ok().and_then(|mut o| o.take())) else {
        return;
    };
    commands.remove_resource::<Pending>();
    let (Some(store), Some(tokens)) = (store, tokens) else {
        warn!(
            "login service not started: it needs the data store and a token issuer (not --insecure-dev)"
        );
        return;
    };
    let policy = match LoginPolicy::from_config(&config) {
        Ok(p) => p,
        Err(e) => {
            error!("login service not started: {e}");
            return;
        }
    };
    let shared = Arc::new(RwLock::new(policy));
    let (audit_tx, audit_rx) = std::sync::mpsc::channel();
    let addr = opened.local_addr();
    let fingerprint = opened.fingerprint;
    match LoginService::spawn(service::Parts {
        listener: opened.listener,
        tls: opened.tls,
        store: store.clone(),
        issuer: tokens.0.clone(),
        refresh: opened.refresh,
        policy: shared.clone(),
        audit: audit_tx,
    }) {
        Ok(service) => {
            if let Some(addr) = addr {
                info!(
                    "login service on https://{addr}/v1/login (certificate sha256 {fingerprint})"
                );
            }
            commands.insert_resource(service);
            commands.insert_resource(SharedPolicy(shared));
            commands.insert_resource(LoginAudit(Mutex::new(audit_rx)));
        }
        Err(e) => error!("login service not started: {e}"),
    }
}

fn follow_config(config: Res<Config>, policy: Option<Res<SharedPolicy>>) {
    let Some(policy) = policy else { return };
    if !config.is_changed() {
        return;
    }
    match LoginPolicy::from_config(&config) {
        Ok(p) => {
            if let Ok(mut w) = policy.0.write() {
                *w = p;
            }
        }
        Err(e) => warn!("login keys: {e} (the service keeps its rules)"),
    }
}

fn forward_audit(audit: Option<Res<LoginAudit>>, mut out: MessageWriter<AuditEntry>) {
    let Some(audit) = audit else { return };
    let Ok(rx) = audit.0.lock() else { return };
    out.write_batch(rx.try_iter());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_login_keys_set_the_policy() {
        let defaults = LoginPolicy::from_config(&crate::config::defaults_for_tests()).unwrap();
        assert_eq!(defaults.backoff.free_failures, 5);
        assert_eq!(defaults.backoff.base, Duration::from_secs(1));
        assert_eq!(defaults.backoff.max, Duration::from_secs(900));
        assert_eq!(defaults.backoff.account_delay_max, Duration::from_secs(1));
        assert_eq!(defaults.deadline, Duration::from_secs(10));
        assert_eq!(defaults.max_connections, 256);
        assert_eq!(defaults.max_per_address, 8);
        assert_eq!(defaults.refresh_life, Duration::from_secs(7 * 24 * 3600));
        use crate::protocol::ConfigValue::Int;
        let changed = crate::config::changed_for_tests(
            &crate::config::GameKeys::NONE,
            &[
                ("login.freeFailures", Int(2)),
                ("login.backoffBaseMs", Int(250)),
                ("login.backoffMaxSeconds", Int(60)),
                ("login.accountDelayMaxMs", Int(300)),
                ("login.requestDeadlineMs", Int(1500)),
                ("login.maxConnections", Int(16)),
                ("login.maxConnectionsPerAddress", Int(2)),
                ("login.refreshTokenHours", Int(1)),
            ],
        );
        let p = LoginPolicy::from_config(&changed).unwrap();
        assert_eq!(
            p.backoff,
            BackoffPolicy {
                free_failures: 2,
                base: Duration::from_millis(250),
                max: Duration::from_secs(60),
                account_delay_max: Duration::from_millis(300),
            }
        );
        assert_eq!(p.deadline, Duration::from_millis(1500));
        assert_eq!((p.max_connections, p.max_per_address), (16, 2));
        assert_eq!(p.refresh_life, Duration::from_secs(3600));
    }
}
