//! systemd's service protocol (`sd_notify`), for `Type=notify` units: `READY=1` once the lists
//! are loaded and the sockets bound, `RELOADING=1` .. `READY=1` around a SIGHUP reload,
//! `STOPPING=1` at shutdown, and `WATCHDOG=1` only while the SIP loop turns, so that systemd
//! restarts a callgate whose call path stopped (`WatchdogSec=`). Outside systemd
//! (`NOTIFY_SOCKET` unset) every call here does nothing.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

pub(crate) struct Notifier {
    socket: UnixDatagram,
    to: SocketAddr,
}

impl Notifier {
    /// The service manager's socket from `NOTIFY_SOCKET` (a path, or `@name` for the abstract
    /// namespace); `None` when not run by one, or when the socket cannot be used (logged).
    pub(crate) fn from_env() -> Option<Notifier> {
        let path = std::env::var_os("NOTIFY_SOCKET")?;
        let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
        let to = match bytes.strip_prefix(b"@") {
            Some(name) => SocketAddr::from_abstract_name(name),
            None => SocketAddr::from_pathname(std::path::Path::new(&path)),
        };
        match (to, UnixDatagram::unbound()) {
            (Ok(to), Ok(socket)) => Some(Notifier { socket, to }),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(socket = ?path, error = %e, "NOTIFY_SOCKET: cannot notify the service manager");
                None
            }
        }
    }

    /// One notification (`KEY=value` lines). A failure is logged, never fatal: the service
    /// manager acts on a missing READY or WATCHDOG by its own timeouts.
    pub(crate) fn send(&self, state: &str) {
        if let Err(e) = self.socket.send_to_addr(state.as_bytes(), &self.to) {
            tracing::warn!(error = %e, state, "sd_notify failed");
        }
    }
}

/// How often to ping the watchdog: half of `WATCHDOG_USEC` (as `sd_watchdog_enabled` advises),
/// when the watchdog is on and meant for this process (`WATCHDOG_PID`, when set, is ours).
pub(crate) fn watchdog_every() -> Option<Duration> {
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    // At least a millisecond: a zero period would be no timer at all.
    (usec > 0).then(|| Duration::from_micros(usec / 2).max(Duration::from_millis(1)))
}
