//! The envelope for sensitive messages: AES-256-GCM under per-session, per-direction keys.
//!
//! - 32 bytes of session key material reach the server inside the connect token's encrypted user
//!   data and the client beside its token.
//! - Keys: HKDF-SHA256(ikm = material, salt = `SALT`, info = label ‖ direction ‖ epoch).
//! - Nonce (96 bits): epoch (32 bits, big endian) ‖ counter (64 bits, big endian). The counter
//!   never repeats within an epoch, so a nonce never repeats under one key.
//! - Rekey: after `rekey_after` messages the sender moves to epoch + 1 with a fresh key; the
//!   receiver follows when it sees the new epoch (it keeps the previous epoch's key for
//!   stragglers).
//! - Replay: the receiver keeps, per epoch, the highest counter and a 64-message window below it;
//!   a counter seen before, or older than the window, is refused.
//! - The additional data binds a message to its session and direction.
//!
//! Detached HMAC-SHA256 signatures ([`Signer`]) cover server-signed blobs (asset manifest,
//! config snapshot) under a key derived from the same material.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::protocol::{Sealed, SessionId};

const SALT: &[u8] = b"bloxquarium/envelope/v1";
/// Width of the replay window below the highest counter.
const WINDOW: u64 = 64;

/// 32 bytes of secret shared by one client and the server for one session.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionMaterial(pub [u8; 32]);

impl std::fmt::Debug for SessionMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionMaterial(..)")
    }
}

impl SessionMaterial {
    /// Fresh random material.
    pub fn random() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        Ok(Self(bytes))
    }
}

/// Which way a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to server.
    ClientToServer,
    /// Server to client.
    ServerToClient,
}

impl Direction {
    fn label(self) -> &'static [u8] {
        match self {
            Direction::ClientToServer => b"c2s",
            Direction::ServerToClient => b"s2c",
        }
    }
}

/// Why an envelope was refused. Every case is counted and raises a security signal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Authentication failed: altered ciphertext, wrong key, wrong session.
    #[error("envelope failed authentication (tampered or foreign)")]
    Tampered,
    /// A counter already seen, or older than the replay window.
    #[error("envelope replayed (epoch {epoch}, counter {counter})")]
    Replayed {
        /// Epoch of the refused envelope.
        epoch: u32,
        /// Counter of the refused envelope.
        counter: u64,
    },
    /// An epoch older than the previous one, or more than one ahead.
    #[error("envelope from epoch {got}, expected {expected} or {next}", next = expected + 1)]
    BadEpoch {
        /// The envelope's epoch.
        got: u32,
        /// The receiver's current epoch.
        expected: u32,
    },
    /// The sender ran out of epochs (2^32 rekeys).
    #[error("envelope key space exhausted")]
    Exhausted,
}

fn derive_key(material: &SessionMaterial, dir: Direction, epoch: u32) -> Aes256Gcm {
    let hk = Hkdf::<Sha256>::new(Some(SALT), &material.0);
    let mut info = Vec::with_capacity(16);
    info.extend_from_slice(b"aead/");
    info.extend_from_slice(dir.label());
    info.extend_from_slice(&epoch.to_be_bytes());
    let mut key = [0u8; 32];
    // 32 bytes is far below HKDF-SHA256's 8160-byte output limit: expand cannot fail.
    let _ = hk.expand(&info, &mut key);
    match Aes256Gcm::new_from_slice(&key) {
        Ok(cipher) => cipher,
        // A 32-byte slice is always a valid AES-256 key.
        Err(_) => unreachable!("AES-256 key is 32 bytes"),
    }
}

fn nonce(epoch: u32, counter: u64) -> Nonce<aes_gcm::aead::consts::U12> {
    let mut n = [0u8; 12];
    n[..4].copy_from_slice(&epoch.to_be_bytes());
    n[4..].copy_from_slice(&counter.to_be_bytes());
    Nonce::from(n)
}

fn aad(session: SessionId, dir: Direction) -> [u8; 19] {
    let mut a = [0u8; 19];
    a[..16].copy_from_slice(&session.to_be_bytes());
    a[16..].copy_from_slice(dir.label());
    a
}

