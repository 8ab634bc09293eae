//! The fish on screen: one entity per fish of the aquarium shown (the player's own, or the
//! one visited), flocking; food flakes that sink when the player feeds, which the fish chase
//! and eat; and the frame benchmark's extra fish (`--bench-fish`).

use std::collections::HashMap;

use bevy::prelude::*;

use super::aquarium::{FishSpecies, ShownAquarium, swim_volume};
use crate::game::food::{self, Flake};
use crate::game::{Boid, Flock, flock_step};
use crate::stages::ClientSystems;

/// A fish on screen: whose (0: the player's own) and its id.
#[derive(Component)]
struct PlayerFish {
    owner: u64,
    id: u64,
}

/// Each fish's boid, by (owner, id).
#[derive(Resource, Default)]
struct Boids(HashMap<(u64, u64), Boid>);

/// Flakes in the water and their entities.
#[derive(Resource, Default)]
struct Food {
    flakes: Vec<Flake>,
    shown: Vec<Entity>,
    feeds: u32,
    look: Option<(Handle<Mesh>, Handle<StandardMaterial>)>,
}

/// A food flake on screen.
#[derive(Component)]
struct FlakeMarker;

/// Flakes scattered by one feeding.
const FLAKES_PER_FEED: usize = 12;

/// Extra display-only fish for the frame-time benchmark (`--bench-fish`).
#[derive(Resource, Debug, Clone, Copy, Default)]
pub struct BenchFish(pub u32);

/// Owner id of the benchmark's fish.
const BENCH_OWNER: u64 = u64::MAX;

/// The fish on screen.
pub struct FishPlugin;

impl Plugin for FishPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<Boids>()
            .init_resource::<Food>()
            .add_message::<super::ui::Act>()
            .add_systems(
                Update,
                (
                    scatter_food,
                    sync_fish,
                    spawn_bench_fish.run_if(in_state(crate::assets::AssetPhase::Playing)),
                    swim,
                )
                    .chain()
                    .in_set(ClientSystems::Present),
            );
    }
}

/// One entity per fish in the predicted state.
fn sync_fish(
    mut commands: Commands,
    shown: Res<ShownAquarium>,
    mut boids: ResMut<Boids>,
    fish: Query<(Entity, &PlayerFish)>,
) {
    let Some(state) = shown.state.as_ref() else {
        return;
    };
    let owner = shown.owner;
    let wanted: HashMap<(u64, u64), u8> = state
        .fish
        .iter()
        .map(|f| ((owner, f.id), f.species))
        .collect();
    for (e, f) in &fish {
        if f.owner != BENCH_OWNER && !wanted.contains_key(&(f.owner, f.id)) {
            commands.entity(e).despawn();
            boids.0.remove(&(f.owner, f.id));
        }
    }
    let have: Vec<(u64, u64)> = fish.iter().map(|(_, f)| (f.owner, f.id)).collect();
    for ((owner, id), species) in wanted {
        if have.contains(&(owner, id)) {
            continue;
        }
        spawn_fish(
            &mut commands,
            &mut boids,
            (owner, id, species),
            state.tank_level,
            0.7,
        );
    }
}

/// A fish entity and its boid, placed by its id within `spread` of the tank's swimming volume.
/// The species' model is attached by `aquarium::attach_fish_models` once it is in.
fn spawn_fish(
    commands: &mut Commands,
    boids: &mut Boids,
    (owner, id, species): (u64, u64, u8),
    level: u8,
    spread: f32,
) {
    let k = id as f32;
    let (centre, half) = swim_volume(level);
    let start = Boid {
        pos: [
            centre[0] + (k * 1.7).sin() * half[0] * spread,
            centre[1] + (k * 0.9).cos() * half[1] * spread,
            centre[2] + (k * 2.3).sin() * half[2] * spread,
        ],
        vel: [0.5 * (k * 0.7).cos(), 0.0, 0.5 * (k * 0.7).sin()],
    };
    boids.0.insert((owner, id), start);
    commands.spawn((
        Transform::from_translation(Vec3::from(start.pos)),
        Visibility::default(),
        PlayerFish { owner, id },
        FishSpecies(species),
    ));
}

