//! A config layer file (RON) read against the framework's and the aquarium's schema, and a
//! schema file itself.
#![no_main]

use std::sync::LazyLock;

use bloxquarium::config::{Config, Schema, parse_layer};
use libfuzzer_sys::fuzz_target;

static CONFIG: LazyLock<Config> = LazyLock::new(|| {
    bloxquarium::config::load_server(
        std::path::Path::new("/nonexistent-bloxquarium-fuzz"),
        &bloxquarium::game::KEYS,
    )
    .expect("the embedded schema loads")
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut problems = Vec::new();
    let values = parse_layer(CONFIG.schema(), "fuzz.ron", text, &mut problems);
    // Every value it lets through is one the schema accepts.
    for (path, value) in &values {
        let key = CONFIG.schema().key(path).expect("a value for a known key");
        assert!(key.check(value).is_ok(), "{path}: {value:?}");
    }
    let _ = Schema::parse("fuzz-schema.ron", text);
});
