//! The asset generator (`bloxquarium assets generate`): writes the seed's tree (models,
//! textures, UI images, sounds, font, materials, prefabs) from code. Deterministic: the same
//! bytes on every run. A tool: the game's looks ([`crate::game::SPECIES`],
//! [`crate::game::tank_half_extents`]) come from the game, which the client draws by too.

mod glb;
mod sound;

use std::path::Path;

use glb::{Animation, Material, Mesh, Node, Scene};

use crate::game::{SPECIES, species_model, tank_half_extents};

/// The five quality levels and their texture sizes.
pub const QUALITY_LEVELS: [(&str, u32); 5] = [
    ("LOW", 64),
    ("MEDIUM", 128),
    ("HIGH", 256),
    ("ULTRA", 512),
    ("PROFESSIONAL", 1024),
];

const FONT: &[u8] = include_bytes!("../../assets-src/fonts/DejaVuSansMono.ttf");
const FONT_LICENSE: &[u8] = include_bytes!("../../assets-src/fonts/DejaVu-LICENSE.txt");

/// A deterministic hash of integer coordinates to [0, 1).
fn hash(x: i32, y: i32, seed: u32) -> f32 {
    let mut h = (x as u32).wrapping_mul(0x8da6_b343)
        ^ (y as u32).wrapping_mul(0xd816_3841)
        ^ seed.wrapping_mul(0xcb1a_b31f);
    h ^= h >> 13;
    h = h.wrapping_mul(0x5bd1_e995);
    h ^= h >> 15;
    (h & 0x00ff_ffff) as f32 / 16_777_216.0
}

/// Smooth value noise, a few octaves, in [0, 1).
fn noise(x: f32, y: f32, seed: u32) -> f32 {
    let mut total = 0.0;
    let mut amp = 0.5;
    let mut f = 1.0;
    for o in 0..4 {
        let (px, py) = (x * f, y * f);
        let (ix, iy) = (px.floor() as i32, py.floor() as i32);
        let (fx, fy) = (px - px.floor(), py - py.floor());
        let s = |t: f32| t * t * (3.0 - 2.0 * t);
        let (sx, sy) = (s(fx), s(fy));
        let h = |dx, dy| hash(ix + dx, iy + dy, seed + o);
        let a = h(0, 0) + (h(1, 0) - h(0, 0)) * sx;
        let b = h(0, 1) + (h(1, 1) - h(0, 1)) * sx;
        total += amp * (a + (b - a) * sy);
        amp *= 0.5;
        f *= 2.0;
    }
    total / 0.9375
}

fn material(name: &str, rgb: [f32; 3], alpha: f32, metallic: f32, roughness: f32) -> Material {
    Material {
        name: name.into(),
        color: [rgb[0], rgb[1], rgb[2], alpha],
        metallic,
        roughness,
        blend: alpha < 1.0,
        unlit: name == "Glass",
    }
}

fn node(name: &str, mesh: Option<(usize, usize)>, t: [f32; 3], children: Vec<usize>) -> Node {
    Node {
        name: name.into(),
        mesh,
        translation: t,
        children,
    }
}