fn spawn_bench_fish(
    mut commands: Commands,
    // Only the frame benchmark (`--bench-fish`) inserts it.
    bench: Option<Res<BenchFish>>,
    mut boids: ResMut<Boids>,
    mut done: Local<bool>,
) {
    let Some(n) = bench.map(|b| b.0).filter(|n| *n > 0) else {
        return;
    };
    if *done {
        return;
    }
    *done = true;
    for id in 0..u64::from(n) {
        spawn_fish(
            &mut commands,
            &mut boids,
            (BENCH_OWNER, id, (id % 6) as u8),
            1,
            0.4,
        );
    }
    info!("frame-time benchmark: {n} extra fish");
}

fn swim(
    time: Res<Time>,
    shown: Res<ShownAquarium>,
    mut boids: ResMut<Boids>,
    mut food: ResMut<Food>,
    mut fish: Query<(&PlayerFish, &mut Transform), Without<FlakeMarker>>,
    mut flakes: Query<&mut Transform, With<FlakeMarker>>,
    mut commands: Commands,
) {
    let (centre, half) = swim_volume(shown.level());
    let dt = time.delta_secs().min(0.1);
    let flock = Flock {
        half,
        centre,
        sight: 0.8,
        personal: 0.3,
        speed: 0.55,
    };
    let ids: Vec<(u64, u64)> = boids.0.keys().copied().collect();
    let mut all: Vec<Boid> = ids.iter().filter_map(|i| boids.0.get(i).copied()).collect();
    flock_step(&mut all, &flock, dt);
    // Everyone to the food (the benchmark's fish too: they share the water).
    food::step(&mut food.flakes, &mut all, centre[1] - half[1], dt);
    for (id, b) in ids.iter().zip(all) {
        boids.0.insert(*id, b);
    }
    for (f, mut t) in &mut fish {
        if let Some(b) = boids.0.get(&(f.owner, f.id)) {
            t.translation = Vec3::from(b.pos);
            t.rotation = Quat::from_rotation_y(-b.vel[2].atan2(b.vel[0]));
        }
    }
    // One entity per flake, in order.
    let food = &mut *food;
    while food.shown.len() > food.flakes.len() {
        if let Some(e) = food.shown.pop() {
            commands.entity(e).despawn();
        }
    }
    if let Some((mesh, material)) = food.look.clone() {
        while food.shown.len() < food.flakes.len() {
            food.shown.push(
                commands
                    .spawn((
                        FlakeMarker,
                        Mesh3d(mesh.clone()),
                        MeshMaterial3d(material.clone()),
                        Transform::from_translation(Vec3::from(food.flakes[food.shown.len()].pos)),
                    ))
                    .id(),
            );
        }
    }
    for (e, f) in food.shown.iter().zip(&food.flakes) {
        if let Ok(mut t) = flakes.get_mut(*e) {
            t.translation = Vec3::from(f.pos);
            t.rotation = Quat::from_rotation_y(f.age * 2.0)
                * Quat::from_rotation_x(0.4 * (f.age * 3.0).sin());
        }
    }
}

/// Feeding (the Feed button or F) in the player's own aquarium scatters flakes on the water.
fn scatter_food(
    mut acts: MessageReader<super::ui::Act>,
    shown: Res<ShownAquarium>,
    visit: Res<crate::game::Visit>,
    mut food: ResMut<Food>,
    mut meshes: ResMut<Assets<Mesh>>,
    mut materials: ResMut<Assets<StandardMaterial>>,
) {
    let fed = acts.read().any(|a| a.0 == super::ui::UiAction::FeedAll);
    let has_fish = shown.state.as_ref().is_some_and(|s| !s.fish.is_empty());
    if !fed || visit.showing.is_some() || !has_fish {
        return;
    }
    if food.look.is_none() {
        food.look = Some((
            meshes.add(Cuboid::new(0.035, 0.006, 0.03)),
            materials.add(StandardMaterial {
                base_color: Color::srgb(0.85, 0.55, 0.25),
                perceptual_roughness: 0.9,
                ..default()
            }),
        ));
    }
    let (centre, half) = swim_volume(shown.level());
    food.feeds += 1;
    let seed = food.feeds;
    let top = centre[1] + half[1];
    food.flakes
        .extend(food::scatter(FLAKES_PER_FEED, centre, half, top, seed));
}
