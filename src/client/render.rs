//! The windowed client: the room (camera, lights, floor, the table the tank stands on), a
//! status line, window close routed through the shutdown phase, and the screenshot smoke check.
//! The tank, its fish and the loading screen are in [`super::aquarium`]; the HUD and the F3
//! overlay in [`super::hud`].

use std::path::PathBuf;

use bevy::prelude::*;
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured, save_to_disk};
use bevy::window::WindowCloseRequested;

use crate::config::{ClientConfig, ConfigChanged, Side};
use crate::shutdown::{Shutdown, ShutdownReason};
use crate::stages::ClientSystems;

/// Camera, lights, floor and the placeholder tank.
pub struct ScenePlugin;

impl Plugin for ScenePlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(ClearColor(Color::srgb(0.05, 0.09, 0.16)))
            .insert_resource(GlobalAmbientLight {
                color: Color::srgb(0.7, 0.8, 1.0),
                brightness: 250.0,
                ..default()
            })
            // The sun's one cascade (20 m, below) at 1024² texels, 2 cm each: Bevy's default
            // 2048² takes 16 MiB of memory where the renderer is the CPU, four times this.
            .insert_resource(bevy::light::DirectionalLightShadowMap { size: 1024 })
            .add_systems(Startup, spawn_scene)
            .add_systems(
                Update,
                apply_graphics_settings.in_set(ClientSystems::Present),
            );
    }
}

/// The camera's far plane: `graphics.maxRenderDistance` (world units; 1000 without a config).
pub fn far_plane(config: Option<&crate::config::Config>) -> f32 {
    config
        .and_then(|c| c.get::<f64>("graphics.maxRenderDistance").ok())
        .unwrap_or(1000.0) as f32
}

fn spawn_scene(
    mut commands: Commands,
    mut meshes: ResMut<Assets<Mesh>>,
    mut materials: ResMut<Assets<StandardMaterial>>,
    config: Option<Res<ClientConfig>>,
) {
    let orbit = super::aquarium::OrbitCamera {
        yaw: 0.0,
        pitch: 0.3,
        distance: 7.5,
        target: Vec3::new(0.0, 1.4, 0.0),
    };
    let projection = Projection::Perspective(PerspectiveProjection {
        far: far_plane(config.as_deref().map(|c| &c.0)),
        ..default()
    });
    // Depth: the room fades into the dark blue of deep water beyond the tank.
    let fog = DistanceFog {
        color: Color::srgb(0.04, 0.08, 0.14),
        falloff: FogFalloff::Linear {
            start: 9.0,
            end: 30.0,
        },
        ..default()
    };
    commands.spawn((
        Camera3d::default(),
        projection,
        orbit.transform(),
        orbit,
        fog,
        // No depth prepass: with surfaces this cheap to shade, the pass and the copy of its
        // multisampled depth cost more than they save (frame time and 14 MiB of memory).
        // One comparison per shadow lookup (Bevy's default filter takes 13 per cascade).
        bevy::light::ShadowFilteringMethod::Hardware2x2,
    ));
    commands.spawn((
        DirectionalLight {
            illuminance: 9_000.0,
            shadow_maps_enabled: true,
            ..default()
        },
        Transform::from_xyz(4.0, 8.0, 5.0).looking_at(Vec3::ZERO, Vec3::Y),
        // The room ends in fog 30 m away: one cascade over 20 m (Bevy's default: four over
        // 150 m, a shadow map of 2048² each, 16 MiB of memory apiece on the software renderer).
        bevy::light::CascadeShadowConfigBuilder {
            num_cascades: 1,
            first_cascade_far_bound: 20.0,
            maximum_distance: 20.0,
            ..default()
        }
        .build(),
    ));
    commands.spawn((
        PointLight {
            color: Color::srgb(0.6, 0.85, 1.0),
            intensity: 400_000.0,
            range: 12.0,
            ..default()
        },
        Transform::from_xyz(0.0, 4.0, 1.0),
    ));

    // Floor: a wooden table top on a dark room floor.
    commands.spawn((
        Mesh3d(meshes.add(Plane3d::default().mesh().size(30.0, 30.0))),
        // Unlit: the room is a dark backdrop under the fog, and its lit shading over most of
        // the window cost a fifth of a frame on the software renderer.
        MeshMaterial3d(materials.add(StandardMaterial {
            base_color: Color::srgb(0.12, 0.11, 0.1),
            unlit: true,
            ..default()
        })),
        // Nothing lies under the floor or the table for them to shade (a shadow pass less
        // over the whole room).
        bevy::light::NotShadowCaster,
    ));
    commands.spawn((
        Mesh3d(meshes.add(Cuboid::new(8.0, super::aquarium::TABLE_TOP, 4.0))),
        MeshMaterial3d(materials.add(StandardMaterial {
            base_color: Color::srgb(0.45, 0.3, 0.18),
            perceptual_roughness: 0.7,
            ..default()
        })),
        Transform::from_xyz(0.0, super::aquarium::TABLE_TOP / 2.0, 0.0),
        bevy::light::NotShadowCaster,
    ));
}

