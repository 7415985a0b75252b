//! Entry points for the cargo-fuzz targets in `fuzz/` and for the corpus regression test
//! (`tests/fuzz_corpora.rs`, stable toolchain). Each takes arbitrary bytes and must never
//! panic: parsers and loaders answer bad input with an error, never a crash.

mod call_flow;
pub use call_flow::call_flow;

use crate::gate::number_of;
use crate::lists::compact::CompactSet;
use crate::lists::ftc::{read_lines, FileRole};
use crate::lists::mem::HugeBuf;
use crate::number::dial_string;
use crate::number::Normalizer;
use crate::sip::parse::{name_addr_uri, HeaderName, Message};
use crate::sip::uri::Uri;
use bytes::Bytes;

/// The SIP parser and everything the proxy derives from a request: validation, the Request-URI,
/// the dial string and normalized number, From / P-Asserted-Identity URIs, Via, the headers
/// callgate reads by name.
pub fn sip_message(data: &[u8]) {
    let normalizer = Normalizer::new(&["9".into()], &["911".into(), "988".into()]);
    for lenient in [false, true] {
        let buf = Bytes::copy_from_slice(data);
        let parsed = if lenient {
            Message::parse_lenient(buf)
        } else {
            Message::parse(buf)
        };
        let Ok(m) = parsed else { continue };
        if m.is_request() {
            let _ = m.validate_request();
        }
        let _ = (
            m.method(),
            m.status(),
            m.call_id(),
            m.cseq(),
            m.max_forwards(),
        );
        let _ = m.top_via();
        let _ = m.vias().count();
        let _ = m.tag(HeaderName::To);
        let _ = m.other_header(b"x-callgate-campaign");
        let _ = m.other_header(b"privacy");
        if let Some(uri) = m.request_uri().and_then(|s| Uri::parse(m.bytes(s))) {
            let _ = uri.param(b"user");
            if let Ok(d) = dial_string(uri.user) {
                let _ = normalizer.normalize(&d);
            }
            let _ = number_of(&normalizer, &uri);
        }
        for h in [
            HeaderName::From,
            HeaderName::To,
            HeaderName::PAssertedIdentity,
        ] {
            if let Some(v) = m.header_value(h) {
                if let Some(u) = Uri::parse(name_addr_uri(v)) {
                    let _ = number_of(&normalizer, &u);
                }
            }
        }
    }
}

/// List files: full lists, change lists, wireless lists with block lines.
pub fn list_file(data: &[u8]) {
    for role in [FileRole::Full, FileRole::Changes] {
        let _ = read_lines("fuzz", data, role, |_, _| {});
    }
    if let Ok(v) = crate::lists::load::parse_with_blocks("fuzz", data) {
        let _: CompactSet = v
            .into_iter()
            .collect::<crate::lists::compact::SetBuilder>()
            .build();
    }
}

/// A snapshot body (the compact set's on-disk layout) corrupted in fuzz-chosen ways: the input
/// is a count of numbers to build a real set from, the numbers, then (word index, value) edits
/// applied to its layout. The structure check must refuse anything unsound before a lookup can
/// trust it; whatever it accepts must be safe to query.
pub fn snapshot_body(data: &[u8]) {
    use crate::lists::compact::SetBuilder;
    use crate::lists::NumberSet;
    use crate::number::E164;
    let Some((&count, rest)) = data.split_first() else {
        return;
    };
    let (nums, edits) = rest.split_at((count as usize * 8).min(rest.len()));
    let mut b = SetBuilder::new();
    let numbers: Vec<u64> = nums
        .chunks_exact(8)
        .map(|c| {
            let v = u64::from_le_bytes(c.try_into().unwrap());
            // Mostly NANP numbers (dense blocks and arrays), some anything (the side array).
            if v & 1 == 0 {
                12_000_000_000 + (v >> 1) % 8_000_000_000
            } else {
                (v >> 1) % 1_000_000_000_000_000
            }
        })
        .collect();
    for n in &numbers {
        b.insert(*n);
    }
    let set = b.build();
    let words = set.words();
    let mut buf = HugeBuf::<u64>::zeroed(words.len());
    buf.copy_from_slice(words);
    for e in edits.chunks_exact(12) {
        let at = u32::from_le_bytes(e[..4].try_into().unwrap()) as usize;
        let v = u64::from_le_bytes(e[4..].try_into().unwrap());
        // Edits land near the interesting parts: the header and the containers after the index.
        let len = buf.len();
        let i = if at & 1 == 0 {
            (at >> 1) % len.min(64)
        } else {
            len - 1 - (at >> 1) % len.min(4096)
        };
        buf[i] = v;
    }
    if let Ok(set) = CompactSet::from_words(buf) {
        for n in numbers.iter().copied().chain([12125550143, 1]) {
            let _ = set.contains(E164::from_digits_unchecked(n));
        }
        let _ = set.len();
    }
}

/// Configuration text: callgate.toml, lists.toml, the rules, a holiday calendar, a consent CSV,
/// the area-code file, TLS certificates and keys. Errors must name where; nothing may panic.
pub fn config_text(data: &[u8]) {
    tls_material(data);
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cfg) = crate::config::Config::from_str_named("fuzz.toml", s) {
        let _ = crate::policy::context::Campaigns::from_config(
            "fuzz.toml",
            s,
            &cfg.campaigns,
            &cfg.campaign,
        );
    }
    let _ = crate::lists::Manifest::parse("lists.toml", s);
    let _ = crate::policy::rules::RuleBook::parse("rules.toml", s, Default::default());
    let _ = crate::policy::calendar::Calendar::default().add_file("2026.toml", s);
    let _ = crate::policy::consent::parse_csv("consent.csv", s);
    let _ = crate::number::geo::NpaTable::parse("npa.csv", s, s);
}

/// PEM certificates and keys as the TLS loader reads them, and the certificate-name reader
/// (which also sees raw DER from peers' handshakes).
fn tls_material(data: &[u8]) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    for der in CertificateDer::pem_slice_iter(data).flatten() {
        let _ = crate::tls::cert_names(&der);
    }
    let _ = PrivateKeyDer::from_pem_slice(data);
    let _ = crate::tls::cert_names(data);
}
