//! A PostgreSQL server of the test's own: a cluster made by `initdb` in a temporary directory,
//! listening on a loopback port, stopped by its PID when dropped. As root the server runs as
//! the `postgres` user (initdb refuses root). A missing PostgreSQL FAILS the test.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Postgres {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

/// A PostgreSQL program, from the newest version installed (Debian's layout).
fn program(name: &str) -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|v| v.path().join("bin").join(name))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!("PostgreSQL's {name} is missing: install postgresql-15 (scripts/test.sh does)")
    })
}

/// The user and group the server runs as: `postgres` when the test runs as root.
fn server_user() -> Option<(u32, u32)> {
    let id = |args: &[&str]| -> Option<u32> {
        let out = Command::new("id").args(args).output().ok()?;
        String::from_utf8(out.stdout).ok()?.trim().parse().ok()
    };
    if id(&["-u"])? != 0 {
        return None;
    }
    let user = (id(&["-u", "postgres"]), id(&["-g", "postgres"]));
    match user {
        (Some(u), Some(g)) => Some((u, g)),
        _ => panic!("running as root, and there is no `postgres` user to run PostgreSQL as"),
    }
}

fn as_server(cmd: &mut Command) -> &mut Command {
    if let Some((uid, gid)) = server_user() {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

impl Postgres {
    /// A new cluster, started; its superuser is `callgate`, trusted on loopback.
    pub fn start() -> Postgres {
        let dir = tempfile::tempdir().unwrap();
        if let Some((uid, gid)) = server_user() {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let out = as_server(&mut Command::new(program("initdb")))
            .args([
                "-U",
                "callgate",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(dir.path().join("data"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut pg = Postgres {
            port: super::free_port(),
            dir,
            child: None,
        };
        pg.restart();
        pg
    }

    pub fn url(&self) -> String {
        format!("postgres://callgate@127.0.0.1:{}/postgres", self.port)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A streaming standby of `primary`, named `name` (its `application_name`), started: a
    /// base backup of the primary, following it from there.
    pub fn standby_of(primary: &Postgres, name: &str) -> Postgres {
        let dir = tempfile::tempdir().unwrap();
        if let Some((uid, gid)) = server_user() {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let data = dir.path().join("data");
        let out = as_server(&mut Command::new(program("pg_basebackup")))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &primary.port.to_string(),
                "-U",
                "callgate",
            ])
            .args(["-X", "stream", "-R", "-D"])
            .arg(&data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_basebackup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let conninfo = format!(
            "\nprimary_conninfo = 'host=127.0.0.1 port={} user=callgate application_name={name}'\n",
            primary.port
        );
        let auto = data.join("postgresql.auto.conf");
        let mut conf = std::fs::read_to_string(&auto).unwrap_or_default();
        conf.push_str(&conninfo);
        std::fs::write(&auto, conf).unwrap();
        let mut pg = Postgres {
            port: super::free_port(),
            dir,
            child: None,
        };
        pg.restart();
        pg
    }

    /// Append settings to the server's configuration (read at its next start, or reload).
    pub fn configure(&self, lines: &str) {
        let auto = self.data().join("postgresql.auto.conf");
        let mut conf = std::fs::read_to_string(&auto).unwrap_or_default();
        conf.push('\n');
        conf.push_str(lines);
        conf.push('\n');
        std::fs::write(&auto, conf).unwrap();
    }

    /// Reload the configuration (SIGHUP).
    pub fn reload(&self) {
        self.psql("SELECT pg_reload_conf()");
    }

    /// A standby becomes a primary (`pg_promote`, waiting for it).
    pub fn promote(&self) {
        assert_eq!(self.psql("SELECT pg_promote(true, 30)"), "t");
    }

    /// Start the server on its data (again), and wait until it answers.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::File::create(self.dir.path().join("server.log")).unwrap();
        let child = as_server(&mut Command::new(program("postgres")))
            .arg("-D")
            .arg(self.data())
            .args([
                "-p",
                &self.port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
            ])
            .arg("-k")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = Command::new(program("pg_isready"))
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "callgate",
                ])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("PostgreSQL exited at start ({status}): {}", self.log_tail());
            }
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not start: {}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().rev().take(8).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// SIGKILL: the server is gone at once, as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Run SQL with psql, its output.
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new(program("psql"))
            .args([
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &self.url(),
                "-c",
                sql,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `sql` run by psql in the background (the caller stops it).
    pub fn psql_background(&self, sql: &str) -> std::process::Child {
        Command::new(program("psql"))
            .args(["-X", "-q", "-d", &self.url(), "-c", sql])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap()
    }

    /// Wait (bounded, 10 s) until a session holds a lock on `table`.
    pub fn wait_for_lock_on(&self, table: &str) {
        let sql = format!(
            "SELECT count(*) FROM pg_locks WHERE relation = '{table}'::regclass AND granted"
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while self.psql(&sql) == "0" {
            assert!(std::time::Instant::now() < deadline, "no lock on {table}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.kill();
    }
}
