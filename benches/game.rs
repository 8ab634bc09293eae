//! The game's simulation: fish behaviour (flocking) for 1,000 fish per tick, the neighbour grid
//! next to the all-pairs reference, and one economy step over 1,000 live profiles.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use bloxquarium::game::Catalog;
use bloxquarium::game::{Boid, Flock, flock_step as step, flock_step_all_pairs as step_all_pairs};
use bloxquarium::game::{Fish, Profile};

fn school(n: usize) -> Vec<Boid> {
    (0..n)
        .map(|i| {
            let k = i as f32;
            Boid {
                pos: [
                    (k * 0.37).sin() * 3.2,
                    1.5 + (k * 0.71).cos() * 0.9,
                    (k * 1.13).sin() * 1.4,
                ],
                vel: [(k * 0.5).cos() * 0.5, 0.0, (k * 0.5).sin() * 0.5],
            }
        })
        .collect()
}

fn flocking(c: &mut Criterion) {
    // The Lv5 tank's swimming volume, in scene metres.
    let flock = Flock {
        half: [2.6, 0.9, 0.9],
        centre: [0.0, 1.8, 0.0],
        sight: 0.8,
        personal: 0.3,
        speed: 0.55,
    };
    let mut group = c.benchmark_group("fish_per_tick");
    group.throughput(Throughput::Elements(1000));
    for (name, f) in [
        ("grid_1000", step as fn(&mut [Boid], &Flock, f32)),
        ("all_pairs_1000", step_all_pairs),
    ] {
        let mut boids = school(1000);
        // Let them settle into a school first.
        for _ in 0..30 {
            f(&mut boids, &flock, 1.0 / 30.0);
        }
        group.bench_function(name, |b| {
            b.iter(|| f(black_box(&mut boids), &flock, 1.0 / 30.0))
        });
    }
    group.finish();
}

fn economy(c: &mut Criterion) {
    let catalog = Catalog {
        fish_prices: vec![10, 25, 60, 150, 400, 1000],
        fish_income: vec![0.2, 0.5, 1.2, 3.0, 8.0, 20.0],
        tank_prices: vec![0, 500, 2500, 10000, 50000],
        tank_capacity: vec![5, 10, 18, 30, 50],
        sell_refund: 0.5,
        decoration_prices: vec![30, 40, 150],
    };
    let mut profiles: Vec<(Profile, f64)> = (0..1000u64)
        .map(|p| {
            let mut prof = Profile::new(p, bloxquarium::game::Aquarium::new(100));
            for id in 1..=10 {
                prof.fish.push(Fish {
                    id,
                    species: (id % 6) as u8,
                    name: String::new(),
                    hunger: 10.0,
                    from_trade: None,
                });
            }
            (prof, 0.0)
        })
        .collect();
    let mut group = c.benchmark_group("economy_step");
    group.throughput(Throughput::Elements(1000));
    group.bench_function("1000_profiles_10_fish", |b| {
        b.iter(|| {
            for (p, carry) in profiles.iter_mut() {
                black_box(bloxquarium::game::advance_economy(
                    p, &catalog, 5.0, 1.0, carry,
                ));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, flocking, economy);
criterion_main!(benches);
