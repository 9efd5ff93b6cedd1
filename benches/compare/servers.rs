//! The server processes: started pinned to one core (the process handling is the runners'
//! shared `support`), and where they find their binaries and scratch files.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{parse_port, run_loadgen, Guard};

/// Where the runner puts its children, their output and its report.
pub struct Env {
    pub bin: PathBuf,
    pub scratch: PathBuf,
    pub server_cpu: Option<usize>,
    pub loadgen_cpu: Option<usize>,
}

/// A server started and listening.
pub struct Running {
    pub guard: Guard,
    pub port: u16,
    pub err_path: PathBuf,
}

impl Running {
    /// Runs the load generator against this server, with `load` its arguments beyond the
    /// port, the server's pid and the cpu: its JSON report.
    pub fn load(&self, env: &Env, load: &[String]) -> Result<Value, String> {
        run_loadgen(
            &env.bin,
            &env.scratch,
            self.port,
            self.guard.pid(),
            load,
            env.loadgen_cpu,
        )
    }
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
