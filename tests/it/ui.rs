//! The player's screen laid out by Bevy's own UI layout, headless: a client in the game with
//! the screen's plugin, a camera whose target is 1280×720 and then 1920×1080, every panel opened
//! in turn with the overlay and a toast showing. The regions (top line, toasts, overlay, panel,
//! bar) must not overlap and must stay on screen, and every text must stay inside its region.
//! Buttons are clicked the way the pointer clicks them (window events, Bevy's picking).

use bevy::camera::{ComputedCameraValues, RenderTargetInfo, Viewport};
use bevy::prelude::*;
use bevy::ui::IsDefaultUiCamera;

use bloxquarium::client::ui::{Act, Panel, UiAction, UiButton, UiRegion};

use crate::harness::*;

/// A client for `player` with the screen's plugin (and what Bevy's layout needs), joined.
fn client_with_screen(server: &mut App, data: &Scratch, player: u64, name: &str) -> App {
    let token = issue(server, player, name);
    let mut client = client(data, server_addr(server), &token);
    client.add_plugins((
        bevy::input::InputPlugin,
        bevy::transform::TransformPlugin,
        bevy::a11y::AccessibilityPlugin,
        bevy::input_focus::InputFocusPlugin,
        bevy::camera::visibility::VisibilityPlugin,
        bevy::window::WindowPlugin {
            primary_window: Some(Window::default()),
            exit_condition: bevy::window::ExitCondition::DontExit,
            ..default()
        },
        bevy::image::ImagePlugin::default(),
        bevy::image::TextureAtlasPlugin,
        bevy::text::TextPlugin,
        bevy::ui::UiPlugin,
        bevy::picking::DefaultPickingPlugins,
        bloxquarium::client::GameUiPlugin,
    ));
    // The visibility plugin's bounds systems read these (no mesh is drawn here).
    client
        .init_asset::<bevy::mesh::Mesh>()
        .init_asset::<bevy::mesh::skinning::SkinnedMeshInverseBindposes>();
    wait_joined(server, &mut client, player, JoinUntil::InGame);
    // Keys and buttons act once the critical assets are in.
    pump_until(&mut [server, &mut client], 3000, "assets loaded", |a| {
        *a[1]
            .world()
            .resource::<State<bloxquarium::assets::AssetPhase>>()
            .get()
            == bloxquarium::assets::AssetPhase::Playing
    });
    client
}

fn set_camera(app: &mut App, size: UVec2) {
    let world = app.world_mut();
    let mut windows = world.query::<&mut Window>();
    for mut w in windows.iter_mut(world) {
        w.resolution.set_physical_resolution(size.x, size.y);
    }
    let mut cams = world.query_filtered::<Entity, With<IsDefaultUiCamera>>();
    let existing: Vec<Entity> = cams.iter(world).collect();
    for e in existing {
        world.despawn(e);
    }
    world.spawn((
        Camera2d,
        Camera {
            computed: ComputedCameraValues {
                target_info: Some(RenderTargetInfo {
                    physical_size: size,
                    scale_factor: 1.0,
                }),
                ..default()
            },
            viewport: Some(Viewport {
                physical_size: size,
                ..default()
            }),
            ..default()
        },
        IsDefaultUiCamera,
    ));
}

/// Whether `e` and every ancestor are displayed.
fn displayed(world: &World, mut e: Entity) -> bool {
    loop {
        if world
            .get::<Node>(e)
            .is_some_and(|n| n.display == Display::None)
        {
            return false;
        }
        match world.get::<ChildOf>(e) {
            Some(p) => e = p.parent(),
            None => return true,
        }
    }
}

fn rect_of(world: &World, e: Entity) -> Option<Rect> {
    let node = world.get::<ComputedNode>(e)?;
    let at = world.get::<UiGlobalTransform>(e)?;
    Some(Rect::from_center_size(at.translation, node.size))
}

/// The region `e` is in, if any.
fn region_of(world: &World, mut e: Entity) -> Option<(UiRegion, Entity)> {
    loop {
        if let Some(r) = world.get::<UiRegion>(e) {
            return Some((*r, e));
        }
        e = world.get::<ChildOf>(e)?.parent();
    }
}

const SLACK: f32 = 0.5;

fn inside(inner: Rect, outer: Rect) -> bool {
    inner.min.x >= outer.min.x - SLACK
        && inner.min.y >= outer.min.y - SLACK
        && inner.max.x <= outer.max.x + SLACK
        && inner.max.y <= outer.max.y + SLACK
}

