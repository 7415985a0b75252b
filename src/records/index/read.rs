//! Reading the log at the index's pointers: a plain day seeks, a compressed day is read
//! through.

use crate::audit::chain::open_lines;
use crate::records::export::FindError;
use std::collections::HashMap;
use std::io::{BufRead, Read};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

/// `audit-2026-12-01.jsonl` and its compressed form are the same day.
pub(crate) fn day_of(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    name.trim_end_matches(".gz")
        .trim_end_matches(".jsonl")
        .to_string()
}

/// A plain day's file compressed since the log was listed is read from its compressed form
/// (the same lines at the same offsets).
pub(crate) fn compressed_since(file: &Path) -> PathBuf {
    if crate::audit::chain::is_compressed(file) || file.exists() {
        return file.to_path_buf();
    }
    let gz = PathBuf::from(format!("{}.gz", file.display()));
    match gz.exists() {
        true => gz,
        false => file.to_path_buf(),
    }
}

/// The day's lines from byte `at`, and how far it got (short of `at`: the file is shorter).
/// A plain file seeks there; a compressed day is read through to it.
pub(crate) fn open_at(file: &Path, at: u64) -> std::io::Result<(Box<dyn BufRead>, u64)> {
    use std::io::Seek;
    let file = &compressed_since(file);
    if !crate::audit::chain::is_compressed(file) {
        let mut f = std::fs::File::open(file)?;
        let len = f.metadata()?.len();
        let at = at.min(len);
        f.seek(std::io::SeekFrom::Start(at))?;
        return Ok((Box::new(std::io::BufReader::with_capacity(1 << 16, f)), at));
    }
    let mut reader = open_lines(file)?;
    let skipped = std::io::copy(&mut (&mut reader).take(at), &mut std::io::sink())?;
    Ok((reader, skipped))
}

/// Reads lines at given offsets of one day's file, in increasing order: a plain file seeks to
/// each line, a compressed day is read through.
pub(crate) enum LineAt {
    /// `pos`: where the reader stands, so a line just ahead is read from the buffer.
    Plain {
        reader: std::io::BufReader<std::fs::File>,
        pos: u64,
    },
    Compressed {
        reader: Box<dyn BufRead>,
        pos: u64,
    },
}

impl LineAt {
    pub(crate) fn open(file: &Path) -> std::io::Result<LineAt> {
        let file = &compressed_since(file);
        Ok(match crate::audit::chain::is_compressed(file) {
            false => LineAt::Plain {
                reader: std::io::BufReader::with_capacity(1 << 16, std::fs::File::open(file)?),
                pos: 0,
            },
            true => LineAt::Compressed {
                reader: open_lines(file)?,
                pos: 0,
            },
        })
    }

    /// The line at `offset` (not before the last one read, for a compressed day).
    pub(crate) fn read(&mut self, offset: u64, line: &mut Vec<u8>) -> std::io::Result<()> {
        use std::io::Seek;
        line.clear();
        let n = match self {
            LineAt::Plain { reader, pos } => {
                match offset.checked_sub(*pos).and_then(|d| i64::try_from(d).ok()) {
                    Some(ahead) => reader.seek_relative(ahead)?,
                    None => {
                        reader.seek(std::io::SeekFrom::Start(offset))?;
                    }
                }
                let n = reader.read_until(b'\n', line)?;
                *pos = offset + n as u64;
                n
            }
            LineAt::Compressed { reader, pos } => {
                let gap = offset.checked_sub(*pos).ok_or_else(|| {
                    std::io::Error::other(format!("offset {offset} is behind {pos}"))
                })?;
                let skipped = std::io::copy(&mut reader.take(gap), &mut std::io::sink())?;
                let n = if skipped == gap {
                    reader.read_until(b'\n', line)?
                } else {
                    0
                };
                *pos = offset + n as u64;
                n
            }
        };
        match n {
            0 => Err(std::io::Error::other(format!(
                "no line at offset {offset}: the log is shorter than its index"
            ))),
            _ => Ok(()),
        }
    }
}

/// Hand the lines `found` points at (in log order) to `each`, read from the log `files`:
/// the day's file, where the line is, and its bytes without the newline, until `each` says
/// to stop. A pointer the log does not hold is an error naming it.
pub(crate) fn each_line(
    files: &[PathBuf],
    found: &[super::Found],
    mut each: impl FnMut(&Path, &super::Found, &[u8]) -> Result<ControlFlow<()>, FindError>,
) -> Result<(), FindError> {
    let by_day: HashMap<String, &PathBuf> = files.iter().map(|f| (day_of(f), f)).collect();
    let mut reading: Option<(&str, PathBuf, LineAt)> = None;
    let mut line = Vec::with_capacity(4096);
    for f in found {
        let pos = &f.pos;
        let differs = |file: &Path, why: String| FindError::Differs {
            file: file.display().to_string(),
            offset: pos.offset,
            why,
        };
        if reading.as_ref().is_none_or(|(d, _, _)| *d != pos.day) {
            let Some(file) = by_day.get(&pos.day) else {
                let why = "the log no longer holds this day".to_string();
                return Err(differs(Path::new(&pos.day), why));
            };
            let file = compressed_since(file);
            let at = LineAt::open(&file).map_err(|e| differs(&file, e.to_string()))?;
            reading = Some((&pos.day, file, at));
        }
        let (_, file, at) = reading.as_mut().expect("opened above");
        at.read(pos.offset, &mut line)
            .map_err(|e| differs(file, e.to_string()))?;
        if each(file, f, line.strip_suffix(b"\n").unwrap_or(&line))?.is_break() {
            break;
        }
    }
    Ok(())
}
