//! Test support for the real `apikeys-server` binary: start it, read what it
//! prints, stop it with SIGTERM.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// The variables the server reads, cleared in every test's command so that
/// the developer's environment cannot change what a test runs.
const SERVER_VARIABLES: &[&str] = &[
    "APIKEYS_LISTEN",
    "APIKEYS_DB",
    "APIKEYS_TRUSTED_PROXIES",
    "APIKEYS_FORWARDED_HEADER",
    "APIKEYS_ADMIN_TOKEN",
    "APIKEYS_POSTGRES_URL",
    "APIKEYS_POSTGRES_POOL",
    "APIKEYS_POSTGRES_SCHEMA",
    "APIKEYS_PUBLIC_ORIGIN",
    "APIKEYS_FRAME_ANCESTORS",
    "APIKEYS_SECURE_COOKIES",
];

/// The binary, with the server's variables cleared.
pub fn command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_apikeys-server"));
    for var in SERVER_VARIABLES {
        command.env_remove(var);
    }
    command
}

/// A running server.
pub struct Running {
    pub child: Child,
    pub addr: SocketAddr,
    /// Lines printed before the "listening" line.
    pub printed: Vec<String>,
    /// Its log so far (stderr), read on a thread.
    log: Arc<Mutex<String>>,
    /// The rest of stdout, read on a thread.
    _rest: std::thread::JoinHandle<()>,
}

/// Starts the binary on 127.0.0.1:0 with `args`, and APIKEYS_ADMIN_TOKEN set
/// to `admin_token` or unset; returns once it says where it listens.
pub fn start<S: AsRef<OsStr>>(args: &[S], admin_token: Option<&str>) -> Running {
    match admin_token {
        Some(t) => start_with(args, &[("APIKEYS_ADMIN_TOKEN", t)]),
        None => start_with(args, &[]),
    }
}

/// As [`start`], with these environment variables set.
pub fn start_with<S: AsRef<OsStr>>(args: &[S], vars: &[(&str, &str)]) -> Running {
    let mut command = command();
    command.args(["--listen", "127.0.0.1:0"]).args(args);
    for (name, value) in vars {
        command.env(name, value);
    }
    run(command)
}

/// As [`start`], run by `sh -c '<prelude>; exec <binary> …'` (to set a
/// umask, say).
pub fn start_via_shell<S: AsRef<OsStr>>(prelude: &str, args: &[S]) -> Running {
    let mut shell = Command::new("sh");
    shell
        .arg("-c")
        .arg(format!("{prelude}; exec \"$0\" \"$@\""))
        .arg(command().get_program())
        .args(["--listen", "127.0.0.1:0"])
        .args(args);
    for var in SERVER_VARIABLES {
        shell.env_remove(var);
    }
    run(shell)
}

fn run(mut command: Command) -> Running {
    command
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let sink = log.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                return;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let (tx, rx) = mpsc::channel();
    let rest = std::thread::spawn(move || forward_lines(stdout, tx));
    let mut printed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) else {
            let _ = child.kill();
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(100));
            panic!(
                "the server did not print where it listens: {printed:?}; log: {}",
                log.lock().unwrap()
            );
        };
        if let Some(addr) = line.strip_prefix("apikeys-server listening on http://") {
            return Running {
                child,
                addr: addr.trim().parse().unwrap(),
                printed,
                log,
                _rest: rest,
            };
        }
        printed.push(line);
    }
}

impl Running {
    /// The token of the "Generated admin token" line, if it printed one.
    pub fn generated_token(&self) -> Option<String> {
        self.printed
            .iter()
            .find(|l| l.starts_with("Generated admin token"))
            .map(|l| l.rsplit(' ').next().unwrap().to_string())
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Sends SIGTERM and asserts that it exits successfully within 20 s.
    pub fn stop(&mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader thread catch the last lines.
                std::thread::sleep(Duration::from_millis(50));
                assert!(
                    status.success(),
                    "exit after SIGTERM: {status}; log: {}",
                    self.log()
                );
                return;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the server did not stop within 20 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    /// A test that fails half-way leaves no server behind.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn forward_lines(stdout: ChildStdout, tx: mpsc::Sender<String>) {
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { return };
        let _ = tx.send(line);
    }
}
