//! The audit log's hash chain. Every line ends with `"prev":"<hex>"`, the SHA-256 of the line
//! before it (its exact bytes, without the newline); the first line ever has `prev` = 64 zeros.
//! The chain runs on across files: when a day's file is closed it gets a final seal line
//! (`{"seal":{"file":..,"next":..,"ts":..},"prev":..}`), and the next file's first record points
//! at that seal. Changing, deleting, inserting or reordering any line breaks the `prev` of the
//! line after it; a sealed file cannot lose its tail unnoticed either.

use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

pub(crate) fn line_hash(line: &[u8]) -> String {
    crate::hashing::hex(&Sha256::digest(line))
}

/// Finish a serialized JSON object (`{...}`) with the chain link. Returns the new head.
pub(crate) fn link(line: &mut Vec<u8>, prev: &str) -> String {
    debug_assert_eq!(line.last(), Some(&b'}'));
    line.pop();
    if line.len() > 1 {
        line.push(b',');
    }
    line.extend_from_slice(b"\"prev\":\"");
    line.extend_from_slice(prev.as_bytes());
    line.extend_from_slice(b"\"}");
    line_hash(line)
}

/// `audit-YYYY-MM-DD.jsonl` files (and sealed ones compressed, `.jsonl.gz`) in a directory,
/// oldest first. When a day has both, the plain file is the one (a compression was cut short).
pub fn audit_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| day_of(p).is_some())
        .collect();
    // `audit-D.jsonl` sorts before `audit-D.jsonl.gz`: the first of a day is kept.
    v.sort();
    v.dedup_by(|later, first| day_of(later) == day_of(first));
    Ok(v)
}

/// The UTC day of an audit file, from its name.
pub fn day_of(p: &Path) -> Option<chrono::NaiveDate> {
    let name = p.file_name()?.to_str()?;
    let day = name.strip_prefix("audit-")?;
    let day = day
        .strip_suffix(".jsonl.gz")
        .or_else(|| day.strip_suffix(".jsonl"))?;
    chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()
}

pub(crate) fn is_compressed(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "gz")
}

/// A file's name as its seal names it (the plain name; compression does not rename the day).
pub fn plain_name(name: &str) -> &str {
    name.strip_suffix(".gz").unwrap_or(name)
}

/// The lines of an audit file, compressed or not.
pub fn open_lines(path: &Path) -> std::io::Result<Box<dyn std::io::BufRead>> {
    let f = File::open(path)?;
    Ok(if is_compressed(path) {
        Box::new(std::io::BufReader::with_capacity(
            1 << 20,
            flate2::read::GzDecoder::new(f),
        ))
    } else {
        Box::new(std::io::BufReader::with_capacity(1 << 20, f))
    })
}

/// Held while a file is compressed or files are pruned: a prune never sees a day in the middle
/// of its move from `.jsonl` to `.jsonl.gz`.
pub(crate) static FILES_MOVING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Compress a sealed file to `.jsonl.gz` beside it (written whole and fsynced under a temporary
/// name, then renamed), then remove the plain file. Returns the compressed file's path.
pub(crate) fn compress(path: &Path) -> std::io::Result<PathBuf> {
    let _moving = FILES_MOVING.lock().unwrap_or_else(|p| p.into_inner());
    if !path.exists() {
        // Pruned meanwhile.
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "file is gone",
        ));
    }
    let gz = PathBuf::from(format!("{}.gz", path.display()));
    let tmp = PathBuf::from(format!("{}.gz.tmp", path.display()));
    let mut input = File::open(path)?;
    let out = File::create(&tmp)?;
    let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::default());
    std::io::copy(&mut input, &mut enc)?;
    let out = enc.finish()?;
    out.sync_all()?;
    std::fs::rename(&tmp, &gz)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    std::fs::remove_file(path)?;
    Ok(gz)
}

/// Whether a plain file ends with its seal line.
pub(crate) fn is_sealed(path: &Path) -> std::io::Result<bool> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    let tail = read_tail(&mut f, len)?;
    let complete = tail.iter().rposition(|&c| c == b'\n').map_or(0, |i| i + 1);
    Ok(last_line(&tail[..complete]).starts_with(b"{\"seal\""))
}

/// The last line of complete lines (each ending in a newline), without its newline.
fn last_line(complete: &[u8]) -> &[u8] {
    let body = complete.strip_suffix(b"\n").unwrap_or(complete);
    body.rsplit(|&c| c == b'\n').next().unwrap_or_default()
}

/// The hash of a file's last line (for a sealed file, its seal: what the next file's first
/// line points at) and how many lines it has.
pub fn final_hash(path: &Path) -> std::io::Result<(String, u64)> {
    let mut last = Vec::new();
    let mut n = 0;
    let mut r = open_lines(path)?;
    let mut buf = Vec::new();
    while r.read_until(b'\n', &mut buf)? > 0 {
        if buf.last() == Some(&b'\n') {
            buf.pop();
            std::mem::swap(&mut last, &mut buf);
            n += 1;
        }
        buf.clear();
    }
    Ok((line_hash(&last), n))
}

