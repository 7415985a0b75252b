//! Reading list files. A file is accepted whole or rejected whole: one bad line rejects it, and
//! the error names the file and the line.

use super::set::BloomSortedSet;
use super::{ListId, ListKind, ListMeta, LoadedList};
use crate::config::{parse_toml, ConfigError};
use crate::policy::normalize::E164;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("{file}: cannot read: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}:{line}: not a phone number: `{text}` (the whole file is rejected)")]
    BadLine {
        file: String,
        line: usize,
        text: String,
    },
    #[error(transparent)]
    Manifest(#[from] ConfigError),
    #[error("{file}: list `{id}`: {message}")]
    Meta {
        file: String,
        id: String,
        message: String,
    },
}

/// `lists.toml` in the data directory: which lists exist and where they came from. The script
/// that downloads a new registry file updates its `downloaded` date here, then asks callgate to
/// reload.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(rename = "list", default)]
    pub entries: Vec<ManifestEntry>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct ManifestEntry {
    pub id: String,
    pub kind: ListKind,
    pub file: PathBuf,
    /// RFC 3339 time or YYYY-MM-DD (midnight UTC) of the download; `"sample-data"` for shipped
    /// samples.
    pub downloaded: Option<String>,
    pub source_date: Option<String>,
    /// Two-letter state code, for `kind = "state"`.
    pub state: Option<String>,
}

pub const SAMPLE_MARKER: &str = "sample-data";

impl Manifest {
    pub fn load(path: &Path) -> Result<Manifest, ListError> {
        let file = path.display().to_string();
        let src = std::fs::read_to_string(path).map_err(|source| ListError::Io {
            file: file.clone(),
            source,
        })?;
        let m: Manifest = parse_toml(&file, &src)?;
        let mut seen = std::collections::HashSet::new();
        for e in &m.entries {
            let meta_err = |message: String| ListError::Meta {
                file: file.clone(),
                id: e.id.clone(),
                message,
            };
            if e.id.is_empty() || !seen.insert(e.id.clone()) {
                return Err(meta_err("ids must be unique and not empty".into()));
            }
            if let Some(d) = &e.downloaded {
                if d != SAMPLE_MARKER && parse_date(d).is_none() {
                    return Err(meta_err(format!(
                        "downloaded = `{d}` is not YYYY-MM-DD or RFC 3339"
                    )));
                }
            }
            if e.kind == ListKind::National && e.downloaded.is_none() {
                return Err(meta_err(
                    "a national list needs `downloaded` (the 31-day rule counts from it)".into(),
                ));
            }
        }
        if m.entries
            .iter()
            .filter(|e| e.kind == ListKind::National)
            .count()
            > 1
        {
            return Err(ListError::Meta {
                file,
                id: "national".into(),
                message: "more than one national list".into(),
            });
        }
        Ok(m)
    }
}

pub fn parse_date(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .map(|d| d.and_hms_opt(0, 0, 0).unwrap().and_utc())
}

pub fn load_entry(
    data_dir: &Path,
    e: &ManifestEntry,
    now: DateTime<Utc>,
) -> Result<LoadedList, ListError> {
    let path = data_dir.join(&e.file);
    let file = path.display().to_string();
    let bytes = std::fs::read(&path).map_err(|source| ListError::Io {
        file: file.clone(),
        source,
    })?;
    let numbers = parse_numbers(&file, &bytes)?;
    let sha256 = hex(&Sha256::digest(&bytes));
    let sample = e.downloaded.as_deref() == Some(SAMPLE_MARKER);
    let set = BloomSortedSet::from_numbers(numbers);
    use super::NumberSet;
    let meta = ListMeta {
        id: ListId(e.id.as_str().into()),
        kind: e.kind,
        file: path,
        sha256,
        entries: set.len(),
        source_date: e.source_date.clone(),
        downloaded: e.downloaded.as_deref().and_then(parse_date),
        sample,
        loaded_at: now,
        state: e.state.clone(),
    };
    Ok(LoadedList {
        meta,
        set: Arc::new(set),
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Parse a list file. Accepted per line: the FTC flat forms `NPANXXXXXX` and `NPA,NXXXXXX`, and
/// any form an operator writes (`+1...`, `1...`, separators). Blank lines and `#` comments are
/// skipped.
pub fn parse_numbers(file: &str, bytes: &[u8]) -> Result<Vec<u64>, ListError> {
    let mut out = Vec::with_capacity(bytes.len() / 11);
    for (i, raw) in bytes.split(|c| *c == b'\n').enumerate() {
        let line = trim(raw);
        if line.is_empty() || line[0] == b'#' {
            continue;
        }
        let bad = || ListError::BadLine {
            file: file.into(),
            line: i + 1,
            text: String::from_utf8_lossy(&line[..line.len().min(80)]).into_owned(),
        };
        let n = if line.len() == 10 && line.iter().all(u8::is_ascii_digit) {
            E164::nanp(digits(line))
        } else if line.len() == 11
            && line[3] == b','
            && line[..3].iter().chain(&line[4..]).all(u8::is_ascii_digit)
        {
            E164::nanp(digits(&line[..3]) * 10_000_000 + digits(&line[4..]))
        } else {
            std::str::from_utf8(line)
                .ok()
                .and_then(|s| s.parse::<E164>().ok())
        };
        out.push(n.ok_or_else(bad)?.as_u64());
    }
    Ok(out)
}

fn digits(b: &[u8]) -> u64 {
    b.iter().fold(0, |a, c| a * 10 + (c - b'0') as u64)
}

fn trim(b: &[u8]) -> &[u8] {
    let s = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let e = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map(|e| e + 1)
        .unwrap_or(s);
    &b[s..e.max(s)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ftc_ten_digit_and_comma_forms() {
        let v = parse_numbers(
            "f",
            b"2125550143\n212,5550144\r\n+1 (310) 555-0188\n\n# c\n",
        )
        .unwrap();
        assert_eq!(v, vec![12125550143, 12125550144, 13105550188]);
    }

    #[test]
    fn bad_line_names_file_and_line() {
        let e = parse_numbers("national.txt", b"2125550143\n21255501\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "national.txt:2: not a phone number: `21255501` (the whole file is rejected)"
        );
    }

    #[test]
    fn invalid_npa_line_is_rejected() {
        assert!(parse_numbers("f", b"1125550143\n").is_err());
    }

    #[test]
    fn dates_parse() {
        assert!(parse_date("2026-11-01").is_some());
        assert!(parse_date("2026-11-01T06:00:00Z").is_some());
        assert!(parse_date("yesterday").is_none());
    }
}
