//! No import cycle between the files of `crates/agent/src` (issue 14): each layer can be
//! built and tested without the layers that use it (docs/architecture.md, "Import
//! cycles").
//!
//! Owns: a small, dependency-free reader of the agent's sources that turns every
//! `use crate::…` / `super::…` / `self::…` declaration and every such path in code (and in
//! a `#[serde(with = "crate::…")]` string) into an edge "file A uses an item defined in
//! file B", builds the graph and reports each cycle (a strongly connected set of files)
//! with the imports that close it.
//! Does not: compile or expand anything; it reads text.
//! Invariants: a re-export (`pub use`) is transparent — a path through `middleware::Client`
//! is an edge to the file that defines `Client` (`middleware/client.rs`), not to
//! `middleware/mod.rs`; a module declaration (`mod x;`) or an import of a module itself is
//! no edge (its later `x::Item` uses are); `#[cfg(test)]` code counts like any other code
//! (a layer's tests must not need the layers above it either).
//! Limitations: a name brought in by a glob (`use super::*`) and then used bare is not
//! followed to its defining file (the glob itself is an edge to the module it names);
//! items made by macros are not seen; a `use` inside a function body binds for the whole
//! module. Each of these can only hide an edge, never invent one.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One lexical token of Rust source; comments and literals are dropped except string
/// literals that spell a `crate::`/`super::`/`self::` path.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    PathSep,
    Punct(char),
    /// `"crate::a::b"` inside a string (serde's `with = "…"`): a path in code.
    PathString(Vec<String>),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
}

fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_ascii_alphabetic()
}

fn is_ident_char(c: char) -> bool {
    c == '_' || c.is_ascii_alphanumeric()
}

/// A string literal's text as a path, when it is one that starts at the crate.
fn path_in_string(text: &str) -> Option<Vec<String>> {
    let segments: Vec<String> = text.split("::").map(str::to_string).collect();
    let starts_here = matches!(segments[0].as_str(), "crate" | "super" | "self");
    let all_idents = segments.iter().all(|s| {
        let mut chars = s.chars();
        chars.next().is_some_and(is_ident_start) && chars.all(is_ident_char)
    });
    (segments.len() > 1 && starts_here && all_idents).then_some(segments)
}

/// Splits source text into tokens, skipping comments and literals.
fn lex(src: &str) -> Vec<Token> {
    let chars: Vec<char> = src.chars().collect();
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    line += usize::from(chars[i] == '\n');
                    i += 1;
                }
            }
        } else if c == 'r' && matches!(next, Some('"' | '#')) && raw_string_at(&chars, i + 1) {
            let start_line = line;
            let (end, text) = skip_raw_string(&chars, i + 1, &mut line);
            push_string(&mut tokens, &text, start_line);
            i = end;
        } else if c == 'b'
            && next == Some('r')
            && matches!(chars.get(i + 2), Some('"' | '#'))
            && raw_string_at(&chars, i + 2)
        {
            let (end, _) = skip_raw_string(&chars, i + 2, &mut line);
            i = end;
        } else if c == '"' {
            let start_line = line;
            let (end, text) = skip_string(&chars, i, &mut line);
            push_string(&mut tokens, &text, start_line);
            i = end;
        } else if c == '\'' {
            i = skip_char_or_lifetime(&chars, i);
        } else if is_ident_start(c) {
            let start = i;
            while i < chars.len() && is_ident_char(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            // `b"…"` and `b'…'`: the prefix is no identifier.
            if word == "b" && matches!(chars.get(i), Some('"' | '\'')) {
                continue;
            }
            tokens.push(Token {
                tok: Tok::Ident(word),
                line,
            });
        } else if c.is_ascii_digit() {
            while i < chars.len() && (is_ident_char(chars[i]) || chars[i] == '.') {
                // `1..2` is a range, not a number.
                if chars[i] == '.' && chars.get(i + 1) == Some(&'.') {
                    break;
                }
                i += 1;
            }
        } else if c == ':' && next == Some(':') {
            tokens.push(Token {
                tok: Tok::PathSep,
                line,
            });
            i += 2;
        } else {
            tokens.push(Token {
                tok: Tok::Punct(c),
                line,
            });
            i += 1;
        }
    }
    tokens
}

fn push_string(tokens: &mut Vec<Token>, text: &str, line: usize) {
    if let Some(path) = path_in_string(text) {
        tokens.push(Token {
            tok: Tok::PathString(path),
            line,
        });
    }
}

