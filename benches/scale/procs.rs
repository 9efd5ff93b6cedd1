//! The CPU accounting of a server's whole process tree from `/proc` (the child processes
//! themselves are the runners' shared `support::Guard`, started unpinned here).
//!
//! How the CPU time of a server is counted, so that threads and worker processes are both
//! covered and nothing is counted twice:
//!
//! - the processes: the server's pid and every descendant, found through
//!   `/proc/<pid>/task/<tid>/children` of every thread (or, where the kernel lacks that file,
//!   by scanning `/proc/*/stat` for parent pids);
//! - per process, `utime + stime` of `/proc/<pid>/stat`, which covers every thread of the
//!   process, the ones that have exited included; summed over the processes, this counts the
//!   supervisor and each worker process once;
//! - plus `cutime + cstime` of each process: the CPU time of children it has reaped. A worker
//!   that dies during a run and is reaped is counted in its own line before and in its
//!   parent's `cutime` after, so the difference is still its CPU time in the run.
//!
//! The difference between a snapshot taken before the load generator starts and one taken
//! after it has finished is the server's CPU time in that run. The load generator's own
//! `--server-pid` figure reads the server's pid alone: right for a server on threads, near
//! zero for a supervisor whose worker processes do the work. The report shows both.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::thread::sleep;
use std::time::Duration;

fn clock_ticks() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100)
        .max(1) as u64
}

/// The fields of a `/proc/.../stat` line after the command name (which is in parentheses and
/// may contain spaces): `fields[0]` is field 3 of stat(5).
fn stat_fields(path: &str) -> Option<(String, Vec<u64>)> {
    let stat = fs::read_to_string(path).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_string();
    let fields = stat[close + 1..]
        .split_whitespace()
        .map(|f| f.parse::<i64>().map_or(0, |v| v.max(0) as u64))
        .collect();
    Some((comm, fields))
}

/// Field `n` (1-based, as in stat(5)) of the fields after the command name.
fn field(fields: &[u64], n: usize) -> u64 {
    fields.get(n - 3).copied().unwrap_or(0)
}

fn tasks(pid: u32) -> Vec<u32> {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// `root` and every process descended from it.
pub fn tree(root: u32) -> Vec<u32> {
    let mut found = vec![root];
    let mut i = 0;
    let children_file =
        std::path::Path::new(&format!("/proc/{root}/task/{root}/children")).exists();
    if children_file {
        while i < found.len() {
            let pid = found[i];
            for tid in tasks(pid) {
                let text = fs::read_to_string(format!("/proc/{pid}/task/{tid}/children"))
                    .unwrap_or_default();
                found.extend(
                    text.split_whitespace()
                        .filter_map(|c| c.parse::<u32>().ok()),
                );
            }
            i += 1;
        }
    } else {
        // Without the children files: every process's parent, from its stat line.
        let mut parent: Vec<(u32, u32)> = Vec::new();
        if let Ok(dir) = fs::read_dir("/proc") {
            for e in dir.flatten() {
                let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                    continue;
                };
                if let Some((_, f)) = stat_fields(&format!("/proc/{pid}/stat")) {
                    parent.push((pid, field(&f, 4) as u32));
                }
            }
        }
        while i < found.len() {
            let pid = found[i];
            found.extend(parent.iter().filter(|(_, pp)| *pp == pid).map(|(p, _)| *p));
            i += 1;
        }
    }
    let mut seen = BTreeSet::new();
    found.retain(|p| seen.insert(*p));
    found
}

/// One thread's CPU time and context switches so far.
#[derive(Clone, Debug, Default)]
pub struct Task {
    pub comm: String,
    pub cpu_s: f64,
    pub switches: u64,
}

/// The CPU time of a process tree at one moment.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Every process's own CPU time (all its threads) plus that of the children it reaped.
    pub cpu_s: f64,
    pub processes: usize,
    /// Per (pid, tid): each live thread.
    pub tasks: BTreeMap<(u32, u32), Task>,
}

