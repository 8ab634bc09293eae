//! Three-way merge of records (JSON values) against their common base, and the resolution
//! strategies: `LastWriteWins`, `Merge`, `Manual`, `Automatic`.
//!
//! Field by field: a side that left a field as the base takes the other side's value. When both
//! changed it, `Merge` merges counters (integers) as deltas (`base + Δours + Δtheirs`), sets
//! (arrays) as union of additions minus removals, objects by recursing; any other value is a
//! conflict. `Automatic` looks a field's path up in a [`Policy`] table and falls back to Manual
//! (a conflict) where no rule applies.

use std::collections::BTreeMap;

use serde_json::Value;

/// How conflicting writes to one record are resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Strategy {
    /// The later write replaces the earlier.
    LastWriteWins,
    /// Three-way merge; fields that cannot be merged are conflicts.
    Merge,
    /// Every conflicting write is queued for a person.
    Manual,
    /// Per-field rules from a policy table; no rule → Manual.
    Automatic,
}

/// A rule for one field under [`Strategy::Automatic`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Integer deltas add up.
    Counter,
    /// Arrays: union of additions, minus removals.
    Set,
    /// The larger number wins.
    Max,
    /// The smaller number wins.
    Min,
    /// The later write wins.
    Latest,
}

/// Field path (dotted) → rule.
pub type Policy = BTreeMap<String, Rule>;

/// A field both sides changed in ways no rule reconciles.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    /// Dotted path of the field ("" for the whole record).
    pub path: String,
    /// The base value (`Null` if absent).
    pub base: Value,
    /// Our value.
    pub ours: Value,
    /// Their (the later) value.
    pub theirs: Value,
}

/// The outcome of resolving two writes.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolution {
    /// The merged record; for conflicting fields it holds our value until they are resolved.
    pub merged: Value,
    /// Fields left for a person.
    pub conflicts: Vec<Conflict>,
}

impl Resolution {
    /// True if nothing is left to resolve.
    pub fn is_clean(&self) -> bool {
        self.conflicts.is_empty()
    }
}

/// Resolves `ours` and `theirs`, both written from `base` (`theirs` is the later write).
pub fn resolve(
    base: &Value,
    ours: &Value,
    theirs: &Value,
    strategy: Strategy,
    policy: &Policy,
) -> Resolution {
    let mut conflicts = Vec::new();
    let merged = match strategy {
        Strategy::LastWriteWins => theirs.clone(),
        Strategy::Manual => {
            if ours == theirs || ours == base {
                theirs.clone()
            } else if theirs == base {
                ours.clone()
            } else {
                conflicts.push(Conflict {
                    path: String::new(),
                    base: base.clone(),
                    ours: ours.clone(),
                    theirs: theirs.clone(),
                });
                ours.clone()
            }
        }
        Strategy::Merge => merge_value("", base, ours, theirs, None, &mut conflicts),
        Strategy::Automatic => merge_value("", base, ours, theirs, Some(policy), &mut conflicts),
    };
    Resolution { merged, conflicts }
}

/// The rule for a path: exact, then with numeric segments as `*` (`pets.*.hunger`), then the
/// nearest parent's `.*` entry.
fn lookup(policy: &Policy, path: &str) -> Option<Rule> {
    if let Some(r) = policy.get(path) {
        return Some(*r);
    }
    let general: Vec<&str> = path
        .split('.')
        .map(|seg| {
            if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
                "*"
            } else {
                seg
            }
        })
        .collect();
    let general = general.join(".");
    if let Some(r) = policy.get(&general) {
        return Some(*r);
    }
    let mut parent = general.as_str();
    while let Some((head, _)) = parent.rsplit_once('.') {
        if let Some(r) = policy.get(&format!("{head}.*")) {
            return Some(*r);
        }
        parent = head;
    }
    None
}

