//! Typed remote messages: what a game (or a framework subsystem) declares on its own types.
//!
//! A [`Remote`] is a serde type with a stable [`Remote::NAME`]; its kind id on the wire is a hash
//! of that name, so both sides agree without a shared numbering. The type declares how it travels
//! (sealed or plain, [`Delivery`]), which rate-limit class it counts against, the permission it
//! needs, and the validation a well-formed value must pass. A [`RemoteFunction`] names its
//! response type. The set of types an app registers is a [`RemoteTable`]; its fingerprint is
//! folded into the netcode protocol id, so a client built with another set cannot join.

use std::any::Any;
use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::{CodecError, channel};

/// How a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Delivery {
    /// May be lost or reordered; a newer one replaces it (heartbeats, snapshots).
    Unreliable,
    /// Arrives, in any order (one-way events).
    ReliableUnordered,
    /// Arrives, in order (remote functions, sealed messages).
    ReliableOrdered,
}

impl Delivery {
    /// The renet channel of this delivery.
    pub const fn channel(self) -> u8 {
        match self {
            Delivery::Unreliable => channel::UNRELIABLE,
            Delivery::ReliableUnordered => channel::RELIABLE_UNORDERED,
            Delivery::ReliableOrdered => channel::RELIABLE_ORDERED,
        }
    }
}

/// The wire kind of a message name: 32-bit FNV-1a of the name.
pub const fn kind_of(name: &str) -> u32 {
    let bytes = name.as_bytes();
    let mut hash: u32 = 0x811c_9dc5;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u32;
        hash = hash.wrapping_mul(0x0100_0193);
        i += 1;
    }
    hash
}

/// A message type that crosses the network, with its rules.
pub trait Remote:
    Serialize + DeserializeOwned + Clone + std::fmt::Debug + Send + Sync + 'static
{
    /// Stable, unique name (`"aquarium.purchase"`); renaming it is a protocol change.
    const NAME: &'static str;
    /// The wire kind (a hash of [`Self::NAME`]).
    const KIND: u32 = kind_of(Self::NAME);
    /// Travels inside the session's AES-GCM envelope (never in clear).
    const SEALED: bool = false;
    /// Channel. Sealed messages and remote functions must be [`Delivery::ReliableOrdered`].
    const DELIVERY: Delivery = Delivery::ReliableOrdered;
    /// The rate-limit class a client's message counts against (`security.rateLimits.<class>`;
    /// a class without its own key counts against `call`).
    const RATE_CLASS: &'static str = "call";
    /// True for background traffic (heartbeats) that does not count as player activity.
    const BACKGROUND: bool = false;

    /// Rules a decoded value must also respect (lengths, ranges). The reason is sent back.
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }

    /// The permission a client needs to send this value (`None`: anyone in session). The
    /// security gate checks it before any handler sees the message.
    fn permission(&self) -> Option<&'static str> {
        None
    }
}

/// A remote function: a [`Remote`] request with its response type.
pub trait RemoteFunction: Remote {
    /// What a successful call returns.
    type Response: Serialize + DeserializeOwned + Clone + std::fmt::Debug + Send + Sync + 'static;
}

/// Direction and shape of a registered message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RemoteShape {
    /// A one-way event (either direction).
    Event,
    /// A remote function a client calls.
    Function,
}

/// A decoded, validated message of some registered type, as the transport hands it on.
pub type AnyMessage = Box<dyn Any + Send + Sync>;

/// One registered message type.
#[derive(Clone)]
pub struct RemoteEntry {
    /// [`Remote::NAME`].
    pub name: &'static str,
    /// [`Remote::KIND`].
    pub kind: u32,
    /// Event or function.
    pub shape: RemoteShape,
    /// [`Remote::SEALED`].
    pub sealed: bool,
    /// [`Remote::DELIVERY`].
    pub delivery: Delivery,
    /// [`Remote::RATE_CLASS`].
    pub rate_class: &'static str,
    /// [`Remote::BACKGROUND`].
    pub background: bool,
    /// The Rust type names of the message (and response), folded into the fingerprint.
    pub types: String,
    decode: fn(&[u8]) -> Result<AnyMessage, DecodeRefusal>,
    permission: fn(&(dyn Any + Send + Sync)) -> Option<&'static str>,
}

