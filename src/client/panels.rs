//! The player's panels and social keys: shop, inventory and settings (Tab cycles them), gifts
//! (G) and visits (V, Esc home); the settings apply live (quality level, fps cap, particle
//! quality, shadows) and persist as the player's ClientSafe preferences. Also the frame limiter
//! (`graphics.fpsCap`) and the bubbles whose count follows `graphics.particleQuality`.

use std::time::{Duration, Instant};

use bevy::input::ButtonInput;
use bevy::input::keyboard::KeyCode;
use bevy::prelude::*;

use super::aquarium::{ShownAquarium, TANK_BASE};
use crate::config::ClientConfig;
use crate::game::DECORATIONS;
use crate::game::protocol::ShopItem;
use crate::game::{GameOp, Leaderboard, Prediction, Shop, Visit};
use crate::protocol::ConfigValue;
use crate::stages::ClientSystems;
use crate::transport::ClientNet;

/// Coins one press of G gives.
pub const GIFT_COINS: i64 = 10;

/// Which panel is open.
#[derive(Resource, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Panel {
    /// None.
    #[default]
    Closed,
    /// Prices and keys.
    Shop,
    /// What the player has.
    Inventory,
    /// The player's settings.
    Settings,
}

#[derive(Component)]
struct PanelText;

#[derive(Component)]
struct Bubble {
    speed: f32,
    phase: f32,
}

/// The panels, the social keys, the frame limiter and the bubbles.
pub struct PanelsPlugin;

impl Plugin for PanelsPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<Panel>()
            .add_systems(Startup, spawn_panel)
            .add_systems(
                Update,
                (
                    (panel_keys, social_keys)
                        .chain()
                        .run_if(in_state(crate::assets::AssetPhase::Playing))
                        .in_set(ClientSystems::Handle),
                    (
                        update_panel.run_if(in_state(crate::assets::AssetPhase::Playing)),
                        bubbles,
                    )
                        .in_set(ClientSystems::Present),
                ),
            )
            .add_systems(Last, limit_frame_rate.in_set(ClientSystems::Finish));
    }
}

fn spawn_panel(mut commands: Commands) {
    commands.spawn((
        Node {
            position_type: PositionType::Absolute,
            top: px(52),
            right: px(12),
            padding: UiRect::axes(px(14), px(10)),
            max_width: px(420),
            ..default()
        },
        BackgroundColor(Color::srgba(0.02, 0.06, 0.12, 0.8)),
        super::hud::HidesWhenEmpty,
        children![(
            PanelText,
            Text::new(""),
            TextFont::default().with_font_size(16.0),
            TextColor(Color::srgb(0.85, 0.95, 1.0)),
        )],
    ));
}

fn set(config: &mut ClientConfig, path: &str, value: ConfigValue, now: Duration) {
    if let Err(e) = config.0.set(path, value, "player", "settings panel", now) {
        warn!("setting {path}: {e}");
    }
}

