//! `callgate lists compile`: raw list files (full lists, change lists, or a base snapshot plus
//! change lists) into a snapshot. Change lists apply in the order given, additions and
//! deletions as they come, so base + changes is exactly the set the next full list holds.

use super::compact::{CompactSet, SetBuilder};
use super::ftc::{read_lines, FileRole, Op};
use super::load::ListError;
use super::snapshot::{self, SnapshotMeta, SourceFile};
use super::{ListKind, NumberSet};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::io::{BufReader, Read, Seek};
use std::path::{Path, PathBuf};

pub struct CompileSpec {
    /// Identity; taken from the base snapshot when not given.
    pub id: Option<String>,
    pub kind: Option<ListKind>,
    pub state: Option<String>,
    pub source_date: Option<String>,
    pub base: Option<PathBuf>,
    pub full: Vec<PathBuf>,
    pub changes: Vec<PathBuf>,
}

/// Hashes what passes through, so a source file is read once for both parsing and provenance.
struct HashingReader<R> {
    inner: R,
    hash: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// A list file, or a zip of them (the FTC delivers its registry download as a zip of
/// per-area-code files; it is read as it arrives, without unpacking by hand).
fn read_file(
    path: &PathBuf,
    role: FileRole,
    f: impl FnMut(u64, Op),
) -> Result<SourceFile, ListError> {
    match is_zip(path) {
        true => read_zip(path, role, f),
        false => read_plain(path, role, f),
    }
}

fn role_name(role: FileRole) -> String {
    match role {
        FileRole::Full => "full",
        FileRole::Changes => "changes",
    }
    .into()
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// A zip archive, by its first bytes (whatever its name): a member, an empty archive's end
/// record, or a spanned archive's marker.
fn is_zip(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| matches!(&magic, b"PK\x03\x04" | b"PK\x05\x06" | b"PK\x07\x08"))
}

/// Every file in the archive, in name order, as one source: its provenance is the archive's
/// SHA-256 (what the operator can match against the download). A bad line in any member
/// rejects the whole archive, and the error names the member and line.
fn read_zip(
    path: &PathBuf,
    role: FileRole,
    mut f: impl FnMut(u64, Op),
) -> Result<SourceFile, ListError> {
    let name = path.display().to_string();
    let io = |source: std::io::Error| ListError::Io {
        file: name.clone(),
        source,
    };
    let bad_zip =
        |e: zip::result::ZipError| io(std::io::Error::new(std::io::ErrorKind::InvalidData, e));
    // One handle for the hash and the read: the provenance is the bytes that were read.
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut hash = Sha256::new();
    std::io::copy(&mut file, &mut hash).map_err(io)?;
    file.seek(std::io::SeekFrom::Start(0)).map_err(io)?;
    let mut archive = zip::ZipArchive::new(BufReader::new(file)).map_err(bad_zip)?;
    let mut members = Vec::new();
    for n in archive.file_names() {
        let n = n.map_err(bad_zip)?;
        if !n.ends_with('/') {
            members.push(n.into_owned());
        }
    }
    members.sort();
    if members.is_empty() {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the zip archive holds no files",
        )));
    }
    let mut lines = 0;
    for member in &members {
        let entry = archive.by_name(member).map_err(bad_zip)?;
        let label = format!("{name}:{member}");
        lines += read_lines(
            &label,
            BufReader::with_capacity(1 << 20, entry),
            role,
            &mut f,
        )?;
    }
    Ok(SourceFile {
        name: file_name(path),
        role: role_name(role),
        sha256: crate::hashing::hex(&hash.finalize()),
        lines,
    })
}

fn read_plain(
    path: &PathBuf,
    role: FileRole,
    mut f: impl FnMut(u64, Op),
) -> Result<SourceFile, ListError> {
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| ListError::Io {
        file: name.clone(),
        source,
    })?;
    let mut reader = BufReader::with_capacity(
        1 << 20,
        HashingReader {
            inner: file,
            hash: Sha256::new(),
        },
    );
    let lines = read_lines(&name, &mut reader, role, &mut f)?;
    Ok(SourceFile {
        name: file_name(path),
        role: role_name(role),
        sha256: crate::hashing::hex(&reader.into_inner().hash.finalize()),
        lines,
    })
}

pub fn compile(
    spec: &CompileSpec,
    now: DateTime<Utc>,
) -> Result<(SnapshotMeta, CompactSet), ListError> {
    let meta_err = |message: String| ListError::Meta {
        file: "callgate lists compile".into(),
        id: spec.id.clone().unwrap_or_default(),
        message,
    };
    let mut sources = Vec::new();
    let (mut builder, base_meta) = match &spec.base {
        Some(path) => {
            let base = snapshot::read(path)?;
            sources.push(SourceFile {
                name: path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                role: "base".into(),
                sha256: base.sha256.clone(),
                lines: base.meta.entries,
            });
            (base.set.builder(), Some(base.meta))
        }
        None => (SetBuilder::new(), None),
    };
    if spec.full.is_empty() && spec.base.is_none() {
        return Err(meta_err(
            "give at least one full list or a base snapshot".into(),
        ));
    }
    for path in &spec.full {
        sources.push(read_file(path, FileRole::Full, |n, _| builder.insert(n))?);
    }
    for path in &spec.changes {
        sources.push(read_file(path, FileRole::Changes, |n, op| match op {
            Op::Add => builder.insert(n),
            Op::Delete => builder.remove(n),
        })?);
    }
    let set = builder.build();
    let id = spec
        .id
        .clone()
        .or_else(|| base_meta.as_ref().map(|m| m.id.clone()))
        .ok_or_else(|| meta_err("a list id is needed (--id)".into()))?;
    let kind = spec
        .kind
        .or(base_meta.as_ref().map(|m| m.kind))
        .ok_or_else(|| meta_err("a list kind is needed (--kind)".into()))?;
    if let Some(b) = &base_meta {
        if b.id != id || b.kind != kind {
            return Err(meta_err(format!(
                "the base snapshot is list `{}` ({:?}), not `{id}` ({kind:?})",
                b.id, b.kind
            )));
        }
    }
    let meta = SnapshotMeta {
        id,
        kind,
        state: spec
            .state
            .clone()
            .or_else(|| base_meta.as_ref().and_then(|m| m.state.clone())),
        source_date: spec
            .source_date
            .clone()
            .or_else(|| base_meta.as_ref().and_then(|m| m.source_date.clone())),
        created: now,
        entries: set.len() as u64,
        sources,
    };
    Ok((meta, set))
}
