//! The import rule of issue 20 (docs/redesign-plan.md §1), checked on the
//! source text, without a build: `api` → `auth` and `db` → `domain`, and
//! never the other way. `src/domain` names no HTTP crate, no storage driver
//! and no other module of the crate; `src/db` names no HTTP crate and only
//! `domain` besides itself; `src/auth` names no `axum` and none of
//! `api`/`app`; only the composition root (`app.rs`) and the command line
//! name `crate::app`. And no file under `src/` is over [`MAX_LINES`].
//!
//! Every path is read: `use` trees (braces expanded, `self`/`super`
//! resolved against the file's module) and paths written in code
//! (`crate::middleware::request_started()`, `axum::http::…`). Comments and
//! string literals are skipped.

use std::path::{Path, PathBuf};

/// One layer's rule.
struct Rule {
    /// The folder under `src/` the rule covers.
    dir: &'static str,
    /// Crates the layer must not name.
    crates: &'static [&'static str],
    /// Modules of this crate the layer may name (its own included).
    modules: &'static [&'static str],
}

const RULES: &[Rule] = &[
    Rule {
        dir: "domain",
        crates: &[
            "axum",
            "http",
            "hyper",
            "hyper_util",
            "tower",
            "tower_http",
            "tokio_postgres",
            "deadpool_postgres",
            "rusqlite",
            "refinery",
        ],
        modules: &["domain"],
    },
    Rule {
        dir: "db",
        crates: &["axum", "http", "hyper", "hyper_util", "tower", "tower_http"],
        modules: &["db", "domain"],
    },
    Rule {
        dir: "auth",
        crates: &["axum"],
        modules: &["auth", "domain", "db", "config"],
    },
];

/// Files that may name `crate::app` (the composition root and the command
/// line that starts it); everything else is below it.
const MAY_NAME_APP: &[&str] = &["app.rs", "cli.rs", "lib.rs", "main.rs"];

#[test]
fn layers_import_only_downwards() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(
        files.len() > 20,
        "found only {} files under {}",
        files.len(),
        src.display()
    );
    let mut violations = Vec::new();
    for file in &files {
        let rel = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(file).unwrap();
        violations.extend(check(&rel, &text));
    }
    assert!(
        violations.is_empty(),
        "imports against the layering of docs/redesign-plan.md §1:\n{}",
        violations.join("\n")
    );
}

/// Most lines a source file under `src/` may have (docs/redesign-plan.md
/// §1): past it a file holds more than one job, and is split by role.
const MAX_LINES: usize = 400;

#[test]
fn no_source_file_is_over_the_line_budget() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut long: Vec<String> = files
        .iter()
        .filter_map(|file| {
            let lines = std::fs::read_to_string(file).unwrap().lines().count();
            let rel = file.strip_prefix(&src).unwrap().display();
            (lines > MAX_LINES).then(|| format!("{rel}: {lines} lines"))
        })
        .collect();
    long.sort();
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} lines (split them by role; tests may move to a \
         sibling `tests.rs`):\n{}",
        long.join("\n")
    );
}

/// The checker itself finds what it is meant to find, so a pass above
/// means something.
#[test]
fn the_checker_sees_grouped_inline_and_relative_paths() {
    let found = |file: &str, text: &str| check(file, text);
    // Grouped `use`, nested braces, renames.
    assert_eq!(
        found(
            "domain/task.rs",
            "use crate::{domain::{self, x}, error::{ApiError as E}, domain::y};"
        ),
        ["domain/task.rs: crate::error::ApiError"]
    );
    // A path in code, and a crate named outside `use`.
    assert_eq!(
        found(
            "db/sql.rs",
            "fn f() { let _ = crate::config::Config::default(); axum::http::StatusCode::OK; }"
        ),
        [
            "db/sql.rs: crate::config::Config::default",
            "db/sql.rs: axum::http::StatusCode::OK"
        ]
    );
    // `super` out of the layer.
    assert_eq!(
        found("domain/listing/mod.rs", "use super::super::api::AppState;"),
        ["domain/listing/mod.rs: crate::api::AppState"]
    );
    // Inline modules: `super` from `mod tests` stays in the file's module.
    assert!(found("domain/mod.rs", "mod tests { use super::*; }").is_empty());
    // Storage may not read the HTTP layer's state.
    assert_eq!(
        found(
            "db/sqlite/reads.rs",
            "let s = crate::middleware::request_started();"
        ),
        ["db/sqlite/reads.rs: crate::middleware::request_started"]
    );
    assert_eq!(
        found(
            "db/sqlite/reads.rs",
            "use crate::middleware::current_request_id;"
        ),
        ["db/sqlite/reads.rs: crate::middleware::current_request_id"]
    );
    // `auth` may not reach the HTTP layer; `crate::app` is for the root.
    assert_eq!(
        found("auth/mod.rs", "use crate::{api::AppState, config::Secret};"),
        ["auth/mod.rs: crate::api::AppState"]
    );
    assert_eq!(
        found("metrics.rs", "use crate::app::AppState;"),
        ["metrics.rs: crate::app::AppState"]
    );
    assert!(found("cli.rs", "use crate::app::Application;").is_empty());
    // Comments, doc comments and strings are not code.
    let quiet = "// use axum::Router;\n/// [`crate::api::AppState`]\n/* crate::app */\n\
                 const S: &str = \"axum::Router\"; const R: &str = r#\"crate::api\"#;\n\
                 fn f<'a>(c: char) -> bool { c == '\"' || c == '\\'' }";
    assert!(found("domain/task.rs", quiet).is_empty());
}