/// Checks the screen as laid out now; returns the regions shown.
fn check_layout(app: &mut App, size: UVec2, what: &str) -> Vec<UiRegion> {
    let screen = Rect::new(0.0, 0.0, size.x as f32, size.y as f32);
    let world = app.world_mut();
    let regions: Vec<(Entity, UiRegion)> = world
        .query::<(Entity, &UiRegion)>()
        .iter(world)
        .map(|(e, r)| (e, *r))
        .collect();
    let texts: Vec<(Entity, String)> = world
        .query::<(Entity, &Text)>()
        .iter(world)
        .map(|(e, t)| (e, t.0.clone()))
        .collect();
    let world = &*world;
    let mut shown = Vec::new();
    for (e, r) in &regions {
        if !displayed(world, *e) {
            continue;
        }
        let rect = rect_of(world, *e).expect("a region has a laid-out node");
        assert!(
            rect.width() > 0.0 && rect.height() > 0.0,
            "{what}: region {r:?} is shown but has no size: {rect:?}"
        );
        assert!(
            inside(rect, screen),
            "{what}: region {r:?} at {rect:?} runs off the {}x{} screen",
            size.x,
            size.y
        );
        shown.push((*r, rect));
    }
    for (i, (a, ra)) in shown.iter().enumerate() {
        for (b, rb) in &shown[i + 1..] {
            let overlap = ra.intersect(*rb);
            assert!(
                overlap.width() <= SLACK || overlap.height() <= SLACK,
                "{what}: regions {a:?} at {ra:?} and {b:?} at {rb:?} overlap"
            );
        }
    }
    let mut checked = 0;
    for (e, text) in &texts {
        if text.is_empty() || !displayed(world, *e) {
            continue;
        }
        let Some((region, region_entity)) = region_of(world, *e) else {
            continue;
        };
        let rect = rect_of(world, *e).expect("a text has a laid-out node");
        let outer = rect_of(world, region_entity).expect("its region too");
        assert!(
            rect.width() >= 1.0 && rect.height() >= 1.0,
            "{what}: text {text:?} in {region:?} is laid out with no room: {rect:?}"
        );
        assert!(
            inside(rect, outer) && inside(rect, screen),
            "{what}: text {text:?} at {rect:?} runs out of its region {region:?} at {outer:?}"
        );
        checked += 1;
    }
    assert!(checked > 0, "{what}: no text was laid out");
    shown.into_iter().map(|(r, _)| r).collect()
}

fn act(app: &mut App, action: UiAction) {
    app.world_mut().write_message(Act(action));
}

/// The buttons on screen with their actions.
fn buttons(app: &mut App) -> Vec<(Entity, UiAction)> {
    let world = app.world_mut();
    let all: Vec<(Entity, UiAction)> = world
        .query::<(Entity, &UiButton)>()
        .iter(world)
        .map(|(e, b)| (e, b.0))
        .collect();
    all.into_iter()
        .filter(|(e, _)| displayed(app.world(), *e))
        .collect()
}

/// Clicks the button for `action` as a player would, through the window's events as winit
/// delivers them: the pointer moves over its centre, the left button goes down one frame and up
/// the next (Bevy's picking makes that a click).
fn press(app: &mut App, action: UiAction) {
    use bevy::input::ButtonState;
    use bevy::input::mouse::MouseButtonInput;
    use bevy::window::{CursorMoved, WindowEvent};
    let (e, _) = buttons(app)
        .into_iter()
        .find(|(_, a)| *a == action)
        .unwrap_or_else(|| panic!("a button for {action:?} is on screen"));
    let centre = rect_of(app.world(), e).expect("laid out").center();
    let world = app.world_mut();
    let window = world
        .query_filtered::<Entity, With<Window>>()
        .single(world)
        .expect("one window");
    world
        .get_mut::<Window>(window)
        .expect("the window")
        .set_physical_cursor_position(Some(centre.as_dvec2()));
    world.write_message(WindowEvent::CursorMoved(CursorMoved {
        window,
        position: centre,
        delta: None,
    }));
    app.update();
    for state in [ButtonState::Pressed, ButtonState::Released] {
        let input = MouseButtonInput {
            button: MouseButton::Left,
            state,
            window,
        };
        app.world_mut().write_message(input);
        app.world_mut()
            .write_message(WindowEvent::MouseButtonInput(input));
        app.update();
    }
}

fn coins(app: &App) -> Option<i64> {
    let shop = app.world().resource::<bloxquarium::game::Shop>();
    app.world()
        .resource::<bloxquarium::game::Prediction>()
        .predictor
        .predicted(shop.catalog()?)
        .map(|s| s.coins)
}

