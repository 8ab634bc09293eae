//! Connect tokens: made by the server's key for (player id, display name), carried by the client.
//!
//! The token's encrypted user data (256 bytes, readable only by the server) holds:
//! `"BQU1"` ‖ session key material (32) ‖ player id (u64 BE) ‖ name length (1) ‖ name (UTF-8).
//! The client receives the same key material beside the token, in the token file:
//! `"BQTOKEN1"` ‖ session key material (32) ‖ netcode connect token (2048).

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use renet_netcode::{ConnectToken, NETCODE_USER_DATA_BYTES};

use super::envelope::SessionMaterial;
use crate::clock::unix_now;

const USER_MAGIC: &[u8; 4] = b"BQU1";
const FILE_MAGIC: &[u8; 8] = b"BQTOKEN1";
/// Longest display name, in bytes of UTF-8.
pub const MAX_NAME_BYTES: usize = 64;

/// Why a token could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Display names are 1..=64 bytes of printable UTF-8.
    #[error("invalid display name: {0}")]
    BadName(String),
    /// Player ids are non-zero.
    #[error("invalid player id: must be non-zero")]
    BadPlayer,
    /// netcode refused to make the token.
    #[error("cannot generate a connect token: {0}")]
    Generate(String),
    /// The OS random source failed.
    #[error("cannot generate session key material: {0}")]
    Random(String),
    /// The token file could not be read or written.
    #[error("token file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// A server address was given that the token does not name (netcode dials only the token's
    /// addresses, and the server checks them).
    #[error(
        "the token is for {named}, not {asked}: make one for {asked} with `bloxquarium token --server {asked}`, or leave --server out"
    )]
    NotForServer {
        /// The addresses the token names.
        named: String,
        /// The address asked for.
        asked: SocketAddr,
    },
    /// The token names no server address.
    #[error("the token names no server address")]
    NamesNoServer,
    /// The token file is not one of ours or is damaged.
    #[error("token file {path} is malformed: {reason}")]
    Malformed {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// What the server learns from a token's user data at connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenIdentity {
    /// The player.
    pub player_id: u64,
    /// Their display name.
    pub display_name: String,
    /// The session's key material.
    pub material: SessionMaterial,
}

impl TokenIdentity {
    /// Packs into netcode's 256 bytes of user data.
    pub fn to_user_data(&self) -> Result<[u8; NETCODE_USER_DATA_BYTES], TokenError> {
        validate_name(&self.display_name)?;
        let mut out = [0u8; NETCODE_USER_DATA_BYTES];
        out[..4].copy_from_slice(USER_MAGIC);
        out[4..36].copy_from_slice(&self.material.0);
        out[36..44].copy_from_slice(&self.player_id.to_be_bytes());
        let name = self.display_name.as_bytes();
        out[44] = name.len() as u8;
        out[45..45 + name.len()].copy_from_slice(name);
        Ok(out)
    }

    /// Unpacks user data; `None` if it is not ours or is damaged.
    pub fn from_user_data(data: &[u8; NETCODE_USER_DATA_BYTES]) -> Option<Self> {
        if &data[..4] != USER_MAGIC {
            return None;
        }
        let material = SessionMaterial(data[4..36].try_into().ok()?);
        let player_id = u64::from_be_bytes(data[36..44].try_into().ok()?);
        let len = usize::from(data[44]);
        if len == 0 || len > MAX_NAME_BYTES {
            return None;
        }
        let display_name = std::str::from_utf8(&data[45..45 + len]).ok()?.to_string();
        // The rules the issuer writes by (found by the token_user_data fuzz target: a name with a
        // control character was read back though no issuer could write it).
        validate_name(&display_name).ok()?;
        (player_id != 0).then_some(Self {
            player_id,
            display_name,
            material,
        })
    }
}

