//! The wire: framing enums, the codec, the typed-remote registry ([`remote`]) and the
//! framework's own messages ([`builtin`]).
//!
//! Every message is a serde type encoded with bincode 2 (standard config) under a decode size
//! limit. Games declare their own message types ([`Remote`], [`RemoteFunction`]); on the wire a
//! message is its kind (a hash of its name) and its encoded bytes. The protocol version and the
//! fingerprint of the registered message set are folded into netcode's protocol id, so a build
//! speaking another version, or registering another set of messages, cannot complete the
//! handshake; the client compares the id in its token with its own first and says which.

pub mod builtin;
pub mod remote;

use serde::{Deserialize, Serialize};

pub use remote::{
    AnyMessage, DecodeRefusal, Delivery, RegistrationError, Remote, RemoteEntry, RemoteFunction,
    RemoteShape, RemoteTable, decode_response, kind_of,
};

/// Version of the wire framing. Bump it on any incompatible change to the framing enums below,
/// or to a framework message's fields (the fingerprint covers names and types, not fields).
/// Version 2: several renet packets per datagram, see `transport::wire`; 3: typed remotes, a
/// message is its kind and its bytes; 4: signed blobs in parts; 5: the server stats answer
/// counts the passes between ticks.
pub const PROTOCOL_VERSION: u16 = 5;

/// `"BQ"` in the top 16 bits marks our protocol ids; bits 16..48 carry the fingerprint of the
/// registered message set, the low 16 bits the version.
const PROTOCOL_MAGIC: u64 = 0x4251_0000_0000_0000;

/// The netcode protocol id for a framing version and a message-set fingerprint.
pub const fn protocol_id_for(version: u16, fingerprint: u32) -> u64 {
    PROTOCOL_MAGIC | (fingerprint as u64) << 16 | version as u64
}

/// The framing version inside a netcode protocol id, if the id is one of ours.
pub fn protocol_version_of(protocol_id: u64) -> Option<u16> {
    (protocol_id & 0xFFFF_0000_0000_0000 == PROTOCOL_MAGIC).then_some((protocol_id & 0xFFFF) as u16)
}

/// The message-set fingerprint inside a netcode protocol id, if the id is one of ours.
pub fn protocol_fingerprint_of(protocol_id: u64) -> Option<u32> {
    (protocol_id & 0xFFFF_0000_0000_0000 == PROTOCOL_MAGIC)
        .then_some(((protocol_id >> 16) & 0xFFFF_FFFF) as u32)
}

/// Largest encoded message accepted by [`decode`] (bytes). Larger input is refused before any
/// allocation.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// A signed blob over this many bytes travels in parts of this size
/// ([`ServerMessage::SignedPart`]).
pub const SIGNED_PART_BYTES: usize = 48 * 1024;

/// The largest signed blob a client assembles from parts.
pub const MAX_SIGNED_BLOB_BYTES: usize = 16 * 1024 * 1024;

/// renet channels (the default `ConnectionConfig` layout).
pub mod channel {
    /// Unreliable: state snapshots that a newer one replaces.
    pub const UNRELIABLE: u8 = 0;
    /// Reliable, unordered: one-way events.
    pub const RELIABLE_UNORDERED: u8 = 1;
    /// Reliable, ordered: RPCs, sealed envelopes, session control.
    pub const RELIABLE_ORDERED: u8 = 2;
}

/// Opaque 128-bit session identifier.
pub type SessionId = u128;
/// Identifier of one remote function call, unique per client connection.
pub type RequestId = u64;

/// A configuration value as it travels (and as the config store holds it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ConfigValue {
    /// `bool`.
    Bool(bool),
    /// Integers.
    Int(i64),
    /// Floats, and durations in seconds.
    Float(f64),
    /// Strings and enum names.
    Text(String),
    /// Lists.
    List(Vec<ConfigValue>),
}

impl std::fmt::Display for ConfigValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigValue::Bool(b) => write!(f, "{b}"),
            ConfigValue::Int(i) => write!(f, "{i}"),
            ConfigValue::Float(x) => write!(f, "{x}"),
            ConfigValue::Text(s) => write!(f, "{s:?}"),
            ConfigValue::List(items) => {
                f.write_str("[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
        }
    }
}

/// Client-visible configuration: the ClientSafe and Shared values (never a ServerOnly one).
/// Travels as a signed blob with purpose [`CONFIG_SNAPSHOT`] at join, then as deltas with purpose
/// [`CONFIG_DELTA`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigSnapshot {
    /// The server's config version.
    pub version: u64,
    /// Path and value of every replicated key (a delta: only the changed ones).
    pub values: Vec<(String, ConfigValue)>,
}

