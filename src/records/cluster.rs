//! The cluster's records as one: this instance's log, and with a shared database a copy of
//! every other instance's log (`cluster/<instance>/` in the audit directory, written by the
//! shared database's mirror: the same lines at the same offsets, so each copy verifies as
//! its instance's log does). Each log has its own records index; what reads records for the
//! console (a search, a number's history, the dossier, the report) reads every log and
//! merges the answers, each record labelled with the instance that wrote it.

use super::index::{each_line, Found, Index, IndexError, Pos, Query};
use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

/// The directory of the other instances' logs, in the audit directory.
pub(crate) const DIR: &str = "cluster";

/// One instance's log.
pub(crate) struct Source {
    /// None: this instance's own log.
    pub instance: Option<String>,
    pub dir: PathBuf,
}

impl Source {
    /// How the source's files are named in a document: by their path from the audit
    /// directory (`cluster/b%3A8081/audit-2026-12-07.jsonl`), so two instances' days differ.
    pub(crate) fn prefix(&self) -> String {
        match &self.dir.file_name() {
            Some(name) if self.instance.is_some() => {
                format!("{DIR}/{}/", name.to_string_lossy())
            }
            _ => String::new(),
        }
    }

    /// The cursor's key of the source: "" for this instance.
    fn key(&self) -> &str {
        self.instance.as_deref().unwrap_or("")
    }
}

/// The directory holding the copy of `instance`'s log (see `dir_name`).
pub(crate) fn mirror_dir(audit_dir: &Path, instance: &str) -> PathBuf {
    audit_dir.join(DIR).join(dir_name(instance))
}

/// An instance's name as a directory's: every byte outside `[A-Za-z0-9._-]` (and a leading
/// `.`) written `%XX` (an instance is `host:port` by default).
fn dir_name(instance: &str) -> String {
    let mut name = String::with_capacity(instance.len());
    for b in instance.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' => name.push(b as char),
            b'.' if !name.is_empty() => name.push('.'),
            _ => name.push_str(&format!("%{b:02X}")),
        }
    }
    if name.is_empty() {
        name.push_str("%00");
    }
    name
}

/// The instance a mirror directory's name stands for, or None for a name `mirror_dir` does
/// not write.
fn instance_of(name: &str) -> Option<String> {
    let mut out = Vec::with_capacity(name.len());
    let mut bytes = name.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'%' => {
                let hex = [bytes.next()?, bytes.next()?];
                out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
            }
            _ => out.push(b),
        }
    }
    String::from_utf8(out).ok().filter(|s| !s.is_empty())
}

/// The copies of the other instances' logs in `audit_dir`, by instance.
pub(crate) fn others(audit_dir: &Path) -> Vec<Source> {
    let mut others: Vec<Source> = std::fs::read_dir(audit_dir.join(DIR))
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let e = e.ok()?;
            let instance = instance_of(&e.file_name().to_string_lossy())?;
            e.file_type().ok()?.is_dir().then(|| Source {
                instance: Some(instance),
                dir: e.path(),
            })
        })
        .collect();
    others.sort_by(|a, b| a.instance.cmp(&b.instance));
    others
}

/// This instance's log and the copies of the others', each with its index.
pub(crate) struct Logs {
    pub own: Opened,
    pub others: Vec<Opened>,
    /// Copies that could not be read (their index would not open or catch up), and why: the
    /// answer is without them, and says so.
    pub skipped: Vec<String>,
}

impl Logs {
    /// The copies in `own`'s directory opened beside it (their indexes caught up).
    pub(crate) fn with_others(own: Opened) -> Logs {
        let mut logs = Logs {
            own,
            others: Vec::new(),
            skipped: Vec::new(),
        };
        for source in others(&logs.own.source.dir) {
            let name = source.instance.clone().unwrap_or_default();
            match Opened::open(source) {
                Ok(log) => logs.others.push(log),
                Err(e) => {
                    tracing::warn!(instance = %name, error = %e, "another instance's copy of its records cannot be read");
                    logs.skipped.push(format!("{name}: {e}"));
                }
            }
        }
        logs
    }

    /// This instance's log first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Opened> {
        std::iter::once(&self.own).chain(&self.others)
    }
}

/// A log with its files and its index, brought up to it.
pub(crate) struct Opened {
    pub source: Source,
    pub files: Vec<PathBuf>,
    pub index: Index,
}

impl Opened {
    /// The log of `source` with its index caught up.
    pub(crate) fn open(source: Source) -> Result<Opened, IndexError> {
        let files =
            crate::audit::chain::audit_files(&source.dir).map_err(|source_err| IndexError::Io {
                file: source.dir.display().to_string(),
                source: source_err,
            })?;
        let mut index = Index::open(&source.dir)?;
        let done = index.catch_up(&files)?;
        for e in &done.failed {
            tracing::warn!(dir = %source.dir.display(), error = %e, "records index: a day it could not read (answers may miss its records)");
        }
        Ok(Opened {
            source,
            files,
            index,
        })
    }
}

