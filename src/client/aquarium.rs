//! The aquarium as the player sees it, from the generated models: the tank model of the
//! player's level, sand, water surface and decorations, the fish of each species with their
//! swim animation, an orbit/zoom camera, and the loading screen with its progress bar. Models
//! come through the asset streamer (verified, cached, with the fallback on failure).

use std::collections::{HashMap, HashSet};

use bevy::gltf::Gltf;
use bevy::input::mouse::{AccumulatedMouseMotion, AccumulatedMouseScroll};
use bevy::prelude::*;
use bevy::world_serialization::WorldAssetRoot;
use iyes_progress::ProgressTracker;

use crate::assets::{AssetPhase, Decoders, Streamer};
use crate::game::DECORATIONS;
use crate::game::protocol::PlayerState;
use crate::game::{Prediction, Shop, Visit};
use crate::stages::ClientSystems;

/// Scale from model units to the scene's metres.
pub const SCALE: f32 = 2.5;

/// Half extents of the generated tank of `level` (width, height, depth; model units).
pub fn tank_half(level: u8) -> Vec3 {
    Vec3::from(crate::game::tank_half_extents(u32::from(level.clamp(1, 5))))
}

/// Where fish swim in a tank of `level`: centre and half extents, in scene metres.
pub fn swim_volume(level: u8) -> ([f32; 3], [f32; 3]) {
    let h = tank_half(level) * SCALE;
    (
        [0.0, TANK_BASE + h.y, 0.0],
        [h.x * 0.8, h.y * 0.6, h.z * 0.6],
    )
}

/// Height of the table top the tank stands on.
pub const TABLE_TOP: f32 = 0.4;

/// Height of the tank's origin (its gravel floor): the generated stand reaches 0.13 model
/// units below it.
pub const TANK_BASE: f32 = TABLE_TOP + 0.13 * SCALE;

/// The aquarium on screen, worked out once a frame for the systems that draw it: the one
/// being visited, else the player's own (predicted).
#[derive(Resource, Debug, Default)]
pub struct ShownAquarium {
    /// Whose: the visited player's id, 0 for the player's own.
    pub owner: u64,
    /// Its state (`None` before the first state from the server).
    pub state: Option<PlayerState>,
}

impl ShownAquarium {
    /// The tank level on screen (1 before there is one).
    pub fn level(&self) -> u8 {
        self.state.as_ref().map_or(1, |s| s.tank_level)
    }
}

fn refresh_shown(
    prediction: Res<Prediction>,
    shop: Res<Shop>,
    visit: Res<Visit>,
    mut shown: ResMut<ShownAquarium>,
) {
    shown.owner = visit.showing.as_ref().map_or(0, |(id, ..)| *id);
    shown.state = match &visit.showing {
        Some((_, _, s)) => Some(s.clone()),
        None => shop
            .catalog()
            .and_then(|c| prediction.predictor.predicted(c)),
    };
}

/// Where the `i`-th decoration stands, as fractions of the tank's half width and depth.
const DECOR_SLOTS: [(f32, f32); 12] = [
    (-0.7, -0.55),
    (0.55, -0.5),
    (0.15, -0.45),
    (-0.4, -0.6),
    (0.8, -0.6),
    (-0.85, -0.15),
    (0.0, -0.65),
    (0.85, 0.1),
    (-0.25, -0.3),
    (0.4, -0.2),
    (-0.6, 0.2),
    (0.6, 0.3),
];

/// The model of the `i`-th decoration of `kind`.
fn decoration_model(kind: u8, i: usize) -> String {
    match DECORATIONS.get(usize::from(kind)).copied() {
        Some("Rock") => format!("Models/Props/Rock_{}", 1 + i % 3),
        Some("Plant") => format!("Models/Environment/Plant_{}", 1 + i % 3),
        Some("Castle") => "Models/Props/Castle".into(),
        _ => "Models/Miscellaneous/Fallback".into(),
    }
}

/// Models and textures by professional path, once loaded (or their fallback).
#[derive(Resource, Default)]
pub struct AssetLibrary {
    loaded: HashMap<String, UntypedHandle>,
    requested: HashSet<String>,
}

