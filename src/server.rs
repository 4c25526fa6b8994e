//! The accept loop, HTTP/1.1 and, with `HTTP2_CLEARTEXT=on`, cleartext
//! HTTP/2 (h2c with prior knowledge). axum's `serve` has no knobs for slow clients, so connections
//! are served by hyper directly with: a header read timeout (a slowloris
//! client that trickles headers is cut off), a stall timeout (a client
//! that stops reading what it asked for is disconnected), caps on open connections,
//! overall and per client IP (further ones are closed at once, before any
//! work), a header buffer sized for 64 KiB tokens, and graceful shutdown
//! bounded in time.
//!
//! HTTP/2 is there for event streams: over HTTP/1 each open stream is a
//! whole connection (hyper holds two 8 KiB buffers per connection and has
//! no setting to shrink them), over HTTP/2 a proxy or a client carries many
//! streams on one connection: 10,000 idle streams ~145 MB over HTTP/1.1,
//! ~45 MB over h2c at 100 per connection (bench/README.md "What an idle
//! stream holds").

use std::{
    collections::HashMap,
    future::Future,
    net::{IpAddr, Ipv6Addr},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use axum::{Router, extract::ConnectInfo};
use futures_util::FutureExt as _;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{Semaphore, watch},
};
use tower::ServiceExt as _;

/// Limits of the connection layer.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Most time a client may take to send a request's headers.
    pub header_read_timeout: Duration,
    /// Most time the server's sent data may stay unacknowledged, or unsent
    /// behind a client's full receive window, before the kernel closes the
    /// connection (`TCP_USER_TIMEOUT`, Linux). Without it a client that
    /// stops reading holds its connection, and hyper's buffers, for as
    /// long as TCP keeps probing its zero window: indefinitely.
    pub stall_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
    /// Most connections open at once from one client IP (an IPv6 /64
    /// counts as one); 0 = no per-IP cap.
    pub max_connections_per_ip: usize,
    /// Whether a connection may speak HTTP/2 with prior knowledge (h2c);
    /// off, every connection is HTTP/1.1 and none waits for a protocol
    /// sniff. Opt-in: an HTTP/2 connection without streams is not closed
    /// by the header read timeout the way an idle HTTP/1.1 one is.
    pub http2_cleartext: bool,
    /// How long in-flight requests may take to finish after a shutdown signal.
    pub shutdown_grace: Duration,
}

/// Largest request head (request line and headers) accepted; room for a
/// 64 KiB bearer token. Larger heads are refused by hyper (431).
const MAX_HEAD_BYTES: usize = 80 * 1024;

/// Streams one HTTP/2 connection may have open at once (each is a request
/// in flight or an open event stream; the per-user stream cap still holds).
const MAX_STREAMS_PER_CONNECTION: u32 = 1000;

/// How often an HTTP/2 connection is pinged, and how long the answer may
/// take before the peer counts as gone (what TCP would tell an HTTP/1
/// connection only on the next write).
const HTTP2_PING_EVERY: Duration = Duration::from_secs(30);
const HTTP2_PING_TIMEOUT: Duration = Duration::from_secs(20);

/// The first bytes of an HTTP/2 connection (RFC 9113 §3.4). No HTTP/1
/// request starts with `PRI`.
const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        .keep_alive(true);
    let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    http2
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(MAX_HEAD_BYTES).unwrap_or(u32::MAX))
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .keep_alive_interval(HTTP2_PING_EVERY)
        .keep_alive_timeout(HTTP2_PING_TIMEOUT);
    let (http1, http2) = (Arc::new(http1), Arc::new(http2));
    let stopping = watch::Sender::new(false);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let per_ip = PerIpSlots::new(limits.max_connections_per_ip);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "connection limit reached; closing new connection");
            drop(stream);
            continue;
        };
        let Some(ip_slot) = per_ip.try_acquire(peer.ip()) else {
            tracing::warn!(%peer, "per-IP connection limit reached; closing new connection");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        stop_stalled_readers(&stream, limits.stall_timeout);
        let service = router.clone().map_request(
            move |mut request: axum::extract::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request.map(axum::body::Body::new)
            },
        );
        let watcher = graceful.watcher();
        // Errors here are client-side (reset, header timeout).
        let ended = move |served: hyper::Result<()>| {
            if let Err(err) = served {
                tracing::debug!(error = %err, "connection ended with an error");
            }
            drop(ip_slot);
            drop(slot);
        };
        if !limits.http2_cleartext {
            // hyper's connection is the task, with no `async` block around
            // it: a block would hold the stream and the service twice (as
            // captures and inside the connection), and the sniffing's state
            // too. Per HTTP/1.1 connection: 1,152 -> 1,024 bytes
            // (bench/README.md "What an idle stream holds").
            let io = TokioIo::new(stream);
            let service = TowerToHyperService::new(service);
            tokio::spawn(
                watcher
                    .watch(http1.serve_connection(io, service))
                    .map(ended),
            );
            continue;
        }
        let (http1, http2) = (http1.clone(), http2.clone());
        let mut stopping = stopping.subscribe();
        let header_read_timeout = limits.header_read_timeout;
        tokio::spawn(async move {
            // A connection that has not said which protocol it speaks yet
            // is closed at shutdown, as hyper closes an idle one.
            let protocol = tokio::select! {
                protocol = sniff(&stream, header_read_timeout) => protocol,
                _ = stopping.wait_for(|stop| *stop) => None,
            };
            let io = TokioIo::new(stream);
            let service = TowerToHyperService::new(service);
            let served = match protocol {
                Some(Protocol::Http1) => watcher.watch(http1.serve_connection(io, service)).await,
                // Boxed: inline, hyper's HTTP/2 connection (~1.7 KB against
                // ~0.8 KB for HTTP/1) would size the task of every
                // connection.
                Some(Protocol::Http2) => {
                    Box::pin(watcher.watch(http2.serve_connection(io, service))).await
                }
                None => Ok(()),
            };
            ended(served);
        });
    }
    drop(listener);
    stopping.send_replace(true);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!("in-flight requests did not finish within the shutdown grace period");
        }
    }
}

