//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod clients;
pub mod echo;
pub mod fds;
pub mod servers;

use std::io;

/// Raises the soft RLIMIT_NOFILE to at least `want` (up to the hard limit) and returns the
/// new soft limit.
pub fn raise_fd_limit(want: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit to fill.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    if lim.rlim_cur < want as libc::rlim_t {
        let target = (want as libc::rlim_t).min(lim.rlim_max);
        lim.rlim_cur = target;
        // SAFETY: as above; lowering nothing, raising the soft limit within the hard one.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
        // SAFETY: as above.
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is i64 on FreeBSD
    let current = lim.rlim_cur as u64;
    current
}

/// How many fds this process has open (Linux: /proc/self/fd; elsewhere /dev/fd).
pub fn open_fd_count() -> io::Result<usize> {
    let dir = if cfg!(target_os = "linux") {
        "/proc/self/fd"
    } else {
        "/dev/fd"
    };
    // Minus one for the directory handle read_dir itself holds.
    Ok(std::fs::read_dir(dir)?.count().saturating_sub(1))
}

/// A reactor running `run()` on its own thread, stopped through its waker.
pub struct ServerThread {
    pub waker: rawloop::Waker,
    join: Option<std::thread::JoinHandle<io::Result<()>>>,
}

impl ServerThread {
    /// Builds a `Reactor<S>` on a new thread, lets `setup` register what it serves, then runs it.
    pub fn spawn<S, F>(setup: F) -> ServerThread
    where
        S: rawloop::Selector + 'static,
        F: FnOnce(&mut rawloop::Reactor<S>) -> io::Result<()> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::channel();
        let join = std::thread::spawn(move || {
            let mut reactor = rawloop::Reactor::<S>::new()?;
            setup(&mut reactor)?;
            tx.send(reactor.waker()).unwrap();
            reactor.run()
        });
        let waker = rx.recv().expect("the server thread failed to start");
        ServerThread {
            waker,
            join: Some(join),
        }
    }

    /// Stops the reactor and waits for its thread; the reactor (and every fd it owns) is gone
    /// when this returns.
    pub fn stop(mut self) -> io::Result<()> {
        self.waker.stop()?;
        self.join
            .take()
            .unwrap()
            .join()
            .expect("server thread panicked")
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        if let Some(join) = self.join.take() {
            let _ = self.waker.stop();
            let _ = join.join();
        }
    }
}

/// Sets SO_LINGER to zero so that closing sends a reset and leaves no TIME_WAIT.
pub fn set_linger_zero(fd: std::os::fd::RawFd) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `linger` is a valid struct of the size passed; the kernel checks `fd`.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt(SO_LINGER)");
}

/// Sends `payload` on `stream` from a second thread while reading the echo on this one,
/// and returns what came back (until `payload.len()` bytes or end of stream).
pub fn echo_round_trip(
    stream: std::net::TcpStream,
    payload: std::sync::Arc<Vec<u8>>,
) -> io::Result<Vec<u8>> {
    use std::io::{Read, Write};
    stream.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
    let mut writer = stream.try_clone()?;
    let data = payload.clone();
    let sender = std::thread::spawn(move || writer.write_all(&data));
    let mut back = Vec::with_capacity(payload.len());
    let mut reader = stream;
    let mut buf = vec![0u8; 64 * 1024];
    while back.len() < payload.len() {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        back.extend_from_slice(&buf[..n]);
    }
    sender.join().expect("sender panicked")?;
    Ok(back)
}

/// The backend name of selector type `S`.
pub fn backend_name<S: rawloop::Selector>() -> &'static str {
    S::new().expect("a selector").name()
}

/// A non-blocking TCP listener on a free loopback port, ready to register.
pub fn loopback_listener() -> std::net::TcpListener {
    let addr = rawloop::net::resolve("127.0.0.1", 0).unwrap();
    rawloop::net::listen_tcp(addr, &rawloop::net::ListenOptions::default())
        .expect("listening on a loopback port")
}

/// A connected pair of Unix streams: the first non-blocking, to register; the second
/// blocking, for the test to drive.
pub fn stream_pair() -> (
    std::os::unix::net::UnixStream,
    std::os::unix::net::UnixStream,
) {
    let (ours, theirs) = rawloop::net::socketpair().unwrap();
    rawloop::net::set_nonblocking(&theirs, false).unwrap();
    (ours, theirs)
}

/// The path of example program `name`, built first if it is missing or out of date: `cargo
/// test` builds the examples before it runs the tests, `cargo test --test x` does not.
pub fn example_bin(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/<test> -> target/<profile>/examples/<name>
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("a target directory");
    let path = dir.join("examples").join(name);
    static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !built.iter().any(|b| b == name) {
        let mut cargo = std::process::Command::new(env!("CARGO"));
        cargo.args(["build", "--quiet", "--example", name]);
        // The same features as the tests, or the build replaces the examples `cargo test`
        // built with them.
        if cfg!(rawloop_libkqueue) {
            cargo.args(["--features", "libkqueue"]);
        }
        if dir.ends_with("release") {
            cargo.arg("--release");
        }
        let status = cargo.status().expect("running cargo build");
        assert!(status.success(), "cargo build --example {name} failed");
        built.push(name.to_string());
    }
    path
}

