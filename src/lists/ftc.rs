//! Reading list files as a stream of lines: the FTC full-list forms (`NPANXXXXXX`,
//! `NPA,NXXXXXX`), FTC change lists (number, date, add/delete flag, comma-delimited) and
//! operator-written numbers (`+1 (212) 555-0143`). A file is accepted whole or rejected whole:
//! the first bad line stops the read and names the file and line.

use super::load::ListError;
use crate::number::E164;
use std::io::{BufRead, Read};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Add,
    Delete,
}

/// What a file is expected to hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FileRole {
    /// One number per line; a change flag is an error (a full list cannot delete).
    Full,
    /// Every line carries an add or delete flag.
    Changes,
}

/// One number of a full list (any accepted form), as E.164 digits.
pub(crate) fn parse_full_line(line: &[u8]) -> Option<u64> {
    parse_line(line, FileRole::Full).map(|(n, _)| n)
}

/// Parse one trimmed, non-empty, non-comment line.
fn parse_line(line: &[u8], role: FileRole) -> Option<(u64, Op)> {
    // The common case first: ten digits, no allocation, no UTF-8 check.
    if role == FileRole::Full && line.len() == 10 && line.iter().all(u8::is_ascii_digit) {
        return E164::nanp(digits(line)).map(|n| (n.as_u64(), Op::Add));
    }
    let fields: smallvec_free::Fields = smallvec_free::split(line);
    let (number, rest) = match fields.as_slice() {
        [a, b, rest @ ..] if a.len() == 3 && b.len() == 7 && all_digits(a) && all_digits(b) => {
            (E164::nanp(digits(a) * 10_000_000 + digits(b))?, rest)
        }
        [a, rest @ ..] if a.len() == 10 && all_digits(a) => (E164::nanp(digits(a))?, rest),
        [a] if role == FileRole::Full => {
            (std::str::from_utf8(a).ok()?.parse::<E164>().ok()?, &[][..])
        }
        _ => return None,
    };
    let mut op = None;
    for f in rest {
        match flag(f) {
            Some(o) if op.is_none() => op = Some(o),
            Some(_) => return None,
            None if looks_like_date(f) => {}
            None => return None,
        }
    }
    match (role, op) {
        (FileRole::Full, None | Some(Op::Add)) => Some((number.as_u64(), Op::Add)),
        (FileRole::Changes, Some(o)) => Some((number.as_u64(), o)),
        _ => None,
    }
}

fn flag(f: &[u8]) -> Option<Op> {
    let f = std::str::from_utf8(f).ok()?.trim();
    match f.to_ascii_lowercase().as_str() {
        "a" | "add" | "addition" | "added" => Some(Op::Add),
        "d" | "del" | "delete" | "deletion" | "deleted" => Some(Op::Delete),
        _ => None,
    }
}

fn looks_like_date(f: &[u8]) -> bool {
    let f = trim(f);
    (6..=25).contains(&f.len())
        && f.iter()
            .all(|c| c.is_ascii_digit() || matches!(c, b'-' | b'/' | b':' | b'T' | b'Z' | b' '))
}

fn all_digits(b: &[u8]) -> bool {
    !b.is_empty() && b.iter().all(u8::is_ascii_digit)
}

fn digits(b: &[u8]) -> u64 {
    b.iter().fold(0, |a, c| a * 10 + (c - b'0') as u64)
}

pub fn trim(b: &[u8]) -> &[u8] {
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

/// Comma splitting without a heap allocation per line.
mod smallvec_free {
    pub struct Fields<'a> {
        items: [&'a [u8]; 8],
        len: usize,
    }
    impl<'a> Fields<'a> {
        pub(crate) fn as_slice(&self) -> &[&'a [u8]] {
            &self.items[..self.len]
        }
    }
    /// More than 8 fields yields a 9th empty marker field that no pattern accepts.
    pub fn split(line: &[u8]) -> Fields<'_> {
        let mut f = Fields {
            items: [&[]; 8],
            len: 0,
        };
        for part in line.split(|c| *c == b',') {
            if f.len == 8 {
                f.len = 0;
                return f;
            }
            f.items[f.len] = super::trim(part);
            f.len += 1;
        }
        f
    }
}

