//! Just enough URI parsing for routing (host, port, transport, lr) and for finding the called
//! number (the user part of sip/sips URIs, the subscriber of tel URIs).

use super::parse::{memchr, split_host_port, trim_slice};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Sip,
    Sips,
    Tel,
    Other,
}

#[derive(Clone, Copy, Debug)]
pub struct Uri<'a> {
    pub scheme: Scheme,
    /// sip/sips: the user part including user parameters (`5550143;phone-context=+1212`);
    /// tel: the telephone-subscriber. `None` when a sip URI has no `@`.
    pub user: Option<&'a [u8]>,
    /// host as written (IPv6 references keep their brackets); empty for tel.
    pub host: &'a [u8],
    pub port: Option<u16>,
    /// uri-parameters after the host (`;lr;transport=tcp`), without the leading `;`.
    pub params: &'a [u8],
    /// `?headers` part, if any.
    pub headers: Option<&'a [u8]>,
}

impl<'a> Uri<'a> {
    pub fn parse(b: &'a [u8]) -> Option<Uri<'a>> {
        let b = trim_slice(b);
        let colon = memchr(b':', b)?;
        let scheme = &b[..colon];
        let rest = &b[colon + 1..];
        let scheme = if scheme.eq_ignore_ascii_case(b"sip") {
            Scheme::Sip
        } else if scheme.eq_ignore_ascii_case(b"sips") {
            Scheme::Sips
        } else if scheme.eq_ignore_ascii_case(b"tel") {
            Scheme::Tel
        } else {
            return Some(Uri {
                scheme: Scheme::Other,
                user: None,
                host: b"",
                port: None,
                params: b"",
                headers: None,
            });
        };
        if scheme == Scheme::Tel {
            let (rest, headers) = match memchr(b'?', rest) {
                Some(q) => (&rest[..q], Some(&rest[q + 1..])),
                None => (rest, None),
            };
            return Some(Uri {
                scheme,
                user: Some(rest),
                host: b"",
                port: None,
                params: b"",
                headers,
            });
        }
        // The userinfo ends at the first `@` (it cannot hold one unescaped) and may contain
        // `?` (RFC 3261 user-unreserved), so the headers' `?` is looked for after it only.
        let (user, rest) = match memchr(b'@', rest) {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        let (hostpart, headers) = match memchr(b'?', rest) {
            Some(q) => (&rest[..q], Some(&rest[q + 1..])),
            None => (rest, None),
        };
        let (hostport, params) = match memchr(b';', hostpart) {
            Some(sc) => (&hostpart[..sc], &hostpart[sc + 1..]),
            None => (hostpart, &b""[..]),
        };
        let (host, port) = split_host_port(hostport)?;
        if host.is_empty() {
            return None;
        }
        Some(Uri {
            scheme,
            user,
            host,
            port,
            params,
            headers,
        })
    }

    /// The value of a uri-parameter (`transport`, `lr`, `user`, ...); `Some(b"")` for a
    /// parameter without value.
    pub fn param(&self, name: &[u8]) -> Option<&'a [u8]> {
        param_in(self.params, name)
    }

    pub fn is_sip(&self) -> bool {
        matches!(self.scheme, Scheme::Sip | Scheme::Sips)
    }
}

/// Look up `name` in a `;`-separated parameter list.
pub fn param_in<'a>(params: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    for p in params.split(|c| *c == b';') {
        let (n, v) = match memchr(b'=', p) {
            Some(eq) => (trim_slice(&p[..eq]), trim_slice(&p[eq + 1..])),
            None => (trim_slice(p), &b""[..]),
        };
        if !n.is_empty() && n.eq_ignore_ascii_case(name) {
            return Some(v);
        }
    }
    None
}

/// The dialled string found in a URI, before normalization: at most 32 digits, whether it was
/// written in global form (`+`), and the phone-context digits when that context is global.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DialString {
    pub digits: [u8; 32],
    pub len: u8,
    pub global: bool,
}

