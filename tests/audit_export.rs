//! `callgate audit export` as an auditor uses it, on records made by real calls through the
//! proxy: every filter, every CSV column, and the command line's answers to bad input.

mod common;

use callgate::audit::chain::audit_files;
use callgate::audit::verify::{export, Filter};
use callgate::call::Verdict;
use common::*;
use std::path::PathBuf;
use std::process::Command;

const CAMPAIGNS: &str =
    "\n[[campaign]]\nid = \"default\"\n\n[[campaign]]\nid = \"survey\"\npurpose = \"informational\"\n";

/// Three calls: allowed (default campaign), blocked on the national list (default), and the
/// same listed number for the informational survey campaign, which the list does not concern.
fn three_calls() -> Harness {
    let h = Harness::with(Some(2), CAMPAIGNS);
    let call = |number: &str, id: &str, campaign: Option<&str>| {
        let mut inv = h
            .invite(number, id)
            .replace("z9hG4bK-1", &format!("z9hG4bK-{id}"));
        if let Some(c) = campaign {
            inv = inv.replace("CSeq:", &format!("X-Callgate-Campaign: {c}\r\nCSeq:"));
        }
        h.send_dialer(&inv);
    };
    call("4155550100", "exp-allowed", None);
    assert!(h.recv_carrier().is_some());
    call("2125550143", "exp-blocked", None);
    assert!(h.recv_dialer_final().unwrap().contains(" 603 "));
    call("2125550143", "exp-survey", Some("survey"));
    assert!(h.recv_carrier().is_some());
    h.run().app.audit.flush();
    h
}

fn files(h: &Harness) -> Vec<PathBuf> {
    audit_files(&h.dir.join("audit")).unwrap()
}

/// The call ids of the records `filter` keeps.
fn kept(h: &Harness, filter: &Filter) -> Vec<String> {
    let mut out = Vec::new();
    export(&files(h), filter, false, &mut out).unwrap();
    let mut ids: Vec<String> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter_map(|r| r["call_id"].as_str().map(str::to_string))
        .collect();
    ids.sort();
    ids
}

/// The CSV export as rows of column -> value, by call id.
fn csv_rows(
    h: &Harness,
) -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>> {
    let mut out = Vec::new();
    export(&files(h), &Filter::default(), true, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let mut lines = text.lines();
    let head: Vec<String> = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    lines
        .map(|l| {
            let row: std::collections::BTreeMap<String, String> = head
                .iter()
                .cloned()
                .zip(l.split(',').map(str::to_string))
                .collect();
            (row["call_id"].clone(), row)
        })
        .collect()
}

fn record_ts(h: &Harness) -> chrono::DateTime<chrono::Utc> {
    let r = h
        .audit_lines()
        .into_iter()
        .find(|r| r["call_id"] == "exp-allowed")
        .unwrap();
    r["ts"].as_str().unwrap().parse().unwrap()
}

#[test]
fn the_campaign_filter_finds_the_campaigns_calls() {
    let h = three_calls();
    let survey = Filter {
        campaign: Some("survey".into()),
        ..Filter::default()
    };
    assert_eq!(kept(&h, &survey), ["exp-survey"]);
    let default = Filter {
        campaign: Some("default".into()),
        ..Filter::default()
    };
    assert_eq!(kept(&h, &default), ["exp-allowed", "exp-blocked"]);
}

#[test]
fn the_verdict_filter_finds_the_blocked_call() {
    let h = three_calls();
    let f = Filter {
        verdict: Some(Verdict::Blocked),
        ..Filter::default()
    };
    assert_eq!(kept(&h, &f), ["exp-blocked"]);
}

#[test]
fn the_number_filter_finds_every_call_to_the_number() {
    let h = three_calls();
    let f = Filter {
        number: Some("+12125550143".into()),
        ..Filter::default()
    };
    assert_eq!(kept(&h, &f), ["exp-blocked", "exp-survey"]);
}

#[test]
fn the_time_filters_bound_the_records() {
    let h = three_calls();
    let ts = record_ts(&h);
    let hour = chrono::Duration::hours(1);
    let around = Filter {
        from: Some(ts - hour),
        to: Some(ts + hour),
        ..Filter::default()
    };
    assert_eq!(kept(&h, &around).len(), 3);
    let later = Filter {
        from: Some(ts + hour),
        ..Filter::default()
    };
    assert!(kept(&h, &later).is_empty());
    let earlier = Filter {
        to: Some(ts - hour),
        ..Filter::default()
    };
    assert!(kept(&h, &earlier).is_empty());
}

#[test]
fn every_csv_column_carries_the_record() {
    let h = three_calls();
    let rows = csv_rows(&h);
    let blocked = &rows["exp-blocked"];
    let allowed = &rows["exp-allowed"];
    let survey = &rows["exp-survey"];
    for row in [blocked, allowed, survey] {
        for col in [
            "id",
            "ts",
            "call_id",
            "source",
            "from",
            "called_raw",
            "list_versions",
        ] {
            assert!(!row[col].is_empty(), "{col} empty in {row:?}");
        }
        assert_eq!(row["source_cert"], "", "a UDP dialer has no certificate");
        assert_eq!(row["fail_open"], "false");
        assert_eq!(row["optouts_seq"], "0");
    }
    assert_eq!(blocked["called_e164"], "+12125550143");
    assert_eq!(blocked["campaign"], "default");
    assert_eq!(blocked["verdict"], "blocked");
    assert_eq!(blocked["reasons"], "national_dnc");
    assert_eq!(blocked["sip_status"], "603");
    assert_eq!(blocked["lists_hit"], "national");
    assert_eq!(allowed["verdict"], "allowed");
    assert_eq!(
        allowed["sip_status"], "",
        "forwarded: callgate answered nothing"
    );
    assert_eq!(allowed["lists_hit"], "");
    assert_eq!(survey["campaign"], "survey");
    assert_eq!(survey["verdict"], "allowed");
}

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_callgate"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_command_line_filters_by_campaign() {
    let h = three_calls();
    let dir = h.dir.join("audit");
    let out = cli(&[
        "audit",
        "export",
        dir.to_str().unwrap(),
        "--campaign",
        "survey",
        "--format",
        "csv",
    ]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.lines().nth(1).unwrap().contains(",survey,"), "{text}");
}

#[test]
fn a_day_given_to_to_includes_that_day() {
    let h = three_calls();
    let dir = h.dir.join("audit");
    let day = record_ts(&h).format("%Y-%m-%d").to_string();
    let out = cli(&["audit", "export", dir.to_str().unwrap(), "--to", &day]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 3);
}

#[test]
fn an_unknown_verdict_is_an_error_not_an_empty_export() {
    let h = three_calls();
    let dir = h.dir.join("audit");
    let out = cli(&[
        "audit",
        "export",
        dir.to_str().unwrap(),
        "--verdict",
        "bogus",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("--verdict `bogus`"), "{err}");
    assert!(out.stdout.is_empty());
}
