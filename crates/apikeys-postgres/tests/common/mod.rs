//! Helpers shared by the PostgreSQL tests: a TCP proxy in front of the test
//! server that counts round trips and can play an outage.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use apikeys_postgres::testing::TestSchema;
use postgres::Config;
use postgres::config::Host;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

/// A proxy between the store and the test server, on a loopback port of its
/// own. It counts the server's `ReadyForQuery` messages: the server sends
/// exactly one at the end of every round trip (every `Sync` of the extended
/// protocol, every simple query), so their number is the number of round
/// trips, whatever the client does. `set_up(false)` cuts every connection and
/// refuses new ones until `set_up(true)`.
pub struct Proxy {
    addr: SocketAddr,
    state: Arc<State>,
}

struct State {
    upstream: SocketAddr,
    up: AtomicBool,
    stopping: AtomicBool,
    ready_for_query: AtomicU64,
    streams: Mutex<Vec<TcpStream>>,
    /// Armed by [`Proxy::cut_at_next_commit`]; taken by the first `COMMIT`.
    cut_at_commit: Mutex<Option<CommitCut>>,
}

/// Where [`Proxy::cut_at_next_commit`] cuts the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitCut {
    /// Before the server sees the `COMMIT`: the transaction is aborted.
    ServerNeverSees,
    /// After the server has committed, before its answer reaches the
    /// client: the transaction is committed, the client does not know.
    AnswerLost,
    /// As `AnswerLost`, and an outage starts at that moment (see
    /// [`Proxy::set_up`]), so the client cannot ask what happened.
    AnswerLostThenOutage,
}

impl State {
    /// Starts or ends an outage. Under the lock of `streams`, as accepting
    /// is, so that no connection slips in while the others are cut.
    fn set_up(&self, up: bool) {
        let mut streams = self.streams.lock().unwrap();
        self.up.store(up, Ordering::SeqCst);
        if !up {
            for s in streams.drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}

impl Proxy {
    /// A proxy to the server the test schema's URL names.
    pub fn start(db: &TestSchema) -> Proxy {
        let config: Config = db.url().parse().unwrap();
        let host = match &config.get_hosts()[0] {
            Host::Tcp(h) => h.clone(),
            #[allow(unreachable_patterns)]
            _ => panic!("the proxy needs a TCP host in the test URL"),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let upstream = (host.as_str(), port)
            .to_socket_addrs()
            .unwrap()
            .next()
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            upstream,
            up: AtomicBool::new(true),
            stopping: AtomicBool::new(false),
            ready_for_query: AtomicU64::new(0),
            streams: Mutex::new(Vec::new()),
            cut_at_commit: Mutex::new(None),
        });
        let st = state.clone();
        thread::spawn(move || {
            for client in listener.incoming() {
                if st.stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let mut streams = st.streams.lock().unwrap();
                if !st.up.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(st.upstream) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                streams.push(client.try_clone().unwrap());
                streams.push(server.try_clone().unwrap());
                drop(streams);
                let (c_read, s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                // Set by the client side when the server's answer to a
                // COMMIT must not reach the client.
                let swallow = Arc::new(Mutex::new(None));
                let (st1, swallow1) = (st.clone(), swallow.clone());
                thread::spawn(move || {
                    let _ = forward_client(c_read, s_write, &st1, &swallow1);
                });
                let st2 = st.clone();
                thread::spawn(move || {
                    let _ = forward_counting(server, client, &st2, &swallow);
                });
            }
        });
        Proxy { addr, state }
    }

    /// A connection string to the test database through this proxy, with the
    /// test's application name.
    pub fn url(&self, db: &TestSchema) -> String {
        let config: Config = db.url().parse().unwrap();
        let mut url = format!(
            "host={} port={} sslmode=disable application_name={}",
            self.addr.ip(),
            self.addr.port(),
            db.application_name()
        );
        if let Some(user) = config.get_user() {
            url.push_str(&format!(" user={user}"));
        }
        if let Some(dbname) = config.get_dbname() {
            url.push_str(&format!(" dbname={dbname}"));
        }
        if let Some(pw) = config.get_password() {
            url.push_str(&format!(" password='{}'", String::from_utf8_lossy(pw)));
        }
        url
    }

    /// Round trips completed so far, over every connection.
    pub fn round_trips(&self) -> u64 {
        self.state.ready_for_query.load(Ordering::SeqCst)
    }

    /// Cuts the connection that sends the next `COMMIT`, at `at`.
    pub fn cut_at_next_commit(&self, at: CommitCut) {
        *self.state.cut_at_commit.lock().unwrap() = Some(at);
    }

    /// Plays an outage (`false`): cuts every connection, refuses new ones;
    /// or ends it (`true`).
    pub fn set_up(&self, up: bool) {
        self.state.set_up(up);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.state.stopping.store(true, Ordering::SeqCst);
        self.state.set_up(false);
        let _ = TcpStream::connect(self.addr);
    }
}

/// Copies the client's messages to the server one by one, watching for a
/// `COMMIT` to cut at.
fn forward_client(
    mut client: TcpStream,
    mut server: TcpStream,
    st: &State,
    swallow: &Mutex<Option<CommitCut>>,
) -> std::io::Result<()> {
    // The startup message has no type byte: a length, then the rest.
    let mut len = [0u8; 4];
    client.read_exact(&mut len)?;
    let mut body = vec![0u8; (u32::from_be_bytes(len) as usize).saturating_sub(4)];
    client.read_exact(&mut body)?;
    server.write_all(&len)?;
    server.write_all(&body)?;
    let mut header = [0u8; 5];
    loop {
        client.read_exact(&mut header)?;
        let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        body.resize(len.saturating_sub(4), 0);
        client.read_exact(&mut body)?;
        if header[0] == b'Q' && body.starts_with(b"COMMIT") {
            let cut = st.cut_at_commit.lock().unwrap().take();
            match cut {
                Some(CommitCut::ServerNeverSees) => {
                    let _ = client.shutdown(Shutdown::Both);
                    let _ = server.shutdown(Shutdown::Both);
                    return Ok(());
                }
                Some(cut) => *swallow.lock().unwrap() = Some(cut),
                None => {}
            }
        }
        server.write_all(&header)?;
        server.write_all(&body)?;
    }
}

/// Copies the server's messages to the client one by one, counting
/// `ReadyForQuery` (`Z`) before forwarding it, so the count is up to date by
/// the time the client sees the answer. When `swallow` is set, the answer
/// is kept from the client, and the connection cut once it is complete.
fn forward_counting(
    mut server: TcpStream,
    mut client: TcpStream,
    st: &State,
    swallow: &Mutex<Option<CommitCut>>,
) -> std::io::Result<()> {
    let mut header = [0u8; 5];
    let mut body = Vec::new();
    loop {
        server.read_exact(&mut header)?;
        let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        body.resize(len.saturating_sub(4), 0);
        server.read_exact(&mut body)?;
        let swallowing = *swallow.lock().unwrap();
        if let Some(cut) = swallowing {
            if header[0] == b'Z' {
                if cut == CommitCut::AnswerLostThenOutage {
                    st.set_up(false);
                }
                let _ = client.shutdown(Shutdown::Both);
                let _ = server.shutdown(Shutdown::Both);
                return Ok(());
            }
            continue;
        }
        if header[0] == b'Z' {
            st.ready_for_query.fetch_add(1, Ordering::SeqCst);
        }
        client.write_all(&header)?;
        client.write_all(&body)?;
    }
}
