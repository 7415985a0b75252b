//! The RFC 4475 torture corpus, each message sent as one UDP datagram from an allowed dialer
//! (requests) or from the upstream (responses). Expected outcomes follow the corpus README.
//! Whatever the message, callgate must not panic and must keep serving.

mod common;
use common::*;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Valid request: forwarded upstream, or answered by policy (never 400).
    Valid,
    /// Answered with this status, not forwarded.
    Status(u16),
    /// Nothing sent anywhere.
    Drop,
    /// Valid response: relayed if a Via matches, else dropped; never answered.
    Response,
}
use Expect::*;

const CASES: &[(&str, Expect)] = &[
    ("TC_WSINV", Valid),
    ("TC_INTMETH", Valid),
    ("TC_ESC01_V", Valid),
    ("TC_ESCNULL_V", Valid),
    ("TC_ESC02_V", Valid),
    ("TC_LWSDISP_V", Valid),
    ("TC_LONGREQ_V", Valid),
    ("TC_DBLREQ", Valid),
    ("TC_SEMIURI_V", Valid),
    ("TC_TRANSPORTS_V", Valid),
    ("TC_MPART01", Valid),
    ("TC_UNREASON_V", Response),
    ("TC_NOREASON_V", Response),
    ("TC_BADINV01_I", Status(400)),
    ("TC_CLERR_I", Status(400)),
    ("TC_NCL_I", Status(400)),
    ("TC_SCALAR02_V", Status(400)),
    ("TC_SCALARLG_V", Drop),
    ("TC_QUOTBAL_I", Status(400)),
    ("TC_LTGTRURI_I", Status(400)),
    ("TC_LWSRURI_I", Status(400)),
    ("TC_LWSSTART_V", Status(400)),
    ("TC_TRWS_I", Status(400)),
    ("TC_ESCRURI_V", Status(400)),
    ("TC_REGBADCT_I", Status(400)),
    ("TC_BADASPEC_I", Status(400)),
    ("TC_BADDN_I", Status(400)),
    ("TC_BADVERS_V", Status(505)),
    ("TC_MISMATCH01_V", Status(400)),
    ("TC_MISMATCH02_V", Status(400)),
    ("TC_BIGCODE_V", Drop),
    ("TC_BADBRANCH_V", Valid),
    ("TC_INSUF_I", Status(400)),
    ("TC_UNKSCM_V", Status(416)),
    ("TC_NOVELSC_V", Status(416)),
    ("TC_UNKSM2_V", Valid),
    ("TC_BEXT01_V", Status(420)),
    ("TC_INVUT_V", Valid),
    ("TC_REGAUT01_V", Valid),
    ("TC_MULTI01_I", Status(400)),
    ("TC_MCL01_I", Status(400)),
    ("TC_BCAST_V", Drop),
    ("TC_ZEROMF_V", Status(483)),
    ("TC_CPARAM01_V", Valid),
    ("TC_CPARAM02_V", Valid),
    ("TC_REGESCRT_V", Valid),
    ("TC_SDP01_V", Valid),
    ("TC_INV2543_I", Valid),
];

/// TC_BADDATE_V: 400 or forwarded untouched are both acceptable.
const EITHER: &[&str] = &["TC_BADDATE_V"];

fn outcome(h: &Harness, file: &str) -> (Option<String>, Option<String>) {
    let data = std::fs::read(format!(
        "{}/tests/data/rfc4475/{file}.dat",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let is_response = data.starts_with(b"SIP/");
    let sender = if is_response { &h.carrier } else { &h.dialer };
    sender.send_to(&data, h.proxy_addr()).unwrap();
    // Collect: what the sender got back (first non-100), what the other side got.
    sender
        .set_read_timeout(Some(std::time::Duration::from_millis(300)))
        .unwrap();
    let back = recv_final(sender);
    let other = if is_response { &h.dialer } else { &h.carrier };
    other
        .set_read_timeout(Some(std::time::Duration::from_millis(200)))
        .unwrap();
    (back, recv(other))
}

#[test]
fn torture_messages_get_the_expected_outcome() {
    // Policy: the corpus's Request-URIs rarely hold phone numbers; forward those anyway so that
    // "valid" means forwarded, and blocks are only for listed numbers.
    let h = Harness::with(Some(2), "[policy]\non_unparseable_number = \"allow\"\n");
    let mut failures = vec![];
    for (file, expect) in CASES {
        let (back, forwarded) = outcome(&h, file);
        let status = back
            .as_deref()
            .and_then(|b| b.get(8..11))
            .and_then(|s| s.parse::<u16>().ok());
        let ok = match expect {
            Valid => {
                status != Some(400) && (forwarded.is_some() || status.is_some_and(|s| s >= 300))
            }
            Status(code) => status == Some(*code) && forwarded.is_none(),
            Drop => back.is_none() && forwarded.is_none(),
            Response => back.is_none(),
        };
        if !ok {
            failures.push(format!(
                "{file}: expected {expect:?}, answered {status:?}, forwarded {}",
                forwarded.is_some()
            ));
        }
    }
    for file in EITHER {
        outcome(&h, file);
    }
    // Still alive and proxying after all of it.
    h.send_dialer(&h.invite("4155550100", "after-torture"));
    assert!(h.recv_carrier().is_some());
    assert!(
        failures.is_empty(),
        "{} deviations:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