/// A tank of `level` 1..=5: larger, and finer (more detail), at each level.
pub fn aquarium(level: u32) -> Vec<u8> {
    let [w, h, d] = tank_half_extents(level);
    let t = 0.015;
    let mut frame = Mesh::default();
    let beam = |half: [f32; 3]| glb::cuboid(half);
    // Twelve edges of the tank.
    for (sx, sz) in [(-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0)] {
        frame.append(&beam([t, h, t]), [sx * w, h, sz * d], [1.0; 3]);
    }
    for y in [0.0, 2.0 * h] {
        for sz in [-1.0, 1.0] {
            frame.append(&beam([w, t, t]), [0.0, y, sz * d], [1.0; 3]);
        }
        for sx in [-1.0, 1.0] {
            frame.append(&beam([t, t, d]), [sx * w, y, 0.0], [1.0; 3]);
        }
    }
    // Finer tanks get more trim: a rim band per level above 1.
    for k in 1..level {
        let y = 2.0 * h - 0.02 * k as f32;
        frame.append(
            &beam([w + 0.004, 0.004, d + 0.004]),
            [0.0, y, 0.0],
            [1.0; 3],
        );
    }
    let mut stand = glb::cuboid([w + 0.05, 0.06, d + 0.05]);
    for p in &mut stand.positions {
        p[1] -= 0.07;
    }
    let mut glass = Mesh::default();
    for sz in [-1.0, 1.0] {
        glass.append(&glb::cuboid([w, h, 0.002]), [0.0, h, sz * d], [1.0; 3]);
    }
    for sx in [-1.0, 1.0] {
        glass.append(&glb::cuboid([0.002, h, d]), [sx * w, h, 0.0], [1.0; 3]);
    }
    let n = 6 * level + 4;
    let mut gravel = glb::grid(n, |x, z| 0.02 * noise(x * 3.0 + 7.0, z * 3.0 + 3.0, level));
    for p in &mut gravel.positions {
        p[0] *= w * 0.98;
        p[2] *= d * 0.98;
        p[1] += 0.005;
    }
    let trim = [
        [0.15, 0.15, 0.17],
        [0.35, 0.22, 0.12],
        [0.75, 0.75, 0.8],
        [0.1, 0.1, 0.12],
        [0.85, 0.65, 0.2],
    ][(level as usize - 1).min(4)];
    Scene {
        meshes: vec![frame, stand, glass, gravel],
        materials: vec![
            material("Frame", trim, 1.0, if level >= 3 { 0.8 } else { 0.1 }, 0.35),
            material("Stand", [0.25, 0.17, 0.1], 1.0, 0.0, 0.8),
            material("Glass", [0.8, 0.95, 1.0], 0.07, 0.0, 0.05),
            material("Gravel", [0.78, 0.7, 0.52], 1.0, 0.0, 0.95),
        ],
        nodes: vec![
            node(
                &format!("Aquarium_Lv{level}"),
                None,
                [0.0; 3],
                vec![1, 2, 3, 4],
            ),
            node("Frame", Some((0, 0)), [0.0; 3], vec![]),
            node("Stand", Some((1, 1)), [0.0; 3], vec![]),
            node("Glass", Some((2, 2)), [0.0; 3], vec![]),
            node("Gravel", Some((3, 3)), [0.0; 3], vec![]),
        ],
        animations: vec![],
    }
    .to_glb()
}

