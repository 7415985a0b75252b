//! The README and the book (`docs/`) stay true to the data they describe, and their links
//! lead somewhere.

use std::path::{Path, PathBuf};

const ENFORCES: &str = "docs/compliance/enforces.md";
const CALL_RECORDS: &str = "docs/compliance/call-records.md";

#[test]
fn the_book_lists_every_shipped_rule() {
    let readme = std::fs::read_to_string(ENFORCES).unwrap();
    let rules = std::fs::read_to_string("config/rules.toml").unwrap();
    let ids: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("id = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .collect();
    assert!(ids.len() > 20, "{ids:?}");
    let missing: Vec<_> = ids
        .iter()
        .filter(|id| !readme.contains(&format!("| `{id}` |")))
        .collect();
    assert!(
        missing.is_empty(),
        "rules missing from the table in {ENFORCES}: {missing:?}"
    );
}

#[test]
fn the_readme_names_no_missing_file() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    for path in [
        "docs/compliance-rules.md",
        "config/rules.toml",
        "tests/sipp/uac_expect_dnc.xml",
        "tests/sipp/uac_allow.xml",
        "LICENSE",
    ] {
        assert!(std::path::Path::new(path).exists(), "{path}");
        assert!(readme.contains(path), "{path} not in the README");
    }
}

/// The TSR table names only fields the call-record export has.
#[test]
fn the_tsr_table_names_export_columns() {
    let readme = std::fs::read_to_string(CALL_RECORDS).unwrap();
    let table = readme
        .split("## TSR 310.5(a)(2): where each item is")
        .nth(1)
        .expect("the TSR table's heading");
    let rows: Vec<&str> = table
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .collect();
    assert!(rows.len() >= 13, "{rows:?}");
    for row in rows {
        let field = row.split('|').nth(2).unwrap();
        if field.trim().starts_with("not yet") {
            continue;
        }
        // Fields come first; what follows in parentheses explains them (`consumer` is a value).
        let fields = field.split('(').next().unwrap();
        let names: Vec<&str> = fields.split('`').skip(1).step_by(2).collect();
        assert!(!names.is_empty(), "no field named in {row}");
        for name in names {
            assert!(
                callgate::records::export::CSV_COLUMNS.contains(&name),
                "`{name}` ({row}) is not a column of `callgate records export`"
            );
        }
    }
}

/// Every Markdown file of the book, and the README.
fn pages() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "md") {
                out.push(p);
            }
        }
    }
    let mut out = vec![PathBuf::from("README.md")];
    walk(Path::new("docs"), &mut out);
    out.sort();
    out
}

/// The targets of `[text](target)` links in a page (code blocks and spans skipped).
fn links(text: &str) -> Vec<String> {
    let mut out = vec![];
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        }
        if fenced || line.starts_with("    ") {
            continue;
        }
        let prose: String = line.split('`').step_by(2).collect::<Vec<_>>().join("");
        for (i, _) in prose.match_indices("](") {
            let rest = &prose[i + 2..];
            if let Some(end) = rest.find(')') {
                out.push(rest[..end].to_string());
            }
        }
    }
    out
}

/// mdBook's id for a heading: lower case, spaces as dashes, other punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(page: &Path) -> Vec<String> {
    std::fs::read_to_string(page)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| anchor(l.trim_start_matches('#').replace('`', "").as_str()))
        .collect()
}

