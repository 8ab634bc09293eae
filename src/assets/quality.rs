//! Automatic quality: the level drops by itself when frame time exceeds the
//! `performance.targetFPS` budget or memory exceeds `performance.maxMemoryUsage`, and recovers
//! with hysteresis (it needs a long run of comfortable frames, well under the budget, to climb
//! one level back, and never above the player's chosen level).

/// Quality level 1 (LOW) to 5 (PROFESSIONAL).
pub type Level = u8;

/// The name of a level (`LOW` .. `PROFESSIONAL`).
pub fn level_name(level: Level) -> &'static str {
    super::manifest::QUALITIES[(level.clamp(1, 5) - 1) as usize]
}

/// The level of a name (`HIGH` → 3); unknown names are `None`.
pub fn level_of(name: &str) -> Option<Level> {
    super::manifest::QUALITIES
        .iter()
        .position(|q| q.eq_ignore_ascii_case(name))
        .map(|p| p as Level + 1)
}

/// Each kind's default quality (`assetManager.quality.models`, `.textures`, `.sounds`): the level
/// it loads at while the level in use is HIGH (the player's default); the player's choice (and the
/// governor) move every kind up or down from there by the same number of levels. Other kinds
/// follow the level in use alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindQuality {
    /// Models.
    pub models: Level,
    /// Textures.
    pub textures: Level,
    /// Sounds.
    pub sounds: Level,
}

impl Default for KindQuality {
    fn default() -> Self {
        Self {
            models: 3,
            textures: 3,
            sounds: 2,
        }
    }
}

impl KindQuality {
    /// From the `assetManager.quality.*` keys (the defaults without a config).
    pub fn from_config(config: Option<&crate::config::Config>) -> Self {
        let d = Self::default();
        let get = |key: &str, default: Level| {
            config
                .and_then(|c| c.get::<String>(key).ok())
                .and_then(|name| level_of(&name))
                .unwrap_or(default)
        };
        Self {
            models: get("assetManager.quality.models", d.models),
            textures: get("assetManager.quality.textures", d.textures),
            sounds: get("assetManager.quality.sounds", d.sounds),
        }
    }

    /// The level an asset of `kind` loads at while the level in use is `level`.
    pub fn level_for(&self, kind: &str, level: Level) -> Level {
        let default = match kind {
            "model" => self.models,
            "texture" => self.textures,
            "sound" => self.sounds,
            _ => return level.clamp(1, 5),
        };
        (i32::from(level) + i32::from(default) - 3).clamp(1, 5) as Level
    }
}

/// A change the governor made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QualityChange {
    /// Dropped to this level.
    Dropped(Level),
    /// Recovered to this level.
    Raised(Level),
}

/// Samples over budget in a row before a drop.
pub const DROP_AFTER: u32 = 30;
/// Comfortable samples in a row before a raise.
pub const RAISE_AFTER: u32 = 300;
/// A frame is comfortable under this share of the budget.
pub const COMFORT: f64 = 0.7;

/// Watches frame times and memory and picks the quality level.
#[derive(Debug, Clone)]
pub struct QualityGovernor {
    /// The player's chosen level: the ceiling.
    pub chosen: Level,
    /// The level in use.
    pub current: Level,
    budget_ms: f64,
    memory_budget: u64,
    over: u32,
    comfortable: u32,
    /// Drops so far.
    pub drops: u64,
    /// Raises so far.
    pub raises: u64,
    /// `assetManager.enableQualityScaling`: off, the level stays the player's choice.
    enabled: bool,
}

impl QualityGovernor {
    /// A governor for a target frame rate and a memory budget in bytes.
    pub fn new(chosen: Level, target_fps: u32, memory_budget: u64) -> Self {
        let chosen = chosen.clamp(1, 5);
        Self {
            chosen,
            current: chosen,
            budget_ms: 1000.0 / target_fps.max(1) as f64,
            memory_budget,
            over: 0,
            comfortable: 0,
            drops: 0,
            raises: 0,
            enabled: true,
        }
    }

    /// Turns automatic scaling on or off (`assetManager.enableQualityScaling`); off, the level
    /// goes back to the player's choice and stays there.
    pub fn set_enabled(&mut self, enabled: bool) {
        self.enabled = enabled;
        if !enabled {
            self.current = self.chosen;
        }
        self.over = 0;
        self.comfortable = 0;
    }

