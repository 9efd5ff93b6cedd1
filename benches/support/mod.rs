//! What the benchmark runners (`compare`, `scale`, `soak`) share: building the example
//! programs and finding them, the cpus and the open-file limit, child processes that die with
//! the runner and are never waited for without a deadline, the port a server prints, and a
//! run of `examples/loadgen` with its JSON report.
//!
//! Each runner includes this file with `#[path]` and uses a part of it.
#![allow(dead_code)]

use std::fs;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::Value;

/// `target/<profile>/examples`, next to the runner's own `target/<profile>/deps/<name>-*`.
pub fn examples_dir() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("where am I: {e}"))?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| format!("no target directory above {}", exe.display()))?;
    Ok(profile_dir.join("examples"))
}

/// `cargo build --release --example <each>`, with the cargo that runs this benchmark.
pub fn build_examples(examples: &[&str]) -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--release"]);
    for name in examples {
        cmd.args(["--example", name]);
    }
    let status = cmd
        .stdin(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run cargo build: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "cargo build --release of {} failed ({status})",
            examples.join(", ")
        ))
    }
}

/// The cpus this process may run on (empty where sched_getaffinity does not exist, so that
/// nothing is pinned there).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain old data, so all-zero is a valid value; sched_getaffinity
    // writes at most `size_of::<cpu_set_t>()` bytes into the set we own, and CPU_ISSET reads
    // it with an index below CPU_SETSIZE.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&cpu| libc::CPU_ISSET(cpu, &set))
            .collect()
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn allowed_cpus() -> Vec<usize> {
    Vec::new()
}

/// Pins the calling thread (and the threads and children it starts afterwards) to `cpu`.
/// Async-signal-safe: it is also called between fork and exec.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn pin_current(cpu: usize) -> io::Result<()> {
    // SAFETY: as in `allowed_cpus`; `cpu` comes from the affinity mask, so it is below
    // CPU_SETSIZE and CPU_SET writes inside the set. sched_setaffinity only reads the set.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Pinning needs sched_setaffinity (Linux): elsewhere nothing is pinned (`allowed_cpus` is
/// empty, so this is never called).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn pin_current(_cpu: usize) -> io::Result<()> {
    Ok(())
}

/// Raises the soft open-file limit to the hard one (children inherit it); returns the limit.
pub fn raise_nofile() -> libc::rlim_t {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => hard,
            Err(_) => soft,
        },
        Ok((soft, _)) => soft,
        Err(_) => 0,
    }
}

/// The port in a server's first line: `... port 12345 ...` (echo_server and the peers) or
/// `('127.0.0.1', 12345)` (app_server).
pub fn parse_port(line: &str) -> Option<u16> {
    let digits = |s: &str| -> Option<u16> {
        let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        s[..end].parse().ok()
    };
    if let Some(i) = line.find(" port ") {
        return digits(&line[i + " port ".len()..]);
    }
    let i = line.find("', ")?;
    digits(&line[i + "', ".len()..])
}

/// A child process that dies with the runner (PR_SET_PDEATHSIG, Linux) and is killed when
/// dropped.
pub struct Guard {
    pub child: Child,
    pub what: String,
}

impl Guard {
    /// Starts `cmd`, pinned to `cpu` if one is given.
    pub fn spawn(mut cmd: Command, what: &str, cpu: Option<usize>) -> Result<Guard, String> {
        // SAFETY: the closure runs in the child between fork and exec and makes only
        // async-signal-safe system calls (sched_setaffinity, prctl) on memory of its own.
        unsafe {
            cmd.pre_exec(move || {
                if let Some(cpu) = cpu {
                    pin_current(cpu)?;
                }
                // Linux only; elsewhere a child outlives a runner that is killed outright
                // (Drop still kills it on every ordinary exit).
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
    pub fn wait(&mut self, timeout: Duration) -> Result<ExitStatus, String> {
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
            // SAFETY: kill only sends a signal, to our own child, which has not been reaped
            // (try_wait said it is still running), so the pid is still its.
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

/// Runs `<bin>/loadgen` against `port` (its output in `scratch`, pinned to `cpu` if given)
/// and returns its JSON report; `extra` holds the workload's options.
pub fn run_loadgen(
    bin: &Path,
    scratch: &Path,
    port: u16,
    server_pid: u32,
    extra: &[String],
    cpu: Option<usize>,
) -> Result<Value, String> {
    let out_path = scratch.join("loadgen.out");
    let err_path = scratch.join("loadgen.err");
    let mut cmd = Command::new(bin.join("loadgen"));
    cmd.args(["--port", &port.to_string()])
        .args(["--server-pid", &server_pid.to_string()])
        .args(["--json", "--setup-timeout", "60", "--drain-timeout", "10"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).map_err(|e| e.to_string())?)
        .stderr(fs::File::create(&err_path).map_err(|e| e.to_string())?);
    let seconds: f64 = extra
        .windows(2)
        .filter(|w| w[0] == "--warmup" || w[0] == "--duration")
        .filter_map(|w| w[1].parse::<f64>().ok())
        .sum();
    let mut guard = Guard::spawn(cmd, "loadgen", cpu)?;
    let status = guard.wait(Duration::from_secs_f64(60.0 + 10.0 + 30.0 + seconds))?;
    let out = fs::read_to_string(&out_path).unwrap_or_default();
    let value: Value = serde_json::from_str(out.trim()).map_err(|_| {
        let err = fs::read_to_string(&err_path).unwrap_or_default();
        format!("loadgen ({status}) printed no report: {}", err.trim())
    })?;
    match value.get("error").and_then(Value::as_str) {
        Some(e) => Err(e.to_string()),
        None => Ok(value),
    }
}

/// The figure `key` of a load generator's report.
pub fn number(v: &Value, key: &str) -> Result<f64, String> {
    v.get(key)
        .and_then(Value::as_f64)
        .ok_or_else(|| format!("loadgen report has no {key}"))
}
