//! What the game's things look like, shared by the asset generator and the client: the tank's
//! size at each level (the fish's looks are in the species table, [`super::species`]).

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
