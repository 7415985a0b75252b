//! Sockets. One UDP receive loop handles each datagram to completion before reading the next,
//! so the messages of a call leave in the order they arrived; no task is spawned per message.
//! Each TCP or TLS connection has one reader (framing by Content-Length, pipelining and partial
//! reads) and one writer fed by a FIFO channel, so order is kept per connection too.
//!
//! Connections are found by remote address whatever their protocol: a response goes back on
//! the connection its request came in on (RFC 3261 section 18.2.2), even when the Via says TCP
//! for a hop that a TLS terminator wrapped.

use super::metrics::SipMetrics;
use super::parse::{find_headers_end, memchr, trim_slice};
use super::peer::{Dest, Outgoing, Peer, Transport};
use super::proxy::Proxy;
use crate::tls::{ClientTls, ServerTls};
use bytes::{Bytes, BytesMut};
use dashmap::DashMap;
use rustls::pki_types::ServerName;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch};

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FrameError {
    TooLarge,
    BadContentLength,
}

/// Take one complete message off the front of a stream buffer, if there is one. Leading CRLFs
/// (keep-alives, RFC 5626) are skipped. A missing Content-Length on a stream means no body.
pub(crate) fn next_frame(buf: &mut BytesMut, max: usize) -> Result<Option<Bytes>, FrameError> {
    let skip = buf
        .iter()
        .take_while(|c| **c == b'\r' || **c == b'\n')
        .count();
    if skip > 0 {
        let _ = buf.split_to(skip);
    }
    if buf.is_empty() {
        return Ok(None);
    }
    let Some((headers_end, body_start)) = find_headers_end(buf) else {
        return if buf.len() > max {
            Err(FrameError::TooLarge)
        } else {
            Ok(None)
        };
    };
    let mut cl: Option<usize> = None;
    for line in buf[..headers_end].split(|c| *c == b'\n') {
        let Some(colon) = memchr(b':', line) else {
            continue;
        };
        let name = trim_slice(&line[..colon]);
        if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l") {
            let v = trim_slice(&line[colon + 1..]);
            if cl.is_some() || v.is_empty() || v.len() > 9 || !v.iter().all(u8::is_ascii_digit) {
                return Err(FrameError::BadContentLength);
            }
            cl = Some(v.iter().fold(0usize, |a, c| a * 10 + (c - b'0') as usize));
        }
    }
    let total = body_start + cl.unwrap_or(0);
    if total > max {
        return Err(FrameError::TooLarge);
    }
    if buf.len() < total {
        return Ok(None);
    }
    Ok(Some(buf.split_to(total).freeze()))
}

pub(crate) struct SipIo {
    udp: Option<Arc<UdpSocket>>,
    conns: DashMap<SocketAddr, mpsc::Sender<Bytes>>,
    proxy: Arc<Proxy>,
    metrics: Arc<SipMetrics>,
    limits: Limits,
    /// Messages that cannot leave yet, in the order they were sent: waiting for their audit
    /// record to be durable (before-forward), refused by a full UDP socket buffer, or behind
    /// one of those.
    held: std::sync::Mutex<std::collections::VecDeque<Outgoing>>,
    /// Wakes the releaser: a full socket refused a message.
    refused: tokio::sync::Notify,
    durable: tokio::sync::watch::Receiver<u64>,
    tls: TlsSides,
}

/// TLS toward dialers (the listener's certificate) and toward the upstream (what we trust).
pub(crate) struct TlsSides {
    pub server: Option<Arc<ServerTls>>,
    pub client: Option<Arc<ClientTls>>,
    /// The upstream's address and the name its certificate must carry.
    pub upstream: Option<(SocketAddr, ServerName<'static>)>,
    pub handshake_timeout: Duration,
}

/// Bounds on what one peer can hold.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub max_message: usize,
    /// A TCP connection with no bytes for this long is closed.
    pub idle: Duration,
    /// A message whose first bytes arrived this long ago and is still incomplete is a
    /// slow-loris: the connection is closed.
    pub message_timeout: Duration,
    pub max_conns: usize,
}

impl SipIo {
    pub fn new(
        udp: Option<Arc<UdpSocket>>,
        proxy: Arc<Proxy>,
        metrics: Arc<SipMetrics>,
        limits: Limits,
        durable: tokio::sync::watch::Receiver<u64>,
        tls: TlsSides,
    ) -> Arc<SipIo> {
        Arc::new(SipIo {
            udp,
            conns: DashMap::new(),
            proxy,
            metrics,
            limits,
            held: std::sync::Mutex::new(std::collections::VecDeque::new()),
            refused: tokio::sync::Notify::new(),
            durable,
            tls,
        })
    }

