//! Assets: the committed tree is exactly what the generator writes; every model parses as glTF;
//! the manifest is scanned, signed, sent at join and verified by the client.

use std::path::Path;

use bevy::ecs::system::RunSystemOnce;
use bevy::prelude::*;
use bloxquarium::assetgen as generate;
use bloxquarium::assets::{
    AssetBytes, AssetPhase, AssetProblem, AssetRegistry, AssetStreamer, CriticalAssets, Decoders,
    Preload, StreamOutcome, Streamer,
};
use bloxquarium::transport::ConnectionState;
use iyes_progress::ProgressTracker;

use crate::harness::{self, Scratch, pump_until};

const ASSETS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets");

#[test]
fn the_committed_tree_is_what_the_generator_writes_and_models_parse() {
    let mut total = 0;
    for (rel, bytes) in generate::tree().unwrap() {
        let committed = std::fs::read(Path::new(ASSETS).join(&rel))
            .unwrap_or_else(|e| panic!("{rel}: {e} (run `bloxquarium assets generate`)"));
        assert!(
            committed == bytes,
            "{rel} differs from the generator's output"
        );
        total += bytes.len();
        if rel.ends_with(".ogg") {
            // Real Ogg Vorbis: it decodes, mono, about as long as the generator made it.
            let mut r = lewton::inside_ogg::OggStreamReader::new(std::io::Cursor::new(&bytes))
                .unwrap_or_else(|e| panic!("{rel}: {e}"));
            assert_eq!(r.ident_hdr.audio_channels, 1, "{rel}");
            let mut samples = 0usize;
            while let Some(p) = r
                .read_dec_packet_itl()
                .unwrap_or_else(|e| panic!("{rel}: {e}"))
            {
                samples += p.len();
            }
            let secs = samples as f32 / r.ident_hdr.audio_sample_rate as f32;
            let want = generate_sound_secs(&rel);
            assert!(
                (secs - want).abs() < 0.1,
                "{rel}: {secs} s, generated {want} s"
            );
        }
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

/// The generator's duration of a sound file.
fn generate_sound_secs(rel: &str) -> f32 {
    bloxquarium::game::SOUNDS
        .iter()
        .find(|s| rel == format!("Sounds/{}.ogg", s.name))
        .map_or(0.0, |s| s.seconds)
}

#[test]
fn the_manifest_is_signed_sent_at_join_and_verified() {
    let d = Scratch::new("assets-manifest");
    // A copy of the tree plus a file the scan does not know.
    let dir = d.0.join("assets");
    generate::write_tree(&dir).unwrap();
    std::fs::write(dir.join("Textures/notes.xyz"), b"?").unwrap();
    let config = bloxquarium::config::load_server(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/config")),
        &bloxquarium::game::KEYS,
    )
    .unwrap();
    let (m, warnings) = bloxquarium::assets::scan_manifest(&dir, &Preload::from_config(&config));
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

/// The client's loading phase.
fn phase(app: &App) -> AssetPhase {
    *app.world().resource::<State<AssetPhase>>().get()
}

#[derive(Resource, Default)]
struct Problems(Vec<AssetProblem>);

#[derive(Resource, Default)]
struct Outcomes(Vec<StreamOutcome>);

/// Asks the client's streamer for `path` at `level`; the outcome lands in `Outcomes`.
fn stream(client: &mut App, path: &'static str, level: u8) {
    client.init_resource::<Outcomes>();
    client
        .world_mut()
        .run_system_once(move |mut s: Streamer| {
            s.stream_with_quality(path, level, |world, outcome| {
                world.resource_mut::<Outcomes>().0.push(outcome.clone());
            });
        })
        .unwrap();
}

#[test]
fn the_loading_state_reaches_full_progress_then_the_rest_streams_by_priority() {
    let d = Scratch::new("assets-loading");
    let mut server = harness::server(&d, &[]);
    let token = harness::issue(&server, 4, "Coral");
    let mut client = harness::client(&d, harness::server_addr(&server), &token);
    assert_eq!(phase(&client), AssetPhase::WaitingForManifest);
    let mut seen_progress = Vec::new();
    pump_until(&mut [&mut server, &mut client], 600, "playing", |a| {
        if let Some(t) = a[1].world().get_resource::<ProgressTracker<AssetPhase>>() {
            let p = t.get_global_progress();
            seen_progress.push((p.done, p.total));
        }
        phase(a[1]) == AssetPhase::Playing
    });
    // The bar moved and ended full.
    let last = seen_progress
        .iter()
        .rev()
        .find(|(_, t)| *t > 0)
        .copied()
        .expect("progress was tracked");
    assert_eq!(last.0, last.1, "{seen_progress:?}");
    assert!(last.1 > 1, "{seen_progress:?}");

    let w = client.world();
    let registry = w.resource::<AssetRegistry>();
    let critical: Vec<_> = registry
        .manifest()
        .entries
        .iter()
        .filter(|e| e.priority == "critical")
        .collect();
    let loaded = w.resource::<CriticalAssets>();
    assert_eq!(loaded.handles.len(), critical.len());
    assert!(critical.len() >= 10);
    // Every critical asset is in memory, byte for byte the file on disk.
    let bytes = w.resource::<Assets<AssetBytes>>();
    for (path, handle) in &loaded.handles {
        let entry = registry.get(path).unwrap();
        let file = &registry.variant(path, "HIGH").unwrap().file;
        let got = bytes
            .get(handle.id().typed::<AssetBytes>())
            .unwrap_or_else(|| panic!("{path} not loaded"));
        assert_eq!(
            got.0,
            std::fs::read(Path::new(ASSETS).join(file)).unwrap(),
            "{path}"
        );
        assert_eq!(entry.priority, "critical");
    }
    assert_eq!(
        w.resource::<AssetStreamer>().stats().loads.fallbacks,
        0,
        "{:?}",
        w.resource::<AssetStreamer>().recent_errors
    );

    // The rest streams in the background, in batches, until every asset is loaded.
    let total = registry.manifest().entries.len() as u64;
    pump_until(&mut [&mut server, &mut client], 900, "streamed", |a| {
        let s = a[1].world().resource::<AssetStreamer>().stats();
        s.queued == 0 && s.in_flight == 0
    });
    let s = client.world().resource::<AssetStreamer>().stats();
    assert_eq!(s.loads.loaded, total, "{s:?}");
    assert_eq!((s.loads.failed, s.loads.fallbacks), (0, 0));
    assert!(s.loads.average_ms() > 0.0);
    assert_eq!(s.cache.entries as u64, total);

    // A second request for a loaded asset is a cache hit, answered with the same file.
    let hits = s.cache.hits;
    stream(&mut client, "Textures/Sand", 3);
    harness::updates(&mut client, 2);
    let out = &client.world().resource::<Outcomes>().0;
    assert_eq!(out.len(), 1);
    assert!(out[0].from_cache && !out[0].fallback, "{:?}", out[0]);
    assert_eq!(out[0].quality, "HIGH");
    assert_eq!(
        client
            .world()
            .resource::<AssetStreamer>()
            .stats()
            .cache
            .hits,
        hits + 1
    );
    // The registry's figures include the loader's.
    let full = client
        .world()
        .resource::<AssetRegistry>()
        .stats()
        .with_loading(&client.world().resource::<AssetStreamer>().stats());
    assert_eq!(full.loaded, total);
    assert!(full.memory_bytes > 0 && full.cache_hit_rate > 0.0);
}

#[test]
fn a_corrupted_file_is_refused_replaced_by_the_fallback_and_reported() {
    let d = Scratch::new("assets-corrupt");
    // The server's tree is the real one; the client's copy has two damaged files.
    let client_dir = d.0.join("client-assets");
    generate::write_tree(&client_dir).unwrap();
    let mut icon = std::fs::read(client_dir.join("UI_Assets/Icon_Coin.png")).unwrap();
    let n = icon.len();
    icon[n / 2] ^= 0xff;
    std::fs::write(client_dir.join("UI_Assets/Icon_Coin.png"), icon).unwrap();
    std::fs::write(client_dir.join("Textures/Water@HIGH.png"), b"not a png").unwrap();

    let mut server = harness::server(&d, &[]);
    let token = harness::issue(&server, 5, "Reef");
    let mut client = harness::client_with(
        &d,
        harness::server_addr(&server),
        &token,
        &["--assets", client_dir.to_str().unwrap()],
    );
    client
        .init_resource::<Problems>()
        .init_resource::<Differ>()
        .add_systems(
            Update,
            |mut r: MessageReader<AssetProblem>,
             mut seen: ResMut<Problems>,
             mut d: MessageReader<bloxquarium::assets::AssetsDiffer>,
             mut differ: ResMut<Differ>| {
                seen.0.extend(r.read().cloned());
                differ.0.extend(d.read().cloned());
            },
        );
    // A file the manifest does not list, in the client's dir.
    std::fs::write(
        client_dir.join("UI_Assets/Extra.bin"),
        b"not from the server",
    )
    .unwrap();
    let mut recovering = false;
    pump_until(&mut [&mut server, &mut client], 600, "playing", |a| {
        recovering |= phase(a[1]) == AssetPhase::Recovering;
        phase(a[1]) == AssetPhase::Playing
    });
    assert!(
        recovering,
        "a failed critical asset goes through Recovering"
    );
    let w = client.world();
    let coin = w
        .resource::<CriticalAssets>()
        .handles
        .iter()
        .find(|(p, _)| p == "UI_Assets/Icon_Coin")
        .map(|(_, h)| h.clone())
        .unwrap();
    let fallback = w.resource::<Decoders>().fallback("texture");
    assert_eq!(coin.id(), fallback.id(), "the damaged icon is the fallback");
    // The other critical assets loaded normally.
    let bytes = w.resource::<Assets<AssetBytes>>();
    let fine = w
        .resource::<CriticalAssets>()
        .handles
        .iter()
        .filter(|(_, h)| bytes.get(h.id().typed::<AssetBytes>()).is_some())
        .count();
    assert_eq!(fine, w.resource::<CriticalAssets>().handles.len());
    let problems = &w.resource::<Problems>().0;
    assert!(
        problems
            .iter()
            .any(|p| p.path == "UI_Assets/Icon_Coin" && p.integrity),
        "{problems:?}"
    );

    // A damaged HIGH texture falls back to MEDIUM, reporting why.
    stream(&mut client, "Textures/Water", 3);
    pump_until(&mut [&mut server, &mut client], 300, "streamed", |a| {
        !a[1].world().resource::<Outcomes>().0.is_empty()
    });
    let out = client.world().resource::<Outcomes>().0[0].clone();
    assert!(!out.fallback);
    assert_eq!(out.quality, "MEDIUM");
    assert_eq!(out.file.as_deref(), Some("Textures/Water@MEDIUM.png"));
    assert_eq!(out.errors.len(), 1);
    assert!(
        out.errors[0].contains("sha256 mismatch"),
        "{:?}",
        out.errors
    );
    // An asset the manifest does not list answers with the fallback and the reason.
    stream(&mut client, "Models/Props/Nope", 3);
    harness::updates(&mut client, 2);
    let out = client.world().resource::<Outcomes>().0[1].clone();
    assert!(out.fallback && out.file.is_none());
    assert!(out.errors[0].contains("not in the asset manifest"));
    let s = client.world().resource::<AssetStreamer>().stats();
    assert!(s.loads.integrity_failures >= 2, "{s:?}");
    assert!(s.loads.fallbacks >= 2, "{s:?}");
    // At join the client said which of its files differ from the server's.
    let differ = &client.world().resource::<Differ>().0;
    assert_eq!(differ.len(), 1, "{differ:?}");
    assert_eq!(
        differ[0].changed,
        vec![
            "Textures/Water@HIGH.png".to_string(),
            "UI_Assets/Icon_Coin.png".to_string()
        ]
    );
    assert!(differ[0].missing.is_empty());
    assert!(differ[0].describe().contains("content version"));
    // A file on disk that the manifest does not list is never read.
    let extra: Handle<AssetBytes> = client
        .world()
        .resource::<AssetServer>()
        .load("UI_Assets/Extra.bin");
    pump_until(
        &mut [&mut server, &mut client],
        120,
        "the extra file settles",
        |a| {
            a[1].world()
                .resource::<AssetServer>()
                .load_state(extra.id())
                .is_failed()
        },
    );
    match client
        .world()
        .resource::<AssetServer>()
        .load_state(extra.id())
    {
        bevy::asset::LoadState::Failed(e) => {
            assert!(
                e.to_string().contains("not in the server's asset manifest"),
                "{e}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[derive(Resource, Default)]
struct Differ(Vec<bloxquarium::assets::AssetsDiffer>);

#[test]
fn a_tampered_manifest_is_refused_by_the_client() {
    use bloxquarium::protocol::{self, AssetManifest, ServerMessage};
    use bloxquarium::transport::Signer;
    use bloxquarium::transport::{ClientCore, ClientNotice, SessionMaterial};
    use std::time::Duration;

    let config = bloxquarium::config::load_server(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/config")),
        &bloxquarium::game::KEYS,
    )
    .unwrap();
    let (m, _) =
        bloxquarium::assets::scan_manifest(Path::new(ASSETS), &Preload::from_config(&config));
    let blob = protocol::encode(&m).unwrap();
    let material = SessionMaterial([7; 32]);
    let signer = Signer::new(&material);
    let mut client = ClientCore::new(material, Duration::from_secs(30), 100);
    let welcome = protocol::encode(&ServerMessage::Welcome {
        session_id: 9,
        protocol_version: protocol::PROTOCOL_VERSION,
        display_name: "Pearl".into(),
    })
    .unwrap();
    assert!(matches!(
        client.handle_bytes(&welcome, Duration::ZERO),
        Some(ClientNotice::Welcomed { .. })
    ));
    let signed = |blob: Vec<u8>, signature| {
        protocol::encode(&ServerMessage::Signed {
            purpose: protocol::ASSET_MANIFEST.into(),
            blob,
            signature,
        })
        .unwrap()
    };
    // The real manifest, signed: accepted and decoded as it was sent.
    let good = signed(blob.clone(), signer.sign(protocol::ASSET_MANIFEST, &blob));
    match client.handle_bytes(&good, Duration::ZERO) {
        Some(ClientNotice::Signed { blob: got, .. }) => {
            assert_eq!(protocol::decode::<AssetManifest>(&got).unwrap(), m);
        }
        other => panic!("a good manifest was not accepted: {other:?}"),
    }
    // One hash changed after signing: refused, and counted.
    let sha = m.entries[0].variants[0].sha256.clone();
    let mut forged = m.clone();
    forged.entries[0].variants[0].sha256 =
        sha.replace(&sha[..1], if &sha[..1] == "0" { "1" } else { "0" });
    let forged_blob = protocol::encode(&forged).unwrap();
    let bad = signed(forged_blob, signer.sign(protocol::ASSET_MANIFEST, &blob));
    assert!(matches!(
        client.handle_bytes(&bad, Duration::ZERO),
        Some(ClientNotice::Refused { .. })
    ));
    assert_eq!(client.stats.total.rejected, 1);
}

#[test]
fn the_cache_follows_the_servers_bound_and_evicts_the_least_recent() {
    let d = Scratch::new("assets-lru");
    // The smallest cache the schema allows, set on the server: a Shared key the client follows.
    let cfg = harness::config_dir(&d, r#"{"assetManager.maxCacheSize": 10}"#);
    let mut server = harness::server_with_config(&d, &cfg);
    let token = harness::issue(&server, 6, "Kelp");
    let mut client = harness::client(&d, harness::server_addr(&server), &token);
    pump_until(&mut [&mut server, &mut client], 900, "streamed", |a| {
        *a[1].world().resource::<State<AssetPhase>>().get() == AssetPhase::Playing && {
            let s = a[1].world().resource::<AssetStreamer>().stats();
            s.queued == 0 && s.in_flight == 0
        }
    });
    let total = client
        .world()
        .resource::<AssetRegistry>()
        .manifest()
        .entries
        .len() as u64;
    let s = client.world().resource::<AssetStreamer>().stats();
    assert_eq!(s.cache.max_entries, 10, "{s:?}");
    assert_eq!(s.cache.entries, 10);
    assert_eq!(s.loads.loaded, total);
    assert!(s.cache.evictions >= total - 10, "{s:?}");
    // The oldest entries went first: the first critical file is no longer cached, so asking
    // for it again is a miss and a fresh load; the newest is still a hit.
    let oldest = client
        .world()
        .resource::<AssetStreamer>()
        .cache()
        .keys_oldest_first()
        .next()
        .map(str::to_string)
        .unwrap();
    assert!(!oldest.starts_with("Models/Aquariums/"), "{oldest}");
    let misses = s.cache.misses;
    stream(&mut client, "Models/Aquariums/Aquarium_Lv1", 3);
    pump_until(&mut [&mut server, &mut client], 300, "reloaded", |a| {
        !a[1].world().resource::<Outcomes>().0.is_empty()
    });
    let out = client.world().resource::<Outcomes>().0[0].clone();
    assert!(!out.from_cache && !out.fallback, "{out:?}");
    let s = client.world().resource::<AssetStreamer>().stats();
    assert_eq!(s.cache.misses, misses + 1);
    assert_eq!(s.loads.loaded, total + 1);
}

/// Streams the rest after the critical set under a server whose `default.ron` is `ron`;
/// returns the most requests in flight at once and the stats once `until` holds or 150 frames
/// have passed.
fn stream_rest(
    tag: &str,
    ron: &str,
    until: impl Fn(&bloxquarium::assets::StreamerStats) -> bool,
) -> (usize, bloxquarium::assets::StreamerStats) {
    let d = Scratch::new(tag);
    let cfg = harness::config_dir(&d, ron);
    let mut server = harness::server_with_config(&d, &cfg);
    let token = harness::issue(&server, 4, "Coral");
    let mut client = harness::client(&d, harness::server_addr(&server), &token);
    pump_until(&mut [&mut server, &mut client], 600, "playing", |a| {
        phase(a[1]) == AssetPhase::Playing
    });
    let mut most = 0;
    for _ in 0..150 {
        harness::pump(&mut [&mut server, &mut client], 1);
        let s = client.world().resource::<AssetStreamer>().stats();
        most = most.max(s.in_flight);
        if until(&s) {
            break;
        }
    }
    (most, client.world().resource::<AssetStreamer>().stats())
}

/// `assetManager.preloadBatchSize` (Shared): how many assets stream at once after the
/// critical set.
#[test]
fn the_rest_streams_in_batches_of_the_configured_size() {
    let done = |s: &bloxquarium::assets::StreamerStats| s.queued == 0 && s.in_flight == 0;
    let (most, s) = stream_rest(
        "assets-batch-3",
        r#"{"assetManager.preloadBatchSize": 3}"#,
        done,
    );
    assert!(done(&s), "{s:?}");
    assert_eq!(most, 3, "{s:?}");
    let (most, s) = stream_rest("assets-batch-default", "{}", done);
    assert!(done(&s), "{s:?}");
    assert!(most > 3, "50 by default: {most} at once");
}

/// `assetManager.enableStreaming: false`: after the critical set nothing streams by itself.
#[test]
fn with_streaming_off_nothing_streams_after_the_critical_set() {
    let (most, s) = stream_rest(
        "assets-no-streaming",
        r#"{"assetManager.enableStreaming": false}"#,
        |_| false,
    );
    assert_eq!(most, 0, "{s:?}");
    assert!(s.queued > 0, "{s:?}");
}