/// ClientSafe settings applied live: `graphics.shadows` on the sun, `ui.scale` on the UI; and the
/// quality level in use (the player's, or lower when the governor dropped it): shadows need
/// MEDIUM or better, multisampling HIGH or better.
fn apply_graphics_settings(
    config: Res<ClientConfig>,
    mut changed: MessageReader<ConfigChanged>,
    streamer: Res<crate::assets::AssetStreamer>,
    mut suns: Query<&mut DirectionalLight>,
    mut cameras: Query<(&mut Msaa, &mut Projection), With<Camera3d>>,
    mut ui_scale: ResMut<UiScale>,
    mut applied: Local<Option<u8>>,
) {
    let relevant = changed.read().any(|c| {
        c.side == Side::Client
            && (c.under("graphics.shadows")
                || c.under("ui.scale")
                || c.under("graphics.qualityLevel")
                || c.under("graphics.maxRenderDistance"))
    });
    let level = streamer.governor.current;
    if !relevant && *applied == Some(level) {
        return;
    }
    *applied = Some(level);
    let look = Look::of(&config.0, level);
    for mut sun in &mut suns {
        sun.shadow_maps_enabled = look.shadows;
    }
    let msaa = if look.multisample {
        Msaa::Sample4
    } else {
        Msaa::Off
    };
    for (mut m, mut projection) in &mut cameras {
        if *m != msaa {
            *m = msaa;
        }
        if let Projection::Perspective(p) = &mut *projection
            && p.far != look.far
        {
            p.far = look.far;
        }
    }
    if let Some(scale) = look.ui_scale {
        ui_scale.0 = scale;
    }
}

/// What the ClientSafe graphics keys and the quality level in use make of the picture.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Look {
    /// The sun casts shadows: `graphics.shadows`, and the level is MEDIUM or better.
    pub shadows: bool,
    /// Multisampling: the level is HIGH or better.
    pub multisample: bool,
    /// The camera's far plane ([`far_plane`]).
    pub far: f32,
    /// `ui.scale` (`None`: leave the UI's scale as it is).
    pub ui_scale: Option<f32>,
}

impl Look {
    /// From `config` at quality `level` (1 LOW .. 5 PROFESSIONAL).
    pub fn of(config: &crate::config::Config, level: u8) -> Self {
        Self {
            shadows: config.get::<bool>("graphics.shadows").unwrap_or(true) && level >= 2,
            multisample: level >= 3,
            far: far_plane(Some(config)),
            ui_scale: config.get::<f32>("ui.scale").ok(),
        }
    }
}

/// "frame time over N frames: p50 …, p99 …, mean … fps; rss … MiB (… when they began)" for
/// frame times in ms and the resident memory in MiB when the first of them began (the line
/// `scripts/frame-bench.sh` reads, from the game and from its baseline; the two figures show
/// memory that grows from frame to frame); `None` for none.
pub fn frame_time_line(frame_ms: &[f64], rss_before_mib: u64) -> Option<String> {
    let mut ms = frame_ms.to_vec();
    ms.sort_by(f64::total_cmp);
    let q = |p: f64| {
        ms.get(((ms.len().max(1) - 1) as f64 * p).round() as usize)
            .copied()
    };
    Some(format!(
        "frame time over {} frames: p50 {:.1} ms, p99 {:.1} ms, mean {:.1} fps; rss {} MiB ({} when they began)",
        ms.len(),
        q(0.5)?,
        q(0.99)?,
        1000.0 * ms.len() as f64 / ms.iter().sum::<f64>(),
        rss_mib(),
        rss_before_mib
    ))
}

