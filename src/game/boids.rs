//! Flocking (boids) for the fish in a tank, as a plain function over positions and velocities.

/// One fish's motion.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Boid {
    /// Position (x, y, z).
    pub pos: [f32; 3],
    /// Velocity.
    pub vel: [f32; 3],
}

/// Flocking parameters and the tank's box.
#[derive(Debug, Clone, Copy)]
pub struct Flock {
    /// Half extents of the swimming volume, centred on `centre`.
    pub half: [f32; 3],
    /// Centre of the volume.
    pub centre: [f32; 3],
    /// Neighbour radius.
    pub sight: f32,
    /// Closer than this, fish push apart.
    pub personal: f32,
    /// Cruise speed.
    pub speed: f32,
}

fn add(a: [f32; 3], b: [f32; 3], k: f32) -> [f32; 3] {
    [a[0] + b[0] * k, a[1] + b[1] * k, a[2] + b[2] * k]
}

fn sub(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn len(a: [f32; 3]) -> f32 {
    (a[0] * a[0] + a[1] * a[1] + a[2] * a[2]).sqrt()
}

/// Advances every boid by `dt`: separation, alignment and cohesion among neighbours, a push back
/// from the walls, and speed held near the cruise speed. Neighbours are found through a grid of
/// `sight`-sized cells laid over the swimming volume (a counting sort into one flat array), so
/// each fish looks at the 27 cells around it instead of at every other fish.
pub fn step(boids: &mut [Boid], flock: &Flock, dt: f32) {
    let snapshot: Vec<Boid> = boids.to_vec();
    let cell = flock.sight.max(1e-3);
    let dims: [usize; 3] =
        std::array::from_fn(|k| ((2.0 * flock.half[k] / cell).ceil() as usize).clamp(1, 256));
    let coord = |p: [f32; 3], k: usize| {
        let c = ((p[k] - (flock.centre[k] - flock.half[k])) / cell).floor();
        (c.max(0.0) as usize).min(dims[k] - 1)
    };
    let index = |x: usize, y: usize, z: usize| x + dims[0] * (y + dims[1] * z);
    let cells = dims[0] * dims[1] * dims[2];
    let mut start = vec![0u32; cells + 1];
    let cell_of: Vec<[usize; 3]> = snapshot
        .iter()
        .map(|b| std::array::from_fn(|k| coord(b.pos, k)))
        .collect();
    let home: Vec<usize> = cell_of.iter().map(|c| index(c[0], c[1], c[2])).collect();
    for h in &home {
        start[h + 1] += 1;
    }
    for c in 0..cells {
        start[c + 1] += start[c];
    }
    let mut fill = start.clone();
    let mut order = vec![0u32; snapshot.len()];
    for (i, h) in home.iter().enumerate() {
        order[fill[*h] as usize] = i as u32;
        fill[*h] += 1;
    }
    let (order, start) = (&order, &start);
    for (i, b) in boids.iter_mut().enumerate() {
        let c = cell_of[i];
        let range = |k: usize| c[k].saturating_sub(1)..=(c[k] + 1).min(dims[k] - 1);
        let near = range(2).flat_map(|z| {
            range(1).flat_map(move |y| {
                range(0).flat_map(move |x| {
                    let cell = index(x, y, z);
                    order[start[cell] as usize..start[cell + 1] as usize].iter()
                })
            })
        });
        steer(
            i,
            b,
            near.map(|j| (*j as usize, &snapshot[*j as usize])),
            flock,
            dt,
        );
    }
}

/// [`step`] checking every pair: the reference the grid is tested and benchmarked against.
pub fn step_all_pairs(boids: &mut [Boid], flock: &Flock, dt: f32) {
    let snapshot: Vec<Boid> = boids.to_vec();
    for (i, b) in boids.iter_mut().enumerate() {
        steer(i, b, snapshot.iter().enumerate(), flock, dt);
    }
}

fn steer<'a>(
    i: usize,
    b: &mut Boid,
    others: impl Iterator<Item = (usize, &'a Boid)>,
    flock: &Flock,
    dt: f32,
) {
    let mut sep = [0.0; 3];
    let mut ali = [0.0; 3];
    let mut coh = [0.0; 3];
    let mut n = 0.0;
    let sight2 = flock.sight * flock.sight;
    let personal2 = flock.personal * flock.personal;
    for (j, o) in others {
        if i == j {
            continue;
        }
        let d = sub(b.pos, o.pos);
        let dist2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
        if dist2 < sight2 {
            n += 1.0;
            ali = add(ali, o.vel, 1.0);
            coh = add(coh, o.pos, 1.0);
            if dist2 < personal2 && dist2 > 1e-8 {
                sep = add(sep, d, 1.0 / dist2);
            }
        }
    }
    let mut acc = [0.0; 3];
    if n > 0.0 {
        acc = add(acc, sub([ali[0] / n, ali[1] / n, ali[2] / n], b.vel), 0.6);
        acc = add(acc, sub([coh[0] / n, coh[1] / n, coh[2] / n], b.pos), 0.4);
        acc = add(acc, sep, 0.05);
    }
    for (k, a) in acc.iter_mut().enumerate() {
        let rel = b.pos[k] - flock.centre[k];
        let margin = flock.half[k] * 0.8;
        if rel > margin {
            *a -= (rel - margin) * 8.0;
        } else if rel < -margin {
            *a += (-margin - rel) * 8.0;
        }
    }
    // Fish swim mostly level.
    acc[1] -= b.vel[1] * 0.8;
    b.vel = add(b.vel, acc, dt);
    let s = len(b.vel);
    if s > 1e-4 {
        let k = (s + (flock.speed - s) * (dt * 2.0).min(1.0)) / s;
        b.vel = [b.vel[0] * k, b.vel[1] * k, b.vel[2] * k];
    } else {
        b.vel = [flock.speed, 0.0, 0.0];
    }
    b.pos = add(b.pos, b.vel, dt);
    for (k, p) in b.pos.iter_mut().enumerate() {
        *p = p.clamp(
            flock.centre[k] - flock.half[k],
            flock.centre[k] + flock.half[k],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grid_finds_the_same_neighbours_as_every_pair() {
        let flock = Flock {
            half: [3.0, 1.0, 1.5],
            centre: [0.0, 1.0, 0.0],
            sight: 0.5,
            personal: 0.2,
            speed: 0.6,
        };
        let start: Vec<Boid> = (0..300)
            .map(|i| {
                let k = i as f32;
                Boid {
                    pos: [
                        (k * 0.37).sin() * 2.9,
                        1.0 + (k * 0.71).cos() * 0.9,
                        (k * 1.13).sin() * 1.4,
                    ],
                    vel: [(k * 0.5).cos() * 0.5, 0.0, (k * 0.5).sin() * 0.5],
                }
            })
            .collect();
        let mut a = start.clone();
        let mut b = start;
        // One step from the same start: the same neighbours, summed in another order.
        step(&mut a, &flock, 1.0 / 30.0);
        step_all_pairs(&mut b, &flock, 1.0 / 30.0);
        for (x, y) in a.iter().zip(&b) {
            for k in 0..3 {
                assert!((x.pos[k] - y.pos[k]).abs() < 1e-5, "{x:?} {y:?}");
                assert!((x.vel[k] - y.vel[k]).abs() < 1e-4, "{x:?} {y:?}");
            }
        }
    }

    #[test]
    fn fish_stay_in_the_tank_keep_apart_and_keep_moving() {
        let flock = Flock {
            half: [1.8, 0.8, 0.8],
            centre: [0.0, 1.0, 0.0],
            sight: 0.8,
            personal: 0.25,
            speed: 0.6,
        };
        let mut boids: Vec<Boid> = (0..30)
            .map(|i| Boid {
                pos: [0.01 * i as f32, 1.0, 0.0],
                vel: [0.3, 0.0, 0.1 * (i % 3) as f32],
            })
            .collect();
        for _ in 0..2000 {
            step(&mut boids, &flock, 1.0 / 60.0);
        }
        for b in &boids {
            for k in 0..3 {
                assert!((b.pos[k] - flock.centre[k]).abs() <= flock.half[k] + 1e-4);
            }
            let s = len(b.vel);
            assert!(s > 0.05 && s < 1.2, "speed {s}");
        }
        let mean = boids.iter().map(|b| len(b.vel)).sum::<f32>() / boids.len() as f32;
        assert!(mean > 0.4, "mean speed {mean}");
        // They spread out from the one point they started at.
        let mut closest = f32::MAX;
        for i in 0..boids.len() {
            for j in i + 1..boids.len() {
                closest = closest.min(len(sub(boids[i].pos, boids[j].pos)));
            }
        }
        assert!(closest > 0.02, "closest pair {closest}");
    }
}