#[allow(clippy::too_many_arguments)]
fn panel_keys(
    input: Res<ButtonInput<KeyCode>>,
    mut panel: ResMut<Panel>,
    mut config: ResMut<ClientConfig>,
    mut prediction: ResMut<Prediction>,
    mut net: ResMut<ClientNet>,
    shop: Res<Shop>,
    visit: Res<Visit>,
    time: Res<Time<Real>>,
) {
    if input.just_pressed(KeyCode::Tab) {
        *panel = match *panel {
            Panel::Closed => Panel::Shop,
            Panel::Shop => Panel::Inventory,
            Panel::Inventory => Panel::Settings,
            Panel::Settings => Panel::Closed,
        };
    }
    let now = time.elapsed();
    // Decorations: their keys from the species table's module (the shop lists them).
    let keys = crate::game::DECORATION_KEYS.map(super::hud::digit_key);
    if let Some(catalog) = shop.catalog() {
        for (kind, key) in keys.iter().enumerate() {
            if !input.just_pressed(*key) {
                continue;
            }
            if visit.showing.is_some() {
                prediction
                    .predictor
                    .refuse(0, "you are visiting: this aquarium is read-only".into());
                continue;
            }
            let op = GameOp::Purchase {
                item: ShopItem::Decoration { kind: kind as u8 },
                quantity: 1,
            };
            // A refusal is recorded by the predictor (and toasted).
            let _ = prediction.send(&mut net, op, catalog, now);
        }
    }
    if *panel != Panel::Settings {
        return;
    }
    let int = |c: &ClientConfig, k: &str, d: i64| c.0.get::<i64>(k).unwrap_or(d);
    if input.just_pressed(KeyCode::BracketLeft) || input.just_pressed(KeyCode::BracketRight) {
        let step = if input.just_pressed(KeyCode::BracketLeft) {
            -1
        } else {
            1
        };
        let level = (int(&config, "graphics.qualityLevel", 3) + step).clamp(1, 5);
        set(
            &mut config,
            "graphics.qualityLevel",
            ConfigValue::Int(level),
            now,
        );
    }
    if input.just_pressed(KeyCode::Minus) || input.just_pressed(KeyCode::Equal) {
        let step = if input.just_pressed(KeyCode::Minus) {
            -15
        } else {
            15
        };
        let cap = (int(&config, "graphics.fpsCap", 60) + step).clamp(15, 240);
        set(&mut config, "graphics.fpsCap", ConfigValue::Int(cap), now);
    }
    if input.just_pressed(KeyCode::KeyP) {
        let order = ["LOW", "MEDIUM", "HIGH", "ULTRA"];
        let now_q = config
            .0
            .get::<String>("graphics.particleQuality")
            .unwrap_or_else(|_| "HIGH".into());
        let i = order.iter().position(|q| *q == now_q).unwrap_or(2);
        let next = order[(i + 1) % order.len()];
        set(
            &mut config,
            "graphics.particleQuality",
            ConfigValue::Text(next.into()),
            now,
        );
    }
    if input.just_pressed(KeyCode::KeyH) {
        let on = config.0.get::<bool>("graphics.shadows").unwrap_or(true);
        set(&mut config, "graphics.shadows", ConfigValue::Bool(!on), now);
    }
    if input.just_pressed(KeyCode::Comma) || input.just_pressed(KeyCode::Period) {
        let step = if input.just_pressed(KeyCode::Comma) {
            -0.1
        } else {
            0.1
        };
        let v = config.0.get::<f64>("audio.masterVolume").unwrap_or(0.8);
        let v = ((v + step) * 10.0).round() / 10.0;
        set(
            &mut config,
            "audio.masterVolume",
            ConfigValue::Float(v.clamp(0.0, 1.0)),
            now,
        );
    }
}

/// The next other player on the leaderboard after `current` (wrapping), if any.
fn next_other(board: &Leaderboard, me: Option<&str>, current: Option<u64>) -> Option<u64> {
    let others: Vec<u64> = board
        .0
        .iter()
        .filter(|(_, name, _)| Some(name.as_str()) != me)
        .map(|(id, _, _)| *id)
        .collect();
    let at = current.and_then(|c| others.iter().position(|o| *o == c));
    match at {
        Some(i) => others.get((i + 1) % others.len()).copied(),
        None => others.first().copied(),
    }
}

#[allow(clippy::too_many_arguments)]
fn social_keys(
    input: Res<ButtonInput<KeyCode>>,
    mut prediction: ResMut<Prediction>,
    mut net: ResMut<ClientNet>,
    shop: Res<Shop>,
    board: Res<Leaderboard>,
    mut visit: ResMut<Visit>,
    time: Res<Time<Real>>,
) {
    let now = time.elapsed();
    let me_name = net.0.welcomed_as.clone();
    let me = me_name.as_deref();
    if input.just_pressed(KeyCode::Escape) {
        visit.leave();
    }
    if input.just_pressed(KeyCode::KeyV) {
        let current = visit.showing.as_ref().map(|(id, ..)| *id);
        match next_other(&board, me, current) {
            Some(p) => visit.request(&mut net, p, now),
            None => prediction
                .predictor
                .refuse(0, "nobody else is online to visit".into()),
        }
    }
    if input.just_pressed(KeyCode::KeyG) {
        // To the player being visited, else the first other player on the leaderboard.
        let to = visit
            .showing
            .as_ref()
            .map(|(id, ..)| *id)
            .or_else(|| next_other(&board, me, None));
        match (to, shop.catalog()) {
            (Some(to), Some(catalog)) => {
                let op = GameOp::Gift {
                    to,
                    coins: GIFT_COINS,
                };
                // A refusal is recorded by the predictor (and toasted).
                let _ = prediction.send(&mut net, op, catalog, now);
            }
            _ => prediction
                .predictor
                .refuse(0, "nobody else is online to send a gift to".into()),
        }
    }
}

