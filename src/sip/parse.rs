//! One pass over a SIP message that records *where* things are, not copies of them.
//!
//! The proxy needs a handful of headers (Via, Route, Max-Forwards, Call-ID, CSeq, To/From and the
//! number in the Request-URI) and the byte offsets where it splices its own edits. Everything is a
//! `Span` into the original buffer, so forwarding a message copies it once, when the edits are
//! applied (see `edit.rs`). Header names are matched case-insensitively and in compact form.

use bytes::Bytes;
use thiserror::Error;

/// A byte range into the message buffer. u32 keeps `Header` small; messages are far below 4 GiB.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span {
            start: start as u32,
            end: end as u32,
        }
    }
    pub(crate) fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
    pub fn len(self) -> usize {
        (self.end - self.start) as usize
    }
    pub fn is_empty(self) -> bool {
        self.start == self.end
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Register,
    Update,
    Info,
    Prack,
    Subscribe,
    Notify,
    Refer,
    Message,
    Publish,
    Other,
}

impl Method {
    pub(crate) fn from_bytes(b: &[u8]) -> Method {
        match b {
            b"INVITE" => Method::Invite,
            b"ACK" => Method::Ack,
            b"BYE" => Method::Bye,
            b"CANCEL" => Method::Cancel,
            b"OPTIONS" => Method::Options,
            b"REGISTER" => Method::Register,
            b"UPDATE" => Method::Update,
            b"INFO" => Method::Info,
            b"PRACK" => Method::Prack,
            b"SUBSCRIBE" => Method::Subscribe,
            b"NOTIFY" => Method::Notify,
            b"REFER" => Method::Refer,
            b"MESSAGE" => Method::Message,
            b"PUBLISH" => Method::Publish,
            _ => Method::Other,
        }
    }

