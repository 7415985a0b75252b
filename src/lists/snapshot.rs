//! Snapshot files: a compiled list, loaded with one read and used in place.
//!
//! ```text
//! offset  size  field
//!      0     8  magic "CGSNAP\r\n" (the CR LF catches text-mode transfers)
//!      8     4  format version (u32 LE) = 1
//!     12     4  metadata length in bytes (u32 LE)
//!     16     8  body length in u64 words (u64 LE)
//!     24    32  SHA-256 of (metadata padded to 8 bytes + body)
//!     56     8  zero
//!     64     -  metadata: JSON (`SnapshotMeta`: list id, kind, source date, entry count,
//!               sources), space-padded to a multiple of 8
//!      -     -  body: the `CompactSet` words
//! ```
//! The checksum is the snapshot's identity: decision records name a list version as
//! `sha256:<first 16 hex digits>`. A file that is truncated, padded, fails the checksum or the
//! structural checks is refused whole; the caller keeps the version in service.

use super::compact::{CompactSet, LayoutError};
use super::ListKind;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

pub(crate) const MAGIC: &[u8; 8] = b"CGSNAP\r\n";
pub(crate) const FORMAT_VERSION: u32 = 1;
const HEADER: usize = 64;
const MAX_META: usize = 1 << 20;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SourceFile {
    pub name: String,
    /// `full`, `changes` or `base` (the snapshot a change list was applied to).
    pub role: String,
    pub sha256: String,
    pub lines: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SnapshotMeta {
    pub id: String,
    pub kind: ListKind,
    #[serde(default)]
    pub state: Option<String>,
    /// The date the source says its data is from (e.g. the FTC file date).
    #[serde(default)]
    pub source_date: Option<String>,
    pub created: DateTime<Utc>,
    pub entries: u64,
    #[serde(default)]
    pub sources: Vec<SourceFile>,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{file}: cannot read snapshot: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: not a callgate snapshot (bad magic bytes)")]
    Magic { file: String },
    #[error(
        "{file}: snapshot format version {found}; this callgate reads version {FORMAT_VERSION}"
    )]
    Version { file: String, found: u32 },
    #[error("{file}: truncated or padded: {actual} bytes, the header says {expected}")]
    Size {
        file: String,
        actual: u64,
        expected: u64,
    },
    #[error(
        "{file}: checksum mismatch (header {expected}, content {actual}): the file is corrupt"
    )]
    Checksum {
        file: String,
        expected: String,
        actual: String,
    },
    #[error("{file}: bad metadata: {message}")]
    Meta { file: String, message: String },
    #[error("{file}: corrupt body: {source}")]
    Layout { file: String, source: LayoutError },
}

pub(crate) use crate::hashing::hex;

fn padded_meta(meta: &SnapshotMeta) -> Vec<u8> {
    let mut m = serde_json::to_vec(meta).expect("metadata serializes");
    while !m.len().is_multiple_of(8) {
        m.push(b' ');
    }
    m
}

/// Does the file start with the snapshot magic? (Manifest entries may name either form.)
pub(crate) fn is_snapshot(path: &Path) -> bool {
    let mut magic = [0u8; 8];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && &magic == MAGIC
}

