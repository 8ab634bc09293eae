//! The windowed client: a lit 3D placeholder scene (camera, light, floor, a glass tank), a status
//! line, window close routed through the shutdown phase, and the screenshot smoke check. The
//! player's fish, the HUD and the F3 overlay are in [`super::hud`]; the game issue replaces the
//! scene with the generated tank models.

use std::path::PathBuf;

use bevy::prelude::*;
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured, save_to_disk};
use bevy::window::WindowCloseRequested;

use super::{ConnectionState, ServerAddress};
use crate::app::RunMode;
use crate::config::{ClientConfig, ConfigChanged, Side};
use crate::shutdown::{Shutdown, ShutdownReason};

/// Size of the placeholder tank (width, height, depth), in metres.
const TANK: Vec3 = Vec3::new(4.0, 2.2, 2.0);

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
            .add_systems(Startup, spawn_scene)
            .add_systems(Update, apply_graphics_settings);
    }
}

fn spawn_scene(
    mut commands: Commands,
    mut meshes: ResMut<Assets<Mesh>>,
    mut materials: ResMut<Assets<StandardMaterial>>,
) {
    commands.spawn((
        Camera3d::default(),
        Transform::from_xyz(0.0, 3.2, 7.5).looking_at(Vec3::new(0.0, 1.1, 0.0), Vec3::Y),
    ));
    commands.spawn((
        DirectionalLight {
            illuminance: 9_000.0,
            shadow_maps_enabled: true,
            ..default()
        },
        Transform::from_xyz(4.0, 8.0, 5.0).looking_at(Vec3::ZERO, Vec3::Y),
    ));
    commands.spawn((
        PointLight {
            color: Color::srgb(0.6, 0.85, 1.0),
            intensity: 400_000.0,
            range: 12.0,
            ..default()
        },
        Transform::from_xyz(0.0, TANK.y + 1.5, 0.5),
    ));

    // Floor: a wooden table top on a dark room floor.
    commands.spawn((
        Mesh3d(meshes.add(Plane3d::default().mesh().size(30.0, 30.0))),
        MeshMaterial3d(materials.add(StandardMaterial {
            base_color: Color::srgb(0.18, 0.16, 0.15),
            perceptual_roughness: 0.9,
            ..default()
        })),
    ));
    commands.spawn((
        Mesh3d(meshes.add(Cuboid::new(TANK.x + 0.8, 0.2, TANK.z + 0.6))),
        MeshMaterial3d(materials.add(StandardMaterial {
            base_color: Color::srgb(0.45, 0.3, 0.18),
            perceptual_roughness: 0.7,
            ..default()
        })),
        Transform::from_xyz(0.0, 0.1, 0.0),
    ));

    let base = 0.2;
    // Sand bed.
    commands.spawn((
        Mesh3d(meshes.add(Cuboid::new(TANK.x - 0.05, 0.25, TANK.z - 0.05))),
        MeshMaterial3d(materials.add(StandardMaterial {
            base_color: Color::srgb(0.86, 0.76, 0.52),
            perceptual_roughness: 1.0,
            ..default()
        })),
        Transform::from_xyz(0.0, base + 0.125, 0.0),
    ));
    // Water volume, then the glass around it.
    commands.spawn((
        Mesh3d(meshes.add(Cuboid::new(TANK.x - 0.06, TANK.y * 0.85, TANK.z - 0.06))),
        MeshMaterial3d(materials.add(StandardMaterial {
            base_color: Color::srgba(0.15, 0.5, 0.85, 0.28),
            alpha_mode: AlphaMode::Blend,
            perceptual_roughness: 0.1,
            ..default()
        })),
        Transform::from_xyz(0.0, base + TANK.y * 0.425, 0.0),
    ));
    commands.spawn((
        Mesh3d(meshes.add(Cuboid::new(TANK.x, TANK.y, TANK.z))),
        MeshMaterial3d(materials.add(StandardMaterial {
            base_color: Color::srgba(0.85, 0.95, 1.0, 0.12),
            alpha_mode: AlphaMode::Blend,
            perceptual_roughness: 0.05,
            reflectance: 0.8,
            ..default()
        })),
        Transform::from_xyz(0.0, base + TANK.y / 2.0, 0.0),
    ));
    // Black frame: the twelve edges of the box.
    let frame = materials.add(StandardMaterial {
        base_color: Color::srgb(0.05, 0.05, 0.06),
        metallic: 0.6,
        perceptual_roughness: 0.4,
        ..default()
    });
    let t = 0.06;
    let half = TANK / 2.0;
    for (size, centre) in frame_edges(TANK, t) {
        commands.spawn((
            Mesh3d(meshes.add(Cuboid::from_size(size))),
            MeshMaterial3d(frame.clone()),
            Transform::from_translation(centre + Vec3::new(0.0, base + half.y, 0.0)),
        ));
    }

    // A few rocks and plants so the tank is not empty.
    let rock = materials.add(StandardMaterial {
        base_color: Color::srgb(0.42, 0.42, 0.45),
        perceptual_roughness: 0.95,
        ..default()
    });
    for (x, z, r) in [(-1.3, -0.4, 0.32), (-0.9, -0.6, 0.22), (1.2, -0.5, 0.28)] {
        commands.spawn((
            Mesh3d(meshes.add(Sphere::new(r))),
            MeshMaterial3d(rock.clone()),
            Transform::from_xyz(x, base + 0.25, z).with_scale(Vec3::new(1.3, 0.8, 1.0)),
        ));
    }
    let plant = materials.add(StandardMaterial {
        base_color: Color::srgb(0.15, 0.6, 0.25),
        perceptual_roughness: 0.8,
        ..default()
    });
    for (i, x) in [-1.6_f32, -0.3, 0.6, 1.6].into_iter().enumerate() {
        let h = 0.8 + 0.25 * i as f32;
        commands.spawn((
            Mesh3d(meshes.add(Capsule3d::new(0.05, h))),
            MeshMaterial3d(plant.clone()),
            Transform::from_xyz(x, base + 0.25 + h / 2.0, -0.7),
        ));
    }
}

