//! The tank's effects and the frame limiter: bubbles whose count follows
//! `graphics.particleQuality`; plants that sway; caustics playing over the sand; a coin that
//! pops out of a fish where income lands; and frames no faster than `graphics.fpsCap`.

use std::time::{Duration, Instant};

use bevy::prelude::*;

use super::aquarium::{ShownAquarium, TANK_BASE};
use super::shading::{Overlay, SceneMaterial};
use crate::config::ClientConfig;
use crate::stages::ClientSystems;

#[derive(Component)]
struct Bubble {
    speed: f32,
    phase: f32,
}

/// A decoration that sways in the water about its base (plants).
#[derive(Component, Debug, Clone, Copy)]
pub struct Sway {
    /// Its rotation at rest.
    pub rest: Quat,
    /// Where in the sway it starts.
    pub phase: f32,
}

/// The sand floor of the tank shown: caustics play over it.
#[derive(Component)]
pub struct SandFloor;

/// A sand floor drawn with its caustics.
#[derive(Component)]
struct Caustics;

/// A coin rising out of a fish where income landed.
#[derive(Component)]
struct CoinPop {
    age: f32,
}

/// Coins landed: the player's balance on the server rose (said at most twice a second). The
/// coin sound and the coin pop both follow it.
#[derive(Message, Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoinsLanded;

/// How long a coin pop lasts (seconds).
const COIN_POP_SECS: f32 = 1.2;

/// Shared looks: the caustics (as a layer: added over the sand's own material), the coin's mesh
/// and material.
#[derive(Resource, Default)]
struct Looks {
    caustics: Option<Overlay>,
    coin: Option<(Handle<Mesh>, Handle<StandardMaterial>)>,
}

/// The tank's effects and the frame limiter.
pub struct TankEffectsPlugin;

impl Plugin for TankEffectsPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<Looks>()
            .add_message::<CoinsLanded>()
            .add_systems(Update, watch_coins.in_set(ClientSystems::Handle))
            .add_systems(
                Update,
                (bubbles, sway, caustics, coin_pops).in_set(ClientSystems::Present),
            )
            .add_systems(Last, limit_frame_rate.in_set(ClientSystems::Finish));
    }
}

/// Plants lean back and forth about their base, each at its own phase.
fn sway(time: Res<Time>, mut plants: Query<(&Sway, &mut Transform)>) {
    let t = time.elapsed_secs();
    for (s, mut tr) in &mut plants {
        let lean = Quat::from_rotation_z(0.09 * (t * 1.1 + s.phase).sin())
            * Quat::from_rotation_x(0.05 * (t * 0.7 + s.phase * 1.7).sin());
        tr.rotation = s.rest * lean;
    }
}

/// A tiling caustics pattern: bright wavy lines where three waves cross (alpha = brightness).
pub fn caustics_image(n: u32) -> Image {
    use bevy::image::{ImageAddressMode, ImageSampler, ImageSamplerDescriptor};
    use std::f32::consts::TAU;
    // Integer wave numbers: the pattern tiles.
    const WAVES: [([f32; 2], [f32; 2]); 3] = [
        ([3.0, 1.0], [1.0, -2.0]),
        ([-1.0, 3.0], [2.0, 1.0]),
        ([2.0, -2.0], [1.0, 3.0]),
    ];
    let mut data = Vec::with_capacity((n * n * 4) as usize);
    for y in 0..n {
        for x in 0..n {
            let (u, v) = (x as f32 / n as f32, y as f32 / n as f32);
            let mut light = 0.0;
            for (k, w) in WAVES {
                let phase = TAU * (k[0] * u + k[1] * v) + 1.2 * (TAU * (w[0] * u + w[1] * v)).sin();
                light += (1.0 - phase.sin().abs()).powi(6);
            }
            let a = (light * 0.6).min(1.0);
            data.extend_from_slice(&[255, 255, 255, (a * 255.0) as u8]);
        }
    }
    let mut image = super::aquarium::square_image(n, data);
    image.sampler = ImageSampler::Descriptor(ImageSamplerDescriptor {
        address_mode_u: ImageAddressMode::Repeat,
        address_mode_v: ImageAddressMode::Repeat,
        ..ImageSamplerDescriptor::linear()
    });
    image
}

/// A sand floor without its caustics yet.
type BareSand = (With<SandFloor>, Without<Caustics>);

