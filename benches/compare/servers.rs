//! The server processes: started pinned to one core, killed with the runner, never waited
//! for without a deadline; and the open-file limit they inherit.

use std::fs;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// A child process that is killed when dropped.
pub struct Guard {
    pub child: Child,
    pub what: String,
}

impl Guard {
    pub fn spawn(mut cmd: Command, what: &str, cpu: Option<usize>) -> Result<Guard, String> {
        // SAFETY: the closure runs in the child between fork and exec and calls only
        // async-signal-safe functions (sched_setaffinity, prctl) on memory of its own.
        unsafe {
            cmd.pre_exec(move || {
                if let Some(cpu) = cpu {
                    pin(0, cpu)?;
                }
                // Linux only; elsewhere a child outlives a runner that is killed outright
                // (Guard's Drop still kills it on every ordinary exit).
                #[cfg(any(target_os = "linux", target_os = "android"))]
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| format!("starting {what}: {e}"))?;
        Ok(Guard {
            child,
            what: what.to_string(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the child to exit, killing it after `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> Result<std::process::ExitStatus, String> {
        let end = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) if Instant::now() < end => sleep(Duration::from_millis(10)),
                Ok(None) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return Err(format!("{} did not finish within {timeout:?}", self.what));
                }
                Err(e) => return Err(format!("waiting for {}: {e}", self.what)),
            }
        }
    }

    /// Sends `signal`, then waits up to `timeout` before killing.
    pub fn stop(&mut self, signal: libc::c_int, timeout: Duration) -> Result<(), String> {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: kill only sends a signal, to our own child, which has not been reaped.
            unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        }
        self.wait(timeout).map(drop)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Pins process `pid` (0: the caller) to `cpu`.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn pin(pid: libc::pid_t, cpu: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data; CPU_SET writes inside it (cpu < CPU_SETSIZE is checked
    // by the caller's choice of cpus from the affinity mask).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(pid, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Pinning needs sched_setaffinity (Linux): elsewhere nothing is pinned (`allowed_cpus` is
/// empty, so this is never called).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn pin(_pid: libc::pid_t, _cpu: usize) -> io::Result<()> {
    Ok(())
}

/// The cpus this process may run on.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: as in `pin`; sched_getaffinity fills the set we own.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// Without sched_getaffinity: none known, so nothing is pinned.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn allowed_cpus() -> Vec<usize> {
    Vec::new()
}

/// Raises the soft limit on open files to the hard limit (children inherit it).
pub fn raise_nofile() -> libc::rlim_t {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write one rlimit struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    lim.rlim_cur
}

/// Where the runner puts its children, their output and its report.
pub struct Env {
    pub bin: PathBuf,
    pub scratch: PathBuf,
    pub server_cpu: Option<usize>,
    pub loadgen_cpu: Option<usize>,
}

/// The port in a server's first line: `... port 12345 ...` or `('127.0.0.1', 12345)`.
fn parse_port(line: &str) -> Option<u16> {
    if let Some(rest) = line.split(" port ").nth(1) {
        return rest.split_whitespace().next()?.parse().ok();
    }
    let rest = line.split("', ").nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// A server started and listening.
pub struct Running {
    pub guard: Guard,
    pub port: u16,
    pub err_path: PathBuf,
}

pub fn start_server(env: &Env, mut cmd: Command, what: &str) -> Result<Running, String> {
    let out_path = env.scratch.join("server.out");
    let err_path = env.scratch.join("server.err");
    let out = fs::File::create(&out_path).map_err(|e| e.to_string())?;
    let err = fs::File::create(&err_path).map_err(|e| e.to_string())?;
    cmd.env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    let mut guard = Guard::spawn(cmd, what, env.server_cpu)?;
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let text = fs::read_to_string(&out_path).unwrap_or_default();
        if let Some(port) = text.lines().next().and_then(parse_port) {
            return Ok(Running {
                guard,
                port,
                err_path,
            });
        }
        if let Ok(Some(status)) = guard.child.try_wait() {
            let err = fs::read_to_string(&err_path).unwrap_or_default();
            return Err(format!(
                "{what} exited ({status}) before listening: {}",
                err.trim()
            ));
        }
        if Instant::now() > end {
            return Err(format!("{what} did not print its port within 10 s"));
        }
        sleep(Duration::from_millis(5));
    }
}