impl DialString {
    pub fn as_bytes(&self) -> &[u8] {
        &self.digits[..self.len as usize]
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DialError {
    #[error("no user part in the URI")]
    NoUser,
    #[error("the user part is not a telephone number")]
    NotANumber,
    #[error("the number is too long")]
    TooLong,
    #[error("unsupported URI scheme")]
    Scheme,
}

/// Extract the dialled digits from the user part of a sip/sips URI or a tel URI.
///
/// Handles percent-escapes, visual separators (`-` `.` `(` `)` and spaces, RFC 3966), user
/// parameters, and a global `phone-context` that completes a local number.
pub fn dial_string(uri: &Uri<'_>) -> Result<DialString, DialError> {
    if uri.scheme == Scheme::Other {
        return Err(DialError::Scheme);
    }
    let user = uri.user.ok_or(DialError::NoUser)?;
    if user.is_empty() {
        return Err(DialError::NoUser);
    }
    // Percent-decode into a small stack buffer: user parts of interest are short.
    let mut dec = [0u8; 96];
    let mut n = 0;
    let mut i = 0;
    while i < user.len() {
        if n == dec.len() {
            return Err(DialError::TooLong);
        }
        let c = user[i];
        if c == b'%' && i + 2 < user.len() {
            let h = hex(user[i + 1]).zip(hex(user[i + 2]));
            match h {
                Some((a, b)) => {
                    dec[n] = a * 16 + b;
                    i += 3;
                }
                None => return Err(DialError::NotANumber),
            }
        } else {
            dec[n] = c;
            i += 1;
        }
        n += 1;
    }
    let dec = &dec[..n];
    let (number, params) = match memchr(b';', dec) {
        Some(sc) => (&dec[..sc], &dec[sc + 1..]),
        None => (dec, &b""[..]),
    };
    let mut out = DialString {
        digits: [0; 32],
        len: 0,
        global: false,
    };
    let mut body = trim_slice(number);
    if body.first() == Some(&b'+') {
        out.global = true;
        body = &body[1..];
    }
    if !out.global {
        if let Some(ctx) = param_in(params, b"phone-context") {
            if ctx.first() == Some(&b'+') {
                out.global = true;
                push_digits(&mut out, &ctx[1..])?;
            }
        }
    }
    let before = out.len;
    push_digits(&mut out, body)?;
    if out.len == before {
        return Err(DialError::NotANumber);
    }
    Ok(out)
}

fn push_digits(out: &mut DialString, s: &[u8]) -> Result<(), DialError> {
    for &c in s {
        match c {
            b'0'..=b'9' => {
                if out.len as usize == out.digits.len() {
                    return Err(DialError::TooLong);
                }
                out.digits[out.len as usize] = c;
                out.len += 1;
            }
            b'-' | b'.' | b'(' | b')' | b' ' => {}
            _ => return Err(DialError::NotANumber),
        }
    }
    Ok(())
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn question_mark_in_the_user_part_is_not_the_headers() {
        let u = Uri::parse(b"sip:a?b@example.com;lr?subject=x").unwrap();
        assert_eq!(u.user, Some(&b"a?b"[..]));
        assert_eq!(u.host, b"example.com");
        assert_eq!(u.params, b"lr");
        assert_eq!(u.headers, Some(&b"subject=x"[..]));
    }

    use super::*;

    fn ds(s: &str) -> Result<String, DialError> {
        let u = Uri::parse(s.as_bytes()).unwrap();
        dial_string(&u).map(|d| {
            format!(
                "{}{}",
                if d.global { "+" } else { "" },
                std::str::from_utf8(d.as_bytes()).unwrap()
            )
        })
    }

    #[test]
    fn sip_user_plain() {
        assert_eq!(ds("sip:2125550143@10.0.0.1:5060").unwrap(), "2125550143");
    }

    #[test]
    fn sip_user_with_dots_keeps_every_digit() {
        assert_eq!(ds("sip:212.555.0143@h").unwrap(), "2125550143");
    }

    #[test]
    fn sip_user_with_visual_separators() {
        assert_eq!(
            ds("sip:+1-(212)-555-0143@h;user=phone").unwrap(),
            "+12125550143"
        );
    }

    #[test]
    fn tel_uri_global() {
        assert_eq!(ds("tel:+1-212-555-0143").unwrap(), "+12125550143");
    }

    #[test]
    fn tel_uri_local_with_global_phone_context() {
        assert_eq!(
            ds("tel:555-0143;phone-context=+1-212").unwrap(),
            "+12125550143"
        );
    }

    #[test]
    fn sip_user_phone_context_in_user_part() {
        assert_eq!(
            ds("sip:5550143;phone-context=+1212@h;user=phone").unwrap(),
            "+12125550143"
        );
    }

    #[test]
    fn domain_phone_context_is_ignored() {
        assert_eq!(
            ds("tel:2125550143;phone-context=example.com").unwrap(),
            "2125550143"
        );
    }

    #[test]
    fn percent_escaped_plus_and_space() {
        assert_eq!(ds("sip:%2B1%20212%205550143@h").unwrap(), "+12125550143");
    }

    #[test]
    fn no_user_part() {
        assert_eq!(ds("sip:carrier.example.com"), Err(DialError::NoUser));
    }

    #[test]
    fn alphabetic_user_is_not_a_number() {
        assert_eq!(ds("sip:alice@h"), Err(DialError::NotANumber));
    }

    #[test]
    fn unknown_scheme() {
        assert_eq!(ds("mailto:a@b"), Err(DialError::Scheme));
    }

    #[test]
    fn route_uri_params() {
        let u = Uri::parse(b"sip:10.0.0.1:5070;transport=tcp;lr").unwrap();
        assert_eq!(u.host, b"10.0.0.1");
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.param(b"transport"), Some(&b"tcp"[..]));
        assert_eq!(u.param(b"lr"), Some(&b""[..]));
    }
}