impl Snapshot {
    pub fn take(root: u32) -> Snapshot {
        let hz = clock_ticks() as f64;
        let mut snap = Snapshot::default();
        for pid in tree(root) {
            let Some((_, f)) = stat_fields(&format!("/proc/{pid}/stat")) else {
                continue;
            };
            // utime + stime (all threads) + cutime + cstime (reaped children).
            let ticks = field(&f, 14) + field(&f, 15) + field(&f, 16) + field(&f, 17);
            snap.cpu_s += ticks as f64 / hz;
            snap.processes += 1;
            for tid in tasks(pid) {
                let Some((comm, tf)) = stat_fields(&format!("/proc/{pid}/task/{tid}/stat")) else {
                    continue;
                };
                let status = fs::read_to_string(format!("/proc/{pid}/task/{tid}/status"))
                    .unwrap_or_default();
                let switches = status
                    .lines()
                    .filter(|l| l.contains("ctxt_switches:"))
                    .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                    .sum();
                snap.tasks.insert(
                    (pid, tid),
                    Task {
                        comm,
                        cpu_s: (field(&tf, 14) + field(&tf, 15)) as f64 / hz,
                        switches,
                    },
                );
            }
        }
        snap
    }

    /// What the tree used between `before` and `self`: CPU seconds, context switches of the
    /// threads alive at both ends, and each such thread's CPU seconds, largest first.
    pub fn since(&self, before: &Snapshot) -> Used {
        let mut threads: Vec<(String, f64)> = Vec::new();
        let mut switches = 0;
        for (key, t) in &self.tasks {
            let (cpu0, sw0) = before
                .tasks
                .get(key)
                .map_or((0.0, 0), |b| (b.cpu_s, b.switches));
            threads.push((t.comm.clone(), t.cpu_s - cpu0));
            switches += t.switches.saturating_sub(sw0);
        }
        threads.sort_by(|a, b| b.1.total_cmp(&a.1));
        Used {
            cpu_s: (self.cpu_s - before.cpu_s).max(0.0),
            switches,
            threads,
            processes: self.processes,
        }
    }
}

/// A tree's use of the machine over a run.
#[derive(Clone, Debug, Default)]
pub struct Used {
    pub cpu_s: f64,
    pub switches: u64,
    pub threads: Vec<(String, f64)>,
    pub processes: usize,
}

/// The machine's CPU time so far, from the first line of `/proc/stat`, in clock ticks summed
/// over the CPUs: all of it, the busy part (all but idle and iowait), and within that the
/// interrupt and softirq time (loopback TCP work; without IRQ_TIME_ACCOUNTING the kernel also
/// charges it to the task it interrupted) and the time the hypervisor gave to others (steal).
#[derive(Copy, Clone, Debug, Default)]
pub struct MachineTime {
    all: u64,
    busy: u64,
    irq: u64,
    steal: u64,
}

/// Cores' worth of each kind of machine time over an interval.
#[derive(Copy, Clone, Debug, Default)]
pub struct MachineUse {
    pub busy: f64,
    pub irq: f64,
    pub steal: f64,
}

impl MachineTime {
    pub fn read() -> MachineTime {
        let text = fs::read_to_string("/proc/stat").unwrap_or_default();
        let v: Vec<u64> = text
            .lines()
            .next()
            .unwrap_or("")
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        let at = |i: usize| v.get(i).copied().unwrap_or(0);
        // user nice system idle iowait irq softirq steal (guest time is inside user).
        let all: u64 = v.iter().take(8).sum();
        MachineTime {
            all,
            busy: all.saturating_sub(at(3) + at(4)),
            irq: at(5) + at(6),
            steal: at(7),
        }
    }

    /// The fraction of the machine that was busy since `before`.
    pub fn busy_since(&self, before: &MachineTime) -> f64 {
        self.since(before, 1).busy
    }

    /// Cores' worth of busy, interrupt and steal time since `before`, on `cpus` CPUs.
    pub fn since(&self, before: &MachineTime, cpus: usize) -> MachineUse {
        let all = self.all.saturating_sub(before.all);
        if all == 0 {
            return MachineUse::default();
        }
        let cores =
            |now: u64, then: u64| now.saturating_sub(then) as f64 / all as f64 * cpus as f64;
        MachineUse {
            busy: cores(self.busy, before.busy),
            irq: cores(self.irq, before.irq),
            steal: cores(self.steal, before.steal),
        }
    }
}

/// The fraction of the machine's CPU time that was busy over `secs`.
pub fn busy_sample(secs: f64) -> f64 {
    let before = MachineTime::read();
    sleep(Duration::from_secs_f64(secs));
    MachineTime::read().busy_since(&before)
}

/// CPU seconds (user + system) of this process's children that have been waited for.
pub fn reaped_children_cpu_s() -> f64 {
    use nix::sys::resource::{getrusage, UsageWho};
    let Ok(u) = getrusage(UsageWho::RUSAGE_CHILDREN) else {
        return 0.0;
    };
    let s = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    s(u.user_time()) + s(u.system_time())
}