fn validate_name(name: &str) -> Result<(), TokenError> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(TokenError::BadName(format!(
            "{} bytes, expected 1..={MAX_NAME_BYTES}",
            name.len()
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(TokenError::BadName("contains control characters".into()));
    }
    Ok(())
}

/// A token and the key material the client keeps beside it.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// netcode's connect token.
    pub token: ConnectToken,
    /// The session's key material (also inside the token's encrypted user data).
    pub material: SessionMaterial,
}

impl IssuedToken {
    /// The server addresses the token names, in order.
    pub fn servers(&self) -> Vec<SocketAddr> {
        self.token
            .server_addresses
            .iter()
            .flatten()
            .copied()
            .collect()
    }

    /// The address to dial: `asked` if the token names it, else the token's first address when
    /// nothing was asked; an error when `asked` is not one the token names.
    pub fn dial(&self, asked: Option<SocketAddr>) -> Result<SocketAddr, TokenError> {
        let named = self.servers();
        match asked {
            Some(asked) if named.contains(&asked) => Ok(asked),
            Some(asked) => Err(TokenError::NotForServer {
                named: named
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                asked,
            }),
            None => named.first().copied().ok_or(TokenError::NamesNoServer),
        }
    }

    /// Writes the token file (mode 0600: it holds key material).
    pub fn write_file(&self, path: &Path) -> Result<(), TokenError> {
        use std::os::unix::fs::OpenOptionsExt;
        let io = |source| TokenError::Io {
            path: path.display().to_string(),
            source,
        };
        let bytes = self.to_bytes();
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        file.write_all(&bytes).map_err(io)?;
        Ok(())
    }

    /// The token file's bytes: a magic, the key material, the connect token.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(8 + 32 + 2048);
        bytes.extend_from_slice(FILE_MAGIC);
        bytes.extend_from_slice(&self.material.0);
        // Writing into a Vec cannot fail.
        let _ = self.token.write(&mut bytes);
        bytes
    }

    /// Reads a token file written by [`IssuedToken::write_file`].
    pub fn read_file(path: &Path) -> Result<Self, TokenError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| TokenError::Io {
            path: shown.clone(),
            source,
        })?;
        Self::from_bytes(&bytes).map_err(|reason| TokenError::Malformed {
            path: shown,
            reason,
        })
    }

    /// Parses the bytes of a token file (what [`Self::read_file`] reads).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() < 40 || &bytes[..8] != FILE_MAGIC {
            return Err("not a bloxquarium token file".into());
        }
        let material = SessionMaterial(
            bytes[8..40]
                .try_into()
                .map_err(|_| "truncated key material")?,
        );
        let mut rest = &bytes[40..];
        let token = ConnectToken::read(&mut rest).map_err(|e| format!("bad connect token: {e}"))?;
        let mut tail = Vec::new();
        let _ = rest.read_to_end(&mut tail);
        if !tail.is_empty() {
            return Err(format!("{} unexpected bytes after the token", tail.len()));
        }
        Ok(Self { token, material })
    }
}

/// Makes connect tokens with the server's private key.
#[derive(Clone)]
pub struct TokenIssuer {
    private_key: [u8; 32],
    protocol_id: u64,
    server_addresses: Vec<SocketAddr>,
    /// How long a token may be used to connect, in seconds.
    pub expire_secs: u64,
    /// Connection timeout written into the token, in seconds.
    pub timeout_secs: i32,
}

impl TokenIssuer {
    /// An issuer for the server at `server_addresses`.
    pub fn new(private_key: [u8; 32], protocol_id: u64, server_addresses: Vec<SocketAddr>) -> Self {
        Self {
            private_key,
            protocol_id,
            server_addresses,
            expire_secs: 300,
            timeout_secs: 15,
        }
    }

    /// The server addresses its tokens name.
    pub fn addresses(&self) -> &[SocketAddr] {
        &self.server_addresses
    }

    /// The same issuer for another server at `server_addresses` (servers on one store share
    /// the netcode key, so a token made here is good there).
    pub fn for_addresses(&self, server_addresses: Vec<SocketAddr>) -> Self {
        Self {
            server_addresses,
            ..self.clone()
        }
    }

