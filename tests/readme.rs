//! The README stays true to the data it describes.

#[test]
fn the_readme_lists_every_shipped_rule() {
    let readme = std::fs::read_to_string("README.md").unwrap();
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
        "rules missing from the README's table: {missing:?}"
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
