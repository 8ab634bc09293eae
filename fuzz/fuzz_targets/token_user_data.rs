//! The identity in a connect token's user data (what netcode hands the server after decrypting
//! the token's private part, so this is the parser behind the token's tag), and a token file as
//! a client reads it.
#![no_main]

use bloxquarium::transport::TokenIdentity;
use libfuzzer_sys::fuzz_target;

/// renetcode's user data size.
const USER_DATA: usize = 256;

fuzz_target!(|data: &[u8]| {
    let mut user = [0u8; USER_DATA];
    let n = data.len().min(USER_DATA);
    user[..n].copy_from_slice(&data[..n]);
    if let Some(id) = TokenIdentity::from_user_data(&user) {
        // What it accepts survives a round trip.
        let back = id.to_user_data().expect("an accepted identity encodes");
        let again = TokenIdentity::from_user_data(&back).expect("and decodes again");
        assert_eq!(again.player_id, id.player_id);
        assert_eq!(again.display_name, id.display_name);
    }
    let _ = bloxquarium::transport::IssuedToken::from_bytes(data);
});
