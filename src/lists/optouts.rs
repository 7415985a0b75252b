//! Real-time opt-outs: an append-only journal, fsynced before the API acknowledges, replayed at
//! start. A record is in memory (and so honoured by the next INVITE) before `add` returns.

use crate::clock::SharedClock;
use crate::number::E164;
use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OptOutRecord {
    pub seq: u64,
    pub at: chrono::DateTime<chrono::Utc>,
    pub number: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// An opt-out learnt from the shared database: its sequence number there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared: Option<u64>,
}

/// An opt-out as the shared database holds it.
#[derive(Debug, Clone)]
pub struct SharedOptOut {
    pub seq: u64,
    pub number: E164,
    pub at: chrono::DateTime<chrono::Utc>,
    pub source: Option<String>,
}

/// An opt-out this journal holds and the shared database does not: one taken before the
/// instance joined a cluster (`[shared]`).
#[derive(Debug, Clone)]
pub struct Unshared {
    pub number: E164,
    pub at: chrono::DateTime<chrono::Utc>,
    pub source: Option<String>,
}

pub struct OptOuts {
    /// Number -> time of its latest opt-out.
    set: DashMap<E164, chrono::DateTime<chrono::Utc>>,
    journal: Mutex<File>,
    seq: AtomicU64,
    /// The newest shared opt-out this journal holds: where following the database resumes.
    shared_seq: AtomicU64,
    clock: SharedClock,
    /// A failed write could not be cut from the journal again: no more is written to it (a
    /// line appended after a torn one would make the journal unreadable at the next start).
    broken: std::sync::atomic::AtomicBool,
    /// The journal's file, read again for `unshared`.
    path: std::path::PathBuf,
}

impl OptOuts {
    /// Open (creating) the journal and replay it. A final line without its newline is a write
    /// torn by a crash before fsync — never acknowledged — and is cut off. Any other bad line is
    /// an error: silently dropping an acknowledged opt-out is worse than not starting.
    pub fn open(path: &Path, clock: SharedClock) -> anyhow::Result<OptOuts> {
        let set = DashMap::new();
        let (mut seq, mut shared_seq) = (0, 0);
        let file = crate::journal::open_replay(path, "opt-out", |rec: OptOutRecord, _| {
            let n: E164 = rec
                .number
                .parse()
                .map_err(|e| anyhow::anyhow!("bad number `{}`: {e}", rec.number))?;
            set.insert(n, rec.at);
            seq = seq.max(rec.seq);
            shared_seq = shared_seq.max(rec.shared.unwrap_or(0));
            Ok(())
        })?;
        tracing::info!(file = %path.display(), entries = set.len(), "opt-out journal replayed");
        Ok(OptOuts {
            set,
            journal: Mutex::new(file),
            seq: AtomicU64::new(seq),
            shared_seq: AtomicU64::new(shared_seq),
            clock,
            broken: Default::default(),
            path: path.to_path_buf(),
        })
    }

    /// The opt-outs in the journal that no shared change brought (taken before `[shared]` was
    /// configured), each number once with its latest time (as `when` holds it) and the latest
    /// source given, oldest first. Reads the journal again, under its lock: only an instance
    /// following a shared database asks, when it connects, so a standalone one holds nothing.
    pub fn unshared(&self) -> std::io::Result<Vec<Unshared>> {
        let _writes = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        let mut local: std::collections::HashMap<E164, Unshared> = Default::default();
        crate::journal::open_replay(&self.path, "opt-out", |rec: OptOutRecord, _| {
            let number: E164 = rec.number.parse().map_err(anyhow::Error::msg)?;
            if rec.shared.is_some() {
                local.remove(&number);
                return Ok(());
            }
            let u = local.entry(number).or_insert(Unshared {
                number,
                at: rec.at,
                source: None,
            });
            u.at = u.at.max(rec.at);
            u.source = rec.source.or(u.source.take());
            Ok(())
        })
        .map_err(|e| std::io::Error::other(format!("{e:#}")))?;
        let mut unshared: Vec<Unshared> = local.into_values().collect();
        unshared.sort_by_key(|u| (u.at, u.number));
        Ok(unshared)
    }

    #[inline]
    pub fn contains(&self, n: E164) -> bool {
        // `seq` is 0 exactly when nothing was ever added; it is published after the insert.
        // (DashSet::is_empty would lock every shard on every call.)
        self.seq.load(Ordering::Acquire) != 0 && self.set.contains_key(&n)
    }

