//! `callgate audit verify` and `callgate audit export`: read audit files back, check the hash
//! chain, and filter records for an auditor.

use super::chain::{audit_files, line_hash, GENESIS};
use crate::call::Verdict;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

/// Expand directories to their audit files; keep files as given; oldest first.
pub fn expand(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            out.extend(audit_files(p)?);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

#[derive(Debug, Default)]
pub struct Verified {
    pub files: usize,
    pub records: u64,
    pub seals: usize,
    /// `prev` of the very first line checked (64 zeros when the chain starts there).
    pub starts_from: String,
    pub head: String,
    /// A final line without its newline in the newest file (a crash mid-write; callgate cuts
    /// it at its next start). Not part of the verified chain.
    pub torn_tail: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{file}: cannot read: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}:{line}: {why}")]
    Broken {
        file: String,
        line: u64,
        why: String,
    },
}

/// Check the chain through `files` in order. The first bad line is reported with its file and
/// line number; a changed, deleted, inserted or moved record breaks the link of the line after.
pub fn verify(files: &[PathBuf]) -> Result<Verified, VerifyError> {
    verify_with(files, |_| {})
}

/// `verify`, telling `done` how many files it has walked after each one.
pub fn verify_with(
    files: &[PathBuf],
    mut done: impl FnMut(usize),
) -> Result<Verified, VerifyError> {
    let mut chain = Chain::default();
    for (i, path) in files.iter().enumerate() {
        chain.file(path, i + 1 == files.len())?;
        done(i + 1);
    }
    chain.v.head = chain.prev_hash.unwrap_or_else(|| GENESIS.to_string());
    Ok(chain.v)
}

/// The chain walked so far across files.
#[derive(Default)]
pub(super) struct Chain {
    pub(super) v: Verified,
    pub(super) prev_hash: Option<String>,
    /// The file the last seal named as the next one.
    last_seal_next: Option<String>,
}

impl Chain {
    /// One file: it is the one the previous seal named, every line chains to the one before,
    /// and only the newest file may end without a seal (or with a torn line).
    fn file(&mut self, path: &Path, last_file: bool) -> Result<(), VerifyError> {
        let file = path.display().to_string();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(next) = self.last_seal_next.take() {
            if next != super::chain::plain_name(&name) {
                let why = format!("the previous file's seal names `{next}` as the next file");
                return Err(VerifyError::Broken { file, line: 0, why });
            }
        }
        let io = |source| VerifyError::Io {
            file: file.clone(),
            source,
        };
        let mut r = super::chain::open_lines(path).map_err(io)?;
        let mut buf = Vec::new();
        let mut lineno = 0u64;
        let mut sealed = false;
        loop {
            buf.clear();
            if r.read_until(b'\n', &mut buf).map_err(io)? == 0 {
                break;
            }
            lineno += 1;
            let broken = |why: String| VerifyError::Broken {
                file: file.clone(),
                line: lineno,
                why,
            };
            if buf.last() != Some(&b'\n') {
                if last_file {
                    self.v.torn_tail = true;
                    break;
                }
                return Err(broken(
                    "incomplete line in a file that is not the newest".into(),
                ));
            }
            if sealed {
                return Err(broken("a line after the file's seal".into()));
            }
            sealed = self.line(&buf[..buf.len() - 1]).map_err(broken)?;
        }
        if !sealed && !last_file && lineno > 0 {
            let why = "file ends without a seal but is not the newest: its tail may be missing";
            return Err(VerifyError::Broken {
                file,
                line: lineno,
                why: why.into(),
            });
        }
        self.v.files += 1;
        Ok(())
    }

    /// One record or seal: its `prev` is the hash of the line before. True for a seal.
    pub(super) fn line(&mut self, line: &[u8]) -> Result<bool, String> {
        let json: serde_json::Value =
            serde_json::from_slice(line).map_err(|e| format!("not a JSON record: {e}"))?;
        let prev = json
            .get("prev")
            .and_then(|p| p.as_str())
            .ok_or("no `prev` hash: not a chained record")?;
        match &self.prev_hash {
            None => self.v.starts_from = prev.to_string(),
            Some(h) if h != prev => {
                return Err(format!(
                    "`prev` does not match the hash of the line before: a record at or \
                     before this line was changed, deleted, inserted or moved \
                     (expected {}, found {})",
                    &h[..16],
                    &prev[..prev.len().min(16)]
                ))
            }
            Some(_) => {}
        }
        self.prev_hash = Some(line_hash(line));
        match json.get("seal") {
            Some(seal) => {
                self.v.seals += 1;
                self.last_seal_next = seal
                    .get("next")
                    .and_then(|n| n.as_str())
                    .map(str::to_string);
                Ok(true)
            }
            None => {
                self.v.records += 1;
                Ok(false)
            }
        }
    }
}