/// Signed-blob purpose of a full config snapshot.
pub const CONFIG_SNAPSHOT: &str = "config";
/// Signed-blob purpose of a config delta.
pub const CONFIG_DELTA: &str = "config-delta";

/// Signed-blob purpose of the asset manifest.
pub const ASSET_MANIFEST: &str = "asset-manifest";

/// The server's asset manifest, sent signed at join.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AssetManifest {
    /// Every asset, by professional path.
    pub entries: Vec<AssetEntry>,
}

/// One asset (all its quality variants).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssetEntry {
    /// Professional path: `Models/Aquariums/Aquarium_Lv1` (no extension, no quality suffix).
    pub path: String,
    /// Category: a model subcategory (Aquariums, Characters, ...) or a type (Textures, ...).
    pub category: String,
    /// Type by extension: model, texture, sound, font, data, document.
    pub kind: String,
    /// Load priority: critical, high, medium or low.
    pub priority: String,
    /// The files: quality (empty: the only one), file path, size, sha256.
    pub variants: Vec<AssetVariant>,
}

/// One file of an asset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssetVariant {
    /// LOW, MEDIUM, HIGH, ULTRA, PROFESSIONAL, or empty.
    pub quality: String,
    /// Path under the assets dir.
    pub file: String,
    /// Bytes.
    pub size: u64,
    /// Hex sha256.
    pub sha256: String,
}

/// An AES-256-GCM envelope as it travels (see `transport::envelope`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// Key epoch (bumped on rekey).
    pub epoch: u32,
    /// Per-direction message counter within the epoch; with the epoch it forms the nonce.
    pub counter: u64,
    /// Ciphertext and tag.
    pub ciphertext: Vec<u8>,
}

/// Client → server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ClientMessage {
    /// A one-way remote event of a registered kind.
    Event {
        /// [`Remote::KIND`].
        kind: u32,
        /// The encoded value.
        payload: Vec<u8>,
    },
    /// A remote function call of a registered kind.
    Request {
        /// Echoed in the response.
        id: RequestId,
        /// [`Remote::KIND`].
        kind: u32,
        /// The encoded request.
        payload: Vec<u8>,
    },
    /// A sealed message ([`SealedClientMessage`]) in an envelope.
    Sealed(Sealed),
}

/// What a client's envelope holds: the same shapes as [`ClientMessage`], for sealed kinds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SealedClientMessage {
    /// A sealed one-way event.
    Event {
        /// [`Remote::KIND`].
        kind: u32,
        /// The encoded value.
        payload: Vec<u8>,
    },
    /// A sealed remote function call; its answer travels sealed.
    Request {
        /// Echoed in the sealed response.
        id: RequestId,
        /// [`Remote::KIND`].
        kind: u32,
        /// The encoded request.
        payload: Vec<u8>,
    },
}

/// Server → client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ServerMessage {
    /// First message of a session.
    Welcome {
        /// The session's id.
        session_id: SessionId,
        /// The server's protocol version.
        protocol_version: u16,
        /// The name from the token, as the server knows it.
        display_name: String,
    },
    /// A one-way remote event of a registered kind.
    Event {
        /// [`Remote::KIND`].
        kind: u32,
        /// The encoded value.
        payload: Vec<u8>,
    },
    /// The answer to a [`ClientMessage::Request`]: the encoded response, or why there is none.
    Response {
        /// The request's id.
        id: RequestId,
        /// The result.
        result: Result<Vec<u8>, RemoteError>,
    },
    /// A sealed message ([`SealedServerMessage`]) in an envelope.
    Sealed(Sealed),
    /// A server-signed blob (asset manifest, config snapshot) with its detached HMAC-SHA256
    /// signature under the session's signing key; the client verifies before use.
    Signed {
        /// What the blob is ("manifest", "config"); part of the signed data.
        purpose: String,
        /// The blob.
        blob: Vec<u8>,
        /// HMAC-SHA256 over purpose and blob.
        signature: [u8; 32],
    },
    /// The server is ending the session; the client shows the reason.
    Kicked {
        /// Why.
        reason: String,
    },
    /// A leading part of a signed blob too large for one message: the client keeps the parts
    /// of a purpose in order, and the [`ServerMessage::Signed`] that follows carries the last
    /// part and the signature over the whole blob.
    SignedPart {
        /// The blob's purpose.
        purpose: String,
        /// At most [`SIGNED_PART_BYTES`].
        bytes: Vec<u8>,
    },
}

/// What a server's envelope holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SealedServerMessage {
    /// The answer to a [`SealedClientMessage::Request`].
    Response {
        /// The request's id.
        id: RequestId,
        /// The encoded response, or why there is none.
        result: Result<Vec<u8>, RemoteError>,
    },
    /// A sealed one-way event.
    Event {
        /// [`Remote::KIND`].
        kind: u32,
        /// The encoded value.
        payload: Vec<u8>,
    },
}

