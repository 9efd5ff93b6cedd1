//! The strace cross-checks: every syscall a server makes during one load-generator run, per
//! echoed message (echo servers) or per connection (Message servers, one request per
//! connection).

use std::collections::BTreeMap;
use std::fs;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::load::echo_load;
use crate::plan::{BackendName, Cell, MessageServer, Plan, Server};
use crate::rounds::message_load;
use crate::servers::{start_server, Env};
use crate::support::{number, Guard};

/// Syscalls of one traced run: per syscall name, and the exchanges and connections they
/// served.
pub struct Traced {
    pub calls: BTreeMap<String, u64>,
    pub exchanges: u64,
    pub connects: u64,
}

impl Traced {
    /// "name n, name n, ..." per `unit` (exchanges or connections), the most frequent first,
    /// leaving out what is under 0.001 per unit.
    pub fn breakdown(&self, unit: u64) -> String {
        let mut parts: Vec<(&String, &u64)> = self.calls.iter().collect();
        parts.sort_by(|a, b| b.1.cmp(a.1));
        parts
            .iter()
            .filter(|(_, &n)| n as f64 / unit as f64 >= 0.001)
            .map(|(name, &n)| format!("{name} {:.3}", n as f64 / unit as f64))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Every syscall made, per `unit`.
    pub fn per(&self, unit: u64) -> f64 {
        self.calls.values().sum::<u64>() as f64 / unit as f64
    }
}

/// Starts `server`, attaches `strace -c -f` to it, runs the load generator with `load`, and
/// counts every syscall the server made meanwhile (its start-up is before the attach).
fn strace_run(env: &Env, server: Command, what: &str, load: &[String]) -> Result<Traced, String> {
    let mut running = start_server(env, server, what)?;
    let out = env.scratch.join("strace.txt");
    let mut cmd = Command::new("strace");
    cmd.args(["-c", "-f", "-p", &running.guard.pid().to_string(), "-o"])
        .arg(&out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut strace = Guard::spawn(cmd, "strace", env.loadgen_cpu)?;
    // Attached once the server's TracerPid is set.
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let status =
            fs::read_to_string(format!("/proc/{}/status", running.guard.pid())).unwrap_or_default();
        let tracer = status
            .lines()
            .find_map(|l| l.strip_prefix("TracerPid:"))
            .map(str::trim);
        if matches!(tracer, Some(t) if t != "0") {
            break;
        }
        if Instant::now() > end {
            return Err("strace did not attach within 10 s (is ptrace allowed?)".into());
        }
        if let Ok(Some(status)) = strace.child.try_wait() {
            return Err(format!("strace exited ({status}) before attaching"));
        }
        sleep(Duration::from_millis(10));
    }
    let report = running.load(env, load);
    let detached = strace.stop(libc::SIGINT, Duration::from_secs(20));
    let _ = running.guard.stop(libc::SIGTERM, Duration::from_secs(10));
    let report = report?;
    detached?;
    let text = fs::read_to_string(&out).map_err(|e| format!("strace output: {e}"))?;
    let mut calls = BTreeMap::new();
    for line in text.lines() {
        let t: Vec<&str> = line.split_whitespace().collect();
        if t.len() < 5 || t[0].parse::<f64>().is_err() {
            continue;
        }
        let name = t[t.len() - 1];
        if name == "total" {
            continue;
        }
        if let Ok(n) = t[3].parse::<u64>() {
            calls.insert(name.to_string(), n);
        }
    }
    if calls.is_empty() {
        return Err(format!(
            "no syscall counts in strace's output: {}",
            text.trim()
        ));
    }
    Ok(Traced {
        calls,
        exchanges: number(&report, "exchanges_total")? as u64,
        connects: number(&report, "connects_total")? as u64,
    })
}

/// Traces rawloop-epoll and mio, those of them that run.
pub fn cross_check(env: &Env, plan: &Plan) -> Vec<(Server, Result<Traced, String>)> {
    let mut traced = Vec::new();
    let wanted = [Server::Rawloop(BackendName("epoll")), Server::Mio];
    for s in wanted.into_iter().filter(|s| plan.servers.contains(s)) {
        let load = echo_load(plan, Cell::new(64, 50, 0));
        let t = strace_run(env, s.command(&env.bin), &s.name(), &load);
        match &t {
            Ok(t) => eprintln!(
                "strace {}: {:.3} syscalls per message",
                s.name(),
                t.per(t.exchanges)
            ),
            Err(e) => eprintln!("strace {}: {e}", s.name()),
        }
        traced.push((s, t));
    }
    traced
}

/// Traces `app_server` on epoll and the floor (where `floor`), one request per connection,
/// under the Message runs' load: their syscalls per connection.
pub fn message_cross_check(
    env: &Env,
    plan: &Plan,
    floor: bool,
) -> Vec<(MessageServer, Result<Traced, String>)> {
    let mut traced = Vec::new();
    let epoll = BackendName("epoll");
    let mut wanted = Vec::new();
    if plan.servers.contains(&Server::Rawloop(epoll)) {
        wanted.push(MessageServer::App(epoll));
    }
    if floor {
        wanted.push(MessageServer::Floor);
    }
    for s in wanted {
        let load = message_load(plan, false);
        let t = strace_run(env, s.command(&env.bin, false), &s.name(), &load);
        match &t {
            Ok(t) => eprintln!(
                "strace {} one request per connection: {:.3} syscalls per connection",
                s.name(),
                t.per(t.connects)
            ),
            Err(e) => eprintln!("strace {}: {e}", s.name()),
        }
        traced.push((s, t));
    }
    traced
}
