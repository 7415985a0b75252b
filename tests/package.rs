//! The Debian package, built by `scripts/package.sh` (cargo-deb) and installed with the real
//! `dpkg` into a scratch root (its maintainer scripts run there too, honouring DPKG_ROOT); its
//! systemd unit checked by the real `systemd-analyze`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// The scratch root with the package installed: built and installed once for this file.
fn installed() -> &'static Path {
    static ROOT: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &ROOT
        .get_or_init(|| {
            let deb = build_package();
            let root = tempfile::tempdir().unwrap();
            let r = root.path();
            for d in ["var/lib/dpkg/info", "var/lib/dpkg/updates"] {
                std::fs::create_dir_all(r.join(d)).unwrap();
            }
            std::fs::write(r.join("var/lib/dpkg/status"), "").unwrap();
            let out = Command::new("dpkg")
                .arg(format!("--root={}", r.display()))
                .args([
                    "--force-script-chrootless",
                    "--force-depends",
                    "--log=/dev/null",
                    "-i",
                ])
                .arg(&deb)
                .output()
                .expect("dpkg is not installed");
            assert!(
                out.status.success(),
                "dpkg -i: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let path = r.to_path_buf();
            (root, path)
        })
        .1
}

fn build_package() -> PathBuf {
    let out = Command::new("bash")
        .args(["scripts/package.sh", "--profile", "dev", "--no-build"])
        .current_dir(REPO)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "scripts/package.sh failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deb = stdout
        .lines()
        .rev()
        .find(|l| l.ends_with(".deb"))
        .expect("no .deb named");
    Path::new(REPO).join(deb.trim())
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn callgate_runs_from_the_installed_package() {
    let root = installed();
    let (ok, text) = run(Command::new(root.join("usr/bin/callgate")).arg("--version"));
    assert!(ok, "{text}");
    assert_eq!(
        text.trim(),
        format!("callgate {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn the_package_creates_the_callgate_user_and_its_data_directories() {
    let root = installed();
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    let user = passwd
        .lines()
        .find(|l| l.starts_with("callgate:"))
        .expect("no callgate user");
    assert!(
        user.ends_with(":/var/lib/callgate:/usr/sbin/nologin"),
        "{user}"
    );
    for d in ["var/lib/callgate/lists", "var/lib/callgate/audit"] {
        assert!(root.join(d).is_dir(), "{d} missing");
    }
    assert!(root.join("var/lib/callgate/lists/lists.toml").is_file());
}

/// The shipped configuration, read from the scratch root: its paths moved into the root, it
/// passes the same check a start runs (no lists yet: it starts and fails closed).
#[test]
fn the_installed_configuration_passes_config_check() {
    let root = installed();
    let text = std::fs::read_to_string(root.join("etc/callgate/callgate.toml")).unwrap();
    let r = root.display();
    let moved = text
        .replace("\"/etc/callgate", &format!("\"{r}/etc/callgate"))
        .replace("\"/var/lib/callgate", &format!("\"{r}/var/lib/callgate"));
    let cfg = root.join("callgate-in-root.toml");
    std::fs::write(&cfg, moved).unwrap();
    let (ok, text) = run(Command::new(root.join("usr/bin/callgate"))
        .args(["config", "check", "--config"])
        .arg(&cfg));
    assert!(ok, "{text}");
    assert!(text.starts_with("OK: "), "{text}");
}

#[test]
fn the_unit_passes_systemd_analyze_verify_without_a_warning() {
    let root = installed();
    // The unit's dependencies (sysinit.target...) come from this machine's systemd.
    let units = root.join("lib/systemd/system");
    for entry in std::fs::read_dir("/lib/systemd/system").unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_owned();
        let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
        if matches!(ext, "target" | "slice") && !units.join(&name).exists() {
            let _ = std::fs::copy(&p, units.join(&name));
        }
    }
    let (ok, text) = run(Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(format!("--root={}", root.display()))
        .arg("/lib/systemd/system/callgate.service"));
    assert!(
        ok && text.trim().is_empty(),
        "systemd-analyze verify:\n{text}"
    );
}

#[test]
fn the_unit_is_hardened_to_an_exposure_below_2() {
    let root = installed();
    let (ok, text) = run(Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=20", "--no-pager"])
        .arg(format!("--root={}", root.display()))
        .arg("/lib/systemd/system/callgate.service"));
    assert!(ok, "{text}");
    let level = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for callgate.service: ")
                .nth(1)
        })
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    assert!(level < 2.0, "exposure {level}:\n{text}");
}

#[test]
fn the_package_ships_completions_man_pages_dashboards_and_alert_rules() {
    let root = installed();
    for f in [
        "usr/share/bash-completion/completions/callgate",
        "usr/share/zsh/vendor-completions/_callgate",
        "usr/share/fish/vendor_completions.d/callgate.fish",
        "usr/share/man/man1/callgate.1.gz",
        "usr/share/man/man1/callgate-config-check.1.gz",
        "usr/share/callgate/grafana/callgate.json",
        "usr/share/callgate/prometheus/callgate-rules.yml",
        "usr/share/callgate/kamailio/kamailio.cfg",
        "usr/share/callgate/sample-data/lists.toml",
        "etc/callgate/rules.toml",
    ] {
        assert!(root.join(f).is_file(), "{f} missing from the package");
    }
}
