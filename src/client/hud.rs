//! The game on the client: the player's own fish in the tank (flocking), the coins/tank/fish
//! line, keys to buy, feed and upgrade (predicted at once), a toast for each refused action
//! with its reason, and the F3 overlay.

use std::collections::HashMap;
use std::time::Duration;

use bevy::input::ButtonInput;
use bevy::input::keyboard::KeyCode;
use bevy::prelude::*;

use super::aquarium::{FishSpecies, ShownAquarium, swim_volume};
use crate::game::Visit;
use crate::game::protocol::ShopItem;
use crate::game::{Boid, Flock, flock_step};
use crate::game::{GameOp, Prediction, Shop};
use crate::stages::ClientSystems;
use crate::transport::ClientNet;
use crate::transport::ConnectionState;

/// A fish on screen: whose (0: the player's own) and its id.
#[derive(Component)]
struct PlayerFish {
    owner: u64,
    id: u64,
}

#[derive(Component)]
struct HudText;

#[derive(Component)]
struct ToastText;

#[derive(Component)]
struct OverlayText;

/// A text box that hides while its text is empty.
#[derive(Component)]
pub(crate) struct HidesWhenEmpty;

#[derive(Resource, Default)]
struct HudState {
    boids: HashMap<(u64, u64), Boid>,
    toast_until: Duration,
    /// How long a toast stays (`ui.toastSeconds`).
    toast_for: Duration,
    shown_refusals: u64,
    shown_notices: usize,
    overlay: bool,
    fps: f32,
}

impl HudState {
    /// From the client's config: the F3 overlay shown at start (`ui.showFps`) and how long a
    /// toast stays (`ui.toastSeconds`).
    fn from_config(config: Option<&crate::config::Config>) -> Self {
        Self {
            overlay: config
                .and_then(|c| c.get::<bool>("ui.showFps").ok())
                .unwrap_or(false),
            toast_for: toast_seconds(config),
            ..default()
        }
    }

    /// Shows a toast from `now` for the configured time.
    fn toast(&mut self, now: Duration) {
        self.toast_until = now + self.toast_for;
    }
}

fn toast_seconds(config: Option<&crate::config::Config>) -> Duration {
    config
        .and_then(|c| c.get::<Duration>("ui.toastSeconds").ok())
        .unwrap_or(Duration::from_secs(4))
}

/// The HUD's state at start, from the config.
fn init_hud(mut commands: Commands, config: Option<Res<crate::config::ClientConfig>>) {
    commands.insert_resource(HudState::from_config(config.as_deref().map(|c| &c.0)));
}

/// `ui.toastSeconds` follows changes live.
fn follow_toast_seconds(
    config: Option<Res<crate::config::ClientConfig>>,
    mut changed: MessageReader<crate::config::ConfigChanged>,
    mut hud: ResMut<HudState>,
) {
    if changed.read().any(|c| c.under("ui.toastSeconds")) {
        hud.toast_for = toast_seconds(config.as_deref().map(|c| &c.0));
    }
}

/// Extra display-only fish for the frame-time benchmark (`--bench-fish`).
#[derive(Resource, Debug, Clone, Copy, Default)]
pub struct BenchFish(pub u32);

/// Owner id of the benchmark's fish.
const BENCH_OWNER: u64 = u64::MAX;

/// The client's game view.
pub struct GameHudPlugin;

impl Plugin for GameHudPlugin {
    fn build(&self, app: &mut App) {
        // A player at the window gets the daily reward without asking.
        app.insert_resource(crate::game::DailyClaims::automatic())
            .add_message::<crate::config::ConfigChanged>()
            .add_systems(Startup, (init_hud, spawn_hud))
            .add_systems(PreUpdate, follow_toast_seconds.in_set(ClientSystems::Sync))
            .add_systems(
                Update,
                (
                    keys.run_if(in_state(crate::assets::AssetPhase::Playing))
                        .in_set(ClientSystems::Handle),
                    (
                        sync_fish,
                        spawn_bench_fish.run_if(in_state(crate::assets::AssetPhase::Playing)),
                        swim,
                        update_hud,
                        update_overlay,
                        hide_empty,
                    )
                        .chain()
                        .in_set(ClientSystems::Present),
                ),
            );
    }
}

