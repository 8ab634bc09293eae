//! Profiles at rest: compressed, then encrypted with AES-256-GCM under the data key
//! (`<data>/keys/data.key`), with the player id in the associated data so that a blob moved to
//! another player's row fails authentication.
//!
//! Blob layout: `"BQP2"` ‖ codec (1 byte) ‖ key id (8: the data key's fingerprint, the first
//! bytes of its sha256) ‖ nonce (12, random) ‖ ciphertext+tag; the key id is authenticated with
//! the player id. So a blob names the key it needs, and one sealed with another key is refused
//! naming both. Blobs of the first layout (`"BQP1"`, no key id) still open.
//!
//! Compression: zstd level 3 is the default. On our JSON profiles it compresses about twice as
//! well as lz4 at a speed that is far below the cost of the durable commit around it (see the
//! `datastore` bench: `compress_zstd` / `compress_lz4`); lz4 is kept readable for stores written
//! with it.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};

const MAGIC_V1: &[u8; 4] = b"BQP1";
const MAGIC: &[u8; 4] = b"BQP2";

thread_local! {
    /// One zstd context per thread: creating a context costs more than compressing a profile.
    static ZSTD: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        std::cell::RefCell::new(zstd::bulk::Compressor::new(3).ok());
    static UNZSTD: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        std::cell::RefCell::new(zstd::bulk::Decompressor::new().ok());
}

/// Compression codec of a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// zstd, level 3.
    Zstd,
    /// lz4 (block format, size-prepended).
    Lz4,
}

impl Codec {
    fn byte(self) -> u8 {
        match self {
            Codec::Zstd => 1,
            Codec::Lz4 => 2,
        }
    }

    /// Compresses.
    pub fn compress(self, plain: &[u8]) -> Result<Vec<u8>, String> {
        match self {
            Codec::Zstd => ZSTD.with(|z| match z.borrow_mut().as_mut() {
                Some(c) => c.compress(plain).map_err(|e| e.to_string()),
                None => zstd::bulk::compress(plain, 3).map_err(|e| e.to_string()),
            }),
            Codec::Lz4 => Ok(lz4_flex::compress_prepend_size(plain)),
        }
    }

    /// Decompresses, refusing output over `limit` bytes.
    pub fn decompress(self, packed: &[u8], limit: usize) -> Result<Vec<u8>, String> {
        match self {
            Codec::Zstd => UNZSTD.with(|z| match z.borrow_mut().as_mut() {
                Some(d) => d.decompress(packed, limit).map_err(|e| e.to_string()),
                None => zstd::bulk::decompress(packed, limit).map_err(|e| e.to_string()),
            }),
            Codec::Lz4 => {
                if packed.len() >= 4 {
                    let claimed =
                        u32::from_le_bytes([packed[0], packed[1], packed[2], packed[3]]) as usize;
                    if claimed > limit {
                        return Err(format!("claims {claimed} bytes, over the limit"));
                    }
                }
                lz4_flex::decompress_size_prepended(packed).map_err(|e| e.to_string())
            }
        }
    }
}

/// Why a blob could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Not a profile blob.
    #[error("not a profile blob (bad header)")]
    Header,
    /// Sealed with another data key (the blob names it).
    #[error(
        "sealed with data key {blob}, but this server's data key is {ours}: every server on one \
         store needs the same key files"
    )]
    OtherKey {
        /// The key id the blob names.
        blob: String,
        /// This server's.
        ours: String,
    },
    /// Authentication failed: damaged, from another player's row, or another data key.
    #[error(
        "authentication failed: the blob is damaged, belongs to another player, or was written with another data key"
    )]
    Auth,
    /// Decompression failed.
    #[error("decompression failed: {0}")]
    Decompress(String),
    /// Sealing failed.
    #[error("cannot seal: {0}")]
    Seal(String),
}

fn aad(player: u64) -> [u8; 30] {
    let mut a = [0u8; 30];
    a[..22].copy_from_slice(b"bloxquarium/profile/v1");
    a[22..].copy_from_slice(&player.to_be_bytes());
    a
}

fn aad_v2(player: u64, key_id: &[u8; 8]) -> [u8; 38] {
    let mut a = [0u8; 38];
    a[..22].copy_from_slice(b"bloxquarium/profile/v2");
    a[22..30].copy_from_slice(&player.to_be_bytes());
    a[30..].copy_from_slice(key_id);
    a
}

/// Seals and opens profile blobs with one data key.
#[derive(Clone)]
pub struct AtRest {
    cipher: Aes256Gcm,
    codec: Codec,
    /// The data key's id ([`crate::keys::key_id`]).
    key_id: [u8; 8],
}