    /// Whether automatic scaling is on.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The player picked a level: it applies at once (a ceiling the governor respects).
    pub fn choose(&mut self, level: Level) {
        self.chosen = level.clamp(1, 5);
        self.current = self.chosen;
        self.over = 0;
        self.comfortable = 0;
    }

    /// New budgets from the config.
    pub fn set_budgets(&mut self, target_fps: u32, memory_budget: u64) {
        self.budget_ms = 1000.0 / target_fps.max(1) as f64;
        self.memory_budget = memory_budget;
    }

    /// One sample: the last frame's time and the memory in use.
    pub fn sample(&mut self, frame_ms: f64, memory: u64) -> Option<QualityChange> {
        if !self.enabled {
            return None;
        }
        let over_memory = memory > self.memory_budget;
        if frame_ms > self.budget_ms || over_memory {
            self.comfortable = 0;
            self.over += 1;
            // Memory pressure is acted on at once; slow frames only when they persist.
            if (over_memory || self.over >= DROP_AFTER) && self.current > 1 {
                self.current -= 1;
                self.over = 0;
                self.drops += 1;
                return Some(QualityChange::Dropped(self.current));
            }
        } else if frame_ms < self.budget_ms * COMFORT
            && (memory as f64) < self.memory_budget as f64 * COMFORT
        {
            self.over = 0;
            self.comfortable += 1;
            if self.comfortable >= RAISE_AFTER && self.current < self.chosen {
                self.current += 1;
                self.comfortable = 0;
                self.raises += 1;
                return Some(QualityChange::Raised(self.current));
            }
        } else {
            // Between comfortable and over budget: hold.
            self.over = 0;
            self.comfortable = 0;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_levels() {
        assert_eq!(level_name(1), "LOW");
        assert_eq!(level_name(5), "PROFESSIONAL");
        assert_eq!(level_of("high"), Some(3));
        assert_eq!(level_of("nope"), None);
    }

    #[test]
    fn drops_on_slow_frames_and_recovers_with_hysteresis() {
        // 60 fps: a 16.7 ms budget.
        let mut g = QualityGovernor::new(4, 60, 1 << 30);
        // A few slow frames are not enough.
        for _ in 0..DROP_AFTER - 1 {
            assert_eq!(g.sample(25.0, 0), None);
        }
        assert_eq!(g.sample(25.0, 0), Some(QualityChange::Dropped(3)));
        // Frames just under the budget hold the level: no flapping at the threshold.
        for _ in 0..RAISE_AFTER * 2 {
            assert_eq!(g.sample(15.0, 0), None);
        }
        // A long run of comfortable frames raises one level, and never above the choice.
        for _ in 0..RAISE_AFTER - 1 {
            assert_eq!(g.sample(8.0, 0), None);
        }
        assert_eq!(g.sample(8.0, 0), Some(QualityChange::Raised(4)));
        for _ in 0..RAISE_AFTER * 2 {
            assert_eq!(g.sample(8.0, 0), None);
        }
        assert_eq!(g.current, 4);
        assert_eq!((g.drops, g.raises), (1, 1));
    }

    #[test]
    fn memory_pressure_drops_at_once_down_to_low() {
        let mut g = QualityGovernor::new(3, 60, 1000);
        assert_eq!(g.sample(5.0, 2000), Some(QualityChange::Dropped(2)));
        assert_eq!(g.sample(5.0, 2000), Some(QualityChange::Dropped(1)));
        assert_eq!(g.sample(5.0, 2000), None);
        assert_eq!(g.current, 1);
        g.choose(5);
        assert_eq!(g.current, 5);
    }

    #[test]
    fn scaling_switched_off_keeps_the_choice() {
        let mut g = QualityGovernor::new(3, 60, 1000);
        assert_eq!(g.sample(5.0, 2000), Some(QualityChange::Dropped(2)));
        g.set_enabled(false);
        assert_eq!(g.current, 3, "back to the player's choice");
        for _ in 0..DROP_AFTER * 2 {
            assert_eq!(g.sample(50.0, 2000), None);
        }
        assert_eq!(g.current, 3);
        g.set_enabled(true);
        assert_eq!(g.sample(5.0, 2000), Some(QualityChange::Dropped(2)));
    }
}
