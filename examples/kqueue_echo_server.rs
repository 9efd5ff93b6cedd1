//! PyMOTW's `select_poll_echo_server.py` on the kqueue(2) backend, through the selector layer
//! alone: the generic body is in `selector_echo/mod.rs`. kqueue exists on macOS and the BSDs,
//! and on Linux with the `libkqueue` feature; elsewhere the program says so and exits with
//! status 2.
//!
//! `cargo run --example kqueue_echo_server -- <host> <port>`

#[cfg(rawloop_kqueue)]
mod selector_echo;

#[cfg(rawloop_kqueue)]
fn main() -> std::process::ExitCode {
    selector_echo::main::<rawloop::Kqueue>("kqueue_echo_server")
}

#[cfg(not(rawloop_kqueue))]
fn main() -> std::process::ExitCode {
    eprintln!(
        "kqueue_echo_server: the kqueue backend is not available in this build \
         (macOS and the BSDs, or Linux with `--features libkqueue`)"
    );
    std::process::ExitCode::from(2)
}
