//! [`TestNode`]: one real `stele start` process and an HTTPS client for it.
//!
//! Start-up: the node is started with `--listen 127.0.0.1:0`, so the kernel picks a
//! free port and parallel tests never collide; it reports the port on stdout as
//! `listening on https://<ip>:<port>`. Its RESP (Redis protocol) listener is started
//! the same way (`--resp-listen 127.0.0.1:0`) and reported before that line, as
//! `resp listening on redis://<ip>:<port>` (`rediss://` with TLS). A thread reads stdout and hands lines over a
//! channel, so the wait for that line is bounded by [`NodeConfig::ready_timeout`];
//! another thread drains stderr into a bounded tail, so the node never blocks on a
//! full pipe and a failure can show what it logged.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::client::NodeClient;

/// How many lines of the node's stderr are kept for failure messages.
const LOG_LINES_MAX: usize = 200;
/// What the node prints on stdout once it serves.
const READY_PREFIX: &str = "listening on ";
/// What the node prints on stdout, before [`READY_PREFIX`], once its RESP listener
/// is bound (followed by `redis://<ip>:<port>` or `rediss://<ip>:<port>`).
const RESP_READY_PREFIX: &str = "resp listening on ";
/// How often a bounded wait for the process to exit looks again.
const EXIT_POLL: Duration = Duration::from_millis(20);

/// How to start a node. Restarts reuse it whole (same folder, same arguments).
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The `stele` binary (`env!("CARGO_BIN_EXE_stele")`).
    pub bin: PathBuf,
    /// `--data-dir`.
    pub data_dir: PathBuf,
    /// `--listen`; `127.0.0.1:0` picks a free port on every start.
    pub listen: String,
    /// `--resp-listen` (the Redis-protocol listener); `127.0.0.1:0` picks a free
    /// port on every start, `off` turns it off, and empty passes no flag (the
    /// node's configuration decides).
    pub resp_listen: String,
    /// Further arguments after `start` (e.g. a config file or peers, for clusters).
    pub extra_args: Vec<String>,
    /// Further environment variables (e.g. `RUST_LOG`).
    pub env: Vec<(String, String)>,
    /// How long to wait for the `listening on` line before failing.
    pub ready_timeout: Duration,
    /// How long a SIGTERM may take to end the process before failing.
    pub shutdown_timeout: Duration,
}

impl NodeConfig {
    /// The defaults: a free port on 127.0.0.1 (HTTPS and RESP), 60 s to start, 60 s
    /// to stop.
    pub fn new(bin: &Path, data_dir: &Path) -> NodeConfig {
        NodeConfig {
            bin: bin.to_owned(),
            data_dir: data_dir.to_owned(),
            listen: "127.0.0.1:0".to_owned(),
            resp_listen: "127.0.0.1:0".to_owned(),
            extra_args: Vec::new(),
            // Plain log lines in failure messages (tracing honours NO_COLOR).
            env: vec![("NO_COLOR".to_owned(), "1".to_owned())],
            ready_timeout: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(60),
        }
    }
}

/// A running (or stopped) `stele start` process. Derefs to the [`NodeClient`] of
/// its current address. Dropping it kills the process.
#[derive(Debug)]
pub struct TestNode {
    config: NodeConfig,
    child: Option<Child>,
    address: SocketAddr,
    resp_address: Option<SocketAddr>,
    client: NodeClient,
    log: Arc<Mutex<VecDeque<String>>>,
    starts: u32,
}

impl TestNode {
    /// Starts `bin start --data-dir data_dir --listen 127.0.0.1:0` and waits until
    /// it serves.
    pub fn start(bin: &Path, data_dir: &Path) -> TestNode {
        TestNode::start_with(NodeConfig::new(bin, data_dir))
    }

    /// Starts a node as `config` says and waits until it serves.
    pub fn start_with(config: NodeConfig) -> TestNode {
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let Started {
            child,
            address,
            resp_address,
        } = spawn(&config, &log);
        let client = client_for(&config, address);
        TestNode {
            config,
            child: Some(child),
            address,
            resp_address,
            client,
            log,
            starts: 1,
        }
    }

    /// The configuration the node was started with.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// The data folder.
    pub fn data_dir(&self) -> &Path {
        &self.config.data_dir
    }

    /// The ledger folder, `<data dir>/ledger`.
    pub fn ledger_dir(&self) -> PathBuf {
        self.config.data_dir.join("ledger")
    }

    /// The address the node listens on (changes on every restart with port 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The address of the RESP (Redis protocol) listener, as printed on the
    /// `resp listening on redis://...` line of the current start (it changes on
    /// every restart with port 0). Fails the test if this start printed none
    /// (`resp_listen` is `off`, or the node has no RESP listener).
    pub fn resp_address(&self) -> SocketAddr {
        self.resp_address.unwrap_or_else(|| {
            panic!(
                "the node printed no `{RESP_READY_PREFIX}redis://...` line before `{READY_PREFIX}...` \
                 (resp_listen {:?}); output:\n{}",
                self.config.resp_listen,
                self.log_tail()
            )
        })
    }

