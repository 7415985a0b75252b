//! The audit log's hash chain. Every line ends with `"prev":"<hex>"`, the SHA-256 of the line
//! before it (its exact bytes, without the newline); the first line ever has `prev` = 64 zeros.
//! The chain runs on across files: when a day's file is closed it gets a final seal line
//! (`{"seal":{"file":..,"next":..,"ts":..},"prev":..}`), and the next file's first record points
//! at that seal. Changing, deleting, inserting or reordering any line breaks the `prev` of the
//! line after it; a sealed file cannot lose its tail unnoticed either.

use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
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

/// `audit-YYYY-MM-DD.jsonl` files in a directory, oldest first (the names sort by date).
pub fn audit_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("audit-") && n.ends_with(".jsonl"))
        })
        .collect();
    v.sort();
    Ok(v)
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
        let last = body[..body.len() - 1]
            .rsplit(|&c| c == b'\n')
            .next()
            .unwrap_or_default();
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
