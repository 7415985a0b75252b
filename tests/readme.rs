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

/// The README's TSR table names only fields the call-record export has.
#[test]
fn the_tsr_table_names_export_columns() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    let table = readme
        .split("### TSR 310.5(a)(2): where each item is")
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
