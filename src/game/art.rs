//! What the game's things look like, shared by the asset generator and the client: the fish
//! species' shapes and colours, and the tank's size at each level.

/// A species: name, body (length, height, width), colour, fin colour.
pub type Species = (&'static str, [f32; 3], [f32; 3], [f32; 3]);

/// The fish species.
pub const SPECIES: [Species; 6] = [
    (
        "Goldfish",
        [0.16, 0.09, 0.06],
        [1.0, 0.45, 0.05],
        [1.0, 0.7, 0.2],
    ),
    (
        "Clownfish",
        [0.14, 0.07, 0.05],
        [1.0, 0.35, 0.0],
        [0.95, 0.95, 0.95],
    ),
    (
        "Neon_Tetra",
        [0.10, 0.035, 0.03],
        [0.1, 0.5, 1.0],
        [0.9, 0.1, 0.15],
    ),
    (
        "Angelfish",
        [0.12, 0.16, 0.03],
        [0.85, 0.85, 0.7],
        [0.2, 0.2, 0.25],
    ),
    (
        "Blue_Tang",
        [0.17, 0.11, 0.04],
        [0.05, 0.25, 0.9],
        [1.0, 0.85, 0.1],
    ),
    (
        "Koi",
        [0.24, 0.08, 0.07],
        [0.95, 0.95, 0.9],
        [0.9, 0.2, 0.1],
    ),
];

/// Half extents of the tank of `level` (width, height, depth; model units): the client places
/// fish, decorations and the camera by them.
pub fn tank_half_extents(level: u32) -> [f32; 3] {
    let l = level as f32;
    [
        0.6 + 0.18 * (l - 1.0),
        0.35 + 0.06 * (l - 1.0),
        0.3 + 0.08 * (l - 1.0),
    ]
}
