//! A SIP loop that stops is seen: `/healthz` and `/readyz` fail once it has not turned for
//! five seconds, whatever else still answers. Here the loop dies of a panic (the test hook of
//! debug builds) in a process without the binary's abort-on-panic hook, as a library user's
//! would be. One test in this binary: it sets the hook's environment variable for the process.

mod common;
use common::*;
use std::time::{Duration, Instant};

#[test]
fn healthz_and_readyz_fail_when_the_sip_loop_has_stopped() {
    std::env::set_var("CALLGATE_TEST_PANIC_CALL_ID", "stall-now");
    let h = Harness::start();
    assert_eq!(h.http("GET", "/healthz", "").0, 200);
    h.send_dialer(&h.invite("4155550100", "stall-now"));
    let deadline = Instant::now() + Duration::from_secs(15);
    let (status, body) = loop {
        let (status, body) = h.http("GET", "/healthz", "");
        if status != 200 {
            break (status, body);
        }
        assert!(Instant::now() < deadline, "/healthz still says ok");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status, 503);
    assert!(body.contains("SIP loop has not turned"), "{body}");
    let (status, body) = h.http("GET", "/readyz", "");
    assert_eq!(status, 503);
    assert!(body.contains("SIP loop has not turned"), "{body}");
}
