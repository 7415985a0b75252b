//! The command line's exit statuses, which scripts (and a guarded reload) rely on.

mod common;

use common::Kill;
use std::process::Command;

fn check(number: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_callgate"))
        .args(["check", number])
        // Inside the sample numbers' calling window, whatever the hour the test runs.
        .env("CALLGATE_FAKE_NOW", "2026-11-24T19:00:00Z")
        .output()
        .unwrap()
}

#[test]
fn check_exits_0_when_the_call_would_be_forwarded() {
    let out = check("4155550100");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("verdict:  allowed"));
}

#[test]
fn check_exits_1_when_the_call_would_be_blocked() {
    let out = check("2125550143");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("verdict:  blocked"));
}

#[test]
fn an_error_exits_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_callgate"))
        .args([
            "check",
            "--config",
            "/nonexistent/callgate.toml",
            "4155550100",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/callgate.toml"));
}

/// A working directory holding a copy of the repository's `config/`, its ports moved to
/// loopback ones free now, and `edit` applied to its `config/callgate.toml`.
fn working_dir(edit: impl Fn(String) -> String) -> (tempfile::TempDir, std::net::SocketAddr) {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(std::path::Path::new("config"), &tmp.path().join("config"));
    let admin = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let path = tmp.path().join("config/callgate.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("listen = \"0.0.0.0:5060\"", "listen = \"127.0.0.1:0\"")
        .replace(
            "listen = \"127.0.0.1:8080\"",
            &format!("listen = \"{admin}\""),
        );
    std::fs::write(&path, edit(text)).unwrap();
    (tmp, admin)
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

#[test]
fn without_config_the_working_directorys_config_callgate_toml_is_read() {
    let (dir, _) = working_dir(|t| t.replace("[sip]", "[sip]\nlisen = 1"));
    let out = Command::new(env!("CARGO_BIN_EXE_callgate"))
        .args(["check", "4155550100"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("config/callgate.toml:8:"), "{err}");
    assert!(err.contains("sip.lisen"), "{err}");
}

#[test]
fn run_names_the_file_in_use_and_sighup_rereads_it() {
    let (dir, admin) = working_dir(|t| t);
    let log = dir.path().join("callgate.log");
    let child = Command::new(env!("CARGO_BIN_EXE_callgate"))
        .arg("run")
        .current_dir(dir.path())
        .env("RUST_LOG", "info")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let child = Kill(child);
    let get = |path: &str| -> Option<String> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(admin).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut r = String::new();
        s.read_to_string(&mut r).ok()?;
        Some(r)
    };
    let wait_for = |what: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !what() {
            assert!(
                std::time::Instant::now() < deadline,
                "{}",
                std::fs::read_to_string(&log).unwrap()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    wait_for(&|| get("/healthz").is_some());
    let started = std::fs::read_to_string(&log).unwrap();
    assert!(
        started.contains("configuration: config/callgate.toml (found in the working directory"),
        "{started}"
    );
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.0.id() as libc::pid_t, libc::SIGHUP) };
    let reloaded = || {
        get("/metrics")
            .is_some_and(|m| m.contains("callgate_config_reloads_total{result=\"ok\"} 1"))
    };
    wait_for(&reloaded);
}

fn config_check(dir: &std::path::Path) -> std::process::Output {
    config_check_with(dir, &[])
}

fn config_check_with(dir: &std::path::Path, flags: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_callgate"))
        .args(["config", "check"])
        .args(flags)
        .current_dir(dir)
        .output()
        .unwrap()
}

/// The unit's check before a start or reload: a bad list file does not stop a start (its list
/// fails its calls closed), so it does not fail this check; a bad manifest does.
#[test]
fn config_check_without_list_files_passes_a_bad_list_file_but_not_a_bad_manifest() {
    let (dir, _) = working_dir(|t| t);
    let data = dir.path().join("config/sample-data");
    std::fs::write(data.join("national-dnc.txt"), "2125550143\nnot-a-number\n").unwrap();
    assert_eq!(config_check(dir.path()).status.code(), Some(1));
    let out = config_check_with(dir.path(), &["--no-list-files"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    std::fs::write(data.join("lists.toml"), "[[list]]\nid = 3\n").unwrap();
    let out = config_check_with(dir.path(), &["--no-list-files"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("lists.toml"));
}

#[test]
fn config_check_passes_the_shipped_configuration() {
    let (dir, _) = working_dir(|t| t);
    let out = config_check(dir.path());
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("OK: config/callgate.toml"));
}

#[test]
fn config_check_prints_every_error_with_its_file_and_line_and_exits_1() {
    let (dir, _) = working_dir(|t| t);
    let rules = dir.path().join("config/rules.toml");
    let text = std::fs::read_to_string(&rules).unwrap();
    let broken = text.replacen("all_days = \"08:00-21:00\"", "all_days = \"8-21\"", 1);
    std::fs::write(&rules, broken).unwrap();
    let list = dir.path().join("config/sample-data/national-dnc.txt");
    std::fs::write(&list, "2125550143\nnot-a-number\n").unwrap();
    let out = config_check(dir.path());
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("config/rules.toml:") && text.contains("all_days"),
        "{text}"
    );
    assert!(text.contains("national-dnc.txt:2"), "{text}");
    assert!(text.contains("2 error(s)"), "{text}");
}

/// Like `nginx -t`, but past the first: each error of the file is printed with its line.
#[test]
fn config_check_prints_every_error_of_the_configuration_file() {
    let (dir, _) = working_dir(|t| {
        t.replace("[sip]", "[sip]\nlisen = 1")
            .replace("[audit]", "[audit]\nbogus = 2")
            .replace("flush_interval_ms = 100", "flush_interval_ms = 0")
    });
    let out = config_check(dir.path());
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("config/callgate.toml:8:") && text.contains("lisen"),
        "{text}"
    );
    assert!(text.contains("bogus"), "{text}");
    assert!(
        text.contains("audit.flush_interval_ms") && text.contains("0 is outside"),
        "{text}"
    );
    assert!(text.contains("3 error(s)"), "{text}");
}

#[test]
fn config_check_names_a_broken_configuration_file() {
    let (dir, _) = working_dir(|t| t.replace("[sip]", "[sip]\nlisen = 1"));
    let out = config_check(dir.path());
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("config/callgate.toml:8:"));
}
