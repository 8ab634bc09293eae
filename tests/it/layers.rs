//! The layer check: every path into the crate from `src/` — `use` items (with their nested
//! groups), inline `crate::…` paths, `super::…` paths (resolved against the module they are
//! written in, inline `mod` blocks included) and macros' `$crate::…` — names a module listed
//! before its own in the `layers` block of `ARCHITECTURE.md`. Files are lexed (comments and
//! strings cannot fool it); there is no exception list. Anything the check cannot resolve (a path
//! through the crate root to something that is not a top-level module, an alias of the crate
//! root, a `#[path]` attribute) fails too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The layers as `ARCHITECTURE.md` writes them: each top-level module with its position in the
/// total order and its layer's name.
fn layer_table() -> BTreeMap<String, (usize, String)> {
    let text = std::fs::read_to_string(Path::new(ROOT).join("ARCHITECTURE.md"))
        .expect("ARCHITECTURE.md at the crate root");
    let block = text
        .split("```layers\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("ARCHITECTURE.md has a ```layers block");
    let mut table = BTreeMap::new();
    for line in block.lines().filter(|l| !l.trim().is_empty()) {
        let (layer, modules) = line.split_once(':').expect("`layer: modules` lines");
        for m in modules.split_whitespace() {
            let rank = table.len();
            let previous = table.insert(m.to_string(), (rank, layer.trim().to_string()));
            assert!(previous.is_none(), "{m} is listed twice in ARCHITECTURE.md");
        }
    }
    table
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a file: `src/a/b.rs` and `src/a/b/mod.rs` are `["a", "b"]`; `lib.rs` is
/// the root; `main.rs` is the binary, checked as the module `main`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).expect("a file under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|l| l == "mod") {
        parts.pop();
    }
    if parts == ["lib"] {
        parts.clear();
    }
    parts
}

/// One path into the crate: where it is written and the module path it names.
#[derive(Debug)]
struct Reference {
    line: usize,
    /// The resolved path, from the crate root (`["transport", "ServerNet"]`).
    target: Vec<String>,
    /// How it was written, for the message.
    written: String,
}

/// A path the check cannot follow.
#[derive(Debug)]
struct Unresolvable {
    line: usize,
    why: String,
}

struct Scan<'a> {
    refs: Vec<Reference>,
    bad: Vec<Unresolvable>,
    /// The crate's own name, which only the binary may use.
    crate_name: &'a str,
    binary: bool,
}

fn is_path_sep(tokens: &[TokenTree], i: usize) -> bool {
    matches!((tokens.get(i), tokens.get(i + 1)),
        (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b)))
            if a.as_char() == ':' && a.spacing() == Spacing::Joint && b.as_char() == ':')
}

fn ident(t: Option<&TokenTree>) -> Option<String> {
    match t {
        Some(TokenTree::Ident(i)) => Some(i.to_string()),
        _ => None,
    }
}

impl Scan<'_> {
    /// Walks one token level of a module whose path is `module`.
    fn walk(&mut self, stream: TokenStream, module: &[String]) {
        let tokens: Vec<TokenTree> = stream.into_iter().collect();
        let mut i = 0;
        while i < tokens.len() {
            match &tokens[i] {
                TokenTree::Group(g) => {
                    // `#[path = ...]` would point a module at another file.
                    if g.delimiter() == Delimiter::Bracket {
                        let inner: Vec<TokenTree> = g.stream().into_iter().collect();
                        if ident(inner.first()).as_deref() == Some("path")
                            && matches!(inner.get(1), Some(TokenTree::Punct(p)) if p.as_char() == '=')
                        {
                            self.bad.push(Unresolvable {
                                line: g.span().start().line,
                                why: "#[path] attributes hide which file a module is".into(),
                            });
                        }
                    }
                    // `pub(crate)` / `pub(super)` / `pub(in path)` are visibility, not imports.
                    let visibility = g.delimiter() == Delimiter::Parenthesis
                        && i > 0
                        && ident(tokens.get(i - 1)).as_deref() == Some("pub");
                    if !visibility {
                        self.walk(g.stream(), module);
                    }
                    i += 1;
                }
                TokenTree::Ident(id) => {
                    let word = id.to_string();
                    let line = id.span().start().line;
                    // An inline module: its body resolves `super` one level deeper.
                    if word == "mod"
                        && let (Some(name), Some(TokenTree::Group(body))) =
                            (ident(tokens.get(i + 1)), tokens.get(i + 2))
                        && body.delimiter() == Delimiter::Brace
                    {
                        let mut inner = module.to_vec();
                        inner.push(name);
                        self.walk(body.stream(), &inner);
                        i += 3;
                        continue;
                    }
                    let after_colons = i > 1 && is_path_sep(&tokens, i - 2);
                    match word.as_str() {
                        // A path's first segment only (`a::crate` cannot occur).
                        "crate" if !after_colons => {
                            if is_path_sep(&tokens, i + 1) {
                                i = self.path(&tokens, i + 3, Vec::new(), "crate::", line);
                                continue;
                            }
                            self.bad.push(Unresolvable {
                                line,
                                why: "`crate` used other than as a path's start (an alias of the \
                                      crate root hides what is imported)"
                                    .into(),
                            });
                        }
                        "super" if !after_colons => {
                            let mut base = module.to_vec();
                            let mut j = i;
                            let mut written = String::new();
                            loop {
                                if base.pop().is_none() {
                                    self.bad.push(Unresolvable {
                                        line,
                                        why: "`super` above the crate root".into(),
                                    });
                                }
                                written.push_str("super::");
                                if is_path_sep(&tokens, j + 1)
                                    && ident(tokens.get(j + 3)).as_deref() == Some("super")
                                {
                                    j += 3;
                                } else {
                                    break;
                                }
                            }
                            if is_path_sep(&tokens, j + 1) {
                                i = self.path(&tokens, j + 3, base, &written, line);
                                continue;
                            }
                            // `use super;` or `super` alone: the parent module itself.
                            self.refs.push(Reference {
                                line,
                                target: base,
                                written,
                            });
                        }
                        "extern" if ident(tokens.get(i + 1)).as_deref() == Some("crate") => {
                            self.bad.push(Unresolvable {
                                line,
                                why: "`extern crate` can alias this crate".into(),
                            });
                            i += 2;
                            continue;
                        }
                        name if name == self.crate_name && !after_colons => {
                            if self.binary && is_path_sep(&tokens, i + 1) {
                                i = self.path(&tokens, i + 3, Vec::new(), "bloxquarium::", line);
                                continue;
                            }
                            if !self.binary {
                                self.bad.push(Unresolvable {
                                    line,
                                    why: "the library names itself by its crate name".into(),
                                });
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
                _ => i += 1,
            }
        }
    }

    /// Follows a path from `tokens[i]` (the segment after `::`), under `base`; records every
    /// module path it names (several, for a `{…}` group). Returns the index after the path.
    fn path(
        &mut self,
        tokens: &[TokenTree],
        mut i: usize,
        mut base: Vec<String>,
        written: &str,
        line: usize,
    ) -> usize {
        let mut written = written.to_string();
        loop {
            match tokens.get(i) {
                Some(TokenTree::Ident(seg)) => {
                    let s = seg.to_string();
                    written.push_str(&s);
                    if s != "self" {
                        base.push(s);
                    }
                    if is_path_sep(tokens, i + 1) {
                        written.push_str("::");
                        i += 3;
                        continue;
                    }
                    self.refs.push(Reference {
                        line,
                        target: base,
                        written,
                    });
                    return i + 1;
                }
                Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Brace => {
                    // A use group: each comma-separated tree continues from `base`.
                    let inner: Vec<TokenTree> = g.stream().into_iter().collect();
                    let mut k = 0;
                    while k < inner.len() {
                        let line = inner[k].span().start().line;
                        let next = match &inner[k] {
                            TokenTree::Punct(p) if p.as_char() == ',' => {
                                k += 1;
                                continue;
                            }
                            TokenTree::Punct(p) if p.as_char() == '*' => {
                                self.refs.push(Reference {
                                    line,
                                    target: base.clone(),
                                    written: format!("{written}*"),
                                });
                                k + 1
                            }
                            _ => self.path(&inner, k, base.clone(), &written, line),
                        };
                        // Skip `as name` and anything up to the next comma.
                        k = next;
                        while k < inner.len()
                            && !matches!(&inner[k], TokenTree::Punct(p) if p.as_char() == ',')
                        {
                            k += 1;
                        }
                    }
                    return i + 1;
                }
                _ => {
                    // `use crate::x::*` and the like: the path so far.
                    self.refs.push(Reference {
                        line,
                        target: base,
                        written,
                    });
                    return i + 1;
                }
            }
        }
    }
}

struct Violation {
    file: String,
    line: usize,
    text: String,
}

fn check(src: &Path) -> (Vec<Violation>, BTreeMap<String, (usize, String)>, usize) {
    let table = layer_table();
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut violations = Vec::new();
    let mut paths = 0;
    for file in &files {
        let module = module_of(src, file);
        let shown = file
            .strip_prefix(ROOT)
            .unwrap_or(file)
            .display()
            .to_string();
        let text = std::fs::read_to_string(file).expect("a readable source file");
        let stream: TokenStream = match text.parse() {
            Ok(s) => s,
            Err(e) => {
                violations.push(Violation {
                    file: shown,
                    line: e.span().start().line,
                    text: format!("cannot lex: {e}"),
                });
                continue;
            }
        };
        let binary = module == ["main"];
        let mut scan = Scan {
            refs: Vec::new(),
            bad: Vec::new(),
            crate_name: "bloxquarium",
            binary,
        };
        scan.walk(stream, &module);
        for b in scan.bad {
            violations.push(Violation {
                file: shown.clone(),
                line: b.line,
                text: b.why,
            });
        }
        let Some(own) = module.first() else {
            // lib.rs: the table of contents; its `pub use` re-exports must run down only, which
            // holds for any module it lists, since nothing is below the root.
            continue;
        };
        let Some((own_rank, own_layer)) = table.get(own) else {
            violations.push(Violation {
                file: shown.clone(),
                line: 1,
                text: format!("module `{own}` is in no layer of ARCHITECTURE.md"),
            });
            continue;
        };
        for r in scan.refs {
            paths += 1;
            let Some(target) = r.target.first() else {
                violations.push(Violation {
                    file: shown.clone(),
                    line: r.line,
                    text: format!("`{}` names the crate root itself", r.written),
                });
                continue;
            };
            if target == own {
                continue;
            }
            match table.get(target) {
                None => violations.push(Violation {
                    file: shown.clone(),
                    line: r.line,
                    text: format!(
                        "`{}` goes through the crate root to `{target}`, which is not a module \
                         in a layer of ARCHITECTURE.md",
                        r.written
                    ),
                }),
                Some((rank, layer)) if rank > own_rank => violations.push(Violation {
                    file: shown.clone(),
                    line: r.line,
                    text: format!(
                        "`{}` runs up the layers: `{own}` ({own_layer}) may not import `{target}` \
                         ({layer}), which is listed after it",
                        r.written
                    ),
                }),
                Some(_) => {}
            }
        }
    }
    (violations, table, paths)
}

#[test]
fn no_path_runs_up_the_layers() {
    let src = Path::new(ROOT).join("src");
    let (violations, table, paths) = check(&src);
    // Every top-level module of the crate has a layer, and every listed module exists.
    let mut tops: Vec<String> = std::fs::read_dir(&src)
        .expect("src/")
        .map(|e| e.expect("an entry").path())
        .filter_map(|p| {
            let name = p.file_stem()?.to_string_lossy().to_string();
            (p.is_dir() || p.extension().is_some_and(|e| e == "rs")).then_some(name)
        })
        .filter(|n| n != "lib")
        .collect();
    tops.sort();
    for m in table.keys() {
        assert!(
            tops.contains(m),
            "ARCHITECTURE.md lists `{m}`, which is not in src/"
        );
    }
    assert!(
        paths > 300,
        "only {paths} paths found: is the scan reading the files?"
    );
    let report: Vec<String> = violations
        .iter()
        .map(|v| format!("{}:{}: {}", v.file, v.line, v.text))
        .collect();
    assert!(report.is_empty(), "{}", report.join("\n"));
}

/// The scanner itself, on sources written to fool it.
#[test]
fn the_scan_finds_every_kind_of_path_and_is_not_fooled_by_text() {
    let scan = |module: &[&str], code: &str| {
        let mut s = Scan {
            refs: Vec::new(),
            bad: Vec::new(),
            crate_name: "bloxquarium",
            binary: false,
        };
        let module: Vec<String> = module.iter().map(|m| m.to_string()).collect();
        s.walk(code.parse().expect("lexes"), &module);
        let refs: Vec<String> = s.refs.iter().map(|r| r.target.join("::")).collect();
        (refs, s.bad.len())
    };
    let (refs, bad) = scan(
        &["security", "admin"],
        r#"
        //! crate::game::X in a doc comment
        use crate::{config::{Config, ConfigSource}, datastore as ds};
        use super::{AuditKind, Security};
        fn f() {
            let _ = "crate::game::Y";
            crate::health::register(x);
            let v: Vec<crate::transport::Ok> = vec![];
            format!("{}", crate::game::economy::price());
        }
        mod tests { use super::*; use super::super::Security; }
        pub(crate) fn g() {}
        /* crate::app::Z */
        "#,
    );
    assert_eq!(
        refs,
        [
            "config::Config",
            "config::ConfigSource",
            "datastore",
            "security::AuditKind",
            "security::Security",
            "health::register",
            "transport::Ok",
            "game::economy::price",
            "security::admin",
            "security::Security",
        ]
    );
    assert_eq!(bad, 0);
    let (_, bad) = scan(
        &["game"],
        "use crate as root; extern crate self as b; use bloxquarium::x;",
    );
    assert_eq!(
        bad, 3,
        "aliases of the crate root and the crate's own name are refused"
    );
    let (refs, _) = scan(&["a", "b"], "macro_rules! m { () => { $crate::game::X } }");
    assert_eq!(refs, ["game::X"], "$crate inside a macro");
}

/// Words that belong to the aquarium. Nothing below the game layer may name them, so the
/// framework stays a framework any game can use (`ARCHITECTURE.md`).
const GAME_WORDS: &[&str] = &[
    "fish",
    "fishes",
    "coin",
    "coins",
    "tank",
    "tanks",
    "decoration",
    "decorations",
];

/// The words of a line: split at anything that is not a letter or digit and at each lower-to-
/// upper case step (`startingCoins` is `starting`, `coins`; `FishState` is `fish`, `state`),
/// lower-cased.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in line.chars() {
        if !c.is_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        cur.extend(c.to_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Every line (code, strings and comments alike) of the ground and framework layers is free of
/// the game's words.
#[test]
fn nothing_below_the_game_names_its_things() {
    assert_eq!(
        words("let x = cfg.get(\"game.startingCoins\"); // FishState tank_level coincide"),
        [
            "let", "x", "cfg", "get", "game", "starting", "coins", "fish", "state", "tank",
            "level", "coincide"
        ]
    );
    let src = Path::new(ROOT).join("src");
    let table = layer_table();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut checked = 0;
    let mut found = Vec::new();
    for file in &files {
        let module = module_of(&src, file);
        let Some(top) = module.first() else { continue };
        let Some((_, layer)) = table.get(top) else {
            continue;
        };
        if layer != "ground" && layer != "framework" {
            continue;
        }
        checked += 1;
        let text = std::fs::read_to_string(file).expect("a source file");
        for (n, line) in text.lines().enumerate() {
            if let Some(w) = words(line)
                .into_iter()
                .find(|w| GAME_WORDS.contains(&w.as_str()))
            {
                found.push(format!(
                    "{}:{}: `{w}`: {}",
                    file.strip_prefix(ROOT).unwrap_or(file).display(),
                    n + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(checked > 60, "only {checked} framework files checked");
    assert!(found.is_empty(), "{}", found.join("\n"));
}
