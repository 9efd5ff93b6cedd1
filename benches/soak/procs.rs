//! The soak benchmark's process helpers: starting the example servers pinned to a core (on
//! the runners' shared `support`), free ports, reading `/proc` for a process's fds, RSS and
//! CPU time, and stopping the servers. Nothing here waits without a deadline.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::support::{parse_port, pin_current};

// ---------------------------------------------------------------------------------------------
// Ports
// ---------------------------------------------------------------------------------------------

/// The kernel's ephemeral port range (where connect(2) picks client ports).
pub fn ephemeral_range() -> Option<(u16, u16)> {
    let text = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = text.split_whitespace().map(|s| s.parse::<u16>());
    match (it.next(), it.next()) {
        (Some(Ok(low)), Some(Ok(high))) => Some((low, high)),
        _ => None,
    }
}

/// A free 127.0.0.1 port outside the ephemeral range, so that the benchmark's own client
/// ports can never be it; `None` (use port 0) where the range leaves no room or is unknown.
pub fn free_port_outside_ephemeral(salt: u64) -> Option<u16> {
    let (low, high) = ephemeral_range()?;
    // The wider of [10000, low) and (high, 65535].
    let below = (10_000u32, u32::from(low));
    let above = (u32::from(high) + 1, 65_536u32);
    let (from, to) = if below.1.saturating_sub(below.0) >= above.1.saturating_sub(above.0) {
        below
    } else {
        above
    };
    if to <= from + 100 {
        return None;
    }
    let span = u64::from(to - from);
    let mut x = salt ^ u64::from(std::process::id()) ^ 0x9e37_79b9_7f4a_7c15;
    for _ in 0..64 {
        x = crate::splitmix64(x);
        let port = (u64::from(from) + x % span) as u16;
        // std sets SO_REUSEADDR, as the servers do: this fails only if someone listens there.
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return Some(port);
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------------------------

/// A server process: started pinned, killed with the benchmark (PR_SET_PDEATHSIG on Linux)
/// and when dropped.
pub struct Server {
    pub name: &'static str,
    pub addr: SocketAddr,
    pub log: PathBuf,
    child: Child,
    exited: Option<ExitStatus>,
}

impl Server {
    /// Starts `bin args.. 127.0.0.1 <port>` with `RUST_LOG=warn`, stdout and stderr to files in
    /// `dir`, and waits (10 s at most) for its first line and a successful connect.
    pub fn start(
        name: &'static str,
        bin: &Path,
        args: &[String],
        port: u16,
        cpu: Option<usize>,
        dir: &Path,
    ) -> Result<Server, String> {
        let out_path = dir.join(format!("{name}.out"));
        let log = dir.join(format!("{name}.log"));
        let out =
            fs::File::create(&out_path).map_err(|e| format!("{}: {e}", out_path.display()))?;
        let err = fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .args(["127.0.0.1", &port.to_string()])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        // SAFETY: the closure runs in the child between fork and exec, and makes only two
        // system calls (sched_setaffinity, prctl), both async-signal-safe, touching no memory
        // shared with the parent.
        unsafe {
            cmd.pre_exec(move || {
                if let Some(cpu) = cpu {
                    pin_current(cpu)?;
                }
                #[cfg(any(target_os = "linux", target_os = "android"))]
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let mut server = Server {
            name,
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            log,
            child,
            exited: None,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = fs::read_to_string(&out_path).unwrap_or_default();
            if let Some(line) = text.lines().next().filter(|_| text.contains('\n')) {
                if port == 0 {
                    let found = parse_port(line)
                        .ok_or_else(|| format!("{name}: no port in its first line {line:?}"))?;
                    server.addr.set_port(found);
                }
                if TcpStream::connect_timeout(&server.addr, Duration::from_secs(1)).is_ok() {
                    return Ok(server);
                }
            }
            if let Some(status) = server.exited() {
                let err = fs::read_to_string(&server.log).unwrap_or_default();
                return Err(format!(
                    "{name} exited ({status}) before it listened: {}",
                    err.trim()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{name} was not listening on {} within 10 s",
                    server.addr
                ));
            }
            sleep(Duration::from_millis(10));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, once the server has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
        self.exited
    }

    /// SIGTERM, then up to `grace` for it to exit; SIGKILL after that (an error).
    pub fn stop(&mut self, grace: Duration) -> Result<ExitStatus, String> {
        if let Some(status) = self.exited() {
            return Ok(status);
        }
        let pid = Pid::from_raw(self.child.id() as i32);
        kill(pid, Signal::SIGTERM).map_err(|e| format!("SIGTERM to {}: {e}", self.name))?;
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(status) = self.exited() {
                return Ok(status);
            }
            sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Err(format!(
            "{} was still running {grace:?} after SIGTERM (killed)",
            self.name
        ))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// /proc
// ---------------------------------------------------------------------------------------------

/// What `/proc` says about a process at one moment.
#[derive(Copy, Clone, Debug)]
pub struct Sample {
    /// Open file descriptors (entries of `/proc/<pid>/fd`).
    pub fds: usize,
    /// Resident set size in KiB (`VmRSS`).
    pub rss_kib: u64,
    /// User + system CPU time in clock ticks.
    pub cpu_ticks: u64,
}

/// Samples `pid` (`"self"` for this process); `None` once it has gone.
pub fn sample(pid: &str) -> Option<Sample> {
    let fds = fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())?;
    Some(Sample {
        fds,
        rss_kib,
        cpu_ticks: cpu_ticks(pid)?,
    })
}

/// utime + stime of `pid`, in clock ticks (fields 14 and 15 of `/proc/<pid>/stat`, counted
/// after the command name, which may hold spaces and parentheses).
pub fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // after_name starts at field 3 (state): utime is field 14, stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
pub fn ticks_per_second() -> f64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as f64,
        _ => 100.0,
    }
}
