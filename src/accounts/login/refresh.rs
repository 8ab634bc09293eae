//! Refresh tokens: what a client keeps to log in again without the password (after a lost
//! connection). A token names the account, its player id, when it expires and a tag of the
//! password hash at issue, under an HMAC-SHA256 with the server's `login.key`. It stops working
//! when it expires, when the password changes (the tag no longer matches) or when the account is
//! disabled; the service checks the latter two against the store.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::accounts::Account;

type HmacSha256 = Hmac<Sha256>;

/// What a refresh token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The account's key (its lowercased username).
    pub account: String,
    /// Its player id.
    pub player_id: u64,
    /// Expiry, Unix ms.
    pub expires_ms: u64,
    /// [`password_tag`] of the password hash at issue.
    pub password_tag: String,
}

/// Why a refresh token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefreshError {
    /// Not a token this server made (or damaged).
    #[error("the refresh token is not valid")]
    Invalid,
    /// Past its expiry.
    #[error("the refresh token has expired: log in with your password")]
    Expired,
}

/// The key refresh tokens are signed with (`<keys>/login.key`).
#[derive(Clone)]
pub struct RefreshKey([u8; 32]);

impl RefreshKey {
    /// From the key file's bytes.
    pub fn new(key: [u8; 32]) -> Self {
        Self(key)
    }

    fn mac(&self, payload: &[u8]) -> Option<HmacSha256> {
        let mut mac = <HmacSha256 as hmac::KeyInit>::new_from_slice(&self.0).ok()?;
        mac.update(payload);
        Some(mac)
    }

    /// A token for `account`, expiring at `expires_ms`.
    pub fn issue(&self, account: &Account, expires_ms: u64) -> String {
        let claims = Claims {
            account: account.username.to_ascii_lowercase(),
            player_id: account.player_id,
            expires_ms,
            password_tag: password_tag(&account.password_hash),
        };
        // Plain fields always serialise.
        let payload = serde_json::to_vec(&claims).unwrap_or_default();
        let tag = self
            .mac(&payload)
            .map(|m| hex::encode(m.finalize().into_bytes()))
            .unwrap_or_default();
        format!("{}.{tag}", hex::encode(payload))
    }

    /// The claims of a token this key signed, if it has not expired at `now_ms`.
    pub fn check(&self, token: &str, now_ms: u64) -> Result<Claims, RefreshError> {
        let (payload, tag) = token.split_once('.').ok_or(RefreshError::Invalid)?;
        let payload = hex::decode(payload).map_err(|_| RefreshError::Invalid)?;
        let tag = hex::decode(tag).map_err(|_| RefreshError::Invalid)?;
        self.mac(&payload)
            .ok_or(RefreshError::Invalid)?
            .verify_slice(&tag)
            .map_err(|_| RefreshError::Invalid)?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| RefreshError::Invalid)?;
        if claims.expires_ms <= now_ms {
            return Err(RefreshError::Expired);
        }
        Ok(claims)
    }
}

/// A short tag of a password hash: a refresh token made before a password change no longer
/// matches.
pub fn password_tag(password_hash: &str) -> String {
    hex::encode(&Sha256::digest(password_hash.as_bytes())[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_checks_until_it_expires_and_only_under_its_key() {
        let account = Account {
            player_id: 10_000_000_004,
            username: "Ann".into(),
            password_hash: "$argon2id$x".into(),
            disabled: false,
            created_ms: 1,
        };
        let key = RefreshKey::new([3; 32]);
        let token = key.issue(&account, 1_000);
        let claims = key.check(&token, 999).unwrap();
        assert_eq!(claims.account, "ann");
        assert_eq!(claims.player_id, account.player_id);
        assert_eq!(claims.password_tag, password_tag("$argon2id$x"));
        assert_eq!(key.check(&token, 1_000), Err(RefreshError::Expired));
        assert_eq!(
            RefreshKey::new([4; 32]).check(&token, 0),
            Err(RefreshError::Invalid)
        );
        // A changed claim breaks the tag.
        let (payload, tag) = token.split_once('.').unwrap();
        let forged = String::from_utf8(hex::decode(payload).unwrap())
            .unwrap()
            .replace("1000", "9999");
        assert_eq!(
            key.check(&format!("{}.{tag}", hex::encode(forged)), 0),
            Err(RefreshError::Invalid)
        );
        for junk in ["", ".", "zz.zz", "00.00"] {
            assert_eq!(key.check(junk, 0), Err(RefreshError::Invalid), "{junk}");
        }
    }
}