fn text_box(top: Val, colour: Color, marker: impl Component, size: f32) -> impl Bundle {
    (
        Node {
            position_type: PositionType::Absolute,
            top,
            left: px(12),
            padding: UiRect::axes(px(12), px(8)),
            ..default()
        },
        BackgroundColor(Color::srgba(0.0, 0.0, 0.0, 0.55)),
        HidesWhenEmpty,
        children![(
            Text::new(""),
            TextFont::default().with_font_size(size),
            TextColor(colour),
            marker,
        )],
    )
}

/// The toast's text box (not the HUD line's).
type ToastOnly = (With<ToastText>, Without<HudText>);

/// The toast's colour for refusals and problems.
const WARNING: Color = Color::srgb(1.0, 0.55, 0.5);
/// The toast's colour for coins the player got (earnings while away, the daily reward).
const GOOD_NEWS: Color = Color::srgb(0.55, 1.0, 0.6);

fn spawn_hud(mut commands: Commands) {
    commands.spawn(text_box(px(52), Color::srgb(1.0, 0.9, 0.5), HudText, 20.0));
    commands.spawn(text_box(px(92), WARNING, ToastText, 18.0));
    commands.spawn(text_box(
        px(132),
        Color::srgb(0.7, 1.0, 0.8),
        OverlayText,
        16.0,
    ));
}

fn keys(
    input: Res<ButtonInput<KeyCode>>,
    mut prediction: ResMut<Prediction>,
    mut net: ResMut<ClientNet>,
    shop: Res<Shop>,
    visit: Res<Visit>,
    mut hud: ResMut<HudState>,
    time: Res<Time<Real>>,
) {
    if input.just_pressed(KeyCode::F3) {
        hud.overlay = !hud.overlay;
    }
    let Some(catalog) = shop.catalog() else {
        return;
    };
    let mut ops = Vec::new();
    for (species, s) in crate::game::SPECIES.iter().enumerate() {
        if input.just_pressed(digit_key(s.key)) {
            ops.push(GameOp::Purchase {
                item: ShopItem::Fish {
                    species: species as u8,
                },
                quantity: 1,
            });
        }
    }
    if input.just_pressed(KeyCode::KeyF) {
        ops.push(GameOp::Feed { fish: None });
    }
    if input.just_pressed(KeyCode::KeyS)
        && let Some(newest) = prediction
            .predictor
            .predicted(catalog)
            .and_then(|s| s.fish.iter().map(|f| f.id).max())
    {
        ops.push(GameOp::Sell { fish: newest });
    }
    if input.just_pressed(KeyCode::KeyU) {
        ops.push(GameOp::Purchase {
            item: ShopItem::TankUpgrade,
            quantity: 1,
        });
    }
    let now = time.elapsed();
    if visit.showing.is_some() && !ops.is_empty() {
        prediction.predictor.refuse(
            0,
            "you are visiting: this aquarium is read-only (Esc to go home)".into(),
        );
        return;
    }
    for op in ops {
        // A refusal before sending is recorded by the predictor and toasted like the server's.
        let _ = prediction.send(&mut net, op, catalog, now);
    }
}

