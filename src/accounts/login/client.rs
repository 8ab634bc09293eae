//! The client's side of the login service: HTTPS requests with the server's certificate pinned,
//! the known-hosts file, and the refresh token kept beside it.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use serde::{Deserialize, Serialize};

use super::tls::{Fingerprint, KnownHosts, PinVerifier, TlsError};
use super::{Credentials, DEFAULT_LOGIN_PORT, Grant, RefreshRequest, Refusal, http};
use crate::transport::IssuedToken;

/// How long to wait for the service to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an answer may take (a busy service queues password checks).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a login did not work.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// `--login` is not `HOST[:PORT]`, or the host does not resolve.
    #[error("login service {0}: {1}")]
    Address(String, String),
    /// No connection.
    #[error("cannot reach the login service at {host}: {reason}")]
    Unreachable {
        /// `HOST:PORT`.
        host: String,
        /// Why.
        reason: String,
    },
    /// The certificate is not the pinned one.
    #[error(
        "the login service at {host} showed certificate {got}, not the one pinned for it ({pinned}) \
         in {file}: it may not be your server. If its certificate was replaced on purpose, delete \
         the line for {host} from {file}, or pin the new one with --server-cert FILE"
    )]
    CertificateChanged {
        /// `HOST:PORT`.
        host: String,
        /// What it showed.
        got: Fingerprint,
        /// What was pinned.
        pinned: Fingerprint,
        /// Where the pin came from.
        file: String,
    },
    /// The service said no.
    #[error("{}", .refusal.error)]
    Refused {
        /// The HTTP status.
        status: u16,
        /// Its answer.
        refusal: Refusal,
    },
    /// The answer could not be read.
    #[error("the login service's answer is malformed: {0}")]
    Malformed(String),
    /// A certificate file, or the known-hosts file.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

impl LoginError {
    /// The service's reason code, when it refused.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Refused { refusal, .. } => Some(&refusal.reason),
            _ => None,
        }
    }
}

/// What the client keeps to log in again without the password (mode 0600).
#[derive(Clone, Serialize, Deserialize)]
pub struct SavedRefresh {
    /// The account.
    pub username: String,
    /// The refresh token.
    pub refresh_token: String,
    /// Its expiry, Unix ms.
    pub expires_ms: u64,
}

/// A login service, as the client reaches it.
#[derive(Debug, Clone)]
pub struct LoginClient {
    /// `HOST:PORT`, as pinned.
    host: String,
    name: String,
    addr: SocketAddr,
    dir: PathBuf,
    known: KnownHosts,
    up_front: Option<Fingerprint>,
    source: Option<IpAddr>,
}

/// Splits `HOST[:PORT]` (IPv6 literals in brackets when a port follows).
fn split_host(text: &str) -> Result<(String, u16), String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok((addr.ip().to_string(), addr.port()));
    }
    if let Ok(ip) = text.trim_matches(['[', ']']).parse::<IpAddr>() {
        return Ok((ip.to_string(), DEFAULT_LOGIN_PORT));
    }
    match text.rsplit_once(':') {
        Some((host, port)) => port
            .parse()
            .map(|p| (host.to_string(), p))
            .map_err(|_| format!("bad port {port:?}: expected HOST[:PORT]")),
        None if !text.is_empty() => Ok((text.to_string(), DEFAULT_LOGIN_PORT)),
        None => Err("expected HOST[:PORT]".into()),
    }
}