    /// The HTTPS client of the current process.
    pub fn client(&self) -> &NodeClient {
        &self.client
    }

    /// The operating-system process id, while the process runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The last lines the node wrote to stderr (this start and earlier ones).
    pub fn log_tail(&self) -> String {
        log_tail(&self.log)
    }

    /// Kills the process with SIGKILL (no chance to flush or clean up) and reaps it.
    pub fn kill9(&mut self) -> ExitStatus {
        let mut child = self.take_child("kill9");
        // SIGKILL on Unix; fails only if the process was already reaped.
        let _ = child.kill();
        child
            .wait()
            .unwrap_or_else(|error| panic!("cannot reap the killed node: {error}"))
    }

    /// The exit status if the process has exited by itself (it is then reaped
    /// and the node stopped), else `None`.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let status = child
            .try_wait()
            .unwrap_or_else(|error| panic!("cannot wait for the node: {error}"))?;
        self.child = None;
        Some(status)
    }

    /// Sends SIGTERM and waits (bounded by [`NodeConfig::shutdown_timeout`]) for the
    /// process to exit; returns its exit status. Fails the test (after a SIGKILL)
    /// if it does not exit in time.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.take_child("terminate");
        let pid =
            Pid::from_raw(i32::try_from(child.id()).expect("process ids fit in an i32 on Unix"));
        kill(pid, Signal::SIGTERM)
            .unwrap_or_else(|error| panic!("cannot send SIGTERM to the node: {error}"));
        let deadline = Instant::now() + self.config.shutdown_timeout;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return status,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(EXIT_POLL),
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "the node did not exit within {:?} of SIGTERM; log:\n{}",
                        self.config.shutdown_timeout,
                        self.log_tail()
                    );
                }
                Err(error) => panic!("cannot wait for the node: {error}"),
            }
        }
    }

    /// Starts the process again on the same data folder with the same arguments
    /// and waits until it serves. The node must have been stopped first
    /// ([`TestNode::kill9`] or [`TestNode::terminate`]). With port 0 the address
    /// changes: clients taken before the restart must be taken again.
    pub fn restart(&mut self) {
        assert!(
            self.child.is_none(),
            "restart of a node that still runs: stop it first (kill9 or terminate)"
        );
        self.starts += 1;
        push_log(
            &self.log,
            format!("----- restart #{} -----", self.starts - 1),
        );
        let Started {
            child,
            address,
            resp_address,
        } = spawn(&self.config, &self.log);
        self.child = Some(child);
        self.address = address;
        self.resp_address = resp_address;
        self.client = client_for(&self.config, address);
    }

    fn take_child(&mut self, what: &str) -> Child {
        self.child
            .take()
            .unwrap_or_else(|| panic!("{what}: the node is not running"))
    }
}

impl Deref for TestNode {
    type Target = NodeClient;

    fn deref(&self) -> &NodeClient {
        &self.client
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "----- stele node {} (data dir {}), last {LOG_LINES_MAX} lines of stderr -----\n{}\n-----",
                self.address,
                self.config.data_dir.display(),
                self.log_tail()
            );
        }
    }
}

fn push_log(log: &Mutex<VecDeque<String>>, line: String) {
    let mut lines = log.lock().unwrap_or_else(|poison| poison.into_inner());
    if lines.len() == LOG_LINES_MAX {
        lines.pop_front();
    }
    lines.push_back(line);
}

fn log_tail(log: &Mutex<VecDeque<String>>) -> String {
    let lines = log.lock().unwrap_or_else(|poison| poison.into_inner());
    lines.iter().cloned().collect::<Vec<_>>().join("\n")
}

/// A process that serves, and the addresses it printed.
struct Started {
    child: Child,
    address: SocketAddr,
    resp_address: Option<SocketAddr>,
}