/// ClientSafe settings applied live: `graphics.shadows` on the sun, `ui.scale` on the UI.
fn apply_graphics_settings(
    config: Option<Res<ClientConfig>>,
    mut changed: MessageReader<ConfigChanged>,
    mut suns: Query<&mut DirectionalLight>,
    mut ui_scale: ResMut<UiScale>,
    mut first: Local<bool>,
) {
    let Some(config) = config else { return };
    let relevant = changed
        .read()
        .any(|c| c.side == Side::Client && (c.under("graphics.shadows") || c.under("ui.scale")));
    if !relevant && *first {
        return;
    }
    *first = true;
    if let Ok(shadows) = config.get::<bool>("graphics.shadows") {
        for mut sun in &mut suns {
            sun.shadow_maps_enabled = shadows;
        }
    }
    if let Ok(scale) = config.get::<f32>("ui.scale") {
        ui_scale.0 = scale;
    }
}

/// The twelve edges of a box of `size` centred on the origin, as (size, centre) of thin bars.
fn frame_edges(size: Vec3, t: f32) -> Vec<(Vec3, Vec3)> {
    let h = size / 2.0;
    let mut edges = Vec::with_capacity(12);
    for sy in [-1.0, 1.0] {
        for sz in [-1.0, 1.0] {
            edges.push((
                Vec3::new(size.x + t, t, t),
                Vec3::new(0.0, sy * h.y, sz * h.z),
            ));
        }
        for sx in [-1.0, 1.0] {
            edges.push((
                Vec3::new(t, t, size.z + t),
                Vec3::new(sx * h.x, sy * h.y, 0.0),
            ));
        }
    }
    for sx in [-1.0, 1.0] {
        for sz in [-1.0, 1.0] {
            edges.push((Vec3::new(t, size.y, t), Vec3::new(sx * h.x, 0.0, sz * h.z)));
        }
    }
    edges
}

/// The status line: mode, server address and connection state.
pub struct StatusTextPlugin;

#[derive(Component)]
struct StatusText;

impl Plugin for StatusTextPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(Startup, spawn_status)
            .add_systems(Update, update_status);
    }
}

fn spawn_status(mut commands: Commands) {
    commands.spawn((
        Node {
            position_type: PositionType::Absolute,
            top: px(12),
            left: px(12),
            padding: UiRect::axes(px(12), px(8)),
            ..default()
        },
        BackgroundColor(Color::srgba(0.0, 0.0, 0.0, 0.55)),
        children![(
            Text::new("Bloxquarium"),
            TextFont::default().with_font_size(20.0),
            TextColor(Color::WHITE),
            StatusText,
        )],
    ));
}

/// The status line's text.
pub fn status_line(
    mode: RunMode,
    server: Option<&ServerAddress>,
    state: &ConnectionState,
) -> String {
    let server = server.map_or_else(|| "-".to_string(), |s| s.0.to_string());
    format!(
        "Bloxquarium | {} mode | server {server} | {state}",
        mode.name()
    )
}

fn update_status(
    mode: Res<RunMode>,
    server: Option<Res<ServerAddress>>,
    state: Res<ConnectionState>,
    mut text: Query<&mut Text, With<StatusText>>,
) {
    if !(mode.is_changed() || state.is_changed()) {
        return;
    }
    let line = status_line(*mode, server.as_deref(), &state);
    for mut t in &mut text {
        t.0.clone_from(&line);
    }
}

/// Closing the window starts the shutdown phase instead of exiting on the spot.
pub struct WindowClosePlugin;

impl Plugin for WindowClosePlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(Update, close_requested);
    }
}

fn close_requested(
    mut requests: MessageReader<WindowCloseRequested>,
    mut shutdown: ResMut<Shutdown>,
) {
    if requests.read().next().is_some() {
        shutdown.request(ShutdownReason::WindowClosed);
    }
}

/// Saves a PNG of the window after a number of frames, then shuts down (the smoke check).
pub struct ScreenshotPlugin {
    /// Where to save; nothing happens without one.
    pub path: Option<PathBuf>,
    /// Frames to let pass first (pipelines compile during the first ones).
    pub after_frames: u32,
}

#[derive(Resource)]
struct ScreenshotPlan {
    path: PathBuf,
    after_frames: u32,
    frames: u32,
    taken: bool,
}

impl Plugin for ScreenshotPlugin {
    fn build(&self, app: &mut App) {
        if let Some(path) = &self.path {
            app.insert_resource(ScreenshotPlan {
                path: path.clone(),
                after_frames: self.after_frames,
                frames: 0,
                taken: false,
            })
            .add_systems(Update, take_screenshot);
        }
    }
}

fn take_screenshot(mut commands: Commands, mut plan: ResMut<ScreenshotPlan>) {
    if plan.taken {
        return;
    }
    plan.frames += 1;
    if plan.frames < plan.after_frames {
        return;
    }
    plan.taken = true;
    info!(
        "taking a screenshot after {} frames: {}",
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