/// This process's resident memory in MiB.
pub fn rss_mib() -> u64 {
    crate::process::rss_bytes() >> 20
}

/// Closing the window starts the shutdown phase instead of exiting on the spot.
pub struct WindowClosePlugin;

impl Plugin for WindowClosePlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(Update, close_requested.in_set(ClientSystems::Handle));
    }
}

/// Where F12 saves the window: `<data>/screenshots/bloxquarium-<n>.png`, `n` one past the
/// highest there.
pub fn next_screenshot_path(data: &std::path::Path) -> PathBuf {
    let dir = data.join("screenshots");
    let highest = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_prefix("bloxquarium-")?
                .strip_suffix(".png")?
                .parse::<u32>()
                .ok()
        })
        .max();
    dir.join(format!("bloxquarium-{}.png", highest.map_or(1, |n| n + 1)))
}

/// F12 saves a picture of the window (logged with its path once written).
fn screenshot_key(
    mut commands: Commands,
    input: Res<ButtonInput<KeyCode>>,
    paths: Res<crate::process::Paths>,
) {
    if !input.just_pressed(KeyCode::F12) {
        return;
    }
    let path = next_screenshot_path(&paths.data);
    if let Some(dir) = path.parent()
        && let Err(e) = std::fs::create_dir_all(dir)
    {
        warn!("screenshot: cannot create {}: {e}", dir.display());
        return;
    }
    info!("screenshot: saving {}", path.display());
    commands
        .spawn(Screenshot::primary_window())
        .observe(save_to_disk(path));
}

fn close_requested(
    mut requests: MessageReader<WindowCloseRequested>,
    mut shutdown: ResMut<Shutdown>,
) {
    if requests.read().next().is_some() {
        shutdown.request(ShutdownReason::WindowClosed);
    }
}

/// F12 saves a PNG of the window; with a path, one is saved after a number of frames, then it
/// shuts down (the smoke check).
pub struct ScreenshotPlugin {
    /// Where to save; nothing happens without one.
    pub path: Option<PathBuf>,
    /// Frames to let pass first (pipelines compile during the first ones).
    pub after_frames: u32,
    /// Extra display-only fish for the frame-time benchmark.
    pub bench_fish: u32,
}

#[derive(Resource)]
struct ScreenshotPlan {
    path: PathBuf,
    after_frames: u32,
    frames: u32,
    taken: bool,
    frame_ms: Vec<f64>,
    /// RSS (MiB) when the measured frames began.
    rss_before: u64,
}

impl Plugin for ScreenshotPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(Update, screenshot_key.in_set(ClientSystems::Handle));
        if let Some(path) = &self.path {
            app.insert_resource(ScreenshotPlan {
                path: path.clone(),
                after_frames: self.after_frames,
                frames: 0,
                taken: false,
                frame_ms: Vec::new(),
                rss_before: 0,
            })
            .insert_resource(super::fish::BenchFish(self.bench_fish))
            .add_systems(
                Update,
                (
                    take_screenshot.in_set(ClientSystems::Present),
                    stock_tank_for_screenshot
                        .run_if(in_state(crate::assets::AssetPhase::Playing))
                        .in_set(ClientSystems::Handle),
                ),
            );
        }
    }
}