/// The sending half of one direction.
pub struct Sealer {
    material: SessionMaterial,
    dir: Direction,
    session: SessionId,
    epoch: u32,
    counter: u64,
    rekey_after: u64,
    cipher: Aes256Gcm,
    sealed: u64,
}

impl Sealer {
    /// A sealer for `dir` of `session`, rekeying after `rekey_after` messages (at least 1).
    pub fn new(
        material: &SessionMaterial,
        session: SessionId,
        dir: Direction,
        rekey_after: u64,
    ) -> Self {
        Self {
            material: material.clone(),
            dir,
            session,
            epoch: 0,
            counter: 0,
            rekey_after: rekey_after.max(1),
            cipher: derive_key(material, dir, 0),
            sealed: 0,
        }
    }

    /// Encrypts `plaintext` into an envelope.
    pub fn seal(&mut self, plaintext: &[u8]) -> Result<Sealed, EnvelopeError> {
        if self.counter >= self.rekey_after {
            self.epoch = self.epoch.checked_add(1).ok_or(EnvelopeError::Exhausted)?;
            self.counter = 0;
            self.cipher = derive_key(&self.material, self.dir, self.epoch);
        }
        let counter = self.counter;
        self.counter += 1;
        let aad = aad(self.session, self.dir);
        let ciphertext = self
            .cipher
            .encrypt(
                &nonce(self.epoch, counter),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| EnvelopeError::Exhausted)?;
        self.sealed += 1;
        Ok(Sealed {
            epoch: self.epoch,
            counter,
            ciphertext,
        })
    }

    /// The current key epoch.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }
}

/// Replay state of one epoch.
#[derive(Debug, Clone, Default)]
struct ReplayWindow {
    /// Highest counter accepted + 1 (0: none yet).
    next: u64,
    /// Bit i set: counter `next - 1 - i` was accepted.
    seen: u64,
}

impl ReplayWindow {
    fn check(&self, counter: u64) -> bool {
        if counter >= self.next {
            return true;
        }
        let age = self.next - 1 - counter;
        age < WINDOW && self.seen & (1 << age) == 0
    }

    fn accept(&mut self, counter: u64) {
        if counter >= self.next {
            let shift = counter + 1 - self.next;
            self.seen = if shift >= WINDOW {
                0
            } else {
                self.seen << shift
            };
            self.seen |= 1;
            self.next = counter + 1;
        } else {
            self.seen |= 1 << (self.next - 1 - counter);
        }
    }
}

struct EpochKey {
    epoch: u32,
    cipher: Aes256Gcm,
    window: ReplayWindow,
}

/// The receiving half of one direction.
pub struct Opener {
    material: SessionMaterial,
    dir: Direction,
    session: SessionId,
    current: EpochKey,
    previous: Option<EpochKey>,
}

impl Opener {
    /// An opener for `dir` of `session`.
    pub fn new(material: &SessionMaterial, session: SessionId, dir: Direction) -> Self {
        Self {
            material: material.clone(),
            dir,
            session,
            current: EpochKey {
                epoch: 0,
                cipher: derive_key(material, dir, 0),
                window: ReplayWindow::default(),
            },
            previous: None,
        }
    }

