//! The state dump (`--state-dump FILE`): the game's state as the player sees it and where each
//! button is on screen, as JSON, rewritten (atomically) when it changes. The play-through script
//! (`scripts/playthrough.sh`) reads it to find buttons to click and to check each step.

use std::path::PathBuf;
use std::time::Duration;

use bevy::prelude::*;
use serde::Serialize;

use super::{HudState, Panel, ToastText, UiButton};
use crate::game::{Prediction, Shop, TradeBook, Visit};
use crate::stages::ClientSystems;

/// Where to write the dump.
#[derive(Resource, Debug, Clone)]
pub struct StateDump(pub PathBuf);

/// Writes the state dump when [`StateDump`] is set.
pub struct StateDumpPlugin {
    /// The file; nothing is written without one.
    pub path: Option<PathBuf>,
}

impl Plugin for StateDumpPlugin {
    fn build(&self, app: &mut App) {
        if let Some(path) = &self.path {
            app.insert_resource(StateDump(path.clone())).add_systems(
                Last,
                write_dump
                    .run_if(bevy::time::common_conditions::on_real_timer(
                        Duration::from_millis(200),
                    ))
                    .in_set(ClientSystems::Finish),
            );
        }
    }
}

#[derive(Serialize, PartialEq)]
struct ButtonDump {
    id: String,
    label: String,
    /// Centre, in window pixels.
    x: f32,
    y: f32,
    w: f32,
    h: f32,
}

#[derive(Serialize, PartialEq)]
struct Dump {
    playing: bool,
    panel: &'static str,
    overlay: bool,
    coins: Option<i64>,
    tank_level: Option<u8>,
    fish: Vec<u8>,
    hungriest: Option<f32>,
    decorations: usize,
    visiting: Option<String>,
    open_trades: usize,
    quality: Option<i64>,
    volume: Option<f64>,
    toast: String,
    buttons: Vec<ButtonDump>,
}

#[allow(clippy::too_many_arguments)]
fn write_dump(
    dump: Res<StateDump>,
    phase: Option<Res<State<crate::assets::AssetPhase>>>,
    (panel, hud): (Res<Panel>, Res<HudState>),
    (shop, prediction, visit, trades): (Res<Shop>, Res<Prediction>, Res<Visit>, Res<TradeBook>),
    config: Option<Res<crate::config::ClientConfig>>,
    buttons: Query<(
        &UiButton,
        &ComputedNode,
        &UiGlobalTransform,
        &InheritedVisibility,
        &Children,
    )>,
    labels: Query<&Text, Without<ToastText>>,
    toast: Query<&Text, With<ToastText>>,
    mut last: Local<Option<String>>,
) {
    let state = shop
        .catalog()
        .and_then(|c| prediction.predictor.predicted(c));
    let mut shown: Vec<ButtonDump> = buttons
        .iter()
        .filter(|(_, node, _, visible, _)| visible.get() && node.size.x > 0.0)
        .map(|(b, node, at, _, children)| {
            let centre = at.translation;
            ButtonDump {
                id: b.0.id(),
                label: children
                    .iter()
                    .find_map(|c| labels.get(c).ok())
                    .map_or_else(String::new, |t| t.0.clone()),
                x: centre.x.round(),
                y: centre.y.round(),
                w: node.size.x.round(),
                h: node.size.y.round(),
            }
        })
        .collect();
    shown.sort_by(|a, b| {
        (a.y, a.x)
            .partial_cmp(&(b.y, b.x))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let d = Dump {
        playing: phase
            .as_deref()
            .is_some_and(|p| *p.get() == crate::assets::AssetPhase::Playing),
        panel: panel.name(),
        overlay: hud.overlay,
        coins: state.as_ref().map(|s| s.coins),
        tank_level: state.as_ref().map(|s| s.tank_level),
        fish: state
            .as_ref()
            .map(|s| s.fish.iter().map(|f| f.species).collect())
            .unwrap_or_default(),
        hungriest: state
            .as_ref()
            .and_then(|s| s.fish.iter().map(|f| f.hunger).reduce(f32::max)),
        decorations: state.as_ref().map_or(0, |s| s.decorations.len()),
        visiting: visit.showing.as_ref().map(|(_, name, _)| name.clone()),
        open_trades: trades.open().count(),
        quality: config
            .as_deref()
            .and_then(|c| c.0.get::<i64>("graphics.qualityLevel").ok()),
        volume: config
            .as_deref()
            .and_then(|c| c.0.get::<f64>("audio.masterVolume").ok()),
        toast: toast
            .iter()
            .map(|t| t.0.clone())
            .collect::<Vec<_>>()
            .join("\n"),
        buttons: shown,
    };
    let json = match serde_json::to_string_pretty(&d) {
        Ok(j) => j,
        Err(e) => {
            warn!("state dump: {e}");
            return;
        }
    };
    if last.as_deref() == Some(json.as_str()) {
        return;
    }
    // Written beside the file and renamed over it, so a reader never sees half of it.
    let tmp = dump.0.with_extension("tmp");
    match std::fs::write(&tmp, &json).and_then(|()| std::fs::rename(&tmp, &dump.0)) {
        Ok(()) => *last = Some(json),
        Err(e) => warn!("state dump {}: {e}", dump.0.display()),
    }
}