    /// Label for metrics; unknown methods share one label so a hostile peer cannot grow the
    /// series count.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Update => "UPDATE",
            Method::Info => "INFO",
            Method::Prack => "PRACK",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Other => "OTHER",
        }
    }

    pub(crate) const ALL: [Method; 15] = [
        Method::Invite,
        Method::Ack,
        Method::Bye,
        Method::Cancel,
        Method::Options,
        Method::Register,
        Method::Update,
        Method::Info,
        Method::Prack,
        Method::Subscribe,
        Method::Notify,
        Method::Refer,
        Method::Message,
        Method::Publish,
        Method::Other,
    ];

    /// Index into `Method::ALL` (declared in the same order).
    pub fn index(self) -> usize {
        self as usize
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderName {
    Via,
    From,
    To,
    CallId,
    CSeq,
    MaxForwards,
    ContentLength,
    Contact,
    Route,
    RecordRoute,
    ProxyRequire,
    PAssertedIdentity,
    Other,
}

impl HeaderName {
    /// Long and compact forms (RFC 3261 section 7.3.3), case-insensitive.
    fn classify(name: &[u8]) -> HeaderName {
        if name.len() == 1 {
            return match name[0].to_ascii_lowercase() {
                b'v' => HeaderName::Via,
                b'f' => HeaderName::From,
                b't' => HeaderName::To,
                b'i' => HeaderName::CallId,
                b'l' => HeaderName::ContentLength,
                b'm' => HeaderName::Contact,
                _ => HeaderName::Other,
            };
        }
        const TABLE: [(&[u8], HeaderName); 11] = [
            (b"via", HeaderName::Via),
            (b"from", HeaderName::From),
            (b"to", HeaderName::To),
            (b"call-id", HeaderName::CallId),
            (b"cseq", HeaderName::CSeq),
            (b"max-forwards", HeaderName::MaxForwards),
            (b"content-length", HeaderName::ContentLength),
            (b"contact", HeaderName::Contact),
            (b"route", HeaderName::Route),
            (b"record-route", HeaderName::RecordRoute),
            (b"proxy-require", HeaderName::ProxyRequire),
        ];
        for (n, h) in TABLE {
            if name.eq_ignore_ascii_case(n) {
                return h;
            }
        }
        if name.eq_ignore_ascii_case(b"p-asserted-identity") {
            return HeaderName::PAssertedIdentity;
        }
        HeaderName::Other
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Header {
    pub name: HeaderName,
    /// The whole header line including its line terminator (and folded continuation lines).
    pub line: Span,
    /// The value, without surrounding whitespace; may contain folded line breaks.
    pub value: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartLine {
    Request {
        method: Method,
        method_span: Span,
        uri: Span,
    },
    Response {
        code: u16,
        reason: Span,
    },
}

/// Why a message could not be used. `status` says which response a request earns (when one can
/// be built at all); `kind` is the metric label.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{detail}")]
pub struct ParseError {
    pub kind: &'static str,
    /// The status a request earns; `None` for what cannot be answered (a bad response).
    pub status: Option<u16>,
    pub detail: &'static str,
}

fn err(kind: &'static str, status: u16, detail: &'static str) -> ParseError {
    ParseError {
        kind,
        status: Some(status),
        detail,
    }
}

/// A response that cannot be used: nothing answers a response.
fn bad_response(kind: &'static str, detail: &'static str) -> ParseError {
    ParseError {
        kind,
        status: None,
        detail,
    }
}

pub(crate) const MAX_HEADERS: usize = 128;

/// A parsed message: the buffer plus where everything is.
#[derive(Clone, Debug)]
pub struct Message {
    pub buf: Bytes,
    pub start: StartLine,
    /// End of the start line including its terminator: where headers begin.
    pub headers_start: u32,
    pub headers: Vec<Header>,
    /// Offset of the empty line that ends the headers.
    pub headers_end: u32,
    pub body: Span,
    /// Whether a Content-Length header was present (needed when switching to a stream transport).
    pub has_content_length: bool,
}

/// Where the header section ends: returns (offset of the blank line, offset of the body).
/// Accepts bare LF line ends as well as CRLF, because some dialers send them.
pub(crate) fn find_headers_end(b: &[u8]) -> Option<(usize, usize)> {
    // Line ends found with SIMD (memchr): a message is scanned at a few bytes per cycle.
    for i in memchr::memchr_iter(b'\n', b) {
        // i is the end of a line; is the next line empty?
        match (b.get(i + 1), b.get(i + 2)) {
            (Some(b'\n'), _) => return Some((i + 1, i + 2)),
            (Some(b'\r'), Some(b'\n')) => return Some((i + 1, i + 3)),
            _ => {}
        }
    }
    None
}

/// Byte classes, looked up instead of compared one by one (the parser's inner loops).
const TOKEN: u8 = 1;
const WS: u8 = 2;
const CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        if b.is_ascii_alphanumeric() {
            t[c] = TOKEN;
        }
        c += 1;
    }
    let punct = b"-.!%*_+`'~";
    let mut i = 0;
    while i < punct.len() {
        t[punct[i] as usize] = TOKEN;
        i += 1;
    }
    t[b' ' as usize] = WS;
    t[b'\t' as usize] = WS;
    t[b'\r' as usize] = WS;
    t[b'\n' as usize] = WS;
    t
};

fn is_token_char(c: u8) -> bool {
    CLASS[c as usize] == TOKEN
}

fn is_ws(c: u8) -> bool {
    CLASS[c as usize] == WS
}

pub fn trim(b: &[u8], mut s: usize, mut e: usize) -> (usize, usize) {
    while s < e && is_ws(b[s]) {
        s += 1;
    }
    while e > s && is_ws(b[e - 1]) {
        e -= 1;
    }
    (s, e)
}

fn parse_u64(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 19 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as u64;
    }
    Some(v)
}

impl Message {
    /// Parse a datagram or a stream frame. For datagrams, a missing Content-Length means the body
    /// runs to the end; octets after Content-Length are ignored (RFC 3261 section 18.3).
    pub fn parse(buf: Bytes) -> Result<Message, ParseError> {
        Self::parse_inner(buf, true).map_err(|(e, _)| e)
    }

    /// `parse`, giving the bytes back when they are not a message (a 400 is answered from
    /// them): the caller keeps no copy, so the message path clones nothing.
    pub(crate) fn parse_or_return(buf: Bytes) -> Result<Message, (ParseError, Bytes)> {
        Self::parse_inner(buf, true)
    }

    /// Parse ignoring Content-Length problems (body = the rest): used only to find the headers
    /// needed to answer 400 to a request whose framing is broken.
    pub(crate) fn parse_lenient(buf: Bytes) -> Result<Message, ParseError> {
        Self::parse_inner(buf, false).map_err(|(e, _)| e)
    }

    fn parse_inner(buf: Bytes, strict: bool) -> Result<Message, (ParseError, Bytes)> {
        match Self::scan(&buf, strict) {
            Ok(m) => Ok(Message { buf, ..m }),
            Err(e) => Err((e, buf)),
        }
    }

    // Long: one pass over the bytes (start line, then each header line with its folding and
    // compact form), kept in one loop so that nothing is scanned twice.
    // The message without its bytes (`parse_inner` puts them in).
    fn scan(b: &[u8], strict: bool) -> Result<Message, ParseError> {
        // Leading CRLFs are keep-alives, not part of the message (section 7.5).
        let mut pos = 0;
        while pos < b.len() && (b[pos] == b'\r' || b[pos] == b'\n') {
            pos += 1;
        }
        let (headers_end, body_start) = match find_headers_end(&b[pos..]) {
            Some((a, c)) => (a + pos, c + pos),
            // Lenient: a datagram without the blank line is all headers.
            None if !strict => (b.len(), b.len()),
            None => return Err(err("truncated", 400, "no end of headers")),
        };

        let line_end = memchr(b'\n', &b[pos..headers_end])
            .map(|i| i + pos)
            .ok_or(err("bad_start_line", 400, "no start line"))?;
        let sl_end = if line_end > pos && b[line_end - 1] == b'\r' {
            line_end - 1
        } else {
            line_end
        };
        let start = match parse_start_line(b, pos, sl_end) {
            Ok(s) => s,
            // Lenient: a placeholder start line, so the headers can still answer a bad request.
            Err(e) if !strict && e.status.is_some() => StartLine::Request {
                method: Method::Other,
                method_span: Span::new(pos, pos),
                uri: Span::new(pos, pos),
            },
            Err(e) => return Err(e),
        };
        let headers_start = line_end + 1;

        let mut headers: Vec<Header> = Vec::with_capacity(20);
        let mut i = headers_start;
        while i < headers_end {
            // One logical header: this line plus continuation lines that start with SP/HT.
            let line_start = i;
            let mut j = i;
            loop {
                let nl = match memchr(b'\n', &b[j..headers_end]) {
                    Some(n) => j + n,
                    None => headers_end - 1,
                };
                j = nl + 1;
                if j >= headers_end || (b[j] != b' ' && b[j] != b'\t') {
                    break;
                }
            }
            let line = Span::new(line_start, j);
            let colon = memchr(b':', &b[line_start..j])
                .map(|c| c + line_start)
                .ok_or(err("bad_header", 400, "header line without a colon"))?;
            let (ns, ne) = trim(b, line_start, colon);
            let name = &b[ns..ne];
            if name.is_empty() || !name.iter().all(|&c| is_token_char(c)) {
                return Err(err("bad_header", 400, "invalid header name"));
            }
            let (vs, ve) = trim(b, colon + 1, j);
            if headers.len() >= MAX_HEADERS {
                return Err(err("too_many_headers", 400, "too many headers"));
            }
            headers.push(Header {
                name: HeaderName::classify(name),
                line,
                value: Span::new(vs, ve),
            });
            i = j;
        }

        let mut content_length: Option<usize> = None;
        for h in headers
            .iter()
            .filter(|h| strict && h.name == HeaderName::ContentLength)
        {
            if content_length.is_some() {
                return Err(err("content_length", 400, "more than one Content-Length"));
            }
            let v = &b[h.value.range()];
            let n = parse_u64(v).ok_or(err("content_length", 400, "invalid Content-Length"))?;
            content_length = Some(n as usize);
        }
        let available = b.len() - body_start;
        let body_len = match content_length {
            Some(n) if n > available => {
                return Err(err(
                    "content_length",
                    400,
                    "Content-Length larger than the message",
                ))
            }
            Some(n) => n,
            None => available,
        };
        let body = Span::new(body_start, body_start + body_len);

        Ok(Message {
            buf: Bytes::new(),
            start,
            headers_start: headers_start as u32,
            headers,
            headers_end: headers_end as u32,
            body,
            has_content_length: content_length.is_some(),
        })
    }

    pub fn bytes(&self, s: Span) -> &[u8] {
        &self.buf[s.range()]
    }

    pub(crate) fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    pub fn method(&self) -> Option<Method> {
        match self.start {
            StartLine::Request { method, .. } => Some(method),
            _ => None,
        }
    }

    pub fn request_uri(&self) -> Option<Span> {
        match self.start {
            StartLine::Request { uri, .. } => Some(uri),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { code, .. } => Some(code),
            _ => None,
        }
    }

    pub fn header(&self, name: HeaderName) -> Option<&Header> {
        self.headers.iter().find(|h| h.name == name)
    }

    pub(crate) fn header_value(&self, name: HeaderName) -> Option<&[u8]> {
        self.header(name).map(|h| self.bytes(h.value))
    }

    pub fn call_id(&self) -> &[u8] {
        self.header_value(HeaderName::CallId).unwrap_or(b"")
    }

    /// (sequence number, method) from CSeq.
    pub fn cseq(&self) -> Option<(u32, Method)> {
        let v = self.header_value(HeaderName::CSeq)?;
        let (num, rest) = split_ws(v)?;
        let n = parse_u64(num).filter(|n| *n < (1u64 << 31))? as u32;
        let m = trim_slice(rest);
        Some((n, Method::from_bytes(m)))
    }

    /// All Via values in order (top first), across Via headers and comma lists.
    pub fn vias(&self) -> impl Iterator<Item = Span> + '_ {
        self.headers
            .iter()
            .filter(|h| h.name == HeaderName::Via)
            .flat_map(move |h| CommaSplit::new(&self.buf, h.value))
    }

    pub(crate) fn top_via(&self) -> Option<Via> {
        self.vias().next().and_then(|s| Via::parse(&self.buf, s))
    }

    pub(crate) fn max_forwards(&self) -> Option<Result<u8, ()>> {
        let v = self.header_value(HeaderName::MaxForwards)?;
        Some(
            parse_u64(v)
                .filter(|n| *n <= 255)
                .map(|n| n as u8)
                .ok_or(()),
        )
    }

    /// The value of the `tag` parameter of To or From, if any.
    pub fn tag(&self, name: HeaderName) -> Option<&[u8]> {
        let h = self.header(name)?;
        let v = self.bytes(h.value);
        name_addr_param(v, b"tag")
    }

    /// The whole message as received up to the end of the body (drops trailing octets after
    /// Content-Length in a datagram).
    pub(crate) fn wire_len(&self) -> usize {
        self.body.end as usize
    }

    /// Semantic checks RFC 3261 demands of a request before a proxy may act on it (sections
    /// 8.2 and 16.3). Returns what they proved, or the status the request earns.
    pub fn validate_request(&self) -> Result<ValidRequest<'_>, ParseError> {
        let StartLine::Request {
            method,
            method_span,
            uri,
        } = self.start
        else {
            return Err(err("not_a_request", 400, "not a request"));
        };
        self.check_header_counts()?;
        let bad_cseq = || err("bad_cseq", 400, "invalid CSeq");
        let cseq_value = self.header_value(HeaderName::CSeq).ok_or_else(bad_cseq)?;
        let (cseq, cseq_method) = self.cseq().ok_or_else(bad_cseq)?;
        let cseq_method_text = split_ws(cseq_value)
            .map(|(_, r)| trim_slice(r))
            .unwrap_or(b"");
        if cseq_method != method || cseq_method_text != self.bytes(method_span) {
            return Err(err(
                "bad_cseq",
                400,
                "CSeq method does not match the request",
            ));
        }
        let max_forwards = match self.max_forwards() {
            Some(Err(())) => return Err(err("bad_max_forwards", 400, "invalid Max-Forwards")),
            Some(Ok(n)) => Some(n),
            None => None,
        };
        // Every Via must parse; the top one is kept (parsed once).
        let mut top_via = None;
        for s in self.vias() {
            let via = Via::parse(&self.buf, s).ok_or(err("bad_via", 400, "invalid Via"))?;
            top_via.get_or_insert(via);
        }
        let missing_via = || err("missing_header", 400, "missing required header");
        let via_header = *self.header(HeaderName::Via).ok_or_else(missing_via)?;
        let via = top_via.ok_or_else(missing_via)?;
        if self.call_id().is_empty() || self.call_id().iter().any(|c| is_ws(*c)) {
            return Err(err("bad_call_id", 400, "invalid Call-ID"));
        }
        self.check_addresses()?;
        Ok(ValidRequest {
            msg: self,
            method,
            uri,
            via,
            via_header,
            cseq,
            max_forwards,
        })
    }
}