    /// Authenticates and decrypts an envelope; refuses tampered, replayed and out-of-epoch input.
    /// State changes only when the envelope is genuine.
    pub fn open(&mut self, sealed: &Sealed) -> Result<Vec<u8>, EnvelopeError> {
        let aad = aad(self.session, self.dir);
        let current = self.current.epoch;
        if sealed.epoch == current
            || self
                .previous
                .as_ref()
                .is_some_and(|p| p.epoch == sealed.epoch)
        {
            let slot = if sealed.epoch == current {
                &mut self.current
            } else {
                match self.previous.as_mut() {
                    Some(p) => p,
                    None => {
                        return Err(EnvelopeError::BadEpoch {
                            got: sealed.epoch,
                            expected: current,
                        });
                    }
                }
            };
            if !slot.window.check(sealed.counter) {
                return Err(EnvelopeError::Replayed {
                    epoch: sealed.epoch,
                    counter: sealed.counter,
                });
            }
            let plain = slot
                .cipher
                .decrypt(
                    &nonce(sealed.epoch, sealed.counter),
                    Payload {
                        msg: &sealed.ciphertext,
                        aad: &aad,
                    },
                )
                .map_err(|_| EnvelopeError::Tampered)?;
            slot.window.accept(sealed.counter);
            return Ok(plain);
        }
        if current.checked_add(1) == Some(sealed.epoch) {
            let mut next = EpochKey {
                epoch: sealed.epoch,
                cipher: derive_key(&self.material, self.dir, sealed.epoch),
                window: ReplayWindow::default(),
            };
            let plain = next
                .cipher
                .decrypt(
                    &nonce(sealed.epoch, sealed.counter),
                    Payload {
                        msg: &sealed.ciphertext,
                        aad: &aad,
                    },
                )
                .map_err(|_| EnvelopeError::Tampered)?;
            next.window.accept(sealed.counter);
            self.previous = Some(std::mem::replace(&mut self.current, next));
            return Ok(plain);
        }
        Err(EnvelopeError::BadEpoch {
            got: sealed.epoch,
            expected: current,
        })
    }

    /// The newest epoch seen.
    pub fn epoch(&self) -> u32 {
        self.current.epoch
    }
}

/// Both directions of one session, from one side's point of view.
pub struct SessionCrypto {
    /// Seals what this side sends.
    pub sealer: Sealer,
    /// Opens what this side receives.
    pub opener: Opener,
    /// Signs or verifies server blobs.
    pub signer: Signer,
}

impl SessionCrypto {
    /// The server's side of a session.
    pub fn server(material: &SessionMaterial, session: SessionId, rekey_after: u64) -> Self {
        Self {
            sealer: Sealer::new(material, session, Direction::ServerToClient, rekey_after),
            opener: Opener::new(material, session, Direction::ClientToServer),
            signer: Signer::new(material),
        }
    }

    /// The client's side of a session.
    pub fn client(material: &SessionMaterial, session: SessionId, rekey_after: u64) -> Self {
        Self {
            sealer: Sealer::new(material, session, Direction::ClientToServer, rekey_after),
            opener: Opener::new(material, session, Direction::ServerToClient),
            signer: Signer::new(material),
        }
    }
}

/// Detached HMAC-SHA256 signatures over server-signed blobs.
#[derive(Clone)]
pub struct Signer {
    key: [u8; 32],
}

/// An HMAC-SHA256 tag.
pub type Signature = [u8; 32];

impl Signer {
    /// The signing key of a session, derived from its material.
    pub fn new(material: &SessionMaterial) -> Self {
        let hk = Hkdf::<Sha256>::new(Some(SALT), &material.0);
        let mut key = [0u8; 32];
        let _ = hk.expand(b"sign/server-blobs", &mut key);
        Self { key }
    }

