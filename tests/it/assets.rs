//! Assets: the committed tree is exactly what the generator writes; every model parses as glTF;
//! the manifest is scanned, signed, sent at join and verified by the client.

use std::path::Path;

use bloxquarium::assets::{AssetRegistry, Preload, generate, manifest};
use bloxquarium::client::ConnectionState;

use crate::harness::{self, Scratch, pump_until};

const ASSETS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets");

#[test]
fn the_committed_tree_is_what_the_generator_writes_and_models_parse() {
    let mut total = 0;
    for (rel, bytes) in generate::tree() {
        let committed = std::fs::read(Path::new(ASSETS).join(&rel))
            .unwrap_or_else(|e| panic!("{rel}: {e} (run `bloxquarium assets generate`)"));
        assert!(
            committed == bytes,
            "{rel} differs from the generator's output"
        );
        total += bytes.len();
        if rel.ends_with(".glb") {
            let g = gltf::Gltf::from_slice(&bytes).unwrap_or_else(|e| panic!("{rel}: {e}"));
            assert!(g.meshes().count() > 0, "{rel}: no mesh");
            if rel.starts_with("Models/Characters/") {
                let swim = g.animations().find(|a| a.name() == Some("swim"));
                assert!(swim.is_some(), "{rel}: no swim animation");
            }
        }
    }
    assert!(total < 20 << 20, "{total} bytes");
}

#[test]
fn the_manifest_is_signed_sent_at_join_and_verified() {
    let d = Scratch::new("assets-manifest");
    // A copy of the tree plus a file the scan does not know.
    let dir = d.0.join("assets");
    generate::write_tree(&dir).unwrap();
    std::fs::write(dir.join("Textures/notes.xyz"), b"?").unwrap();
    let config =
        bloxquarium::config::load_server(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/config")))
            .unwrap();
    let (m, warnings) = manifest::scan(&dir, &Preload::from_config(&config));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("notes.xyz"));
    let reg = AssetRegistry::new(m);
    let tank = reg.get("Models/Aquariums/Aquarium_Lv1").unwrap();
    assert_eq!(tank.category, "Aquariums");
    assert_eq!(tank.kind, "model");
    assert_eq!(tank.priority, "critical");
    assert_eq!(reg.by_category("Characters").count(), 6);
    let sand = reg.get("Textures/Sand").unwrap();
    assert_eq!(sand.variants.len(), 5);
    assert_eq!(
        reg.variant("Textures/Sand", "HIGH").unwrap().quality,
        "HIGH"
    );
    assert_eq!(
        reg.variant("Textures/Sand", "PROFESSIONAL").unwrap().file,
        "Textures/Sand@PROFESSIONAL.png"
    );
    let stats = reg.stats();
    assert_eq!(stats.per_category.get("Characters"), Some(&6));
    assert!(stats.total >= 30);

    // The server scans its --assets dir and sends the manifest, signed, at join.
    let mut server = harness::app(&[
        "--data",
        d.path(),
        "--assets",
        dir.to_str().unwrap(),
        "server",
        "--bind",
        "127.0.0.1:0",
    ]);
    let token = harness::issue(&server, 3, "Pearl");
    let mut client = harness::client(&d, harness::server_addr(&server), &token);
    pump_until(
        &mut [&mut server, &mut client],
        300,
        "manifest received",
        |a| a[1].world().get_resource::<AssetRegistry>().is_some(),
    );
    assert_eq!(harness::state(&client), ConnectionState::Connected);
    let got = client.world().resource::<AssetRegistry>();
    assert_eq!(
        got.manifest(),
        server.world().resource::<AssetRegistry>().manifest()
    );
    assert_eq!(got.by_category("Characters").count(), 6);
}
