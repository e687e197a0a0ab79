//! [`RedisServer`]: a throwaway `redis-server` on a free loopback port, the oracle of
//! the RESP differential test and the reference of the RESP tests.
//!
//! It runs `redis-server --port P --bind 127.0.0.1 --save '' --appendonly no` in
//! its own temporary folder (`--dir`), with further arguments after those (so
//! `--appendonly yes --appendfsync always` turns durability on, and a later `--dir`
//! wins), and waits until it answers `PING`. Dropping it kills the process.
//! `redis-server`, `redis-cli` and `redis-benchmark` come from Debian's
//! `redis-server` and `redis-tools` packages, which `scripts/setup.sh` installs;
//! without them the tests fail saying so (they are not skipped).

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a started server may take to answer `PING`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between `PING` attempts.
const READY_POLL: Duration = Duration::from_millis(20);
/// Attempts at a free port (another process may take the probed port first).
const PORT_ATTEMPTS: usize = 5;
/// Bytes of the server's log shown in a failure message.
const LOG_TAIL_BYTES: usize = 4_000;

/// Fails the test, saying how to install it, unless `command` (`redis-server`,
/// `redis-cli`, `redis-benchmark`) runs; returns it as given (found on `PATH`).
pub fn require_tool(command: &str) -> PathBuf {
    match Command::new(command)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => PathBuf::from(command),
        Err(error) => panic!(
            "cannot run `{command}` ({error}): the RESP tests need Debian's redis-server and \
             redis-tools packages; run scripts/setup.sh (it installs them)"
        ),
    }
}

/// A running `redis-server` on `127.0.0.1`, killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// A server with no persistence (`--save '' --appendonly no`).
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// A server with `extra_args` after the defaults, e.g.
    /// `["--appendonly", "yes", "--appendfsync", "always"]`.
    pub fn start_with(extra_args: &[&str]) -> RedisServer {
        let binary = require_tool("redis-server");
        let dir = tempfile::tempdir().expect("a temporary folder for redis-server");
        let mut failures = Vec::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            match spawn(&binary, port, dir.path(), extra_args) {
                Ok(child) => return RedisServer { child, port, dir },
                // Most likely the port was taken meanwhile: try another.
                Err(failure) => failures.push(format!("port {port}: {failure}")),
            }
        }
        panic!(
            "redis-server did not start in {PORT_ATTEMPTS} attempts:\n{}",
            failures.join("\n")
        )
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`.
    pub fn address(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// `redis://127.0.0.1:<port>/`, for clients that take a URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Its working folder (`--dir`, unless the extra arguments gave another).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The end of its log, for failure messages.
    pub fn log_tail(&self) -> String {
        log_tail(self.dir.path())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "----- redis-server on port {}, end of its log -----\n{}\n-----",
                self.port,
                self.log_tail()
            );
        }
    }
}

/// A port that was free a moment ago (bound to port 0, then released).
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .unwrap_or_else(|error| panic!("cannot find a free loopback port: {error}"))
}

fn log_path(dir: &Path) -> PathBuf {
    dir.join("redis-server.log")
}

fn log_tail(dir: &Path) -> String {
    let text = std::fs::read(log_path(dir)).unwrap_or_default();
    let from = text.len().saturating_sub(LOG_TAIL_BYTES);
    String::from_utf8_lossy(&text[from..]).into_owned()
}

/// Starts the server on `port` and waits for `PING`; on failure the process is
/// reaped and the reason returned.
fn spawn(binary: &Path, port: u16, dir: &Path, extra_args: &[&str]) -> Result<Child, String> {
    let dir_text = dir.to_str().expect("a UTF-8 temporary path");
    let log = log_path(dir);
    let port_text = port.to_string();
    let mut child = Command::new(binary)
        .args(["--port", &port_text, "--bind", "127.0.0.1", "--save", ""])
        .args(["--appendonly", "no", "--daemonize", "no", "--dir", dir_text])
        .args(["--logfile", log.to_str().expect("a UTF-8 temporary path")])
        .args(extra_args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|error| {
            panic!(
                "cannot start {} ({error}): run scripts/setup.sh (it installs Debian's \
                 redis-server and redis-tools)",
                binary.display()
            )
        });
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                return Err(format!(
                    "redis-server exited ({status}); its log:\n{}",
                    log_tail(dir)
                ))
            }
            Ok(None) => {}
            Err(error) => return Err(format!("cannot wait for redis-server: {error}")),
        }
        if ping(address) {
            return Ok(child);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "no PONG within {READY_TIMEOUT:?}; its log:\n{}",
                log_tail(dir)
            ));
        }
        std::thread::sleep(READY_POLL);
    }
}

/// Whether a server at `address` answers an inline `PING`: `+PONG`, or
/// `-NOAUTH ...` when started with `--requirepass` (it serves all the same).
fn ping(address: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_secs(1)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).is_ok()
        && (line.trim_end() == "+PONG" || line.starts_with("-NOAUTH"))
}
