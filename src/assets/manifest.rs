//! The asset manifest: a scan of the assets dir (professional path, category, type, size,
//! sha256, quality variants, preload priority), and the [`AssetRegistry`] over it.

use std::collections::BTreeMap;
use std::path::Path;

use bevy::prelude::*;
use sha2::{Digest, Sha256};

use crate::protocol::{AssetEntry, AssetManifest, AssetVariant};

/// The seed's model subcategories.
pub const MODEL_CATEGORIES: [&str; 10] = [
    "Aquariums",
    "Characters",
    "Items",
    "Environment",
    "UI_Elements",
    "Vehicles",
    "Weapons",
    "Buildings",
    "Props",
    "Miscellaneous",
];

/// The seed's asset types (top-level folders other than `Models`).
pub const TYPE_CATEGORIES: [&str; 8] = [
    "Textures",
    "Sounds",
    "UI_Assets",
    "Animations",
    "Prefabs",
    "Scripts",
    "Fonts",
    "Materials",
];

/// The quality suffixes, lowest first.
pub const QUALITIES: [&str; 5] = ["LOW", "MEDIUM", "HIGH", "ULTRA", "PROFESSIONAL"];

/// Path prefixes per priority (`assetManager.preload.*`).
#[derive(Debug, Clone, Default)]
pub struct Preload {
    /// critical, high and medium prefix lists (what none names is low).
    pub levels: Vec<(&'static str, Vec<String>)>,
}

impl Preload {
    /// From the config.
    pub fn from_config(config: &crate::config::Config) -> Self {
        // No list for "low": it is what no list names (a `low` list could change nothing).
        let levels = ["critical", "high", "medium"]
            .into_iter()
            .map(|l| {
                (
                    l,
                    config
                        .get::<Vec<String>>(&format!("assetManager.preload.{l}"))
                        .unwrap_or_default(),
                )
            })
            .collect();
        Self { levels }
    }

    /// The priority of a path (low when no prefix matches).
    pub fn priority(&self, path: &str) -> &'static str {
        self.levels
            .iter()
            .find(|(_, prefixes)| prefixes.iter().any(|p| path.starts_with(p.as_str())))
            .map_or("low", |(l, _)| l)
    }
}

fn kind_of(ext: &str) -> Option<&'static str> {
    Some(match ext {
        "glb" | "gltf" => "model",
        "png" | "jpg" | "jpeg" | "ktx2" => "texture",
        "ogg" | "wav" | "mp3" | "flac" => "sound",
        "ttf" | "otf" => "font",
        "ron" | "json" => "data",
        "txt" | "md" => "document",
        _ => return None,
    })
}

