//! The frame-time baseline of `scripts/frame-bench.sh` (`bloxquarium frame-baseline`): Bevy's
//! own `3d_scene` example (bevy 0.19.1, `examples/3d/3d_scene.rs`: a circular base, a cube, a
//! point light with shadows, a camera; default multisampling), unchanged but for a 1280×720
//! window and the frame-time line the game logs before its screenshot (the second half of the
//! frames), built into this binary so that both run on the same Bevy build and features.

use bevy::prelude::*;
use bevy::window::WindowPlugin;

/// The baseline's App: runs `frames` frames, logs the frame times, exits.
pub fn frame_baseline(frames: u32) -> App {
    let mut app = App::new();
    app.add_plugins(DefaultPlugins.set(WindowPlugin {
        primary_window: Some(Window {
            title: "bevy 3d_scene".into(),
            resolution: (1280, 720).into(),
            ..default()
        }),
        ..default()
    }))
    .insert_resource(Frames {
        wanted: frames.max(2),
        ms: Vec::new(),
        seen: 0,
        rss_before: 0,
    })
    .add_systems(Startup, scene.spawn())
    .add_systems(Update, measure);
    app
}

/// set up a simple 3D scene
fn scene() -> impl SceneList {
    bsn_list! [
        (
            #CircularBase
            Mesh3d(asset_value(Circle::new(4.0)))
            MeshMaterial3d::<StandardMaterial>(asset_value(Color::WHITE))
            Transform::from_rotation(Quat::from_rotation_x(-std::f32::consts::FRAC_PI_2))
        ),
        (
            #Cube
            Mesh3d(asset_value(Cuboid::new(1.0, 1.0, 1.0)))
            MeshMaterial3d::<StandardMaterial>(asset_value(Color::srgb_u8(124, 144, 255)))
            Transform::from_xyz(0.0, 0.5, 0.0)
        ),
        (
            PointLight {
                shadow_maps_enabled: true,
            }
            Transform::from_xyz(4.0, 8.0, 4.0)
        ),
        (
            Camera3d
            template_value(Transform::from_xyz(-2.5, 4.5, 9.0).looking_at(Vec3::ZERO, Vec3::Y))
        )
    ]
}

#[derive(Resource)]
struct Frames {
    wanted: u32,
    ms: Vec<f64>,
    seen: u32,
    /// RSS (MiB) when the measured frames began.
    rss_before: u64,
}

fn measure(time: Res<Time<Real>>, mut frames: ResMut<Frames>, mut exit: MessageWriter<AppExit>) {
    frames.seen += 1;
    if frames.seen > frames.wanted / 2 {
        if frames.ms.is_empty() {
            frames.rss_before = super::render::rss_mib();
        }
        frames.ms.push(time.delta_secs_f64() * 1000.0);
    }
    if frames.seen < frames.wanted {
        return;
    }
    if let Some(line) = super::render::frame_time_line(&frames.ms, frames.rss_before) {
        info!("{line}");
    }
    exit.write(AppExit::Success);
}