/// A fish of `species` with a looping "swim" animation (the tail sweeps side to side), drawn
/// from the species table: body size and taper, dorsal and anal fins, pectoral fins, a fan or a
/// forked tail, and bands in the fin colour.
pub fn fish(species: usize) -> Vec<u8> {
    let crate::game::Species {
        name,
        body: [len, height, width],
        colour: body_rgb,
        fins: fin_rgb,
        shape,
        ..
    } = SPECIES[species % SPECIES.len()];
    // The body's half-height at x (a share of the half-length from the nose, -1 the tail end).
    let girth = |x: f32| 1.0 - shape.taper * (-x).max(0.0) * 0.6;
    let mut body = glb::sphere(10, 16, |theta, _| 0.04 * (3.0 * theta).sin());
    for p in &mut body.positions {
        let g = girth(p[0]);
        p[0] *= len * 0.5;
        p[1] *= height * 0.5 * g;
        p[2] *= width * 0.5 * g;
    }
    for n in &mut body.normals {
        *n = glb::normalize([n[0] / len, n[1] / height, n[2] / width]);
    }
    // The tail: one fan, or two lobes spread up and down.
    let lobe = |tilt: f32| {
        let mut m = glb::sphere(6, 8, |_, _| 0.0);
        for p in &mut m.positions {
            let (x, y) = (p[0] * len * shape.tail * 0.5, p[1] * height * 0.3);
            let (sn, cs) = tilt.sin_cos();
            p[0] = x * cs - y * sn - len * shape.tail * 0.45;
            p[1] = x * sn + y * cs;
            p[2] *= 0.006;
        }
        m
    };
    let mut tail = Mesh::default();
    if shape.forked {
        tail.append(&lobe(0.55), [0.0; 3], [1.0; 3]);
        tail.append(&lobe(-0.55), [0.0; 3], [1.0; 3]);
    } else {
        let mut fan = lobe(0.0);
        for p in &mut fan.positions {
            p[1] *= 1.6;
        }
        tail.append(&fan, [0.0; 3], [1.0; 3]);
    }
    let mut eye = glb::sphere(4, 6, |_, _| 0.0);
    for p in &mut eye.positions {
        for v in p.iter_mut() {
            *v *= height * 0.08;
        }
    }
    let mut eyes = Mesh::default();
    for side in [-1.0, 1.0] {
        eyes.append(
            &eye,
            [len * 0.32, height * 0.12, side * width * 0.42],
            [1.0; 3],
        );
    }
    // Dorsal (up) and anal (down) fins: swept-back wedges, as tall as the species says.
    let mut fins = Mesh::default();
    for up in [1.0f32, -1.0] {
        let tall = height * shape.fin_height * if up > 0.0 { 1.0 } else { 0.6 };
        let mut fin = glb::cuboid([len * 0.16, tall * 0.5, 0.004]);
        for p in &mut fin.positions {
            let tip = (p[1] / (tall * 0.5) + 1.0) * 0.5; // 0 at the root, 1 at the tip
            p[0] = p[0] * (1.0 - 0.7 * tip) - len * 0.12 * tip;
            p[1] = up * (p[1] + tall * 0.5 + height * 0.42 * girth(-0.1));
        }
        fins.append(&fin, [-len * 0.05, 0.0, 0.0], [1.0; 3]);
    }
    // Pectoral fins behind the eyes, angled out.
    let mut pectoral = glb::sphere(4, 6, |_, _| 0.0);
    for p in &mut pectoral.positions {
        p[0] *= len * 0.09;
        p[1] *= height * 0.16;
        p[2] *= 0.004;
    }
    for side in [-1.0, 1.0] {
        fins.append(
            &pectoral,
            [len * 0.12, -height * 0.12, side * width * 0.52],
            [1.0; 3],
        );
    }
    // Bands: thin rings around the body.
    for k in 0..shape.stripes {
        let x = 0.55 - 1.0 * (f32::from(k) + 0.5) / f32::from(shape.stripes.max(1));
        let g = girth(x) * 1.04;
        let mut band = glb::sphere(8, 14, |_, _| 0.0);
        for p in &mut band.positions {
            p[0] *= len * 0.035;
            p[1] *= height * 0.5 * g;
            p[2] *= width * 0.5 * g;
        }
        fins.append(&band, [x * len * 0.5, 0.0, 0.0], [1.0; 3]);
    }
    let keys = 9;
    let times: Vec<f32> = (0..keys)
        .map(|k| 0.8 * k as f32 / (keys - 1) as f32)
        .collect();
    let rotations = times
        .iter()
        .map(|t| {
            let angle = 0.45 * (std::f32::consts::TAU * t / 0.8).sin();
            [0.0, (angle / 2.0).sin(), 0.0, (angle / 2.0).cos()]
        })
        .collect();
    Scene {
        meshes: vec![body, tail, eyes, fins],
        materials: vec![
            material("Body", body_rgb, 1.0, 0.1, 0.45),
            material("Fins", fin_rgb, 1.0, 0.0, 0.6),
            material("Eyes", [0.02, 0.02, 0.02], 1.0, 0.0, 0.1),
        ],
        nodes: vec![
            node(name, Some((0, 0)), [0.0; 3], vec![1, 2, 3]),
            node(
                "Tail",
                Some((1, 1)),
                [-len * (0.5 - 0.15 * shape.taper), 0.0, 0.0],
                vec![],
            ),
            node("Eyes", Some((2, 2)), [0.0; 3], vec![]),
            node("Fins", Some((3, 1)), [0.0; 3], vec![]),
        ],
        animations: vec![Animation {
            name: "swim".into(),
            node: 1,
            times,
            rotations,
        }],
    }
    .to_glb()
}