impl AssetLibrary {
    /// The asset, when it is there; asks the streamer for it (at the quality in use) the first
    /// time.
    fn get<A: Asset>(&mut self, path: &str, streamer: &mut Streamer) -> Option<Handle<A>> {
        if let Some(h) = self.loaded.get(path) {
            return h.clone().try_typed::<A>().ok();
        }
        if self.requested.insert(path.to_string()) {
            let level = streamer.quality();
            streamer.stream_with_quality(path, level, |world, outcome| {
                world
                    .resource_mut::<AssetLibrary>()
                    .loaded
                    .insert(outcome.path.clone(), outcome.handle.clone());
            });
        }
        None
    }

    /// A model already in.
    fn model(&self, path: &str) -> Option<Handle<Gltf>> {
        self.loaded.get(path)?.clone().try_typed::<Gltf>().ok()
    }
}

/// The orbit camera: drag with the right mouse button (or Q/E, R/T) to turn, wheel (or
/// PageUp/PageDown) to zoom.
#[derive(Component)]
pub struct OrbitCamera {
    /// Around the vertical axis, radians.
    pub yaw: f32,
    /// Above the horizon, radians.
    pub pitch: f32,
    /// From the target, metres.
    pub distance: f32,
    /// What it looks at.
    pub target: Vec3,
}

impl OrbitCamera {
    /// The camera's transform.
    pub fn transform(&self) -> Transform {
        let dir = Vec3::new(
            self.yaw.sin() * self.pitch.cos(),
            self.pitch.sin(),
            self.yaw.cos() * self.pitch.cos(),
        );
        Transform::from_translation(self.target + dir * self.distance)
            .looking_at(self.target, Vec3::Y)
    }
}

#[derive(Component)]
struct TankPart;

#[derive(Component)]
struct LoadingScreen;

#[derive(Component)]
struct LoadingBar;

#[derive(Component)]
struct LoadingLabel;

/// A fish's model child, spawned once the species' model is in.
#[derive(Component)]
pub struct FishModel;

/// The species of a fish entity.
#[derive(Component, Clone, Copy)]
pub struct FishSpecies(pub u8);

/// What the tank on screen shows: owner, level and decorations.
#[derive(Resource, Default)]
struct ShownTank(Option<(u64, u8, Vec<u8>)>);

/// Decoders for the renderer, the loading screen, the tank and the camera.
pub struct AquariumPlugin;

impl Plugin for AquariumPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<AssetLibrary>()
            .init_resource::<ShownAquarium>()
            .add_systems(PreUpdate, refresh_shown.in_set(ClientSystems::Sync))
            .init_resource::<ShownTank>()
            .init_resource::<Decoders>()
            .add_systems(Startup, (register_decoders, spawn_loading_screen))
            .add_systems(OnEnter(AssetPhase::Playing), hide_loading_screen)
            .add_systems(
                Update,
                (
                    update_loading_screen,
                    (show_tank, attach_fish_models, start_swim_animations)
                        .run_if(in_state(AssetPhase::Playing)),
                    orbit_camera,
                )
                    .in_set(ClientSystems::Present),
            );
    }
}

/// Models decode as glTF, textures as images, fonts as fonts; each kind has a visible
/// fallback: the magenta box model, a magenta checker texture, the default font.
fn register_decoders(
    mut decoders: ResMut<Decoders>,
    server: Res<AssetServer>,
    mut images: ResMut<Assets<Image>>,
) {
    let fallback_model = server.load::<Gltf>("Models/Miscellaneous/Fallback.glb");
    decoders.set::<Gltf>("model", fallback_model);
    decoders.set::<Image>("texture", images.add(checker()));
    decoders.set::<Font>("font", Handle::<Font>::default());
}

/// A magenta and black checker: the texture nobody mistakes for a real one.
fn checker() -> Image {
    let n = 16u32;
    let mut data = Vec::with_capacity((n * n * 4) as usize);
    for y in 0..n {
        for x in 0..n {
            let on = ((x / 4) + (y / 4)) % 2 == 0;
            data.extend_from_slice(if on {
                &[255, 0, 255, 255]
            } else {
                &[0, 0, 0, 255]
            });
        }
    }
    square_image(n, data)
}