/// Where a merged search goes on: each log's last line shown (a log not in it starts from its
/// beginning). Written `instance=DAY@OFFSET` joined by `;`, this instance's key empty.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Cursor(BTreeMap<String, Pos>);

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (k, pos)) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { ";" };
            let key = match k.as_str() {
                "" => String::new(),
                k => dir_name(k),
            };
            write!(f, "{sep}{key}={pos}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Cursor {
    type Err = String;
    fn from_str(s: &str) -> Result<Cursor, String> {
        let mut map = BTreeMap::new();
        for part in s.split(';').filter(|p| !p.is_empty()) {
            // A bare place is this instance's (as pages before the cluster wrote it).
            let (k, pos) = part.split_once('=').unwrap_or(("", part));
            let k = match k {
                "" => String::new(),
                k => instance_of(k).ok_or_else(|| format!("`{k}`: not an instance"))?,
            };
            let pos: Pos = pos.parse()?;
            if !super::index::holds(&pos) {
                return Err(format!("`{pos}`: not a place in the log"));
            }
            map.insert(k, pos);
        }
        Ok(Cursor(map))
    }
}

/// A line a merged search found: which log, where, and its bytes.
pub(crate) struct Hit {
    pub found: Found,
    pub line: Vec<u8>,
}

/// The next `limit` lines `q` keeps across every log, after `cursor`: each log's answer in
/// its own order, merged by the records' time (a record without one goes first), and the
/// cursor past them. A log is never read past the lines shown, so no line is skipped or
/// shown twice from one page to the next.
pub(crate) fn page(
    logs: &Logs,
    q: &Query,
    cursor: &Cursor,
    limit: usize,
) -> Result<(Vec<Hit>, Cursor), super::export::FindError> {
    let mut heads: Vec<std::collections::VecDeque<(Option<i64>, Hit)>> = Vec::new();
    for log in logs.iter() {
        let q = Query {
            after: cursor.0.get(log.source.key()).cloned(),
            limit: Some(limit.min(u32::MAX as usize) as u32),
            ..q.clone()
        };
        let found = log.index.query(&q)?;
        let mut lines = std::collections::VecDeque::with_capacity(found.len());
        each_line(&log.files, &found, |_, f, line| {
            let at = super::index::summary_of(line).and_then(|s| s.ts_ms);
            let hit = Hit {
                found: f.clone(),
                line: line.to_vec(),
            };
            lines.push_back((at, hit));
            Ok(ControlFlow::Continue(()))
        })?;
        heads.push(lines);
    }
    let logs: Vec<&Opened> = logs.iter().collect();
    let mut next = cursor.clone();
    let mut hits = Vec::with_capacity(limit);
    while hits.len() < limit {
        let first = heads
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.front().map(|(at, _)| (*at, i)))
            .min();
        let Some((_, i)) = first else { break };
        let (_, hit) = heads[i].pop_front().expect("a head was found");
        let key = logs[i].source.key().to_string();
        next.0.insert(key, hit.found.pos.clone());
        hits.push(hit);
    }
    Ok((hits, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mirror_directory_names_its_instance_and_back() {
        let dir = mirror_dir(Path::new("/a"), "host-1.example:8081");
        assert_eq!(dir, Path::new("/a/cluster/host-1.example%3A8081"));
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(instance_of(&name).as_deref(), Some("host-1.example:8081"));
    }

    #[test]
    fn an_instance_named_like_a_relative_path_stays_inside_the_cluster_directory() {
        for bad in ["..", ".", "../x", "a/b", ""] {
            let dir = mirror_dir(Path::new("/a"), bad);
            assert_eq!(dir.parent(), Some(Path::new("/a/cluster")), "{bad}");
            assert!(!dir.ends_with(".."), "{bad}");
        }
    }

    #[test]
    fn a_cursor_is_read_back_as_written() {
        let c: Cursor = "=audit-2026-12-07@10;b%3A1=audit-2026-12-06@0"
            .parse()
            .unwrap();
        assert_eq!(c.0.len(), 2);
        assert_eq!(c.0["b:1"].offset, 0);
        assert_eq!(c.to_string().parse::<Cursor>().unwrap(), c);
        assert!("b=nowhere".parse::<Cursor>().is_err());
        let own: Cursor = "audit-2026-12-07@10".parse().unwrap();
        assert_eq!(own.0[""].offset, 10);
    }
}