impl Message {
    /// From, To, Call-ID, CSeq and Via present; the single-valued ones once.
    fn check_header_counts(&self) -> Result<(), ParseError> {
        let mut counts = [0usize; 6];
        for h in &self.headers {
            let idx = match h.name {
                HeaderName::From => 0,
                HeaderName::To => 1,
                HeaderName::CallId => 2,
                HeaderName::CSeq => 3,
                HeaderName::MaxForwards => 4,
                HeaderName::Via => 5,
                _ => continue,
            };
            counts[idx] += 1;
        }
        if counts[0] == 0 || counts[1] == 0 || counts[2] == 0 || counts[3] == 0 || counts[5] == 0 {
            return Err(err("missing_header", 400, "missing required header"));
        }
        if counts[..5].iter().any(|c| *c > 1) {
            return Err(err(
                "duplicate_header",
                400,
                "single-valued header repeated",
            ));
        }
        Ok(())
    }

    /// To, From and Contact are name-addrs (or `*`); Route values are `<...>` name-addrs.
    fn check_addresses(&self) -> Result<(), ParseError> {
        for h in &self.headers {
            match h.name {
                HeaderName::From | HeaderName::To if !valid_name_addr(self.bytes(h.value)) => {
                    return Err(err("bad_address", 400, "invalid To or From"));
                }
                HeaderName::Contact => {
                    let v = self.bytes(h.value);
                    if v != b"*"
                        && !CommaSplit::new(&self.buf, h.value)
                            .all(|s| valid_name_addr(self.bytes(s)))
                    {
                        return Err(err("bad_address", 400, "invalid Contact"));
                    }
                }
                HeaderName::Route | HeaderName::RecordRoute
                    if !CommaSplit::new(&self.buf, h.value).all(|s| {
                        let v = self.bytes(s);
                        v.first() == Some(&b'<') || v.first() == Some(&b'"')
                    }) =>
                {
                    return Err(err("bad_route", 400, "Route values must be name-addr"));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// A request that passed `Message::validate_request`, with what validation proved, so that
/// nothing later re-derives it (or assumes it).
#[derive(Clone, Copy, Debug)]
pub struct ValidRequest<'m> {
    pub msg: &'m Message,
    pub method: Method,
    /// The Request-URI.
    pub uri: Span,
    /// The top Via value, parsed.
    pub via: Via,
    /// The first Via header line (it holds the top Via value).
    pub via_header: Header,
    pub cseq: u32,
    /// `None` when the request has no Max-Forwards header.
    pub max_forwards: Option<u8>,
}

impl ValidRequest<'_> {
    /// An initial request: no To tag yet.
    pub(crate) fn is_initial(&self) -> bool {
        self.msg.tag(HeaderName::To).is_none()
    }
}

pub(crate) fn memchr(c: u8, b: &[u8]) -> Option<usize> {
    memchr::memchr(c, b)
}

pub(crate) fn trim_slice(b: &[u8]) -> &[u8] {
    let (s, e) = trim(b, 0, b.len());
    &b[s..e]
}

/// Split at the first run of whitespace: (first word, rest).
fn split_ws(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let b = trim_slice(b);
    let i = b.iter().position(|c| is_ws(*c))?;
    Some((&b[..i], &b[i..]))
}

fn parse_start_line(b: &[u8], s: usize, e: usize) -> Result<StartLine, ParseError> {
    let line = &b[s..e];
    if line.starts_with(b"SIP/") {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
        let sp1 = memchr(b' ', line).ok_or(bad_response("bad_start_line", "bad status line"))?;
        if &line[..sp1] != b"SIP/2.0" {
            return Err(bad_response("bad_version", "unsupported SIP version"));
        }
        let rest = &line[sp1 + 1..];
        if rest.len() < 3 || (rest.len() > 3 && rest[3] != b' ') {
            return Err(bad_response("bad_status", "bad status code"));
        }
        let code = parse_u64(&rest[..3]).filter(|c| (100..=699).contains(c));
        let code = code.ok_or(bad_response("bad_status", "bad status code"))? as u16;
        let rs = (s + sp1 + 1 + 4).min(e);
        return Ok(StartLine::Response {
            code,
            reason: Span::new(rs, e),
        });
    }
    // Request-Line = Method SP Request-URI SP SIP-Version: exactly single spaces (RFC 4475 3.1.2.9).
    let mut parts = line.split(|c| *c == b' ');
    let (m, u, v) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(u), Some(v), None) => (m, u, v),
        _ => return Err(err("bad_start_line", 400, "malformed request line")),
    };
    if m.is_empty() || !m.iter().all(|c| is_token_char(*c)) || u.is_empty() {
        return Err(err("bad_start_line", 400, "malformed request line"));
    }
    if !v.starts_with(b"SIP/") {
        return Err(err("bad_start_line", 400, "malformed request line"));
    }
    if v != b"SIP/2.0" {
        return Err(err("bad_version", 505, "SIP version not supported"));
    }
    if u.iter()
        .any(|c| *c == b'<' || *c == b'>' || *c == b'\t' || *c < 0x21)
    {
        return Err(err("bad_request_uri", 400, "malformed Request-URI"));
    }
    let us = s + m.len() + 1;
    Ok(StartLine::Request {
        method: Method::from_bytes(m),
        method_span: Span::new(s, s + m.len()),
        uri: Span::new(us, us + u.len()),
    })
}

/// Iterates the comma-separated values of a header, respecting quotes and angle brackets.
pub(crate) struct CommaSplit<'a> {
    b: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> CommaSplit<'a> {
    pub fn new(b: &'a [u8], s: Span) -> Self {
        CommaSplit {
            b,
            pos: s.start as usize,
            end: s.end as usize,
        }
    }
}

