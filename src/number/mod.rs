//! Telephone numbers: from the dialled string of a URI's user part to an E.164 number (or an
//! emergency/service code), and where a NANP number is (`geo`). Shared by the lists, the
//! policy and the admin side; knows nothing of SIP messages or of the rules.

pub mod dial;
pub mod geo;

pub use dial::{dial_string, DialError, DialString};
use serde::{Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// An E.164 number, stored as its digits (country code first, no `+`). E.164 allows at most
/// 15 digits and no leading zero, so a `u64` holds it exactly and compares in one instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct E164(u64);

impl E164 {
    pub fn from_digits_unchecked(v: u64) -> E164 {
        E164(v)
    }

    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// Whether the number starts with the country calling code `code` (its digits: 49 for
    /// +49) and has digits after it.
    pub(crate) fn has_calling_code(self, code: u64) -> bool {
        let len = self.0.checked_ilog10().unwrap_or(0) + 1;
        let code_len = code.checked_ilog10().unwrap_or(0) + 1;
        len > code_len && self.0 / 10u64.pow(len - code_len) == code
    }

    /// The NANP 10-digit national number (NPA-NXX-XXXX), if this is a +1 number.
    pub(crate) fn nanp_national(self) -> Option<u64> {
        (10_000_000_000..20_000_000_000)
            .contains(&self.0)
            .then_some(self.0 - 10_000_000_000)
    }

    /// Build from a NANP 10-digit national number, validating NPA and NXX (both start with 2-9).
    pub fn nanp(national: u64) -> Option<E164> {
        let npa_first = national / 1_000_000_000;
        let nxx_first = (national / 1_000_000) % 10;
        ((1_000_000_000..10_000_000_000).contains(&national) && npa_first >= 2 && nxx_first >= 2)
            .then_some(E164(10_000_000_000 + national))
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "+{}", self.0)
    }
}

impl Serialize for E164 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What a dialled number turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Called {
    /// An emergency or N11 service code (as configured): forwarded, never checked.
    Service(ServiceCode),
    Number(E164),
}

/// A short service code such as 911, kept as digits (at most 8).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ServiceCode {
    digits: [u8; 8],
    len: u8,
}

impl ServiceCode {
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.digits[..self.len as usize]).unwrap_or("?")
    }
}

impl fmt::Debug for ServiceCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NormalizeError {
    #[error("not a valid NANP number (NPA and NXX must start with 2-9)")]
    InvalidNanp,
    #[error("unexpected number of digits for a NANP or international number")]
    BadLength,
}

/// Normalization settings: dialer prefixes to strip and the service codes that bypass policy.
#[derive(Clone, Debug, Default)]
pub struct Normalizer {
    strip_prefixes: Vec<Vec<u8>>,
    service_codes: Vec<Vec<u8>>,
}

impl Normalizer {
    pub fn new(strip_prefixes: &[String], service_codes: &[String]) -> Normalizer {
        Normalizer {
            strip_prefixes: strip_prefixes
                .iter()
                .map(|p| p.as_bytes().to_vec())
                .collect(),
            service_codes: service_codes
                .iter()
                .map(|p| p.as_bytes().to_vec())
                .collect(),
        }
    }

    /// Classify a dialled string. A configured dialer prefix (`9`, a tech prefix) is stripped
    /// only when what remains is a valid number, so `9175551234` stays NPA 917 while
    /// `92125550143` becomes +12125550143.
    pub fn normalize(&self, d: &DialString) -> Result<Called, NormalizeError> {
        let digits = d.as_bytes();
        if !d.global {
            if let Some(code) = self.service_code(digits) {
                return Ok(Called::Service(code));
            }
            for p in &self.strip_prefixes {
                if let Some(rest) = digits.strip_prefix(p.as_slice()) {
                    if let Some(code) = self.service_code(rest) {
                        return Ok(Called::Service(code));
                    }
                    if let Ok(n) = national_form(rest) {
                        return Ok(Called::Number(n));
                    }
                }
            }
            return national_form(digits).map(Called::Number);
        }
        global_form(digits).map(Called::Number)
    }

    /// The called number of a URI's user part (or a number as an operator types it): its dial
    /// string, normalized. The one path to a number, shared by the SIP path, the admin check
    /// and the CLI.
    pub fn called(&self, user: Option<&[u8]>) -> Result<Called, NumberProblem> {
        let d = dial_string(user).map_err(NumberProblem::Dial)?;
        self.normalize(&d).map_err(NumberProblem::Normalize)
    }

    fn service_code(&self, digits: &[u8]) -> Option<ServiceCode> {
        let hit = self.service_codes.iter().find(|c| c.as_slice() == digits)?;
        let mut sc = ServiceCode {
            digits: [0; 8],
            len: hit.len().min(8) as u8,
        };
        sc.digits[..sc.len as usize].copy_from_slice(&hit[..sc.len as usize]);
        Some(sc)
    }
}

fn to_u64(d: &[u8]) -> u64 {
    d.iter().fold(0u64, |a, c| a * 10 + (c - b'0') as u64)
}