impl AtRest {
    /// With the 32-byte data key and the codec to write.
    pub fn new(key: &[u8; 32], codec: Codec) -> Self {
        let cipher = match Aes256Gcm::new_from_slice(key) {
            Ok(c) => c,
            Err(_) => unreachable!("a 32-byte key is a valid AES-256 key"),
        };
        Self {
            cipher,
            codec,
            key_id: crate::keys::key_id(key),
        }
    }

    /// Compresses and encrypts `plain` for `player`.
    pub fn seal(&self, player: u64, plain: &[u8]) -> Result<Vec<u8>, SealError> {
        let packed = self.codec.compress(plain).map_err(SealError::Seal)?;
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|e| SealError::Seal(e.to_string()))?;
        let ct = self
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &packed,
                    aad: &aad_v2(player, &self.key_id),
                },
            )
            .map_err(|_| SealError::Seal("encryption failed".into()))?;
        let mut out = Vec::with_capacity(4 + 1 + 8 + 12 + ct.len());
        out.extend_from_slice(MAGIC);
        out.push(self.codec.byte());
        out.extend_from_slice(&self.key_id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Authenticates, decrypts and decompresses a blob of `player`.
    pub fn open(&self, player: u64, blob: &[u8], limit: usize) -> Result<Vec<u8>, SealError> {
        let v2 = blob.get(..4) == Some(MAGIC.as_slice());
        let header = if v2 { 4 + 1 + 8 + 12 } else { 4 + 1 + 12 };
        if blob.len() < header + 16 || !(v2 || blob.get(..4) == Some(MAGIC_V1.as_slice())) {
            return Err(SealError::Header);
        }
        let codec = match blob[4] {
            1 => Codec::Zstd,
            2 => Codec::Lz4,
            _ => return Err(SealError::Header),
        };
        let named: Option<[u8; 8]> = v2.then(|| {
            let mut id = [0u8; 8];
            id.copy_from_slice(&blob[5..13]);
            id
        });
        if let Some(id) = named
            && id != self.key_id
        {
            return Err(SealError::OtherKey {
                blob: hex::encode(id),
                ours: hex::encode(self.key_id),
            });
        }
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(&blob[header - 12..header]);
        let aad: Vec<u8> = match &named {
            Some(id) => aad_v2(player, id).to_vec(),
            None => aad(player).to_vec(),
        };
        let packed = self
            .cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &blob[header..],
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Auth)?;
        codec
            .decompress(&packed, limit)
            .map_err(SealError::Decompress)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A blob of the first layout (no key id) still opens.
    #[test]
    fn blobs_of_the_first_layout_still_open() {
        let r = AtRest::new(&[1; 32], Codec::Zstd);
        let packed = Codec::Zstd.compress(b"old").unwrap();
        let nonce = [3u8; 12];
        let ct = r
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &packed,
                    aad: &aad(7),
                },
            )
            .unwrap();
        let mut blob = MAGIC_V1.to_vec();
        blob.push(1);
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ct);
        assert_eq!(r.open(7, &blob, 1 << 20).unwrap(), b"old");
        assert_eq!(r.open(8, &blob, 1 << 20), Err(SealError::Auth));
    }

    #[test]
    fn round_trip_both_codecs() {
        for codec in [Codec::Zstd, Codec::Lz4] {
            let r = AtRest::new(&[1; 32], codec);
            let blob = r.seal(7, b"{\"points\": 10}").unwrap();
            assert_eq!(r.open(7, &blob, 1 << 20).unwrap(), b"{\"points\": 10}");
        }
    }

    #[test]
    fn moved_damaged_or_foreign_blobs_are_refused() {
        let r = AtRest::new(&[1; 32], Codec::Zstd);
        let mut blob = r.seal(7, b"data").unwrap();
        assert_eq!(r.open(8, &blob, 1 << 20), Err(SealError::Auth));
        // Another key: refused by the key id the blob names, before any decryption.
        let other = AtRest::new(&[2; 32], Codec::Zstd).open(7, &blob, 1 << 20);
        assert_eq!(
            other,
            Err(SealError::OtherKey {
                blob: crate::keys::fingerprint(&[1; 32]),
                ours: crate::keys::fingerprint(&[2; 32]),
            })
        );
        // The key id is authenticated: a blob relabelled with this key's id does not open.
        let mut relabelled = blob.clone();
        relabelled[5..13].copy_from_slice(&AtRest::new(&[2; 32], Codec::Zstd).key_id);
        assert_eq!(
            AtRest::new(&[2; 32], Codec::Zstd).open(7, &relabelled, 1 << 20),
            Err(SealError::Auth)
        );
        let last = blob.len() - 1;
        blob[last] ^= 1;
        assert_eq!(r.open(7, &blob, 1 << 20), Err(SealError::Auth));
        assert_eq!(r.open(7, b"nope", 1 << 20), Err(SealError::Header));
    }
}
