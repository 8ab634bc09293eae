//! The asset manifest as a client reads it from the server (after the signature check) and
//! what the client does with it: the registry, its lookups, the streaming queue.
#![no_main]

use bloxquarium::assets::{AssetRegistry, StreamQueue};
use bloxquarium::protocol::{AssetManifest, decode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(manifest) = decode::<AssetManifest>(data) else {
        return;
    };
    let mut queue = StreamQueue::from_manifest(&manifest, 3);
    for _ in 0..manifest.entries.len() + 1 {
        let batch = queue.next_batch();
        for _ in &batch {
            queue.finished();
        }
    }
    let registry = AssetRegistry::new(manifest.clone());
    for e in &manifest.entries {
        let _ = registry.get(&e.path);
        for q in ["LOW", "MEDIUM", "HIGH", "ULTRA", "PROFESSIONAL"] {
            let _ = registry.variant(&e.path, q);
        }
        let _ = registry.by_category(&e.category).count();
    }
    let _ = registry.stats();
});
