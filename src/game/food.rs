//! Food flakes for the picture: scattered on the water when the player feeds, they sink and
//! drift, fish steer to the nearest one, and a fish that reaches one eats it. Plain data; the
//! window draws them (`client::fish`).

use super::boids::Boid;

/// One flake.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Flake {
    /// Where it is.
    pub pos: [f32; 3],
    /// Seconds since it was scattered.
    pub age: f32,
}

/// How fast a flake sinks (units a second).
pub const SINK_SPEED: f32 = 0.12;
/// A fish this close to a flake eats it.
pub const BITE: f32 = 0.07;
/// A flake on the bottom is gone after this many seconds.
pub const LIFETIME: f32 = 20.0;
/// How hard a fish steers to food (per second).
const APPETITE: f32 = 2.5;

/// `n` flakes scattered over the water's surface at height `top`, within `half` of `centre` on
/// x and z, placed by `seed` (the same seed, the same scatter).
pub fn scatter(n: usize, centre: [f32; 3], half: [f32; 3], top: f32, seed: u32) -> Vec<Flake> {
    (0..n)
        .map(|i| {
            let k = (seed as f32) * 0.61 + i as f32 * 1.7;
            Flake {
                pos: [
                    centre[0] + half[0] * 0.7 * (k * 1.3).sin(),
                    top,
                    centre[2] + half[2] * 0.7 * (k * 2.1).cos(),
                ],
                age: 0.0,
            }
        })
        .collect()
}

/// Moves the flakes (sinking with a little drift, resting at `floor`), steers each fish to the
/// nearest flake, and removes the flakes eaten or too old. Returns how many were eaten.
pub fn step(flakes: &mut Vec<Flake>, fish: &mut [Boid], floor: f32, dt: f32) -> usize {
    for f in flakes.iter_mut() {
        f.age += dt;
        f.pos[1] = (f.pos[1] - SINK_SPEED * dt).max(floor);
        if f.pos[1] > floor {
            f.pos[0] += 0.03 * (f.age * 2.0 + f.pos[2] * 5.0).sin() * dt;
            f.pos[2] += 0.03 * (f.age * 1.7 + f.pos[0] * 5.0).cos() * dt;
        }
    }
    let mut eaten = vec![false; flakes.len()];
    for b in fish.iter_mut() {
        let nearest = flakes
            .iter()
            .enumerate()
            .filter(|(i, _)| !eaten[*i])
            .map(|(i, f)| (i, dist2(b.pos, f.pos)))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        let Some((i, d2)) = nearest else {
            continue;
        };
        if d2 < BITE * BITE {
            eaten[i] = true;
            continue;
        }
        seek(b, flakes[i].pos, APPETITE, dt);
    }
    let before = flakes.len();
    let mut i = 0;
    flakes.retain(|f| {
        let keep = !eaten[i] && f.age < LIFETIME;
        i += 1;
        keep
    });
    eaten.iter().filter(|e| **e).count().min(before)
}

/// Turns `b`'s velocity towards `target` (its speed kept).
pub fn seek(b: &mut Boid, target: [f32; 3], strength: f32, dt: f32) {
    let d = [
        target[0] - b.pos[0],
        target[1] - b.pos[1],
        target[2] - b.pos[2],
    ];
    let dl = dist2(target, b.pos).sqrt();
    let speed = dist2(b.vel, [0.0; 3]).sqrt().max(0.2);
    if dl < 1e-5 {
        return;
    }
    let want = [d[0] / dl * speed, d[1] / dl * speed, d[2] / dl * speed];
    let k = (strength * dt).min(1.0);
    for (v, w) in b.vel.iter_mut().zip(want) {
        *v += (w - *v) * k;
    }
}

fn dist2(a: [f32; 3], b: [f32; 3]) -> f32 {
    (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flakes_sink_to_the_floor_and_stay_there_until_they_are_old() {
        let mut flakes = scatter(3, [0.0; 3], [1.0; 3], 1.0, 7);
        assert!(flakes.iter().all(|f| f.pos[1] == 1.0));
        let mut none: Vec<Boid> = Vec::new();
        step(&mut flakes, &mut none, 0.0, 1.0);
        assert!(
            flakes
                .iter()
                .all(|f| (f.pos[1] - (1.0 - SINK_SPEED)).abs() < 1e-5)
        );
        for _ in 0..15 {
            step(&mut flakes, &mut none, 0.0, 1.0);
        }
        assert!(
            flakes.iter().all(|f| f.pos[1] == 0.0),
            "resting on the floor"
        );
        assert_eq!(flakes.len(), 3);
        for _ in 0..5 {
            step(&mut flakes, &mut none, 0.0, 1.0);
        }
        assert!(flakes.is_empty(), "gone after {LIFETIME} s");
    }

    #[test]
    fn a_fish_turns_to_the_nearest_flake_and_eats_it() {
        let mut flakes = vec![
            Flake {
                pos: [1.0, 0.0, 0.0],
                age: 0.0,
            },
            Flake {
                pos: [-5.0, 0.0, 0.0],
                age: 0.0,
            },
        ];
        // Swimming away from the near flake (along -z).
        let mut fish = vec![Boid {
            pos: [0.0; 3],
            vel: [0.0, 0.0, -0.5],
        }];
        step(&mut flakes, &mut fish, -10.0, 0.1);
        assert!(fish[0].vel[0] > 0.0, "turned towards +x: {:?}", fish[0].vel);
        fish[0].pos = flakes[0].pos;
        let eaten = step(&mut flakes, &mut fish, -10.0, 0.0);
        assert_eq!(eaten, 1);
        assert_eq!(flakes.len(), 1);
        assert!((flakes[0].pos[0] + 5.0).abs() < 0.01, "the far one is left");
    }
}