/// Whether `r` at `at - 1` opens a raw string (`r"`, `r#"`, `r##"` …).
fn raw_string_at(chars: &[char], at: usize) -> bool {
    let mut i = at;
    while chars.get(i) == Some(&'#') {
        i += 1;
    }
    chars.get(i) == Some(&'"') && (at < 2 || !is_ident_char(chars[at - 2]))
}

/// Skips a raw string whose `#`s start at `at`; returns the index after it and its text.
fn skip_raw_string(chars: &[char], at: usize, line: &mut usize) -> (usize, String) {
    let mut i = at;
    let mut hashes = 0;
    while chars[i] == '#' {
        hashes += 1;
        i += 1;
    }
    i += 1; // the opening quote
    let start = i;
    while i < chars.len() {
        if chars[i] == '"' && (1..=hashes).all(|k| chars.get(i + k) == Some(&'#')) {
            let text = chars[start..i].iter().collect();
            return (i + 1 + hashes, text);
        }
        *line += usize::from(chars[i] == '\n');
        i += 1;
    }
    (i, String::new())
}

/// Skips a string literal starting at the quote `at`; returns the index after it and its text.
fn skip_string(chars: &[char], at: usize, line: &mut usize) -> (usize, String) {
    let mut i = at + 1;
    let mut text = String::new();
    while i < chars.len() && chars[i] != '"' {
        if chars[i] == '\\' {
            i += 1;
        }
        if let Some(&c) = chars.get(i) {
            *line += usize::from(c == '\n');
            text.push(c);
        }
        i += 1;
    }
    (i + 1, text)
}

/// Skips a char literal (`'a'`, `'\n'`, `'{'`) or a lifetime (`'a`) at `at`.
fn skip_char_or_lifetime(chars: &[char], at: usize) -> usize {
    if chars.get(at + 1) == Some(&'\\') {
        let mut i = at + 2;
        while i < chars.len() && chars[i] != '\'' {
            i += 1;
        }
        return i + 1;
    }
    if chars.get(at + 2) == Some(&'\'') {
        return at + 3;
    }
    at + 1
}

/// A `use` declaration's one leaf: the path as written and what it binds.
#[derive(Debug, Clone)]
struct UseLeaf {
    /// The segments as written (`super`, `crate`, `self` or a name first).
    path: Vec<String>,
    /// The name it binds in its module; `None` for a glob.
    binding: Option<String>,
    public: bool,
    line: usize,
}

/// What a module (a file, or a `mod x { … }` inside one) holds.
#[derive(Debug, Default, Clone)]
struct Module {
    file: PathBuf,
    /// Items defined directly in it (fn, struct, enum, trait, type, const, static, …).
    defines: BTreeSet<String>,
    uses: Vec<UseLeaf>,
    /// Paths in code (not in `use`), as written, with their line.
    paths: Vec<(Vec<String>, usize)>,
    children: BTreeSet<String>,
}

/// Reads one file's tokens into its module and the inline modules inside it.
fn read_file(
    tokens: &[Token],
    file: &Path,
    base: &[String],
    modules: &mut BTreeMap<Vec<String>, Module>,
) {
    // (module path, brace depth inside which its items sit)
    let mut scopes: Vec<(Vec<String>, usize)> = vec![(base.to_vec(), 0)];
    let mut depth = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        let (scope, scope_depth) = scopes.last().cloned().unwrap_or_default();
        let module = modules.entry(scope.clone()).or_insert_with(|| Module {
            file: file.to_path_buf(),
            ..Module::default()
        });
        match &tokens[i].tok {
            Tok::Punct('{') => {
                depth += 1;
                i += 1;
            }
            Tok::Punct('}') => {
                depth = depth.saturating_sub(1);
                if scopes.len() > 1 && depth < scope_depth {
                    scopes.pop();
                }
                i += 1;
            }
            Tok::Ident(word) if word == "use" && !next_is(tokens, i + 1, &Tok::Punct('<')) => {
                let public = is_public(tokens, i);
                let (end, leaves) = parse_use(tokens, i + 1, public);
                module.uses.extend(leaves);
                i = end;
            }
            Tok::Ident(word) if word == "mod" => {
                if let (Some(Tok::Ident(name)), Some(Tok::Punct('{'))) = (
                    tokens.get(i + 1).map(|t| &t.tok),
                    tokens.get(i + 2).map(|t| &t.tok),
                ) {
                    module.children.insert(name.clone());
                    let mut inner = scope.clone();
                    inner.push(name.clone());
                    depth += 1;
                    scopes.push((inner, depth));
                    i += 3;
                } else {
                    i += 1;
                }
            }
            Tok::Ident(word) if depth == scope_depth && is_item_keyword(word) => {
                if let Some(Tok::Ident(name)) = tokens.get(i + 1).map(|t| &t.tok) {
                    if !is_item_keyword(name)
                        && !matches!(name.as_str(), "unsafe" | "async" | "extern")
                    {
                        module.defines.insert(name.clone());
                    }
                }
                i += 1;
            }
            Tok::Ident(word) if word == "macro_rules" => {
                if let Some(Tok::Ident(name)) = tokens.get(i + 2).map(|t| &t.tok) {
                    module.defines.insert(name.clone());
                }
                i += 1;
            }
            Tok::PathString(path) => {
                module.paths.push((path.clone(), tokens[i].line));
                i += 1;
            }
            Tok::Ident(first)
                if next_is(tokens, i + 1, &Tok::PathSep) && starts_path(tokens, i) =>
            {
                let mut path = vec![first.clone()];
                let mut j = i + 1;
                while next_is(tokens, j, &Tok::PathSep) {
                    match tokens.get(j + 1).map(|t| &t.tok) {
                        Some(Tok::Ident(seg)) => {
                            path.push(seg.clone());
                            j += 2;
                        }
                        _ => break,
                    }
                }
                module.paths.push((path, tokens[i].line));
                i = j;
            }
            _ => i += 1,
        }
    }
}

