//! What the game's things look and sound like, shared by the asset generator and the client:
//! the tank's size at each level and the sounds (the fish's looks are in the species table,
//! [`super::species`]).

/// A sound of the game: its file (`Sounds/<name>.ogg`), its length as the generator makes it,
/// and whether it is ambience (its loudness is `audio.ambienceVolume`) or an effect
/// (`audio.effectsVolume`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GameSound {
    /// The file's name.
    pub name: &'static str,
    /// Seconds.
    pub seconds: f32,
    /// Ambience (or an effect).
    pub ambience: bool,
}

/// The sounds, in the generator's order.
pub const SOUNDS: [GameSound; 5] = [
    GameSound {
        name: "Bubbles",
        seconds: 1.2,
        ambience: true,
    },
    GameSound {
        name: "Coin",
        seconds: 0.35,
        ambience: false,
    },
    GameSound {
        name: "Splash",
        seconds: 0.8,
        ambience: false,
    },
    GameSound {
        name: "Click",
        seconds: 0.08,
        ambience: false,
    },
    GameSound {
        name: "Ambience_Water",
        seconds: 4.0,
        ambience: true,
    },
];

/// Samples per second of every sound: the generator writes it, the client's mixer plays it.
pub const SOUND_RATE: u32 = 22_050;

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