fn single(name: &str, mesh: Mesh, mat: Material) -> Vec<u8> {
    Scene {
        meshes: vec![mesh],
        materials: vec![mat],
        nodes: vec![node(name, Some((0, 0)), [0.0; 3], vec![])],
        animations: vec![],
    }
    .to_glb()
}

/// A rock: a bumpy sphere.
pub fn rock(k: u32) -> Vec<u8> {
    let mut m = glb::sphere(10, 14, |th, ph| {
        0.25 * (noise(th * 2.0 + k as f32, ph * 2.0, 40 + k) - 0.5)
    });
    for p in &mut m.positions {
        p[0] *= 0.08 + 0.02 * k as f32;
        p[1] *= 0.05 + 0.01 * k as f32;
        p[2] *= 0.07;
    }
    let grey = 0.35 + 0.08 * k as f32;
    single(
        &format!("Rock_{k}"),
        m,
        material("Stone", [grey, grey * 0.95, grey * 0.9], 1.0, 0.0, 0.9),
    )
}

/// A plant: blades of different heights.
pub fn plant(k: u32) -> Vec<u8> {
    let mut m = Mesh::default();
    let blades = 5 + 2 * k;
    for b in 0..blades {
        let a = std::f32::consts::TAU * b as f32 / blades as f32;
        let hgt = 0.12 + 0.1 * hash(b as i32, k as i32, 77);
        m.append(
            &glb::cuboid([0.006, hgt, 0.002]),
            [0.02 * a.cos(), hgt, 0.02 * a.sin()],
            [1.0; 3],
        );
    }
    let green = [[0.1, 0.6, 0.2], [0.2, 0.7, 0.3], [0.35, 0.55, 0.1]][(k as usize - 1) % 3];
    single(
        &format!("Plant_{k}"),
        m,
        material("Leaf", green, 1.0, 0.0, 0.7),
    )
}

/// A small castle.
pub fn castle() -> Vec<u8> {
    let mut m = glb::cuboid([0.06, 0.05, 0.04]);
    for p in &mut m.positions {
        p[1] += 0.05;
    }
    for (x, z) in [(-0.06, -0.04), (0.06, -0.04), (-0.06, 0.04), (0.06, 0.04)] {
        m.append(&glb::cuboid([0.015, 0.08, 0.015]), [x, 0.08, z], [1.0; 3]);
    }
    single(
        "Castle",
        m,
        material("Sandstone", [0.8, 0.7, 0.55], 1.0, 0.0, 0.85),
    )
}

/// Sand dunes for the tank floor.
pub fn sand() -> Vec<u8> {
    let m = glb::grid(32, |x, z| 0.03 * noise(x * 2.0 + 5.0, z * 2.0 + 1.0, 9));
    single(
        "Sand",
        m,
        material("Sand", [0.86, 0.78, 0.58], 1.0, 0.0, 0.95),
    )
}

/// What the client shows in place of a model that failed to load or verify: a magenta box
/// that nobody mistakes for part of the aquarium.
pub fn fallback() -> Vec<u8> {
    let mut m = glb::cuboid([0.08, 0.08, 0.08]);
    for p in &mut m.positions {
        p[1] += 0.08;
    }
    single(
        "Fallback",
        m,
        material("Missing", [1.0, 0.0, 1.0], 1.0, 0.0, 0.5),
    )
}

/// The water surface.
pub fn water() -> Vec<u8> {
    let m = glb::grid(24, |x, z| 0.01 * (x * 9.0).sin() * (z * 7.0).cos());
    single(
        "Water_Surface",
        m,
        material("Water", [0.2, 0.55, 0.85], 0.35, 0.0, 0.05),
    )
}

fn png(width: u32, height: u32, rgba: bool, pixels: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, width, height);
        enc.set_color(if rgba {
            png::ColorType::Rgba
        } else {
            png::ColorType::Rgb
        });
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::High);
        if let Ok(mut w) = enc.write_header() {
            let _ = w.write_image_data(pixels);
        }
    }
    out
}