fn next_is(tokens: &[Token], at: usize, tok: &Tok) -> bool {
    tokens.get(at).is_some_and(|t| &t.tok == tok)
}

/// A path starts here: not the tail of a longer path, not `$crate`.
fn starts_path(tokens: &[Token], at: usize) -> bool {
    at == 0 || !matches!(tokens[at - 1].tok, Tok::PathSep | Tok::Punct('$'))
}

fn is_item_keyword(word: &str) -> bool {
    matches!(
        word,
        "fn" | "struct" | "enum" | "trait" | "type" | "const" | "static" | "union"
    )
}

/// `pub use` or `pub(crate) use` (any `pub(…)`).
fn is_public(tokens: &[Token], use_at: usize) -> bool {
    let Some(prev) = use_at.checked_sub(1).map(|k| &tokens[k].tok) else {
        return false;
    };
    match prev {
        Tok::Ident(word) => word == "pub",
        Tok::Punct(')') => {
            let mut k = use_at - 1;
            while k > 0 && tokens[k].tok != Tok::Punct('(') {
                k -= 1;
            }
            k > 0 && tokens[k - 1].tok == Tok::Ident("pub".into())
        }
        _ => false,
    }
}

/// Parses the use tree after `use` up to its `;`: returns the index after it and its leaves.
fn parse_use(tokens: &[Token], at: usize, public: bool) -> (usize, Vec<UseLeaf>) {
    let mut leaves = Vec::new();
    let mut i = at;
    // A leading `::` names an external crate: no edge.
    let external = next_is(tokens, i, &Tok::PathSep);
    parse_tree(tokens, &mut i, &[], public, &mut leaves);
    while i < tokens.len() && tokens[i].tok != Tok::Punct(';') {
        i += 1;
    }
    if external {
        leaves.clear();
    }
    (i + 1, leaves)
}

fn parse_tree(
    tokens: &[Token],
    i: &mut usize,
    prefix: &[String],
    public: bool,
    out: &mut Vec<UseLeaf>,
) {
    let mut path = prefix.to_vec();
    if next_is(tokens, *i, &Tok::PathSep) {
        *i += 1;
    }
    loop {
        let line = tokens.get(*i).map_or(0, |t| t.line);
        match tokens.get(*i).map(|t| t.tok.clone()) {
            Some(Tok::Ident(seg)) => {
                *i += 1;
                if next_is(tokens, *i, &Tok::PathSep) {
                    path.push(seg);
                    *i += 1;
                    continue;
                }
                let mut binding = if seg == "self" {
                    path.last().cloned().unwrap_or_default()
                } else {
                    path.push(seg.clone());
                    seg
                };
                if next_is(tokens, *i, &Tok::Ident("as".into())) {
                    if let Some(Tok::Ident(alias)) = tokens.get(*i + 1).map(|t| &t.tok) {
                        binding.clone_from(alias);
                    }
                    *i += 2;
                }
                out.push(UseLeaf {
                    path,
                    binding: Some(binding),
                    public,
                    line,
                });
                return;
            }
            Some(Tok::Punct('*')) => {
                *i += 1;
                out.push(UseLeaf {
                    path,
                    binding: None,
                    public,
                    line,
                });
                return;
            }
            Some(Tok::Punct('{')) => {
                *i += 1;
                while !next_is(tokens, *i, &Tok::Punct('}')) && *i < tokens.len() {
                    parse_tree(tokens, i, &path, public, out);
                    if next_is(tokens, *i, &Tok::Punct(',')) {
                        *i += 1;
                    }
                }
                *i += 1;
                return;
            }
            _ => return,
        }
    }
}