/// Stocks an empty tank for the picture, through the normal purchase path (predicted, then
/// acknowledged by the server): two goldfish, a clownfish and a plant, 85 of the 100 starting
/// coins.
fn stock_tank_for_screenshot(
    mut prediction: ResMut<crate::game::Prediction>,
    mut net: ResMut<crate::transport::ClientNet>,
    shop: Res<crate::game::Shop>,
    time: Res<Time<Real>>,
    mut done: Local<bool>,
) {
    let Some(catalog) = shop.catalog() else {
        return;
    };
    if *done {
        return;
    }
    let Some(state) = prediction.predictor.predicted(catalog) else {
        return;
    };
    *done = true;
    if !state.fish.is_empty() {
        return;
    }
    let items = [
        crate::game::protocol::ShopItem::Fish { species: 0 },
        crate::game::protocol::ShopItem::Fish { species: 0 },
        crate::game::protocol::ShopItem::Fish { species: 1 },
        crate::game::protocol::ShopItem::Decoration { kind: 1 },
    ];
    for item in items {
        let op = crate::game::GameOp::Purchase { item, quantity: 1 };
        if let Err(why) = prediction.send(&mut net, op, catalog, time.elapsed()) {
            warn!("screenshot: could not stock the tank: {why}");
        }
    }
}

/// Counts frames only once the game is playing (critical assets loaded), so the picture is
/// of the game, never of the loading screen; no picture is taken if play never starts.
fn take_screenshot(
    mut commands: Commands,
    mut plan: ResMut<ScreenshotPlan>,
    phase: Res<State<crate::assets::AssetPhase>>,
    time: Res<Time<Real>>,
    fish: Query<(), With<super::aquarium::FishModel>>,
) {
    if plan.taken || *phase.get() != crate::assets::AssetPhase::Playing {
        return;
    }
    plan.frames += 1;
    // Frame times of the second half of play (the first compiles pipelines).
    if plan.frames > plan.after_frames / 2 {
        if plan.frame_ms.is_empty() {
            plan.rss_before = rss_mib();
        }
        plan.frame_ms.push(time.delta_secs_f64() * 1000.0);
    }
    if plan.frames < plan.after_frames {
        return;
    }
    plan.taken = true;
    if let Some(line) = frame_time_line(&plan.frame_ms, plan.rss_before) {
        info!("{line} with {} fish on screen", fish.iter().count());
    }
    info!(
        "taking a screenshot after {} frames of play: {}",
        plan.frames,
        plan.path.display()
    );
    commands
        .spawn(Screenshot::primary_window())
        .observe(save_to_disk(plan.path.clone()))
        .observe(
            |_: On<ScreenshotCaptured>, mut shutdown: ResMut<Shutdown>| {
                shutdown.request(ShutdownReason::Requested("screenshot saved".to_string()));
            },
        );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ConfigValue;
    use std::time::Duration;

    #[test]
    fn shadows_and_ui_scale_follow_their_keys() {
        let mut c = crate::config::defaults_for_tests();
        let before = Look::of(&c, 3);
        assert!(before.shadows && before.multisample);
        assert_eq!(before.ui_scale, Some(1.0));
        assert!(
            !Look::of(&c, 1).shadows,
            "LOW has no shadows whatever the key says"
        );
        c.set(
            "graphics.shadows",
            ConfigValue::Bool(false),
            "test",
            "",
            Duration::ZERO,
        )
        .unwrap();
        c.set(
            "ui.scale",
            ConfigValue::Float(1.5),
            "test",
            "",
            Duration::ZERO,
        )
        .unwrap();
        let after = Look::of(&c, 3);
        assert!(!after.shadows);
        assert_eq!(after.ui_scale, Some(1.5));
    }

    #[test]
    fn the_far_plane_is_the_render_distance() {
        let mut config = crate::config::defaults_for_tests();
        assert_eq!(far_plane(Some(&config)), 1000.0);
        config
            .set(
                "graphics.maxRenderDistance",
                ConfigValue::Int(120),
                "test",
                "",
                Duration::ZERO,
            )
            .unwrap();
        assert_eq!(far_plane(Some(&config)), 120.0);
    }

    #[test]
    fn f12_numbers_screenshots_one_past_the_highest() {
        let dir = std::env::temp_dir().join(format!("bq-shots-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let shots = dir.join("screenshots");
        assert_eq!(next_screenshot_path(&dir), shots.join("bloxquarium-1.png"));
        std::fs::create_dir_all(&shots).unwrap();
        for name in [
            "bloxquarium-2.png",
            "bloxquarium-9.png",
            "other-40.png",
            "bloxquarium-x.png",
        ] {
            std::fs::write(shots.join(name), b"").unwrap();
        }
        assert_eq!(next_screenshot_path(&dir), shots.join("bloxquarium-10.png"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