/// Caustics over the sand: added light, drifting (the drift is the material's, played by its
/// shader: the material never changes), drawn with the sand in one pass: the sand's material
/// gets the caustics as its overlay once it is a `SceneMaterial` (a blended layer of its own
/// cost the software renderer about as much as the sand).
fn caustics(
    mut commands: Commands,
    mut looks: ResMut<Looks>,
    mut images: ResMut<Assets<Image>>,
    mut materials: ResMut<Assets<SceneMaterial>>,
    sand: Query<(Entity, &MeshMaterial3d<SceneMaterial>), BareSand>,
) {
    if sand.is_empty() {
        return;
    }
    let layer = looks.caustics.get_or_insert_with(|| Overlay {
        texture: images.add(caustics_image(128)),
        color: LinearRgba::from(Color::srgba(0.75, 0.95, 1.0, 0.5)).to_vec4(),
        uv_transform: Mat3::from_scale(Vec2::splat(2.5)),
        // Across the sand, and back and forth: 0.021, 0.013 texture widths a second,
        // swaying by 0.01 every 4π seconds.
        drift: Vec4::new(0.021, 0.013, 0.01, 0.5),
    });
    for (floor, own) in &sand {
        let Some(with) = materials.get(&own.0).map(|m| m.with_overlay(layer)) else {
            continue;
        };
        let handle = materials.add(with);
        commands
            .entity(floor)
            .insert((Caustics, MeshMaterial3d(handle)));
    }
}

/// Says [`CoinsLanded`] when the player's balance on the server rose, at most twice a second.
fn watch_coins(
    prediction: Res<crate::game::Prediction>,
    time: Res<Time<Real>>,
    mut landed: MessageWriter<CoinsLanded>,
    mut last: Local<(Option<i64>, Duration)>,
) {
    let Some(coins) = prediction.predictor.authoritative().map(|s| s.coins) else {
        return;
    };
    let now = time.elapsed();
    let (seen, said) = &mut *last;
    if seen.is_some_and(|c| coins > c) && now.saturating_sub(*said) >= Duration::from_millis(500) {
        *said = now;
        landed.write(CoinsLanded);
    }
    *seen = Some(coins);
}

/// A coin pops out of one of the player's fish each time coins land (in the player's own
/// aquarium), rises, spins and is gone after [`COIN_POP_SECS`].
#[allow(clippy::too_many_arguments)]
fn coin_pops(
    mut commands: Commands,
    time: Res<Time>,
    mut landed: MessageReader<CoinsLanded>,
    visit: Res<crate::game::Visit>,
    fish: Query<&GlobalTransform, With<super::aquarium::FishModel>>,
    mut pops: Query<(Entity, &mut CoinPop, &mut Transform)>,
    mut looks: ResMut<Looks>,
    mut meshes: ResMut<Assets<Mesh>>,
    mut materials: ResMut<Assets<StandardMaterial>>,
    mut turn: Local<usize>,
) {
    let dt = time.delta_secs();
    for (e, mut pop, mut t) in &mut pops {
        pop.age += dt;
        if pop.age >= COIN_POP_SECS {
            commands.entity(e).despawn();
            continue;
        }
        t.translation.y += 0.45 * dt;
        t.rotate_y(6.0 * dt);
        let fade = 1.0 - (pop.age / COIN_POP_SECS).powi(3);
        t.scale = Vec3::splat(fade.max(0.05));
    }
    if landed.read().count() == 0 || visit.showing.is_some() {
        return;
    }
    let places: Vec<Vec3> = fish.iter().map(GlobalTransform::translation).collect();
    let Some(place) = places.get(*turn % places.len().max(1)).copied() else {
        return;
    };
    *turn += 1;
    let (mesh, material) = looks
        .coin
        .get_or_insert_with(|| {
            (
                meshes.add(Cylinder::new(0.06, 0.012)),
                materials.add(StandardMaterial {
                    base_color: Color::srgb(1.0, 0.8, 0.2),
                    emissive: LinearRgba::rgb(0.6, 0.45, 0.05),
                    metallic: 0.9,
                    perceptual_roughness: 0.3,
                    ..default()
                }),
            )
        })
        .clone();
    commands.spawn((
        CoinPop { age: 0.0 },
        Mesh3d(mesh),
        MeshMaterial3d(material),
        Transform::from_translation(place + Vec3::Y * 0.12)
            .with_rotation(Quat::from_rotation_x(std::f32::consts::FRAC_PI_2)),
    ));
}

/// The shortest a frame may be: one over `graphics.fpsCap` (15..=240; 60 without the key).
pub fn shortest_frame(config: &crate::config::Config) -> Duration {
    let cap = config
        .get::<i64>("graphics.fpsCap")
        .unwrap_or(60)
        .clamp(15, 240);
    Duration::from_secs_f64(1.0 / cap as f64)
}

/// How many bubbles rise: 8, 16, 32 or 64 by `graphics.particleQuality` (32 without the key).
pub fn bubble_count(config: &crate::config::Config) -> usize {
    match config
        .get::<String>("graphics.particleQuality")
        .ok()
        .as_deref()
    {
        Some("LOW") => 8,
        Some("MEDIUM") => 16,
        Some("ULTRA") => 64,
        _ => 32,
    }
}