fn update_panel(
    panel: Res<Panel>,
    shop: Res<Shop>,
    prediction: Res<Prediction>,
    config: Res<ClientConfig>,
    visit: Res<Visit>,
    mut text: Query<&mut Text, With<PanelText>>,
) {
    let catalog = shop.catalog();
    let state = catalog.and_then(|c| prediction.predictor.predicted(c));
    let body = match (*panel, catalog) {
        (Panel::Closed, _) => match &visit.showing {
            Some((_, name, _)) => format!(
                "Visiting {name}'s aquarium (read-only)\nV next player | G gift {GIFT_COINS} coins | Esc home"
            ),
            None => String::new(),
        },
        (Panel::Shop, Some(c)) => {
            let mut s = String::from("SHOP (Tab: next panel)\n");
            for (i, sp) in crate::game::SPECIES.iter().enumerate() {
                let price = c.fish_prices.get(i).copied().unwrap_or(0);
                let income = c.fish_income.get(i).copied().unwrap_or(0.0);
                s.push_str(&format!(
                    "[{}] {:<10} {price:>5} coins  +{income}/s\n",
                    sp.key, sp.name
                ));
            }
            for ((i, name), key) in DECORATIONS
                .iter()
                .enumerate()
                .zip(crate::game::DECORATION_KEYS)
            {
                let price = c.decoration_prices.get(i).copied().unwrap_or(0);
                s.push_str(&format!("[{key}] {name:<10} {price:>5} coins\n"));
            }
            let level = state.as_ref().map_or(1, |s| s.tank_level);
            match c.tank_prices.get(usize::from(level)) {
                Some(p) if usize::from(level) < c.tank_capacity.len() => s.push_str(&format!(
                    "[U] Tank Lv{} {p:>5} coins (holds {} fish)\n",
                    level + 1,
                    c.capacity(level + 1)
                )),
                _ => s.push_str("[U] the tank is at its highest level\n"),
            }
            s.push_str("[S] sell newest fish | [F] feed all | [G] gift | [V] visit");
            s
        }
        (Panel::Inventory, Some(c)) => match &state {
            Some(st) => {
                let mut s = String::from("INVENTORY (Tab: next panel)\n");
                for (i, crate::game::Species { name, .. }) in
                    crate::game::SPECIES.iter().enumerate()
                {
                    let fish: Vec<_> = st
                        .fish
                        .iter()
                        .filter(|f| usize::from(f.species) == i)
                        .collect();
                    if fish.is_empty() {
                        continue;
                    }
                    let hunger = fish.iter().map(|f| f.hunger).sum::<f32>() / fish.len() as f32;
                    s.push_str(&format!(
                        "{name:<10} x{}  hunger {hunger:.0}%\n",
                        fish.len()
                    ));
                }
                for (k, name) in DECORATIONS.iter().enumerate() {
                    let n = st
                        .decorations
                        .iter()
                        .filter(|d| usize::from(**d) == k)
                        .count();
                    if n > 0 {
                        s.push_str(&format!("{name:<10} x{n}\n"));
                    }
                }
                s.push_str(&format!(
                    "Tank Lv{} | {} of {} fish | earning {:.1} coins/s",
                    st.tank_level,
                    st.fish.len(),
                    c.capacity(st.tank_level),
                    c.income_per_second(&crate::game::to_profile(st))
                ));
                s
            }
            None => "INVENTORY\nloading...".into(),
        },
        (Panel::Settings, _) => {
            let get = |k: &str| {
                config
                    .0
                    .value(k)
                    .map_or_else(|_| "?".into(), |v| format!("{v}"))
            };
            format!(
                "SETTINGS (Tab: close; saved as your preferences)\n[ ] quality level {}\n- = fps cap {}\n[P] particles {}\n[H] shadows {}\n, . volume {}",
                get("graphics.qualityLevel"),
                get("graphics.fpsCap"),
                get("graphics.particleQuality"),
                get("graphics.shadows"),
                get("audio.masterVolume"),
            )
        }
        (_, None) => "the shop is closed".into(),
    };
    for mut t in &mut text {
        if t.0 != body {
            t.0.clone_from(&body);
        }
    }
}

/// The shortest a frame may be: one over `graphics.fpsCap` (15..=240; 60 without the key).
pub fn shortest_frame(config: &crate::config::Config) -> Duration {
    let cap = config
        .get::<i64>("graphics.fpsCap")
        .unwrap_or(60)
        .clamp(15, 240);
    Duration::from_secs_f64(1.0 / cap as f64)
}