/// A bad line as an error can show it: control bytes escaped (a binary file on a terminal).
fn printable(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).escape_debug().to_string()
}

/// The longest line read: a number with a date and a flag fits many times over.
const MAX_LINE: usize = 256;

/// Read every line of `reader`, calling `f` with each number (E.164 as `u64`) and its
/// operation. Returns the count of number lines. Stops at the first bad line.
pub(crate) fn read_lines<R: BufRead>(
    file: &str,
    mut reader: R,
    role: FileRole,
    mut f: impl FnMut(u64, Op),
) -> Result<u64, ListError> {
    let io = |source| ListError::Io {
        file: file.to_string(),
        source,
    };
    let mut buf = Vec::with_capacity(64);
    let mut lineno = 0usize;
    let mut count = 0u64;
    loop {
        buf.clear();
        // Bounded: a file with no newline (or a zip member expanding to one) is a bad line,
        // not an allocation as large as the file.
        // Room for the line, its CR LF, and one byte more to tell a longer line.
        if (&mut reader)
            .take(MAX_LINE as u64 + 3)
            .read_until(b'\n', &mut buf)
            .map_err(io)?
            == 0
        {
            return Ok(count);
        }
        lineno += 1;
        let text = buf.strip_suffix(b"\n").unwrap_or(&buf);
        if text.strip_suffix(b"\r").unwrap_or(text).len() > MAX_LINE {
            return Err(ListError::BadLine {
                file: file.to_string(),
                line: lineno,
                expected: "line of at most 256 bytes",
                text: printable(&buf[..80]),
            });
        }
        let line = trim(&buf);
        if line.is_empty() || line[0] == b'#' {
            continue;
        }
        match parse_line(line, role) {
            Some((n, op)) => {
                f(n, op);
                count += 1;
            }
            None => {
                return Err(ListError::BadLine {
                    file: file.to_string(),
                    line: lineno,
                    expected: match role {
                        FileRole::Full => "phone number",
                        FileRole::Changes => "change line (number, date, A or D)",
                    },
                    text: printable(&line[..line.len().min(80)]),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str, role: FileRole) -> Result<Vec<(u64, Op)>, ListError> {
        let mut v = vec![];
        read_lines("f.txt", text.as_bytes(), role, |n, o| v.push((n, o)))?;
        Ok(v)
    }

    #[test]
    fn full_list_forms() {
        let v = read(
            "2125550143\n212,5550144\r\n+1 (310) 555-0188\n\n# c\n",
            FileRole::Full,
        )
        .unwrap();
        let n: Vec<u64> = v.iter().map(|x| x.0).collect();
        assert_eq!(n, vec![12125550143, 12125550144, 13105550188]);
    }

    #[test]
    fn change_list_forms() {
        let v = read(
            "2125550143,2026-11-01,A\n212,5550144,20261101,D\n3105550188, 11/01/2026 , Delete\n",
            FileRole::Changes,
        )
        .unwrap();
        assert_eq!(
            v,
            vec![
                (12125550143, Op::Add),
                (12125550144, Op::Delete),
                (13105550188, Op::Delete)
            ]
        );
    }

    #[test]
    fn change_line_without_flag_is_rejected() {
        let e = read("2125550143,2026-11-01,A\n2125550144\n", FileRole::Changes).unwrap_err();
        assert_eq!(
            e.to_string(),
            "f.txt:2: not a change line (number, date, A or D): `2125550144` (the whole file is rejected)"
        );
    }

    #[test]
    fn delete_flag_in_a_full_list_is_rejected() {
        assert!(read("2125550143,D\n", FileRole::Full).is_err());
    }

    #[test]
    fn two_flags_or_junk_fields_are_rejected() {
        assert!(read("2125550143,A,D\n", FileRole::Changes).is_err());
        assert!(read("2125550143,hello,A\n", FileRole::Changes).is_err());
    }

    #[test]
    fn invalid_npa_is_rejected() {
        assert!(read("1125550143\n", FileRole::Full).is_err());
        assert!(read("2121550143\n", FileRole::Full).is_err());
    }
}