/// An array of objects that all carry a numeric or string "id", as id → record (`Null` and
/// `[]`: an empty map, compatible with either kind of list).
fn keyed(v: &Value) -> Option<BTreeMap<String, &Value>> {
    match v {
        Value::Null => Some(BTreeMap::new()),
        Value::Array(items) => items
            .iter()
            .map(|item| {
                let id = item.as_object()?.get("id")?;
                let key = match id {
                    Value::Number(n) => format!("{n:0>20}"),
                    Value::String(s) => s.clone(),
                    _ => return None,
                };
                Some((key, item))
            })
            .collect(),
        _ => None,
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn merge_value(
    path: &str,
    base: &Value,
    ours: &Value,
    theirs: &Value,
    policy: Option<&Policy>,
    conflicts: &mut Vec<Conflict>,
) -> Value {
    if theirs == base {
        return ours.clone();
    }
    if ours == base {
        return theirs.clone();
    }
    let rule = policy.and_then(|p| lookup(p, path));

    match (base, ours, theirs) {
        (Value::Object(b), Value::Object(o), Value::Object(t)) if rule.is_none() => {
            let mut out = serde_json::Map::new();
            let keys: std::collections::BTreeSet<&String> =
                b.keys().chain(o.keys()).chain(t.keys()).collect();
            for k in keys {
                let (bv, ov, tv) = (
                    b.get(k).unwrap_or(&Value::Null),
                    o.get(k).unwrap_or(&Value::Null),
                    t.get(k).unwrap_or(&Value::Null),
                );
                let v = merge_value(&join(path, k), bv, ov, tv, policy, conflicts);
                if !v.is_null() || (o.contains_key(k) && t.contains_key(k)) {
                    out.insert(k.clone(), v);
                }
            }
            return Value::Object(out);
        }
        _ => {}
    }
    if rule.is_none()
        && let (Some(b), Some(o), Some(t)) = (keyed(base), keyed(ours), keyed(theirs))
    {
        // Arrays of records with an "id": merged as maps by id.
        let ids: std::collections::BTreeSet<&String> =
            b.keys().chain(o.keys()).chain(t.keys()).collect();
        let mut out = Vec::new();
        for id in ids {
            let (bv, ov, tv) = (
                b.get(id).copied().unwrap_or(&Value::Null),
                o.get(id).copied().unwrap_or(&Value::Null),
                t.get(id).copied().unwrap_or(&Value::Null),
            );
            let v = merge_value(&join(path, id), bv, ov, tv, policy, conflicts);
            if !v.is_null() {
                out.push(v);
            }
        }
        return Value::Array(out);
    }
    // Both changed. The same new value is agreement, except for a counter: two writers that
    // each added 5 added 10. (Records and keyed lists were merged field by field above, so a
    // counter inside them is never taken for agreement.)
    let is_counter = base.is_i64()
        && ours.is_i64()
        && match policy {
            None => true,
            Some(_) => rule == Some(Rule::Counter),
        };
    if ours == theirs && !is_counter {
        return ours.clone();
    }
    let counter = || -> Option<Value> {
        let (b, o, t) = (base.as_i64()?, ours.as_i64()?, theirs.as_i64()?);
        Some(Value::from(
            b.saturating_add(o.saturating_sub(b))
                .saturating_add(t.saturating_sub(b)),
        ))
    };
    let set = || -> Option<Value> {
        let empty = Vec::new();
        let b = if base.is_null() {
            &empty
        } else {
            base.as_array()?
        };
        let (o, t) = (ours.as_array()?, theirs.as_array()?);
        let mut out: Vec<Value> = Vec::new();
        // Kept: in the base and removed by neither side.
        for v in b {
            if o.contains(v) && t.contains(v) && !out.contains(v) {
                out.push(v.clone());
            }
        }
        // Added by either side.
        for v in o.iter().chain(t) {
            if !b.contains(v) && !out.contains(v) {
                out.push(v.clone());
            }
        }
        Some(Value::Array(out))
    };
    let numbers = |pick_max: bool| -> Option<Value> {
        let (o, t) = (ours.as_f64()?, theirs.as_f64()?);
        let pick = if (o >= t) == pick_max { ours } else { theirs };
        Some(pick.clone())
    };
    let merged = match (policy, rule) {
        // Plain Merge: counters and sets by shape.
        (None, _) => counter().or_else(set),
        (Some(_), Some(Rule::Counter)) => counter(),
        (Some(_), Some(Rule::Set)) => set(),
        (Some(_), Some(Rule::Max)) => numbers(true),
        (Some(_), Some(Rule::Min)) => numbers(false),
        (Some(_), Some(Rule::Latest)) => Some(theirs.clone()),
        (Some(_), None) => None,
    };
    match merged {
        Some(v) => v,
        None => {
            conflicts.push(Conflict {
                path: path.to_string(),
                base: base.clone(),
                ours: ours.clone(),
                theirs: theirs.clone(),
            });
            ours.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::{Strategy as Gen, prop_assert, prop_assert_eq, proptest};
    use serde_json::json;

    /// A game's rule inside records with ids: a fed pet stays fed.
    fn pets_policy() -> Policy {
        [("pets.*.hunger".to_string(), Rule::Min)]
            .into_iter()
            .collect()
    }

    #[test]
    fn merge_adds_counter_deltas_unions_sets_and_flags_plain_values() {
        let base = json!({"points": 100, "pets": [1, 2], "name": "a", "room": {"level": 1}});
        let ours = json!({"points": 130, "pets": [1, 2, 3], "name": "b", "room": {"level": 1}});
        let theirs = json!({"points": 90, "pets": [2, 4], "name": "c", "room": {"level": 2}});
        let r = resolve(&base, &ours, &theirs, Strategy::Merge, &Policy::new());
        assert_eq!(r.merged["points"], json!(120));
        assert_eq!(r.merged["pets"], json!([2, 3, 4]));
        assert_eq!(r.merged["room"]["level"], json!(2));
        assert_eq!(r.conflicts.len(), 1);
        assert_eq!(r.conflicts[0].path, "name");
        // Last write wins takes theirs whole.
        let r = resolve(
            &base,
            &ours,
            &theirs,
            Strategy::LastWriteWins,
            &Policy::new(),
        );
        assert_eq!(r.merged, theirs);
        // Manual: anything both changed waits.
        let r = resolve(&base, &ours, &theirs, Strategy::Manual, &Policy::new());
        assert_eq!(r.conflicts.len(), 1);
        assert_eq!(r.conflicts[0].path, "");
    }

    #[test]
    fn records_with_ids_merge_by_id_and_the_policy_applies_inside() {
        let base = json!({"pets": [{"id": 1, "hunger": 50.0}, {"id": 2, "hunger": 10.0}]});
        let ours = json!({"pets": [{"id": 1, "hunger": 0.0}, {"id": 2, "hunger": 10.0}, {"id": 3, "hunger": 0.0}]});
        let theirs = json!({"pets": [{"id": 1, "hunger": 60.0}]});
        let r = resolve(&base, &ours, &theirs, Strategy::Automatic, &pets_policy());
        assert!(r.is_clean(), "{:?}", r.conflicts);
        // Pet 1: fed on our side (min); pets 2: sold on theirs; pets 3: bought on ours.
        assert_eq!(
            r.merged["pets"],
            json!([{"id": 1, "hunger": 0.0}, {"id": 3, "hunger": 0.0}])
        );
        // From an empty room, both sides' new pets are kept once each, by id.
        let r = resolve(
            &json!({"pets": []}),
            &json!({"pets": [{"id": 1, "hunger": 3.0}]}),
            &json!({"pets": [{"id": 1, "hunger": 3.0}, {"id": 2, "hunger": 0.0}]}),
            Strategy::Automatic,
            &pets_policy(),
        );
        assert_eq!(r.merged["pets"].as_array().map(Vec::len), Some(2));
        // Plain Merge cannot settle two different hungers.
        let r = resolve(&base, &ours, &theirs, Strategy::Merge, &Policy::new());
        assert_eq!(r.conflicts.len(), 1);
        assert!(
            r.conflicts[0].path.ends_with(".hunger"),
            "{:?}",
            r.conflicts
        );
    }

    #[test]
    fn automatic_follows_the_policy_and_falls_back_to_manual() {
        let base = json!({"points": 100, "best": 5, "name": "a"});
        let ours = json!({"points": 110, "best": 9, "name": "b"});
        let theirs = json!({"points": 120, "best": 7, "name": "c"});
        let policy: Policy = [("points".into(), Rule::Counter), ("best".into(), Rule::Max)]
            .into_iter()
            .collect();
        let r = resolve(&base, &ours, &theirs, Strategy::Automatic, &policy);
        assert_eq!(r.merged["points"], json!(130));
        assert_eq!(r.merged["best"], json!(9));
        assert_eq!(r.conflicts.len(), 1, "no rule for name: Manual");
        assert_eq!(r.conflicts[0].path, "name");
    }

    fn record() -> impl Gen<Value = Value> {
        (
            -1000i64..1000,
            proptest::collection::vec(0u8..16, 0..6),
            "[a-c]{0,2}",
        )
            .prop_map(|(c, s, n)| json!({"points": c, "items": s, "name": n}))
    }

    proptest! {
        #[test]
        fn merge_is_deterministic(b in record(), o in record(), t in record()) {
            let p = Policy::new();
            prop_assert_eq!(
                resolve(&b, &o, &t, Strategy::Merge, &p),
                resolve(&b, &o, &t, Strategy::Merge, &p)
            );
        }

        #[test]
        fn merging_an_empty_change_is_the_identity(b in record(), o in record()) {
            let p = Policy::new();
            for s in [Strategy::Merge, Strategy::Automatic, Strategy::Manual] {
                let r = resolve(&b, &o, &b, s, &p);
                prop_assert_eq!(&r.merged, &o);
                prop_assert!(r.is_clean());
                let r = resolve(&b, &b, &o, s, &p);
                prop_assert_eq!(&r.merged, &o);
                prop_assert!(r.is_clean());
            }
        }

        #[test]
        fn counters_never_lose_a_delta(
            base in -1_000_000i64..1_000_000,
            ours in proptest::collection::vec(-500i64..500, 0..8),
            theirs in proptest::collection::vec(-500i64..500, 0..8),
        ) {
            // Two writers apply their own sequences of deltas from one base, in any order.
            let o = base + ours.iter().sum::<i64>();
            let t = base + theirs.iter().sum::<i64>();
            let r = resolve(
                &json!({"points": base}),
                &json!({"points": o}),
                &json!({"points": t}),
                Strategy::Merge,
                &Policy::new(),
            );
            prop_assert!(r.is_clean());
            prop_assert_eq!(
                r.merged["points"].as_i64(),
                Some(base + ours.iter().sum::<i64>() + theirs.iter().sum::<i64>())
            );
        }
    }
}