/// How many bubbles rise: 8, 16, 32 or 64 by `graphics.particleQuality` (32 without the key).
pub fn bubble_count(config: &crate::config::Config) -> usize {
    match config
        .get::<String>("graphics.particleQuality")
        .ok()
        .as_deref()
    {
        Some("LOW") => 8,
        Some("MEDIUM") => 16,
        Some("ULTRA") => 64,
        _ => 32,
    }
}

/// Sleeps at the end of a frame so frames come no faster than `graphics.fpsCap`.
fn limit_frame_rate(config: Res<ClientConfig>, mut last: Local<Option<Instant>>) {
    let frame = shortest_frame(&config.0);
    if let Some(t) = *last {
        let spent = t.elapsed();
        if spent < frame {
            std::thread::sleep(frame - spent);
        }
    }
    *last = Some(Instant::now());
}

/// Bubbles rising through the water: 8, 16, 32 or 64 of them by `graphics.particleQuality`,
/// changed live.
#[allow(clippy::too_many_arguments)]
fn bubbles(
    mut commands: Commands,
    config: Res<ClientConfig>,
    shown: Res<ShownAquarium>,
    time: Res<Time>,
    mut existing: Query<(Entity, &Bubble, &mut Transform)>,
    mut meshes: ResMut<Assets<Mesh>>,
    mut materials: ResMut<Assets<StandardMaterial>>,
    mut look: Local<Option<(Handle<Mesh>, Handle<StandardMaterial>)>>,
) {
    let want = bubble_count(&config.0);
    let (centre, half) = super::aquarium::swim_volume(shown.level());
    let have = existing.iter().count();
    if have != want {
        let (mesh, mat) = look
            .get_or_insert_with(|| {
                (
                    meshes.add(Sphere::new(0.025).mesh().uv(8, 6)),
                    materials.add(StandardMaterial {
                        base_color: Color::srgba(0.9, 0.97, 1.0, 0.55),
                        alpha_mode: AlphaMode::Blend,
                        perceptual_roughness: 0.05,
                        ..default()
                    }),
                )
            })
            .clone();
        for (i, (e, ..)) in existing.iter().enumerate() {
            if i >= want {
                commands.entity(e).despawn();
            }
        }
        for i in have..want {
            let k = i as f32;
            commands.spawn((
                Bubble {
                    speed: 0.25 + 0.2 * (k * 1.3).sin().abs(),
                    phase: k * 0.37,
                },
                Mesh3d(mesh.clone()),
                MeshMaterial3d(mat.clone()),
                Transform::from_xyz(0.0, TANK_BASE, 0.0),
            ));
        }
    }
    // Two columns of bubbles from the back corners, wobbling as they rise.
    let top = centre[1] + half[1] * 1.5;
    let t = time.elapsed_secs();
    for (_, b, mut tr) in &mut existing {
        let rise = (t * b.speed + b.phase) % 1.0;
        let side = if (b.phase * 10.0) as i32 % 2 == 0 {
            -1.0
        } else {
            1.0
        };
        tr.translation = Vec3::new(
            side * half[0] * 0.9 + 0.05 * (t * 3.0 + b.phase * 5.0).sin(),
            TANK_BASE + rise * (top - TANK_BASE),
            -half[2] * 0.8 + 0.05 * (t * 2.0 + b.phase).cos(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ConfigValue;

    fn with(key: &str, value: ConfigValue) -> crate::config::Config {
        let mut c = crate::config::defaults_for_tests();
        c.set(key, value, "test", "", Duration::ZERO).unwrap();
        c
    }

    #[test]
    fn the_frame_cap_sets_the_shortest_frame() {
        let d = crate::config::defaults_for_tests();
        assert_eq!(shortest_frame(&d), Duration::from_secs_f64(1.0 / 60.0));
        let c = with("graphics.fpsCap", ConfigValue::Int(20));
        assert_eq!(shortest_frame(&c), Duration::from_millis(50));
    }

    #[test]
    fn particle_quality_sets_how_many_bubbles_rise() {
        assert_eq!(bubble_count(&crate::config::defaults_for_tests()), 32);
        let n = |q: &str| {
            bubble_count(&with(
                "graphics.particleQuality",
                ConfigValue::Text(q.into()),
            ))
        };
        assert_eq!([n("LOW"), n("MEDIUM"), n("ULTRA")], [8, 16, 64]);
    }
}