impl Iterator for CommaSplit<'_> {
    type Item = Span;
    fn next(&mut self) -> Option<Span> {
        if self.pos >= self.end {
            return None;
        }
        let start = self.pos;
        let (mut quoted, mut angle, mut i) = (false, false, self.pos);
        while i < self.end {
            // Jump to the next byte that can change the state (SIMD); most bytes cannot.
            let rest = &self.b[i..self.end];
            let skip = if quoted {
                memchr::memchr2(b'"', b'\\', rest)
            } else if angle {
                memchr::memchr2(b'>', b'"', rest)
            } else {
                memchr::memchr3(b',', b'"', b'<', rest)
            };
            let Some(skip) = skip else {
                i = self.end;
                break;
            };
            i += skip;
            match self.b[i] {
                b'\\' => i += 1,
                b'"' => quoted = !quoted,
                b'<' => angle = true,
                b'>' => angle = false,
                _ => break, // an unquoted comma outside <...>
            }
            i += 1;
        }
        let i = i.min(self.end);
        self.pos = i + 1;
        let (s, e) = trim(self.b, start, i);
        Some(Span::new(s, e))
    }
}

/// A parsed Via value. Only what a proxy needs.
#[derive(Clone, Copy, Debug, Default)]
pub struct Via {
    pub value: Span,
    pub transport: Span,
    pub host: Span,
    pub port: Option<u16>,
    pub branch: Option<Span>,
    pub received: Option<Span>,
    /// `Some(None)`: `;rport` without a value (the sender asks us to fill it in).
    pub rport: Option<Option<u16>>,
    /// The whole `rport[=n]` parameter, to replace it with a filled-in value.
    pub rport_param: Option<Span>,
    /// Where the parameters start (the first `;`), i.e. the end of sent-by.
    pub params_start: u32,
}