impl LoginClient {
    /// The service at `HOST[:PORT]` (default port 5001). The client keeps its known-hosts file
    /// and refresh tokens in `dir`; `server_cert` (PEM) pins the certificate up front.
    pub fn new(target: &str, dir: &Path, server_cert: Option<&Path>) -> Result<Self, LoginError> {
        let bad = |why: String| LoginError::Address(target.to_string(), why);
        let (name, port) = split_host(target).map_err(bad)?;
        let addr = (name.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| bad(e.to_string()))?
            .next()
            .ok_or_else(|| bad("no address".into()))?;
        let up_front = match server_cert {
            Some(path) => Some(Fingerprint::of(&super::tls::read_certs(path)?[0])),
            None => None,
        };
        let host = if name.contains(':') {
            format!("[{name}]:{port}")
        } else {
            format!("{name}:{port}")
        };
        Ok(Self {
            host,
            name,
            addr,
            dir: dir.to_path_buf(),
            known: KnownHosts::at(dir.join("known_hosts")),
            up_front,
            source: None,
        })
    }

    /// Connects from `ip` (one of this host's addresses) instead of the one the OS picks.
    pub fn from_address(mut self, ip: IpAddr) -> Self {
        self.source = Some(ip);
        self
    }

    fn connect(&self) -> std::io::Result<TcpStream> {
        let Some(source) = self.source else {
            return TcpStream::connect_timeout(&self.addr, CONNECT_TIMEOUT);
        };
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(self.addr),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        socket.bind(&SocketAddr::new(source, 0).into())?;
        socket.connect_timeout(&self.addr.into(), CONNECT_TIMEOUT)?;
        Ok(socket.into())
    }

    /// The address it resolved to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `HOST:PORT`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The known-hosts file.
    pub fn known_hosts(&self) -> &Path {
        self.known.path()
    }

    /// Registers an account (and logs in).
    pub fn register(&self, credentials: &Credentials) -> Result<Grant, LoginError> {
        self.grant("/v1/register", credentials)
    }

    /// Logs in.
    pub fn log_in(&self, credentials: &Credentials) -> Result<Grant, LoginError> {
        self.grant("/v1/login", credentials)
    }

    /// Logs in again with a refresh token.
    pub fn refresh(&self, refresh_token: &str) -> Result<Grant, LoginError> {
        self.grant(
            "/v1/refresh",
            &RefreshRequest {
                refresh_token: refresh_token.to_string(),
            },
        )
    }

    fn grant(&self, path: &str, body: &impl Serialize) -> Result<Grant, LoginError> {
        let body = serde_json::to_vec(body).map_err(|e| LoginError::Malformed(e.to_string()))?;
        let (status, answer) = self.post(path, &body)?;
        if (200..300).contains(&status) {
            serde_json::from_slice(&answer).map_err(|e| LoginError::Malformed(e.to_string()))
        } else {
            let refusal = serde_json::from_slice(&answer).unwrap_or_else(|_| Refusal {
                error: format!("the login service answered {status}"),
                reason: "http".into(),
                retry_after_ms: None,
            });
            Err(LoginError::Refused { status, refusal })
        }
    }