/// Sets `TCP_USER_TIMEOUT`, so that a connection whose client stopped
/// reading is closed by the kernel once `after` has passed with data
/// waiting, and hyper's pending write fails (hyper has no write timeout).
/// An event stream holds nothing for a client that stopped reading (its
/// body is read from the feed only when hyper can write), so this is also
/// what frees the stream's place; where the option does not exist, that
/// waits until the operating system gives the connection up.
fn stop_stalled_readers(stream: &TcpStream, after: Duration) {
    #[cfg(target_os = "linux")]
    if let Err(err) = socket2::SockRef::from(stream).set_tcp_user_timeout(Some(after)) {
        tracing::debug!(error = %err, "TCP_USER_TIMEOUT could not be set");
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (stream, after);
}

/// Which protocol a connection speaks.
enum Protocol {
    Http1,
    Http2,
}

/// Tells HTTP/2 with prior knowledge from HTTP/1 by the connection's first
/// bytes, without consuming them. `None` when the client sent nothing
/// within the header read timeout or closed the connection: the same cut-off
/// as a slow HTTP/1 request head.
async fn sniff(stream: &TcpStream, timeout: Duration) -> Option<Protocol> {
    let mut first = [0u8; HTTP2_PREFACE.len()];
    let read = async {
        loop {
            let n = stream.peek(&mut first).await.ok()?;
            if n == 0 {
                return None;
            }
            if first[..n] != HTTP2_PREFACE[..n] {
                return Some(Protocol::Http1);
            }
            if n == first.len() {
                return Some(Protocol::Http2);
            }
            // A prefix of the preface so far: wait for more of it (peek
            // returns at once while the bytes it saw are unread).
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(timeout, read).await.ok().flatten()
}

/// Open connections per client, so that one client cannot hold every slot of
/// [`ConnectionLimits::max_connections`]. An entry exists only while its
/// client has a connection open, so the map never outgrows the global cap.
struct PerIpSlots {
    /// 0 = no cap.
    max: usize,
    open: OpenByClient,
}

/// Open connections by [`client_key`]; entries at zero are removed.
type OpenByClient = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// One connection's place in [`PerIpSlots`], given back when dropped.
struct IpSlot(Option<(OpenByClient, IpAddr)>);

impl PerIpSlots {
    fn new(max: usize) -> Self {
        Self {
            max,
            open: Arc::default(),
        }
    }

    /// A place for one more connection from `ip`, or `None` when that client
    /// already has `max` open.
    fn try_acquire(&self, ip: IpAddr) -> Option<IpSlot> {
        if self.max == 0 {
            return Some(IpSlot(None));
        }
        let key = client_key(ip);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(key).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(IpSlot(Some((self.open.clone(), key))))
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let Some((open, key)) = &self.0 else { return };
        let mut open = open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(key) {
            *count -= 1;
            if *count == 0 {
                open.remove(key);
            }
        }
    }
}

/// Whom a connection counts against: the IPv4 address (also when it arrives
/// IPv4-mapped on a dual-stack socket), or the IPv6 /64, which is what one
/// host or site is usually given and can spread its connections over.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !u128::from(u64::MAX);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_slots_cap_each_client_and_forget_it_at_zero() {
        let slots = PerIpSlots::new(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = slots.try_acquire(a).unwrap();
        let second = slots.try_acquire(a).unwrap();
        assert!(slots.try_acquire(a).is_none(), "a third from a is refused");
        assert!(slots.try_acquire(b).is_some(), "b is not affected");
        drop(first);
        let third = slots.try_acquire(a).unwrap();
        drop((second, third));
        assert!(
            slots.open.lock().unwrap().is_empty(),
            "no entry is kept at zero"
        );
        let unlimited = PerIpSlots::new(0);
        assert!((0..10).all(|_| unlimited.try_acquire(a).is_some()));
    }

    #[test]
    fn clients_are_ipv4_addresses_or_ipv6_64s() {
        let key = |s: &str| client_key(s.parse().unwrap()).to_string();
        assert_eq!(key("::ffff:10.0.0.1"), "10.0.0.1");
        assert_eq!(key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::");
        assert_eq!(key("2001:db8:1:2:bbbb::9"), "2001:db8:1:2::");
    }
}