/// One entity per fish in the predicted state.
fn sync_fish(
    mut commands: Commands,
    shown: Res<ShownAquarium>,
    mut hud: ResMut<HudState>,
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
            hud.boids.remove(&(f.owner, f.id));
        }
    }
    let have: Vec<(u64, u64)> = fish.iter().map(|(_, f)| (f.owner, f.id)).collect();
    for ((owner, id), species) in wanted {
        if have.contains(&(owner, id)) {
            continue;
        }
        spawn_fish(
            &mut commands,
            &mut hud,
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
    hud: &mut HudState,
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
    hud.boids.insert((owner, id), start);
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
    mut hud: ResMut<HudState>,
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
            &mut hud,
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
    mut hud: ResMut<HudState>,
    mut fish: Query<(&PlayerFish, &mut Transform)>,
) {
    let (centre, half) = swim_volume(shown.level());
    let dt = time.delta_secs().min(0.1);
    if dt > 0.0 {
        let smoothed = hud.fps * 0.95 + (1.0 / dt) * 0.05;
        hud.fps = smoothed;
    }
    let flock = Flock {
        half,
        centre,
        sight: 0.8,
        personal: 0.3,
        speed: 0.55,
    };
    let ids: Vec<(u64, u64)> = hud.boids.keys().copied().collect();
    let mut all: Vec<Boid> = ids
        .iter()
        .filter_map(|i| hud.boids.get(i).copied())
        .collect();
    flock_step(&mut all, &flock, dt);
    for (id, b) in ids.iter().zip(all) {
        hud.boids.insert(*id, b);
    }
    for (f, mut t) in &mut fish {
        if let Some(b) = hud.boids.get(&(f.owner, f.id)) {
            t.translation = Vec3::from(b.pos);
            t.rotation = Quat::from_rotation_y(-b.vel[2].atan2(b.vel[0]));
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn update_hud(
    prediction: Res<Prediction>,
    notices: Res<crate::game::Notices>,
    (board, net): (
        Res<crate::game::Leaderboard>,
        Option<Res<crate::transport::ClientNet>>,
    ),
    shop: Res<Shop>,
    state: Res<ConnectionState>,
    time: Res<Time<Real>>,
    mut hud: ResMut<HudState>,
    mut problems: MessageReader<crate::assets::AssetProblem>,
    mut differ: MessageReader<crate::assets::AssetsDiffer>,
    mut line: Query<&mut Text, (With<HudText>, Without<ToastText>)>,
    mut toast: Query<(&mut Text, &mut TextColor), ToastOnly>,
) {
    let now = time.elapsed();
    let mut say = |text: String, color: Color| {
        for (mut t, mut c) in &mut toast {
            if t.0 != text {
                t.0.clone_from(&text);
            }
            if c.0 != color {
                c.0 = color;
            }
        }
    };
    // An asset that failed is reported like a refusal.
    if let Some(p) = problems.read().last() {
        hud.toast(now);
        say(
            format!(
                "Asset {} {}: a lower quality or the magenta fallback stands in",
                p.path,
                if p.integrity {
                    "failed its integrity check"
                } else {
                    "could not load"
                }
            ),
            WARNING,
        );
    }
    // Files that differ from the server's: said once, at join, with what differs.
    if let Some(d) = differ.read().last() {
        hud.toast(now);
        say(d.describe(), WARNING);
    }
    let catalog = shop.catalog();
    let predicted = catalog.and_then(|c| prediction.predictor.predicted(c));
    let my_coins = predicted.as_ref().map(|s| s.coins);
    let text = match (predicted, catalog) {
        (Some(s), Some(c)) => format!(
            "Coins {} | Tank Lv{} | Fish {}/{} | keys: {} buy fish, S sell, F feed, U upgrade tank, F3 stats",
            s.coins,
            s.tank_level,
            s.fish.len(),
            c.capacity(s.tank_level),
            fish_keys()
        ),
        _ if *state == ConnectionState::Connected => "Loading your aquarium...".to_string(),
        _ => "Not in the game".to_string(),
    };
    let text = if board.0.is_empty() {
        text
    } else {
        let me = net.as_ref().and_then(|n| n.welcomed_as.clone());
        let top: Vec<String> = ranked_with_own(&board.0, me.as_deref(), my_coins)
            .iter()
            .take(5)
            .enumerate()
            .map(|(i, (name, coins))| format!("{}. {name} {coins}", i + 1))
            .collect();
        format!("{text}\nTop: {}", top.join("  "))
    };
    for mut t in &mut line {
        if t.0 != text {
            t.0.clone_from(&text);
        }
    }
    let refusals = prediction.predictor.refusals;
    if refusals != hud.shown_refusals {
        hud.shown_refusals = refusals;
        hud.toast(now);
        if let Some((_, why)) = prediction.predictor.rejections.last() {
            say(format!("Refused: {why}"), WARNING);
        }
    }
    if notices.0.len() > hud.shown_notices {
        // The ones that arrived together (earnings and the daily reward) show together.
        let text = notices.0[hud.shown_notices..].join("\n");
        hud.shown_notices = notices.0.len();
        hud.toast(now);
        say(text, GOOD_NEWS);
    }
    if now > hud.toast_until {
        say(String::new(), WARNING);
    }
}

fn update_overlay(
    hud: Res<HudState>,
    prediction: Res<Prediction>,
    net: Res<ClientNet>,
    state: Res<ConnectionState>,
    assets: Res<crate::assets::AssetStreamer>,
    registry: Res<crate::integration::IntegrationRegistry>,
    mut text: Query<&mut Text, With<OverlayText>>,
) {
    let body = if hud.overlay {
        let (rtt, loss) = net
            .stats
            .peers
            .values()
            .next()
            .map_or((0.0, 0.0), |p| (p.rtt_ms, p.packet_loss));
        let p = &prediction.predictor;
        format!(
            "FPS {:.0} | RTT {rtt:.0} ms | loss {:.1}% | predicted ops pending {} (acked {}, mispredicted {}) | {}\n{}\n{}",
            hud.fps,
            loss * 100.0,
            p.pending(),
            p.acknowledged,
            p.mispredictions,
            *state,
            health_summary(&registry, &state, &assets),
            {
                let s = assets.stats();
                format!(
                    "assets: cache hit rate {:.0}% ({} entries, {:.1} MiB) | streaming queue {} + {} in flight | quality {} | avg load {:.1} ms | failures {} (integrity {}), fallbacks {}",
                    s.cache.hit_rate() * 100.0,
                    s.cache.entries,
                    s.cache.bytes as f64 / (1024.0 * 1024.0),
                    s.queued,
                    s.in_flight,
                    crate::assets::quality_name(s.quality),
                    s.loads.average_ms(),
                    s.loads.failed,
                    s.loads.integrity_failures,
                    s.loads.fallbacks,
                )
            },
        )
    } else {
        String::new()
    };
    for mut t in &mut text {
        if t.0 != body {
            t.0.clone_from(&body);
        }
    }
}

/// One line: the server's health where this process runs one (play mode), and the client's own
/// (connection, assets answered by the fallback).
fn health_summary(
    registry: &crate::integration::IntegrationRegistry,
    state: &ConnectionState,
    assets: &crate::assets::AssetStreamer,
) -> String {
    let server = registry.last.as_ref().map_or_else(
        || "server health: not in this process".to_string(),
        |r| {
            let worst: Vec<String> = r
                .systems
                .iter()
                .filter(|s| !matches!(s.health, crate::integration::HealthStatus::Healthy))
                .map(|s| format!("{} {:?}", s.name, s.health))
                .collect();
            format!(
                "server health: {:?} ({} systems{}{})",
                r.overall,
                r.system_count,
                if worst.is_empty() { "" } else { "; " },
                worst.join(", ")
            )
        },
    );
    let fallbacks = assets.stats().loads.fallbacks;
    let client = match (state, fallbacks) {
        (ConnectionState::Connected, 0) => "client: healthy".to_string(),
        (ConnectionState::Connected, n) => format!("client: degraded ({n} assets on the fallback)"),
        (other, _) => format!("client: unhealthy ({other})"),
    };
    format!("{server} | {client}")
}

fn hide_empty(mut boxes: Query<(&mut Node, &Children), With<HidesWhenEmpty>>, texts: Query<&Text>) {
    for (mut node, children) in &mut boxes {
        let empty = children
            .iter()
            .filter_map(|c| texts.get(c).ok())
            .all(|t| t.0.is_empty());
        let display = if empty { Display::None } else { Display::Flex };
        if node.display != display {
            node.display = display;
        }
    }
}

/// The leaderboard as the HUD shows it: the player's own entry carries the coin figure the HUD
/// shows (the server's board is a few seconds old), ranked again.
fn ranked_with_own(
    board: &[(u64, String, i64)],
    me: Option<&str>,
    my_coins: Option<i64>,
) -> Vec<(String, i64)> {
    let mut out: Vec<(String, i64)> = board
        .iter()
        .map(|(_, name, coins)| match (me, my_coins) {
            (Some(me), Some(mine)) if me == name => (name.clone(), mine),
            _ => (name.clone(), *coins),
        })
        .collect();
    out.sort_by_key(|e| std::cmp::Reverse(e.1));
    out
}

/// The species table's keys as the HUD names them: `1-6` when they run in order.
fn fish_keys() -> String {
    let keys: Vec<char> = crate::game::SPECIES.iter().map(|s| s.key).collect();
    match (keys.first(), keys.last()) {
        (Some(a), Some(b))
            if keys.len() > 2 && keys.windows(2).all(|w| (w[1] as u32) == (w[0] as u32) + 1) =>
        {
            format!("{a}-{b}")
        }
        _ => keys
            .iter()
            .map(char::to_string)
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// The key of a digit in the species table ('0'..='9'; anything else: F24, which no keyboard
/// presses).
pub fn digit_key(c: char) -> KeyCode {
    match c {
        '0' => KeyCode::Digit0,
        '1' => KeyCode::Digit1,
        '2' => KeyCode::Digit2,
        '3' => KeyCode::Digit3,
        '4' => KeyCode::Digit4,
        '5' => KeyCode::Digit5,
        '6' => KeyCode::Digit6,
        '7' => KeyCode::Digit7,
        '8' => KeyCode::Digit8,
        '9' => KeyCode::Digit9,
        _ => KeyCode::F24,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The player's own line on the leaderboard shows the HUD's coins, ranked again.
    #[test]
    fn the_leaderboard_shows_the_huds_own_coins() {
        let board = vec![(1, "Ann".to_string(), 90), (2, "Bob".to_string(), 80)];
        let r = ranked_with_own(&board, Some("Bob"), Some(95));
        assert_eq!(r, vec![("Bob".to_string(), 95), ("Ann".to_string(), 90)]);
        let r = ranked_with_own(&board, None, Some(95));
        assert_eq!(r[0], ("Ann".to_string(), 90));
    }
    use crate::protocol::ConfigValue;

    #[test]
    fn the_overlay_at_start_and_the_toast_time_follow_their_keys() {
        let mut config = crate::config::defaults_for_tests();
        let mut hud = HudState::from_config(Some(&config));
        assert!(!hud.overlay, "ui.showFps is false by default");
        hud.toast(Duration::from_secs(10));
        assert_eq!(hud.toast_until, Duration::from_secs(14), "4 s by default");
        let set = |c: &mut crate::config::Config, k: &str, v| {
            c.set(k, v, "test", "", Duration::ZERO).unwrap();
        };
        set(&mut config, "ui.showFps", ConfigValue::Bool(true));
        set(&mut config, "ui.toastSeconds", ConfigValue::Float(9.0));
        let mut hud = HudState::from_config(Some(&config));
        assert!(hud.overlay);
        hud.toast(Duration::from_secs(10));
        assert_eq!(hud.toast_until, Duration::from_secs(19));
    }

    #[test]
    fn the_far_plane_is_the_render_distance() {
        let mut config = crate::config::defaults_for_tests();
        assert_eq!(super::super::render::far_plane(Some(&config)), 1000.0);
        config
            .set(
                "graphics.maxRenderDistance",
                ConfigValue::Int(120),
                "test",
                "",
                Duration::ZERO,
            )
            .unwrap();
        assert_eq!(super::super::render::far_plane(Some(&config)), 120.0);
    }
}
