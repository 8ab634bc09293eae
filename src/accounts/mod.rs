//! Player accounts: register, log in, change password, disable. Plain functions over the data
//! store's [`Backend`] (the `accounts` table), so accounts live wherever profiles do.
//!
//! - **Usernames**: 3 to 20 characters, ASCII letters, digits and `_`, starting with a letter;
//!   unique regardless of case ("Nemo" and "nemo" are one account), kept as registered for
//!   display.
//! - **Passwords**: 8 to 256 characters; stored only as an argon2id hash (PHC string) with a
//!   random salt, under the `login.argon2*` parameters in force when it was set. A hash made under
//!   other parameters still verifies.
//! - **Player ids** are assigned at registration, from [`FIRST_ACCOUNT_PLAYER`] upward, and never
//!   change or get reused.
//! - A wrong username and a wrong password get one and the same error, and take as long: for
//!   an unknown name the password is hashed once under the current parameters, as a check of a
//!   known one would.
//!
//! Hashing takes tens of milliseconds by design: callers run these functions off the tick (on a
//! task pool), never in a system.
//!
//! On the server, [`AccountsServerPlugin`] answers the admin's `SetAccountDisabled`: a disabled
//! account's player is kicked, and refused at login.
//!
//! The HTTPS login service that calls these is [`login`].

pub mod login;
mod server;

pub use login::{LoginOptions, LoginServicePlugin, OpenedLogin};
pub use server::AccountsServerPlugin;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::datastore::{Backend, BackendError, ReadOps, Table};

/// The first player id registration assigns. Ids below it are left to tokens made by hand
/// (`bloxquarium token --player ID`) and load-test bots (from 1,000,000,000).
pub const FIRST_ACCOUNT_PLAYER: u64 = 10_000_000_000;

/// `accounts`-table key of the next player id (the table's other keys are lowercased usernames,
/// which cannot start with `#`).
const NEXT_PLAYER: &[u8] = b"#next_player";

/// Username length limits, characters.
pub const USERNAME_LEN: std::ops::RangeInclusive<usize> = 3..=20;
/// Password length limits, characters.
pub const PASSWORD_LEN: std::ops::RangeInclusive<usize> = 8..=256;

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The username breaks the rules.
    #[error(
        "usernames are 3 to 20 characters: letters, digits and _, starting with a letter ({0})"
    )]
    BadUsername(String),
    /// The password breaks the rules.
    #[error("passwords are 8 to 256 characters ({0})")]
    BadPassword(String),
    /// The name is taken (in any case).
    #[error("that username is taken")]
    Taken,
    /// Wrong username or password: one message for both.
    #[error("wrong username or password")]
    WrongCredentials,
    /// The account is disabled.
    #[error("this account is disabled")]
    Disabled,
    /// No such account (admin operations only: logins say [`Self::WrongCredentials`]).
    #[error("no account named {0}")]
    NoSuchAccount(String),
    /// The `login.argon2*` parameters are out of argon2's range.
    #[error("login.argon2 parameters: {0}")]
    Parameters(String),
    /// Hashing failed.
    #[error("password hashing: {0}")]
    Hash(String),
    /// A stored record cannot be read.
    #[error("account record {0} is damaged: {1}")]
    Damaged(String, String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] BackendError),
}

/// An account as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The player id it plays as.
    pub player_id: u64,
    /// The username as registered.
    pub username: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Refused at login.
    pub disabled: bool,
    /// Registered at, Unix ms.
    pub created_ms: u64,
}

