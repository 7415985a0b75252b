//! One day's file walked alone, for a document about a few of its lines (the complaint
//! dossier): where its chain first breaks, if it does, so each line can be said to verify or
//! not. `verify` walks the whole log and stops at the first break; this walks one day through.

use super::verify::{Chain, VerifyError};
use std::io::BufRead;
use std::path::Path;

#[derive(Clone, Debug)]
pub(crate) struct DayWalk {
    /// `prev` of the file's first line.
    pub(crate) starts_from: Option<String>,
    /// Whether the first line names the hash it was expected to (the previous file's seal);
    /// None when that is not known.
    pub(crate) linked: Option<bool>,
    /// The offset from which lines are not verified, and why: a line whose hash the next line
    /// does not name (it, or what follows, was changed, deleted or inserted), a line after the
    /// seal, a tail without its seal.
    pub(crate) broken_from: Option<(u64, String)>,
    /// The hash of the file's last line: what the next file's first line must name.
    pub(crate) head: Option<String>,
    /// The offset of the last line of the newest file: no line after it vouches for it yet.
    pub(crate) unvouched: Option<u64>,
}

impl DayWalk {
    /// Whether the chain holds through the line at `offset`: every line up to it links to the
    /// one before, and the line after it names its hash.
    pub(crate) fn verified_at(&self, offset: u64) -> bool {
        self.linked != Some(false) && self.broken_from.as_ref().is_none_or(|(b, _)| offset < *b)
    }

    pub(crate) fn verified(&self) -> bool {
        self.linked != Some(false) && self.broken_from.is_none()
    }
}

/// Walk the chain of one file; `expected` is the hash its first line should name (the
/// previous file's seal), when known; only the `newest` file may end without a seal.
pub(crate) fn walk_day(
    path: &Path,
    expected: Option<&str>,
    newest: bool,
) -> Result<DayWalk, VerifyError> {
    let io = |source| VerifyError::Io {
        file: path.display().to_string(),
        source,
    };
    let mut r = super::chain::open_lines(path).map_err(io)?;
    let mut chain = Chain::default();
    let mut walk = DayWalk {
        starts_from: None,
        linked: None,
        broken_from: None,
        head: None,
        unvouched: None,
    };
    let (mut buf, mut offset, mut last) = (Vec::new(), 0u64, None::<u64>);
    let mut sealed = false;
    loop {
        buf.clear();
        let n = r.read_until(b'\n', &mut buf).map_err(io)? as u64;
        if n > 0 && buf.last() != Some(&b'\n') && !newest {
            let why = "an incomplete line in a file that is not the newest".to_string();
            walk.broken_from = Some((offset, why));
            return Ok(walk);
        }
        if n == 0 || buf.last() != Some(&b'\n') {
            break;
        }
        let linked = match sealed {
            true => Err("a line after the file's seal".to_string()),
            false => chain.line(&buf[..buf.len() - 1]),
        };
        match linked {
            Ok(seal) => sealed = seal,
            Err(why) => {
                walk.broken_from = Some((last.unwrap_or(offset), why));
                return Ok(walk);
            }
        }
        if offset == 0 {
            walk.starts_from = Some(chain.v.starts_from.clone());
            walk.linked = expected.map(|e| e == chain.v.starts_from);
        }
        last = Some(offset);
        offset += n;
    }
    walk.head = chain.prev_hash.clone();
    match (newest, sealed, last) {
        (true, _, at) => walk.unvouched = at,
        (false, false, Some(at)) => {
            let why = "the file ends without its seal: its tail may be missing".to_string();
            walk.broken_from = Some((at, why));
        }
        _ => {}
    }
    Ok(walk)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(prev: &str, n: u32) -> String {
        format!("{{\"n\":{n},\"prev\":\"{prev}\"}}")
    }

    /// An older day's file that ends in a line without its newline lost its tail (as `audit
    /// verify` says): its lines do not verify, where the newest file's torn line is only
    /// being written.
    #[test]
    fn an_older_file_ending_in_a_torn_line_is_broken() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit-2026-01-01.jsonl");
        let first = line(crate::audit::chain::GENESIS, 1);
        let second = line(&crate::audit::chain::line_hash(first.as_bytes()), 2);
        std::fs::write(&path, format!("{first}\n{second}")).unwrap();
        let older = walk_day(&path, None, false).unwrap();
        assert!(!older.verified());
        assert!(walk_day(&path, None, true).unwrap().verified());
    }
}
