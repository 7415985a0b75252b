//! Append-only JSON-lines journals (opt-outs, consent records): replayed at start, appended and
//! fsynced before an API acknowledges. A final line without its newline is a write torn by a
//! crash before the fsync, never acknowledged, and is cut; any other bad line stops the start,
//! because silently dropping an acknowledged record is worse than not starting.
//!
//! Files rewritten whole (snapshots, the emergency closures, the compacted cap journal) are
//! replaced atomically by `replace_file`.

use anyhow::Context;
use serde::de::DeserializeOwned;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::Path;

/// Open (creating it and its directory) the journal at `path`, hand each record and its line
/// number to `f`, cut a torn tail, and return the file positioned for appending.
pub(crate) fn open_replay<T: DeserializeOwned>(
    path: &Path,
    what: &str,
    mut f: impl FnMut(T, usize) -> anyhow::Result<()>,
) -> anyhow::Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create directory", dir.display()))?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .with_context(|| format!("{}: cannot open {what} journal", path.display()))?;
    let mut good = 0u64;
    let mut reader = BufReader::new(&mut file);
    let mut line = String::new();
    let mut n = 0;
    loop {
        line.clear();
        if reader
            .read_line(&mut line)
            .with_context(|| format!("{}: read error", path.display()))?
            == 0
        {
            break;
        }
        n += 1;
        if !line.ends_with('\n') {
            tracing::warn!(file = %path.display(), line = n, "cutting a torn final {what} record (never acknowledged)");
            break;
        }
        let rec: T = serde_json::from_str(line.trim_end())
            .with_context(|| format!("{}:{n}: corrupt {what} record", path.display()))?;
        f(rec, n).with_context(|| format!("{}:{n}", path.display()))?;
        good += line.len() as u64;
    }
    drop(reader);
    if file.metadata()?.len() != good {
        file.set_len(good)?;
        file.sync_all()?;
    }
    file.seek(SeekFrom::End(0))?;
    Ok(file)
}

/// Replace the file at `path` with `parts`, written one after the other: a temporary file
/// beside it, fsynced, renamed over it, then the directory fsynced, so a crash leaves the old
/// file or the new one, never half of one. The temporary file is removed on failure.
pub(crate) fn replace_file(path: &Path, parts: &[&[u8]]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        for p in parts {
            f.write_all(p)?;
        }
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