impl std::fmt::Debug for RemoteEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteEntry")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("shape", &self.shape)
            .field("sealed", &self.sealed)
            .finish()
    }
}

/// Why bytes of a registered kind were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeRefusal {
    /// Over [`super::MAX_MESSAGE_BYTES`].
    TooLarge(usize),
    /// Not an encoding of the type.
    Malformed(String),
    /// Decodes, but breaks the type's validation rule.
    Invalid(String),
}

fn decode_as<T: Remote>(bytes: &[u8]) -> Result<AnyMessage, DecodeRefusal> {
    let value: T = super::decode(bytes).map_err(|e| match e {
        CodecError::TooLarge(n) => DecodeRefusal::TooLarge(n),
        other => DecodeRefusal::Malformed(format!("{}: {other}", T::NAME)),
    })?;
    value.validate().map_err(DecodeRefusal::Invalid)?;
    Ok(Box::new(value))
}

fn permission_of<T: Remote>(value: &(dyn Any + Send + Sync)) -> Option<&'static str> {
    value.downcast_ref::<T>().and_then(Remote::permission)
}

impl RemoteEntry {
    fn new<T: Remote>(shape: RemoteShape, types: String) -> Self {
        Self {
            name: T::NAME,
            kind: T::KIND,
            shape,
            sealed: T::SEALED,
            delivery: T::DELIVERY,
            rate_class: T::RATE_CLASS,
            background: T::BACKGROUND,
            types,
            decode: decode_as::<T>,
            permission: permission_of::<T>,
        }
    }

    /// Decodes and validates bytes of this kind.
    pub fn decode(&self, bytes: &[u8]) -> Result<AnyMessage, DecodeRefusal> {
        (self.decode)(bytes)
    }

    /// The permission a decoded value of this kind needs.
    pub fn permission(&self, value: &(dyn Any + Send + Sync)) -> Option<&'static str> {
        (self.permission)(value)
    }
}