/// An `n`×`n` sRGB RGBA image from its pixels (4 bytes each, row by row).
pub fn square_image(n: u32, data: Vec<u8>) -> Image {
    use bevy::render::render_resource::{Extent3d, TextureDimension, TextureFormat};
    Image::new(
        Extent3d {
            width: n,
            height: n,
            depth_or_array_layers: 1,
        },
        TextureDimension::D2,
        data,
        TextureFormat::Rgba8UnormSrgb,
        default(),
    )
}

fn spawn_loading_screen(mut commands: Commands) {
    commands.spawn((
        LoadingScreen,
        Node {
            position_type: PositionType::Absolute,
            width: percent(100),
            height: percent(100),
            flex_direction: FlexDirection::Column,
            justify_content: JustifyContent::Center,
            align_items: AlignItems::Center,
            row_gap: px(16),
            ..default()
        },
        BackgroundColor(Color::srgb(0.03, 0.08, 0.15)),
        GlobalZIndex(10),
        children![
            (
                Text::new("Bloxquarium"),
                TextFont::default().with_font_size(48.0),
                TextColor(Color::srgb(0.6, 0.9, 1.0)),
            ),
            (
                LoadingLabel,
                Text::new("Connecting..."),
                TextFont::default().with_font_size(20.0),
                TextColor(Color::srgb(0.85, 0.9, 0.95)),
            ),
            (
                Node {
                    width: px(420),
                    height: px(18),
                    border: UiRect::all(px(2)),
                    ..default()
                },
                BorderColor::all(Color::srgb(0.5, 0.8, 1.0)),
                children![(
                    LoadingBar,
                    Node {
                        width: percent(0),
                        height: percent(100),
                        ..default()
                    },
                    BackgroundColor(Color::srgb(0.3, 0.75, 1.0)),
                )],
            ),
        ],
    ));
}

fn update_loading_screen(
    phase: Res<State<AssetPhase>>,
    tracker: Res<ProgressTracker<AssetPhase>>,
    mut bar: Query<&mut Node, With<LoadingBar>>,
    mut label: Query<&mut Text, With<LoadingLabel>>,
) {
    let (text, fraction) = match phase.get() {
        AssetPhase::WaitingForManifest => ("Connecting...".to_string(), 0.0),
        AssetPhase::Loading | AssetPhase::Recovering => {
            let p = tracker.get_global_progress();
            let (done, total) = (p.done, p.total);
            let f = if total == 0 {
                0.0
            } else {
                done as f32 / total as f32
            };
            (format!("Loading the aquarium... {:.0}%", f * 100.0), f)
        }
        AssetPhase::Playing => return,
    };
    for mut n in &mut bar {
        n.width = percent(fraction * 100.0);
    }
    for mut t in &mut label {
        if t.0 != text {
            t.0.clone_from(&text);
        }
    }
}

fn hide_loading_screen(mut commands: Commands, screens: Query<Entity, With<LoadingScreen>>) {
    for e in &screens {
        commands.entity(e).despawn();
    }
}