/// A tileable texture at `size`: sand, water or scales.
pub fn texture(kind: &str, size: u32) -> Vec<u8> {
    let mut px = Vec::with_capacity((size * size * 3) as usize);
    for y in 0..size {
        for x in 0..size {
            let (u, v) = (x as f32 / size as f32, y as f32 / size as f32);
            let rgb = match kind {
                "Sand" => {
                    let n = noise(u * 8.0, v * 8.0, 1);
                    [0.78 + 0.15 * n, 0.7 + 0.12 * n, 0.5 + 0.1 * n]
                }
                "Water" => {
                    let n = noise(u * 4.0, v * 4.0, 2);
                    let c = (0.5 + 0.5 * ((u * 12.0 + n * 6.0).sin() * (v * 10.0 - n * 5.0).cos()))
                        .powi(3);
                    [0.1 + 0.3 * c, 0.45 + 0.35 * c, 0.75 + 0.2 * c]
                }
                _ => {
                    // Scales: overlapping arcs.
                    let (cu, cv) = (
                        (u * 8.0).fract(),
                        (v * 8.0 + 0.5 * (u * 8.0).floor()).fract(),
                    );
                    let r = ((cu - 0.5).powi(2) + (cv - 0.1).powi(2)).sqrt();
                    let edge = (1.0 - (r - 0.45).abs() * 12.0).clamp(0.0, 1.0);
                    [0.85 - 0.3 * edge, 0.85 - 0.3 * edge, 0.85 - 0.25 * edge]
                }
            };
            px.extend(rgb.iter().map(|c| (c.clamp(0.0, 1.0) * 255.0) as u8));
        }
    }
    png(size, size, false, &px)
}

/// A round UI icon (coin, fish, shop) or the panel background, RGBA.
pub fn ui_image(kind: &str, size: u32) -> Vec<u8> {
    let mut px = Vec::with_capacity((size * size * 4) as usize);
    let c = size as f32 / 2.0;
    for y in 0..size {
        for x in 0..size {
            let (dx, dy) = ((x as f32 + 0.5 - c) / c, (y as f32 + 0.5 - c) / c);
            let r = (dx * dx + dy * dy).sqrt();
            let (rgb, a) = match kind {
                "Panel" => {
                    let edge = dx.abs().max(dy.abs());
                    (
                        [0.05, 0.12 + 0.05 * (1.0 - edge), 0.2],
                        if edge > 0.96 { 1.0 } else { 0.85 },
                    )
                }
                "Coin" => ([1.0, 0.8 - 0.2 * r, 0.15], if r < 0.9 { 1.0 } else { 0.0 }),
                "Fish" => {
                    let body = (dx / 0.7).powi(2) + (dy / 0.4).powi(2) < 1.0;
                    let tail = dx < -0.5 && dy.abs() < (-dx - 0.5) * 1.2 && dx > -0.95;
                    ([1.0, 0.5, 0.1], if body || tail { 1.0 } else { 0.0 })
                }
                _ => {
                    let bag = dy > -0.3 && dy < 0.8 && dx.abs() < 0.6;
                    let handle = (dx * dx + (dy + 0.35).powi(2)).sqrt();
                    let on = bag || (handle > 0.28 && handle < 0.4 && dy < -0.3);
                    ([0.2, 0.75, 0.4], if on { 1.0 } else { 0.0 })
                }
            };
            px.extend(rgb.iter().map(|c| (c.clamp(0.0, 1.0) * 255.0) as u8));
            px.push((a * 255.0) as u8);
        }
    }
    png(size, size, true, &px)
}