/// A registration that cannot be honoured (a programming error in the game, reported at start).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationError {
    /// Two names hash to one kind.
    #[error("remote messages {0:?} and {1:?} have the same wire kind; rename one")]
    KindClash(&'static str, &'static str),
    /// One name registered with two different types or shapes.
    #[error("remote message {0:?} is registered twice with different types ({1} and {2})")]
    NameClash(&'static str, String, String),
    /// A sealed message or a function on a channel other than reliable-ordered.
    #[error("remote message {0:?}: sealed messages and functions travel reliable and ordered")]
    Delivery(&'static str),
}

/// The registered message types of an app: the transport decodes by it, the gate rate-limits and
/// checks permissions by it.
#[derive(Debug, Clone, Default)]
pub struct RemoteTable {
    by_kind: BTreeMap<u32, RemoteEntry>,
    errors: Vec<RegistrationError>,
}

impl RemoteTable {
    /// Registers a one-way event type (idempotent).
    pub fn add_event<T: Remote>(&mut self) -> bool {
        self.add(RemoteEntry::new::<T>(
            RemoteShape::Event,
            std::any::type_name::<T>().to_string(),
        ))
    }

    /// Registers a remote function type (idempotent).
    pub fn add_function<T: RemoteFunction>(&mut self) -> bool {
        self.add(RemoteEntry::new::<T>(
            RemoteShape::Function,
            format!(
                "{} -> {}",
                std::any::type_name::<T>(),
                std::any::type_name::<T::Response>()
            ),
        ))
    }

    /// Adds an entry; false if it was there already (or clashes: see [`Self::errors`]).
    fn add(&mut self, entry: RemoteEntry) -> bool {
        if entry.delivery != Delivery::ReliableOrdered
            && (entry.sealed || entry.shape == RemoteShape::Function)
        {
            self.errors.push(RegistrationError::Delivery(entry.name));
            return false;
        }
        if let Some(have) = self.by_kind.get(&entry.kind) {
            if have.name != entry.name {
                self.errors
                    .push(RegistrationError::KindClash(have.name, entry.name));
            } else if have.types != entry.types || have.shape != entry.shape {
                self.errors.push(RegistrationError::NameClash(
                    entry.name,
                    have.types.clone(),
                    entry.types,
                ));
            }
            return false;
        }
        self.by_kind.insert(entry.kind, entry);
        true
    }

    /// The entry of a wire kind.
    pub fn get(&self, kind: u32) -> Option<&RemoteEntry> {
        self.by_kind.get(&kind)
    }

    /// Registrations that could not be honoured.
    pub fn errors(&self) -> &[RegistrationError] {
        &self.errors
    }

    /// 32 bits that change when the set of messages (names, shapes, types, how they travel)
    /// changes.
    pub fn fingerprint(&self) -> u32 {
        let mut h = Sha256::new();
        for e in self.by_kind.values() {
            h.update(e.name.as_bytes());
            h.update([0, e.shape as u8, e.sealed as u8, e.delivery as u8]);
            h.update(e.types.as_bytes());
            h.update([0xFF]);
        }
        let d = h.finalize();
        u32::from_be_bytes([d[0], d[1], d[2], d[3]])
    }

    /// The netcode protocol id of an app with this table.
    pub fn protocol_id(&self) -> u64 {
        super::protocol_id_for(super::PROTOCOL_VERSION, self.fingerprint())
    }
}

/// Decodes a remote function's answer bytes as `T`'s response.
pub fn decode_response<T: RemoteFunction>(
    result: Result<Vec<u8>, super::RemoteError>,
) -> Result<T::Response, super::RemoteError> {
    let bytes = result?;
    super::decode::<T::Response>(&bytes)
        .map_err(|e| super::RemoteError::Malformed(format!("answer to {}: {e}", T::NAME)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Clone, Serialize, Deserialize)]
    struct Ping(u8);
    impl Remote for Ping {
        const NAME: &'static str = "test.ping";
        fn validate(&self) -> Result<(), String> {
            if self.0 > 9 {
                Err("over 9".into())
            } else {
                Ok(())
            }
        }
    }
    impl RemoteFunction for Ping {
        type Response = u8;
    }

    #[derive(Debug, Clone, Serialize, Deserialize)]
    struct Loud;
    impl Remote for Loud {
        const NAME: &'static str = "test.loud";
        const DELIVERY: Delivery = Delivery::Unreliable;
        const SEALED: bool = true;
    }

    #[test]
    fn kinds_are_stable_hashes_of_names() {
        assert_eq!(kind_of(""), 0x811c_9dc5);
        assert_eq!(Ping::KIND, kind_of("test.ping"));
        assert_ne!(Ping::KIND, kind_of("test.pong"));
    }

    #[test]
    fn decode_validates_and_fingerprint_follows_the_set() {
        let mut t = RemoteTable::default();
        let empty = t.fingerprint();
        assert!(t.add_function::<Ping>());
        assert!(!t.add_function::<Ping>(), "idempotent");
        assert!(t.errors().is_empty());
        assert_ne!(t.fingerprint(), empty);
        let e = t.get(Ping::KIND).unwrap();
        assert!(e.decode(&super::super::encode(&Ping(3)).unwrap()).is_ok());
        assert_eq!(
            e.decode(&super::super::encode(&Ping(12)).unwrap()).err(),
            Some(DecodeRefusal::Invalid("over 9".into()))
        );
        assert!(matches!(
            e.decode(&[0xFF, 0xFF]),
            Err(DecodeRefusal::Malformed(_))
        ));
        // Registered as an event instead: another set, another fingerprint, and a clash.
        let mut other = RemoteTable::default();
        other.add_event::<Ping>();
        assert_ne!(other.fingerprint(), t.fingerprint());
        t.add_event::<Ping>();
        assert!(matches!(t.errors(), [RegistrationError::NameClash(..)]));
    }

    #[test]
    fn sealed_messages_must_be_reliable_and_ordered() {
        let mut t = RemoteTable::default();
        assert!(!t.add_event::<Loud>());
        assert_eq!(t.errors(), &[RegistrationError::Delivery("test.loud")]);
    }
}