/// Scans `dir`. Unknown or unreadable files are warnings, not errors.
pub fn scan(dir: &Path, preload: &Preload) -> (AssetManifest, Vec<String>) {
    let mut warnings = Vec::new();
    let mut files = Vec::new();
    walk(dir, dir, &mut files, &mut warnings);
    files.sort();
    let mut entries: BTreeMap<String, AssetEntry> = BTreeMap::new();
    for rel in files {
        let segs: Vec<&str> = rel.split('/').collect();
        if segs.len() == 1 {
            // README and the like at the top: not assets.
            continue;
        }
        let category = if segs[0] == "Models" {
            match segs.get(1) {
                Some(c) if segs.len() > 2 && MODEL_CATEGORIES.contains(c) => (*c).to_string(),
                _ => {
                    warnings.push(format!(
                        "{rel}: not in a known model category; filed under Miscellaneous"
                    ));
                    "Miscellaneous".to_string()
                }
            }
        } else if TYPE_CATEGORIES.contains(&segs[0]) {
            segs[0].to_string()
        } else {
            warnings.push(format!("{rel}: unknown top-level folder {}", segs[0]));
            continue;
        };
        let Some((stem_path, ext)) = rel.rsplit_once('.') else {
            warnings.push(format!("{rel}: no extension"));
            continue;
        };
        let Some(kind) = kind_of(&ext.to_ascii_lowercase()) else {
            warnings.push(format!("{rel}: unknown file type .{ext}"));
            continue;
        };
        let (path, quality) = match stem_path.rsplit_once('@') {
            Some((p, q)) if QUALITIES.contains(&q) => (p.to_string(), q.to_string()),
            _ => (stem_path.to_string(), String::new()),
        };
        let bytes = match std::fs::read(dir.join(&rel)) {
            Ok(b) => b,
            Err(e) => {
                warnings.push(format!("{rel}: unreadable: {e}"));
                continue;
            }
        };
        let variant = AssetVariant {
            quality,
            file: rel.clone(),
            size: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(&bytes)),
        };
        let key = format!("{path}.{kind}");
        entries
            .entry(key)
            .or_insert_with(|| AssetEntry {
                priority: preload.priority(&path).to_string(),
                path: path.clone(),
                category,
                kind: kind.to_string(),
                variants: Vec::new(),
            })
            .variants
            .push(variant);
    }
    let mut entries: Vec<AssetEntry> = entries.into_values().collect();
    for e in &mut entries {
        e.variants
            .sort_by_key(|v| QUALITIES.iter().position(|q| *q == v.quality));
    }
    (AssetManifest { entries }, warnings)
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>, warnings: &mut Vec<String>) {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) => {
            warnings.push(format!("{}: unreadable: {e}", dir.display()));
            return;
        }
    };
    for entry in rd.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(root, &path, out, warnings);
        } else if let Ok(rel) = path.strip_prefix(root) {
            match rel.to_str() {
                Some(r) => out.push(r.replace('\\', "/")),
                None => warnings.push(format!("{}: name is not UTF-8", path.display())),
            }
        }
    }
}

/// Figures over the registry (the seed's getProfessionalStats).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AssetStats {
    /// Assets in the manifest.
    pub total: usize,
    /// Bytes of every variant.
    pub bytes: u64,
    /// Assets per category.
    pub per_category: BTreeMap<String, usize>,
    /// Assets per priority.
    pub per_priority: BTreeMap<String, usize>,
    /// Files loaded (client; 0 on the server).
    pub loaded: u64,
    /// Bytes held by the cache: the memory estimate.
    pub memory_bytes: u64,
    /// Cache hits over lookups.
    pub cache_hit_rate: f64,
    /// Average load time, ms.
    pub average_load_ms: f64,
}

impl AssetStats {
    /// With the client loader's figures.
    pub fn with_loading(mut self, s: &super::StreamerStats) -> Self {
        self.loaded = s.loads.loaded;
        self.memory_bytes = s.cache.bytes;
        self.cache_hit_rate = s.cache.hit_rate();
        self.average_load_ms = s.loads.average_ms();
        self
    }
}

/// The manifest, by path and by category.
#[derive(Resource, Debug, Clone, Default)]
pub struct AssetRegistry {
    manifest: AssetManifest,
    by_path: BTreeMap<String, usize>,
}