/// What `export` keeps.
#[derive(Default)]
pub struct Filter {
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    pub to: Option<chrono::DateTime<chrono::Utc>>,
    /// E.164 with `+`, compared with `called_e164`.
    pub number: Option<String>,
    pub campaign: Option<String>,
    pub verdict: Option<Verdict>,
}

/// A field of a record: top level, except the campaign, which is part of the call's policy
/// context.
fn field<'r>(r: &'r serde_json::Value, k: &str) -> Option<&'r serde_json::Value> {
    match k {
        "campaign" => r.get("policy").and_then(|p| p.get("campaign")),
        k => r.get(k),
    }
}

impl Filter {
    fn keeps(&self, r: &serde_json::Value) -> bool {
        let s = |k: &str| field(r, k).and_then(|v| v.as_str());
        let ts = s("ts").and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
        self.from.is_none_or(|f| ts.is_some_and(|t| t >= f))
            && self.to.is_none_or(|to| ts.is_some_and(|t| t < to))
            && self
                .number
                .as_deref()
                .is_none_or(|n| s("called_e164") == Some(n))
            && self
                .campaign
                .as_deref()
                .is_none_or(|c| s("campaign") == Some(c))
            && self
                .verdict
                .is_none_or(|v| s("verdict") == Some(v.as_str()))
    }
}

pub(crate) const CSV_COLUMNS: &[&str] = &[
    "id",
    "ts",
    "call_id",
    "source",
    "source_cert",
    "from",
    "called_raw",
    "called_e164",
    "campaign",
    "verdict",
    "reasons",
    "sip_status",
    "fail_open",
    "lists_hit",
    "list_versions",
    "optouts_seq",
];

/// Quote a CSV field when it needs it (RFC 4180).
pub(crate) fn csv_field(v: &str) -> String {
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_string()
    }
}

fn csv_row(r: &serde_json::Value) -> String {
    let lists = r.get("lists").and_then(|l| l.as_array());
    let cell = |k: &str| -> String {
        match k {
            "reasons" => r
                .get("reasons")
                .and_then(|a| a.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default(),
            // The record leaves it out unless it is true.
            "fail_open" => (r.get("fail_open").and_then(|v| v.as_bool()) == Some(true)).to_string(),
            "lists_hit" => lists
                .map(|l| {
                    l.iter()
                        .filter(|x| x.get("hit").and_then(|h| h.as_bool()) == Some(true))
                        .filter_map(|x| x.get("id").and_then(|i| i.as_str()))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default(),
            "list_versions" => lists
                .map(|l| {
                    l.iter()
                        .map(|x| {
                            format!(
                                "{}={}",
                                x.get("id").and_then(|i| i.as_str()).unwrap_or(""),
                                x.get("version").and_then(|i| i.as_str()).unwrap_or("")
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default(),
            k => match field(r, k) {
                None | Some(serde_json::Value::Null) => String::new(),
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
            },
        }
    };
    CSV_COLUMNS
        .iter()
        .map(|k| csv_field(&cell(k)))
        .collect::<Vec<_>>()
        .join(",")
}

/// Write the records of `files` that `filter` keeps, as JSON lines (unchanged, chain fields
/// included) or CSV. Seal lines are not records and are skipped. Returns the count written.
pub fn export(
    files: &[PathBuf],
    filter: &Filter,
    csv: bool,
    out: &mut dyn Write,
) -> Result<u64, VerifyError> {
    let io = |file: &Path| {
        let file = file.display().to_string();
        move |source| VerifyError::Io { file, source }
    };
    if csv {
        writeln!(out, "{}", CSV_COLUMNS.join(",")).map_err(io(Path::new("<stdout>")))?;
    }
    let mut n = 0;
    for path in files {
        let f = super::chain::open_lines(path).map_err(io(path))?;
        for (i, line) in f.lines().enumerate() {
            let line = line.map_err(io(path))?;
            let Ok(r) = serde_json::from_str::<serde_json::Value>(&line) else {
                return Err(VerifyError::Broken {
                    file: path.display().to_string(),
                    line: i as u64 + 1,
                    why: "not a JSON record".into(),
                });
            };
            // Seal lines are not records; admin changes have no call columns for a CSV row; call
            // records are exported by `callgate records export`.
            let other_kind = r.get("call").is_some() || (csv && r.get("admin").is_some());
            if r.get("seal").is_some() || other_kind || !filter.keeps(&r) {
                continue;
            }
            if csv {
                writeln!(out, "{}", csv_row(&r))
            } else {
                writeln!(out, "{line}")
            }
            .map_err(io(Path::new("<stdout>")))?;
            n += 1;
        }
    }
    Ok(n)
}