/// argon2id cost parameters (`login.argon2MemoryKiB`, `login.argon2Iterations`,
/// `login.argon2Parallelism`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashParams {
    /// Memory, KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl HashParams {
    /// From the `login.*` keys.
    pub fn from_config(config: &Config) -> Result<Self, crate::config::ConfigError> {
        let get = |key: &str| {
            config
                .get::<i64>(key)
                .map(|v| v.clamp(1, i64::from(u32::MAX)) as u32)
        };
        Ok(Self {
            memory_kib: get("login.argon2MemoryKiB")?,
            iterations: get("login.argon2Iterations")?,
            parallelism: get("login.argon2Parallelism")?,
        })
    }

    fn hasher(&self) -> Result<Argon2<'static>, AccountError> {
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| AccountError::Parameters(e.to_string()))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }

    /// An argon2id PHC string of `password` with a fresh salt.
    pub fn hash(&self, password: &str) -> Result<String, AccountError> {
        let salt = SaltString::generate(&mut OsRng);
        self.hasher()?
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| AccountError::Hash(e.to_string()))
    }
}

/// Whether `password` matches the PHC string `hash` (under the parameters the string names).
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// The account key of `username` (its lowercase form), or why the name is not allowed.
pub fn username_key(username: &str) -> Result<String, AccountError> {
    let chars = username.chars().count();
    if !USERNAME_LEN.contains(&chars) {
        return Err(AccountError::BadUsername(format!("{chars} characters")));
    }
    if !username.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(AccountError::BadUsername(
            "it must start with a letter".into(),
        ));
    }
    if let Some(c) = username
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
    {
        return Err(AccountError::BadUsername(format!("{c:?} is not allowed")));
    }
    Ok(username.to_ascii_lowercase())
}

fn check_password(password: &str) -> Result<(), AccountError> {
    let chars = password.chars().count();
    if PASSWORD_LEN.contains(&chars) {
        Ok(())
    } else {
        Err(AccountError::BadPassword(format!("{chars} characters")))
    }
}

fn decode(key: &str, bytes: &[u8]) -> Result<Account, AccountError> {
    serde_json::from_slice(bytes).map_err(|e| AccountError::Damaged(key.into(), e.to_string()))
}

fn encode(account: &Account) -> Vec<u8> {
    // A struct of plain fields always serialises.
    serde_json::to_vec(account).unwrap_or_default()
}