/// A loopback port that was free a moment ago, for a program that binds it itself.
///
/// It is taken below the ephemeral range (on Linux, `ip_local_port_range`): a port the
/// kernel hands out to clients can be taken by a client's connect between the check and the
/// program's bind, and the thousands of client connections the tests make leave ports in
/// TIME_WAIT that no listener may bind. Each call of this process gets other ports, from a
/// start that depends on the process, so that tests running at the same time do not race for
/// the same ones.
pub fn free_port() -> u16 {
    free_ports(1)
}

/// `n` consecutive free loopback ports (see [`free_port`]); returns the first.
fn free_ports(n: u16) -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 10_000;
    let span = u32::from(ephemeral_start()).saturating_sub(LOW).max(1_000);
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let start = std::process::id().wrapping_mul(97) % span;
    let _ = NEXT.compare_exchange(u32::MAX, start, Ordering::Relaxed, Ordering::Relaxed);
    for _ in 0..span {
        let first = LOW + NEXT.fetch_add(u32::from(n), Ordering::Relaxed) % span;
        let ports: Vec<u16> = (first..first + u32::from(n)).map(|p| p as u16).collect();
        let free = ports.iter().all(|&port| {
            std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
                && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
        });
        if free {
            return ports[0];
        }
    }
    panic!("no {n} free loopback ports below the ephemeral range");
}

/// The first port of the kernel's ephemeral range (32768 where it cannot be read).
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768)
}

/// Sends `signal` to the process `child`.
pub fn send_signal(child: &std::process::Child, signal: nix::sys::signal::Signal) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, signal).expect("kill");
}

/// Connects to 127.0.0.1:`port`, retrying for a few seconds while the server starts.
pub fn connect_retrying(port: u16) -> std::net::TcpStream {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => return s,
            Err(e) if std::time::Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("connecting to 127.0.0.1:{port}: {e}"),
        }
    }
}