    /// Send what waits as it may go, in the order it was queued: records reaching the disk
    /// (before-forward durability) and the UDP socket taking datagrams again.
    async fn release_held(self: Arc<Self>) {
        let mut durable = self.durable.clone();
        let mut watching = true;
        loop {
            let upto = *durable.borrow_and_update();
            match self.release_ready(upto) {
                Release::Full => match &self.udp {
                    Some(sock) => {
                        let _ = sock.writable().await;
                    }
                    None => return,
                },
                // A stopped audit writer closes the watch: what waits for a record then waits
                // for good (fail closed), but datagrams a full socket refused still go.
                Release::Waiting if watching => tokio::select! {
                    r = durable.changed() => watching = r.is_ok(),
                    _ = self.refused.notified() => {}
                },
                Release::Waiting => self.refused.notified().await,
            }
        }
    }

    /// Send the held messages, front first, until one's record is not yet durable (up to
    /// `upto`) or the socket is full again. Sent under the lock: a message `send` is given
    /// meanwhile finds the queue not yet empty and waits behind, so no message of a call
    /// overtakes one of its own that was held. (Messages of different calls sent by two
    /// workers at one moment have no order to keep.)
    fn release_ready(self: &Arc<Self>, upto: u64) -> Release {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(o) = held.pop_front() {
            if o.after_record.is_some_and(|seq| seq > upto) {
                held.push_front(o);
                return Release::Waiting;
            }
            if let Some(o) = self.send_now(o) {
                held.push_front(o);
                return Release::Full;
            }
        }
        Release::Waiting
    }

    /// A message the full socket refused goes first in the queue (whatever another worker
    /// queued since is no older), and the releaser sends it when the socket drains.
    fn hold_refused(&self, o: Outgoing) {
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_front(o);
        self.refused.notify_one();
    }

    /// The calls the gate decided later go on as its answers come.
    async fn send_decided(
        self: Arc<Self>,
        mut answers: mpsc::UnboundedReceiver<(super::gate::CallKey, super::gate::Admission)>,
    ) {
        let mut outs = Vec::with_capacity(4);
        while let Some((key, admission)) = answers.recv().await {
            self.proxy.decided(key, admission, &mut outs);
            for o in outs.drain(..) {
                self.send(o);
            }
        }
    }

    /// Run until `shutdown` flips: the UDP loop, the TCP and TLS acceptors and the
    /// transaction sweeper.
    pub async fn run(
        self: Arc<Self>,
        tcp: Option<TcpListener>,
        tls: Option<TcpListener>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        if let Some(l) = tcp {
            tokio::spawn(self.clone().accept_loop(l, false, shutdown.clone()));
        }
        if let Some(l) = tls {
            tokio::spawn(self.clone().accept_loop(l, true, shutdown.clone()));
        }
        tokio::spawn(self.clone().release_held());
        if let Some(answers) = self.proxy.take_answers() {
            tokio::spawn(self.clone().send_decided(answers));
        }
        let sweeper = self.clone();
        tokio::spawn(async move {
            let mut t = tokio::time::interval(Duration::from_secs(1));
            let mut out = Vec::new();
            loop {
                t.tick().await;
                sweeper.proxy.sweep(&mut out);
                for o in out.drain(..) {
                    sweeper.send(o);
                }
            }
        });
        match self.udp.clone() {
            Some(sock) => self.udp_loop(0, sock, shutdown).await,
            None => {
                let _ = shutdown.changed().await;
            }
        }
    }

