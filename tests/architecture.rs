//! The shape docs/contributors/architecture.md describes, checked on the source so that it
//! stays true: no import cycle among the top-level modules, the SIP core imports nothing of
//! the compliance side, the shared basics import only each other, and no function in `src/`
//! runs past 80 lines without a `// Long:` comment saying why.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What the SIP core may use: the shared basics that know nothing of calls' compliance.
const SIP_MAY_USE: &[&str] = &["hashing", "metrics", "tls"];
/// The shared basics, underneath everything else.
const BASICS: &[&str] = &["call", "clock", "hashing", "journal", "number", "tls"];
const MAX_FUNCTION_LINES: usize = 80;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Each file's top-level module and its text up to its unit tests (`main.rs` only when asked:
/// the binary is no module).
fn sources(with_main: bool) -> Vec<(String, PathBuf, String)> {
    let mut files = Vec::new();
    rust_files(Path::new("src"), &mut files);
    files.sort();
    files
        .into_iter()
        .filter(|p| !p.ends_with("lib.rs") && (with_main || !p.ends_with("main.rs")))
        .map(|p| {
            let rel = p.strip_prefix("src").unwrap();
            let first = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy();
            let module = first.trim_end_matches(".rs").to_string();
            let text = std::fs::read_to_string(&p).unwrap();
            let code = match text.find("#[cfg(test)]") {
                Some(i) => text[..i].to_string(),
                None => text,
            };
            (module, p, code)
        })
        .collect()
}

/// Top-level module -> the other top-level modules it names as `crate::x`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, _, code) in sources(false) {
        let deps = graph.entry(module.clone()).or_default();
        for (i, _) in code.match_indices("crate::") {
            let name: String = code[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name != module {
                deps.insert(name);
            }
        }
    }
    graph
}

fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == n) {
            let mut cycle = path[at..].to_vec();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for d in graph.get(n).into_iter().flatten() {
            if let Some(c) = visit(d, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_import_cycle_among_the_top_level_modules() {
    let graph = imports();
    assert!(graph.len() > 10, "found the modules: {graph:?}");
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import cycle: {}", cycle.join(" -> "));
    }
}

#[test]
fn the_sip_core_imports_nothing_of_the_compliance_side() {
    let graph = imports();
    let extra: Vec<_> = graph["sip"]
        .iter()
        .filter(|d| !SIP_MAY_USE.contains(&d.as_str()))
        .collect();
    assert!(extra.is_empty(), "sip imports {extra:?}");
}

#[test]
fn the_shared_basics_import_only_each_other() {
    let graph = imports();
    for basic in BASICS {
        let extra: Vec<_> = graph[*basic]
            .iter()
            .filter(|d| !BASICS.contains(&d.as_str()))
            .collect();
        assert!(extra.is_empty(), "{basic} imports {extra:?}");
    }
}

/// `(file, line, name, length)` of every function body longer than the limit that has no
/// `// Long:` comment in the lines just above it.
fn long_functions() -> Vec<(PathBuf, usize, String, usize)> {
    let mut found = Vec::new();
    for (_, path, code) in sources(true) {
        let lines: Vec<&str> = code.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let Some(name) = function_name(line) else {
                continue;
            };
            let indent = line.len() - line.trim_start().len();
            let close = " ".repeat(indent) + "}";
            let end = lines[i + 1..]
                .iter()
                .position(|l| l.trim_end() == close)
                .map(|k| i + 1 + k);
            let Some(end) = end else { continue };
            let length = end - i + 1;
            let explained = lines[..i]
                .iter()
                .rev()
                .take_while(|l| {
                    let t = l.trim_start();
                    t.starts_with("//") || t.starts_with("#[")
                })
                .any(|l| l.contains("// Long:"));
            if length > MAX_FUNCTION_LINES && !explained {
                found.push((path.clone(), i + 1, name, length));
            }
        }
    }
    found
}

fn function_name(line: &str) -> Option<String> {
    let t = line.trim_start();
    let t = t
        .strip_prefix("pub(crate) ")
        .or_else(|| t.strip_prefix("pub(super) "))
        .or_else(|| t.strip_prefix("pub "))
        .unwrap_or(t);
    let t = t.strip_prefix("async ").unwrap_or(t);
    let rest = t.strip_prefix("fn ")?;
    if line.trim_end().ends_with(';') {
        return None;
    }
    Some(
        rest.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect(),
    )
}

#[test]
fn no_function_runs_past_80_lines_without_saying_why() {
    let long = long_functions();
    let list: Vec<String> = long
        .iter()
        .map(|(p, line, name, n)| format!("{}:{line} {name} ({n} lines)", p.display()))
        .collect();
    assert!(
        list.is_empty(),
        "split these or say why (`// Long: ...`):\n{}",
        list.join("\n")
    );
}