impl AssetRegistry {
    /// Over a manifest.
    pub fn new(manifest: AssetManifest) -> Self {
        let by_path = manifest
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.path.clone(), i))
            .collect();
        Self { manifest, by_path }
    }

    /// The manifest.
    pub fn manifest(&self) -> &AssetManifest {
        &self.manifest
    }

    /// getAssetByProfessionalPath.
    pub fn get(&self, path: &str) -> Option<&AssetEntry> {
        self.by_path.get(path).map(|i| &self.manifest.entries[*i])
    }

    /// getAssetsByProfessionalCategory.
    pub fn by_category<'a>(&'a self, category: &'a str) -> impl Iterator<Item = &'a AssetEntry> {
        self.manifest
            .entries
            .iter()
            .filter(move |e| e.category == category)
    }

    /// The best variant of `path` at or below `quality` (falling back lower, then to the
    /// lowest there is).
    pub fn variant(&self, path: &str, quality: &str) -> Option<&AssetVariant> {
        let e = self.get(path)?;
        let want = QUALITIES.iter().position(|q| *q == quality).unwrap_or(4);
        e.variants
            .iter()
            .rfind(|v| {
                v.quality.is_empty()
                    || QUALITIES
                        .iter()
                        .position(|q| *q == v.quality)
                        .is_some_and(|p| p <= want)
            })
            .or_else(|| e.variants.first())
    }

    /// getProfessionalStats (what the manifest knows; loading figures come with the client's
    /// loader).
    pub fn stats(&self) -> AssetStats {
        let mut s = AssetStats {
            total: self.manifest.entries.len(),
            ..Default::default()
        };
        for e in &self.manifest.entries {
            // Sizes come from the server's manifest: a sum past u64 saturates, never panics.
            let entry = e
                .variants
                .iter()
                .fold(0u64, |a, v| a.saturating_add(v.size));
            s.bytes = s.bytes.saturating_add(entry);
            *s.per_category.entry(e.category.clone()).or_default() += 1;
            *s.per_priority.entry(e.priority.clone()).or_default() += 1;
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ConfigValue;

    /// A manifest's sizes come from the server; the fuzzer sent sizes near `u64::MAX` and the
    /// byte total overflowed. It saturates now.
    #[test]
    fn stats_saturate_on_absurd_sizes() {
        let variant = |size| AssetVariant {
            quality: String::new(),
            file: "f".into(),
            size,
            sha256: String::new(),
        };
        let entry = |sizes: &[u64]| AssetEntry {
            path: "Models/Props/X".into(),
            category: "Props".into(),
            kind: "model".into(),
            priority: "low".into(),
            variants: sizes.iter().map(|s| variant(*s)).collect(),
        };
        let manifest = AssetManifest {
            entries: vec![entry(&[u64::MAX - 9, 20]), entry(&[u64::MAX])],
        };
        let s = AssetRegistry::new(manifest).stats();
        assert_eq!((s.total, s.bytes), (2, u64::MAX));
        let small = AssetManifest {
            entries: vec![entry(&[3, 4]), entry(&[5])],
        };
        assert_eq!(AssetRegistry::new(small).stats().bytes, 12);
    }

    /// `assetManager.preload.*` decide each asset's priority in the manifest the server sends.
    #[test]
    fn the_preload_lists_set_each_assets_priority() {
        let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/assets"));
        let priority_of = |config: &crate::config::Config, prefix: &str| {
            let (m, _) = scan(dir, &Preload::from_config(config));
            let mut p: Vec<String> = m
                .entries
                .iter()
                .filter(|e| e.path.starts_with(prefix))
                .map(|e| e.priority.clone())
                .collect();
            p.dedup();
            assert!(!p.is_empty(), "no asset under {prefix}");
            p
        };
        let mut c = crate::config::defaults_for_tests();
        assert_eq!(priority_of(&c, "Models/Aquariums"), ["critical"]);
        assert_eq!(priority_of(&c, "Textures"), ["high"]);
        assert_eq!(priority_of(&c, "Models/Props"), ["medium"]);
        assert_eq!(priority_of(&c, "Fonts"), ["critical"]);
        let list = |v: &[&str]| {
            ConfigValue::List(v.iter().map(|s| ConfigValue::Text((*s).into())).collect())
        };
        for (level, prefixes) in [
            ("critical", list(&["Textures"])),
            ("high", list(&["Models/Props"])),
            ("medium", list(&["Fonts"])),
        ] {
            c.set(
                &format!("assetManager.preload.{level}"),
                prefixes,
                "test",
                "",
                std::time::Duration::ZERO,
            )
            .unwrap();
        }
        assert_eq!(priority_of(&c, "Textures"), ["critical"]);
        assert_eq!(priority_of(&c, "Models/Props"), ["high"]);
        assert_eq!(priority_of(&c, "Fonts"), ["medium"]);
        assert_eq!(
            priority_of(&c, "Models/Aquariums"),
            ["low"],
            "no list names it"
        );
    }
}
