//! The strace cross-check: every syscall a server makes during one load-generator run.

use std::collections::BTreeMap;
use std::fs;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::load::{echo_load, number, run_loadgen};
use crate::plan::{BackendName, Cell, Plan, Server};
use crate::servers::{start_server, Env, Guard};

/// Syscalls of one traced run: per syscall name, and the exchanges they served.
pub struct Traced {
    pub calls: BTreeMap<String, u64>,
    pub exchanges: u64,
}

fn strace_run(env: &Env, plan: &Plan, server: Server) -> Result<Traced, String> {
    let what = server.name();
    let mut running = start_server(env, server.command(&env.bin), &what)?;
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
    let cell = Cell::new(64, 50, 0);
    let load = echo_load(plan, cell);
    let report = run_loadgen(env, running.port, running.guard.pid(), &load);
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
    })
}

/// Traces rawloop-epoll and mio, those of them that run.
pub fn cross_check(env: &Env, plan: &Plan) -> Vec<(Server, Result<Traced, String>)> {
    let mut traced = Vec::new();
    let wanted = [Server::Rawloop(BackendName("epoll")), Server::Mio];
    for s in wanted.into_iter().filter(|s| plan.servers.contains(s)) {
        let t = strace_run(env, plan, s);
        match &t {
            Ok(t) => eprintln!(
                "strace {}: {:.3} syscalls per message",
                s.name(),
                t.calls.values().sum::<u64>() as f64 / t.exchanges as f64
            ),
            Err(e) => eprintln!("strace {}: {e}", s.name()),
        }
        traced.push((s, t));
    }
    traced
}
