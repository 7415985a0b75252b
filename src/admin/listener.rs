//! The admin API's listeners: plain TCP (loopback by default) or HTTPS with optional mutual TLS.
//! Either way a handler learns who is calling (`AdminPeer`), for the audit log.

use crate::tls::ServerTls;
use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;

/// The caller of an admin request: its address and, with mutual TLS, the first name its
/// client certificate carries.
#[derive(Clone, Debug)]
pub(crate) struct AdminPeer {
    pub addr: SocketAddr,
    pub cert: Option<Arc<str>>,
}

impl Connected<IncomingStream<'_, TcpListener>> for AdminPeer {
    fn connect_info(s: IncomingStream<'_, TcpListener>) -> Self {
        AdminPeer {
            addr: *s.remote_addr(),
            cert: None,
        }
    }
}

impl Connected<IncomingStream<'_, HttpsListener>> for AdminPeer {
    fn connect_info(s: IncomingStream<'_, HttpsListener>) -> Self {
        s.remote_addr().clone()
    }
}

/// Handshakes run in their own tasks (a slow client cannot hold up the others), at most this
/// many at once; each must finish within `HANDSHAKE_TIMEOUT`.
const MAX_HANDSHAKES: usize = 64;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections whose TLS handshake is complete, in the order they completed.
pub(crate) struct HttpsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, AdminPeer)>,
    local: SocketAddr,
}

impl HttpsListener {
    pub fn new(tcp: TcpListener, tls: Arc<ServerTls>) -> std::io::Result<HttpsListener> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(MAX_HANDSHAKES);
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
        tokio::spawn(async move {
            loop {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    return;
                };
                let (stream, addr) = match tcp.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "admin accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let acceptor = tokio_rustls::TlsAcceptor::from(tls.current());
                let tx = tx.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => {
                            let cert = s
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|c| c.first())
                                .and_then(|leaf| crate::tls::cert_names(leaf).into_iter().next())
                                .map(Arc::from);
                            let _ = tx.send((s, AdminPeer { addr, cert })).await;
                        }
                        Ok(Err(e)) => {
                            tracing::info!(%addr, error = %e, "admin TLS handshake refused")
                        }
                        Err(_) => tracing::info!(%addr, "admin TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(HttpsListener { ready, local })
    }
}

impl Listener for HttpsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = AdminPeer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The acceptor task only ends with the runtime.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<AdminPeer> {
        Ok(AdminPeer {
            addr: self.local,
            cert: None,
        })
    }
}
