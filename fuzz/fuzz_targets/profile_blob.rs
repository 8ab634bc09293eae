//! A stored profile as the store reads it: the sealed blob is opened (the input is sealed under
//! a fixed data key first, both codecs, so the fuzzer reaches the decoder behind the tag), then
//! migrated, reconciled with the template and typed; the plain document is decoded too.
#![no_main]

use std::sync::LazyLock;

use bloxquarium::datastore::{AtRest, Codec, MAX_PROFILE_BYTES, PlayerData, decode_profile};
use bloxquarium::game::Aquarium;
use libfuzzer_sys::fuzz_target;

static TEMPLATE: LazyLock<serde_json::Value> =
    LazyLock::new(|| serde_json::to_value(Aquarium::new(100)).expect("the template encodes"));

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let plain = if mode % 3 == 0 {
        rest.to_vec()
    } else {
        let codec = if mode % 3 == 1 {
            Codec::Zstd
        } else {
            Codec::Lz4
        };
        let at_rest = AtRest::new(&[9; 32], codec);
        let Ok(blob) = at_rest.seal(5, rest) else {
            return;
        };
        match at_rest.open(5, &blob, MAX_PROFILE_BYTES) {
            Ok(p) => p,
            Err(_) => return,
        }
    };
    if let Ok(p) = decode_profile::<Aquarium>(&plain, 5, &TEMPLATE) {
        let _ = p.data.validate();
        let _ = p.validate();
    }
});
