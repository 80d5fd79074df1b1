//! A TCP relay on loopback that can go away for a while, as a server does while it
//! restarts: [`Relay::outage`] resets every open connection and closes the listening port
//! (new connections are refused), then listens on the same port again. The server behind
//! it keeps its data, as a restarted S3 server or database does.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

#[derive(Debug, Default)]
struct Shared {
    /// Set while the relay refuses connections.
    down: AtomicBool,
    /// Set when the relay is dropped.
    done: AtomicBool,
    /// Both ends of every connection relayed so far.
    open: Mutex<Vec<TcpStream>>,
    /// Connections accepted, and outages.
    accepted: AtomicU64,
    outages: AtomicU64,
}

/// Forwards connections from a port of its own to `target`.
#[derive(Debug)]
pub struct Relay {
    addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Relay {
    /// Relays a free loopback port to `target` (`host:port`).
    pub fn start(target: &str) -> io::Result<Relay> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let (target, state) = (target.to_string(), Arc::clone(&shared));
        let thread = std::thread::spawn(move || serve(Some(listener), addr, &target, &state));
        Ok(Relay { addr, shared, thread: Some(thread) })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Resets every open connection and refuses new ones for `length`, from now on (the
    /// port is closed when this returns), then accepts again.
    pub fn outage(&self, length: Duration) {
        self.shared.down.store(true, Ordering::SeqCst);
        // The accept loop closes the port within a few milliseconds: wait for it.
        while TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
            std::thread::sleep(Duration::from_millis(5));
        }
        if let Ok(mut open) = self.shared.open.lock() {
            for s in open.drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
        self.shared.outages.fetch_add(1, Ordering::SeqCst);
        let shared = Arc::clone(&self.shared);
        std::thread::spawn(move || {
            std::thread::sleep(length);
            shared.down.store(false, Ordering::SeqCst);
        });
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Outages so far.
    pub fn outages(&self) -> u64 {
        self.shared.outages.load(Ordering::SeqCst)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shared.done.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The accept loop: polls a non-blocking listener, closes it while the relay is down and
/// binds the same port again after.
fn serve(mut listener: Option<TcpListener>, addr: SocketAddr, target: &str, shared: &Shared) {
    while !shared.done.load(Ordering::SeqCst) {
        if shared.down.load(Ordering::SeqCst) {
            listener = None;
            std::thread::sleep(Duration::from_millis(2));
            continue;
        }
        let Some(l) = &listener else {
            // `TcpListener::bind` sets SO_REUSEADDR on Unix: the port is free again.
            listener = TcpListener::bind(addr).ok();
            if let Some(l) = &listener {
                let _ = l.set_nonblocking(true);
            }
            std::thread::sleep(Duration::from_millis(2));
            continue;
        };
        let _ = l.set_nonblocking(true);
        match l.accept() {
            Ok((client, _)) => {
                shared.accepted.fetch_add(1, Ordering::SeqCst);
                let _ = client.set_nonblocking(false);
                if let Ok(server) = TcpStream::connect(target) {
                    relay(client, server, shared);
                }
            }
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

/// Copies bytes both ways between `client` and `server` on two threads.
fn relay(client: TcpStream, server: TcpStream, shared: &Shared) {
    let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else { return };
    if let (Ok(mut open), Ok(c3), Ok(s3)) =
        (shared.open.lock(), client.try_clone(), server.try_clone())
    {
        open.push(c3);
        open.push(s3);
    }
    let pipe = |mut from: TcpStream, mut to: TcpStream| {
        std::thread::spawn(move || {
            let _ = io::copy(&mut from, &mut to);
            let _ = to.shutdown(Shutdown::Write);
        })
    };
    pipe(client, s2);
    pipe(server, c2);
}