impl Via {
    // Long: one pass over a Via value (sent-protocol with its optional LWS, sent-by, then
    // each parameter a proxy needs), as RFC 3261's grammar orders it.
    pub fn parse(b: &[u8], s: Span) -> Option<Via> {
        let (start, end) = (s.start as usize, s.end as usize);
        // sent-protocol: name / version / transport, with optional LWS around the slashes.
        let mut i = start;
        let mut fields = [Span::default(); 3];
        for (k, f) in fields.iter_mut().enumerate() {
            while i < end && is_ws(b[i]) {
                i += 1;
            }
            let fs = i;
            while i < end && is_token_char(b[i]) {
                i += 1;
            }
            if fs == i {
                return None;
            }
            *f = Span::new(fs, i);
            while i < end && is_ws(b[i]) {
                i += 1;
            }
            if k < 2 {
                if i >= end || b[i] != b'/' {
                    return None;
                }
                i += 1;
            }
        }
        if !b[fields[0].range()].eq_ignore_ascii_case(b"SIP") || &b[fields[1].range()] != b"2.0" {
            return None;
        }
        // sent-by = host [ ":" port ]
        let hs = i;
        let params_start = memchr(b';', &b[i..end]).map(|p| p + i).unwrap_or(end);
        let (hs, he) = trim(b, hs, params_start);
        if hs == he {
            return None;
        }
        let sent_by = &b[hs..he];
        let (host, port) = split_host_port(sent_by)?;
        let host_off = hs + (host.as_ptr() as usize - sent_by.as_ptr() as usize);
        let host = Span::new(host_off, host_off + host.len());
        let mut via = Via {
            value: s,
            transport: fields[2],
            host,
            port,
            params_start: params_start as u32,
            ..Via::default()
        };
        // ;name[=value] parameters; an empty parameter is a syntax error (RFC 4475 3.1.2.1).
        let mut p = params_start;
        while p < end {
            let ps = p + 1;
            let pe = memchr(b';', &b[ps..end]).map(|x| x + ps).unwrap_or(end);
            let (ns, ne) = trim(b, ps, pe);
            if ns == ne {
                return None;
            }
            let param = &b[ns..ne];
            let (name, value) = match memchr(b'=', param) {
                Some(eq) => {
                    let (a, _) = trim(b, ns, ns + eq);
                    let (vs, ve) = trim(b, ns + eq + 1, ne);
                    (&b[a..ns + eq], Some(Span::new(vs, ve)))
                }
                None => (param, None),
            };
            let name = trim_slice(name);
            if name.is_empty() || !name.iter().all(|c| is_token_char(*c)) {
                return None;
            }
            if name.eq_ignore_ascii_case(b"branch") {
                via.branch = Some(value.filter(|v| !v.is_empty())?);
            } else if name.eq_ignore_ascii_case(b"received") {
                via.received = Some(value?);
            } else if name.eq_ignore_ascii_case(b"rport") {
                via.rport_param = Some(Span::new(ns, ne));
                via.rport = Some(match value {
                    Some(v) => Some(parse_u64(&b[v.range()]).filter(|n| *n <= 65535)? as u16),
                    None => None,
                });
            }
            p = pe;
        }
        Some(via)
    }