/// Sleeps at the end of a frame so frames come no faster than `graphics.fpsCap`.
fn limit_frame_rate(config: Res<ClientConfig>, mut last: Local<Option<Instant>>) {
    let frame = shortest_frame(&config.0);
    if let Some(t) = *last {
        let spent = t.elapsed();
        if spent < frame {
            std::thread::sleep(frame - spent);
        }
    }
    *last = Some(Instant::now());
}

/// Bubbles rising through the water: 8, 16, 32 or 64 of them by `graphics.particleQuality`,
/// changed live.
#[allow(clippy::too_many_arguments)]
fn bubbles(
    mut commands: Commands,
    config: Res<ClientConfig>,
    shown: Res<ShownAquarium>,
    time: Res<Time>,
    mut existing: Query<(Entity, &Bubble, &mut Transform)>,
    mut meshes: ResMut<Assets<Mesh>>,
    mut materials: ResMut<Assets<StandardMaterial>>,
    mut look: Local<Option<(Handle<Mesh>, Handle<StandardMaterial>)>>,
) {
    let want = bubble_count(&config.0);
    let (centre, half) = super::aquarium::swim_volume(shown.level());
    let have = existing.iter().count();
    if have != want {
        let (mesh, mat) = look
            .get_or_insert_with(|| {
                (
                    meshes.add(Sphere::new(0.025).mesh().uv(8, 6)),
                    materials.add(StandardMaterial {
                        base_color: Color::srgba(0.9, 0.97, 1.0, 0.55),
                        alpha_mode: AlphaMode::Blend,
                        perceptual_roughness: 0.05,
                        ..default()
                    }),
                )
            })
            .clone();
        for (i, (e, ..)) in existing.iter().enumerate() {
            if i >= want {
                commands.entity(e).despawn();
            }
        }
        for i in have..want {
            let k = i as f32;
            commands.spawn((
                Bubble {
                    speed: 0.25 + 0.2 * (k * 1.3).sin().abs(),
                    phase: k * 0.37,
                },
                Mesh3d(mesh.clone()),
                MeshMaterial3d(mat.clone()),
                Transform::from_xyz(0.0, TANK_BASE, 0.0),
            ));
        }
    }
    // Two columns of bubbles from the back corners, wobbling as they rise.
    let top = centre[1] + half[1] * 1.5;
    let t = time.elapsed_secs();
    for (_, b, mut tr) in &mut existing {
        let rise = (t * b.speed + b.phase) % 1.0;
        let side = if (b.phase * 10.0) as i32 % 2 == 0 {
            -1.0
        } else {
            1.0
        };
        tr.translation = Vec3::new(
            side * half[0] * 0.9 + 0.05 * (t * 3.0 + b.phase * 5.0).sin(),
            TANK_BASE + rise * (top - TANK_BASE),
            -half[2] * 0.8 + 0.05 * (t * 2.0 + b.phase).cos(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ConfigValue;

    fn with(key: &str, value: ConfigValue) -> crate::config::Config {
        let mut c = crate::config::defaults_for_tests();
        c.set(key, value, "test", "", Duration::ZERO).unwrap();
        c
    }

    #[test]
    fn the_caustics_tile_and_are_mostly_dark() {
        let img = caustics_image(64);
        let data = img.data.as_ref().expect("pixels");
        let alpha = |x: usize, y: usize| data[(y * 64 + x) * 4 + 3];
        // Edges meet: the step from the last column to the first is no larger than steps
        // between neighbouring columns inside (the waves repeat over the tile).
        let step = |a: usize, b: usize| -> i32 {
            (0..64)
                .map(|y| (i32::from(alpha(a, y)) - i32::from(alpha(b, y))).abs())
                .sum()
        };
        let seam = step(63, 0);
        let inside = (0..63).map(|x| step(x, x + 1)).max().unwrap_or(0);
        assert!(
            seam <= inside,
            "the pattern tiles: seam {seam}, inside up to {inside}"
        );
        let bright = (0..64 * 64).filter(|i| data[i * 4 + 3] > 128).count();
        assert!(
            bright > 64 && bright < 64 * 64 / 2,
            "lines, not a wash: {bright}"
        );
    }

    #[test]
    fn the_frame_cap_sets_the_shortest_frame() {
        let d = crate::config::defaults_for_tests();
        assert_eq!(shortest_frame(&d), Duration::from_secs_f64(1.0 / 60.0));
        let c = with("graphics.fpsCap", ConfigValue::Int(20));
        assert_eq!(shortest_frame(&c), Duration::from_millis(50));
    }

    #[test]
    fn particle_quality_sets_how_many_bubbles_rise() {
        assert_eq!(bubble_count(&crate::config::defaults_for_tests()), 32);
        let n = |q: &str| {
            bubble_count(&with(
                "graphics.particleQuality",
                ConfigValue::Text(q.into()),
            ))
        };
        assert_eq!([n("LOW"), n("MEDIUM"), n("ULTRA")], [8, 16, 64]);
    }
}