/// Where a path leads: the file, and whether it names a module (not an item in it).
#[derive(Debug, Clone, PartialEq)]
struct Target {
    file: PathBuf,
    module: bool,
}

struct Crate {
    modules: BTreeMap<Vec<String>, Module>,
}

impl Crate {
    /// Reads every `.rs` file below `src` (`lib.rs` is the root; `main.rs` is another crate).
    fn read(src: &Path) -> Self {
        let mut modules = BTreeMap::new();
        let mut files = Vec::new();
        collect_rs(src, &mut files);
        for file in &files {
            let rel = file.strip_prefix(src).expect("below src").to_path_buf();
            if rel == Path::new("main.rs") {
                continue;
            }
            let path = module_path(&rel);
            let text = std::fs::read_to_string(file).expect("source is readable");
            read_file(&lex(&text), &rel, &path, &mut modules);
        }
        // A file module is a child of its parent module.
        let paths: Vec<Vec<String>> = modules.keys().cloned().collect();
        for path in paths {
            if let Some((last, parent)) = path.split_last() {
                if let Some(module) = modules.get_mut(parent) {
                    module.children.insert(last.clone());
                }
            }
        }
        Self { modules }
    }

    /// Makes a written path absolute from the module `scope`; `None` for other crates.
    fn absolute(&self, scope: &[String], written: &[String]) -> Option<Vec<String>> {
        let mut base = scope.to_vec();
        let mut rest = written;
        match written.first().map(String::as_str) {
            Some("crate") => {
                base.clear();
                rest = &written[1..];
            }
            Some("self") => rest = &written[1..],
            Some("super") => {
                while rest.first().map(String::as_str) == Some("super") {
                    base.pop()?;
                    rest = &rest[1..];
                }
            }
            Some(first) => {
                let module = self.modules.get(scope)?;
                if !module.children.contains(first) && !module.defines.contains(first) {
                    // A name a `use` brought in (`use super::transport; transport::X`).
                    let leaf = module.uses.iter().find(|u| {
                        u.binding.as_deref() == Some(first) && u.path.as_slice() != &written[..1]
                    })?;
                    let mut path = self.absolute(scope, &leaf.path)?;
                    path.extend_from_slice(&written[1..]);
                    return Some(path);
                }
            }
            None => return None,
        }
        base.extend_from_slice(rest);
        Some(base)
    }

    /// Follows an absolute path through modules and re-exports to the file that defines it.
    fn resolve(&self, path: &[String], hops: usize) -> Option<Target> {
        let mut module_path: Vec<String> = Vec::new();
        for (at, name) in path.iter().enumerate() {
            let module = self.modules.get(&module_path)?;
            if module.children.contains(name) {
                module_path.push(name.clone());
                continue;
            }
            if module.defines.contains(name) || hops > 16 {
                return Some(Target {
                    file: module.file.clone(),
                    module: false,
                });
            }
            let rest = &path[at + 1..];
            if let Some(leaf) = module
                .uses
                .iter()
                .find(|u| u.binding.as_deref() == Some(name))
            {
                let mut through = self.absolute(&module_path, &leaf.path)?;
                through.extend_from_slice(rest);
                return self.resolve(&through, hops + 1);
            }
            for glob in module.uses.iter().filter(|u| u.binding.is_none()) {
                let Some(mut through) = self.absolute(&module_path, &glob.path) else {
                    continue;
                };
                through.push(name.clone());
                through.extend_from_slice(rest);
                if let Some(target) = self.resolve_defined(&through, hops + 1) {
                    return Some(target);
                }
            }
            // An item we cannot see (a variant, a macro's item): it is in this file.
            return Some(Target {
                file: module.file.clone(),
                module: false,
            });
        }
        let module = self.modules.get(&module_path)?;
        Some(Target {
            file: module.file.clone(),
            module: true,
        })
    }