/// Where the chain stands when the writer starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Recovered {
    pub head: String,
    /// The newest file, if any, and whether its last line is a seal.
    pub file: Option<PathBuf>,
    pub sealed: bool,
    /// Bytes of a torn final line (a write cut short by a crash) that were cut off.
    pub torn_bytes: u64,
}

/// Read the tail of the newest audit file to find the chain head. A final line without its
/// newline is a write torn by a crash (never fsynced as a whole): it is cut off and counted.
/// Empty files (created just before a crash) are skipped.
pub(crate) fn recover(dir: &Path) -> std::io::Result<Recovered> {
    let mut torn_bytes = 0;
    for path in audit_files(dir)?.into_iter().rev() {
        if is_compressed(&path) {
            // Only sealed files are compressed: whole, and ending in their seal.
            let (head, n) = final_hash(&path)?;
            if n == 0 {
                continue;
            }
            return Ok(Recovered {
                head,
                sealed: true,
                file: Some(path),
                torn_bytes,
            });
        }
        let mut f = OpenOptions::new().read(true).write(true).open(&path)?;
        let len = f.metadata()?.len();
        let tail = read_tail(&mut f, len)?;
        let complete = match tail.iter().rposition(|&c| c == b'\n') {
            Some(i) => i + 1,
            None if len as usize > tail.len() => {
                return Err(std::io::Error::other(format!(
                    "{}: last {} bytes hold no complete line",
                    path.display(),
                    tail.len()
                )))
            }
            None => 0,
        };
        if complete < tail.len() {
            let cut = (tail.len() - complete) as u64;
            f.set_len(len - cut)?;
            f.sync_all()?;
            torn_bytes += cut;
            tracing::warn!(file = %path.display(), bytes = cut,
                "audit: cut a torn final record (a write interrupted by a crash)");
        }
        let body = &tail[..complete];
        if body.is_empty() {
            continue;
        }
        let last = last_line(body);
        return Ok(Recovered {
            head: line_hash(last),
            sealed: last.starts_with(b"{\"seal\""),
            file: Some(path),
            torn_bytes,
        });
    }
    Ok(Recovered {
        head: GENESIS.to_string(),
        file: None,
        sealed: false,
        torn_bytes,
    })
}

fn read_tail(f: &mut File, len: u64) -> std::io::Result<Vec<u8>> {
    // Records are a few KB at most; 1 MiB always holds the last complete one.
    let n = len.min(1 << 20);
    f.seek(SeekFrom::Start(len - n))?;
    let mut buf = vec![0u8; n as usize];
    f.read_exact(&mut buf)?;
    Ok(buf)
}

/// Append a seal line to `path` (fsynced) and return the new head.
pub fn seal(path: &Path, prev: &str, next: &str, ts: &str) -> std::io::Result<String> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut line = serde_json::to_vec(&serde_json::json!({
        "seal": {"file": name, "next": next, "ts": ts}
    }))
    .map_err(std::io::Error::other)?;
    let head = link(&mut line, prev);
    line.push(b'\n');
    let mut f = OpenOptions::new().append(true).open(path)?;
    f.write_all(&line)?;
    f.sync_data()?;
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_appends_prev_as_the_last_field() {
        let mut l = br#"{"a":1}"#.to_vec();
        let h = link(&mut l, GENESIS);
        assert_eq!(
            String::from_utf8(l.clone()).unwrap(),
            format!(r#"{{"a":1,"prev":"{GENESIS}"}}"#)
        );
        assert_eq!(h, line_hash(&l));
    }

    #[test]
    fn recover_starts_at_genesis_in_an_empty_directory() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(recover(d.path()).unwrap().head, GENESIS);
    }

    #[test]
    fn recover_cuts_a_torn_final_line_and_resumes_from_the_last_whole_one() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("audit-2026-11-24.jsonl");
        std::fs::write(&p, "{\"a\":1}\n{\"a\":2}\n{\"a\":").unwrap();
        let r = recover(d.path()).unwrap();
        assert_eq!(r.head, line_hash(b"{\"a\":2}"));
        assert_eq!(r.torn_bytes, 5);
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "{\"a\":1}\n{\"a\":2}\n"
        );
    }

    #[test]
    fn recover_skips_an_empty_newest_file() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("audit-2026-11-23.jsonl"), "{\"a\":1}\n").unwrap();
        std::fs::write(d.path().join("audit-2026-11-24.jsonl"), "").unwrap();
        let r = recover(d.path()).unwrap();
        assert_eq!(r.head, line_hash(b"{\"a\":1}"));
        assert!(r.file.unwrap().ends_with("audit-2026-11-23.jsonl"));
    }
}