    pub fn transport<'a>(&self, b: &'a [u8]) -> &'a [u8] {
        &b[self.transport.range()]
    }
}

/// host [":" port], host possibly an IPv6 reference `[..]`.
pub(crate) fn split_host_port(b: &[u8]) -> Option<(&[u8], Option<u16>)> {
    if b.first() == Some(&b'[') {
        let close = memchr(b']', b)?;
        let host = &b[..=close];
        let rest = &b[close + 1..];
        if rest.is_empty() {
            return Some((host, None));
        }
        if rest[0] != b':' {
            return None;
        }
        let port = parse_u64(&rest[1..]).filter(|p| *p <= 65535)? as u16;
        return Some((host, Some(port)));
    }
    match memchr(b':', b) {
        Some(c) => {
            let port = parse_u64(trim_slice(&b[c + 1..])).filter(|p| *p <= 65535)? as u16;
            let host = trim_slice(&b[..c]);
            if host.is_empty() {
                return None;
            }
            Some((host, Some(port)))
        }
        None => {
            if b.iter().any(|c| is_ws(*c)) {
                return None;
            }
            Some((b, None))
        }
    }
}

/// Find the URI inside a name-addr (`"Name" <uri>;params`) or addr-spec (`uri;params`) value.
/// Returns the URI slice.
pub(crate) fn name_addr_uri(v: &[u8]) -> &[u8] {
    if let Some(lt) = find_unquoted(v, b'<') {
        let rest = &v[lt + 1..];
        let gt = memchr(b'>', rest).unwrap_or(rest.len());
        return trim_slice(&rest[..gt]);
    }
    // addr-spec: the URI ends at the first `;` (header parameters; RFC 3261 section 20.10).
    let end = memchr(b';', v).unwrap_or(v.len());
    trim_slice(&v[..end])
}

