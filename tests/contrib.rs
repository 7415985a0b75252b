//! What `contrib/` ships for a VoIP team's monitoring: the Prometheus alert rules (checked and
//! unit-tested by the real `promtool`) and the Grafana dashboard (its queries checked as PromQL
//! by promtool), and every metric either names exists in callgate's own `/metrics`, so a renamed
//! metric fails here instead of silencing an alert or blanking a panel.

mod common;
#[path = "support/pki.rs"]
mod pki;

use common::Harness;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

const RULES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/contrib/prometheus/callgate-rules.yml"
);
const RULE_TESTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/contrib/prometheus/callgate-rules.test.yml"
);
const DASHBOARD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/grafana/callgate.json");

/// promtool with these arguments; FAILS (never skips) when it is not installed.
fn promtool(args: &[&str], dir: &Path) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("promtool is not installed ({e}): scripts/test.sh installs Debian's `prometheus` package"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    text
}

/// Every query of the dashboard: panel targets (rows' nested panels too) and the template
/// variables' queries.
fn dashboard_queries() -> Vec<String> {
    fn panels(list: &serde_json::Value, exprs: &mut Vec<String>) {
        for p in list.as_array().into_iter().flatten() {
            for t in p["targets"].as_array().into_iter().flatten() {
                exprs.push(t["expr"].as_str().unwrap().to_string());
            }
            panels(&p["panels"], exprs);
        }
    }
    let d: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(DASHBOARD).unwrap()).unwrap();
    let mut exprs = vec![];
    panels(&d["panels"], &mut exprs);
    for v in d["templating"]["list"].as_array().into_iter().flatten() {
        if let Some(q) = v["query"]["query"].as_str() {
            exprs.push(q.to_string());
        }
    }
    exprs
}

/// Every `callgate_*` name in a text.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, _) in text.match_indices("callgate_") {
        let name: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        names.insert(name);
    }
    names
}

#[test]
fn the_alert_rules_pass_promtool_check() {
    let text = promtool(&["check", "rules", RULES], Path::new("."));
    assert!(text.contains("SUCCESS"), "{text}");
}

#[test]
fn the_alert_rules_fire_as_their_unit_tests_expect() {
    let dir = Path::new(RULE_TESTS).parent().unwrap();
    promtool(&["test", "rules", "callgate-rules.test.yml"], dir);
}

/// Grafana's variables replaced by what they stand for, each panel query becomes a recording
/// rule that promtool parses.
#[test]
fn every_dashboard_query_is_valid_promql() {
    let dir = tempfile::tempdir().unwrap();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    // label_values(...) is Grafana's, not PromQL: its metric is checked by the next test.
    let promql = dashboard_queries()
        .into_iter()
        .filter(|q| !q.starts_with("label_values("));
    for (i, e) in promql.enumerate() {
        let e = e
            .replace("$__rate_interval", "5m")
            .replace("$instance", ".*");
        let quoted = serde_json::to_string(&e).unwrap();
        rules += &format!("      - record: dashboard:query{i}\n        expr: {quoted}\n");
    }
    std::fs::write(dir.path().join("dashboard.yml"), rules).unwrap();
    promtool(&["check", "rules", "dashboard.yml"], dir.path());
}

/// A callgate with TLS (so the certificate expiry is exported) that has handled a call: every
/// metric named by the rules or the dashboard is in its `/metrics`.
#[test]
fn every_metric_the_rules_and_the_dashboard_name_is_exported() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    common::write_data(d, Some(2));
    let pki = pki::Pki::new("contrib test CA");
    let leaf = pki.leaf(d, "sip", &["callgate.test", "127.0.0.1"]);
    let extra = format!(
        "[tls]\nlisten = \"127.0.0.1:0\"\ncert = \"{}\"\nkey = \"{}\"\n",
        leaf.cert.display(),
        leaf.key.display()
    );
    let h = Harness::in_dir(d.to_path_buf(), &extra);
    h.send_dialer(&h.invite("2125550100", "contrib-metrics-1"));
    assert!(h.recv_carrier().is_some(), "the call was not forwarded");
    let (status, body) = h.http("GET", "/metrics", "");
    assert_eq!(status, 200);
    let exported: BTreeSet<String> = body
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    let named = metric_names(&std::fs::read_to_string(RULES).unwrap())
        .into_iter()
        .chain(
            dashboard_queries()
                .into_iter()
                .flat_map(|q| metric_names(&q)),
        );
    let missing: Vec<String> = named
        .filter(|n| {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| n.strip_suffix(s))
                .unwrap_or(n);
            !exported.contains(n) && !exported.contains(base)
        })
        .collect();
    assert!(missing.is_empty(), "named but not exported: {missing:?}");
}
