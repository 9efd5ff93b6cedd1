//! What is run: the matrix of cells (message size x active x idle connections), the
//! registration-order cells beside it, the servers, the rounds and timings, after `--quick`
//! and the options.

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
    /// Whether the registration-order cells ([`order_cells`]) run.
    pub order: bool,
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

/// A server of the Message-protocol runs: `app_server` on a rawloop backend, the floor
/// (`examples/peer_floor_message.rs`: accept4, epoll_ctl, read, write, close and nothing
/// else; with keep-alive a read and a write per request), or `echo_server` (epoll) under
/// 64-byte echoes at the same connection count: the reference of the keep-alive target, run
/// in turn with the others so that the ratio to it is taken in the same round.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum MessageServer {
    App(BackendName),
    Floor,
    Echo,
}

/// The echo cell the keep-alive target compares with: 64 B, 50 connections, no idle ones.
pub const ECHO_REFERENCE: Cell = Cell {
    size: 64,
    active: 50,
    idle: 0,
    order: Order::IdleFirst,
};

impl MessageServer {
    pub fn name(self) -> String {
        match self {
            MessageServer::App(b) => format!("app_server ({})", b.0),
            MessageServer::Floor => "floor".into(),
            MessageServer::Echo => "echo_server (epoll), 64 B echoes".into(),
        }
    }

    /// The modes it runs in: `false` one request per connection, `true` many (for the echo
    /// server: its connections are kept).
    pub fn modes(self) -> &'static [bool] {
        match self {
            MessageServer::App(_) | MessageServer::Floor => &[false, true],
            MessageServer::Echo => &[true],
        }
    }

    pub fn command(self, bin: &Path, keep_alive: bool) -> Command {
        let mut cmd = match self {
            MessageServer::App(b) => {
                let mut cmd = Command::new(bin.join("app_server"));
                cmd.args(["--backend", b.0]);
                cmd
            }
            MessageServer::Floor => Command::new(bin.join("peer_floor_message")),
            MessageServer::Echo => return Server::Rawloop(BackendName("epoll")).command(bin),
        };
        if keep_alive {
            cmd.arg("--keep-alive");
        }
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
            active: args.active.clone().unwrap_or(if quick {
                vec![1, 50]
            } else {
                vec![1, 50, 500]
            }),
            idle: args.idle.clone().unwrap_or(if quick {
                vec![0, 1000]
            } else {
                vec![0, 1000, 10_000]
            }),
            servers,
            order: !args.no_order,
        })
    }
}

/// The order in which the load generator opens its connections, which is the order in
/// which the server registers them and select(2) and poll(2) scan them.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Order {
    /// The idle connections first, the active ones last (the load generator's default).
    IdleFirst,
    /// The active connections first (`loadgen --active-first`).
    ActiveFirst,
}

impl Order {
    pub fn name(self) -> &'static str {
        match self {
            Order::IdleFirst => "idle first (active last)",
            Order::ActiveFirst => "active first",
        }
    }
}

/// One cell of the matrix.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cell {
    pub size: usize,
    pub active: usize,
    pub idle: usize,
    pub order: Order,
}

impl Cell {
    /// A cell of the matrix: the idle connections opened first.
    pub fn new(size: usize, active: usize, idle: usize) -> Cell {
        Cell {
            size,
            active,
            idle,
            order: Order::IdleFirst,
        }
    }
}

/// The matrix: every size x active x idle, idle connections first.
pub fn cells(plan: &Plan) -> Vec<Cell> {
    let mut cells = Vec::new();
    for &size in &plan.sizes {
        for &active in &plan.active {
            for &idle in &plan.idle {
                cells.push(Cell::new(size, active, idle));
            }
        }
    }
    cells
}

/// Message size, active and idle connections of the registration-order cells (issue 13:
/// select and poll at ten thousand idle fds).
pub const ORDER_SIZE: usize = 64;
pub const ORDER_ACTIVE: usize = 10;
pub const ORDER_IDLE: usize = 10_000;

/// The registration-order cells: 10 active + 10,000 idle connections, 64 B, opened idle
/// first and active first. Outside the matrix; none with `--no-order`.
pub fn order_cells(plan: &Plan) -> Vec<Cell> {
    if !plan.order {
        return Vec::new();
    }
    [Order::IdleFirst, Order::ActiveFirst]
        .map(|order| Cell {
            size: ORDER_SIZE,
            active: ORDER_ACTIVE,
            idle: ORDER_IDLE,
            order,
        })
        .into()
}

/// The servers of the registration-order cells: every rawloop backend, and mio (whose poll
/// backend cannot be chosen: it runs on epoll, as a reference).
pub fn order_servers(plan: &Plan) -> Vec<Server> {
    plan.servers
        .iter()
        .copied()
        .filter(|s| matches!(s, Server::Rawloop(_) | Server::Mio))
        .collect()
}

/// Every run of one round, in order: each cell of the matrix with every server, then each
/// registration-order cell with its servers.
pub fn schedule(plan: &Plan) -> Vec<(Cell, Vec<Server>)> {
    let matrix = cells(plan);
    let mut runs: Vec<(Cell, Vec<Server>)> =
        matrix.iter().map(|&c| (c, plan.servers.clone())).collect();
    // An order cell that is also in the matrix (`--active 10 --idle 10000`) runs there.
    runs.extend(
        order_cells(plan)
            .into_iter()
            .filter(|c| !matrix.contains(c))
            .map(|c| (c, order_servers(plan))),
    );
    runs
}