    fn mac(&self) -> Hmac<Sha256> {
        match <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(&self.key) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC accepts keys of any length"),
        }
    }

    /// Signs `blob` under a `purpose` label (so a manifest signature cannot pass as a config one).
    pub fn sign(&self, purpose: &str, blob: &[u8]) -> Signature {
        let mut mac = self.mac();
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(blob);
        mac.finalize().into_bytes().into()
    }

    /// Verifies in constant time.
    pub fn verify(&self, purpose: &str, blob: &[u8], signature: &Signature) -> bool {
        let mut mac = self.mac();
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(blob);
        mac.verify_slice(signature).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT_REKEY_AFTER: u64 = 1 << 20;

    fn pair(rekey: u64) -> (SessionCrypto, SessionCrypto) {
        let m = SessionMaterial([7; 32]);
        (
            SessionCrypto::client(&m, 42, rekey),
            SessionCrypto::server(&m, 42, rekey),
        )
    }

    #[test]
    fn round_trip_both_directions() {
        let (mut c, mut s) = pair(DEFAULT_REKEY_AFTER);
        let e = c.sealer.seal(b"buy a pet").unwrap();
        assert_eq!(s.opener.open(&e).unwrap(), b"buy a pet");
        let e = s.sealer.seal(b"ok").unwrap();
        assert_eq!(c.opener.open(&e).unwrap(), b"ok");
    }

    #[test]
    fn directions_do_not_cross() {
        let (mut c, _) = pair(DEFAULT_REKEY_AFTER);
        let e = c.sealer.seal(b"x").unwrap();
        // The client's own opener reads server-to-client only.
        assert_eq!(c.opener.open(&e), Err(EnvelopeError::Tampered));
    }

    #[test]
    fn tampered_ciphertext_is_refused_and_changes_nothing() {
        let (mut c, mut s) = pair(DEFAULT_REKEY_AFTER);
        let mut e = c.sealer.seal(b"x").unwrap();
        e.ciphertext[0] ^= 1;
        assert_eq!(s.opener.open(&e), Err(EnvelopeError::Tampered));
        e.ciphertext[0] ^= 1;
        assert_eq!(s.opener.open(&e).unwrap(), b"x");
    }

    #[test]
    fn replays_are_refused_reordering_within_window_is_not() {
        let (mut c, mut s) = pair(DEFAULT_REKEY_AFTER);
        let e: Vec<_> = (0..5).map(|_| c.sealer.seal(b"m").unwrap()).collect();
        s.opener.open(&e[0]).unwrap();
        s.opener.open(&e[3]).unwrap();
        s.opener.open(&e[1]).unwrap();
        assert!(matches!(
            s.opener.open(&e[3]),
            Err(EnvelopeError::Replayed { .. })
        ));
        assert!(matches!(
            s.opener.open(&e[0]),
            Err(EnvelopeError::Replayed { .. })
        ));
        s.opener.open(&e[2]).unwrap();
        s.opener.open(&e[4]).unwrap();
    }

    #[test]
    fn counters_older_than_the_window_are_refused() {
        let (mut c, mut s) = pair(DEFAULT_REKEY_AFTER);
        let old = c.sealer.seal(b"old").unwrap();
        for _ in 0..WINDOW + 1 {
            let e = c.sealer.seal(b"n").unwrap();
            s.opener.open(&e).unwrap();
        }
        assert!(matches!(
            s.opener.open(&old),
            Err(EnvelopeError::Replayed { .. })
        ));
    }

    #[test]
    fn rekeys_after_the_configured_count() {
        let (mut c, mut s) = pair(3);
        let mut epochs = Vec::new();
        for i in 0..10u8 {
            let e = c.sealer.seal(&[i]).unwrap();
            epochs.push(e.epoch);
            assert_eq!(s.opener.open(&e).unwrap(), vec![i]);
        }
        assert_eq!(epochs, vec![0, 0, 0, 1, 1, 1, 2, 2, 2, 3]);
        assert_eq!(s.opener.epoch(), 3);
        // A skipped epoch is refused.
        let forged = Sealed {
            epoch: 9,
            counter: 0,
            ciphertext: vec![0; 32],
        };
        assert!(matches!(
            s.opener.open(&forged),
            Err(EnvelopeError::BadEpoch { .. })
        ));
    }

    #[test]
    fn other_sessions_cannot_open() {
        let m = SessionMaterial([7; 32]);
        let mut c = SessionCrypto::client(&m, 1, 100);
        let mut s = SessionCrypto::server(&m, 2, 100);
        let e = c.sealer.seal(b"x").unwrap();
        assert_eq!(s.opener.open(&e), Err(EnvelopeError::Tampered));
    }

    #[test]
    fn signatures_verify_and_detect_tampering() {
        let m = SessionMaterial([3; 32]);
        let s = Signer::new(&m);
        let sig = s.sign("manifest", b"blob");
        assert!(s.verify("manifest", b"blob", &sig));
        assert!(!s.verify("manifest", b"blob!", &sig));
        assert!(!s.verify("config", b"blob", &sig));
        assert!(!Signer::new(&SessionMaterial([4; 32])).verify("manifest", b"blob", &sig));
    }
}