/// Digits dialled without `+`: 10-digit NANP, 1+10, or 011 + international.
fn national_form(d: &[u8]) -> Result<E164, NormalizeError> {
    match d.len() {
        10 => E164::nanp(to_u64(d)).ok_or(NormalizeError::InvalidNanp),
        11 if d[0] == b'1' => E164::nanp(to_u64(&d[1..])).ok_or(NormalizeError::InvalidNanp),
        _ if d.starts_with(b"011") => global_form(&d[3..]),
        _ => Err(NormalizeError::BadLength),
    }
}

/// Digits after a `+` (or 011): country code first.
fn global_form(d: &[u8]) -> Result<E164, NormalizeError> {
    if d.first() == Some(&b'1') {
        if d.len() != 11 {
            return Err(NormalizeError::BadLength);
        }
        return E164::nanp(to_u64(&d[1..])).ok_or(NormalizeError::InvalidNanp);
    }
    if d.first() == Some(&b'0') || !(8..=15).contains(&d.len()) {
        return Err(NormalizeError::BadLength);
    }
    Ok(E164(to_u64(d)))
}

impl FromStr for E164 {
    type Err = NormalizeError;
    /// Parse a number as an operator would type it (API, CLI, list files): `+1...`, `1...`,
    /// 10 digits, with visual separators.
    fn from_str(s: &str) -> Result<E164, NormalizeError> {
        let mut ds = DialString {
            digits: [0; 32],
            len: 0,
            global: false,
        };
        for (i, c) in s.trim().bytes().enumerate() {
            match c {
                b'+' if i == 0 => ds.global = true,
                b'0'..=b'9' if (ds.len as usize) < ds.digits.len() => {
                    ds.digits[ds.len as usize] = c;
                    ds.len += 1;
                }
                b'-' | b'.' | b'(' | b')' | b' ' => {}
                _ => return Err(NormalizeError::BadLength),
            }
        }
        if ds.global {
            global_form(ds.as_bytes())
        } else {
            national_form(ds.as_bytes())
        }
    }
}

/// Why the number could not be used, kept for the audit record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumberProblem {
    Dial(DialError),
    Normalize(NormalizeError),
    NoRequestUri,
}

impl fmt::Display for NumberProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NumberProblem::Dial(e) => e.fmt(f),
            NumberProblem::Normalize(e) => e.fmt(f),
            NumberProblem::NoRequestUri => f.write_str("no usable Request-URI or To"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::uri::Uri;

    fn norm(uri: &str) -> Result<Called, NormalizeError> {
        let n = Normalizer::new(
            &["9".into(), "1010#".into()],
            &["911".into(), "988".into(), "933".into()],
        );
        let u = Uri::parse(uri.as_bytes()).unwrap();
        n.normalize(&dial_string(u.user).unwrap())
    }

    fn e(s: &str) -> Called {
        Called::Number(s.parse().unwrap())
    }

    #[test]
    fn ten_digits() {
        assert_eq!(norm("sip:2125550143@h"), Ok(e("+12125550143")));
    }

    #[test]
    fn one_plus_ten() {
        assert_eq!(norm("sip:12125550143@h"), Ok(e("+12125550143")));
    }

    #[test]
    fn plus_one() {
        assert_eq!(norm("sip:+12125550143@h"), Ok(e("+12125550143")));
    }

    #[test]
    fn international_011() {
        assert_eq!(
            norm("sip:011442079460000@h").unwrap(),
            Called::Number(E164(442079460000))
        );
    }

    #[test]
    fn international_plus() {
        assert_eq!(
            norm("tel:+44-20-7946-0000").unwrap(),
            Called::Number(E164(442079460000))
        );
    }

    #[test]
    fn dialer_prefix_nine_is_stripped() {
        assert_eq!(norm("sip:92125550143@h"), Ok(e("+12125550143")));
        assert_eq!(norm("sip:912125550143@h"), Ok(e("+12125550143")));
    }

    #[test]
    fn prefix_is_not_stripped_from_a_valid_number() {
        assert_eq!(norm("sip:9175551234@h"), Ok(e("+19175551234")));
    }

    #[test]
    fn tech_prefix_with_hash_is_stripped() {
        let n = Normalizer::new(&["1010".into()], &[]);
        let u = Uri::parse(b"sip:10102125550143@h").unwrap();
        assert_eq!(
            n.normalize(&dial_string(u.user).unwrap()),
            Ok(e("+12125550143"))
        );
    }

    #[test]
    fn emergency_codes() {
        assert!(matches!(norm("sip:911@h"), Ok(Called::Service(_))));
        assert!(matches!(norm("sip:9911@h"), Ok(Called::Service(_))));
        assert!(matches!(norm("tel:988"), Ok(Called::Service(_))));
    }

    #[test]
    fn invalid_npa_is_rejected() {
        assert_eq!(norm("sip:1125550143@h"), Err(NormalizeError::InvalidNanp));
    }

    #[test]
    fn invalid_nxx_is_rejected() {
        assert_eq!(norm("sip:2121550143@h"), Err(NormalizeError::InvalidNanp));
    }

    #[test]
    fn short_number_is_rejected() {
        assert_eq!(norm("sip:5550143@h"), Err(NormalizeError::BadLength));
    }

    #[test]
    fn display_is_e164() {
        assert_eq!(
            "(212) 555-0143".parse::<E164>().unwrap().to_string(),
            "+12125550143"
        );
    }
}
