//! The player's screen: a status and coin line along the top, toasts and the F3 overlay on the
//! left, the open panel (shop, inventory, settings, trade, leaderboard) on the right, and a bar
//! of buttons along the bottom. Each keeps its own region of one flex layout, so nothing
//! overlaps at any window size (`tests/it/ui.rs` lays it out at 1280×720 and 1920×1080).
//!
//! Buttons (Bevy UI with picking) and keys ask for the same [`UiAction`]s, and one system
//! performs them: keys stay as shortcuts. What the panels show is plain data ([`view`]).

mod dump;
pub mod view;

use std::time::Duration;

use bevy::input::ButtonInput;
use bevy::input::keyboard::KeyCode;
use bevy::prelude::*;

pub use dump::{StateDump, StateDumpPlugin};
pub use view::{Panel, Row, UiAction};

use crate::config::ClientConfig;
use crate::game::protocol::{ShopItem, TradeOffer};
use crate::game::{GameOp, Leaderboard, Prediction, Shop, TradeBook, Visit};
use crate::protocol::ConfigValue;
use crate::stages::ClientSystems;
use crate::transport::{ClientNet, ConnectionState};

/// The screen's regions; each keeps to its own rectangle.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UiRegion {
    /// The status and coin lines along the top.
    Top,
    /// Toasts: refusals, gifts, earnings.
    Toasts,
    /// The F3 overlay.
    Overlay,
    /// The open panel.
    Panel,
    /// The buttons along the bottom.
    Bar,
}

/// A button and what it asks for.
#[derive(Component, Debug, Clone, Copy, PartialEq)]
pub struct UiButton(pub UiAction);

/// An action asked for by a button or a key, performed by [`perform`].
#[derive(Message, Debug, Clone, Copy, PartialEq)]
pub struct Act(pub UiAction);

#[derive(Component)]
struct StatusText;

#[derive(Component)]
struct HudText;

#[derive(Component)]
struct LeadersText;

#[derive(Component)]
struct ToastText;

#[derive(Component)]
struct OverlayText;

/// The open panel's node; its children are the rows.
#[derive(Component)]
struct PanelBox;

/// A text box that hides while its text is empty.
#[derive(Component)]
struct HidesWhenEmpty;

/// The coins asked for the newest fish in the next trade offer (−10 and +10 on the trade panel).
#[derive(Resource, Debug, Clone, Copy, PartialEq, Eq)]
pub struct AskedCoins(pub i64);

impl Default for AskedCoins {
    fn default() -> Self {
        Self(20)
    }
}