/// Write atomically: a temporary file beside the target, fsynced, then renamed over it, so a
/// crash leaves the old snapshot or the new one, never half of one. Returns the checksum.
pub fn write(path: &Path, meta: &SnapshotMeta, set: &CompactSet) -> std::io::Result<String> {
    let meta_bytes = padded_meta(meta);
    let body: &[u8] = bytemuck::cast_slice(set.words());
    let mut h = Sha256::new();
    h.update(&meta_bytes);
    h.update(body);
    let sum = h.finalize();
    let mut header = [0u8; HEADER];
    header[..8].copy_from_slice(MAGIC);
    header[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    header[12..16].copy_from_slice(&(meta_bytes.len() as u32).to_le_bytes());
    header[16..24].copy_from_slice(&(set.words().len() as u64).to_le_bytes());
    header[24..56].copy_from_slice(&sum);
    crate::journal::replace_file(path, &[&header, &meta_bytes, body])?;
    Ok(hex(&sum))
}

/// A snapshot read and validated.
pub struct Loaded {
    pub meta: SnapshotMeta,
    pub sha256: String,
    pub set: CompactSet,
}

/// What the fixed header says of the rest of the file.
struct Header {
    meta_len: u64,
    body_words: u64,
    sha256: [u8; 32],
}

/// The header: magic, format version, and sizes that add up to the file's size.
fn read_header(f: &mut std::fs::File, file: &str, actual: u64) -> Result<Header, SnapshotError> {
    let file = file.to_string();
    let mut header = [0u8; HEADER];
    if actual < HEADER as u64 {
        return Err(SnapshotError::Size {
            file,
            actual,
            expected: HEADER as u64,
        });
    }
    f.read_exact(&mut header)
        .map_err(|source| SnapshotError::Io {
            file: file.clone(),
            source,
        })?;
    if &header[..8] != MAGIC {
        return Err(SnapshotError::Magic { file });
    }
    let word = |at: usize| {
        u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let version = word(8);
    if version != FORMAT_VERSION || header[56..64] != [0; 8] {
        return Err(SnapshotError::Version {
            file,
            found: version,
        });
    }
    let meta_len = word(12) as u64;
    let body_words = word(16) as u64 | (word(20) as u64) << 32;
    let expected = (HEADER as u64)
        .saturating_add(meta_len)
        .saturating_add(body_words.saturating_mul(8));
    if !meta_len.is_multiple_of(8) || meta_len as usize > MAX_META || expected != actual {
        return Err(SnapshotError::Size {
            file,
            actual,
            expected,
        });
    }
    let mut sha256 = [0u8; 32];
    sha256.copy_from_slice(&header[24..56]);
    Ok(Header {
        meta_len,
        body_words,
        sha256,
    })
}

/// Read a snapshot with one read into its final buffer, then verify the checksum and the
/// structure. Nothing is returned unless all of it is sound.
pub fn read(path: &Path) -> Result<Loaded, SnapshotError> {
    let file = path.display().to_string();
    let io = |source| SnapshotError::Io {
        file: file.clone(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let actual = f.metadata().map_err(io)?.len();
    let Header {
        meta_len,
        body_words,
        sha256,
    } = read_header(&mut f, &file, actual)?;
    let mut meta_bytes = vec![0u8; meta_len as usize];
    f.read_exact(&mut meta_bytes).map_err(io)?;
    let mut body = super::mem::HugeBuf::<u64>::zeroed(body_words as usize);
    f.read_exact(bytemuck::cast_slice_mut(&mut body[..]))
        .map_err(io)?;
    let mut h = Sha256::new();
    h.update(&meta_bytes);
    h.update(bytemuck::cast_slice::<u64, u8>(&body));
    let sum = hex(&h.finalize());
    let want = hex(&sha256);
    if sum != want {
        return Err(SnapshotError::Checksum {
            file,
            expected: want,
            actual: sum,
        });
    }
    let meta: SnapshotMeta =
        serde_json::from_slice(&meta_bytes).map_err(|e| SnapshotError::Meta {
            file: file.clone(),
            message: e.to_string(),
        })?;
    let set = CompactSet::from_words(body).map_err(|source| SnapshotError::Layout {
        file: file.clone(),
        source,
    })?;
    use super::NumberSet;
    if set.len() as u64 != meta.entries {
        return Err(SnapshotError::Meta {
            file,
            message: format!(
                "metadata says {} entries, body holds {}",
                meta.entries,
                set.len()
            ),
        });
    }
    Ok(Loaded {
        meta,
        sha256: sum,
        set,
    })
}