    /// A token for `player_id` named `display_name`, valid from `now`.
    pub fn issue_at(
        &self,
        player_id: u64,
        display_name: &str,
        now: Duration,
    ) -> Result<IssuedToken, TokenError> {
        if player_id == 0 {
            return Err(TokenError::BadPlayer);
        }
        let material = SessionMaterial::random().map_err(|e| TokenError::Random(e.to_string()))?;
        let identity = TokenIdentity {
            player_id,
            display_name: display_name.to_string(),
            material: material.clone(),
        };
        let user_data = identity.to_user_data()?;
        let token = ConnectToken::generate(
            now,
            self.protocol_id,
            self.expire_secs,
            player_id,
            self.timeout_secs,
            self.server_addresses.clone(),
            Some(&user_data),
            &self.private_key,
        )
        .map_err(|e| TokenError::Generate(format!("{e:?}")))?;
        Ok(IssuedToken { token, material })
    }

    /// A token valid from now.
    pub fn issue(&self, player_id: u64, display_name: &str) -> Result<IssuedToken, TokenError> {
        self.issue_at(player_id, display_name, unix_now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_dials_only_an_address_it_names() {
        let named = [
            "192.0.2.4:5000".parse().unwrap(),
            "203.0.113.7:5000".parse().unwrap(),
        ];
        let issuer = TokenIssuer::new([7; 32], 1, named.to_vec());
        let token = issuer.issue(3, "Ann").unwrap();
        assert_eq!(token.servers(), named.to_vec());
        assert_eq!(token.dial(None).unwrap(), named[0]);
        assert_eq!(token.dial(Some(named[1])).unwrap(), named[1]);
        let other: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let e = token.dial(Some(other)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the token is for 192.0.2.4:5000, 203.0.113.7:5000, not 127.0.0.1:5000: make one for \
             127.0.0.1:5000 with `bloxquarium token --server 127.0.0.1:5000`, or leave --server out"
        );
    }

    #[test]
    fn user_data_round_trip_and_rejects() {
        let id = TokenIdentity {
            player_id: 9,
            display_name: "Nemo".into(),
            material: SessionMaterial([1; 32]),
        };
        let data = id.to_user_data().unwrap();
        assert_eq!(TokenIdentity::from_user_data(&data), Some(id));
        assert_eq!(
            TokenIdentity::from_user_data(&[0; NETCODE_USER_DATA_BYTES]),
            None
        );
        let bad = TokenIdentity {
            player_id: 9,
            display_name: "x".repeat(65),
            material: SessionMaterial([1; 32]),
        };
        assert!(bad.to_user_data().is_err());
    }

    /// Regression (fuzz target token_user_data): user data whose name has a control character
    /// is refused, as the issuer refuses to write it.
    #[test]
    fn user_data_with_a_name_no_issuer_writes_is_refused() {
        let id = TokenIdentity {
            player_id: 9,
            display_name: "Coral".into(),
            material: SessionMaterial([7; 32]),
        };
        let mut data = id.to_user_data().unwrap();
        data[46] = 0x07;
        assert_eq!(TokenIdentity::from_user_data(&data), None);
    }

    #[test]
    fn token_file_round_trip_and_malformed() {
        let issuer = TokenIssuer::new([5; 32], 77, vec!["127.0.0.1:5000".parse().unwrap()]);
        let t = issuer.issue(3, "Dory").unwrap();
        let p = std::env::temp_dir().join(format!("bq-token-{}", std::process::id()));
        t.write_file(&p).unwrap();
        let back = IssuedToken::read_file(&p).unwrap();
        assert_eq!(back.token, t.token);
        assert_eq!(back.material, t.material);
        std::fs::write(&p, b"BQTOKEN1 nope").unwrap();
        assert!(matches!(
            IssuedToken::read_file(&p),
            Err(TokenError::Malformed { .. })
        ));
        let _ = std::fs::remove_file(&p);
        assert!(matches!(issuer.issue(0, "x"), Err(TokenError::BadPlayer)));
    }
}