/// The tank of the player's level, its sand, water and decorations; rebuilt on upgrade.
#[allow(clippy::too_many_arguments)]
fn show_tank(
    mut commands: Commands,
    aquarium: Res<ShownAquarium>,
    mut shown: ResMut<ShownTank>,
    mut library: ResMut<AssetLibrary>,
    mut streamer: Streamer,
    gltfs: Res<Assets<Gltf>>,
    parts: Query<Entity, With<TankPart>>,
    mut cameras: Query<&mut OrbitCamera>,
    mut meshes: ResMut<Assets<Mesh>>,
    mut materials: ResMut<Assets<StandardMaterial>>,
) {
    let Some(state) = aquarium.state.as_ref() else {
        return;
    };
    let level = state.tank_level;
    let key = (aquarium.owner, level, state.decorations.clone());
    if shown.0.as_ref() == Some(&key) {
        return;
    }
    let tank = format!("Models/Aquariums/Aquarium_Lv{level}");
    // (model, where, sways): plants sway in the water.
    let mut pieces: Vec<(String, Transform, bool)> =
        vec![(tank.clone(), Transform::default(), false)];
    let h = tank_half(level);
    // Decorations in their slots, scaled to the tank; a few more per slot round beyond twelve.
    for (i, kind) in state.decorations.iter().enumerate() {
        let (fx, fz) = DECOR_SLOTS[i % DECOR_SLOTS.len()];
        let nudge = (i / DECOR_SLOTS.len()) as f32 * 0.08;
        pieces.push((
            decoration_model(*kind, i),
            Transform::from_xyz((fx + nudge) * h.x, 0.02, (fz + nudge) * h.z)
                .with_rotation(Quat::from_rotation_y(i as f32 * 1.3)),
            DECORATIONS.get(usize::from(*kind)) == Some(&"Plant"),
        ));
    }
    pieces.push((
        "Models/Environment/Water_Surface".into(),
        Transform::from_xyz(0.0, 2.0 * h.y * 0.92, 0.0).with_scale(Vec3::new(h.x, 1.0, h.z)),
        false,
    ));
    // Wait until every piece is in (or its fallback), so the tank appears whole.
    let mut scenes = Vec::new();
    for (path, t, sways) in &pieces {
        let Some(handle) = library.get::<Gltf>(path, &mut streamer) else {
            return;
        };
        let Some(gltf) = gltfs.get(&handle) else {
            return;
        };
        let Some(scene) = gltf.default_scene.clone().or(gltf.scenes.first().cloned()) else {
            return;
        };
        scenes.push((scene, *t, *sways));
    }
    // The sand floor and the water backdrop, textured at the quality in use.
    let (Some(sand), Some(water)) = (
        library.get::<Image>("Textures/Sand", &mut streamer),
        library.get::<Image>("Textures/Water", &mut streamer),
    ) else {
        return;
    };
    shown.0 = Some(key);
    for e in &parts {
        commands.entity(e).despawn();
    }
    let root = commands
        .spawn((
            TankPart,
            Transform::from_xyz(0.0, TANK_BASE, 0.0).with_scale(Vec3::splat(SCALE)),
            Visibility::default(),
        ))
        .id();
    for (i, (scene, t, sways)) in scenes.into_iter().enumerate() {
        let piece = commands
            .spawn((WorldAssetRoot(scene), t, ChildOf(root)))
            .id();
        if sways {
            commands.entity(piece).insert(super::tank_fx::Sway {
                rest: t.rotation,
                phase: i as f32 * 2.1,
            });
        }
    }
    let textured = |texture: Handle<Image>| StandardMaterial {
        base_color_texture: Some(texture),
        perceptual_roughness: 0.95,
        ..default()
    };
    commands.spawn((
        Mesh3d(meshes.add(Plane3d::new(Vec3::Y, Vec2::new(h.x * 0.98, h.z * 0.98)))),
        MeshMaterial3d(materials.add(textured(sand))),
        Transform::from_xyz(0.0, 0.026, 0.0),
        super::tank_fx::SandFloor,
        ChildOf(root),
    ));
    commands.spawn((
        Mesh3d(meshes.add(Plane3d::new(Vec3::Z, Vec2::new(h.x * 0.98, h.y * 0.92)))),
        MeshMaterial3d(materials.add(textured(water))),
        Transform::from_xyz(0.0, h.y * 0.92, -h.z * 0.97),
        ChildOf(root),
    ));
    info!("showing the Lv{level} tank");
    let size = h * SCALE;
    for mut cam in &mut cameras {
        cam.target = Vec3::new(0.0, TANK_BASE + size.y, 0.0);
        cam.distance = (size.x * 2.6).max(3.5);
    }
}

