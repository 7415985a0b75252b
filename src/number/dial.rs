//! The dialled string in a URI's user part (RFC 3966 syntax), before normalization.

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

/// Extract the dialled digits from the user part of a sip/sips URI or the subscriber of a tel
/// URI (as written: escapes and user parameters included; `None` when the URI has no user part).
///
/// Handles percent-escapes, visual separators (`-` `.` `(` `)` and spaces, RFC 3966), user
/// parameters, and a global `phone-context` that completes a local number.
pub fn dial_string(user: Option<&[u8]>) -> Result<DialString, DialError> {
    let user = user.ok_or(DialError::NoUser)?;
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
    let (number, params) = match dec.iter().position(|c| *c == b';') {
        Some(sc) => (&dec[..sc], &dec[sc + 1..]),
        None => (dec, &b""[..]),
    };
    let mut out = DialString {
        digits: [0; 32],
        len: 0,
        global: false,
    };
    let mut body = number.trim_ascii();
    if body.first() == Some(&b'+') {
        out.global = true;
        body = &body[1..];
    }
    if !out.global {
        if let Some(ctx) = phone_context(params) {
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

/// The value of a `phone-context` user parameter (`;`-separated `name=value` pairs).
fn phone_context(params: &[u8]) -> Option<&[u8]> {
    params.split(|c| *c == b';').find_map(|p| {
        let eq = p.iter().position(|c| *c == b'=')?;
        p[..eq]
            .trim_ascii()
            .eq_ignore_ascii_case(b"phone-context")
            .then(|| p[eq + 1..].trim_ascii())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::uri::{Scheme, Uri};

    fn ds(s: &str) -> Result<String, DialError> {
        let u = Uri::parse(s.as_bytes()).unwrap();
        if u.scheme == Scheme::Other {
            return Err(DialError::Scheme);
        }
        dial_string(u.user).map(|d| {
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
}
