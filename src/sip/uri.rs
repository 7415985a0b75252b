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
    pub(crate) fn param(&self, name: &[u8]) -> Option<&'a [u8]> {
        param_in(self.params, name)
    }

    pub(crate) fn is_sip(&self) -> bool {
        matches!(self.scheme, Scheme::Sip | Scheme::Sips)
    }
}

/// Look up `name` in a `;`-separated parameter list.
pub(crate) fn param_in<'a>(params: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
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

    #[test]
    fn route_uri_params() {
        let u = Uri::parse(b"sip:10.0.0.1:5070;transport=tcp;lr").unwrap();
        assert_eq!(u.host, b"10.0.0.1");
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.param(b"transport"), Some(&b"tcp"[..]));
        assert_eq!(u.param(b"lr"), Some(&b""[..]));
    }
}