#[test]
fn every_link_in_the_readme_and_the_book_leads_to_a_page_and_heading_that_exist() {
    let mut broken = vec![];
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        for link in links(&text) {
            if link.starts_with("http://")
                || link.starts_with("https://")
                || link.starts_with("mailto:")
            {
                continue;
            }
            let (file, frag) = link.split_once('#').unwrap_or((&link, ""));
            let target = match file {
                "" => page.clone(),
                f => page.parent().unwrap().join(f),
            };
            if !target.is_file() {
                broken.push(format!("{}: {link} (no such file)", page.display()));
            } else if !frag.is_empty() && !anchors(&target).contains(&frag.to_string()) {
                broken.push(format!("{}: {link} (no such heading)", page.display()));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn every_page_of_the_book_is_in_its_summary() {
    let summary = std::fs::read_to_string("docs/SUMMARY.md").unwrap();
    let listed = links(&summary);
    let orphans: Vec<String> = pages()
        .into_iter()
        .filter(|p| p.starts_with("docs") && !p.ends_with("SUMMARY.md"))
        .map(|p| {
            p.strip_prefix("docs")
                .unwrap()
                .to_string_lossy()
                .trim_start_matches('/')
                .to_string()
        })
        .filter(|p| !listed.contains(p))
        .collect();
    assert!(
        orphans.is_empty(),
        "pages not in docs/SUMMARY.md: {orphans:?}"
    );
}

#[test]
fn the_readme_stays_short_and_links_each_readers_part() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    assert!(
        readme.lines().count() <= 200,
        "{} lines",
        readme.lines().count()
    );
    for part in [
        "docs/operators/",
        "docs/compliance/",
        "docs/contributors/",
        "docs/reference/",
    ] {
        assert!(readme.contains(&format!("]({part}")), "no link into {part}");
    }
}

/// The page is what the binary generates now; `CALLGATE_BLESS=1` rewrites it instead.
fn generated_page_is_current(page: &str, args: &[&str]) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_callgate"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let now = String::from_utf8(out.stdout).unwrap();
    if std::env::var_os("CALLGATE_BLESS").is_some() {
        std::fs::write(page, &now).unwrap();
    }
    let written = std::fs::read_to_string(page).unwrap_or_default();
    assert!(
        written == now,
        "{page} differs from `callgate {}`: run `CALLGATE_BLESS=1 cargo test --test docs` and commit it",
        args.join(" ")
    );
}

#[test]
fn the_configuration_page_is_what_callgate_config_reference_prints() {
    generated_page_is_current("docs/reference/configuration.md", &["config", "reference"]);
}

#[test]
fn the_metrics_page_is_what_callgate_metrics_reference_prints() {
    generated_page_is_current("docs/reference/metrics.md", &["metrics", "reference"]);
}

#[test]
fn the_command_line_page_is_every_commands_help() {
    generated_page_is_current("docs/reference/cli.md", &["man", "--markdown"]);
}

/// `config/callgate.toml` says it shows every setting: each key of the reference is in it
/// (set, or commented out when it has no default).
#[test]
fn the_sample_configuration_shows_every_key() {
    let reference = std::fs::read_to_string("docs/reference/configuration.md").unwrap();
    let sample = std::fs::read_to_string("config/callgate.toml").unwrap();
    // Each table's keys in the sample, commented out or not.
    let mut shown = std::collections::BTreeSet::new();
    let mut table = "";
    for line in sample.lines() {
        // A table of a list shown commented out (`# [[admin.user]]`) shows its key too.
        let line = match line.strip_prefix("# [[") {
            Some(_) => &line[2..],
            None => line,
        };
        if line.starts_with('[') {
            table = line.trim();
            // A sub-table (`[dialers.names]`) shows the key `names` of `[dialers]`.
            if let Some((outer, key)) = table.trim_matches(['[', ']']).split_once('.') {
                shown.insert(format!("[{outer}] {key}"));
            }
        } else if let Some((key, _)) = line.trim_start_matches("# ").split_once(" = ") {
            shown.insert(format!("{table} {key}"));
        }
    }
    let mut section = String::new();
    let mut missing = vec![];
    for line in reference.lines() {
        if let Some(h) = line.strip_prefix("## `") {
            section = h.trim_end_matches('`').to_string();
        } else if let Some(row) = line.strip_prefix("| `") {
            let key = format!("{section} {}", row.split('`').next().unwrap());
            // The keys of a list's table entries (`caller_ids[].number`) are the list's.
            if !key.contains("[].") && !shown.contains(&key) {
                missing.push(key);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "keys config/callgate.toml does not show: {missing:?}"
    );
}
