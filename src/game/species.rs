//! The one species table: each fish species' name (its model is `Models/Characters/<name>`),
//! body size, colours, default price and income, and the key that buys it. The config's
//! defaults for `game.fishPrices` and `game.fishIncomePerSecond` come from here
//! ([`derived_defaults`]), the asset generator draws each species from here, and the client's
//! keys, shop and inventory list them from here. Adding a species is one entry below plus
//! `bloxquarium assets generate`.

use crate::protocol::ConfigValue;

/// A fish species.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Species {
    /// Name (the model file's name: `Models/Characters/<name>.glb`).
    pub name: &'static str,
    /// Body length, height, width (model units).
    pub body: [f32; 3],
    /// Body colour (linear RGB).
    pub colour: [f32; 3],
    /// Fin and tail colour (linear RGB); stripes are this colour too.
    pub fins: [f32; 3],
    /// Its shape: fins, tail and stripes.
    pub shape: Shape,
    /// Default price (`game.fishPrices`).
    pub price: i64,
    /// Default coins per second per fish (`game.fishIncomePerSecond`).
    pub income: f64,
    /// The key that buys one in the window (a digit; decorations use 7, 8 and 9).
    pub key: char,
}

impl Species {
    /// The name as players read it ("Neon Tetra" for the model's `Neon_Tetra`).
    pub fn display_name(&self) -> String {
        self.name.replace('_', " ")
    }
}

/// How a species' body and fins are drawn (the asset generator's input).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    /// How much the body narrows towards the tail (0 an ellipsoid, 1 a teardrop).
    pub taper: f32,
    /// Dorsal and anal fin height, as a share of the body's height.
    pub fin_height: f32,
    /// Tail fin size, as a share of the body's length.
    pub tail: f32,
    /// A forked tail (two lobes) rather than a fan.
    pub forked: bool,
    /// Bands around the body in the fin colour.
    pub stripes: u8,
}

/// The fish species, by species index.
pub const SPECIES: [Species; 6] = [
    Species {
        name: "Goldfish",
        body: [0.16, 0.09, 0.06],
        colour: [1.0, 0.45, 0.05],
        fins: [1.0, 0.7, 0.2],
        shape: Shape {
            taper: 0.3,
            fin_height: 0.35,
            tail: 0.45,
            forked: false,
            stripes: 0,
        },
        price: 10,
        income: 0.2,
        key: '1',
    },
    Species {
        name: "Clownfish",
        body: [0.14, 0.07, 0.05],
        colour: [1.0, 0.35, 0.0],
        fins: [0.95, 0.95, 0.95],
        shape: Shape {
            taper: 0.2,
            fin_height: 0.3,
            tail: 0.25,
            forked: false,
            stripes: 3,
        },
        price: 25,
        income: 0.5,
        key: '2',
    },
    Species {
        name: "Neon_Tetra",
        body: [0.10, 0.035, 0.03],
        colour: [0.1, 0.5, 1.0],
        fins: [0.9, 0.1, 0.15],
        shape: Shape {
            taper: 0.5,
            fin_height: 0.25,
            tail: 0.3,
            forked: true,
            stripes: 0,
        },
        price: 60,
        income: 1.2,
        key: '3',
    },
    Species {
        name: "Angelfish",
        body: [0.12, 0.16, 0.03],
        colour: [0.85, 0.85, 0.7],
        fins: [0.2, 0.2, 0.25],
        shape: Shape {
            taper: 0.6,
            fin_height: 0.9,
            tail: 0.3,
            forked: false,
            stripes: 3,
        },
        price: 150,
        income: 3.0,
        key: '4',
    },
    Species {
        name: "Blue_Tang",
        body: [0.17, 0.11, 0.04],
        colour: [0.05, 0.25, 0.9],
        fins: [1.0, 0.85, 0.1],
        shape: Shape {
            taper: 0.4,
            fin_height: 0.3,
            tail: 0.3,
            forked: true,
            stripes: 0,
        },
        price: 400,
        income: 8.0,
        key: '5',
    },
    Species {
        name: "Koi",
        body: [0.24, 0.08, 0.07],
        colour: [0.95, 0.95, 0.9],
        fins: [0.9, 0.2, 0.1],
        shape: Shape {
            taper: 0.5,
            fin_height: 0.2,
            tail: 0.35,
            forked: true,
            stripes: 0,
        },
        price: 1000,
        income: 20.0,
        key: '6',
    },
];

/// Keys the window uses for decorations (the shop lists them after the fish).
pub const DECORATION_KEYS: [char; 3] = ['7', '8', '9'];

/// The species' model path (without extension), by species index (wrapping for an index the
/// table does not have).
pub fn species_model(species: u8) -> String {
    let s = &SPECIES[usize::from(species) % SPECIES.len()];
    format!("Models/Characters/{}", s.name)
}

/// The config keys whose defaults the table gives: `game.fishPrices` and
/// `game.fishIncomePerSecond` (the schema in `keys.ron` leaves them empty).
pub fn derived_defaults() -> Vec<(&'static str, ConfigValue)> {
    vec![
        (
            "game.fishPrices",
            ConfigValue::List(SPECIES.iter().map(|s| ConfigValue::Int(s.price)).collect()),
        ),
        (
            "game.fishIncomePerSecond",
            ConfigValue::List(
                SPECIES
                    .iter()
                    .map(|s| ConfigValue::Float(s.income))
                    .collect(),
            ),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::game::protocol::MAX_SPECIES;
    use crate::game::rules::Catalog;

    /// The table is the one place: the config's defaults, the protocol's limit, the keys and the
    /// committed models all follow it (the generator's side is tested in `assetgen`). A species
    /// added to the table without `bloxquarium assets generate`, or a key that clashes, fails
    /// here.
    #[test]
    fn every_use_of_the_species_agrees_with_the_table() {
        let config = crate::config::defaults_with_game_for_tests(&crate::game::KEYS);
        let c = Catalog::from_config(&config).unwrap();
        let prices: Vec<i64> = SPECIES.iter().map(|s| s.price).collect();
        let income: Vec<f64> = SPECIES.iter().map(|s| s.income).collect();
        assert_eq!(c.fish_prices, prices);
        assert_eq!(c.fish_income, income);
        assert!(SPECIES.len() <= usize::from(MAX_SPECIES));
        let mut keys: Vec<char> = SPECIES.iter().map(|s| s.key).collect();
        keys.extend(DECORATION_KEYS);
        let mut unique = keys.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), keys.len(), "a key used twice: {keys:?}");
        assert!(keys.iter().all(char::is_ascii_digit), "{keys:?}");
        let assets = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
        for i in 0..SPECIES.len() {
            let model = format!("{}.glb", species_model(i as u8));
            assert!(
                assets.join(&model).is_file(),
                "{model} is missing: run `bloxquarium assets generate`"
            );
        }
        let committed = std::fs::read_dir(assets.join("Models/Characters"))
            .unwrap()
            .count();
        assert_eq!(committed, SPECIES.len(), "a fish model with no species");
    }
}