/// Gives each fish its species' model once that model is in.
fn attach_fish_models(
    mut commands: Commands,
    mut library: ResMut<AssetLibrary>,
    mut streamer: Streamer,
    gltfs: Res<Assets<Gltf>>,
    fish: Query<(Entity, &FishSpecies), Without<FishModel>>,
) {
    for (e, species) in &fish {
        let path = crate::game::species_model(species.0);
        let Some(handle) = library.get::<Gltf>(&path, &mut streamer) else {
            continue;
        };
        let Some(scene) = gltfs
            .get(&handle)
            .and_then(|g| g.default_scene.clone().or(g.scenes.first().cloned()))
        else {
            continue;
        };
        commands.entity(e).insert(FishModel);
        commands.spawn((
            WorldAssetRoot(scene),
            Transform::from_scale(Vec3::splat(SCALE)),
            ChildOf(e),
        ));
    }
}

/// Starts each fish's "swim" clip as its model's animation player appears, at a phase of its
/// own so the school does not beat in step.
#[allow(clippy::too_many_arguments)]
fn start_swim_animations(
    mut commands: Commands,
    mut players: Query<(Entity, &mut AnimationPlayer), Added<AnimationPlayer>>,
    parents: Query<&ChildOf>,
    species: Query<&FishSpecies>,
    library: Res<AssetLibrary>,
    gltfs: Res<Assets<Gltf>>,
    mut graphs: ResMut<Assets<AnimationGraph>>,
    mut cache: Local<HashMap<u8, (Handle<AnimationGraph>, AnimationNodeIndex)>>,
) {
    for (e, mut player) in &mut players {
        let Some((fish, s)) = parents
            .iter_ancestors(e)
            .find_map(|a| species.get(a).ok().map(|s| (a, s.0)))
        else {
            continue;
        };
        if let std::collections::hash_map::Entry::Vacant(slot) = cache.entry(s) {
            let clip = library
                .model(&crate::game::species_model(s))
                .and_then(|h| gltfs.get(&h))
                .and_then(|g| g.named_animations.get("swim").cloned());
            let Some(clip) = clip else { continue };
            let (graph, node) = AnimationGraph::from_clip(clip);
            slot.insert((graphs.add(graph), node));
        }
        if let Some((graph, node)) = cache.get(&s) {
            commands
                .entity(e)
                .insert(AnimationGraphHandle(graph.clone()));
            let phase = (fish.index_u32() % 7) as f32 * 0.13;
            player.play(*node).repeat().seek_to(phase);
        }
    }
}

fn orbit_camera(
    keys: Res<ButtonInput<KeyCode>>,
    buttons: Res<ButtonInput<MouseButton>>,
    motion: Res<AccumulatedMouseMotion>,
    scroll: Res<AccumulatedMouseScroll>,
    time: Res<Time>,
    mut cams: Query<(&mut OrbitCamera, &mut Transform)>,
) {
    let dt = time.delta_secs();
    for (mut cam, mut t) in &mut cams {
        let mut yaw = 0.0;
        let mut pitch = 0.0;
        let mut zoom = 0.0;
        {
            let k = &keys;
            if k.pressed(KeyCode::KeyQ) {
                yaw -= 1.2 * dt;
            }
            if k.pressed(KeyCode::KeyE) {
                yaw += 1.2 * dt;
            }
            if k.pressed(KeyCode::KeyR) {
                pitch += 0.8 * dt;
            }
            if k.pressed(KeyCode::KeyT) {
                pitch -= 0.8 * dt;
            }
            if k.pressed(KeyCode::PageUp) {
                zoom -= 3.0 * dt;
            }
            if k.pressed(KeyCode::PageDown) {
                zoom += 3.0 * dt;
            }
        }
        if buttons.pressed(MouseButton::Right) {
            yaw -= motion.delta.x * 0.005;
            pitch += motion.delta.y * 0.005;
        }
        zoom -= scroll.delta.y * 0.3;
        cam.yaw += yaw;
        cam.pitch = (cam.pitch + pitch).clamp(0.05, 1.4);
        cam.distance = (cam.distance + zoom).clamp(1.5, 25.0);
        let want = cam.transform();
        // Ease towards the wanted place, so a tank upgrade glides rather than jumps.
        let k = (dt * 6.0).min(1.0);
        t.translation = t.translation.lerp(want.translation, k);
        t.rotation = t.rotation.slerp(want.rotation, k);
    }
}
