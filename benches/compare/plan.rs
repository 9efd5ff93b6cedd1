//! What is run: the matrix of cells (message size x active x idle connections), the servers,
//! the rounds and timings, after `--quick` and the options.

use std::path::Path;
use std::process::Command;

use rawloop::Backend;

use crate::Args;

/// The matrix and timings after `--quick` and the options are applied.
pub struct Plan {
    pub rounds: usize,
    pub warmup: f64,
    pub duration: f64,
    pub sizes: Vec<usize>,
    pub active: Vec<usize>,
    pub idle: Vec<usize>,
    pub servers: Vec<Server>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Server {
    Rawloop(BackendName),
    Mio,
    Tokio,
}

/// A backend, ordered and named for tables.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct BackendName(pub &'static str);

impl Server {
    pub fn name(self) -> String {
        match self {
            Server::Rawloop(b) => format!("rawloop-{}", b.0),
            Server::Mio => "mio".into(),
            Server::Tokio => "tokio".into(),
        }
    }

    pub fn command(self, bin: &Path) -> Command {
        let mut cmd = match self {
            Server::Rawloop(b) => {
                let mut cmd = Command::new(bin.join("echo_server"));
                cmd.args(["--backend", b.0]);
                cmd
            }
            Server::Mio => Command::new(bin.join("peer_mio_echo")),
            Server::Tokio => Command::new(bin.join("peer_tokio_echo")),
        };
        cmd.args(["127.0.0.1", "0"]);
        cmd
    }
}

fn all_servers() -> Vec<Server> {
    let mut servers: Vec<Server> = Backend::compiled()
        .into_iter()
        .filter(|b| *b != Backend::Kqueue)
        .map(|b| Server::Rawloop(BackendName(b.name())))
        .collect();
    servers.extend([Server::Mio, Server::Tokio]);
    servers
}

impl Plan {
    pub fn new(args: &Args) -> Result<Plan, String> {
        let quick = args.quick;
        let servers = match &args.servers {
            None => all_servers(),
            Some(names) => names
                .iter()
                .map(|n| {
                    all_servers()
                        .into_iter()
                        .find(|s| s.name() == *n)
                        .ok_or_else(|| format!("unknown or uncompiled server {n:?}"))
                })
                .collect::<Result<_, _>>()?,
        };
        if !servers.contains(&Server::Mio) {
            return Err("the ratios are to mio: keep mio among the servers".into());
        }
        Ok(Plan {
            rounds: args.rounds.unwrap_or(if quick { 1 } else { 5 }),
            warmup: args.warmup.unwrap_or(if quick { 0.2 } else { 1.0 }),
            duration: args.duration.unwrap_or(if quick { 0.5 } else { 3.0 }),
            sizes: args
                .sizes
                .clone()
                .unwrap_or(if quick { vec![64] } else { vec![64, 4096] }),
            active: args
                .active
                .clone()
                .unwrap_or(if quick { vec![50] } else { vec![1, 50, 500] }),
            idle: args.idle.clone().unwrap_or(if quick {
                vec![0, 1000]
            } else {
                vec![0, 1000, 10_000]
            }),
            servers,
        })
    }
}

/// One cell of the matrix.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cell {
    pub size: usize,
    pub active: usize,
    pub idle: usize,
}

pub fn cells(plan: &Plan) -> Vec<Cell> {
    let mut cells = Vec::new();
    for &size in &plan.sizes {
        for &active in &plan.active {
            for &idle in &plan.idle {
                cells.push(Cell { size, active, idle });
            }
        }
    }
    cells
}