impl ClientMessage {
    /// A short stable name for statistics.
    pub fn label(&self) -> &'static str {
        match self {
            ClientMessage::Event { .. } => "event",
            ClientMessage::Request { .. } => "request",
            ClientMessage::Sealed(_) => "sealed",
        }
    }
}

impl ServerMessage {
    /// A short stable name for statistics.
    pub fn label(&self) -> &'static str {
        match self {
            ServerMessage::Welcome { .. } => "welcome",
            ServerMessage::Event { .. } => "event",
            ServerMessage::Response { .. } => "response",
            ServerMessage::Sealed(_) => "sealed",
            ServerMessage::Signed { .. } => "signed",
            ServerMessage::Kicked { .. } => "kicked",
            ServerMessage::SignedPart { .. } => "signed_part",
        }
    }
}

/// Why a remote function failed, as the caller sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RemoteError {
    /// No answer within `network.messageTimeout`.
    #[error("timed out after {0} ms")]
    Timeout(u64),
    /// The server refused the request.
    #[error("rejected: {0}")]
    Rejected(String),
    /// The connection ended before an answer came.
    #[error("disconnected before an answer")]
    Disconnected,
    /// The answer did not decode as the function's response type.
    #[error("malformed answer: {0}")]
    Malformed(String),
}

/// Decoding failures. None of them panics; all of them are counted by the transport.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Input larger than [`MAX_MESSAGE_BYTES`].
    #[error("message of {0} bytes is over the {MAX_MESSAGE_BYTES}-byte limit")]
    TooLarge(usize),
    /// Not a valid encoding of the expected type.
    #[error("undecodable message: {0}")]
    Malformed(String),
    /// Valid prefix followed by extra bytes.
    #[error("{0} trailing bytes after the message")]
    Trailing(usize),
    /// Encoding failed (a value over the limit).
    #[error("cannot encode: {0}")]
    Encode(String),
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_MESSAGE_BYTES>()
}

/// Encodes a message.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, CodecError> {
    let bytes = bincode::serde::encode_to_vec(msg, config())
        .map_err(|e| CodecError::Encode(e.to_string()))?;
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(CodecError::TooLarge(bytes.len()));
    }
    Ok(bytes)
}

/// Decodes a message, refusing oversized input, malformed input and trailing bytes.
pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, CodecError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(CodecError::TooLarge(bytes.len()));
    }
    let (msg, used) = bincode::serde::decode_from_slice(bytes, config())
        .map_err(|e| CodecError::Malformed(e.to_string()))?;
    if used != bytes.len() {
        return Err(CodecError::Trailing(bytes.len() - used));
    }
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_shape() {
        let msgs = vec![
            ClientMessage::Event {
                kind: 5,
                payload: vec![1, 2],
            },
            ClientMessage::Request {
                id: 7,
                kind: 9,
                payload: vec![1, 2, 3],
            },
            ClientMessage::Sealed(Sealed {
                epoch: 1,
                counter: 2,
                ciphertext: vec![9; 20],
            }),
        ];
        for m in msgs {
            let bytes = encode(&m).unwrap();
            assert_eq!(decode::<ClientMessage>(&bytes).unwrap(), m);
        }
    }

    #[test]
    fn refuses_oversized_malformed_and_trailing() {
        assert!(matches!(
            decode::<ClientMessage>(&vec![0u8; MAX_MESSAGE_BYTES + 1]),
            Err(CodecError::TooLarge(_))
        ));
        assert!(matches!(
            decode::<ClientMessage>(&[0xFF, 0xFF, 0xFF]),
            Err(CodecError::Malformed(_))
        ));
        let mut bytes = encode(&ClientMessage::Event {
            kind: 1,
            payload: b"x".to_vec(),
        })
        .unwrap();
        bytes.push(0);
        assert!(matches!(
            decode::<ClientMessage>(&bytes),
            Err(CodecError::Trailing(1))
        ));
        // A length prefix that claims far more than the limit must not allocate it.
        let lie = [0u8, 1, 0xFC, 0xFF, 0xFF, 0xFF, 0x7F];
        assert!(decode::<ClientMessage>(&lie).is_err());
    }

    #[test]
    fn protocol_id_carries_the_version_and_the_fingerprint() {
        let id = protocol_id_for(PROTOCOL_VERSION, 0xDEAD_BEEF);
        assert_eq!(protocol_version_of(id), Some(PROTOCOL_VERSION));
        assert_eq!(protocol_fingerprint_of(id), Some(0xDEAD_BEEF));
        assert_eq!(protocol_version_of(protocol_id_for(9, 1)), Some(9));
        assert_eq!(protocol_version_of(12345), None);
        assert_eq!(protocol_fingerprint_of(12345), None);
    }
}