/// Every rule `file` (a path under `src/`) breaks, as `file: path`.
fn check(file: &str, text: &str) -> Vec<String> {
    let layer = file.split('/').next().unwrap_or_default();
    let rule = RULES.iter().find(|r| r.dir == layer);
    let mut violations = Vec::new();
    for path in paths(&module_of(file), &strip(text)) {
        let named = path.join("::");
        let bad = match path.first().map(String::as_str) {
            Some("crate") => {
                let module = path.get(1).map(String::as_str).unwrap_or_default();
                let by_rule = rule.is_some_and(|r| !r.modules.contains(&module));
                let app = module == "app" && !MAY_NAME_APP.contains(&file);
                by_rule || app
            }
            Some(krate) => rule.is_some_and(|r| r.crates.contains(&krate)),
            None => false,
        };
        if bad {
            violations.push(format!("{file}: {named}"));
        }
    }
    violations
}

/// The module path of a file under `src/` (`db/migrations/mod.rs` →
/// `db::migrations`; `lib.rs` → the crate root).
fn module_of(file: &str) -> Vec<String> {
    let mut parts: Vec<String> = file
        .trim_end_matches(".rs")
        .split('/')
        .map(str::to_owned)
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// Source text with comments, string and character literals blanked out.
fn strip(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            let end = rest.find('\n').map_or(b.len(), |n| i + n);
            i = end;
        } else if rest.starts_with("/*") {
            let mut depth = 0;
            while i < b.len() {
                if text[i..].starts_with("/*") {
                    depth += 1;
                    i += 2;
                } else if text[i..].starts_with("*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if let Some(len) = raw_string(rest) {
            i += len;
            out.push_str("\"\"");
        } else if b[i] == b'"' || (b[i] == b'b' && rest.starts_with("b\"")) {
            i += if b[i] == b'b' { 2 } else { 1 };
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' {
            // A character literal ('x', '\n', '\'', '"'), else a lifetime.
            let close = if rest.starts_with("'\\") {
                rest.get(3..).and_then(|r| r.find('\'')).map(|n| n + 4)
            } else {
                rest.chars()
                    .nth(2)
                    .filter(|c| *c == '\'')
                    .map(|_| 2 + rest[1..].chars().next().map_or(1, char::len_utf8))
            };
            match close {
                Some(len) => {
                    i += len;
                    out.push_str("' '");
                }
                None => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// The length of a raw string literal (`r"…"`, `r#"…"#`, `br"…"`) at the
/// start of `text`, if one starts there.
fn raw_string(text: &str) -> Option<usize> {
    let after_b = text.strip_prefix('b').unwrap_or(text);
    let body = after_b.strip_prefix('r')?;
    let hashes = body.len() - body.trim_start_matches('#').len();
    let open = &body[hashes..];
    if !open.starts_with('"') {
        return None;
    }
    let close = format!("\"{}", "#".repeat(hashes));
    let end = open[1..].find(&close)? + 1 + close.len();
    Some(text.len() - after_b.len() + 1 + hashes + end)
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Punct(&'static str),
    Other,
}

fn tokens(code: &str) -> Vec<Token> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Token::Ident(chars[start..i].iter().collect()));
            continue;
        }
        if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push(Token::Punct("::"));
            i += 2;
            continue;
        }
        match c {
            '{' => out.push(Token::Punct("{")),
            '}' => out.push(Token::Punct("}")),
            ',' => out.push(Token::Punct(",")),
            ';' => out.push(Token::Punct(";")),
            '*' => out.push(Token::Punct("*")),
            c if c.is_whitespace() => {}
            _ => out.push(Token::Other),
        }
        i += 1;
    }
    out
}

/// Every path named in `code`, made absolute where it starts with `crate`,
/// `self` or `super` (then it starts with `crate`); other paths are left as
/// written (their first segment is a crate or a local name).
fn paths(file_module: &[String], code: &str) -> Vec<Vec<String>> {
    let tokens = tokens(code);
    let mut found = Vec::new();
    // Inline modules (`mod tests { … }`) and the brace depth each opened at.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0;
    let mut i = 0;
    while i < tokens.len() {
        let module: Vec<String> = file_module
            .iter()
            .cloned()
            .chain(inline.iter().map(|(name, _)| name.clone()))
            .collect();
        match &tokens[i] {
            Token::Ident(word) if word == "use" => {
                let end = tokens[i..]
                    .iter()
                    .position(|t| *t == Token::Punct(";"))
                    .map_or(tokens.len(), |n| i + n);
                let mut trees = Vec::new();
                use_tree(&tokens[i + 1..end], &[], &mut trees);
                found.extend(trees.into_iter().map(|p| absolute(&module, p)));
                i = end + 1;
                continue;
            }
            Token::Ident(word)
                if word == "mod"
                    && matches!(tokens.get(i + 1), Some(Token::Ident(_)))
                    && tokens.get(i + 2) == Some(&Token::Punct("{")) =>
            {
                if let Some(Token::Ident(name)) = tokens.get(i + 1) {
                    inline.push((name.clone(), depth));
                }
                depth += 1;
                i += 3;
                continue;
            }
            Token::Ident(first)
                if (i == 0 || tokens[i - 1] != Token::Punct("::"))
                    && tokens.get(i + 1) == Some(&Token::Punct("::")) =>
            {
                let mut path = vec![first.clone()];
                let mut j = i + 1;
                while tokens.get(j) == Some(&Token::Punct("::")) {
                    match tokens.get(j + 1) {
                        Some(Token::Ident(next)) => path.push(next.clone()),
                        _ => break,
                    }
                    j += 2;
                }
                found.push(absolute(&module, path));
                i = j;
                continue;
            }
            Token::Punct("{") => depth += 1,
            Token::Punct("}") => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|(_, at)| *at == depth) {
                    inline.pop();
                }
            }
            _ => {}
        }
        i += 1;
    }
    found
}