    /// One HTTPS POST; the status and body of the answer.
    pub fn post(&self, path: &str, body: &[u8]) -> Result<(u16, Vec<u8>), LoginError> {
        let pinned = self.up_front.or_else(|| self.known.get(&self.host));
        let verifier = Arc::new(PinVerifier::new(pinned));
        let config = super::tls::client_config(verifier.clone())?;
        let unreachable = |reason: String| LoginError::Unreachable {
            host: self.host.clone(),
            reason,
        };
        let server_name = match self.name.parse::<IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(self.name.clone())
                .map_err(|e| LoginError::Address(self.host.clone(), e.to_string()))?,
        };
        let tcp = self.connect().map_err(|e| unreachable(e.to_string()))?;
        tcp.set_read_timeout(Some(ANSWER_TIMEOUT))
            .and_then(|()| tcp.set_write_timeout(Some(ANSWER_TIMEOUT)))
            .map_err(|e| unreachable(e.to_string()))?;
        let conn = rustls::ClientConnection::new(config, server_name)
            .map_err(|e| unreachable(e.to_string()))?;
        let mut stream = rustls::StreamOwned::new(conn, tcp);
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.host,
            body.len()
        );
        let sent = stream
            .write_all(head.as_bytes())
            .and_then(|()| stream.write_all(body))
            .and_then(|()| stream.flush());
        let mut answer = Vec::new();
        let read = sent.and_then(|()| match stream.read_to_end(&mut answer) {
            // A peer that closes without close_notify: what arrived is judged by its length.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(answer.len()),
            other => other,
        });
        if let Err(e) = read {
            if let (Some(pinned), Some(got)) = (pinned, verifier.seen())
                && pinned != got
            {
                return Err(LoginError::CertificateChanged {
                    host: self.host.clone(),
                    got,
                    pinned,
                    file: if self.up_front.is_some() {
                        "--server-cert".into()
                    } else {
                        self.known.path().display().to_string()
                    },
                });
            }
            return Err(unreachable(e.to_string()));
        }
        if pinned.is_none()
            && let Some(seen) = verifier.seen()
        {
            self.known.put(&self.host, seen)?;
            tracing::info!(
                "pinned the login service's certificate {seen} for {} in {}",
                self.host,
                self.known.path().display()
            );
        }
        http::parse_response(&answer).map_err(|e| LoginError::Malformed(e.to_string()))
    }

    fn refresh_path(&self) -> PathBuf {
        let file: String = self
            .host
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir.join(format!("refresh-{file}.json"))
    }

    /// Keeps `grant`'s refresh token (mode 0600) for [`Self::saved_refresh`].
    pub fn save_refresh(&self, grant: &Grant) -> Result<(), LoginError> {
        let saved = SavedRefresh {
            username: grant.username.clone(),
            refresh_token: grant.refresh_token.clone(),
            expires_ms: grant.refresh_expires_ms,
        };
        let path = self.refresh_path();
        let bytes = serde_json::to_vec(&saved).map_err(|e| LoginError::Malformed(e.to_string()))?;
        crate::process::write_private_atomically(&path, &bytes).map_err(|source| {
            LoginError::Tls(TlsError::Io {
                path: path.display().to_string(),
                source,
            })
        })
    }

    /// The refresh token kept for this service, if any.
    pub fn saved_refresh(&self) -> Option<SavedRefresh> {
        serde_json::from_slice(&std::fs::read(self.refresh_path()).ok()?).ok()
    }
}

impl LoginClient {
    /// Takes a grant after a login in the running client: keeps its refresh token (a failure
    /// to is logged: the session still goes ahead) and says which server to dial with which
    /// token (`asked`: the `--server` the player named, if any).
    pub fn take_grant(
        &self,
        grant: &Grant,
        asked: Option<SocketAddr>,
    ) -> Result<(SocketAddr, IssuedToken), LoginError> {
        if let Err(e) = self.save_refresh(grant) {
            tracing::warn!("cannot keep the refresh token: {e}");
        }
        let token = token_of(grant)?;
        let server = token
            .dial(asked)
            .map_err(|e| LoginError::Malformed(e.to_string()))?;
        Ok((server, token))
    }
}

/// The connect token in a grant.
pub fn token_of(grant: &Grant) -> Result<IssuedToken, LoginError> {
    let bytes = hex::decode(&grant.token).map_err(|e| LoginError::Malformed(e.to_string()))?;
    IssuedToken::from_bytes(&bytes).map_err(LoginError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_targets() {
        assert_eq!(split_host("10.0.0.1").unwrap(), ("10.0.0.1".into(), 5001));
        assert_eq!(split_host("10.0.0.1:7").unwrap(), ("10.0.0.1".into(), 7));
        assert_eq!(split_host("[::1]:7").unwrap(), ("::1".into(), 7));
        assert_eq!(split_host("::1").unwrap(), ("::1".into(), 5001));
        assert_eq!(
            split_host("example.org").unwrap(),
            ("example.org".into(), 5001)
        );
        assert_eq!(
            split_host("example.org:80").unwrap(),
            ("example.org".into(), 80)
        );
        assert!(split_host("example.org:x").is_err());
        assert!(split_host("").is_err());
    }
}