    /// When the number opted out (latest), if it did.
    pub fn when(&self, n: E164) -> Option<chrono::DateTime<chrono::Utc>> {
        if self.seq.load(Ordering::Acquire) == 0 {
            return None;
        }
        self.set.get(&n).map(|t| *t)
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Sequence number of the latest opt-out: the internal list's version.
    pub fn seq(&self) -> u64 {
        self.seq.load(Ordering::Acquire)
    }

    /// Append, fsync, then publish. Blocking (the fsync): call from a blocking context.
    pub fn add(&self, n: E164, source: Option<String>) -> std::io::Result<OptOutRecord> {
        let mut f = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        let rec = OptOutRecord {
            seq: self.seq.load(Ordering::Acquire) + 1,
            at: self.clock.now(),
            number: n.to_string(),
            source,
            shared: None,
        };
        let mut line = serde_json::to_vec(&rec).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.append(&mut f, &line)?;
        self.set.insert(n, rec.at);
        self.seq.store(rec.seq, Ordering::Release);
        Ok(rec)
    }

    /// Write `lines` and fsync them, or, if that fails, cut the journal back to where it was:
    /// what was not acknowledged is not there at the next start either.
    fn append(&self, f: &mut File, lines: &[u8]) -> std::io::Result<()> {
        if self.broken.load(Ordering::Acquire) {
            return Err(std::io::Error::other(
                "the opt-out journal could not be repaired after a failed write: restart callgate",
            ));
        }
        let before = f.metadata()?.len();
        let written = f.write_all(lines).and_then(|()| f.sync_data());
        if written.is_err() && f.set_len(before).and_then(|()| f.sync_data()).is_err() {
            self.broken.store(true, Ordering::Release);
            tracing::error!("opt-out journal: a failed write could not be cut off; no more opt-outs are written until a restart");
        }
        written
    }

    /// Add every one of `entries` or none: one write and one fsync for all of them; a write
    /// that fails is cut from the journal again, and none is in force.
    pub fn add_many(
        &self,
        entries: Vec<(E164, Option<String>)>,
    ) -> std::io::Result<Vec<OptOutRecord>> {
        self.add_many_at(entries, self.clock.now())
    }

    /// `add_many`, stamped `at` (the time the shared database recorded them with).
    pub fn add_many_at(
        &self,
        entries: Vec<(E164, Option<String>)>,
        at: chrono::DateTime<chrono::Utc>,
    ) -> std::io::Result<Vec<OptOutRecord>> {
        self.write(entries.into_iter().map(|(n, source)| (n, at, source, None)))
    }

    /// Bring in opt-outs recorded in the shared database, in its order, each with its place
    /// there; those this journal already holds (read again after a restart) are skipped.
    /// Returns how many were new.
    pub fn apply_shared(&self, rows: Vec<SharedOptOut>) -> std::io::Result<usize> {
        let last = rows.last().map(|r| r.seq);
        let new = rows
            .into_iter()
            .map(|r| (r.number, r.at, r.source, Some(r.seq)));
        let count = self.write(new)?.len();
        if let Some(last) = last {
            self.shared_seq.fetch_max(last, Ordering::AcqRel);
        }
        Ok(count)
    }

    /// The newest shared opt-out in force here (0: none).
    pub fn shared_seq(&self) -> u64 {
        self.shared_seq.load(Ordering::Acquire)
    }

    fn write(
        &self,
        entries: impl Iterator<
            Item = (
                E164,
                chrono::DateTime<chrono::Utc>,
                Option<String>,
                Option<u64>,
            ),
        >,
    ) -> std::io::Result<Vec<OptOutRecord>> {
        let mut f = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        let first = self.seq.load(Ordering::Acquire) + 1;
        // Read under the lock: a shared change this journal holds already is not written again.
        let held = self.shared_seq();
        let entries = entries.filter(|e| e.3.is_none_or(|s| s > held));
        let mut records = Vec::new();
        let mut lines = Vec::new();
        for (i, (n, at, source, shared)) in entries.enumerate() {
            let rec = OptOutRecord {
                seq: first + i as u64,
                at,
                number: n.to_string(),
                source,
                shared,
            };
            serde_json::to_writer(&mut lines, &rec).map_err(std::io::Error::other)?;
            lines.push(b'\n');
            records.push((n, rec));
        }
        if records.is_empty() {
            return Ok(vec![]);
        }
        self.append(&mut f, &lines)?;
        for (n, rec) in &records {
            // The latest opt-out of a number is the one in force, whichever came in last.
            self.set
                .entry(*n)
                .and_modify(|t| *t = (*t).max(rec.at))
                .or_insert(rec.at);
        }
        if let Some((_, last)) = records.last() {
            self.seq.store(last.seq, Ordering::Release);
        }
        Ok(records.into_iter().map(|(_, r)| r).collect())
    }
}

/// Lines of an opt-out CSV named in one refusal at most.
const ERRORS_SHOWN: usize = 20;

/// An opt-out CSV: a header `number` or `number,source`, then one opt-out a line (a source
/// may hold commas). The whole file or nothing: every bad line is named (the first
/// `ERRORS_SHOWN`), by its line number.
pub fn parse_csv(text: &str) -> Result<Vec<(E164, Option<String>)>, Vec<String>> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
    let header = lines.next().map(|(i, h)| (i, h.to_ascii_lowercase()));
    let with_source = match header.as_ref().map(|(i, h)| (*i, h.replace(' ', ""))) {
        Some((_, h)) if h == "number" => false,
        Some((_, h)) if h == "number,source" => true,
        Some((i, h)) => {
            return Err(vec![format!(
                "line {i}: the header is `{h}`; expected `number` or `number,source`"
            )])
        }
        None => {
            return Err(vec![
                "the file is empty: expected a header `number,source`".into()
            ])
        }
    };
    let (mut entries, mut errors) = (Vec::new(), Vec::new());
    for (i, line) in lines {
        let (number, source) = match with_source {
            true => line.split_once(',').unwrap_or((line, "")),
            false => (line, ""),
        };
        let number = number.trim().trim_matches('"');
        match number.parse::<E164>() {
            Ok(n) => {
                let source = source.trim().trim_matches('"');
                entries.push((n, Some(source.to_string()).filter(|s| !s.is_empty())));
            }
            Err(e) => errors.push(format!("line {i}: `{number}`: {e}")),
        }
    }
    if errors.len() > ERRORS_SHOWN {
        let more = errors.len() - ERRORS_SHOWN;
        errors.truncate(ERRORS_SHOWN);
        errors.push(format!("and {more} more bad line(s)"));
    }
    match (errors.is_empty(), entries.is_empty()) {
        (false, _) => Err(errors),
        (true, true) => Err(vec!["no opt-out in the file".into()]),
        (true, false) => Ok(entries),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_added_at_once_survive_reopen_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("o.jsonl");
        let (a, b): (E164, E164) = ("2125550143".parse().unwrap(), "4155550100".parse().unwrap());
        {
            let o = OptOuts::open(&p, crate::clock::system()).unwrap();
            o.add(a, None).unwrap();
            let recs = o
                .add_many(vec![(b, Some("mail".into())), (a, None)])
                .unwrap();
            assert_eq!(recs.iter().map(|r| r.seq).collect::<Vec<_>>(), [2, 3]);
        }
        let o = OptOuts::open(&p, crate::clock::system()).unwrap();
        assert!(o.contains(a) && o.contains(b));
        assert_eq!(o.seq(), 3);
    }