/// Spawns the process and waits for its `listening on` line (and reads the
/// `resp listening on` line printed before it, if any).
fn spawn(config: &NodeConfig, log: &Arc<Mutex<VecDeque<String>>>) -> Started {
    let data_dir = config
        .data_dir
        .to_str()
        .expect("the data folder path is UTF-8");
    let mut command = Command::new(&config.bin);
    command
        .arg("start")
        .args(["--data-dir", data_dir, "--listen", &config.listen]);
    if !config.resp_listen.is_empty() {
        command.args(["--resp-listen", &config.resp_listen]);
    }
    command
        .args(&config.extra_args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in &config.env {
        command.env(name, value);
    }
    let mut child = command
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {}: {error}", config.bin.display()));

    let stderr = child.stderr.take().expect("stderr is piped");
    let stderr_log = Arc::clone(log);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            match line {
                Ok(line) => push_log(&stderr_log, line),
                Err(_) => break,
            }
        }
    });

    // stdout: every line goes to the log and over the channel; the thread keeps
    // draining after the waiter is gone (sends then fail and are ignored).
    let stdout = child.stdout.take().expect("stdout is piped");
    let stdout_log = Arc::clone(log);
    let (lines_sender, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            match line {
                Ok(line) => {
                    push_log(&stdout_log, format!("[stdout] {line}"));
                    let _ = lines_sender.send(line);
                }
                Err(_) => break,
            }
        }
    });

    let deadline = Instant::now() + config.ready_timeout;
    let mut resp_address = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                if let Some(url) = line.trim().strip_prefix(RESP_READY_PREFIX) {
                    match parse_resp_url(url) {
                        Some(address) => resp_address = Some(address),
                        None => {
                            let _ = child.kill();
                            let _ = child.wait();
                            panic!("cannot read the RESP address in {line:?}")
                        }
                    }
                } else if let Some(url) = line.trim().strip_prefix(READY_PREFIX) {
                    let address = parse_listen_url(url).unwrap_or_else(|| {
                        let _ = child.kill();
                        let _ = child.wait();
                        panic!("cannot read the address in {line:?}")
                    });
                    return Started {
                        child,
                        address,
                        resp_address,
                    };
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                // stdout closed: the process exited (or closed it). Reap it, and
                // give the stderr thread a moment to take the last lines.
                let status = wait_bounded(&mut child, Duration::from_secs(5));
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "`stele start` ended before serving ({status}); output:\n{}",
                    log_tail(log)
                );
            }
            Err(RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "`stele start` did not print `{READY_PREFIX}...` within {:?}; output:\n{}",
                    config.ready_timeout,
                    log_tail(log)
                );
            }
        }
    }
}

/// Waits up to `limit` for the process to exit; kills it after that.
fn wait_bounded(child: &mut Child, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.to_string(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(EXIT_POLL),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return "stdout closed but the process still ran; killed".to_owned();
            }
            Err(error) => return format!("cannot wait: {error}"),
        }
    }
}

/// `https://127.0.0.1:8443` (or `https://[::1]:8443`) to its socket address. An
/// unspecified address (`0.0.0.0`) is reached on loopback.
fn parse_listen_url(url: &str) -> Option<SocketAddr> {
    parse_url(url, &["https://"])
}

/// `redis://127.0.0.1:6380` or `rediss://[::1]:6380` (TLS) to its socket address,
/// as [`parse_listen_url`].
fn parse_resp_url(url: &str) -> Option<SocketAddr> {
    parse_url(url, &["redis://", "rediss://"])
}

/// `<scheme><ip>:<port>[/]` with one of `schemes` to its socket address.
fn parse_url(url: &str, schemes: &[&str]) -> Option<SocketAddr> {
    let url = url.trim();
    let authority = schemes.iter().find_map(|scheme| url.strip_prefix(scheme))?;
    let authority = authority.trim_end_matches('/');
    let mut address: SocketAddr = authority.parse().ok()?;
    if address.ip().is_unspecified() {
        address.set_ip(if address.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    Some(address)
}

fn client_for(config: &NodeConfig, address: SocketAddr) -> NodeClient {
    let token_path = config.data_dir.join("user.token");
    let token = std::fs::read_to_string(&token_path).unwrap_or_else(|error| {
        panic!(
            "the node serves but {} is unreadable: {error}",
            token_path.display()
        )
    });
    NodeClient::new(
        address,
        &config.data_dir.join("tls").join("node.crt"),
        token.trim(),
    )
}

#[cfg(test)]
mod tests {
    use super::{parse_listen_url, parse_resp_url};

    #[test]
    fn listen_lines_parse() {
        assert_eq!(
            parse_listen_url("https://127.0.0.1:8443"),
            Some("127.0.0.1:8443".parse().unwrap())
        );
        assert_eq!(
            parse_listen_url("https://0.0.0.0:9000/"),
            Some("127.0.0.1:9000".parse().unwrap())
        );
        assert_eq!(
            parse_listen_url("https://[::1]:9000"),
            Some("[::1]:9000".parse().unwrap())
        );
        assert_eq!(parse_listen_url("http://127.0.0.1:1"), None);
        assert_eq!(parse_listen_url("https://localhost:1"), None);
        assert_eq!(parse_listen_url("redis://127.0.0.1:1"), None);
    }

    #[test]
    fn resp_listen_lines_parse() {
        assert_eq!(
            parse_resp_url("redis://127.0.0.1:6380"),
            Some("127.0.0.1:6380".parse().unwrap())
        );
        assert_eq!(
            parse_resp_url("rediss://0.0.0.0:6380/"),
            Some("127.0.0.1:6380".parse().unwrap())
        );
        assert_eq!(
            parse_resp_url("redis://[::1]:6380"),
            Some("[::1]:6380".parse().unwrap())
        );
        assert_eq!(parse_resp_url("https://127.0.0.1:1"), None);
        assert_eq!(parse_resp_url("redis://localhost:1"), None);
    }
}