fn open_trades(app: &App) -> usize {
    app.world()
        .resource::<bloxquarium::game::TradeBook>()
        .open()
        .count()
}

#[test]
fn nothing_overlaps_or_runs_off_screen_at_1280x720_or_1920x1080() {
    let data = Scratch::new("ui-layout");
    let mut server = server(&data, &[]);
    let mut ann = client_with_screen(&mut server, &data, 1, "Ann");
    let mut bob = join(&mut server, &data, 2, "Bob", JoinUntil::InGame);
    set_camera(&mut ann, UVec2::new(1280, 720));
    pump(&mut [&mut server, &mut ann, &mut bob], 30);

    // Clicked through the shop: a fish (its button), then an offer of it to Bob for 20 coins.
    act(&mut ann, UiAction::Toggle(Panel::Shop));
    pump(&mut [&mut server, &mut ann, &mut bob], 3);
    let before = coins(&ann).expect("Ann is in the game");
    press(&mut ann, UiAction::BuyFish(0));
    pump_until(
        &mut [&mut server, &mut ann, &mut bob],
        300,
        "the fish is bought",
        |a| coins(a[1]).is_some_and(|c| c < before),
    );
    pump_until(
        &mut [&mut server, &mut ann, &mut bob],
        3000,
        "Ann's leaderboard lists Bob",
        |a| {
            a[1].world()
                .resource::<bloxquarium::game::Leaderboard>()
                .0
                .len()
                == 2
        },
    );
    act(&mut ann, UiAction::Toggle(Panel::Trade));
    pump(&mut [&mut server, &mut ann, &mut bob], 3);
    press(&mut ann, UiAction::OfferTrade(2));
    pump_until(
        &mut [&mut server, &mut ann, &mut bob],
        300,
        "Bob sees the offer",
        |a| open_trades(a[2]) == 1,
    );
    // A refusal's toast and the F3 overlay, both on the left.
    act(&mut ann, UiAction::SellSpecies(5));
    act(&mut ann, UiAction::Overlay);
    pump(&mut [&mut server, &mut ann, &mut bob], 5);

    for size in [UVec2::new(1280, 720), UVec2::new(1920, 1080)] {
        set_camera(&mut ann, size);
        for panel in Panel::ALL {
            *ann.world_mut().resource_mut::<Panel>() = panel;
            pump(&mut [&mut server, &mut ann, &mut bob], 4);
            let what = format!("{}x{} {panel:?}", size.x, size.y);
            let shown = check_layout(&mut ann, size, &what);
            for r in [
                UiRegion::Top,
                UiRegion::Toasts,
                UiRegion::Overlay,
                UiRegion::Panel,
                UiRegion::Bar,
            ] {
                assert!(shown.contains(&r), "{what}: {r:?} is shown");
            }
            let on_screen: Vec<UiAction> = buttons(&mut ann).into_iter().map(|(_, a)| a).collect();
            let wanted = match panel {
                Panel::Shop => UiAction::BuyFish(5),
                Panel::Inventory => UiAction::SellSpecies(0),
                Panel::Settings => UiAction::Volume(1),
                Panel::Trade => UiAction::OfferTrade(2),
                Panel::Leaderboard => UiAction::VisitPlayer(2),
                Panel::Closed => unreachable!(),
            };
            assert!(
                on_screen.contains(&wanted),
                "{what}: {wanted:?} has a button"
            );
        }
    }

    // Ann's offer has a Cancel button on her trade panel; pressing it ends the trade for both.
    set_camera(&mut ann, UVec2::new(1280, 720));
    *ann.world_mut().resource_mut::<Panel>() = Panel::Trade;
    pump(&mut [&mut server, &mut ann, &mut bob], 4);
    let trade = ann
        .world()
        .resource::<bloxquarium::game::TradeBook>()
        .open()
        .next()
        .map(|t| t.trade)
        .expect("Ann's offer is open");
    press(
        &mut ann,
        UiAction::Trade(trade, bloxquarium::game::protocol::TradeAction::Cancel),
    );
    pump_until(
        &mut [&mut server, &mut ann, &mut bob],
        300,
        "the trade is cancelled for Bob",
        |a| open_trades(a[2]) == 0,
    );
    // Closed: no panel region.
    press(&mut ann, UiAction::Toggle(Panel::Trade));
    pump(&mut [&mut server, &mut ann, &mut bob], 4);
    assert_eq!(*ann.world().resource::<Panel>(), Panel::Closed);
    let shown = check_layout(&mut ann, UVec2::new(1280, 720), "closed");
    assert!(!shown.contains(&UiRegion::Panel));
}
