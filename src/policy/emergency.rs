//! The state-of-emergency switch: an operator closes a state or an area code to telephone
//! solicitation at runtime (La. R.S. 45:844.31), through the admin API. Persisted (written
//! atomically before the API answers) so that a restart does not reopen a closed state.

use crate::number::geo::{State, StateSet};
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Default, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Closed {
    #[serde(default)]
    pub states: Vec<String>,
    #[serde(default)]
    pub npas: Vec<u16>,
}

/// The file: the closures, and the change of the shared database they came in.
#[derive(Serialize, Deserialize)]
struct InFile {
    #[serde(flatten)]
    closed: Closed,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shared_seq: Option<u64>,
}

pub struct Emergency {
    /// The newest change of the shared database applied here (0: none), kept in the file.
    shared_seq: AtomicU64,
    states: AtomicU64,
    /// 1000 bits, one per area code.
    npas: [AtomicU64; 16],
    path: Option<PathBuf>,
    write: Mutex<()>,
}

impl Emergency {
    pub fn in_memory() -> Emergency {
        Emergency {
            shared_seq: AtomicU64::new(0),
            states: AtomicU64::new(0),
            npas: Default::default(),
            path: None,
            write: Mutex::new(()),
        }
    }

    pub fn open(path: &Path) -> anyhow::Result<Emergency> {
        let mut e = Emergency::in_memory();
        e.path = Some(path.to_path_buf());
        match std::fs::read_to_string(path) {
            Ok(s) => {
                let file: InFile = serde_json::from_str(&s).with_context(|| {
                    format!("{}: corrupt state-of-emergency file", path.display())
                })?;
                let c = file.closed;
                e.shared_seq = AtomicU64::new(file.shared_seq.unwrap_or(0));
                e.apply(&c)
                    .map_err(|m| anyhow::anyhow!("{}: {m}", path.display()))?;
                if c != Closed::default() {
                    tracing::warn!(states = ?c.states, npas = ?c.npas, "state-of-emergency closures in force");
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(err).with_context(|| format!("{}", path.display())),
        }
        Ok(e)
    }

    fn apply(&self, c: &Closed) -> Result<(), String> {
        let mut states = StateSet::default();
        for s in &c.states {
            states.insert(State::parse(s).ok_or_else(|| format!("unknown state `{s}`"))?);
        }
        let mut npas = [0u64; 16];
        for n in &c.npas {
            if !(200..1000).contains(n) {
                return Err(format!("`{n}` is not an area code"));
            }
            npas[*n as usize / 64] |= 1 << (n % 64);
        }
        self.states.store(states.0, Ordering::Release);
        for (a, v) in self.npas.iter().zip(npas) {
            a.store(v, Ordering::Release);
        }
        Ok(())
    }

    /// Whether `c` names only states and area codes that exist (what `set` refuses).
    pub fn check(c: &Closed) -> Result<(), String> {
        Emergency::in_memory().apply(c)
    }

    /// Replace the closures; durable before it returns (blocking: call off the async runtime).
    pub fn set(&self, c: &Closed) -> anyhow::Result<()> {
        self.write(c, None)
    }

    /// The newest change from the shared database this file holds (0: none).
    pub fn shared_seq(&self) -> u64 {
        self.shared_seq.load(Ordering::Acquire)
    }

    /// `set` for change `shared` of the shared database; nothing when this file holds that
    /// change or a newer one already (an older closure never replaces a newer one).
    pub fn set_shared(&self, c: &Closed, shared: u64) -> anyhow::Result<()> {
        self.write(c, Some(shared))
    }

    fn write(&self, c: &Closed, shared: Option<u64>) -> anyhow::Result<()> {
        let _g = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let held = self.shared_seq.load(Ordering::Acquire);
        if shared.is_some_and(|s| s <= held) {
            return Ok(());
        }
        // Validate before writing, so a bad request changes nothing.
        Emergency::check(c).map_err(anyhow::Error::msg)?;
        if let Some(path) = &self.path {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let file = InFile {
                closed: c.clone(),
                shared_seq: shared.or((held > 0).then_some(held)),
            };
            crate::journal::replace_file(path, &[&serde_json::to_vec_pretty(&file)?])?;
        }
        if let Some(s) = shared {
            self.shared_seq.store(s, Ordering::Release);
        }
        self.apply(c).map_err(anyhow::Error::msg)
    }

    pub(crate) fn current(&self) -> Closed {
        let states = StateSet(self.states.load(Ordering::Acquire));
        Closed {
            states: states.iter().map(|s| s.code().to_string()).collect(),
            npas: (200..1000u16).filter(|n| self.npa_closed(*n)).collect(),
        }
    }

    #[inline]
    pub(crate) fn npa_closed(&self, npa: u16) -> bool {
        let n = npa as usize % 1024;
        self.npas[n / 64].load(Ordering::Relaxed) & (1 << (n % 64)) != 0
    }

    /// Whether any of `states` is closed.
    #[inline]
    pub(crate) fn any_closed(&self, states: StateSet) -> bool {
        self.states.load(Ordering::Relaxed) & states.0 != 0
    }
}