    /// One UDP worker: each datagram handled to completion before the next is read, so the
    /// messages from one sender leave in the order they came. Replies go out on the first
    /// worker's socket (all share the address).
    pub(crate) async fn udp_loop(
        self: Arc<Self>,
        worker: usize,
        sock: Arc<UdpSocket>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let received = self
            .metrics
            .worker_datagrams
            .with_label_values(&[&worker.to_string()]);
        // Worker 0's runtime also runs the sweeper, whose turns say it is alive.
        let mut alive = (worker > 0).then(|| tokio::time::interval(Duration::from_secs(1)));
        let mut buf = vec![0u8; 65_536];
        let mut outs = Vec::with_capacity(4);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                _ = tick(&mut alive) => self.proxy.worker_turned(worker),
                r = sock.recv_from(&mut buf) => match r {
                    Ok((n, src)) => {
                        received.inc();
                        if n > self.limits.max_message {
                            self.metrics.dropped("too_large");
                            continue;
                        }
                        let data = Bytes::copy_from_slice(&buf[..n]);
                        self.proxy.handle(data, Peer::Udp(src), &mut outs);
                        for o in outs.drain(..) {
                            self.send(o);
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "udp receive error"),
                }
            }
        }
    }

    async fn accept_loop(
        self: Arc<Self>,
        l: TcpListener,
        tls: bool,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                r = l.accept() => match r {
                    Ok((stream, peer)) => {
                        // Connections still in their TLS handshake count against the limit.
                        if self.conns.len() >= self.limits.max_conns {
                            self.metrics.dropped("tcp_connection_limit");
                            continue;
                        }
                        // SIP messages are small and answered at once: no Nagle delay.
                        let _ = stream.set_nodelay(true);
                        let (tx, rx) = mpsc::channel(1024);
                        self.conns.insert(peer, tx);
                        let me = self.clone();
                        tokio::spawn(async move {
                            if tls {
                                me.serve_tls(stream, peer, rx).await
                            } else {
                                let (rd, wr) = stream.into_split();
                                me.run_conn(rd, wr, Peer::Tcp(peer), rx).await
                            }
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "tcp accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }
    }

    /// An accepted connection on the TLS listener: handshake (bounded in time), note the
    /// client certificate's names for the dialer check, then read and write SIP.
    async fn serve_tls(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        rx: mpsc::Receiver<Bytes>,
    ) {
        let Some(server) = &self.tls.server else {
            self.conns.remove(&peer);
            return;
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(server.current());
        // Count a failed handshake before the socket closes, so a peer that sees the close
        // finds it counted.
        let mut handshake = std::pin::pin!(acceptor.accept(stream).into_fallible());
        let stream = match tokio::time::timeout(self.tls.handshake_timeout, &mut handshake).await {
            Ok(Ok(s)) => s,
            Ok(Err((e, _socket))) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                self.conns.remove(&peer);
                return self.metrics.dropped("tls_handshake_failed");
            }
            Err(_) => {
                self.conns.remove(&peer);
                return self.metrics.dropped("tls_handshake_timeout");
            }
        };
        let names = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|leaf| crate::tls::cert_names(leaf))
            .unwrap_or_default();
        self.proxy.tls_peer_connected(peer, names);
        let (rd, wr) = tokio::io::split(stream);
        self.clone().run_conn(rd, wr, Peer::Tls(peer), rx).await;
        self.proxy.tls_peer_closed(peer);
    }

    async fn run_conn<R, W>(
        self: Arc<Self>,
        mut rd: R,
        mut wr: W,
        peer: Peer,
        mut rx: mpsc::Receiver<Bytes>,
    ) where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        self.metrics.tcp_connections.inc();
        let writer = tokio::spawn(async move {
            while let Some(b) = rx.recv().await {
                if wr.write_all(&b).await.is_err() {
                    break;
                }
            }
        });
        let mut buf = BytesMut::with_capacity(8192);
        let mut outs = Vec::with_capacity(4);
        // When the bytes of an incomplete message started arriving.
        let mut partial_since: Option<tokio::time::Instant> = None;
        'conn: loop {
            let (wait, why) = match partial_since {
                Some(t) => (
                    self.limits
                        .message_timeout
                        .saturating_sub(t.elapsed())
                        .min(self.limits.idle),
                    "tcp_slow_message",
                ),
                None => (self.limits.idle, "tcp_idle_timeout"),
            };
            match tokio::time::timeout(wait, rd.read_buf(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Err(_) => {
                    self.metrics.dropped(why);
                    break;
                }
                Ok(Ok(_)) => {}
            }
            loop {
                match next_frame(&mut buf, self.limits.max_message) {
                    Ok(Some(frame)) => {
                        partial_since = None;
                        self.proxy.handle(frame, peer, &mut outs);
                        for o in outs.drain(..) {
                            self.send(o);
                        }
                    }
                    Ok(None) => {
                        // Blank keep-alive lines are not the start of a message.
                        let pending = buf.iter().any(|c| !matches!(c, b'\r' | b'\n'));
                        partial_since = match (pending, partial_since) {
                            (false, _) => None,
                            (true, None) => Some(tokio::time::Instant::now()),
                            (true, Some(t)) => Some(t),
                        };
                        break;
                    }
                    Err(e) => {
                        // Framing is lost: nothing after this point can be trusted.
                        let label = if e == FrameError::TooLarge {
                            "too_large"
                        } else {
                            "bad_content_length"
                        };
                        self.metrics.parse_errors.with_label_values(&[label]).inc();
                        break 'conn;
                    }
                }
            }
        }
        self.conns.remove(&peer.addr());
        writer.abort();
        self.metrics.tcp_connections.dec();
    }

    /// Send one message. UDP sends complete synchronously in practice; when the socket buffer
    /// is full the message is held (with all that follows) until it drains. TCP goes through
    /// the connection's FIFO.
    pub fn send(self: &Arc<Self>, o: Outgoing) {
        {
            let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
            // Anything behind a held message waits too: one call's messages keep their order.
            if !held.is_empty()
                || (o
                    .after_record
                    .is_some_and(|seq| seq > *self.durable.borrow()))
            {
                held.push_back(o);
                return;
            }
        }
        if let Some(o) = self.send_now(o) {
            self.hold_refused(o)
        }
    }

    /// Send `o` now; it comes back when the UDP socket buffer is full.
    fn send_now(self: &Arc<Self>, o: Outgoing) -> Option<Outgoing> {
        match o.dest {
            Dest::Peer(Peer::Udp(addr)) => return self.send_udp(addr, o),
            Dest::Peer(Peer::Tcp(addr)) => self.send_stream(addr, o.data, o.to_upstream, None),
            Dest::Peer(Peer::Tls(addr)) => {
                let name = self.tls_name_for(addr, None);
                self.send_stream(addr, o.data, o.to_upstream, Some(name))
            }
            Dest::Resolve {
                host,
                port,
                transport,
            } => {
                let me = self.clone();
                tokio::spawn(async move {
                    match tokio::net::lookup_host((host.as_str(), port))
                        .await
                        .ok()
                        .and_then(|mut a| a.next())
                    {
                        Some(addr) if transport == Transport::Tls => {
                            let name = me.tls_name_for(addr, Some(&host));
                            me.send_stream(addr, o.data, o.to_upstream, Some(name));
                        }
                        Some(addr) => {
                            let peer = Peer::new(transport, addr);
                            let o = Outgoing {
                                dest: Dest::Peer(peer),
                                data: o.data,
                                to_upstream: o.to_upstream,
                                after_record: None,
                            };
                            if let Some(o) = me.send_now(o) {
                                me.hold_refused(o)
                            }
                        }
                        None => {
                            me.metrics.send_errors.inc();
                            tracing::warn!(%host, port, "cannot resolve destination");
                        }
                    }
                });
            }
        }
        None
    }

    fn send_error(&self, upstream: bool) {
        self.metrics.send_errors.inc();
        if upstream {
            self.metrics.upstream_send_errors.inc();
        }
    }

    fn send_udp(&self, addr: SocketAddr, o: Outgoing) -> Option<Outgoing> {
        let Some(sock) = &self.udp else {
            self.send_error(o.to_upstream);
            return None;
        };
        match sock.try_send_to(&o.data, addr) {
            Ok(_) => None,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Some(o),
            Err(e) => {
                tracing::debug!(error = %e, %addr, "udp send failed");
                self.send_error(o.to_upstream);
                None
            }
        }
    }

    /// The name a TLS server at `addr` must prove: the upstream's configured name, else the
    /// host name we resolved, else its IP address.
    fn tls_name_for(&self, addr: SocketAddr, host: Option<&str>) -> ServerName<'static> {
        match (&self.tls.upstream, host) {
            (Some((up, name)), _) if *up == addr => name.clone(),
            (_, Some(h)) => ServerName::try_from(h.to_string())
                .unwrap_or_else(|_| ServerName::IpAddress(addr.ip().into())),
            _ => ServerName::IpAddress(addr.ip().into()),
        }
    }

    /// Send over the open connection to `addr` (TCP or TLS, whichever it is), or open one:
    /// TLS when `tls` names the server to verify.
    fn send_stream(
        self: &Arc<Self>,
        addr: SocketAddr,
        data: Bytes,
        upstream: bool,
        tls: Option<ServerName<'static>>,
    ) {
        if let Some(tx) = self.conns.get(&addr) {
            if tx.try_send(data).is_err() {
                self.send_error(upstream);
            }
            return;
        }
        let tls = match (tls, &self.tls.client) {
            (None, _) => None,
            (Some(name), Some(c)) => Some((tokio_rustls::TlsConnector::from(c.current()), name)),
            (Some(_), None) => {
                tracing::warn!(%addr, "cannot open TLS: no TLS client configuration (upstream.tls_ca)");
                return self.send_error(upstream);
            }
        };
        // No connection yet: open one. Messages sent meanwhile queue in its channel, in order.
        // Found and claimed in one step: another worker may be opening it at this moment.
        let rx = match self.conns.entry(addr) {
            dashmap::Entry::Occupied(e) => {
                if e.get().try_send(data).is_err() {
                    self.send_error(upstream);
                }
                return;
            }
            dashmap::Entry::Vacant(v) => {
                let (tx, rx) = mpsc::channel(1024);
                let _ = tx.try_send(data);
                v.insert(tx);
                rx
            }
        };
        let me = self.clone();
        tokio::spawn(async move {
            let connect = async {
                let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
                let _ = stream.set_nodelay(true);
                Ok::<_, String>(stream)
            };
            let failed = |me: &Arc<Self>, why: String| {
                tracing::warn!(%addr, error = %why, "connection to peer failed");
                me.conns.remove(&addr);
                me.send_error(upstream);
            };
            let stream = match tokio::time::timeout(Duration::from_secs(5), connect).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return failed(&me, e),
                Err(_) => return failed(&me, "connect timed out".into()),
            };
            match tls {
                Some((c, name)) => {
                    let hs =
                        tokio::time::timeout(me.tls.handshake_timeout, c.connect(name, stream));
                    match hs.await {
                        Ok(Ok(s)) => {
                            let (rd, wr) = tokio::io::split(s);
                            me.run_conn(rd, wr, Peer::Tls(addr), rx).await
                        }
                        Ok(Err(e)) => failed(&me, format!("TLS handshake: {e}")),
                        Err(_) => failed(&me, "TLS handshake timed out".into()),
                    }
                }
                None => {
                    let (rd, wr) = stream.into_split();
                    me.run_conn(rd, wr, Peer::Tcp(addr), rx).await
                }
            }
        });
    }
}