    /// Like `resolve`, but only when the last module reached really defines the name.
    fn resolve_defined(&self, path: &[String], hops: usize) -> Option<Target> {
        let (name, parent) = path.split_last()?;
        let module = self.modules.get(parent)?;
        (module.defines.contains(name) || module.children.contains(name))
            .then(|| self.resolve(path, hops))
            .flatten()
    }

    /// Every edge "file uses an item of another file", with where it is written.
    fn edges(&self) -> BTreeMap<(PathBuf, PathBuf), Vec<String>> {
        let mut edges: BTreeMap<(PathBuf, PathBuf), Vec<String>> = BTreeMap::new();
        for (scope, module) in &self.modules {
            let used_in_code: BTreeSet<&str> = module
                .paths
                .iter()
                .filter_map(|(p, _)| p.first().map(String::as_str))
                .collect();
            let mut add = |written: &[String], line: usize, target: Option<Target>, glob: bool| {
                let Some(target) = target else { return };
                if target.file == module.file || (target.module && !glob) {
                    return;
                }
                let key = (module.file.clone(), target.file);
                edges.entry(key).or_default().push(format!(
                    "{}:{line} {}",
                    module.file.display(),
                    written.join("::")
                ));
            };
            for leaf in &module.uses {
                let glob = leaf.binding.is_none();
                // A re-export is transparent unless this module's own code uses the name.
                let re_export_only = leaf.public
                    && (glob
                        || !used_in_code.contains(leaf.binding.as_deref().unwrap_or_default()));
                if re_export_only {
                    continue;
                }
                let target = self
                    .absolute(scope, &leaf.path)
                    .and_then(|p| self.resolve(&p, 0));
                add(&leaf.path, leaf.line, target, glob);
            }
            for (written, line) in &module.paths {
                let target = self
                    .absolute(scope, written)
                    .and_then(|p| self.resolve(&p, 0));
                add(written, *line, target, false);
            }
        }
        edges
    }
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("source dir is readable")
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect_rs(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `lib.rs` → `[]`, `a/mod.rs` and `a.rs` → `[a]`, `a/b.rs` → `[a, b]`.
fn module_path(rel: &Path) -> Vec<String> {
    let mut path: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if matches!(path.last().map(String::as_str), Some("mod" | "lib")) {
        path.pop();
    }
    path
}

/// The strongly connected sets of more than one file (Tarjan), each sorted.
fn cycles(edges: &BTreeMap<(PathBuf, PathBuf), Vec<String>>) -> Vec<Vec<PathBuf>> {
    let mut graph: BTreeMap<&PathBuf, Vec<&PathBuf>> = BTreeMap::new();
    for (from, to) in edges.keys() {
        graph.entry(from).or_default().push(to);
        graph.entry(to).or_default();
    }
    let nodes: Vec<&PathBuf> = graph.keys().copied().collect();
    let mut index: BTreeMap<&PathBuf, (usize, usize)> = BTreeMap::new();
    let mut stack: Vec<&PathBuf> = Vec::new();
    let mut on_stack: BTreeSet<&PathBuf> = BTreeSet::new();
    let mut found = Vec::new();
    let mut counter = 0;
    for node in nodes {
        if !index.contains_key(node) {
            strong_connect(
                node,
                &graph,
                &mut index,
                &mut stack,
                &mut on_stack,
                &mut counter,
                &mut found,
            );
        }
    }
    found.sort();
    found
}

#[allow(clippy::too_many_arguments)]
fn strong_connect<'a>(
    node: &'a PathBuf,
    graph: &BTreeMap<&'a PathBuf, Vec<&'a PathBuf>>,
    index: &mut BTreeMap<&'a PathBuf, (usize, usize)>,
    stack: &mut Vec<&'a PathBuf>,
    on_stack: &mut BTreeSet<&'a PathBuf>,
    counter: &mut usize,
    found: &mut Vec<Vec<PathBuf>>,
) {
    index.insert(node, (*counter, *counter));
    *counter += 1;
    stack.push(node);
    on_stack.insert(node);
    for &next in &graph[node] {
        if !index.contains_key(next) {
            strong_connect(next, graph, index, stack, on_stack, counter, found);
            let low = index[node].1.min(index[next].1);
            index.get_mut(node).expect("visited").1 = low;
        } else if on_stack.contains(next) {
            let low = index[node].1.min(index[next].0);
            index.get_mut(node).expect("visited").1 = low;
        }
    }
    if index[node].0 == index[node].1 {
        let mut set = Vec::new();
        while let Some(top) = stack.pop() {
            on_stack.remove(top);
            set.push(top.clone());
            if top == node {
                break;
            }
        }
        if set.len() > 1 {
            set.sort();
            found.push(set);
        }
    }
}

/// Every cycle with its files and the imports that make it, or `None`.
fn report(src: &Path) -> Option<String> {
    report_except(src, &[])
}

/// Like [`report`], but leaves out the cycles whose file set is exactly one of `known`
/// (paths relative to `src`); a known cycle that grew is reported.
fn report_except(src: &Path, known: &[&[&str]]) -> Option<String> {
    let krate = Crate::read(src);
    let edges = krate.edges();
    let found: Vec<Vec<PathBuf>> = cycles(&edges)
        .into_iter()
        .filter(|set| !known.iter().any(|k| same_files(set, k)))
        .collect();
    if found.is_empty() {
        return None;
    }
    let mut text = format!(
        "{} import cycle(s) between files of {}:\n",
        found.len(),
        src.display()
    );
    for set in &found {
        let names: Vec<String> = set.iter().map(|p| p.display().to_string()).collect();
        let _ = writeln!(text, "\ncycle through {}:", names.join(", "));
        for ((from, to), sites) in &edges {
            if set.contains(from) && set.contains(to) {
                let _ = writeln!(
                    text,
                    "  {} -> {}   ({})",
                    from.display(),
                    to.display(),
                    sites.join("; ")
                );
            }
        }
    }
    Some(text)
}

fn same_files(set: &[PathBuf], known: &[&str]) -> bool {
    let mut known: Vec<PathBuf> = known.iter().map(PathBuf::from).collect();
    known.sort();
    set == known.as_slice()
}

/// The cycles not broken yet (issue 14), each the exact set of files in it. This list may
/// only shrink: a cycle not on it fails the test, and so does an entry that is no longer
/// a cycle (delete it).
const NOT_YET_BROKEN: &[&[&str]] = &[];

#[test]
fn no_import_cycle_between_files_of_the_agent() {
    let src = crate::support::repo_root().join("crates/agent/src");
    if let Some(cycles) = report_except(&src, NOT_YET_BROKEN) {
        panic!(
            "{cycles}\nMove the shared types into a module of their own (docs/architecture.md, \"Import cycles\")."
        );
    }
    let krate = Crate::read(&src);
    let found = cycles(&krate.edges());
    for known in NOT_YET_BROKEN {
        assert!(
            found.iter().any(|set| same_files(set, known)),
            "{known:?} is no longer an import cycle: delete it from NOT_YET_BROKEN"
        );
    }
}

#[test]
fn the_reader_sees_a_cycle_through_a_re_export_and_a_code_path() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("net")).unwrap();
    let files = [
        ("lib.rs", "pub mod net;\npub mod jobs;\n"),
        (
            "net/mod.rs",
            "mod session;\npub use session::Session;\n// use crate::jobs::Tracker;\n",
        ),
        (
            "net/session.rs",
            "pub struct Session { s: &'static str }\nfn f() { let _ = \"crate::jobs::x\"; crate::jobs::track(); }\n",
        ),
        ("jobs.rs", "use crate::net::Session;\npub fn track() {}\n"),
    ];
    for (path, text) in files {
        std::fs::write(src.join(path), text).unwrap();
    }
    let report = report(src).expect("session.rs -> jobs.rs -> session.rs is a cycle");
    assert!(
        report.contains("cycle through jobs.rs, net/session.rs"),
        "{report}"
    );
    assert!(
        !report.contains("net/mod.rs ->"),
        "a re-export is no edge: {report}"
    );
}

#[test]
fn the_reader_sees_no_cycle_in_a_layered_tree() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("net")).unwrap();
    let files = [
        ("lib.rs", "pub mod net;\npub mod jobs;\n"),
        // The parent re-exports its child and the child uses the parent's type: the
        // re-export is no edge, so this is layered (child → parent only).
        (
            "net/mod.rs",
            "mod session;\npub use session::Session;\npub struct Call;\n",
        ),
        (
            "net/session.rs",
            "use super::Call;\npub struct Session(Call);\n#[cfg(test)]\nmod tests { use super::*; }\n",
        ),
        (
            "jobs.rs",
            "use crate::net::{self, Session};\nfn f(_: net::Call, _: Session) {}\n",
        ),
    ];
    for (path, text) in files {
        std::fs::write(src.join(path), text).unwrap();
    }
    assert_eq!(report(src), None);
}
