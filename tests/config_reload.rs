//! SIGHUP re-reads the configuration: live settings change at once, a broken file changes
//! nothing and says where it is broken, settings that need a restart are named.

mod common;

use common::*;

fn reload_with(h: &Harness, extra: &str) -> anyhow::Result<Vec<&'static str>> {
    let path = h.dir.join("callgate.toml");
    let carrier = h.carrier.local_addr().unwrap();
    std::fs::write(&path, config_text(&h.dir, carrier, extra)).unwrap();
    h.run().app.reload_config(&path, "test".into())
}

fn new_invites(h: &Harness, tag: &str, n: usize) -> usize {
    for i in 0..n {
        h.send_dialer(
            &h.invite("4155550100", &format!("{tag}-{i}"))
                .replace("z9hG4bK-1", &format!("z9hG4bK-{tag}-{i}")),
        );
    }
    let mut rejected = 0;
    while let Some(r) = h.recv_dialer() {
        if r.starts_with("SIP/2.0 503") {
            rejected += 1;
        }
    }
    rejected
}

#[test]
fn a_reloaded_rate_limit_applies_to_the_next_calls() {
    let h = Harness::start();
    assert_eq!(new_invites(&h, "before", 3), 0);
    let restart = reload_with(
        &h,
        "[dialers]\nallow = [\"127.0.0.0/8\"]\nmax_calls_per_second = 1\nburst = 0\n",
    )
    .unwrap();
    assert!(restart.is_empty(), "{restart:?}");
    assert_eq!(new_invites(&h, "after", 3), 2);
}

#[test]
fn a_broken_file_keeps_the_running_configuration_and_says_where() {
    let h = Harness::start();
    let e = reload_with(&h, "[policy]\non_stale_list = \"maybe\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("callgate.toml:") && e.contains("policy.on_stale_list"),
        "{e}"
    );
    assert_eq!(new_invites(&h, "kept", 2), 0);
    let (_, metrics) = h.http("GET", "/metrics", "");
    assert!(
        metrics.contains("callgate_config_reloads_total{result=\"error\"} 1"),
        "{metrics}"
    );
}

#[test]
fn settings_that_need_a_restart_are_named() {
    let h = Harness::start();
    let restart = reload_with(&h, "tcp = false\n").unwrap();
    assert_eq!(restart, vec!["sip"]);
}

#[test]
fn joining_a_shared_database_is_named_as_needing_a_restart() {
    let h = Harness::start();
    let shared = "[shared]\nurl = \"postgres://callgate@db1/callgate\"\n";
    assert_eq!(reload_with(&h, shared).unwrap(), vec!["shared"]);
}

#[test]
fn a_config_reload_is_an_audited_admin_change() {
    let h = Harness::start();
    reload_with(&h, "").unwrap();
    let lines = h.audit_lines();
    let admin = lines
        .iter()
        .find_map(|l| l.get("admin"))
        .expect("an admin record");
    assert_eq!(admin["action"], "config_reload");
    assert_eq!(admin["who"], "test");
}

#[test]
fn upstream_sources_are_treated_as_the_upstream_side() {
    let h = Harness::start();
    // A second carrier address, inside the dialers' 127.0.0.0/8.
    let other = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
    other
        .set_read_timeout(Some(std::time::Duration::from_millis(1500)))
        .unwrap();
    let send = |call: &str| {
        let inv = invite_msg(
            &format!("sip:2125550143@{}", h.proxy_addr()),
            call,
            other.local_addr().unwrap(),
            &format!("z9hG4bK-{call}"),
        );
        other.send_to(inv.as_bytes(), h.proxy_addr()).unwrap();
        recv_final(&other).unwrap()
    };
    // As a dialer: the outbound policy blocks the listed number.
    assert!(send("as-dialer").starts_with("SIP/2.0 603"));
    let carrier = h.carrier.local_addr().unwrap();
    let text = config_text(&h.dir, carrier, "")
        .replace("[upstream]\n", "[upstream]\nsources = [\"127.0.0.2/32\"]\n");
    let path = h.dir.join("callgate.toml");
    std::fs::write(&path, text).unwrap();
    let restart = h.run().app.reload_config(&path, "test".into()).unwrap();
    assert!(restart.is_empty(), "{restart:?}");
    // As the upstream: an inbound call, no outbound policy (addressed to callgate: 404 here).
    assert!(send("as-upstream").starts_with("SIP/2.0 404"));
}

/// Rules are data: a state rule added to the rules file applies after a reload, no code change;
/// a broken rules file is refused with its file, line and key, and the rules in force stay.
#[test]
fn a_state_rule_added_to_the_rules_file_applies_after_a_reload() {
    let h = Harness::start();
    let rules = h.dir.join("rules.toml");
    let shipped = std::fs::read_to_string("config/rules.toml").unwrap();
    std::fs::write(&rules, &shipped).unwrap();
    let holidays = std::fs::canonicalize("config/holidays").unwrap();
    let policy = format!(
        "[policy]\nrules = \"{}\"\nholidays_dir = \"{}\"\n",
        rules.display(),
        holidays.display()
    );
    reload_with(&h, &policy).unwrap();
    let send = |tag: &str| {
        h.send_dialer(
            &h.invite("4155550100", tag)
                .replace("z9hG4bK-1", &format!("z9hG4bK-{tag}")),
        );
    };
    let call = |tag: &str| {
        send(tag);
        h.recv_dialer_final().unwrap()
    };
    send("r0");
    assert!(h.recv_carrier().unwrap().starts_with("INVITE "));
    std::fs::write(
        &rules,
        format!("{shipped}\n[[rule]]\nid = \"CA.test_closure\"\nkind = \"no_call\"\nstates = [\"CA\"]\nsource = \"test\"\n"),
    )
    .unwrap();
    reload_with(&h, &policy).unwrap();
    let r = call("r1");
    assert!(r.contains("no_call_rule"), "{r}");
    std::fs::write(&rules, format!("{shipped}\n[[rule]]\nid = \"X\"\nkind = \"hours\"\nstates = [\"CA\"]\nall_days = \"late\"\n")).unwrap();
    let e = reload_with(&h, &policy).unwrap_err().to_string();
    assert!(e.contains("rules.toml:") && e.contains("all_days"), "{e}");
    assert!(
        call("r2").contains("no_call_rule"),
        "the rules in force stay"
    );
}