#[derive(Resource, Default)]
struct HudState {
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

/// The panel's rows as shown, and their text entities (updated in place while the buttons stay
/// the same).
#[derive(Resource, Default)]
struct ShownRows {
    rows: Vec<Row>,
    texts: Vec<Entity>,
}

/// The player's screen: regions, texts, panels, buttons, keys.
pub struct GameUiPlugin;

impl Plugin for GameUiPlugin {
    fn build(&self, app: &mut App) {
        // A player at the window gets the daily reward without asking.
        app.insert_resource(crate::game::DailyClaims::automatic())
            .init_resource::<Panel>()
            .init_resource::<AskedCoins>()
            .init_resource::<ShownRows>()
            .add_message::<Act>()
            .add_message::<crate::config::ConfigChanged>()
            .add_systems(Startup, (init_hud, spawn_layout))
            .add_observer(click_button)
            .add_systems(PreUpdate, follow_toast_seconds.in_set(ClientSystems::Sync))
            .add_systems(
                Update,
                (key_actions, perform)
                    .chain()
                    .run_if(in_state(crate::assets::AssetPhase::Playing))
                    .in_set(ClientSystems::Handle),
            )
            .add_systems(
                Update,
                (
                    update_status,
                    update_hud,
                    update_overlay,
                    update_panel,
                    hide_empty,
                    button_colours,
                )
                    .chain()
                    .in_set(ClientSystems::Present),
            );
    }
}

/// The HUD's state at start, from the config.
fn init_hud(mut commands: Commands, config: Option<Res<ClientConfig>>) {
    commands.insert_resource(HudState::from_config(config.as_deref().map(|c| &c.0)));
}

/// `ui.toastSeconds` follows changes live.
fn follow_toast_seconds(
    config: Option<Res<ClientConfig>>,
    mut changed: MessageReader<crate::config::ConfigChanged>,
    mut hud: ResMut<HudState>,
) {
    if changed.read().any(|c| c.under("ui.toastSeconds")) {
        hud.toast_for = toast_seconds(config.as_deref().map(|c| &c.0));
    }
}

const BOX: Color = Color::srgba(0.0, 0.0, 0.0, 0.55);
const PANEL: Color = Color::srgba(0.02, 0.06, 0.12, 0.85);
const BUTTON: Color = Color::srgb(0.08, 0.25, 0.4);
const BUTTON_HOVER: Color = Color::srgb(0.12, 0.35, 0.55);
const BUTTON_PRESSED: Color = Color::srgb(0.2, 0.5, 0.3);
/// The toast's colour for refusals and problems.
const WARNING: Color = Color::srgb(1.0, 0.55, 0.5);
/// The toast's colour for coins the player got (earnings while away, the daily reward).
const GOOD_NEWS: Color = Color::srgb(0.55, 1.0, 0.6);

/// A box of text (hidden while empty).
fn text_box(colour: Color, marker: impl Component, size: f32) -> impl Bundle {
    (
        Node {
            padding: UiRect::axes(px(12), px(6)),
            max_width: percent(100),
            ..default()
        },
        BackgroundColor(BOX),
        HidesWhenEmpty,
        children![(
            Text::new(""),
            TextFont::default().with_font_size(size),
            TextColor(colour),
            marker,
        )],
    )
}

fn button(label: String, action: UiAction) -> impl Bundle {
    (
        Button,
        UiButton(action),
        Node {
            padding: UiRect::axes(px(10), px(4)),
            border: UiRect::all(px(1)),
            flex_shrink: 0.0,
            ..default()
        },
        BorderColor::all(Color::srgb(0.4, 0.7, 0.9)),
        BackgroundColor(BUTTON),
        children![(
            Text::new(label),
            TextFont::default().with_font_size(15.0),
            TextColor(Color::WHITE),
        )],
    )
}

/// The screen's skeleton: one full-window column of regions.
fn spawn_layout(mut commands: Commands) {
    let bar: Vec<Entity> = view::bar()
        .into_iter()
        .map(|(label, action)| commands.spawn(button(label, action)).id())
        .collect();
    let bar = commands
        .spawn((
            UiRegion::Bar,
            Node {
                flex_direction: FlexDirection::Row,
                flex_wrap: FlexWrap::Wrap,
                column_gap: px(6),
                row_gap: px(6),
                flex_shrink: 0.0,
                ..default()
            },
        ))
        .add_children(&bar)
        .id();
    let top = commands
        .spawn((
            UiRegion::Top,
            Node {
                flex_direction: FlexDirection::Row,
                flex_wrap: FlexWrap::Wrap,
                column_gap: px(8),
                row_gap: px(6),
                align_items: AlignItems::FlexStart,
                flex_shrink: 0.0,
                ..default()
            },
            children![
                text_box(Color::WHITE, StatusText, 16.0),
                text_box(Color::srgb(1.0, 0.9, 0.5), HudText, 20.0),
                text_box(Color::srgb(0.8, 0.9, 1.0), LeadersText, 16.0),
            ],
        ))
        .id();
    let left = commands
        .spawn((
            Node {
                flex_direction: FlexDirection::Column,
                row_gap: px(8),
                width: percent(42),
                min_width: px(0),
                ..default()
            },
            children![
                (UiRegion::Toasts, text_box(WARNING, ToastText, 18.0)),
                (
                    UiRegion::Overlay,
                    text_box(Color::srgb(0.7, 1.0, 0.8), OverlayText, 14.0)
                ),
            ],
        ))
        .id();
    let panel = commands
        .spawn((
            UiRegion::Panel,
            PanelBox,
            Node {
                flex_direction: FlexDirection::Column,
                width: px(500),
                max_width: percent(55),
                padding: UiRect::axes(px(12), px(8)),
                row_gap: px(4),
                overflow: Overflow::clip(),
                display: Display::None,
                ..default()
            },
            BackgroundColor(PANEL),
        ))
        .id();
    let middle = commands
        .spawn(Node {
            flex_direction: FlexDirection::Row,
            justify_content: JustifyContent::SpaceBetween,
            align_items: AlignItems::FlexStart,
            column_gap: px(8),
            flex_grow: 1.0,
            min_height: px(0),
            ..default()
        })
        .add_children(&[left, panel])
        .id();
    commands
        .spawn(Node {
            position_type: PositionType::Absolute,
            width: percent(100),
            height: percent(100),
            flex_direction: FlexDirection::Column,
            padding: UiRect::all(px(10)),
            row_gap: px(8),
            ..default()
        })
        .add_children(&[top, middle, bar]);
}

/// The keys' actions. Settings keys work while the settings panel is open.
fn key_actions(input: Res<ButtonInput<KeyCode>>, panel: Res<Panel>, mut acts: MessageWriter<Act>) {
    let mut out = Vec::new();
    let pressed = |k| input.just_pressed(k);
    if pressed(KeyCode::Tab) {
        out.push(UiAction::NextPanel);
    }
    if pressed(KeyCode::F3) {
        out.push(UiAction::Overlay);
    }
    for (i, s) in crate::game::SPECIES.iter().enumerate() {
        if pressed(digit_key(s.key)) {
            out.push(UiAction::BuyFish(i as u8));
        }
    }
    for (k, key) in crate::game::DECORATION_KEYS.iter().enumerate() {
        if pressed(digit_key(*key)) {
            out.push(UiAction::BuyDecoration(k as u8));
        }
    }
    for (key, action) in [
        (KeyCode::KeyF, UiAction::FeedAll),
        (KeyCode::KeyS, UiAction::SellNewest),
        (KeyCode::KeyU, UiAction::UpgradeTank),
        (KeyCode::KeyG, UiAction::GiftAny),
        (KeyCode::KeyV, UiAction::VisitNext),
        (KeyCode::Escape, UiAction::GoHome),
    ] {
        if pressed(key) {
            out.push(action);
        }
    }
    if *panel == Panel::Settings {
        for (key, action) in [
            (KeyCode::BracketLeft, UiAction::Quality(-1)),
            (KeyCode::BracketRight, UiAction::Quality(1)),
            (KeyCode::Minus, UiAction::FpsCap(-1)),
            (KeyCode::Equal, UiAction::FpsCap(1)),
            (KeyCode::KeyP, UiAction::Particles),
            (KeyCode::KeyH, UiAction::Shadows),
            (KeyCode::Comma, UiAction::Volume(-1)),
            (KeyCode::Period, UiAction::Volume(1)),
        ] {
            if pressed(key) {
                out.push(action);
            }
        }
    }
    acts.write_batch(out.into_iter().map(Act));
}

/// A button clicked (Bevy's picking: pressed and released on it) asks for its action. The click
/// bubbles up from the label to the button.
fn click_button(
    mut click: On<Pointer<Click>>,
    buttons: Query<&UiButton>,
    mut acts: MessageWriter<Act>,
) {
    if click.button != PointerButton::Primary {
        return;
    }
    if let Ok(b) = buttons.get(click.entity) {
        acts.write(Act(b.0));
        click.propagate(false);
    }
}

fn set(config: &mut ClientConfig, path: &str, value: ConfigValue, now: Duration) {
    if let Err(e) = config.0.set(path, value, "player", "settings panel", now) {
        warn!("setting {path}: {e}");
    }
}

/// The settings a step changes: the key and its new value.
fn setting_step(
    config: &crate::config::Config,
    action: UiAction,
) -> Option<(&'static str, ConfigValue)> {
    let int = |k: &str, d: i64| config.get::<i64>(k).unwrap_or(d);
    match action {
        UiAction::Quality(d) => Some((
            "graphics.qualityLevel",
            ConfigValue::Int((int("graphics.qualityLevel", 3) + i64::from(d)).clamp(1, 5)),
        )),
        UiAction::FpsCap(d) => Some((
            "graphics.fpsCap",
            ConfigValue::Int((int("graphics.fpsCap", 60) + 15 * i64::from(d)).clamp(15, 240)),
        )),
        UiAction::Particles => {
            let order = ["LOW", "MEDIUM", "HIGH", "ULTRA"];
            let now_q = config
                .get::<String>("graphics.particleQuality")
                .unwrap_or_else(|_| "HIGH".into());
            let i = order.iter().position(|q| *q == now_q).unwrap_or(2);
            Some((
                "graphics.particleQuality",
                ConfigValue::Text(order[(i + 1) % order.len()].into()),
            ))
        }
        UiAction::Shadows => Some((
            "graphics.shadows",
            ConfigValue::Bool(!config.get::<bool>("graphics.shadows").unwrap_or(true)),
        )),
        UiAction::Volume(d) => {
            let v = config.get::<f64>("audio.masterVolume").unwrap_or(0.8) + 0.1 * f64::from(d);
            Some((
                "audio.masterVolume",
                ConfigValue::Float(((v * 10.0).round() / 10.0).clamp(0.0, 1.0)),
            ))
        }
        _ => None,
    }
}

/// The game operation an action asks for, if it is one.
fn game_op(action: UiAction, state: Option<&crate::game::protocol::PlayerState>) -> Option<GameOp> {
    let newest = |species| state.and_then(|s| s.newest_fish(species)).map(|f| f.id);
    let buy = |item| GameOp::Purchase { item, quantity: 1 };
    match action {
        UiAction::BuyFish(species) => Some(buy(ShopItem::Fish { species })),
        UiAction::BuyDecoration(kind) => Some(buy(ShopItem::Decoration { kind })),
        UiAction::UpgradeTank => Some(buy(ShopItem::TankUpgrade)),
        UiAction::FeedAll => Some(GameOp::Feed { fish: None }),
        UiAction::SellNewest => newest(None).map(|fish| GameOp::Sell { fish }),
        UiAction::SellSpecies(s) => newest(Some(s)).map(|fish| GameOp::Sell { fish }),
        _ => None,
    }
}

/// Performs the actions asked for this frame.
#[allow(clippy::too_many_arguments)]
fn perform(
    mut acts: MessageReader<Act>,
    (mut panel, mut hud, mut ask): (ResMut<Panel>, ResMut<HudState>, ResMut<AskedCoins>),
    mut config: ResMut<ClientConfig>,
    mut prediction: ResMut<Prediction>,
    mut net: ResMut<ClientNet>,
    (shop, board, mut visit): (Res<Shop>, Res<Leaderboard>, ResMut<Visit>),
    time: Res<Time<Real>>,
) {
    let now = time.elapsed();
    let me = net.0.welcomed_as.clone();
    let me = me.as_deref();
    for Act(action) in acts.read().copied() {
        debug!("ui action {}", action.id());
        match action {
            UiAction::Toggle(p) => *panel = if *panel == p { Panel::Closed } else { p },
            UiAction::NextPanel => *panel = panel.next(),
            UiAction::Overlay => hud.overlay = !hud.overlay,
            UiAction::GoHome => visit.leave(),
            UiAction::VisitNext => {
                let current = visit.showing.as_ref().map(|(id, ..)| *id);
                match view::next_other(&board.0, me, current) {
                    Some(p) => visit.request(&mut net, p, now),
                    None => prediction
                        .predictor
                        .refuse(0, "nobody else is online to visit".into()),
                }
            }
            UiAction::VisitPlayer(p) => visit.request(&mut net, p, now),
            UiAction::GiftAny | UiAction::GiftTo(_) => {
                let to = match action {
                    UiAction::GiftTo(p) => Some(p),
                    _ => visit
                        .showing
                        .as_ref()
                        .map(|(id, ..)| *id)
                        .or_else(|| view::next_other(&board.0, me, None)),
                };
                match (to, shop.catalog()) {
                    (Some(to), Some(catalog)) => {
                        let op = GameOp::Gift {
                            to,
                            coins: view::GIFT_COINS,
                        };
                        // A refusal is recorded by the predictor (and toasted).
                        let _ = prediction.send(&mut net, op, catalog, now);
                    }
                    _ => prediction
                        .predictor
                        .refuse(0, "nobody else is online to send a gift to".into()),
                }
            }
            UiAction::AskCoins(d) => {
                ask.0 = (ask.0 + 10 * i64::from(d)).clamp(0, crate::game::protocol::MAX_GIFT);
            }
            UiAction::OfferTrade(to) => {
                let newest = prediction
                    .predictor
                    .authoritative()
                    .and_then(|s| s.newest_fish(None))
                    .map(|f| f.id);
                match newest {
                    Some(fish) => {
                        info!("offering player {to} fish {fish} for {} coins", ask.0);
                        net.call(&TradeOffer::fish_for_coins(to, fish, ask.0), now);
                    }
                    None => prediction
                        .predictor
                        .refuse(0, "you have no fish to offer".into()),
                }
            }
            UiAction::Trade(trade, action) => {
                net.call(&crate::game::protocol::TradeAct { trade, action }, now);
            }
            UiAction::Quality(_)
            | UiAction::FpsCap(_)
            | UiAction::Particles
            | UiAction::Shadows
            | UiAction::Volume(_) => {
                if let Some((key, value)) = setting_step(&config.0, action) {
                    set(&mut config, key, value, now);
                }
            }
            UiAction::BuyFish(_)
            | UiAction::BuyDecoration(_)
            | UiAction::UpgradeTank
            | UiAction::FeedAll
            | UiAction::SellNewest
            | UiAction::SellSpecies(_) => {
                let Some(catalog) = shop.catalog() else {
                    continue;
                };
                if visit.showing.is_some() {
                    prediction.predictor.refuse(
                        0,
                        "you are visiting: this aquarium is read-only (Esc to go home)".into(),
                    );
                    continue;
                }
                let predicted = prediction.predictor.predicted(catalog);
                match game_op(action, predicted.as_ref()) {
                    Some(op) => {
                        // A refusal before sending is recorded by the predictor and toasted.
                        let _ = prediction.send(&mut net, op, catalog, now);
                    }
                    None => prediction
                        .predictor
                        .refuse(0, "there is no fish to sell".into()),
                }
            }
        }
    }
}

fn update_status(
    mode: Res<crate::process::RunMode>,
    server: Option<Res<super::ServerAddress>>,
    state: Res<ConnectionState>,
    mut text: Query<&mut Text, With<StatusText>>,
) {
    // Written when the connection changes (and on the first frame: resources read as changed
    // then, after the line was spawned at start-up), not each frame.
    if !(mode.is_changed() || state.is_changed()) {
        return;
    }
    let line = status_line(*mode, server.as_deref(), &state);
    for mut t in &mut text {
        t.0.clone_from(&line);
    }
}

/// The status line's text.
pub fn status_line(
    mode: crate::process::RunMode,
    server: Option<&super::ServerAddress>,
    state: &ConnectionState,
) -> String {
    let server = server.map_or_else(|| "-".to_string(), |s| s.0.to_string());
    format!(
        "Bloxquarium | {} mode | server {server} | {state}",
        mode.name()
    )
}

/// The leaderboard as the screen shows it (the player's own line with the HUD's coins).
fn board_shown(
    board: &Leaderboard,
    net: Option<&ClientNet>,
    prediction: &Prediction,
    shop: &Shop,
) -> Vec<(u64, String, i64)> {
    let me = net.and_then(|n| n.0.welcomed_as.clone());
    let my_coins = shop
        .catalog()
        .and_then(|c| prediction.predictor.predicted(c))
        .map(|s| s.coins);
    view::ranked_with_own(&board.0, me.as_deref(), my_coins)
}

type ToastOnly = (With<ToastText>, Without<HudText>, Without<LeadersText>);
type HudOnly = (With<HudText>, Without<ToastText>, Without<LeadersText>);
type LeadersOnly = (With<LeadersText>, Without<ToastText>, Without<HudText>);

#[allow(clippy::too_many_arguments)]
fn update_hud(
    prediction: Res<Prediction>,
    notices: Res<crate::game::Notices>,
    (board, net): (Res<Leaderboard>, Option<Res<ClientNet>>),
    shop: Res<Shop>,
    state: Res<ConnectionState>,
    time: Res<Time<Real>>,
    mut hud: ResMut<HudState>,
    (mut problems, mut differ): (
        MessageReader<crate::assets::AssetProblem>,
        MessageReader<crate::assets::AssetsDiffer>,
    ),
    mut line: Query<&mut Text, HudOnly>,
    mut leaders: Query<&mut Text, LeadersOnly>,
    mut toast: Query<(&mut Text, &mut TextColor), ToastOnly>,
) {
    let now = time.elapsed();
    let dt = time.delta_secs().min(0.1);
    if dt > 0.0 {
        hud.fps = hud.fps * 0.95 + (1.0 / dt) * 0.05;
    }
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
    let text = match (&predicted, catalog) {
        (Some(s), Some(c)) => format!(
            "Coins {} | Tank Lv{} | Fish {}/{} | earning {:.1} coins/s",
            s.coins,
            s.tank_level,
            s.fish.len(),
            c.capacity(s.tank_level),
            c.income_per_second(&crate::game::to_profile(s))
        ),
        _ if *state == ConnectionState::Connected => "Loading your aquarium...".to_string(),
        _ => "Not in the game".to_string(),
    };
    for mut t in &mut line {
        if t.0 != text {
            t.0.clone_from(&text);
        }
    }
    let shown = board_shown(&board, net.as_deref(), &prediction, &shop);
    let top = if shown.is_empty() {
        String::new()
    } else {
        let top: Vec<String> = shown
            .iter()
            .take(3)
            .enumerate()
            .map(|(i, (_, name, coins))| format!("{}. {name} {coins}", i + 1))
            .collect();
        format!("Top: {}", top.join("  "))
    };
    for mut t in &mut leaders {
        if t.0 != top {
            t.0.clone_from(&top);
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
        // The ones that arrived together (earnings and the daily reward) show together; at
        // most the last four.
        let new = &notices.0[hud.shown_notices..];
        let text = new[new.len().saturating_sub(4)..].join("\n");
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
        let s = assets.stats();
        format!(
            "FPS {:.0} | RTT {rtt:.0} ms | loss {:.1}% | {}\npredicted ops pending {} (acked {}, mispredicted {})\n{}\nassets: cache hit rate {:.0}% ({} entries, {:.1} MiB) | streaming queue {} + {} in flight | quality {} | avg load {:.1} ms | failures {} (integrity {}), fallbacks {}",
            hud.fps,
            loss * 100.0,
            *state,
            p.pending(),
            p.acknowledged,
            p.mispredictions,
            health_summary(&registry, &state, &assets),
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

fn spawn_row(commands: &mut Commands, row: &Row) -> (Entity, Entity) {
    let text = commands
        .spawn((
            Text::new(row.text.clone()),
            TextFont::default().with_font_size(16.0),
            TextColor(Color::srgb(0.85, 0.95, 1.0)),
        ))
        .id();
    let buttons: Vec<Entity> = row
        .buttons
        .iter()
        .map(|(label, action)| commands.spawn(button(label.clone(), *action)).id())
        .collect();
    let group = commands
        .spawn(Node {
            flex_direction: FlexDirection::Row,
            column_gap: px(4),
            flex_shrink: 0.0,
            ..default()
        })
        .add_children(&buttons)
        .id();
    let line = commands
        .spawn(Node {
            flex_direction: FlexDirection::Row,
            justify_content: JustifyContent::SpaceBetween,
            align_items: AlignItems::Center,
            column_gap: px(8),
            min_height: px(26),
            ..default()
        })
        .add_children(&[text, group])
        .id();
    (line, text)
}

/// The open panel's rows: rebuilt when its buttons change, texts updated in place otherwise.
#[allow(clippy::too_many_arguments)]
fn update_panel(
    mut commands: Commands,
    panel: Res<Panel>,
    (shop, prediction, config): (Res<Shop>, Res<Prediction>, Option<Res<ClientConfig>>),
    (visit, board, net): (Res<Visit>, Res<Leaderboard>, Option<Res<ClientNet>>),
    (trades, ask): (Res<TradeBook>, Res<AskedCoins>),
    mut shown: ResMut<ShownRows>,
    mut boxes: Query<(Entity, &mut Node), With<PanelBox>>,
    mut texts: Query<&mut Text>,
) {
    let Some(config) = config else {
        return;
    };
    let catalog = shop.catalog();
    let state = catalog.and_then(|c| prediction.predictor.predicted(c));
    let me = net.as_deref().and_then(|n| n.0.welcomed_as.clone());
    let ranked = board_shown(&board, net.as_deref(), &prediction, &shop);
    let inputs = view::ViewInputs {
        catalog,
        state: state.as_ref(),
        config: &config.0,
        visiting: visit
            .showing
            .as_ref()
            .map(|(id, name, _)| (*id, name.as_str())),
        board: &ranked,
        rank: board.1,
        me: me.as_deref(),
        trades: &trades,
        ask: ask.0,
    };
    let rows = view::rows(*panel, &inputs);
    if rows == shown.rows {
        return;
    }
    let Ok((panel_box, mut node)) = boxes.single_mut() else {
        return;
    };
    let same_buttons = rows.len() == shown.rows.len()
        && rows
            .iter()
            .zip(&shown.rows)
            .all(|(a, b)| a.buttons == b.buttons);
    if same_buttons {
        for (row, e) in rows.iter().zip(&shown.texts) {
            if let Ok(mut t) = texts.get_mut(*e) {
                t.0.clone_from(&row.text);
            }
        }
    } else {
        commands.entity(panel_box).despawn_children();
        let mut lines = Vec::new();
        shown.texts.clear();
        for row in &rows {
            let (line, text) = spawn_row(&mut commands, row);
            lines.push(line);
            shown.texts.push(text);
        }
        commands.entity(panel_box).add_children(&lines);
    }
    let display = if rows.is_empty() {
        Display::None
    } else {
        Display::Flex
    };
    if node.display != display {
        node.display = display;
    }
    shown.rows = rows;
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

/// Buttons light up under the pointer and when pressed; the open panel's button stays lit.
fn button_colours(
    panel: Res<Panel>,
    mut buttons: Query<(&Interaction, &UiButton, &mut BackgroundColor)>,
) {
    for (interaction, b, mut bg) in &mut buttons {
        let colour = match interaction {
            Interaction::Pressed => BUTTON_PRESSED,
            Interaction::Hovered => BUTTON_HOVER,
            Interaction::None if b.0 == UiAction::Toggle(*panel) => BUTTON_HOVER,
            Interaction::None => BUTTON,
        };
        if bg.0 != colour {
            bg.0 = colour;
        }
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

    #[test]
    fn the_overlay_at_start_and_the_toast_time_follow_their_keys() {
        let mut config = crate::config::defaults_with_game_for_tests(&crate::game::KEYS);
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
    fn settings_steps_stay_in_their_ranges() {
        let config = crate::config::defaults_with_game_for_tests(&crate::game::KEYS);
        let step = |a| setting_step(&config, a).map(|(_, v)| v);
        assert_eq!(step(UiAction::FpsCap(1)), Some(ConfigValue::Int(75)));
        assert_eq!(
            step(UiAction::Particles),
            Some(ConfigValue::Text("ULTRA".into()))
        );
        assert_eq!(step(UiAction::Shadows), Some(ConfigValue::Bool(false)));
        assert_eq!(step(UiAction::BuyFish(0)), None);
        let mut c = config.clone();
        c.set(
            "audio.masterVolume",
            ConfigValue::Float(1.0),
            "t",
            "",
            Duration::ZERO,
        )
        .unwrap();
        assert_eq!(
            setting_step(&c, UiAction::Volume(1)).map(|(_, v)| v),
            Some(ConfigValue::Float(1.0))
        );
    }

    #[test]
    fn selling_picks_the_newest_fish_of_the_species_asked() {
        use crate::game::protocol::{FishState, PlayerState};
        let f = |id, species| FishState {
            id,
            species,
            hunger: 0.0,
        };
        let s = PlayerState {
            coins: 0,
            tank_level: 1,
            fish: vec![f(3, 0), f(9, 1), f(5, 0)],
            decorations: vec![],
            last_op: 0,
        };
        assert_eq!(
            game_op(UiAction::SellSpecies(0), Some(&s)),
            Some(GameOp::Sell { fish: 5 })
        );
        assert_eq!(
            game_op(UiAction::SellNewest, Some(&s)),
            Some(GameOp::Sell { fish: 9 })
        );
        assert_eq!(game_op(UiAction::SellSpecies(4), Some(&s)), None);
    }
}
