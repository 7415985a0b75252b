//! The syscall floor for `benches/load.sh`: a UDP relay that does no SIP work at all, one
//! receive and one send per datagram. Datagrams from the upstream go to the last dialer
//! address seen, everything else goes to the upstream. `RELAY=null bash benches/load.sh` runs
//! it in callgate's place, so callgate's CPU per call can be set against the floor measured
//! in the same session.
//!
//!   NULL_RELAY_LISTEN=127.0.0.1:25060 NULL_RELAY_UPSTREAM=127.0.0.1:25080 \
//!       cargo bench --bench null_relay
//!
//! Without those variables (a plain `cargo bench`) it returns at once.

use std::net::{SocketAddr, UdpSocket};

fn main() {
    let (Ok(listen), Ok(upstream)) = (
        std::env::var("NULL_RELAY_LISTEN"),
        std::env::var("NULL_RELAY_UPSTREAM"),
    ) else {
        println!(
            "null_relay: set NULL_RELAY_LISTEN and NULL_RELAY_UPSTREAM (used by benches/load.sh)"
        );
        return;
    };
    let upstream: SocketAddr = upstream.parse().expect("NULL_RELAY_UPSTREAM: ip:port");
    let sock = UdpSocket::bind(&listen).expect("NULL_RELAY_LISTEN: cannot bind");
    let mut dialer: Option<SocketAddr> = None;
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((n, src)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let to = if src == upstream {
            match dialer {
                Some(d) => d,
                None => continue,
            }
        } else {
            dialer = Some(src);
            upstream
        };
        let _ = sock.send_to(&buf[..n], to);
    }
}