/// What stopped the releaser.
enum Release {
    /// The front message waits for its record (or nothing is held).
    Waiting,
    /// The UDP socket buffer is full.
    Full,
}

/// The next tick of `alive`, or never.
async fn tick(alive: &mut Option<tokio::time::Interval>) {
    match alive {
        Some(a) => {
            a.tick().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_pipelined_messages() {
        let mut b = BytesMut::from(&b"OPTIONS sip:a SIP/2.0\r\nl: 3\r\n\r\nabcBYE sip:b SIP/2.0\r\nContent-Length: 0\r\n\r\n"[..]);
        let f1 = next_frame(&mut b, 65535).unwrap().unwrap();
        assert!(f1.ends_with(b"abc"));
        let f2 = next_frame(&mut b, 65535).unwrap().unwrap();
        assert!(f2.starts_with(b"BYE"));
        assert_eq!(next_frame(&mut b, 65535), Ok(None));
    }

    #[test]
    fn waits_for_a_partial_body() {
        let mut b = BytesMut::from(&b"OPTIONS sip:a SIP/2.0\r\nContent-Length: 10\r\n\r\nabc"[..]);
        assert_eq!(next_frame(&mut b, 65535), Ok(None));
        b.extend_from_slice(b"defghij");
        assert!(next_frame(&mut b, 65535).unwrap().is_some());
    }

    #[test]
    fn oversized_headers_are_refused() {
        let mut b = BytesMut::from(&vec![b'a'; 2000][..]);
        assert_eq!(next_frame(&mut b, 1000), Err(FrameError::TooLarge));
    }

    #[test]
    fn skips_keepalive_crlf() {
        let mut b = BytesMut::from(&b"\r\n\r\nOPTIONS sip:a SIP/2.0\r\n\r\n"[..]);
        assert!(next_frame(&mut b, 65535)
            .unwrap()
            .unwrap()
            .starts_with(b"OPTIONS"));
    }
}