/// Waits for `child` to exit, at most `limit`; kills it and fails if it does not.
pub fn wait_exit(
    child: &mut std::process::Child,
    limit: std::time::Duration,
) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the program did not exit within {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Instantiates generic test functions `fn name<S: Selector>()` once per backend compiled
/// here: a module per backend (`select::name`, `poll::name`, `epoll::name`, `kqueue::name`),
/// each with a `#[test]` that calls `name::<Backend>()`. Attributes before a name (a `cfg`,
/// `ignore`) go on its tests.
#[allow(unused_macros)]
macro_rules! per_backend {
    ($($(#[$attr:meta])* $name:ident),* $(,)?) => {
        $crate::common::per_backend!(@backend select, rawloop::Select; $($(#[$attr])* $name),*);
        $crate::common::per_backend!(@backend poll, rawloop::Poll; $($(#[$attr])* $name),*);
        #[cfg(rawloop_epoll)]
        $crate::common::per_backend!(@backend epoll, rawloop::Epoll; $($(#[$attr])* $name),*);
        #[cfg(rawloop_kqueue)]
        $crate::common::per_backend!(@backend kqueue, rawloop::Kqueue; $($(#[$attr])* $name),*);
    };
    (@backend $backend:ident, $ty:ty; $($(#[$attr:meta])* $name:ident),*) => {
        mod $backend {
            $(
                $(#[$attr])*
                #[test]
                fn $name() {
                    super::$name::<$ty>();
                }
            )*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use per_backend;

/// Two consecutive loopback ports that were free a moment ago (`p`, `p + 1`).
pub fn free_port_pair() -> u16 {
    free_ports(2)
}

/// Whether python3 runs here, found out once per test binary. When it does not, the tests
/// that need a Python peer return at once (skipped), and this says so once on stderr, written
/// straight to it so that the harness's output capture does not hide it; `suite` names the
/// tests skipped.
pub fn python3(suite: &str) -> bool {
    use std::io::Write;
    static FOUND: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FOUND.get_or_init(|| {
        let why = match std::process::Command::new("python3")
            .arg("--version")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
        {
            Ok(status) if status.success() => return true,
            Ok(status) => format!("`python3 --version` failed ({status})"),
            Err(err) if err.kind() == io::ErrorKind::NotFound => "python3 is not on PATH".into(),
            // Present but not runnable for another reason: let the test fail loudly.
            Err(_) => return true,
        };
        let _ = writeln!(
            io::stderr(),
            "{suite}: SKIPPED the tests against the Python peers in tests/python/: {why}. \
             Install python3 to run them."
        );
        false
    })
}

/// The path of example program `name` without building it (for a test binary re-run where
/// cargo must not run, such as inside a network namespace; the outer run built it).
pub fn example_path(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("a target directory");
    dir.join("examples").join(name)
}

/// A program under test: its standard output arrives line by line on a channel, so that
/// every wait has a deadline; its standard error is collected whole. Killed if still running
/// when dropped.
pub struct Program {
    pub name: String,
    pub child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    /// Every stdout line taken so far.
    pub seen: Vec<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Program {
    /// Starts `command` with piped stdout and stderr, and `input` written to its stdin (then
    /// closed) from a thread; with no `input`, stdin is empty.
    pub fn start(name: &str, command: &mut std::process::Command, input: Option<&[u8]>) -> Program {
        use std::io::{BufRead, Read, Write};
        use std::process::Stdio;
        let mut child = command
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        if let Some(input) = input {
            let mut stdin = child.stdin.take().unwrap();
            let input = input.to_vec();
            std::thread::spawn(move || {
                let _ = stdin.write_all(&input);
            });
        }
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stderr = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut all = String::new();
            let _ = stderr.read_to_string(&mut all);
            all
        });
        Program {
            name: name.to_string(),
            child,
            lines,
            seen: Vec::new(),
            stderr: Some(stderr),
        }
    }

    /// The next line of standard output, waiting at most `within`; panics (with what the
    /// program wrote to stderr) if none comes.
    pub fn line(&mut self, within: std::time::Duration) -> String {
        match self.lines.recv_timeout(within) {
            Ok(line) => {
                self.seen.push(line.clone());
                line
            }
            Err(_) => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let stderr = self.stderr.take().map(|t| t.join().unwrap_or_default());
                panic!(
                    "{}: no more output within {within:?}; stdout so far: {:?}; stderr: {}",
                    self.name,
                    self.seen,
                    stderr.unwrap_or_default()
                )
            }
        }
    }

    /// Reads standard output until a line `wanted` accepts, and returns it.
    pub fn line_where(
        &mut self,
        within: std::time::Duration,
        wanted: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = std::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = self.line(left);
            if wanted(&line) {
                return line;
            }
        }
    }

    /// Takes every line the program has written so far without waiting (those its output
    /// thread has read), and returns how many lines have been taken in all.
    pub fn drain(&mut self) -> usize {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        self.seen.len()
    }

    /// Sends `signal` to the program.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        send_signal(&self.child, signal);
    }

    /// Waits at most `within` for the program to exit (killing it and failing if it does
    /// not), and returns its status, all its standard output (what was already taken, then
    /// the rest) and its standard error.
    pub fn finish(mut self, within: std::time::Duration) -> Finished {
        let status = wait_exit(&mut self.child, within);
        // The reader threads end once the pipes close (a grandchild holding them could keep
        // them open: wait a bounded time).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
        {
            self.seen.push(line);
        }
        let stderr = self
            .stderr
            .take()
            .map(|t| t.join().unwrap_or_default())
            .unwrap_or_default();
        Finished {
            name: self.name.clone(),
            status,
            stdout: std::mem::take(&mut self.seen),
            stderr,
        }
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// How a [`Program`] ended.
#[derive(Debug)]
pub struct Finished {
    pub name: String,
    pub status: std::process::ExitStatus,
    /// Its standard output, one entry a line.
    pub stdout: Vec<String>,
    pub stderr: String,
}

impl Finished {
    /// Panics unless the program exited 0; returns itself.
    pub fn success(self) -> Finished {
        assert!(
            self.status.success(),
            "{} failed ({}); stdout: {:?}; stderr: {}",
            self.name,
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }
}

/// A directory of its own under the system's temp dir, removed with what it holds on drop.
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    /// A new, empty directory; `tag` goes into its name.
    pub fn new(tag: &str) -> TempDir {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("rawloop-test-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).expect("creating a temp dir");
        TempDir(dir)
    }

    /// The path of `name` in the directory.
    pub fn join(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A reactor serving a free loopback port on its own thread: `serve` registers the listener
/// with it. Returns the server and the port's address.
pub fn serve_loopback<S, F>(serve: F) -> (ServerThread, std::net::SocketAddr)
where
    S: rawloop::Selector + 'static,
    F: FnOnce(&mut rawloop::Reactor<S>, std::net::TcpListener) -> io::Result<()> + Send + 'static,
{
    let listener = loopback_listener();
    let addr = listener.local_addr().unwrap();
    let server = ServerThread::spawn::<S, _>(move |reactor| serve(reactor, listener));
    (server, addr)
}

/// A Message-protocol frame (`docs/protocol.md`) of any header bytes and content: the
/// header's length as a big-endian `u16`, the header, the content.
pub fn frame(header: &[u8], content: &[u8]) -> Vec<u8> {
    let len = u16::try_from(header.len()).expect("a header of at most 65,535 bytes");
    let mut frame = len.to_be_bytes().to_vec();
    frame.extend_from_slice(header);
    frame.extend_from_slice(content);
    frame
}

pub mod programs;

/// A child process that is killed (and reaped) when the guard drops: a test that fails
/// half-way leaves no server running behind it.
pub struct ChildGuard(pub std::process::Child);

impl std::ops::Deref for ChildGuard {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}

impl std::ops::DerefMut for ChildGuard {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.0
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}