/// Every file of the tree: relative path and bytes, in a fixed order.
pub fn tree() -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for level in 1..=5 {
        out.push((
            format!("Models/Aquariums/Aquarium_Lv{level}.glb"),
            aquarium(level),
        ));
    }
    for (i, _) in SPECIES.iter().enumerate() {
        out.push((format!("{}.glb", species_model(i as u8)), fish(i)));
    }
    for k in 1..=3 {
        out.push((format!("Models/Props/Rock_{k}.glb"), rock(k)));
        out.push((format!("Models/Environment/Plant_{k}.glb"), plant(k)));
    }
    out.push(("Models/Props/Castle.glb".into(), castle()));
    out.push(("Models/Environment/Sand.glb".into(), sand()));
    out.push(("Models/Environment/Water_Surface.glb".into(), water()));
    out.push(("Models/Miscellaneous/Fallback.glb".into(), fallback()));
    for crate::game::GameSound { name, seconds, .. } in crate::game::SOUNDS {
        let bytes = sound::ogg(name, seconds)
            .map_err(|e| std::io::Error::other(format!("Sounds/{name}.ogg: {e}")))?;
        out.push((format!("Sounds/{name}.ogg"), bytes));
    }
    for kind in ["Sand", "Water", "Scales"] {
        for (q, size) in QUALITY_LEVELS {
            out.push((format!("Textures/{kind}@{q}.png"), texture(kind, size)));
        }
    }
    for kind in ["Coin", "Fish", "Shop", "Panel"] {
        out.push((format!("UI_Assets/Icon_{kind}.png"), ui_image(kind, 128)));
    }
    out.push(("Fonts/DejaVuSansMono.ttf".into(), FONT.to_vec()));
    out.push((
        "Fonts/DejaVuSansMono-LICENSE.txt".into(),
        FONT_LICENSE.to_vec(),
    ));
    for (name, rgb, alpha, rough) in [
        ("Glass", [0.8, 0.95, 1.0], 0.18, 0.05),
        ("Water", [0.2, 0.55, 0.85], 0.35, 0.05),
        ("Sand", [0.86, 0.78, 0.58], 1.0, 0.95),
    ] {
        out.push((
            format!("Materials/{name}.ron"),
            format!(
                "(name: \"{name}\", base_color: ({:.2}, {:.2}, {:.2}, {alpha:.2}), roughness: {rough:.2}, texture: Some(\"Textures/{name}\"))\n",
                rgb[0], rgb[1], rgb[2]
            )
            .replace("Some(\"Textures/Glass\")", "None")
            .into_bytes(),
        ));
    }
    let capacity = [5, 10, 18, 30, 50];
    for level in 1..=5usize {
        out.push((
            format!("Prefabs/Tank_Lv{level}.ron"),
            format!(
                "(name: \"Tank_Lv{level}\", model: \"Models/Aquariums/Aquarium_Lv{level}\", floor: \"Models/Environment/Sand\", water: \"Models/Environment/Water_Surface\", glass: \"Materials/Glass\", capacity: {})\n",
                capacity[level - 1]
            )
            .into_bytes(),
        ));
    }
    Ok(out)
}

/// Writes the tree under `dir`; returns the number of files and bytes.
pub fn write_tree(dir: &Path) -> std::io::Result<(usize, u64)> {
    let mut bytes = 0;
    let files = tree()?;
    for (rel, data) in &files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, data)?;
        bytes += data.len() as u64;
    }
    Ok((files.len(), bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One fish model per entry of the species table, and no other.
    #[test]
    fn the_generator_draws_every_species_of_the_table() {
        let fish: Vec<String> = tree()
            .unwrap()
            .into_iter()
            .map(|(path, _)| path)
            .filter(|p| p.starts_with("Models/Characters/"))
            .collect();
        let expected: Vec<String> = (0..SPECIES.len())
            .map(|i| format!("{}.glb", species_model(i as u8)))
            .collect();
        assert_eq!(fish, expected);
    }

    #[test]
    fn the_tree_is_deterministic_and_small() {
        let a = tree().unwrap();
        let b = tree().unwrap();
        assert_eq!(a.len(), b.len());
        for ((pa, da), (pb, db)) in a.iter().zip(&b) {
            assert_eq!(pa, pb);
            assert!(da == db, "{pa} differs between runs");
        }
        let total: usize = a.iter().map(|(_, d)| d.len()).sum();
        assert!(total < 20 << 20, "{total} bytes");
        // Larger tanks are bigger files (more detail).
        assert!(aquarium(5).len() > aquarium(1).len());
    }
}
