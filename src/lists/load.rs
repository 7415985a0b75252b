//! Reading list files. A file is accepted whole or rejected whole: one bad line rejects it, and
//! the error names the file and the line.

use super::compact::SetBuilder;
use super::snapshot;
use super::{ListId, ListKind, ListMeta, LoadedList};
use crate::config::{parse_toml, ConfigError};
use crate::number::geo::Country;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
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
    #[error("{file}:{line}: not a {expected}: `{text}` (the whole file is rejected)")]
    BadLine {
        file: String,
        line: usize,
        expected: &'static str,
        text: String,
    },
    #[error(transparent)]
    Manifest(#[from] ConfigError),
    #[error(transparent)]
    Snapshot(#[from] super::snapshot::SnapshotError),
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
    /// Two-letter country code of a national list (default `US`): Canada's DNCL is
    /// `country = "CA"`, the UK's TPS `"GB"`. It concerns that country's numbers only.
    pub country: Option<String>,
    /// Days after `downloaded` at which the list is stale (default: `policy.national_max_age_days`,
    /// the FTC's 31-day rule).
    pub max_age_days: Option<u32>,
    /// Entries take effect this many days after they first appear (MA, WY: 60).
    pub effective_after_days: Option<u32>,
    /// CSV `number,YYYY-MM-DD` of entries' first appearance (with `effective_after_days`).
    pub first_seen: Option<PathBuf>,
}

pub(crate) const SAMPLE_MARKER: &str = "sample-data";

impl ManifestEntry {
    /// The country whose numbers the list concerns (checked when the manifest was read).
    pub(crate) fn country(&self) -> Country {
        self.country
            .as_deref()
            .and_then(Country::parse)
            .unwrap_or(Country::US)
    }
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Manifest, ListError> {
        let file = path.display().to_string();
        let src = std::fs::read_to_string(path).map_err(|source| ListError::Io {
            file: file.clone(),
            source,
        })?;
        Self::parse(&file, &src)
    }

    /// Parse and check manifest text (`file` names it in errors).
    pub fn parse(file: &str, src: &str) -> Result<Manifest, ListError> {
        let file = file.to_string();
        let m: Manifest = parse_toml(&file, src)?;
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
            if e.kind == ListKind::State
                && e.state
                    .as_deref()
                    .and_then(crate::number::geo::State::parse)
                    .is_none()
            {
                return Err(meta_err(
                    "a state list needs `state` (a two-letter code): it applies to that state's numbers".into(),
                ));
            }
            match (&e.country, e.kind) {
                (Some(c), ListKind::National) if Country::parse(c).is_none() => {
                    let why = format!("country = `{c}` is not a two-letter country code");
                    return Err(meta_err(why));
                }
                (Some(_), kind) if kind != ListKind::National => {
                    return Err(meta_err("only a national list names a country".into()));
                }
                _ => {}
            }
            if e.kind == ListKind::National && e.downloaded.is_none() {
                return Err(meta_err(
                    "a national list needs `downloaded` (the 31-day rule counts from it)".into(),
                ));
            }
        }
        let mut countries: Vec<Country> = m
            .entries
            .iter()
            .filter(|e| e.kind == ListKind::National)
            .map(ManifestEntry::country)
            .collect();
        countries.sort();
        if let Some(w) = countries.windows(2).find(|w| w[0] == w[1]) {
            return Err(ListError::Meta {
                file,
                id: "national".into(),
                message: format!("more than one national list for {}", w[0]),
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

pub(crate) fn load_entry(
    data_dir: &Path,
    e: &ManifestEntry,
    now: DateTime<Utc>,
) -> Result<LoadedList, ListError> {
    let path = data_dir.join(&e.file);
    let file = path.display().to_string();
    let stamp = FileStamp::of(&path).map_err(|source| ListError::Io {
        file: file.clone(),
        source,
    })?;
    let meta_err = |message: String| ListError::Meta {
        file: file.clone(),
        id: e.id.clone(),
        message,
    };
    let (set, sha256, source_date, snapshot) = if snapshot::is_snapshot(&path) {
        let snap = snapshot::read(&path)?;
        if snap.meta.id != e.id || snap.meta.kind != e.kind {
            return Err(meta_err(format!(
                "the snapshot holds list `{}` ({:?}), the manifest expects `{}` ({:?})",
                snap.meta.id, snap.meta.kind, e.id, e.kind
            )));
        }
        let source_date = e.source_date.clone().or(snap.meta.source_date.clone());
        (snap.set, snap.sha256, source_date, Some(snap.meta))
    } else {
        let bytes = std::fs::read(&path).map_err(|source| ListError::Io {
            file: file.clone(),
            source,
        })?;
        let numbers = if e.kind == ListKind::Wireless {
            parse_with_blocks(&file, &bytes)?
        } else {
            parse_numbers(&file, &bytes)?
        };
        let set = numbers.into_iter().collect::<SetBuilder>().build();
        (
            set,
            crate::hashing::hex(&Sha256::digest(&bytes)),
            e.source_date.clone(),
            None,
        )
    };
    let sample = e.downloaded.as_deref() == Some(SAMPLE_MARKER);
    use super::NumberSet;
    let meta = ListMeta {
        id: ListId(e.id.as_str().into()),
        kind: e.kind,
        file: path,
        sha256,
        entries: set.len(),
        source_date,
        downloaded: e.downloaded.as_deref().and_then(parse_date),
        sample,
        loaded_at: now,
        state: e.state.clone(),
        country: e.country(),
        state_code: e
            .state
            .as_deref()
            .and_then(crate::number::geo::State::parse),
        max_age_days: e.max_age_days,
        effective_after_days: e.effective_after_days,
        first_seen: match &e.first_seen {
            Some(f) => Some(std::sync::Arc::new(read_first_seen(&data_dir.join(f))?)),
            None => None,
        },
        snapshot,
        stamp,
    };
    Ok(LoadedList {
        meta,
        set: Arc::new(set),
    })
}

/// Identity of a file on disk: a reload reuses a list whose file has not changed instead of
/// reading (and briefly holding twice) a 250-million-number snapshot again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileStamp {
    pub len: u64,
    pub modified_ns: i128,
    pub inode: u64,
}

impl FileStamp {
    pub fn of(path: &Path) -> std::io::Result<FileStamp> {
        let m = std::fs::metadata(path)?;
        let modified_ns = m
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(-1);
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&m);
        #[cfg(not(unix))]
        let inode = 0;
        Ok(FileStamp {
            len: m.len(),
            modified_ns,
            inode,
        })
    }
}

/// Parse a whole list file held in memory (see `ftc` for the accepted forms).
pub(crate) fn parse_numbers(file: &str, bytes: &[u8]) -> Result<Vec<u64>, ListError> {
    let mut out = Vec::with_capacity(bytes.len() / 11);
    super::ftc::read_lines(file, bytes, super::ftc::FileRole::Full, |n, _| out.push(n))?;
    Ok(out)
}

/// A wireless list: numbers (any full-list form), and NPA-NXX (6 digits: 10,000 numbers) or
/// NPA-NXX-X (7 digits: 1,000 numbers) blocks, as carriers' line-type data comes. The compact
/// set stores a whole block as one bitmap.
pub(crate) fn parse_with_blocks(file: &str, bytes: &[u8]) -> Result<Vec<u64>, ListError> {
    let mut out = Vec::new();
    for (i, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let line = super::ftc::trim(raw);
        if line.is_empty() || line[0] == b'#' {
            continue;
        }
        let digits: Vec<u8> = line
            .iter()
            .copied()
            .filter(|c| !matches!(c, b'-' | b' ' | b'.'))
            .collect();
        let block =
            (digits.len() == 6 || digits.len() == 7) && digits.iter().all(u8::is_ascii_digit);
        if block {
            let prefix = digits.iter().fold(0u64, |v, d| v * 10 + (d - b'0') as u64);
            let size = 10u64.pow(10 - digits.len() as u32);
            let first = prefix * size;
            if crate::number::E164::nanp(first).is_some() {
                out.extend((first..first + size).map(|n| 10_000_000_000 + n));
                continue;
            }
        } else if let Some(n) = super::ftc::parse_full_line(line) {
            out.push(n);
            continue;
        }
        return Err(ListError::BadLine {
            file: file.to_string(),
            line: i + 1,
            expected: "phone number or NPA-NXX(-X) block",
            text: String::from_utf8_lossy(&line[..line.len().min(80)]).into_owned(),
        });
    }
    Ok(out)
}

/// `number,YYYY-MM-DD` lines: when each entry first appeared on its list.
fn read_first_seen(path: &Path) -> Result<std::collections::HashMap<u64, NaiveDate>, ListError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ListError::Io {
        file: file.clone(),
        source,
    })?;
    let mut out = std::collections::HashMap::new();
    for (i, l) in text.lines().enumerate() {
        let l = l.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let bad = || ListError::Meta {
            file: format!("{file}:{}", i + 1),
            id: "first_seen".into(),
            message: format!("`{l}` is not number,YYYY-MM-DD"),
        };
        let (n, d) = l.split_once(',').ok_or_else(bad)?;
        let n: crate::number::E164 = n.trim().parse().map_err(|_| bad())?;
        let d = NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d").map_err(|_| bad())?;
        out.insert(n.as_u64(), d);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_country_has_one_national_list_and_only_national_lists_name_one() {
        let list = |id: &str, kind: &str, country: &str| {
            format!("[[list]]\nid = \"{id}\"\nkind = \"{kind}\"\nfile = \"{id}.txt\"\ndownloaded = \"2026-12-01\"\n{country}")
        };
        let us = list("us", "national", "");
        let ca = list("ca", "national", "country = \"CA\"\n");
        let m = Manifest::parse("lists.toml", &format!("{us}{ca}")).unwrap();
        assert_eq!(m.entries[1].country(), Country::CA);
        assert!(Manifest::parse(
            "lists.toml",
            &format!("{us}{}", list("us2", "national", ""))
        )
        .is_err());
        assert!(Manifest::parse(
            "lists.toml",
            &format!("{ca}{}", list("ca2", "national", "country = \"ca\"\n"))
        )
        .is_err());
        let custom = list("x", "custom", "country = \"CA\"\n");
        assert!(Manifest::parse("lists.toml", &custom).is_err());
        let bad = list("y", "national", "country = \"CAN\"\n");
        assert!(Manifest::parse("lists.toml", &bad).is_err());
    }

    #[test]
    fn wireless_lists_take_numbers_and_blocks() {
        let v = parse_with_blocks("w", b"2125550143\n415-555\n310555-9\n").unwrap();
        assert_eq!(v.len(), 1 + 10_000 + 1_000);
        assert!(v.contains(&14155550000) && v.contains(&14155559999));
        assert!(v.contains(&13105559000) && !v.contains(&13105558999));
        let e = parse_with_blocks("w", b"2125550143\n12345\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("w:2:"), "{e}");
    }

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
