//! Editing a message as splices over its original bytes ("lumps", as Kamailio calls them):
//! every change is (replace bytes start..end with this text), applied in one copy when the
//! message is written out. Headers and body we do not touch are copied verbatim, compact forms,
//! folding and SDP included.

use super::parse::{HeaderName, Message};
use bytes::{BufMut, Bytes, BytesMut};
use std::cell::Cell;
use std::fmt::Write as _;

#[derive(Clone, Copy)]
struct Op {
    start: u32,
    end: u32,
    ins_start: u32,
    ins_end: u32,
}

thread_local! {
    /// The thread's splice lists and text, reused message after message (a `Splicer` takes
    /// them and `finish` gives them back), so writing a message allocates only its bytes.
    static SCRATCH: Cell<(Vec<Op>, Vec<u8>)> = const { Cell::new((Vec::new(), Vec::new())) };
}

/// The message as `ops` (sorted by start) make it, piece by piece: the source between edits
/// and each edit's text. An edit overlapping the one before is skipped (callers never produce
/// these).
fn pieces<'a>(ops: &[Op], src: &'a [u8], text: &'a [u8], mut piece: impl FnMut(&'a [u8])) {
    let mut pos = 0usize;
    for op in ops {
        let (s, e) = (op.start as usize, op.end as usize);
        if s < pos {
            continue;
        }
        piece(&src[pos..s]);
        piece(&text[op.ins_start as usize..op.ins_end as usize]);
        pos = e;
    }
    piece(&src[pos..]);
}

/// Collects splices against one message.
pub(crate) struct Splicer<'m> {
    msg: &'m Message,
    ops: Vec<Op>,
    text: Vec<u8>,
}

impl<'m> Splicer<'m> {
    pub fn new(msg: &'m Message) -> Self {
        let (mut ops, mut text) = SCRATCH.take();
        ops.clear();
        text.clear();
        ops.reserve(8);
        text.reserve(256);
        Splicer { msg, ops, text }
    }

    /// Replace `start..end` (use start == end to insert) with what `f` writes.
    pub fn replace(&mut self, start: usize, end: usize, f: impl FnOnce(&mut Vec<u8>)) {
        let ins_start = self.text.len();
        f(&mut self.text);
        self.ops.push(Op {
            start: start as u32,
            end: end as u32,
            ins_start: ins_start as u32,
            ins_end: self.text.len() as u32,
        });
    }

    pub fn insert(&mut self, at: usize, f: impl FnOnce(&mut Vec<u8>)) {
        self.replace(at, at, f)
    }

    pub fn delete(&mut self, start: usize, end: usize) {
        self.replace(start, end, |_| {})
    }

    /// Write the edited message (up to the end of its body; trailing datagram junk is dropped).
    pub fn finish(mut self) -> Bytes {
        // Stable sort keeps insertions at the same offset in the order they were made.
        self.ops.sort_by_key(|o| o.start);
        let src = &self.msg.buf[..self.msg.wire_len()];
        // Exactly the message's size: a full vector becomes `Bytes` without a second
        // allocation (one with room to spare would get a shared header allocated).
        let mut len = 0;
        pieces(&self.ops, src, &self.text, |p| len += p.len());
        let mut out = Vec::with_capacity(len);
        pieces(&self.ops, src, &self.text, |p| out.extend_from_slice(p));
        SCRATCH.set((
            std::mem::take(&mut self.ops),
            std::mem::take(&mut self.text),
        ));
        Bytes::from(out)
    }
}

/// An extra header for a generated response.
pub(crate) struct ExtraHeader<'a> {
    pub name: &'a str,
    pub value: &'a [u8],
}

/// Build a response to `req` as RFC 3261 section 8.2.6 says: Via, From, To, Call-ID and CSeq
/// copied (verbatim, so compact forms and parameters survive), a To tag added when the request
/// had none (except for 100), no body.
pub(crate) fn build_response(
    req: &Message,
    status: u16,
    phrase: &str,
    to_tag: Option<&str>,
    extra: &[ExtraHeader<'_>],
) -> Bytes {
    let b = &req.buf;
    let mut out = BytesMut::with_capacity(512);
    let _ = write!(out, "SIP/2.0 {status} ");
    out.put_slice(phrase.as_bytes());
    out.put_slice(b"\r\n");
    for h in &req.headers {
        match h.name {
            HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                put_line(&mut out, &b[h.line.range()]);
            }
            HeaderName::To => {
                let line = &b[h.line.range()];
                let value_end = (h.value.end - h.line.start) as usize;
                let has_tag = req.tag(HeaderName::To).is_some();
                match to_tag {
                    Some(tag) if !has_tag && status > 100 => {
                        out.put_slice(&line[..value_end]);
                        out.put_slice(b";tag=");
                        out.put_slice(tag.as_bytes());
                        put_line(&mut out, &line[value_end..]);
                    }
                    _ => put_line(&mut out, line),
                }
            }
            _ => {}
        }
    }
    for x in extra {
        out.put_slice(x.name.as_bytes());
        out.put_slice(b": ");
        out.put_slice(x.value);
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"Content-Length: 0\r\n\r\n");
    out.freeze()
}

/// Copy a header line, normalizing a bare-LF terminator to CRLF.
fn put_line(out: &mut BytesMut, line: &[u8]) {
    let mut body = line;
    while let Some((&last, rest)) = body.split_last() {
        if last == b'\n' || last == b'\r' {
            body = rest;
        } else {
            break;
        }
    }
    out.put_slice(body);
    out.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Message {
        Message::parse(Bytes::from(s.replace('\n', "\r\n"))).unwrap()
    }

    #[test]
    fn splices_apply_in_offset_order() {
        let m = parse("OPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nMax-Forwards: 70\nl: 0\n\n");
        let mf = m.header(HeaderName::MaxForwards).unwrap().value;
        let mut s = Splicer::new(&m);
        s.replace(mf.start as usize, mf.end as usize, |t| {
            t.extend_from_slice(b"69")
        });
        s.insert(m.headers_start as usize, |t| {
            t.extend_from_slice(b"Via: SIP/2.0/UDP me;branch=z9hG4bKx\r\n")
        });
        let out = s.finish();
        let text = std::str::from_utf8(&out).unwrap();
        assert!(text.contains("Max-Forwards: 69\r\n"));
        assert!(text.starts_with(
            "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP me;branch=z9hG4bKx\r\nVia: SIP/2.0/UDP h"
        ));
    }

    #[test]
    fn response_copies_headers_and_adds_to_tag() {
        let m = parse("INVITE sip:a@b SIP/2.0\nv: SIP/2.0/UDP h;branch=z9hG4bK1\nf: <sip:x@y>;tag=1\nt: <sip:a@b>\ni: cid\nCSeq: 1 INVITE\nContact: <sip:c@d>\nl: 0\n\n");
        let r = build_response(
            &m,
            603,
            "Decline",
            Some("abc"),
            &[ExtraHeader {
                name: "Reason",
                value: b"Q.850;cause=21",
            }],
        );
        let text = std::str::from_utf8(&r).unwrap();
        assert!(
            text.starts_with("SIP/2.0 603 Decline\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"),
            "{text}"
        );
        assert!(text.contains("t: <sip:a@b>;tag=abc\r\n"));
        assert!(!text.contains("Contact"));
        assert!(text.ends_with("Reason: Q.850;cause=21\r\nContent-Length: 0\r\n\r\n"));
    }
}