fn find_unquoted(v: &[u8], c: u8) -> Option<usize> {
    // The quote and the escape are the scanner's own bytes: it cannot look for them.
    debug_assert!(c != b'"' && c != b'\\');
    find_unquoted_or_end(v, Some(c)).ok().flatten()
}

/// Where `c` first appears outside a quoted string (`Ok(None)`: nowhere, or `c` is `None`), or
/// `Err(())` when a quoted string is left open. Jumps between the bytes that matter (SIMD).
fn find_unquoted_or_end(v: &[u8], c: Option<u8>) -> Result<Option<usize>, ()> {
    let mut quoted = false;
    let mut i = 0;
    while i < v.len() {
        let rest = &v[i..];
        let next = match (quoted, c) {
            (true, _) => memchr::memchr2(b'"', b'\\', rest),
            (false, Some(c)) => memchr::memchr2(b'"', c, rest),
            (false, None) => memchr::memchr(b'"', rest),
        };
        let Some(k) = next else { break };
        i += k;
        match v[i] {
            b'\\' => i += 1,
            b'"' => quoted = !quoted,
            _ => return Ok(Some(i)),
        }
        i += 1;
    }
    if quoted {
        Err(())
    } else {
        Ok(None)
    }
}

/// A header parameter of a name-addr value (after the `>` or the addr-spec).
pub(crate) fn name_addr_param<'a>(v: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let params = match find_unquoted(v, b'<') {
        Some(lt) => {
            let gt = memchr(b'>', &v[lt..])? + lt;
            &v[gt + 1..]
        }
        None => &v[memchr(b';', v)?..],
    };
    for p in params.split(|c| *c == b';') {
        let (n, val) = match memchr(b'=', p) {
            Some(eq) => (trim_slice(&p[..eq]), trim_slice(&p[eq + 1..])),
            None => (trim_slice(p), &b""[..]),
        };
        if n.eq_ignore_ascii_case(name) {
            return Some(val);
        }
    }
    None
}

/// Syntax check of To/From/Contact values where RFC 4475 shows real-world breakage:
/// unbalanced quotes, unquoted display names with separators, spaces inside `<...>`, and an
/// addr-spec carrying `?` headers or `,` outside angle brackets.
pub(crate) fn valid_name_addr(v: &[u8]) -> bool {
    let v = trim_slice(v);
    if v.is_empty() {
        return false;
    }
    // Balanced quotes.
    if find_unquoted_or_end(v, None).is_err() {
        return false;
    }
    match find_unquoted(v, b'<') {
        Some(lt) => {
            let display = trim_slice(&v[..lt]);
            if !display.is_empty() && display[0] != b'"' {
                // Unquoted display name: tokens separated by LWS only.
                if !display.iter().all(|c| is_token_char(*c) || is_ws(*c)) {
                    return false;
                }
            }
            let rest = &v[lt + 1..];
            let Some(gt) = memchr(b'>', rest) else {
                return false;
            };
            let uri = &rest[..gt];
            !uri.is_empty() && !uri.iter().any(|c| is_ws(*c)) && memchr(b':', uri).is_some()
        }
        None => {
            let end = memchr(b';', v).unwrap_or(v.len());
            let uri = trim_slice(&v[..end]);
            memchr(b':', uri).is_some()
                && !uri
                    .iter()
                    .any(|c| is_ws(*c) || *c == b'?' || *c == b',' || *c == b'"')
        }
    }
}