    #[test]
    fn opt_outs_taken_alone_are_unshared_and_those_the_cluster_holds_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("o.jsonl");
        let n = |s: &str| -> E164 { s.parse().unwrap() };
        {
            let o = OptOuts::open(&p, crate::clock::system()).unwrap();
            o.add(n("4155550100"), Some("mail".into())).unwrap();
            o.add(n("2125550143"), None).unwrap();
            o.add(n("4155550100"), None).unwrap();
            let shared = SharedOptOut {
                seq: 7,
                number: n("2125550143"),
                at: chrono::Utc::now(),
                source: None,
            };
            o.apply_shared(vec![shared]).unwrap();
        }
        let o = OptOuts::open(&p, crate::clock::system()).unwrap();
        let unshared = o.unshared().unwrap();
        assert_eq!(unshared.len(), 1, "{unshared:?}");
        assert_eq!(unshared[0].number, n("4155550100"));
        // Its latest time, as the instance holds it, and the source it was given.
        assert_eq!(Some(unshared[0].at), o.when(n("4155550100")));
        assert_eq!(unshared[0].source.as_deref(), Some("mail"));
    }

    #[test]
    fn a_csv_with_a_bad_line_is_refused_whole_naming_it() {
        let e = parse_csv("number,source\n4155550100,mail\n12345,phone\n").unwrap_err();
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("line 3: `12345`"), "{e:?}");
    }

    #[test]
    fn a_csv_source_may_hold_commas() {
        let got = parse_csv("number,source\n(415) 555-0100,\"letter, March 3\"\n").unwrap();
        assert_eq!(got[0].1.as_deref(), Some("letter, March 3"));
    }

    #[test]
    fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("o.jsonl");
        let n: E164 = "2125550143".parse().unwrap();
        {
            let o = OptOuts::open(&p, crate::clock::system()).unwrap();
            o.add(n, Some("test".into())).unwrap();
            assert!(o.contains(n));
        }
        let o = OptOuts::open(&p, crate::clock::system()).unwrap();
        assert!(o.contains(n));
        assert_eq!(o.seq(), 1);
    }

    #[test]
    fn torn_tail_is_cut_and_appending_continues() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("o.jsonl");
        std::fs::write(&p, "{\"seq\":1,\"at\":\"2026-01-01T00:00:00Z\",\"number\":\"+12125550143\"}\n{\"seq\":2,\"at\":\"20").unwrap();
        let o = OptOuts::open(&p, crate::clock::system()).unwrap();
        assert_eq!(o.len(), 1);
        o.add("3105550188".parse().unwrap(), None).unwrap();
        let o2 = OptOuts::open(&p, crate::clock::system()).unwrap();
        assert_eq!(o2.len(), 2);
    }

    #[test]
    fn corrupt_middle_line_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("o.jsonl");
        std::fs::write(
            &p,
            "garbage\n{\"seq\":1,\"at\":\"2026-01-01T00:00:00Z\",\"number\":\"+12125550143\"}\n",
        )
        .unwrap();
        let e = OptOuts::open(&p, crate::clock::system()).err().unwrap();
        assert!(format!("{e:#}").contains("o.jsonl:1"), "{e:#}");
    }
}