/// Expands a `use` tree (the tokens between `use` and `;`) into its paths.
fn use_tree(tokens: &[Token], prefix: &[String], out: &mut Vec<Vec<String>>) {
    let mut path = prefix.to_vec();
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i] {
            Token::Ident(word) if word == "as" => i += 1, // skip the new name
            Token::Ident(segment) => path.push(segment.clone()),
            Token::Punct("*") => path.push("*".to_owned()),
            Token::Punct("{") => {
                // Split the group at top-level commas and expand each part.
                let mut level = 0;
                let mut start = i + 1;
                let mut j = i + 1;
                while j < tokens.len() {
                    match tokens[j] {
                        Token::Punct("{") => level += 1,
                        Token::Punct("}") if level == 0 => break,
                        Token::Punct("}") => level -= 1,
                        Token::Punct(",") if level == 0 => {
                            use_tree(&tokens[start..j], &path, out);
                            start = j + 1;
                        }
                        _ => {}
                    }
                    j += 1;
                }
                use_tree(&tokens[start..j], &path, out);
                return;
            }
            _ => {}
        }
        i += 1;
    }
    if path.len() > prefix.len() {
        out.push(path);
    }
}

/// `path` with a leading `self`/`super` resolved against `module`, and a
/// leading `crate` kept; anything else as written.
fn absolute(module: &[String], path: Vec<String>) -> Vec<String> {
    let first = path.first().map(String::as_str);
    if !matches!(first, Some("self" | "super")) {
        return path;
    }
    let mut base: Vec<String> = module.to_vec();
    let mut rest = path.as_slice();
    while let Some((head, tail)) = rest.split_first() {
        match head.as_str() {
            "self" => {}
            "super" => {
                base.pop();
            }
            _ => break,
        }
        rest = tail;
    }
    std::iter::once("crate".to_owned())
        .chain(base)
        .chain(rest.iter().cloned())
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}