impl Message {
    /// The value of the first header with this (long-form) name that the parser does not
    /// classify (`X-Callgate-Campaign`, `Privacy`...), case-insensitive.
    pub(crate) fn other_header(&self, name: &[u8]) -> Option<&[u8]> {
        self.headers
            .iter()
            .filter(|h| h.name == HeaderName::Other)
            .find(|h| {
                let line = self.bytes(h.line);
                line.len() > name.len()
                    && line[..name.len()].eq_ignore_ascii_case(name)
                    && matches!(line[name.len()], b':' | b' ' | b'\t')
            })
            .map(|h| self.bytes(h.value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(s: &str) -> Result<Message, ParseError> {
        Message::parse(Bytes::from(s.replace('\n', "\r\n")))
    }

    const INVITE: &str = "INVITE sip:2125550143@10.0.0.1 SIP/2.0\n\
Via: SIP/2.0/UDP 10.0.0.2:5061;branch=z9hG4bK1;rport\n\
From: <sip:+12025550100@10.0.0.2>;tag=a\n\
To: <sip:2125550143@10.0.0.1>\n\
Call-ID: c1\n\
CSeq: 1 INVITE\n\
Max-Forwards: 70\n\
Content-Length: 4\n\
\n\
abcdEXTRA";

    #[test]
    fn parses_request_line_and_headers() {
        let m = msg(INVITE).unwrap();
        assert_eq!(m.method(), Some(Method::Invite));
        assert_eq!(
            m.bytes(m.request_uri().unwrap()),
            b"sip:2125550143@10.0.0.1"
        );
        assert_eq!(m.call_id(), b"c1");
        assert_eq!(m.cseq(), Some((1, Method::Invite)));
        assert_eq!(m.bytes(m.body), b"abcd");
        assert!(m.validate_request().is_ok());
    }

    #[test]
    fn top_via_has_branch_and_empty_rport() {
        let m = msg(INVITE).unwrap();
        let v = m.top_via().unwrap();
        assert_eq!(m.bytes(v.host), b"10.0.0.2");
        assert_eq!(v.port, Some(5061));
        assert_eq!(m.bytes(v.branch.unwrap()), b"z9hG4bK1");
        assert_eq!(v.rport, Some(None));
    }

    #[test]
    fn compact_headers_are_recognised() {
        let m = msg("BYE sip:x@h SIP/2.0\nv: SIP/2.0/TCP h;branch=z9hG4bKa\nf: <sip:a@h>;tag=1\nt: <sip:b@h>;tag=2\ni: abc\nCSeq: 2 BYE\nl: 0\n\n").unwrap();
        assert_eq!(m.call_id(), b"abc");
        assert!(m.top_via().is_some());
        assert_eq!(m.tag(HeaderName::To), Some(&b"2"[..]));
        assert!(m.validate_request().is_ok());
    }

    #[test]
    fn content_length_larger_than_datagram_is_rejected() {
        let e = msg("OPTIONS sip:h SIP/2.0\nl: 99\n\nabc").unwrap_err();
        assert_eq!(e.status, Some(400));
    }

    #[test]
    fn two_content_lengths_are_rejected() {
        assert!(msg("OPTIONS sip:h SIP/2.0\nl: 0\nContent-Length: 0\n\n").is_err());
    }

    #[test]
    fn negative_content_length_is_rejected() {
        assert!(msg("OPTIONS sip:h SIP/2.0\nContent-Length: -5\n\n").is_err());
    }

    #[test]
    fn double_space_in_request_line_is_rejected() {
        assert_eq!(
            msg("INVITE  sip:h SIP/2.0\n\n").unwrap_err().status,
            Some(400)
        );
    }

    #[test]
    fn unknown_version_earns_505() {
        assert_eq!(
            msg("INVITE sip:h SIP/7.0\n\n").unwrap_err().status,
            Some(505)
        );
    }

    #[test]
    fn folded_via_with_spaces_parses() {
        let m = msg(
            "OPTIONS sip:h SIP/2.0\nVia  : SIP  /   2.0\n /UDP\n    192.0.2.2;branch=390skdjuw\n\n",
        )
        .unwrap();
        let v = m.top_via().unwrap();
        assert_eq!(m.bytes(v.host), b"192.0.2.2");
        assert_eq!(v.transport(&m.buf), b"UDP");
    }

    #[test]
    fn empty_via_parameter_is_invalid() {
        let b = Bytes::from_static(b"SIP/2.0/UDP 192.0.2.15;;,;,,");
        assert!(Via::parse(&b, Span::new(0, b.len())).is_none());
    }

    #[test]
    fn response_with_code_over_699_is_invalid() {
        assert!(msg("SIP/2.0 4294967301 better not break the receiver\n\n").is_err());
    }

    #[test]
    fn ipv6_sent_by() {
        assert_eq!(
            split_host_port(b"[::1]:5060"),
            Some((&b"[::1]"[..], Some(5060)))
        );
    }

    #[test]
    fn name_addr_checks() {
        assert!(valid_name_addr(b"\"Bell, Alexander\" <sip:a@b>;tag=1"));
        assert!(!valid_name_addr(b"Bell, Alexander <sip:a@b>;tag=1"));
        assert!(!valid_name_addr(b"\"Mr. J. User <sip:j.user@example.com>"));
        assert!(!valid_name_addr(b"\"W\" < sip:t@example.org >"));
        assert!(!valid_name_addr(
            b"sip:user@example.com?Route=%3Csip:sip.example.com%3E"
        ));
        assert!(valid_name_addr(b"sip:caller@example.net;tag=1"));
    }
}