/// Inside a store transaction: removes every account that plays as `player` (an erasure of the
/// player: see `datastore erase`); how many. An unreadable account row is left alone.
pub fn erase_in(
    ops: &mut dyn crate::datastore::WriteOps,
    player: u64,
) -> Result<usize, BackendError> {
    let mut removed = 0;
    for (key, value) in ops.scan(Table::Accounts, &[])? {
        if key.as_slice() == NEXT_PLAYER {
            continue;
        }
        if serde_json::from_slice::<Account>(&value).is_ok_and(|a| a.player_id == player) {
            ops.delete(Table::Accounts, &key)?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// The account named `username` (any case), if there is one.
pub fn find(backend: &impl Backend, username: &str) -> Result<Option<Account>, AccountError> {
    let key = username_key(username)?;
    backend.read(|ops| stored(ops, &key))
}

/// The account stored under `key` (a [`username_key`]), in a transaction.
fn stored(ops: &dyn ReadOps, key: &str) -> Result<Option<Account>, AccountError> {
    ops.get(Table::Accounts, key.as_bytes())?
        .map(|v| decode(key, &v))
        .transpose()
}

/// Registers `username` with `password`: a new account with the next player id.
pub fn register(
    backend: &impl Backend,
    params: &HashParams,
    username: &str,
    password: &str,
    now_ms: u64,
) -> Result<Account, AccountError> {
    let key = username_key(username)?;
    check_password(password)?;
    // Hashed before the transaction: it is the slow part, and the transaction stays short.
    let password_hash = params.hash(password)?;
    backend.write(true, |ops| {
        if ops.get(Table::Accounts, key.as_bytes())?.is_some() {
            return Err(AccountError::Taken);
        }
        let player_id = ops
            .get(Table::Accounts, NEXT_PLAYER)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map_or(FIRST_ACCOUNT_PLAYER, u64::from_be_bytes);
        ops.put(Table::Accounts, NEXT_PLAYER, &(player_id + 1).to_be_bytes())?;
        let account = Account {
            player_id,
            username: username.to_string(),
            password_hash: password_hash.clone(),
            disabled: false,
            created_ms: now_ms,
        };
        ops.put(Table::Accounts, key.as_bytes(), &encode(&account))?;
        Ok(account)
    })
}

/// The account, if `username` and `password` match an enabled one.
pub fn log_in(
    backend: &impl Backend,
    params: &HashParams,
    username: &str,
    password: &str,
) -> Result<Account, AccountError> {
    let found = match find(backend, username) {
        Ok(found) => found,
        // Not a name anyone could have registered: the same answer as a wrong password.
        Err(AccountError::BadUsername(_)) => None,
        Err(e) => return Err(e),
    };
    let Some(account) = found else {
        // As long as checking a known name's password: one hash under the same parameters.
        params.hash(password)?;
        return Err(AccountError::WrongCredentials);
    };
    if !verify_password(&account.password_hash, password) {
        return Err(AccountError::WrongCredentials);
    }
    if account.disabled {
        return Err(AccountError::Disabled);
    }
    Ok(account)
}

/// Changes the password of `username`, given the current one.
pub fn change_password(
    backend: &impl Backend,
    params: &HashParams,
    username: &str,
    old: &str,
    new: &str,
) -> Result<(), AccountError> {
    check_password(new)?;
    let account = log_in(backend, params, username, old)?;
    let password_hash = params.hash(new)?;
    update(backend, username, |a| {
        // A change made meanwhile (another change, a disable) wins over this one.
        if a.password_hash != account.password_hash {
            return Err(AccountError::WrongCredentials);
        }
        a.password_hash = password_hash.clone();
        Ok(())
    })
    .map(|_| ())
}

/// Disables or enables the account of `username` (an admin's act).
pub fn set_disabled(
    backend: &impl Backend,
    username: &str,
    disabled: bool,
) -> Result<Account, AccountError> {
    update(backend, username, |a| {
        a.disabled = disabled;
        Ok(())
    })
}

fn update(
    backend: &impl Backend,
    username: &str,
    mut change: impl FnMut(&mut Account) -> Result<(), AccountError>,
) -> Result<Account, AccountError> {
    let key = username_key(username)?;
    backend.write(true, |ops| {
        let Some(mut account) = stored(ops, &key)? else {
            return Err(AccountError::NoSuchAccount(username.to_string()));
        };
        change(&mut account)?;
        ops.put(Table::Accounts, key.as_bytes(), &encode(&account))?;
        Ok(account)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datastore::RedbBackend;

    /// Cheap parameters: the tests check behaviour, not cost.
    const CHEAP: HashParams = HashParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    fn store(tag: &str) -> (RedbBackend, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("bq-accounts-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let backend = RedbBackend::open(&dir.join("store.redb")).expect("a store");
        (backend, dir)
    }

    #[test]
    fn username_rules() {
        assert_eq!(username_key("Nemo_2").unwrap(), "nemo_2");
        for bad in [
            "ab",
            "a".repeat(21).as_str(),
            "2fast",
            "_x1",
            "no space",
            "émile",
            "a-b",
        ] {
            assert!(
                matches!(username_key(bad), Err(AccountError::BadUsername(_))),
                "{bad} was allowed"
            );
        }
        assert!(username_key("abc").is_ok());
        assert!(username_key(&"a".repeat(20)).is_ok());
    }

    #[test]
    fn hashes_are_argon2id_salted_and_verify() {
        let a = CHEAP.hash("correct horse").unwrap();
        let b = CHEAP.hash("correct horse").unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{a}");
        assert_ne!(a, b, "a fresh salt each time");
        assert!(verify_password(&a, "correct horse"));
        assert!(!verify_password(&a, "correct horsf"));
        assert!(!verify_password("not a phc string", "correct horse"));
        // Parameters out of argon2's range are refused with the keys' name.
        let e = HashParams {
            memory_kib: 1,
            ..CHEAP
        }
        .hash("x")
        .unwrap_err();
        assert!(e.to_string().starts_with("login.argon2 parameters"), "{e}");
    }

    #[test]
    fn the_login_keys_set_the_hash_parameters() {
        let defaults = HashParams::from_config(&crate::config::defaults_for_tests()).unwrap();
        assert_eq!(
            defaults,
            HashParams {
                memory_kib: 19_456,
                iterations: 2,
                parallelism: 1
            }
        );
        use crate::protocol::ConfigValue::Int;
        let changed = crate::config::changed_for_tests(
            &crate::config::GameKeys::NONE,
            &[
                ("login.argon2MemoryKiB", Int(256)),
                ("login.argon2Iterations", Int(3)),
                ("login.argon2Parallelism", Int(2)),
            ],
        );
        let params = HashParams::from_config(&changed).unwrap();
        assert!(
            params
                .hash("pw")
                .unwrap()
                .starts_with("$argon2id$v=19$m=256,t=3,p=2$")
        );
    }

    #[test]
    fn register_log_in_change_and_disable() {
        let (store, dir) = store("flow");
        let ann = register(&store, &CHEAP, "Ann", "sea-shells-1", 5).unwrap();
        assert_eq!(ann.player_id, FIRST_ACCOUNT_PLAYER);
        assert_eq!(ann.username, "Ann");
        let bob = register(&store, &CHEAP, "bob", "sea-shells-2", 6).unwrap();
        assert_eq!(bob.player_id, FIRST_ACCOUNT_PLAYER + 1);
        // Names are unique regardless of case; the rules hold at registration.
        assert!(matches!(
            register(&store, &CHEAP, "ANN", "whatever-1", 7),
            Err(AccountError::Taken)
        ));
        assert!(matches!(
            register(&store, &CHEAP, "carl", "short", 7),
            Err(AccountError::BadPassword(_))
        ));
        // Log in in any case; a wrong password and an unknown name get the same answer.
        assert_eq!(
            log_in(&store, &CHEAP, "aNN", "sea-shells-1")
                .unwrap()
                .player_id,
            ann.player_id
        );
        let wrong = log_in(&store, &CHEAP, "ann", "sea-shells-2").unwrap_err();
        let unknown = log_in(&store, &CHEAP, "zed", "sea-shells-1").unwrap_err();
        assert_eq!(wrong.to_string(), unknown.to_string());
        assert_eq!(wrong.to_string(), "wrong username or password");
        // A new password replaces the old one, given the old one.
        assert!(matches!(
            change_password(&store, &CHEAP, "ann", "not-it-at-all", "new-shells-9"),
            Err(AccountError::WrongCredentials)
        ));
        change_password(&store, &CHEAP, "ann", "sea-shells-1", "new-shells-9").unwrap();
        assert!(log_in(&store, &CHEAP, "ann", "sea-shells-1").is_err());
        assert!(log_in(&store, &CHEAP, "ann", "new-shells-9").is_ok());
        // Disabled: refused at login; enabled again: back, with the same id.
        set_disabled(&store, "ANN", true).unwrap();
        assert!(matches!(
            log_in(&store, &CHEAP, "ann", "new-shells-9"),
            Err(AccountError::Disabled)
        ));
        set_disabled(&store, "ann", false).unwrap();
        assert_eq!(
            log_in(&store, &CHEAP, "ann", "new-shells-9")
                .unwrap()
                .player_id,
            ann.player_id
        );
        assert!(matches!(
            set_disabled(&store, "nobody", true),
            Err(AccountError::NoSuchAccount(_))
        ));
        // Ids are never reused, and accounts outlive the process (reopened store).
        drop(store);
        let store = RedbBackend::open(&dir.join("store.redb")).unwrap();
        let cid = register(&store, &CHEAP, "cid", "sea-shells-3", 8).unwrap();
        assert_eq!(cid.player_id, FIRST_ACCOUNT_PLAYER + 2);
        assert_eq!(
            find(&store, "BOB").unwrap().unwrap().player_id,
            bob.player_id
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
