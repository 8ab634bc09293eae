//! The tank's effects and the frame limiter: bubbles whose count follows
//! `graphics.particleQuality`, and frames no faster than `graphics.fpsCap`.

use std::time::{Duration, Instant};

use bevy::prelude::*;

use super::aquarium::{ShownAquarium, TANK_BASE};
use crate::config::ClientConfig;
use crate::stages::ClientSystems;

#[derive(Component)]
struct Bubble {
    speed: f32,
    phase: f32,
}

/// The bubbles and the frame limiter.
pub struct TankEffectsPlugin;

impl Plugin for TankEffectsPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(Update, bubbles.in_set(ClientSystems::Present))
            .add_systems(Last, limit_frame_rate.in_set(ClientSystems::Finish));
    }
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
